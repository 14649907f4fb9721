package server

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keyturn/keyturn/storage"
)

// Signing algorithms (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// MinSecretLen is the shortest master secret accepted: 256 bits.
const MinSecretLen = 32

// keyCacheTTL bounds how long an instance works from a stale view of the
// signing_keys table. A rotated-in key is published for RotationDelay
// before it signs; config requires that delay to exceed this plus the
// JWKS's Cache-Control max-age (jwksMaxAge), so every cached JWKS holds a
// key before any instance signs with it.
const keyCacheTTL = 30 * time.Second

// jwksMaxAge is how long resource servers may cache the JWKS.
const jwksMaxAge = 5 * time.Minute

// KeysOptions configures Keys.
type KeysOptions struct {
	Algorithm     string        // for keys generated from now on
	RotationDelay time.Duration // how long a rotated-in key is published before it signs
	// MaxTokenTTL is the longest access-token lifetime of any client: a
	// superseded key stays published this long after it last signed.
	MaxTokenTTL time.Duration
	Now         func() time.Time
}

// Keys holds Keyturn's key material: access-token signing keys (persisted,
// private halves encrypted under a key derived from the master secret) and
// the refresh-token MAC key (derived from the master secret, never stored).
// The master secret lives outside the database, so a database dump alone
// can neither sign an access token nor mint a refresh token.
type Keys struct {
	store    storage.Store
	opts     KeysOptions
	sealKey  []byte // AES-256-GCM key for private signing keys at rest
	macKey   []byte // HMAC-SHA256 key for refresh tokens
	macKeyID string

	mu       sync.Mutex
	loaded   []*signingKey // sorted by ActivateAt, ID
	loadedAt time.Time

	// verified remembers access tokens whose signature verified, by
	// SHA-256 of the whole token, so that introspecting a token again (a
	// resource server asks on every call it serves) skips the ES256
	// verification, the largest cost of an introspection (BENCHMARKS.md).
	verified *lru.Cache[[sha256.Size]byte, verifiedToken]
}

// verifiedTokens bounds the verified access tokens remembered: about 400
// bytes each, so a few MiB.
const verifiedTokens = 16384

// verifiedToken is what a verified access token said, and the key it was
// verified with (which must still be published when it is used again).
type verifiedToken struct {
	claims accessClaims
	kid    string
}

// signingKey is a decrypted, ready-to-use signing key.
type signingKey struct {
	row    storage.SigningKey
	public jose.JSONWebKey
	signer jose.Signer
}

// KeyInfo describes a signing key for `keyturn keys list`.
type KeyInfo struct {
	ID         string
	Algorithm  string
	CreatedAt  time.Time
	ActivateAt time.Time
	State      string // pending, active, retiring (published, no longer signing), expired
	RetireAt   time.Time
}

// NewKeys derives the key material from secret, loads the signing keys and,
// on first start, generates one that signs at once.
func NewKeys(ctx context.Context, store storage.Store, secret []byte, opts KeysOptions) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("keys: master secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Algorithm == "" {
		opts.Algorithm = AlgES256
	}
	if _, err := generateKey(opts.Algorithm, true); err != nil {
		return nil, err
	}
	seal, err := hkdf.Key(sha256.New, secret, nil, "keyturn signing-key encryption v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive: %w", err)
	}
	mac, err := hkdf.Key(sha256.New, secret, nil, "keyturn refresh-token mac v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive: %w", err)
	}
	id := sha256.Sum256(mac)
	k := &Keys{
		store: store, opts: opts, sealKey: seal, macKey: mac,
		// The MAC key's ID is a hash of the key: it names which secret a
		// family was minted under without revealing anything of it.
		macKeyID: base64.RawURLEncoding.EncodeToString(id[:6]),
	}
	if k.verified, err = lru.New[[sha256.Size]byte, verifiedToken](verifiedTokens); err != nil {
		return nil, err
	}
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	if len(k.loaded) == 0 {
		if _, err := k.add(ctx, opts.Now().UTC()); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Rotate generates a new signing key. It is published in the JWKS at once
// and signs after RotationDelay, so resource servers that cache the JWKS
// learn it before they see a token it signed; the previous key stays
// published until the last token it signed has expired.
func (k *Keys) Rotate(ctx context.Context) (KeyInfo, error) {
	now := k.opts.Now().UTC()
	row, err := k.add(ctx, now.Add(k.opts.RotationDelay))
	if err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{ID: row.ID, Algorithm: row.Algorithm, CreatedAt: row.CreatedAt, ActivateAt: row.ActivateAt, State: "pending"}, nil
}

// List describes every stored key and its state now.
func (k *Keys) List(ctx context.Context) ([]KeyInfo, error) {
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	now := k.opts.Now()
	k.mu.Lock()
	keys := k.loaded
	k.mu.Unlock()
	out := make([]KeyInfo, 0, len(keys))
	for i, sk := range keys {
		info := KeyInfo{ID: sk.row.ID, Algorithm: sk.row.Algorithm, CreatedAt: sk.row.CreatedAt, ActivateAt: sk.row.ActivateAt}
		superseded, ok := supersededAt(keys, i)
		switch {
		case now.Before(sk.row.ActivateAt):
			info.State = "pending"
		case !ok || now.Before(superseded):
			info.State = "active"
		case now.Before(superseded.Add(k.opts.MaxTokenTTL)):
			info.State = "retiring"
			info.RetireAt = superseded.Add(k.opts.MaxTokenTTL)
		default:
			info.State = "expired"
			info.RetireAt = superseded.Add(k.opts.MaxTokenTTL)
		}
		out = append(out, info)
	}
	return out, nil
}

func (k *Keys) add(ctx context.Context, activateAt time.Time) (storage.SigningKey, error) {
	priv, err := generateKey(k.opts.Algorithm, false)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub := jose.JSONWebKey{Key: priv.(crypto.Signer).Public(), Algorithm: k.opts.Algorithm, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: thumbprint: %w", err)
	}
	// kid = RFC 7638 thumbprint: unique per key and checkable by anyone.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: marshal jwk: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: marshal private key: %w", err)
	}
	sealed, err := k.seal(der, pub.KeyID)
	if err != nil {
		return storage.SigningKey{}, err
	}
	row := storage.SigningKey{
		ID: pub.KeyID, Algorithm: k.opts.Algorithm, PublicJWK: pubJSON, PrivateEncrypted: sealed,
		CreatedAt: k.opts.Now().UTC(), ActivateAt: activateAt,
	}
	if err := k.store.CreateSigningKey(ctx, row); err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: store: %w", err)
	}
	return row, k.reload(ctx)
}

// reload reads the signing keys from the store and decrypts them.
func (k *Keys) reload(ctx context.Context) error {
	rows, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load: %w", err)
	}
	keys := make([]*signingKey, 0, len(rows))
	for _, row := range rows {
		sk, err := k.open(row)
		if err != nil {
			return err
		}
		keys = append(keys, sk)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i].row, keys[j].row
		if !a.ActivateAt.Equal(b.ActivateAt) {
			return a.ActivateAt.Before(b.ActivateAt)
		}
		return a.ID < b.ID
	})
	k.mu.Lock()
	k.loaded, k.loadedAt = keys, k.opts.Now()
	k.mu.Unlock()
	return nil
}

func (k *Keys) open(row storage.SigningKey) (*signingKey, error) {
	der, err := k.unseal(row.PrivateEncrypted, row.ID)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s cannot be decrypted with this master secret: %w", row.ID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", row.ID, err)
	}
	var pub jose.JSONWebKey
	if err := json.Unmarshal(row.PublicJWK, &pub); err != nil {
		return nil, fmt.Errorf("keys: signing key %s: public jwk: %w", row.ID, err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(row.Algorithm), Key: jose.JSONWebKey{Key: priv, KeyID: row.ID}},
		// RFC 9068 §2.1: access tokens carry typ "at+jwt".
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", row.ID, err)
	}
	return &signingKey{row: row, public: pub, signer: signer}, nil
}

// current returns the cached keys, reloading them when the cache is stale.
func (k *Keys) current(ctx context.Context) ([]*signingKey, error) {
	k.mu.Lock()
	keys, at := k.loaded, k.loadedAt
	k.mu.Unlock()
	if k.opts.Now().Sub(at) < keyCacheTTL && len(keys) > 0 {
		return keys, nil
	}
	if err := k.reload(ctx); err != nil {
		if len(keys) > 0 {
			// Keep signing with what we have, and try again only after
			// another keyCacheTTL: during an outage requests must not each
			// wait for the database first.
			k.mu.Lock()
			k.loadedAt = k.opts.Now()
			k.mu.Unlock()
			return keys, nil
		}
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loaded, nil
}

// signer returns the key that signs at now: the newest key whose ActivateAt
// has passed.
func (k *Keys) signer(ctx context.Context) (*signingKey, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	now := k.opts.Now()
	for i := len(keys) - 1; i >= 0; i-- {
		if !now.Before(keys[i].row.ActivateAt) {
			return keys[i], nil
		}
	}
	if len(keys) > 0 { // clock skew: every key is in the future; sign with the oldest
		return keys[0], nil
	}
	return nil, errors.New("keys: no signing key")
}

// Published returns the public keys a verifier may need at now (RFC 7517
// JWK Set): pending keys, the active key, and superseded keys until the
// last token they signed has expired.
func (k *Keys) Published(ctx context.Context) ([]jose.JSONWebKey, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	now := k.opts.Now()
	out := make([]jose.JSONWebKey, 0, len(keys))
	for i, sk := range keys {
		if k.published(keys, i, now) {
			out = append(out, sk.public)
		}
	}
	return out, nil
}

// published reports whether keys[i] is in the JWK Set at now: not yet
// superseded, or superseded less than the longest token lifetime ago.
func (k *Keys) published(keys []*signingKey, i int, now time.Time) bool {
	at, superseded := supersededAt(keys, i)
	return !superseded || now.Before(at.Add(k.opts.MaxTokenTTL))
}

// verificationKey returns the published public key with the given kid. It
// is on every introspection, so it looks the key up without building the
// set.
func (k *Keys) verificationKey(ctx context.Context, kid string) (*jose.JSONWebKey, bool) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, false
	}
	now := k.opts.Now()
	for i, sk := range keys {
		if sk.public.KeyID == kid && k.published(keys, i, now) {
			return &sk.public, true
		}
	}
	return nil, false
}

// supersededAt is when keys[i] stopped signing: when the next key in
// activation order became active. ok is false while keys[i] is the newest.
func supersededAt(keys []*signingKey, i int) (time.Time, bool) {
	if i+1 < len(keys) {
		return keys[i+1].row.ActivateAt, true
	}
	return time.Time{}, false
}

func (k *Keys) seal(plain []byte, kid string) ([]byte, error) {
	aead, err := newAEAD(k.sealKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keys: nonce: %w", err)
	}
	// The kid is additional data: a sealed key cannot be moved to another row.
	return aead.Seal(nonce, nonce, plain, []byte(kid)), nil
}

func (k *Keys) unseal(sealed []byte, kid string) ([]byte, error) {
	aead, err := newAEAD(k.sealKey)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// generateKey makes a private key for alg; with check it only validates alg.
func generateKey(alg string, check bool) (crypto.PrivateKey, error) {
	switch alg {
	case AlgES256:
		if check {
			return nil, nil
		}
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		if check {
			return nil, nil
		}
		return rsa.GenerateKey(rand.Reader, 2048)
	case AlgEdDSA:
		if check {
			return nil, nil
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("keys: unknown signing algorithm %q (want ES256, RS256 or EdDSA)", alg)
}

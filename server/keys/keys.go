// Package keys owns Keyturn's key material, like Dex's signer: the
// lifecycle of the JWT signing keys (generate, rotate, publish, supersede,
// revoke, reload, watch for revocations), sealing their private halves at
// rest (AES-256-GCM under an HKDF of the master secret), the JWK Set, the
// verification-key lookup and the memory of verified access tokens,
// signing and verifying access tokens, and the refresh-token MAC key. It
// also holds the constants config checks against: the algorithms,
// MinSecretLen and MinRotationDelay. Token formats are package tokens'.
package keys

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
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// Signing algorithms (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// Algorithms lists the signing algorithms a key may be generated for.
func Algorithms() []string { return []string{AlgES256, AlgRS256, AlgEdDSA} }

// MinSecretLen is the shortest master secret accepted: 256 bits.
const MinSecretLen = 32

// keyCacheTTL bounds how long an instance works from a stale view of the
// signing_keys table. A rotated-in key is published for RotationDelay
// before it signs; config requires that delay to be at least
// MinRotationDelay, so every cached JWKS holds a key before any instance
// signs with it.
const keyCacheTTL = 30 * time.Second

// JWKSMaxAge is how long resource servers may cache the JWKS (its
// Cache-Control max-age).
const JWKSMaxAge = 5 * time.Minute

// MinRotationDelay is the shortest Options.RotationDelay (config's
// keys.rotation_delay): a rotated-in key signs only after every instance
// has re-read the keys (keyCacheTTL) and every resource server's cached
// JWKS has expired (JWKSMaxAge), so every cache has seen it. Rounded up to
// a whole minute (6m) so the limit reads simply.
const MinRotationDelay = (keyCacheTTL + JWKSMaxAge + time.Minute - 1) / time.Minute * time.Minute

// revocationCheckInterval bounds how long an instance keeps publishing,
// verifying with or signing with a key after `keyturn keys revoke` (on any
// instance): between full reloads, at most once per interval one request
// asks the database whether any key was revoked (one aggregate query over
// a handful of rows, SigningKeyRevocations), and the keys are reloaded
// only if the answer changed. No request waits for the database otherwise.
const revocationCheckInterval = 2 * time.Second

// Options configures Keys.
type Options struct {
	// Algorithm is the access tokens' signing algorithm: its lineage of
	// keys signs them (ES256 by default).
	Algorithm string
	// IDTokenAlgorithms are the algorithms ID tokens may be signed with
	// (RS256, OpenID Connect Core §15.1, and each client's
	// id_token_signed_response_alg). Each algorithm is a lineage of keys of
	// its own, rotated, published, retired and revoked on its own; one
	// equal to Algorithm shares its lineage.
	IDTokenAlgorithms []string
	RotationDelay     time.Duration // how long a rotated-in key is published before it signs
	// MaxTokenTTL is the longest lifetime of any token a key signs (access
	// or ID token, any client): a superseded key stays published this long
	// after it last signed.
	MaxTokenTTL time.Duration
	Now         func() time.Time
	// Log, if set, is told when this instance learns that a key was
	// revoked.
	Log *slog.Logger
}

// Keys holds Keyturn's key material: access-token signing keys (persisted,
// private halves encrypted under a key derived from the master secret) and
// the refresh-token MAC key (derived from the master secret, never stored).
// The master secret lives outside the database, so a database dump alone
// can neither sign an access token nor mint a refresh token.
type Keys struct {
	store    storage.SigningKeys
	opts     Options
	sealKey  []byte // AES-256-GCM key for private signing keys at rest
	macKey   []byte // HMAC-SHA256 key for refresh tokens
	macKeyID string
	formKey  []byte // HMAC-SHA256 key for the pages' CSRF tokens

	mu          sync.Mutex
	lineages    []string      // algorithms in use: Algorithm first, then ID-token ones (Ensure adds)
	loaded      []*signingKey // every lineage's keys, in activation order (sortKeys)
	loadedAt    time.Time
	checkedAt   time.Time              // last revocation check (or reload)
	revocations storage.KeyRevocations // as of the last reload
	refreshing  bool                   // a request is checking or reloading; others use loaded

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
	claims tokens.AccessClaims
	kid    string
}

// signingKey is a decrypted, ready-to-use signing key. A revoked key has
// no signer (its private half is erased): it is kept only for its place
// in the activation order.
type signingKey struct {
	row    storage.SigningKey
	public jose.JSONWebKey
	signer jose.Signer // typ at+jwt: access tokens
	// idSigner signs ID tokens: typ JWT (OpenID Connect Core §2 needs no
	// typ; JWT keeps them apart from access tokens, RFC 8725 §3.11).
	idSigner jose.Signer
}

// signed reports whether the key ever became the signing key: it was not
// revoked before it activated. A key revoked while pending supersedes
// nothing.
func (sk *signingKey) signed() bool {
	return !sk.row.Revoked() || !sk.row.RevokedAt.Before(sk.row.ActivateAt)
}

// Info describes a signing key for `keyturn keys list`.
type Info struct {
	ID         string
	Algorithm  string
	CreatedAt  time.Time
	ActivateAt time.Time
	State      string // pending, active, retiring (published, no longer signing), expired, revoked
	RetireAt   time.Time
	RevokedAt  time.Time // zero unless revoked
}

// RevokeResult says what Keys.Revoke did.
type RevokeResult struct {
	ID        string
	RevokedAt time.Time
	// AlreadyRevoked: the key was revoked before (at RevokedAt); nothing changed.
	AlreadyRevoked bool
	// SignerID is the key that signs from now on when the revoked key was
	// signing ("" otherwise); NewSigner tells whether it was generated
	// (else a pending key was made to sign at once).
	SignerID  string
	NewSigner bool
}

// New derives the key material from secret, loads the signing keys and,
// on first start, generates one that signs at once.
func New(ctx context.Context, store storage.SigningKeys, secret []byte, opts Options) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("keys: master secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Algorithm == "" {
		opts.Algorithm = AlgES256
	}
	for _, alg := range append([]string{opts.Algorithm}, opts.IDTokenAlgorithms...) {
		if _, err := generateKey(alg, true); err != nil {
			return nil, err
		}
	}
	seal, err := hkdf.Key(sha256.New, secret, nil, "keyturn signing-key encryption v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive: %w", err)
	}
	mac, err := hkdf.Key(sha256.New, secret, nil, "keyturn refresh-token mac v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive: %w", err)
	}
	form, err := hkdf.Key(sha256.New, secret, nil, "keyturn form csrf v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive: %w", err)
	}
	id := sha256.Sum256(mac)
	k := &Keys{
		store: store, opts: opts, sealKey: seal, macKey: mac, formKey: form,
		// The MAC key's ID is a hash of the key: it names which secret a
		// family was minted under without revealing anything of it.
		macKeyID: base64.RawURLEncoding.EncodeToString(id[:6]),
	}
	if k.verified, err = lru.New[[sha256.Size]byte, verifiedToken](verifiedTokens); err != nil {
		return nil, err
	}
	if err := k.Ensure(ctx, append([]string{opts.Algorithm}, opts.IDTokenAlgorithms...)); err != nil {
		return nil, err
	}
	return k, nil
}

// Ensure puts the algorithms algs in use (Algorithms' names): each one
// that has no live key yet gets one that signs at once, as on first start
// (no RotationDelay: nothing it signs can be in any cache before it
// exists, and a verifier that meets an unknown kid fetches the JWKS
// again, RFC 7515 §4.1.4). cmd calls it when reloaded clients ask for an
// ID-token algorithm not used before. A lineage stays in use until the
// process ends.
func (k *Keys) Ensure(ctx context.Context, algs []string) error {
	for _, alg := range algs {
		if _, err := generateKey(alg, true); err != nil {
			return err
		}
	}
	if err := k.reload(ctx); err != nil {
		return err
	}
	k.mu.Lock()
	for _, alg := range algs {
		if !slices.Contains(k.lineages, alg) {
			k.lineages = append(slices.Clip(k.lineages), alg)
		}
	}
	keys := k.loaded
	k.mu.Unlock()
	for _, alg := range algs {
		if !slices.ContainsFunc(keys, func(sk *signingKey) bool { return sk.row.Algorithm == alg && !sk.row.Revoked() }) {
			if _, err := k.add(ctx, alg, k.opts.Now().UTC()); err != nil {
				return err
			}
			k.mu.Lock()
			keys = k.loaded
			k.mu.Unlock()
		}
	}
	return nil
}

// Lineages returns the algorithms in use, the access tokens' first.
func (k *Keys) Lineages() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.lineages)
}

// Rotate generates a new signing key of algorithm alg, a lineage in use.
// It is published in the JWKS at once and signs after RotationDelay, so
// verifiers that cache the JWKS learn it before they see a token it
// signed; the previous key of alg stays published until the last token it
// signed has expired. Other lineages are not touched.
func (k *Keys) Rotate(ctx context.Context, alg string) (Info, error) {
	if inUse := k.Lineages(); !slices.Contains(inUse, alg) {
		return Info{}, fmt.Errorf("keys: rotate: no %s keys in use (in use: %s)", alg, strings.Join(inUse, ", "))
	}
	now := k.opts.Now().UTC()
	row, err := k.add(ctx, alg, now.Add(k.opts.RotationDelay))
	if err != nil {
		return Info{}, err
	}
	return Info{ID: row.ID, Algorithm: row.Algorithm, CreatedAt: row.CreatedAt, ActivateAt: row.ActivateAt, State: "pending"}, nil
}

// RotateAll rotates every lineage in use (Rotate), the access tokens'
// first.
func (k *Keys) RotateAll(ctx context.Context) ([]Info, error) {
	var out []Info
	for _, alg := range k.Lineages() {
		info, err := k.Rotate(ctx, alg)
		if err != nil {
			return out, err
		}
		out = append(out, info)
	}
	return out, nil
}

// List describes every stored key and its state now.
func (k *Keys) List(ctx context.Context) ([]Info, error) {
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	now := k.opts.Now()
	k.mu.Lock()
	keys := k.loaded
	k.mu.Unlock()
	out := make([]Info, 0, len(keys))
	for i, sk := range keys {
		info := Info{ID: sk.row.ID, Algorithm: sk.row.Algorithm, CreatedAt: sk.row.CreatedAt, ActivateAt: sk.row.ActivateAt}
		superseded, ok := supersededAt(keys, i)
		switch {
		case sk.row.Revoked():
			info.State = "revoked"
			info.RevokedAt = sk.row.RevokedAt
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

// Revoke withdraws a signing key at once, for a key that leaked: every
// instance stops publishing it, stops accepting tokens it signed and stops
// signing with it within revocationCheckInterval, without a restart, and
// its private half is erased. ErrNotFound (wrapped) for an unknown kid.
//
// If the key is the one signing in its lineage, another key of the same
// algorithm signs from now on: the pending key published longest (resource servers that fetched the JWKS since it was
// added know it already), else a new key, with no RotationDelay. Skipping
// the delay is right here, unlike in Rotate: waiting would keep a leaked
// key signing, or leave no key to sign with; and a resource server whose
// cached JWKS lacks the new kid fetches the JWKS again (RFC 7515 §4.1.4:
// the kid picks the key; an unknown one means the set changed), so the
// cost is one extra fetch, not a rejected token. The replacement is stored
// before the key is marked revoked, so no instance ever finds the signing
// key revoked with nothing to take its place.
func (k *Keys) Revoke(ctx context.Context, kid string) (RevokeResult, error) {
	if err := k.reload(ctx); err != nil {
		return RevokeResult{}, err
	}
	now := k.opts.Now().UTC()
	k.mu.Lock()
	keys := k.loaded
	k.mu.Unlock()
	i := slices.IndexFunc(keys, func(sk *signingKey) bool { return sk.row.ID == kid })
	if i < 0 {
		return RevokeResult{}, fmt.Errorf("keys: revoke %s: %w", kid, storage.ErrNotFound)
	}
	res := RevokeResult{ID: kid, RevokedAt: now}
	alg := keys[i].row.Algorithm
	if sk := keys[i]; sk.row.Revoked() {
		res.RevokedAt, res.AlreadyRevoked = sk.row.RevokedAt, true
	}
	// A replacement is needed if kid signs now (a < 0: every key is in
	// the future, and the oldest signs), or if the active key is revoked
	// already (its replacement was deleted by hand): repaired here.
	if a := activeAt(keys, alg, now); !res.AlreadyRevoked && (a < 0 || a == i) || a >= 0 && keys[a].row.Revoked() {
		var pending *signingKey
		for _, sk := range keys {
			if sk.row.Algorithm == alg && !sk.row.Revoked() && now.Before(sk.row.ActivateAt) && (pending == nil || sk.row.CreatedAt.Before(pending.row.CreatedAt)) {
				pending = sk
			}
		}
		if pending != nil {
			if err := k.store.ActivateSigningKey(ctx, pending.row.ID, now); err != nil {
				return RevokeResult{}, fmt.Errorf("keys: activate %s: %w", pending.row.ID, err)
			}
			res.SignerID = pending.row.ID
		} else {
			row, err := k.add(ctx, alg, now)
			if err != nil {
				return RevokeResult{}, err
			}
			res.SignerID, res.NewSigner = row.ID, true
		}
	}
	if res.AlreadyRevoked {
		return res, k.reload(ctx)
	}
	if err := k.store.RevokeSigningKey(ctx, kid, now); err != nil {
		return RevokeResult{}, fmt.Errorf("keys: revoke %s: %w", kid, err)
	}
	// Tokens it signed that an instance remembers as verified are refused
	// there as soon as it sees the revocation: ParseAccessToken answers
	// from memory only while the key is still published.
	return res, k.reload(ctx)
}

// add generates, stores and loads a key of algorithm alg that signs from
// activateAt.
func (k *Keys) add(ctx context.Context, alg string, activateAt time.Time) (storage.SigningKey, error) {
	priv, err := generateKey(alg, false)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub := jose.JSONWebKey{Key: priv.(crypto.Signer).Public(), Algorithm: alg, Use: "sig"}
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
		ID: pub.KeyID, Algorithm: alg, PublicJWK: pubJSON, PrivateEncrypted: sealed,
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
	var revs storage.KeyRevocations
	for _, row := range rows {
		var sk *signingKey
		if row.Revoked() {
			revs.Count++
			if row.RevokedAt.After(revs.Latest) {
				revs.Latest = row.RevokedAt
			}
			sk = &signingKey{row: row}
			if err := json.Unmarshal(row.PublicJWK, &sk.public); err != nil {
				return fmt.Errorf("keys: signing key %s: public jwk: %w", row.ID, err)
			}
		} else if sk, err = k.open(row); err != nil {
			return err
		}
		keys = append(keys, sk)
	}
	sortKeys(keys)
	now := k.opts.Now()
	k.mu.Lock()
	prev := k.loaded
	k.loaded, k.loadedAt, k.checkedAt, k.revocations = keys, now, now, revs
	k.mu.Unlock()
	if k.opts.Log != nil {
		for _, sk := range keys {
			if sk.row.Revoked() && slices.ContainsFunc(prev, func(p *signingKey) bool { return p.row.ID == sk.row.ID && !p.row.Revoked() }) {
				k.opts.Log.Warn("signing key revoked: no longer published, accepted or used", "kid", sk.row.ID, "revoked_at", sk.row.RevokedAt)
			}
		}
	}
	return nil
}

// Watch checks for revocations (and reloads the keys when due) every
// revocationCheckInterval until ctx is done, so that an idle instance too
// stops publishing a revoked key at once, and requests seldom find the
// check due themselves.
func (k *Keys) Watch(ctx context.Context) {
	t := time.NewTicker(revocationCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = k.current(ctx) // a failure keeps the keys it has, as for a request
		}
	}
}

// sortKeys puts keys in activation order: by ActivateAt, a revoked key
// before a live one at the same instant (so that a replacement activated
// at the very instant its predecessor was revoked supersedes it), then by
// ID.
func sortKeys(keys []*signingKey) {
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i].row, keys[j].row
		if !a.ActivateAt.Equal(b.ActivateAt) {
			return a.ActivateAt.Before(b.ActivateAt)
		}
		if a.Revoked() != b.Revoked() {
			return a.Revoked()
		}
		return a.ID < b.ID
	})
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
	key := jose.SigningKey{Algorithm: jose.SignatureAlgorithm(row.Algorithm), Key: jose.JSONWebKey{Key: priv, KeyID: row.ID}}
	// RFC 9068 §2.1: access tokens carry typ "at+jwt".
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", row.ID, err)
	}
	idSigner, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", row.ID, err)
	}
	return &signingKey{row: row, public: pub, signer: signer, idSigner: idSigner}, nil
}

// current returns the cached keys: reloaded every keyCacheTTL, and in
// between checked for a revocation every revocationCheckInterval. One
// request at a time checks or reloads; the others use the keys they have
// meanwhile, so no request but that one waits for the database.
func (k *Keys) current(ctx context.Context) ([]*signingKey, error) {
	now := k.opts.Now()
	k.mu.Lock()
	keys, revs := k.loaded, k.revocations
	reload := len(keys) == 0 || now.Sub(k.loadedAt) >= keyCacheTTL
	check := !reload && now.Sub(k.checkedAt) >= revocationCheckInterval
	if !reload && !check || k.refreshing && len(keys) > 0 {
		k.mu.Unlock()
		return keys, nil
	}
	k.refreshing = true
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.refreshing = false
		k.mu.Unlock()
	}()
	if check {
		got, err := k.store.SigningKeyRevocations(ctx)
		if err != nil || got == revs {
			// Nothing revoked (or the database is down: keep going with
			// what we have and ask again after another interval).
			k.mu.Lock()
			k.checkedAt = now
			k.mu.Unlock()
			return keys, nil
		}
	}
	if err := k.reload(ctx); err != nil {
		if len(keys) > 0 {
			// Keep signing with what we have, and try again only after
			// another keyCacheTTL: during an outage requests must not each
			// wait for the database first.
			k.mu.Lock()
			k.loadedAt, k.checkedAt = now, now
			k.mu.Unlock()
			return keys, nil
		}
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loaded, nil
}

// activeAt is the index of the key of lineage alg that signs at now in
// activation order: the last one of alg that activated at or before now,
// revoked or not (-1 if none). A revoked one means no key of alg may
// sign: signing falls back neither to it nor to the key it superseded.
func activeAt(keys []*signingKey, alg string, now time.Time) int {
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].row.Algorithm == alg && keys[i].signed() && !now.Before(keys[i].row.ActivateAt) {
			return i
		}
	}
	return -1
}

// signer returns the key of lineage alg that signs at now: the newest key
// of alg whose ActivateAt has passed, unless it is revoked.
func (k *Keys) signer(ctx context.Context, alg string) (*signingKey, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	switch i := activeAt(keys, alg, k.opts.Now()); {
	case i >= 0 && keys[i].row.Revoked():
		// Revoke stores a replacement before it revokes, so this is seen
		// only if that replacement was deleted by hand.
		return nil, fmt.Errorf("keys: %s signing key %s is revoked and none replaces it (run `keyturn keys revoke %s` again)", alg, keys[i].row.ID, keys[i].row.ID)
	case i >= 0:
		return keys[i], nil
	}
	// Clock skew: every key of alg is in the future; sign with the oldest
	// live one.
	for _, sk := range keys {
		if sk.row.Algorithm == alg && !sk.row.Revoked() {
			return sk, nil
		}
	}
	return nil, fmt.Errorf("keys: no %s signing key", alg)
}

// Ready returns why some lineage in use has no key that can sign now, or
// nil: /ready answers 503 while it is not nil.
func (k *Keys) Ready(ctx context.Context) error {
	for _, alg := range k.Lineages() {
		if _, err := k.signer(ctx, alg); err != nil {
			return err
		}
	}
	return nil
}

// SigningKeyAge is how long the key that signs access tokens now has been
// signing (for /metrics), or why no key can sign them.
func (k *Keys) SigningKeyAge(ctx context.Context) (time.Duration, error) {
	sk, err := k.signer(ctx, k.opts.Algorithm)
	if err != nil {
		return 0, err
	}
	return k.opts.Now().Sub(sk.row.ActivateAt), nil
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

// published reports whether keys[i] is in the JWK Set at now: not
// revoked, and not yet superseded or superseded less than the longest
// token lifetime ago.
func (k *Keys) published(keys []*signingKey, i int, now time.Time) bool {
	if keys[i].row.Revoked() {
		return false
	}
	at, superseded := supersededAt(keys, i)
	return !superseded || now.Before(at.Add(k.opts.MaxTokenTTL))
}

// verificationKey returns the published public key with the given kid. It
// is on every introspection, so it looks the key up without building the
// set. A revoked key is not published, so a token it signed is not active
// (RFC 7662 §2.2), even one remembered as verified.
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

// supersededAt is when keys[i] stopped signing: when the next key of its
// algorithm in activation order that ever signed became active (a key
// revoked later still ended its predecessor's turn; one revoked while
// pending did not; a key of another lineage never does). ok is false
// while no later key has or will become active.
// storage.SigningKeys.DeleteSigningKeys applies the same rule.
func supersededAt(keys []*signingKey, i int) (time.Time, bool) {
	for _, next := range keys[i+1:] {
		if next.row.Algorithm == keys[i].row.Algorithm && next.signed() {
			return next.row.ActivateAt, true
		}
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
	return nil, fmt.Errorf("keys: unknown signing algorithm %q (want %s)", alg, strings.Join(Algorithms(), ", "))
}

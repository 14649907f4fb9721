// Command floor is the minimal refresh server of issue 15's "Keyturn ÷
// floor" figure: the irreducible work of one refresh-token grant (RFC 6749
// §6), and nothing else. Per request it parses the form, checks the client
// secret (Basic, RFC 6749 §2.3.1) against its SHA-256 digest in constant
// time, parses a ktr2 refresh token and checks its MAC, rotates the session
// with one prepared conditional UPDATE … RETURNING over a pgx pool, signs an
// ES256 RFC 9068 access token with go-jose (one key, generated at start),
// MACs the successor and writes the JSON response with the no-store headers
// of RFC 6749 §5.1. No logging, metrics, throttle, config file or
// middleware. It serves Keyturn's own tokens on Keyturn's own database
// (migrations/postgres), so the same sessions can be refreshed by either.
//
// Token formats come from package tokens (pure functions, no key); the MAC
// key is derived from the master secret here, as server/keys.New derives it.
//
// -fallback URL (optional) forwards every request that is not a refresh
// grant to that Keyturn, so that keyturn-bench's setup logins reach a
// server that has a password grant; the refresh path never touches it.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyturn/keyturn/server/tokens"
)

// pathToken is Keyturn's token endpoint (server.PathToken; the test checks
// they agree).
const pathToken = "/oauth2/token"

// Keyturn's default lifetimes (config tokens.access_token_ttl and
// tokens.refresh_idle_ttl), which run.sh's bench config keeps.
const (
	accessTTL      = 15 * time.Minute
	refreshIdleTTL = 120 * time.Hour
)

// rotateSQL is Keyturn's rotation (storage/sqlstore/families.go rotateSQL):
// pgx prepares it once per connection and reuses it.
const rotateSQL = `UPDATE families
SET generation = generation + 1, rotated_at = $1, last_used_at = $1, idle_expires_at = $2
WHERE id = $3 AND generation = $4 AND revoked_at IS NULL
  AND idle_expires_at > $1 AND absolute_expires_at > $1
RETURNING user_id, scope, generation, idle_expires_at, absolute_expires_at`

type floor struct {
	db       *pgxpool.Pool
	issuer   string
	clientID string
	digest   [sha256.Size]byte // SHA-256 of the client secret
	macKey   []byte
	signer   jose.Signer
	fallback http.Handler // nil: none
	now      func() time.Time
}

// macKey derives the refresh-token MAC key from the master secret exactly
// as server/keys.New does.
func macKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "keyturn refresh-token mac v1", 32)
}

// decodeSecret reads the master secret as config.DecodeSecret does:
// base64 (either alphabet, padded or not) of at least 32 bytes.
func decodeSecret(raw []byte) ([]byte, error) {
	s := strings.TrimSpace(string(raw))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) >= 32 {
			return b, nil
		}
	}
	return nil, errors.New("want base64 of at least 32 random bytes")
}

// decodeDigest reads a client secret_hash of the form Keyturn's clients
// YAML uses: "sha256:<base64url without padding of SHA-256(secret)>".
func decodeDigest(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, "sha256:"))
	if err != nil || len(b) != sha256.Size || !strings.HasPrefix(s, "sha256:") {
		return d, errors.New("want sha256:<base64url of the SHA-256 of the secret>")
	}
	copy(d[:], b)
	return d, nil
}

func newSigner() (jose.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), "floor")
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, opts)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="floor"`) // RFC 6749 §5.2
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`, code)
}

func (f *floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	form, ferr := url.ParseQuery(string(body))
	if err != nil || ferr != nil || r.Method != http.MethodPost || r.URL.Path != pathToken ||
		form.Get("grant_type") != "refresh_token" {
		// Never forward a refresh, wherever it was sent, so that a
		// misrouted one cannot pass Keyturn's figures off as the floor's.
		if f.fallback != nil && err == nil && form.Get("grant_type") != "refresh_token" {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			f.fallback.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	// RFC 6749 §2.3.1: client_secret_basic, each part form-urlencoded.
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	sum := sha256.Sum256([]byte(secret))
	if !ok || id != f.clientID || subtle.ConstantTimeCompare(sum[:], f.digest[:]) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	// RFC 6749 §5.2: a refresh token that is malformed, not ours, not this
	// client's, rotated, expired or revoked is invalid_grant.
	tok, err := tokens.ParseRefresh(form.Get("refresh_token"))
	if err != nil || tok.Version != tokens.RefreshV2 ||
		!hmac.Equal(tok.MAC, tokens.RefreshMACv2(f.macKey, tok.FamilyID, tok.Generation, id)) || tok.Generation >= 1<<63 {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	now := f.now().UTC()
	var (
		sub, scope      string
		gen, idle, abso int64
	)
	err = f.db.QueryRow(r.Context(), rotateSQL, now.UnixMicro(), now.Add(refreshIdleTTL).UnixMicro(),
		tok.FamilyID, int64(tok.Generation)).Scan(&sub, &scope, &gen, &idle, &abso)
	if errors.Is(err, pgx.ErrNoRows) {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	} else if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	claims, _ := json.Marshal(tokens.AccessClaims{
		Issuer: f.issuer, Subject: sub, Audience: tokens.Audience{f.issuer},
		IssuedAt: now.Unix(), Expiry: now.Add(accessTTL).Unix(), ID: tokens.NewID(),
		ClientID: id, Scope: scope, SessionID: tok.FamilyID,
	})
	jws, err := f.signer.Sign(claims)
	var at string
	if err == nil {
		at, err = jws.CompactSerialize()
	}
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	next := tokens.FormatRefresh(tokens.RefreshV2, tok.FamilyID, uint64(gen),
		tokens.RefreshMACv2(f.macKey, tok.FamilyID, uint64(gen), id))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int64(accessTTL / time.Second),
		"refresh_token": next, "refresh_expires_in": (min(idle, abso) - now.UnixMicro()) / 1e6, "scope": scope,
	})
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18090", "listen address (loopback)")
	dbURL := flag.String("database-url", "", "Keyturn's PostgreSQL database (a pgx URL: pool_max_conns=N sizes the pool)")
	clientID := flag.String("client-id", "bench", "the one client served")
	digest := flag.String("client-secret-hash", "", "its secret's digest, sha256:<base64url> as in Keyturn's clients YAML")
	secretFile := flag.String("secret-file", "", "file holding Keyturn's master secret (base64)")
	issuer := flag.String("issuer", "", "iss and aud of access tokens (default http://<listen>)")
	fallback := flag.String("fallback", "", "Keyturn URL for every request that is not a refresh grant (bench setup logins)")
	flag.Parse()
	if *issuer == "" {
		*issuer = "http://" + *listen
	}
	f := &floor{issuer: *issuer, clientID: *clientID, now: time.Now}
	var err error
	if f.digest, err = decodeDigest(*digest); err != nil {
		return fmt.Errorf("-client-secret-hash: %w", err)
	}
	raw, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	secret, err := decodeSecret(raw)
	if err != nil {
		return fmt.Errorf("-secret-file: %w", err)
	}
	if f.macKey, err = macKey(secret); err != nil {
		return err
	}
	if f.signer, err = newSigner(); err != nil {
		return err
	}
	if *fallback != "" {
		u, err := url.Parse(*fallback)
		if err != nil {
			return err
		}
		f.fallback = httputil.NewSingleHostReverseProxy(u)
	}
	if f.db, err = pgxpool.New(context.Background(), *dbURL); err != nil {
		return err
	}
	defer f.db.Close()
	return http.ListenAndServe(*listen, f)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

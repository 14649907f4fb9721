// Package servertest is the test kit of Keyturn, for tests and benchmarks
// only (like net/http/httptest; it is not internal because cmd/keyturn-bench
// imports it too, and the top-level layout is fixed). It owns what every
// package's tests used to copy: the injectable clock, the HTTP Basic
// credentials encoder (RFC 6749 §2.3.1), fast argon2id parameters and a
// password hasher using them, and the construction of a real server
// (clients, store, keys, options -> *server.Server, on httptest if wanted).
// Production code never imports it.
package servertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
	"github.com/keyturn/keyturn/storage/passhash"
)

// Start is the time every Clock starts at.
var Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is an injectable clock: tests advance it, never sleep. Safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at Start.
func NewClock() *Clock { return &Clock{t: Start} }

// Now is the clock's time; pass it as a Now option.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Basic encodes client credentials for the Authorization header as RFC
// 6749 §2.3.1 requires: each form-urlencoded, then joined with ':' and
// base64-encoded (RFC 7617 §2).
func Basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// FastHash are argon2id parameters that keep test passwords cheap to
// verify; the parameters travel in the hash, so the server verifies such a
// hash with them.
var FastHash = passhash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// HashPassword hashes password with FastHash.
func HashPassword(tb testing.TB, password string) string {
	tb.Helper()
	h, err := passhash.Hash(password, FastHash)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// AddUser stores user name (ID "user-"+name) with password, hashed with
// FastHash, created at now.
func AddUser(tb testing.TB, store storage.Users, name, password string, now time.Time) storage.User {
	tb.Helper()
	u := storage.User{ID: "user-" + name, Username: name, PasswordHash: HashPassword(tb, password), CreatedAt: now, UpdatedAt: now}
	if err := store.CreateUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return u
}

// NoEnv resolves no secret_env reference.
func NoEnv(string) (string, bool) { return "", false }

// Defaults are the client defaults of the test servers, with audience
// issuer.
func Defaults(issuer string) clients.Defaults {
	return clients.Defaults{
		AccessTokenTTL: 15 * time.Minute, RefreshIdleTTL: 120 * time.Hour,
		RefreshAbsoluteTTL: 720 * time.Hour, Audience: []string{issuer},
	}
}

// Registry builds a client registry of specs with Defaults(issuer); env
// resolves secret_env references (nil: NoEnv).
func Registry(tb testing.TB, issuer string, specs []clients.Spec, env func(string) (string, bool)) *clients.Registry {
	tb.Helper()
	if env == nil {
		env = NoEnv
	}
	reg, err := clients.New(specs, Defaults(issuer), env)
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// KeySecret returns a 32-byte key-sealing secret made of seed: servers
// with the same seed can open each other's signing keys.
func KeySecret(seed byte) []byte { return bytes.Repeat([]byte{seed}, 32) }

// Keys opens the signing keys in store, sealed under KeySecret(seed). Zero
// fields of opts take the test defaults (ES256, rotation delay 1h, maximum
// token TTL 15m). It is the kit's one place that builds keys.
//
// An RSA key takes a fifth of a second to generate (more under -race), so
// when opts.IDTokenAlgorithms has RS256 and store has no RS256 key, the
// store is given this process's one RS256 key for seed (activating now)
// instead of a new one.
func Keys(tb testing.TB, store storage.SigningKeys, seed byte, opts keys.Options) *keys.Keys {
	tb.Helper()
	if opts.Algorithm == "" {
		opts.Algorithm = keys.AlgES256
	}
	if slices.Contains(opts.IDTokenAlgorithms, keys.AlgRS256) || opts.Algorithm == keys.AlgRS256 {
		seedRSAKey(tb, store, seed, opts.Now)
	}
	if opts.RotationDelay == 0 {
		opts.RotationDelay = time.Hour
	}
	if opts.MaxTokenTTL == 0 {
		opts.MaxTokenTTL = 15 * time.Minute
	}
	k, err := keys.New(context.Background(), store, KeySecret(seed), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// rsaKeys holds one sealed RS256 key row per seed (seedRSAKey).
var rsaKeys sync.Map // byte -> storage.SigningKey

// seedRSAKey stores this process's RS256 key for seed in store, activating
// at now, unless store has a live RS256 key already.
func seedRSAKey(tb testing.TB, store storage.SigningKeys, seed byte, now func() time.Time) {
	tb.Helper()
	ctx := context.Background()
	have, err := store.ListSigningKeys(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if slices.ContainsFunc(have, func(k storage.SigningKey) bool { return k.Algorithm == keys.AlgRS256 && !k.Revoked() }) {
		return
	}
	v, ok := rsaKeys.Load(seed)
	if !ok {
		ms := memstore.New()
		if _, err := keys.New(ctx, ms, KeySecret(seed), keys.Options{Algorithm: keys.AlgRS256}); err != nil {
			tb.Fatal(err)
		}
		rows, err := ms.ListSigningKeys(ctx)
		if err != nil || len(rows) != 1 {
			tb.Fatalf("RS256 key: %d rows, %v", len(rows), err)
		}
		v, _ = rsaKeys.LoadOrStore(seed, rows[0])
	}
	row := v.(storage.SigningKey)
	if now == nil {
		now = time.Now
	}
	row.CreatedAt = now().UTC()
	row.ActivateAt = row.CreatedAt
	if err := store.CreateSigningKey(ctx, row); err != nil {
		tb.Fatal(err)
	}
}

// Setup describes a test server.
type Setup struct {
	Issuer  string
	Clients []clients.Spec
	Env     func(string) (string, bool) // secret_env references; nil: NoEnv
	Now     func() time.Time            // nil: time.Now
	Logger  *slog.Logger                // nil: discard
	// Algorithm of the signing keys ("": ES256); KeySeed seals them (see
	// KeySecret; 0: 7).
	Algorithm string
	KeySeed   byte
	// IDTokenAlgorithms are the ID-token key lineages (keys.Options),
	// e.g. {"RS256"} for a server that issues ID tokens as serve does
	// (serve: RS256 and each client's id_token_signed_response_alg). nil:
	// none, so the JWKS holds the access-token keys alone (and SignIDToken
	// fails); RS256 costs no key generation here (Keys).
	IDTokenAlgorithms []string
	// Adjust, each in order, change the options before server.New.
	Adjust []func(*server.Options)
}

// New builds the real server (router and handlers) of s over store. The
// keys, throttle and hashing limits are built here and only here.
func New(tb testing.TB, store storage.Store, s Setup) (*server.Server, server.Options) {
	tb.Helper()
	seed := s.KeySeed
	if seed == 0 {
		seed = 7
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := server.Options{
		Issuer: s.Issuer, Store: store, Clients: Registry(tb, s.Issuer, s.Clients, s.Env),
		Keys:   Keys(tb, store, seed, keys.Options{Algorithm: s.Algorithm, IDTokenAlgorithms: s.IDTokenAlgorithms, Now: s.Now}),
		Logger: log, Now: s.Now,
	}
	for _, a := range s.Adjust {
		if a != nil {
			a(&opts)
		}
	}
	srv, err := server.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return srv, opts
}

// Serve is New on an httptest.Server, closed when the test ends.
func Serve(tb testing.TB, store storage.Store, s Setup) (*httptest.Server, *server.Server, server.Options) {
	tb.Helper()
	srv, opts := New(tb, store, s)
	hs := httptest.NewServer(srv)
	tb.Cleanup(hs.Close)
	return hs, srv, opts
}

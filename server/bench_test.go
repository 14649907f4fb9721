package server

// Benchmarks of the per-request CPU work of each endpoint, without the
// network and, except where named SQLite, without a database, with
// allocation counts, so that a regression shows in review. CI runs them for
// one iteration (-benchtime=1x) so they keep compiling; it never asserts a
// timing. BENCHMARKS.md has figures and how they relate to the load test:
//
//	go test -run '^$' -bench . -benchmem ./server/
//
// The database-free handler benchmarks run over benchStore, an in-memory
// store with just what the token, introspection and key paths call. It
// exists to take the database out of the measurement, not to stand in for
// one in tests (DESIGN.md §6: tests use SQLite); the SQLite variants are
// there for reference and include SQLite's work (and fsyncs).

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

const (
	benchIssuer     = "https://auth.example.com"
	benchSecret     = "bench-client-secret"
	benchRSSecret   = "bench-rs-secret"
	benchUsername   = "ada"
	benchPassword   = "correct horse battery staple"
	benchUserID     = "user-ada"
	benchRemoteAddr = "127.0.0.1:40000"
)

// benchFastHash keeps the password-grant handler benchmark about everything
// but argon2id, which BenchmarkArgon2idVerify measures on its own.
var benchFastHash = passhash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// benchStore is an in-memory storage.Store with the methods the token,
// introspection and key paths call; any other panics (the embedded nil
// interface), which a benchmark run shows at once.
type benchStore struct {
	storage.Store
	mu       sync.Mutex
	families map[string]storage.Family
	users    map[string]storage.User // by ID
	keys     []storage.SigningKey
}

func newBenchStore() *benchStore {
	return &benchStore{families: map[string]storage.Family{}, users: map[string]storage.User{}}
}

func (s *benchStore) CreateFamily(_ context.Context, f storage.Family) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[f.UserID]; !ok || u.Disabled {
		return storage.ErrNotFound
	}
	if _, ok := s.families[f.ID]; ok {
		return storage.ErrAlreadyExists
	}
	s.families[f.ID] = f
	return nil
}

func (s *benchStore) GetFamily(_ context.Context, id string) (storage.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	if !ok {
		return storage.Family{}, storage.ErrNotFound
	}
	return f, nil
}

func (s *benchStore) RotateFamily(_ context.Context, id string, gen uint64, now, idleExpiresAt time.Time) (storage.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	switch {
	case !ok:
		return storage.Family{}, storage.ErrNotFound
	case f.Revoked():
		return storage.Family{}, storage.ErrFamilyRevoked
	case !f.Live(now):
		return storage.Family{}, storage.ErrFamilyExpired
	case f.Generation != gen:
		return f, storage.ErrStaleGeneration
	}
	f.Generation++
	f.RotatedAt, f.LastUsedAt, f.IdleExpiresAt = now, now, idleExpiresAt
	s.families[id] = f
	return f, nil
}

func (s *benchStore) RevokeFamily(_ context.Context, id, reason string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	if !ok {
		return storage.ErrNotFound
	}
	if !f.Revoked() {
		f.RevokedAt, f.RevokeReason = now, reason
		s.families[id] = f
	}
	return nil
}

func (s *benchStore) CreateUser(_ context.Context, u storage.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
	return nil
}

func (s *benchStore) GetUser(_ context.Context, id string) (storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return storage.User{}, storage.ErrNotFound
	}
	return u, nil
}

func (s *benchStore) GetUserByUsername(_ context.Context, username string) (storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Username == username {
			return u, nil
		}
	}
	return storage.User{}, storage.ErrNotFound
}

func (s *benchStore) CheckAccess(_ context.Context, _, familyID string) (storage.AccessCheck, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out storage.AccessCheck
	if f, ok := s.families[familyID]; ok {
		out.Family, out.Username = f, s.users[f.UserID].Username
	}
	return out, nil
}

func (s *benchStore) GetThrottle(context.Context, string) (storage.Throttle, error) {
	return storage.Throttle{}, storage.ErrNotFound
}

func (s *benchStore) ReserveAttempts(_ context.Context, keys []storage.Reservation, _ time.Time) (storage.ReserveResult, error) {
	res := storage.ReserveResult{Refused: -1}
	for _, k := range keys {
		res.States = append(res.States, storage.Throttle{Key: k.Key, Pending: 1})
	}
	return res, nil
}

func (s *benchStore) ResolveAttempts(context.Context, []storage.Resolution, time.Time) error {
	return nil
}

func (s *benchStore) AddressLastSeen(context.Context, string, string) (time.Time, error) {
	return time.Time{}, nil
}

func (s *benchStore) RememberAddress(context.Context, string, string, time.Time, int) error {
	return nil
}

func (s *benchStore) CreateSigningKey(_ context.Context, k storage.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	return nil
}

func (s *benchStore) ListSigningKeys(context.Context) ([]storage.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]storage.SigningKey(nil), s.keys...), nil
}

func (s *benchStore) Ping(context.Context) error { return nil }
func (s *benchStore) Close() error               { return nil }

func benchBasic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// benchRegistry: a confidential client with every grant (as a first-party
// app would have) and a resource server that introspects.
func benchRegistry(b *testing.B) *clients.Registry {
	b.Helper()
	reg, err := clients.New([]clients.Spec{
		{ID: "bench", SecretHash: clients.SHA256Hash(benchSecret),
			GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials},
			Scopes:     []string{"read", "write"}, DefaultScopes: []string{"read"},
			Audience: []string{"https://api.example.com"}},
		{ID: "rs", SecretHash: clients.SHA256Hash(benchRSSecret), Introspect: true, Resources: []string{"https://api.example.com"}},
	}, clients.Defaults{
		AccessTokenTTL: 15 * time.Minute, RefreshIdleTTL: 120 * time.Hour,
		RefreshAbsoluteTTL: 720 * time.Hour, Audience: []string{benchIssuer},
	}, func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	return reg
}

func benchKeys(b *testing.B, store storage.Store, alg string) *Keys {
	b.Helper()
	k, err := NewKeys(context.Background(), store, bytes.Repeat([]byte{7}, 32), KeysOptions{
		Algorithm: alg, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchAddUser(b *testing.B, store storage.Store) {
	b.Helper()
	h, err := passhash.Hash(benchPassword, benchFastHash)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	u := storage.User{ID: benchUserID, Username: benchUsername, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
	if err := store.CreateUser(context.Background(), u); err != nil {
		b.Fatal(err)
	}
}

// benchRequest is a token-endpoint style POST, as net/http hands it to the
// handler.
func benchRequest(path, auth, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.RemoteAddr = benchRemoteAddr
	return r
}

// benchField cuts a string field out of a JSON response (cheaper than
// decoding it, so the benchmark measures the server, not itself).
func benchField(body []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(body, key)
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// benchServer is the whole handler (routing, form parsing, client
// authentication, go-oauth2, the grant, signing, JSON) over store.
type benchServer struct {
	h     http.Handler
	basic string
	rs    string
}

func newBenchServer(b *testing.B, store storage.Store) *benchServer {
	b.Helper()
	benchAddUser(b, store)
	srv, err := New(Options{
		Issuer: benchIssuer, Store: store, Clients: benchRegistry(b), Keys: benchKeys(b, store, AlgES256),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{h: srv, basic: benchBasic("bench", benchSecret), rs: benchBasic("rs", benchRSSecret)}
}

func (s *benchServer) do(b *testing.B, path, auth, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, benchRequest(path, auth, body))
	if rec.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
	}
	return rec
}

func (s *benchServer) login(b *testing.B) *httptest.ResponseRecorder {
	return s.do(b, PathToken, s.basic, "grant_type=password&username="+benchUsername+"&password="+url.QueryEscape(benchPassword))
}

// benchHandlers runs each endpoint's whole handler over the store open returns.
func benchHandlers(b *testing.B, open func(b *testing.B) storage.Store) {
	b.Run("refresh", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		rt := benchField(s.login(b).Body.Bytes(), "refresh_token")
		b.ReportAllocs()
		for b.Loop() {
			// Each refresh presents the token the previous one returned.
			rec := s.do(b, PathToken, s.basic, "grant_type=refresh_token&refresh_token="+rt)
			rt = benchField(rec.Body.Bytes(), "refresh_token")
		}
	})
	b.Run("client_credentials", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		b.ReportAllocs()
		for b.Loop() {
			s.do(b, PathToken, s.basic, "grant_type=client_credentials")
		}
	})
	b.Run("password_fasthash", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		b.ReportAllocs()
		for b.Loop() {
			s.login(b)
		}
	})
	b.Run("introspect", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		at := benchField(s.login(b).Body.Bytes(), "access_token")
		body := "token=" + at
		b.ReportAllocs()
		for b.Loop() {
			rec := s.do(b, PathIntrospect, s.rs, body)
			if !bytes.Contains(rec.Body.Bytes(), []byte(`"active":true`)) {
				b.Fatalf("introspection: %s", rec.Body.String())
			}
		}
	})
}

// BenchmarkHandler is each endpoint's CPU work without the network or a
// database (in-memory store, ES256 keys, argon2id replaced by a cheap hash).
func BenchmarkHandler(b *testing.B) {
	benchHandlers(b, func(*testing.B) storage.Store { return newBenchStore() })
}

// BenchmarkHandlerSQLite is BenchmarkHandler over a real SQLite file: it
// INCLUDES SQLite (queries, and an fsync per write with synchronous=FULL).
func BenchmarkHandlerSQLite(b *testing.B) {
	benchHandlers(b, func(b *testing.B) storage.Store { return sqlstoretest.SQLite(b) })
}

// BenchmarkParseAndAuthenticate is the first step of every request: the
// form (size cap, no repeats, UTF-8) and client authentication (Basic,
// form-urlencoded; a sha256 secret hash, so no slow hash).
func BenchmarkParseAndAuthenticate(b *testing.B) {
	reg := benchRegistry(b)
	basic := benchBasic("bench", benchSecret)
	rt := "ktr1.4i7T6Skbj3HMoAE4uyQ23w.12.lEqV7mGrDm3QzmI0cfj0lYwO0bTg6w5Xr4oPkbAq4dE"
	for _, tc := range []struct{ name, body string }{
		{"refresh", "grant_type=refresh_token&refresh_token=" + rt},
		{"client_credentials", "grant_type=client_credentials&scope=read"},
		{"password", "grant_type=password&username=ada&password=" + url.QueryEscape(benchPassword)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r := &http.Request{
					Method: http.MethodPost, URL: &url.URL{Path: PathToken},
					Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {basic}},
					Body:   io.NopCloser(strings.NewReader(tc.body)), ContentLength: int64(len(tc.body)),
				}
				form, err := parseForm(w, r)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := authenticateClient(r, form, reg, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchClaims() accessClaims {
	now := time.Now()
	return accessClaims{
		Issuer: benchIssuer, Subject: "yqeKL9eNOWHCcqHQkj8bdA", Audience: jsonAudience{"https://api.example.com"},
		IssuedAt: now.Unix(), Expiry: now.Add(15 * time.Minute).Unix(), ID: newID(),
		ClientID: "bench", Scope: "read", SessionID: "4i7T6Skbj3HMoAE4uyQ23w",
	}
}

var benchAlgorithms = []string{AlgES256, AlgEdDSA, AlgRS256}

// BenchmarkSignAccessToken is the signature of every token response:
// claims JSON, JWS signing and compact serialisation (go-jose).
func BenchmarkSignAccessToken(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k := benchKeys(b, newBenchStore(), alg)
			c := benchClaims()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.signAccessToken(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyAccessToken is introspection's signature check (and what
// an offline resource server pays per API call).
func BenchmarkVerifyAccessToken(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k, tok := benchSignedToken(b, alg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				k.verified.Purge() // a token not seen before: the signature is verified
				if _, err := k.parseAccessToken(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A token verified before (a resource server introspecting it again).
	b.Run("remembered", func(b *testing.B) {
		k, tok := benchSignedToken(b, AlgES256)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.parseAccessToken(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSignedToken returns keys of alg and an access token they signed.
func benchSignedToken(b *testing.B, alg string) (*Keys, string) {
	b.Helper()
	k := benchKeys(b, newBenchStore(), alg)
	tok, err := k.signAccessToken(context.Background(), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	return k, tok
}

// BenchmarkRefreshToken is the refresh token's own cost: minting one
// (HMAC-SHA256 and encoding), and parsing and verifying a presented one.
func BenchmarkRefreshToken(b *testing.B) {
	k := benchKeys(b, newBenchStore(), AlgES256)
	f := storage.Family{ID: newID(), Salt: newSalt(), KeyID: k.MACKeyID(), Generation: 41}
	b.Run("mint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = k.RefreshToken(f, f.Generation+1)
		}
	})
	b.Run("parse_verify", func(b *testing.B) {
		tok := k.RefreshToken(f, f.Generation)
		b.ReportAllocs()
		for b.Loop() {
			t, err := parseRefreshToken(tok)
			if err != nil || !k.verifyRefresh(f, t) {
				b.Fatal("refresh token did not verify")
			}
		}
	})
}

// benchDiscard is a ResponseWriter that keeps headers and drops the body.
type benchDiscard struct{ h http.Header }

func (d benchDiscard) Header() http.Header       { return d.h }
func (benchDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (benchDiscard) WriteHeader(int)             {}

// BenchmarkTokenResponseJSON is the response body of a refresh: headers
// and JSON encoding.
func BenchmarkTokenResponseJSON(b *testing.B) {
	k := benchKeys(b, newBenchStore(), AlgES256)
	at, err := k.signAccessToken(context.Background(), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	f := storage.Family{ID: newID(), Salt: newSalt(), KeyID: k.MACKeyID(), Generation: 7}
	resp := &tokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: 900,
		RefreshToken: k.RefreshToken(f, 7), RefreshExpiresIn: 432000, Scope: "read",
	}
	w := benchDiscard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		writeJSON(w, http.StatusOK, resp)
	}
}

// BenchmarkArgon2idVerify is one password check with the production
// parameters (passhash.Default): the password grant's bound is
// GOMAXPROCS / this time.
func BenchmarkArgon2idVerify(b *testing.B) {
	h, err := passhash.Hash(benchPassword, passhash.Default)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := passhash.Verify(h, benchPassword); err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}

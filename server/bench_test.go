package server

// Benchmarks of the per-request CPU work of each endpoint, without the
// network and, except where named SQLite, without a database, with
// allocation counts, so that a regression shows in review. CI runs them for
// one iteration (-benchtime=1x) so they keep compiling; it never asserts a
// timing. BENCHMARKS.md has figures and how they relate to the load test:
//
//	go test -run '^$' -bench . -benchmem ./server/...
//
// The database-free handler benchmarks run over storage/memstore, an
// in-memory store that passes the conformance suite (storagetest). It
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
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
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

func benchKeys(b *testing.B, store storage.SigningKeys, alg string) *keys.Keys {
	b.Helper()
	k, err := keys.New(context.Background(), store, bytes.Repeat([]byte{7}, 32), keys.Options{
		Algorithm: alg, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchAddUser(b *testing.B, store storage.Users) {
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
		Issuer: benchIssuer, Store: store, Clients: benchRegistry(b), Keys: benchKeys(b, store, keys.AlgES256),
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
	benchHandlers(b, func(*testing.B) storage.Store { return memstore.New() })
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

// benchDiscard is a ResponseWriter that keeps headers and drops the body.
type benchDiscard struct{ h http.Header }

func (d benchDiscard) Header() http.Header       { return d.h }
func (benchDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (benchDiscard) WriteHeader(int)             {}

// BenchmarkTokenResponseJSON is the response body of a refresh: headers
// and JSON encoding.
func BenchmarkTokenResponseJSON(b *testing.B) {
	k := benchKeys(b, memstore.New(), keys.AlgES256)
	at, err := k.SignAccessToken(context.Background(), tokens.AccessClaims{
		Issuer: benchIssuer, Subject: "yqeKL9eNOWHCcqHQkj8bdA", Audience: tokens.Audience{"https://api.example.com"},
		IssuedAt: time.Now().Unix(), Expiry: time.Now().Add(15 * time.Minute).Unix(), ID: tokens.NewID(),
		ClientID: "bench", Scope: "read", SessionID: "4i7T6Skbj3HMoAE4uyQ23w",
	})
	if err != nil {
		b.Fatal(err)
	}
	f := storage.Family{ID: tokens.NewID(), Salt: tokens.NewSalt(), KeyID: k.MACKeyID(), Generation: 7}
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

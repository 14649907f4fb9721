package server_test

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
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

const (
	benchIssuer     = "https://auth.example.com"
	benchSecret     = "bench-client-secret"
	benchRSSecret   = "bench-rs-secret"
	benchUsername   = "ada"
	benchPassword   = "correct horse battery staple"
	benchRemoteAddr = "127.0.0.1:40000"
)

// benchClients: a confidential client with every grant (as a first-party
// app would have) and a resource server that introspects.
func benchClients() []clients.Spec {
	return []clients.Spec{
		{ID: "bench", SecretHash: clients.SHA256Hash(benchSecret),
			GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials},
			Scopes:     []string{"read", "write"}, DefaultScopes: []string{"read"},
			Audience: []string{"https://api.example.com"}},
		{ID: "rs", SecretHash: clients.SHA256Hash(benchRSSecret), Introspect: true, Resources: []string{"https://api.example.com"}},
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

// newBenchServer: the password-grant handler benchmark runs with the kit's
// fast argon2id parameters, so it is about everything but argon2id, which
// BenchmarkArgon2idVerify measures on its own.
func newBenchServer(b *testing.B, store storage.Store) *benchServer {
	b.Helper()
	servertest.AddUser(b, store, benchUsername, benchPassword, time.Now().UTC())
	return newBenchInstance(b, store, nil)
}

// newBenchInstance is another instance over store, which already has the
// user: it shares the database and the master secret, not the memory. log
// nil: logs are discarded (slog.DiscardHandler: no access-log line is built).
func newBenchInstance(b *testing.B, store storage.Store, log *slog.Logger) *benchServer {
	b.Helper()
	srv, _ := servertest.New(b, store, servertest.Setup{Issuer: benchIssuer, Clients: benchClients(), Logger: log})
	return &benchServer{h: srv, basic: servertest.Basic("bench", benchSecret), rs: servertest.Basic("rs", benchRSSecret)}
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
	return s.do(b, server.PathToken, s.basic, "grant_type=password&username="+benchUsername+"&password="+url.QueryEscape(benchPassword))
}

// benchHandlers runs each endpoint's whole handler over the store open returns.
func benchHandlers(b *testing.B, open func(b *testing.B) storage.Store) {
	b.Run("refresh", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		rt := benchField(s.login(b).Body.Bytes(), "refresh_token")
		b.ReportAllocs()
		for b.Loop() {
			// Each refresh presents the token the previous one returned.
			rec := s.do(b, server.PathToken, s.basic, "grant_type=refresh_token&refresh_token="+rt)
			rt = benchField(rec.Body.Bytes(), "refresh_token")
		}
	})
	// The refresh with the log as keyturn serve writes it with log.format
	// json at info: one JSON access-log line per request (to io.Discard, so
	// the write itself, a syscall in serve, is not counted).
	b.Run("refresh_logged", func(b *testing.B) {
		store := open(b)
		servertest.AddUser(b, store, benchUsername, benchPassword, time.Now().UTC())
		s := newBenchInstance(b, store, slog.New(slog.NewJSONHandler(io.Discard, nil)))
		rt := benchField(s.login(b).Body.Bytes(), "refresh_token")
		b.ReportAllocs()
		for b.Loop() {
			rec := s.do(b, server.PathToken, s.basic, "grant_type=refresh_token&refresh_token="+rt)
			rt = benchField(rec.Body.Bytes(), "refresh_token")
		}
	})
	// A refresh on an instance that has never seen the session, as behind
	// a load balancer with many sessions: each session is logged in on one
	// instance (before the timer) and refreshed once on another.
	b.Run("refresh_unseen", func(b *testing.B) {
		store := open(b)
		login, other := newBenchServer(b, store), newBenchInstance(b, store, nil)
		rts := make([]string, b.N)
		for i := range rts {
			rts[i] = benchField(login.login(b).Body.Bytes(), "refresh_token")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			other.do(b, server.PathToken, other.basic, "grant_type=refresh_token&refresh_token="+rts[i])
		}
	})
	b.Run("client_credentials", func(b *testing.B) {
		s := newBenchServer(b, open(b))
		b.ReportAllocs()
		for b.Loop() {
			s.do(b, server.PathToken, s.basic, "grant_type=client_credentials")
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
			rec := s.do(b, server.PathIntrospect, s.rs, body)
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

// BenchmarkHandlerPostgres is BenchmarkHandler over PostgreSQL (skipped
// without KEYTURN_TEST_DATABASE_URL): it INCLUDES the round trips and
// PostgreSQL's commits.
func BenchmarkHandlerPostgres(b *testing.B) {
	benchHandlers(b, func(b *testing.B) storage.Store { return sqlstoretest.Postgres(b) })
}

// BenchmarkParseAndAuthenticate is the first step of every request: the
// form (size cap, no repeats, UTF-8) and client authentication (Basic,
// form-urlencoded; a sha256 secret hash, so no slow hash).
func BenchmarkParseAndAuthenticate(b *testing.B) {
	reg := servertest.Registry(b, benchIssuer, benchClients(), nil)
	basic := servertest.Basic("bench", benchSecret)
	rt := "ktr2.4i7T6Skbj3HMoAE4uyQ23w.12.lEqV7mGrDm3QzmI0cfj0lYwO0bTg6w5Xr4oPkbAq4dE"
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
					Method: http.MethodPost, URL: &url.URL{Path: server.PathToken},
					Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {basic}},
					Body:   io.NopCloser(strings.NewReader(tc.body)), ContentLength: int64(len(tc.body)),
				}
				if err := server.ParseAndAuthenticate(w, r, reg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package server_test

import (
	"bytes"
	"encoding/json"
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
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// testClock is the kit's injectable clock; tests advance it, never sleep.
type testClock = servertest.Clock

func newClock() *testClock { return servertest.NewClock() }

// Client secrets of the test clients. confASecret has every character that
// RFC 6749 §2.3.1 form-urlencoding must escape in Basic credentials.
const (
	confASecret = "s3c:r+t/%é"
	confBSecret = "b-secret"
	graceSecret = "grace-secret"
	ccSecret    = "cc-secret"
	shortSecret = "short-secret"
	rs2Secret   = "rs2-secret"
	pwOnly      = "pw-only-secret"
	userPass    = "correct horse"
)

func dur(d time.Duration) *time.Duration { return &d }

func testClients() []clients.Spec {
	all := []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials}
	return []clients.Spec{
		{ID: "conf-a", SecretHash: clients.SHA256Hash(confASecret), GrantTypes: all,
			Scopes: []string{"read", "write"}, DefaultScopes: []string{"read"},
			Audience: []string{"https://api.example.com", "https://other.example.com"}},
		{ID: "conf-b", SecretHash: clients.SHA256Hash(confBSecret), GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
			Scopes: []string{"read", "write"}, DefaultScopes: []string{"read", "write"}, Introspect: true, Resources: []string{testIssuer}},
		{ID: "short", SecretHash: clients.SHA256Hash(shortSecret), GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
			Scopes: []string{"read"}, DefaultScopes: []string{"read"}, RefreshIdleTTL: dur(5 * time.Minute)},
		{ID: "public-m", Public: true, GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
			Scopes: []string{"read"}, DefaultScopes: []string{"read"}},
		{ID: "grace", SecretHash: clients.SHA256Hash(graceSecret), GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
			Scopes: []string{"read"}, DefaultScopes: []string{"read"}, RefreshReuseGrace: dur(10 * time.Second)},
		{ID: "cc-only", SecretHash: clients.SHA256Hash(ccSecret), GrantTypes: []string{clients.GrantClientCredentials},
			Scopes: []string{"read"}, Introspect: true,
			Resources: []string{"https://api.example.com", "https://other.example.com", testIssuer}},
		{ID: "rs-2", SecretHash: clients.SHA256Hash(rs2Secret), Introspect: true, Resources: []string{"https://other.example.com"}},
		// The password grant without refresh_token: no refresh token.
		{ID: "pw-only", SecretHash: clients.SHA256Hash(pwOnly), GrantTypes: []string{clients.GrantPassword},
			Scopes: []string{"read"}, DefaultScopes: []string{"read"}},
		// A secret chosen by a person (short, from the environment):
		// guessable, so its failed authentications are throttled.
		{ID: "human", SecretEnv: humanSecretEnv, GrantTypes: []string{clients.GrantClientCredentials},
			Scopes: []string{"read"}},
	}
}

// humanSecretEnv holds the "human" client's secret, humanSecret.
const (
	humanSecretEnv = "KEYTURN_TEST_HUMAN_SECRET"
	humanSecret    = "tr0ub4dor&3"
)

// testEnv resolves the test clients' secret_env references.
func testEnv(name string) (string, bool) {
	if name == humanSecretEnv {
		return humanSecret, true
	}
	return "", false
}

// syncBuffer collects logs from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type testServer struct {
	*httptest.Server
	t     *testing.T
	store storage.Store
	clock *testClock
	keys  *keys.Keys
	logs  *syncBuffer
	srv   *server.Server
}

const testIssuer = "https://auth.example.com"

type backend int

const (
	sqlite backend = iota
	postgres
)

func (b backend) String() string { return [...]string{"SQLite", "Postgres"}[b] }

var backends = []backend{sqlite, postgres}

func openStore(t *testing.T, b backend) storage.Store {
	t.Helper()
	if b == postgres {
		return sqlstoretest.Postgres(t)
	}
	return sqlstoretest.SQLite(t)
}

// newTestServer runs the real router over a real store with the test clients.
func newTestServer(t *testing.T, b backend) *testServer {
	t.Helper()
	return newTestServerOn(t, openStore(t, b), nil)
}

// newTestServerOn serves store; each adjust that is not nil changes the
// options, in order.
func newTestServerOn(t *testing.T, store storage.Store, adjust ...func(*server.Options)) *testServer {
	t.Helper()
	clock := newClock()
	logs := &syncBuffer{}
	hs, srv, opts := servertest.Serve(t, store, servertest.Setup{
		Issuer: testIssuer, Clients: testClients(), Env: testEnv, Now: clock.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Adjust: adjust,
	})
	ts := &testServer{Server: hs, t: t, store: store, clock: clock, keys: opts.Keys, logs: logs, srv: srv}
	if _, err := store.GetUserByUsername(t.Context(), "ada"); err != nil {
		ts.addUser("ada", userPass)
	}
	return ts
}

func (ts *testServer) addUser(name, password string) storage.User {
	ts.t.Helper()
	return servertest.AddUser(ts.t, ts.store, name, password, ts.clock.Now())
}

// basic encodes client credentials as RFC 6749 §2.3.1 requires.
var basic = servertest.Basic

type call struct {
	method string
	path   string
	auth   string // Authorization header
	xff    string // X-Forwarded-For header
	ctype  string // Content-Type; default form
	form   url.Values
	body   string // raw body, instead of form
}

type reply struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r reply) str(key string) string { s, _ := r.json[key].(string); return s }

func (ts *testServer) do(c call) reply {
	ts.t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = server.PathToken
	}
	body := c.body
	if c.form != nil {
		body = c.form.Encode()
	}
	req, err := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if c.ctype == "" {
		c.ctype = "application/x-www-form-urlencoded"
	}
	req.Header.Set("Content-Type", c.ctype)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.xff != "" {
		req.Header.Set("X-Forwarded-For", c.xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// token posts form to the token endpoint as client conf-a (Basic).
func (ts *testServer) token(auth string, form url.Values) reply {
	ts.t.Helper()
	return ts.do(call{auth: auth, form: form})
}

func pw(user, pass string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
}

func refresh(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

var confA = basic("conf-a", confASecret)

// login runs the password grant for ada as conf-a and returns the reply.
func (ts *testServer) login(auth string) reply {
	ts.t.Helper()
	r := ts.token(auth, pw("ada", userPass))
	if r.status != http.StatusOK {
		ts.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return r
}

// wantError asserts an RFC 6749 §5.2 error response.
func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("Cache-Control/Pragma = %q/%q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=") {
		t.Errorf("401 without WWW-Authenticate Basic: %q", r.header.Get("WWW-Authenticate"))
	}
	if d := r.str("error_description"); strings.ContainsAny(d, "\"\\") {
		t.Errorf("error_description has characters RFC 6749 §5.2 forbids: %q", d)
	}
}

// logger is a logger writing to the test server's log buffer.
func (ts *testServer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(ts.logs, nil))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/passhash"
)

// rawBasic is Basic credentials as curl -u and several Python libraries
// send them: without the form-encoding RFC 6749 §2.3.1 asks for.
func rawBasic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// countingClients is testClients plus extra, in a registry whose argon2id
// hashes are counted and bounded by slots.
func countingClients(t *testing.T, slots int, extra ...clients.Spec) (*clients.Registry, *atomic.Int64, func(func())) {
	t.Helper()
	var hashes atomic.Int64
	var mu sync.Mutex
	var hook func()
	reg, err := clients.NewWithSlowChecks(append(testClients(), extra...), clients.Defaults{
		AccessTokenTTL: 15 * time.Minute, RefreshIdleTTL: 120 * time.Hour,
		RefreshAbsoluteTTL: 720 * time.Hour, Audience: []string{testIssuer},
	}, func(name string) (string, bool) {
		if v, ok := map[string]string{"ROT_NEW_SECRET": "rot-env-new"}[name]; ok {
			return v, ok
		}
		return testEnv(name)
	}, clients.SlowChecks{Limiter: passhash.NewLimiter(slots, 0), Verify: func(encoded, secret string) (bool, error) {
		hashes.Add(1)
		mu.Lock()
		h := hook
		mu.Unlock()
		if h != nil {
			h()
		}
		return passhash.Verify(encoded, secret)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return reg, &hashes, func(f func()) { mu.Lock(); hook = f; mu.Unlock() }
}

// TestPublicClientBasicEmptyPassword: RFC 6749 §2.3.1, §3.2.1: a public
// client sending Basic with an empty password is identified like one
// sending client_id in the body (golang.org/x/oauth2 sends exactly this);
// a public client sending a password is refused.
func TestPublicClientBasicEmptyPassword(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			if r := ts.token(basic("public-m", ""), pw("ada", userPass)); r.status != 200 {
				t.Fatalf("Basic public-m with empty password: %d %s", r.status, r.body)
			}
			if r := ts.token(rawBasic("public-m", ""), pw("ada", userPass)); r.status != 200 {
				t.Fatalf("raw Basic public-m with empty password: %d %s", r.status, r.body)
			}
			wantError(t, ts.token(basic("public-m", "anything"), pw("ada", userPass)), 401, "invalid_client")
			wantError(t, ts.token(basic("public-m", "anything"), pw("ada", "wrong")), 401, "invalid_client")
			// A confidential client still needs its secret.
			wantError(t, ts.token(basic("conf-a", ""), pw("ada", userPass)), 401, "invalid_client")

			ctx := t.Context()
			cfg := &oauth2.Config{
				ClientID: "public-m",
				Endpoint: oauth2.Endpoint{TokenURL: ts.URL + server.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
			}
			tok, err := cfg.PasswordCredentialsToken(ctx, "ada", userPass)
			if err != nil {
				t.Fatalf("x/oauth2, public client, AuthStyleInHeader: %v", err)
			}
			tok.Expiry = time.Now().Add(-time.Minute) // let the TokenSource refresh it
			if _, err := cfg.TokenSource(ctx, tok).Token(); err != nil {
				t.Fatalf("x/oauth2 refresh, public client, AuthStyleInHeader: %v", err)
			}
		})
	}
}

// TestIntrospectionBurstSharesOneHash: a resource server whose secret is
// argon2id-hashed starts with sixteen concurrent introspections, with one
// slow-check slot: every one is answered 200, and the hash runs once.
func TestIntrospectionBurstSharesOneHash(t *testing.T) {
	const rsSecret = "a chosen resource-server secret"
	h := servertest.HashPassword(t, rsSecret)
	reg, hashes, setHook := countingClients(t, 1, clients.Spec{ID: "rs-argon", SecretHash: h, Introspect: true, Resources: []string{testIssuer}})
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) { o.Clients = reg })
	// The first hash holds the only slot until all sixteen requests are in.
	release := make(chan struct{})
	setHook(func() { <-release })
	const n = 16
	replies := make(chan reply, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { replies <- ts.introspect(basic("rs-argon", rsSecret), "not-a-token") })
	}
	ts.waitInFlight(n)
	close(release)
	wg.Wait()
	close(replies)
	for r := range replies {
		if r.status != 200 || string(r.body) != "{\"active\":false}\n" {
			t.Errorf("introspection: %d %s, want 200 inactive", r.status, r.body)
		}
	}
	if got := hashes.Load(); got != 1 {
		t.Fatalf("%d argon2id hashes for %d identical introspections, want 1", got, n)
	}
}

// waitInFlight returns once n requests are being served (the in-flight
// gauge; /metrics itself is not counted).
func (ts *testServer) waitInFlight(n int) {
	ts.t.Helper()
	want := "keyturn_http_requests_in_flight " + itoa(n) + "\n"
	for {
		if _, body := ts.get(server.PathMetrics); strings.Contains(body, want) {
			return
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestBasicSecretWithoutFormEncoding: a secret with '+', '/' and '=' (what
// `openssl rand -base64 32` makes), sent in Basic without the form-encoding
// of RFC 6749 §2.3.1 (curl -u, authlib, requests-oauthlib), is still
// accepted, as is one with a '%' not followed by hex digits; an argon2id
// check is not doubled when both readings are the same.
func TestBasicSecretWithoutFormEncoding(t *testing.T) {
	const (
		b64Secret  = "q8+Wd/Zx0V+1o3k=" // decodes to "q8 Wd/Zx0V 1o3k="
		pctSecret  = "50%off-today"     // does not form-decode at all
		b64Chosen  = "chosen+secret/=="
		wrongPlain = "wrongsecret"
	)
	h := servertest.HashPassword(t, b64Chosen)
	cc := []string{clients.GrantClientCredentials}
	reg, hashes, _ := countingClients(t, 1,
		clients.Spec{ID: "b64", SecretHash: clients.SHA256Hash(b64Secret), GrantTypes: cc},
		clients.Spec{ID: "pct", SecretHash: clients.SHA256Hash(pctSecret), GrantTypes: cc},
		clients.Spec{ID: "b64-argon", SecretHash: h, GrantTypes: cc},
	)
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServerOn(t, openStore(t, b), func(o *server.Options) { o.Clients = reg })
			form := url.Values{"grant_type": {"client_credentials"}}
			for _, tc := range []struct{ id, secret string }{{"b64", b64Secret}, {"pct", pctSecret}, {"b64-argon", b64Chosen}} {
				if r := ts.token(rawBasic(tc.id, tc.secret), form); r.status != 200 {
					t.Errorf("%s, secret sent raw: %d %s", tc.id, r.status, r.body)
				}
				if r := ts.token(basic(tc.id, tc.secret), form); r.status != 200 {
					t.Errorf("%s, secret form-encoded: %d %s", tc.id, r.status, r.body)
				}
				wantError(t, ts.token(rawBasic(tc.id, tc.secret+"x"), form), 401, "invalid_client")
			}
			// A wrong secret that reads the same both ways costs one hash.
			before := hashes.Load()
			wantError(t, ts.token(rawBasic("b64-argon", wrongPlain), form), 401, "invalid_client")
			if n := hashes.Load() - before; n != 1 {
				t.Errorf("a wrong plain secret cost %d argon2id hashes, want 1", n)
			}
		})
	}
}

// TestSecretRotation: a client with several secrets (secret_hashes,
// secret_envs) authenticates with any of them; after the old one is
// removed and the clients reloaded, only the new ones do.
func TestSecretRotation(t *testing.T) {
	const oldSecret, newSecret = "rot-old", "rot-new"
	rot := clients.Spec{ID: "rot", SecretHashes: []string{clients.SHA256Hash(newSecret), clients.SHA256Hash(oldSecret)},
		SecretEnvs: []string{"ROT_NEW_SECRET"}, GrantTypes: []string{clients.GrantClientCredentials}}
	reg, _, _ := countingClients(t, 0, rot)
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServerOn(t, openStore(t, b), func(o *server.Options) { o.Clients = reg })
			form := url.Values{"grant_type": {"client_credentials"}}
			for _, s := range []string{newSecret, oldSecret, "rot-env-new"} {
				if r := ts.token(basic("rot", s), form); r.status != 200 {
					t.Errorf("secret %q: %d %s", s, r.status, r.body)
				}
			}
			rot.SecretHashes = rot.SecretHashes[:1]
			after, _, _ := countingClients(t, 0, rot)
			ts.srv.SetClients(after)
			wantError(t, ts.token(basic("rot", oldSecret), form), 401, "invalid_client")
			if r := ts.token(basic("rot", newSecret), form); r.status != 200 {
				t.Errorf("new secret after removing the old: %d %s", r.status, r.body)
			}
		})
	}
}

// TestClientAuthFailuresLoggedAndCounted: every failed client
// authentication is one warning with its reason, the client id only when
// it is a registered client, and the source address (X-Forwarded-For only
// from a trusted proxy); it is counted by reason; no secret is logged.
// Every access-log line carries the source address.
func TestClientAuthFailuresLoggedAndCounted(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) {
		o.Login.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	cc := url.Values{"grant_type": {"client_credentials"}}
	const wrong, intruder = "wrong-secret-value", "intruder-<script>"
	ts.do(call{auth: basic("conf-a", wrong), form: cc, xff: "203.0.113.7"})
	ts.do(call{auth: basic(intruder, wrong), form: cc, xff: "203.0.113.8"})
	ts.do(call{form: cc})
	ts.do(call{auth: "Basic !!!", form: cc})
	ts.do(call{auth: basic("public-m", wrong), form: pw("ada", userPass)})
	ts.do(call{form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}}})
	ts.do(call{path: server.PathIntrospect, auth: basic("cc-only", wrong), form: tokenForm("x")})
	ts.do(call{path: server.PathRevoke, form: url.Values{"client_id": {intruder}, "client_secret": {wrong}, "token": {"x"}}})
	ts.token(confA, cc) // succeeds: no warning

	type line struct {
		Msg      string `json:"msg"`
		Level    string `json:"level"`
		Reason   string `json:"reason"`
		ClientID string `json:"client_id"`
		Addr     string `json:"addr"`
		Path     string `json:"path"`
	}
	var warnings, access []line
	logs := ts.logs.String()
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var e line
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		switch e.Msg {
		case "client authentication failed":
			warnings = append(warnings, e)
		case "request":
			access = append(access, e)
		}
	}
	want := []line{
		{Reason: "wrong_secret", ClientID: "conf-a", Addr: "203.0.113.7"},
		{Reason: "unknown_client", ClientID: "unknown client", Addr: "203.0.113.8"},
		{Reason: "missing", ClientID: "unknown client", Addr: "127.0.0.1"},
		{Reason: "malformed", ClientID: "unknown client", Addr: "127.0.0.1"},
		{Reason: "public_client_secret", ClientID: "public-m", Addr: "127.0.0.1"},
		{Reason: "no_secret", ClientID: "conf-a", Addr: "127.0.0.1"},
		{Reason: "wrong_secret", ClientID: "cc-only", Addr: "127.0.0.1"},
		{Reason: "unknown_client", ClientID: "unknown client", Addr: "127.0.0.1"},
	}
	if len(warnings) != len(want) {
		t.Fatalf("%d client authentication warnings, want %d:\n%s", len(warnings), len(want), logs)
	}
	for i, w := range warnings {
		if w.Level != "WARN" || w.Reason != want[i].Reason || w.ClientID != want[i].ClientID || w.Addr != want[i].Addr {
			t.Errorf("warning %d = %+v, want %+v", i, w, want[i])
		}
	}
	if len(access) != 9 {
		t.Fatalf("%d access lines, want 9", len(access))
	}
	for i, a := range access {
		if _, err := netip.ParseAddr(a.Addr); err != nil {
			t.Errorf("access line %d without a source address: %+v", i, a)
		}
	}
	if access[0].Addr != "203.0.113.7" {
		t.Errorf("access line addr %q, want the forwarded 203.0.113.7", access[0].Addr)
	}
	for _, s := range []string{wrong, "intruder", confASecret} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}

	_, body := ts.get(server.PathMetrics)
	for _, m := range []string{
		`keyturn_client_auth_failures_total{reason="wrong_secret"} 2`,
		`keyturn_client_auth_failures_total{reason="unknown_client"} 2`,
		`keyturn_client_auth_failures_total{reason="missing"} 1`,
		`keyturn_client_auth_failures_total{reason="malformed"} 1`,
		`keyturn_client_auth_failures_total{reason="public_client_secret"} 1`,
		`keyturn_client_auth_failures_total{reason="no_secret"} 1`,
	} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if strings.Contains(body, "intruder") {
		t.Error("metrics echo a client id that is not registered")
	}
}

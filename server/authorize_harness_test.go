package server_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
)

// The authorization endpoint's fixtures (the browser-flow clients of the
// protocol checklist): web-a and web-b confidential third-party web apps,
// web-1p a first-party one, spa-a a public single-page app, spa-1p a
// first-party public app, native-a a public native app with loopback and
// private-use redirects, xss-c a client whose name is markup.
const (
	webASecret  = "web-a-s3cret"
	webBSecret  = "web-b-s3cret"
	web1PSecret = "web-1p-s3cret"
	xssName     = `<img src=x onerror=alert(1)>`
)

func azClients() []clients.Spec {
	code := []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
	scopes := []string{"openid", "profile", "email", "read", "write"}
	web := func(id, secret, name string, uris ...string) clients.Spec {
		return clients.Spec{ID: id, Name: name, SecretHash: clients.SHA256Hash(secret), GrantTypes: code,
			Scopes: scopes, DefaultScopes: []string{"read"}, RedirectURIs: uris,
			Audience: []string{"https://api.example.com"}}
	}
	pub := func(id, name string, uris ...string) clients.Spec {
		return clients.Spec{ID: id, Name: name, Public: true, GrantTypes: code, Scopes: scopes,
			DefaultScopes: []string{"read"}, RedirectURIs: uris}
	}
	w1p := web("web-1p", web1PSecret, "Web First", "https://first.test/cb")
	w1p.FirstParty = true
	s1p := pub("spa-1p", "Our App", "https://spa1p.test/cb")
	s1p.FirstParty = true
	return []clients.Spec{
		web("web-a", webASecret, "Web A", "https://rp.test/cb", "https://rp.test/cb2?tenant=7"),
		web("web-b", webBSecret, "Web B", "https://rpb.test/cb"),
		w1p, s1p,
		pub("spa-a", "Spa A", "https://spa.test/cb"),
		pub("native-a", "Native A", "http://127.0.0.1/cb", "http://[::1]/cb", "com.example.app:/oauth2redirect"),
		pub("xss-c", xssName, "https://xss.test/cb"),
	}
}

// C1 is RFC 7636 Appendix B's challenge (of verifier V1).
const (
	v1 = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	c1 = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// newAZServer is the test server with the browser-flow clients and users
// alice and bob besides ada.
func newAZServer(t *testing.T, b backend, adjust ...func(*server.Options)) *testServer {
	t.Helper()
	specs := append(testClients(), azClients()...)
	adjust = append([]func(*server.Options){func(o *server.Options) {
		o.Clients = servertest.Registry(t, testIssuer, specs, testEnv)
	}}, adjust...)
	ts := newTestServerOn(t, openStore(t, b), adjust...)
	ts.addUser("alice", "alice-pass")
	ts.addUser("bob", "b0b-pass")
	return ts
}

// browser is a fresh browser (an empty cookie jar) on ts.
func (ts *testServer) browser() *servertest.Browser {
	return servertest.NewBrowser(ts.t, testIssuer, ts.URL)
}

// az is an authorization request for client to its redirect URI uri ("":
// none) with challenge C1 and a random state, changed by kv pairs (a value
// "-" deletes the parameter).
func az(client, uri string, kv ...string) url.Values {
	v := servertest.AuthorizeParams(client, uri, servertest.S256(v1))
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "-" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// wantPH asserts the headers every HTML page carries.
func wantPH(t *testing.T, p *servertest.Page) {
	t.Helper()
	h := p.Header
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "form-action") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header on a page")
	}
	if strings.Contains(p.Body, "<script") || strings.Contains(p.Body, "style=") {
		t.Errorf("inline script or style on the page")
	}
}

// wantPage asserts an HTML page of kind with status.
func wantPage(t *testing.T, p *servertest.Page, status int, kind string) {
	t.Helper()
	if p.Status != status || p.Kind != kind || p.Location != nil {
		t.Fatalf("got %d %q (Location %v), want a %d %s page:\n%s", p.Status, p.Kind, p.Location, status, kind, p.Body)
	}
	wantPH(t, p)
}

// wantEPAGE asserts the endpoint's own error page: 400, no redirect, and
// nothing on it pointing anywhere but Keyturn.
func wantEPAGE(t *testing.T, p *servertest.Page) {
	t.Helper()
	wantPage(t, p, http.StatusBadRequest, "error")
	for _, m := range regexp.MustCompile(`(?:href|src|action)="([^"]*)"`).FindAllStringSubmatch(p.Body, -1) {
		if !strings.HasPrefix(m[1], testIssuer+"/") {
			t.Errorf("error page points at %q", m[1])
		}
	}
	if strings.Contains(p.Body, "http-equiv") || strings.Contains(p.Body, "<form") {
		t.Errorf("error page with a form or meta refresh")
	}
}

// wantCB asserts an error redirect to exactly the redirect URI uri with
// error code, the state sent (state "": none), iss, and no code.
func wantCB(t *testing.T, p *servertest.Page, uri, code, state string) {
	t.Helper()
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther || p.Location == nil {
		t.Fatalf("got %d %q, want a redirect with error %s:\n%s", p.Status, p.Kind, code, p.Body)
	}
	loc := p.Location.String()
	if !strings.HasPrefix(loc, uri+"?") && !strings.HasPrefix(loc, uri+"&") {
		t.Fatalf("Location %q is not on %q", loc, uri)
	}
	q := p.Query()
	if q.Get("error") != code {
		t.Fatalf("error = %q (%q), want %s", q.Get("error"), q.Get("error_description"), code)
	}
	if _, has := q["code"]; has {
		t.Errorf("error redirect with a code")
	}
	if got, has := q["state"]; state == "" && has || state != "" && (len(got) != 1 || got[0] != state) {
		t.Errorf("state = %q, want %q", got, state)
	}
	if q.Get("iss") != testIssuer {
		t.Errorf("iss = %q", q.Get("iss"))
	}
	if !regexp.MustCompile(`^[\x20-\x21\x23-\x5B\x5D-\x7E]*$`).MatchString(q.Get("error_description")) {
		t.Errorf("error_description %q has characters RFC 6749 §4.1.2.1 forbids", q.Get("error_description"))
	}
}

// wantCode asserts a redirect to uri with a code, the state sent and iss,
// and returns the code.
func wantCode(t *testing.T, p *servertest.Page, uri, state string) string {
	t.Helper()
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther || p.Location == nil {
		t.Fatalf("got %d %q, want a redirect with a code:\n%s", p.Status, p.Kind, p.Body)
	}
	loc := p.Location.String()
	if !strings.HasPrefix(loc, uri+"?code=") && !strings.HasPrefix(loc, uri+"&code=") {
		t.Fatalf("Location %q does not start with %q?code=", loc, uri)
	}
	q := p.Query()
	if len(q["code"]) != 1 || q.Get("error") != "" || q.Get("iss") != testIssuer || q.Get("state") != state {
		t.Fatalf("Location %q: want one code, state %q, iss", loc, state)
	}
	if p.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("redirect with a code without Referrer-Policy: no-referrer")
	}
	return q.Get("code")
}

// signIn runs a first flow for client as user in br (login, and consent if
// asked), so that br holds a session.
func signIn(t *testing.T, br *servertest.Browser, client, uri, user, pass string) {
	t.Helper()
	loc := br.Flow(az(client, uri), user, pass)
	if loc.Query().Get("code") == "" {
		t.Fatalf("sign-in flow ended at %v", loc)
	}
}

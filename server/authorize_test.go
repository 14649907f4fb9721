package server_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
)

// TestAuthorizeUntrustedRedirectIsAPage: a client or redirect URI that
// cannot be trusted is answered on Keyturn's own error page, never by
// redirect (RFC 6749 §3.1.2.4, §4.1.2.1; exact string match, §3.1.2.3 and
// RFC 9700 §2.1; loopback port only for public clients, RFC 8252 §7.3) —
// also for a signed-in browser and with prompt=none.
func TestAuthorizeUntrustedRedirectIsAPage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			signed := ts.browser()
			signIn(t, signed, "web-a", "https://rp.test/cb", "alice", "alice-pass")
			bad := []string{
				"https://rp.test/cb/", "https://rp.test/CB", "https://RP.test/cb", "HTTPS://rp.test/cb",
				"https://rp.test:443/cb", "https://rp.test/cb?x=1", "https://rp.test/cb2",
				"https://rp.test/cb2?tenant=8", "https://rp.test/cb#", "https://rp.test/%63b",
				"https://rp.test/cb/../cb", "https://rp.test.evil.example/cb", "https://rp.test@evil.example/cb",
				"https://evil.example/?https://rp.test/cb", "http://rp.test/cb", " https://rp.test/cb",
				"https://attacker.example/.rp.test", "https://rp.test:8443/cb", "https://rp.test/cb\r\nX: y",
			}
			for _, uri := range bad {
				for name, br := range map[string]*servertest.Browser{"fresh": ts.browser(), "signed in": signed} {
					p := br.Authorize(az("web-a", uri, "prompt", "none"))
					wantEPAGE(t, p)
					if t.Failed() {
						t.Fatalf("%s, redirect_uri %q", name, uri)
					}
				}
			}
			for _, uri := range []string{"http://127.0.0.1:51004/cb/", "http://127.0.0.1:51004/other",
				"https://127.0.0.1:51004/cb", "http://127.0.0.2:51004/cb", "http://127.0.0.1:51004/cb?x=1",
				"http://localhost:51004/cb", "http://127.0.0.1.evil.example:51004/cb", "http://2130706433:51004/cb"} {
				wantEPAGE(t, ts.browser().Authorize(az("native-a", uri)))
			}
			for name, params := range map[string]url.Values{
				"unknown client":                  az("nope", "https://rp.test/cb"),
				"no client":                       az("web-a", "https://rp.test/cb", "client_id", "-"),
				"no redirect_uri, two registered": az("web-a", ""),
				"client without redirect URIs":    az("conf-a", ""),
				"response_mode fragment":          az("web-a", "https://rp.test/cb", "response_mode", "fragment"),
				"response_mode form_post":         az("web-a", "https://rp.test/cb", "response_mode", "form_post"),
				"client_id with NUL":              az("web-a\x00", "https://rp.test/cb"),
			} {
				p := signed.Authorize(params)
				wantEPAGE(t, p)
				if t.Failed() {
					t.Fatal(name)
				}
			}
			// Repeated client_id or redirect_uri: in the query, or once in
			// the query and once in a POST body.
			dup := az("web-a", "https://rp.test/cb")
			dup.Add("redirect_uri", "https://rp.test/cb")
			wantEPAGE(t, signed.Authorize(dup))
			q := az("web-a", "https://rp.test/cb")
			body := url.Values{"client_id": {"web-a"}}
			wantEPAGE(t, signed.Post(testIssuer+server.PathAuthorize+"?"+q.Encode(), body))
			// The script in a state does not reach the page.
			p := signed.Authorize(az("web-a", "https://evil.example/cb", "state", `"><script>alert(1)</script>`))
			wantEPAGE(t, p)
			if strings.Contains(p.Body, "<script>alert(1)") {
				t.Error("state echoed unescaped on the error page")
			}
		})
	}
}

// TestAuthorizeCodeFlow: the whole flow in an empty browser: the login
// page, the consent page, then a 303 to the redirect URI with code, state
// and iss (RFC 6749 §4.1.2, RFC 9207 §2); the code is stored only as its
// hash, bound to the client, redirect URI, challenge, user and scope.
func TestAuthorizeCodeFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			req := az("web-a", "https://rp.test/cb", "scope", "read write", "resource", "https://api.example.com")
			p := br.Authorize(req)
			wantPage(t, p, 200, "login")
			if !strings.Contains(p.Body, "Web A") {
				t.Error("the login page does not name the client")
			}
			p = br.Login(p, "alice", "alice-pass")
			wantPage(t, p, 200, "consent")
			for _, want := range []string{"Web A", "rp.test", "Read your data", "Change your data", "until you revoke it"} {
				if !strings.Contains(p.Body, want) {
					t.Errorf("consent page lacks %q", want)
				}
			}
			if strings.Contains(p.Body, `href="https://rp.test`) {
				t.Error("the redirect host is a link")
			}
			p = br.Allow(p)
			if p.Status != http.StatusSeeOther {
				t.Errorf("after the consent POST: %d, want 303", p.Status)
			}
			code := wantCode(t, p, "https://rp.test/cb", req.Get("state"))
			if len(code) < 43 || strings.Contains(code, c1) {
				t.Errorf("code %q", code)
			}
			got, err := ts.store.GetCode(t.Context(), tokens.HashSecret(code))
			if err != nil {
				t.Fatal(err)
			}
			if got.ClientID != "web-a" || got.UserID != "user-alice" || got.RedirectURI != "https://rp.test/cb" ||
				got.CodeChallenge != c1 || got.Scope != "read write" || len(got.Resources) != 1 ||
				got.BrowserSessionID == "" || !got.ExpiresAt.Equal(ts.clock.Now().Add(time.Minute)) {
				t.Errorf("stored code %+v", got)
			}
			// The same request again in the same browser: no login, no
			// consent (remembered for a confidential client), a 302.
			p = br.Authorize(az("web-a", "https://rp.test/cb", "scope", "read", "state", "s2"))
			if p.Status != http.StatusFound {
				t.Errorf("GET with a session and consent: %d, want 302", p.Status)
			}
			wantCode(t, p, "https://rp.test/cb", "s2")
			// Another client in the same browser: its consent page, no login.
			wb := br.Authorize(az("web-b", "https://rpb.test/cb"))
			wantPage(t, wb, 200, "consent")
			// Nothing secret reaches the log (decision D11).
			logs := ts.logs.String()
			for _, secret := range []string{"alice-pass", code, br.Cookie("__Host-keyturn-session").Value,
				br.Cookie("__Host-keyturn-csrf").Value, wb.Fields.Get("csrf")} {
				if strings.Contains(logs, secret) {
					t.Errorf("the log holds a secret %q", secret)
				}
			}
			// A disabled user's browser session ends with them.
			if err := ts.store.SetUserDisabled(t.Context(), "alice", true, ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantPage(t, br.Authorize(az("web-a", "https://rp.test/cb")), 200, "login")
		})
	}
}

// TestAuthorizeErrorRedirects: past the client and its redirect URI, every
// problem is answered by redirect with error, state and iss (RFC 6749
// §4.1.2.1, RFC 9207), once the user is authenticated (decision D15).
func TestAuthorizeErrorRedirects(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
			const uri = "https://rp.test/cb"
			for _, tc := range []struct {
				name  string
				kv    []string
				error string
			}{
				{"no challenge", []string{"code_challenge", "-", "code_challenge_method", "-"}, "invalid_request"},
				{"no challenge, S256", []string{"code_challenge", "-"}, "invalid_request"},
				{"plain", []string{"code_challenge_method", "plain"}, "invalid_request"},
				{"method absent", []string{"code_challenge_method", "-"}, "invalid_request"},
				{"method empty", []string{"code_challenge_method", ""}, "invalid_request"},
				{"s256", []string{"code_challenge_method", "s256"}, "invalid_request"},
				{"S512", []string{"code_challenge_method", "S512"}, "invalid_request"},
				{"42 chars", []string{"code_challenge", c1[:42]}, "invalid_request"},
				{"44 chars", []string{"code_challenge", c1 + "A"}, "invalid_request"},
				{"padded", []string{"code_challenge", c1 + "="}, "invalid_request"},
				{"std base64", []string{"code_challenge", "+" + c1[1:]}, "invalid_request"},
				{"no response_type", []string{"response_type", "-"}, "invalid_request"},
				{"response_type token", []string{"response_type", "token"}, "unsupported_response_type"},
				{"response_type code id_token", []string{"response_type", "code id_token"}, "unsupported_response_type"},
				{"unknown scope", []string{"scope", "nonexistent"}, "invalid_scope"},
				{"unknown resource", []string{"resource", "https://evil.example"}, "invalid_target"},
				{"prompt none login", []string{"prompt", "none login"}, "invalid_request"},
				{"prompt bogus", []string{"prompt", "bogus"}, "invalid_request"},
				{"max_age negative", []string{"max_age", "-1"}, "invalid_request"},
				{"max_age text", []string{"max_age", "soon"}, "invalid_request"},
				{"control character", []string{"scope", "read\x01"}, "invalid_request"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req := az("web-a", uri, tc.kv...)
					wantCB(t, br.Authorize(req), uri, tc.error, req.Get("state"))
				})
			}
			// Repeated parameters (RFC 6749 §3.1); a repeated state is not echoed.
			for _, name := range []string{"scope", "response_type", "code_challenge", "prompt", "state"} {
				req := az("web-a", uri, "scope", "read", "prompt", "consent")
				req.Add(name, req.Get(name))
				state := req.Get("state")
				if name == "state" {
					state = ""
				}
				wantCB(t, br.Authorize(req), uri, "invalid_request", state)
			}
			// A NUL in the state: invalid_request, the state not echoed.
			wantCB(t, br.Authorize(az("web-a", uri, "state", "a\x00b")), uri, "invalid_request", "")
			// A client without the code grant cannot even name a redirect URI.
			wantEPAGE(t, br.Authorize(az("conf-a", "https://rp.test/cb")))

			// An empty browser sees the login page first (RFC 9700
			// §4.11), then the error; with prompt=none login_required at once.
			fresh := ts.browser()
			req := az("web-a", uri, "scope", "nonexistent")
			p := fresh.Authorize(req)
			wantPage(t, p, 200, "login")
			wantCB(t, fresh.Login(p, "alice", "alice-pass"), uri, "invalid_scope", req.Get("state"))
			req = az("web-a", uri, "scope", "nonexistent", "prompt", "none")
			wantCB(t, ts.browser().Authorize(req), uri, "login_required", req.Get("state"))
		})
	}
}

// TestAuthorizeResponseShape: state comes back exactly (RFC 6749 §4.1.2),
// long or full of reserved characters, and not at all when not sent; a
// registered query is kept and the new parameters appended (§3.1.2); a
// public native app's loopback redirect takes any port (RFC 8252 §7.3).
func TestAuthorizeResponseShape(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
			for _, state := range []string{strings.Repeat("s", 1024), "a b+&=é~", "\u00e9\u4e16"} {
				wantCode(t, br.Authorize(az("web-a", "https://rp.test/cb", "state", state)), "https://rp.test/cb", state)
			}
			p := br.Authorize(az("web-a", "https://rp.test/cb", "state", "-"))
			wantCode(t, p, "https://rp.test/cb", "")
			if _, has := p.Query()["state"]; has {
				t.Error("state returned though none was sent")
			}
			p = br.Authorize(az("web-a", "https://rp.test/cb2?tenant=7", "state", "x"))
			if !strings.HasPrefix(p.Location.String(), "https://rp.test/cb2?tenant=7&code=") {
				t.Fatalf("Location %q", p.Location)
			}
			wantCode(t, p, "https://rp.test/cb2?tenant=7", "x")
			if p.Query().Get("tenant") != "7" {
				t.Error("registered query lost")
			}

			nb := ts.browser()
			loc := nb.Flow(az("native-a", "http://127.0.0.1:51004/cb", "state", "n"), "alice", "alice-pass")
			if !strings.HasPrefix(loc.String(), "http://127.0.0.1:51004/cb?code=") {
				t.Fatalf("Location %q", loc)
			}
			loc = nb.Flow(az("native-a", "http://[::1]:61023/cb"), "alice", "alice-pass")
			if !strings.HasPrefix(loc.String(), "http://[::1]:61023/cb?code=") {
				t.Fatalf("Location %q", loc)
			}
			loc = nb.Flow(az("native-a", "com.example.app:/oauth2redirect"), "alice", "alice-pass")
			if !strings.HasPrefix(loc.String(), "com.example.app:/oauth2redirect?code=") {
				t.Fatalf("Location %q", loc)
			}
			// One registered URI: redirect_uri may be left out; the code
			// then records none (RFC 6749 §4.1.3).
			sb := ts.browser()
			p = sb.Login(sb.Authorize(az("spa-a", "")), "alice", "alice-pass")
			p = sb.Allow(p)
			code := wantCode(t, p, "https://spa.test/cb", p.Query().Get("state"))
			if c, err := ts.store.GetCode(t.Context(), tokens.HashSecret(code)); err != nil || c.RedirectURI != "" {
				t.Errorf("code's redirect URI %q (%v), want none", c.RedirectURI, err)
			}
			// Unknown parameters are ignored (RFC 6749 §3.1), empty ones
			// are absent: scope= is the default scope.
			p = br.Authorize(az("web-a", "https://rp.test/cb", "foo", "bar", "scope", ""))
			code = wantCode(t, p, "https://rp.test/cb", p.Query().Get("state"))
			if c, _ := ts.store.GetCode(t.Context(), tokens.HashSecret(code)); c.Scope != "read" {
				t.Errorf("scope %q, want the default", c.Scope)
			}
			if strings.Contains(p.Location.String(), "foo") {
				t.Error("unknown parameter echoed")
			}
		})
	}
}

// TestAuthorizePost: the endpoint takes its parameters in a POST body too
// (RFC 6749 §3.1), answered with 303.
func TestAuthorizePost(t *testing.T) {
	ts := newAZServer(t, sqlite)
	br := ts.browser()
	signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
	req := az("web-a", "https://rp.test/cb", "state", "p")
	p := br.Post(testIssuer+server.PathAuthorize, req)
	if p.Status != http.StatusSeeOther {
		t.Errorf("POST: %d, want 303", p.Status)
	}
	wantCode(t, p, "https://rp.test/cb", "p")
	// A parameter in the query and the body is repeated.
	q := url.Values{"scope": {"read"}}
	p = br.Post(testIssuer+server.PathAuthorize+"?"+q.Encode(), az("web-a", "https://rp.test/cb", "scope", "read", "state", "p"))
	wantCB(t, p, "https://rp.test/cb", "invalid_request", "p")
}

// TestAuthorizePromptAndMaxAge: prompt=login and a max_age older than the
// sign-in show the login page again (OpenID Connect Core §3.1.2.1); the
// sign-in then goes on to the code in the same response, no loop.
func TestAuthorizePromptAndMaxAge(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
			before := br.Cookie("__Host-keyturn-session").Value

			p := br.Authorize(az("web-a", "https://rp.test/cb", "prompt", "login"))
			wantPage(t, p, 200, "login")
			p = br.Login(p, "alice", "alice-pass")
			wantCode(t, p, "https://rp.test/cb", p.Query().Get("state"))
			after := br.Cookie("__Host-keyturn-session").Value
			if after == before {
				t.Error("the session cookie kept its value across a sign-in")
			}
			// The previous session is revoked.
			old, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(before))
			if err != nil || old.RevokedAt.IsZero() {
				t.Errorf("previous browser session not revoked: %+v %v", old, err)
			}

			ts.clock.Advance(61 * time.Second)
			wantCode(t, br.Authorize(az("web-a", "https://rp.test/cb", "max_age", "3600", "state", "m")), "https://rp.test/cb", "m")
			p = br.Authorize(az("web-a", "https://rp.test/cb", "max_age", "60", "state", "m"))
			wantPage(t, p, 200, "login")
			wantCode(t, br.Login(p, "alice", "alice-pass"), "https://rp.test/cb", "m")
			p = br.Authorize(az("web-a", "https://rp.test/cb", "max_age", "0", "state", "z"))
			wantPage(t, p, 200, "login")
			wantCode(t, br.Login(p, "alice", "alice-pass"), "https://rp.test/cb", "z")
			// prompt=none with a stale sign-in: login_required.
			ts.clock.Advance(2 * time.Minute)
			wantCB(t, br.Authorize(az("web-a", "https://rp.test/cb", "max_age", "60", "prompt", "none", "state", "n")),
				"https://rp.test/cb", "login_required", "n")

			// After the browser session's lifetime: the login page.
			ts.clock.Advance(server.DefaultBrowserSessionTTL)
			wantPage(t, br.Authorize(az("web-a", "https://rp.test/cb")), 200, "login")
		})
	}
}

func sessionIDOf(cookie string) string {
	return base64.RawURLEncoding.EncodeToString(tokens.HashSecret(cookie))
}

// TestAuthorizeConsent: consent is remembered per user, client and scope
// set: the same or a narrower set skips the page for a confidential client,
// a wider one asks again, prompt=consent always asks, Deny is
// access_denied, prompt=none without consent consent_required (RFC 6749
// §10.2, decision D14).
func TestAuthorizeConsent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			const uri = "https://rp.test/cb"
			br := ts.browser()
			p := br.Authorize(az("web-a", uri, "scope", "read write"))
			p = br.Login(p, "alice", "alice-pass")
			req := az("web-a", uri, "scope", "read write", "state", "d")
			p = br.Authorize(req) // signed in now; consent not yet given
			wantPage(t, p, 200, "consent")
			d := br.Deny(p)
			if d.Status != http.StatusSeeOther {
				t.Errorf("deny: %d, want 303", d.Status)
			}
			wantCB(t, d, uri, "access_denied", "d")
			wantCB(t, br.Authorize(az("web-a", uri, "scope", "read", "prompt", "none", "state", "n")), uri, "consent_required", "n")

			wantCode(t, br.Allow(br.Authorize(az("web-a", uri, "scope", "read", "state", "a"))), uri, "a")
			wantCode(t, br.Authorize(az("web-a", uri, "scope", "read", "state", "b")), uri, "b")
			wantCode(t, br.Authorize(az("web-a", uri, "scope", "read", "prompt", "none", "state", "b")), uri, "b")
			wantPage(t, br.Authorize(az("web-a", uri, "scope", "read write")), 200, "consent")
			wantPage(t, br.Authorize(az("web-a", uri, "scope", "read", "prompt", "consent")), 200, "consent")
			wantCode(t, br.Allow(br.Authorize(az("web-a", uri, "scope", "read write", "state", "w"))), uri, "w")
			wantCode(t, br.Authorize(az("web-a", uri, "scope", "write", "state", "n")), uri, "n")
			// Another user in another browser has consented to nothing.
			other := ts.browser()
			p = other.Login(other.Authorize(az("web-a", uri, "scope", "read")), "bob", "b0b-pass")
			wantPage(t, p, 200, "consent")
		})
	}
}

// TestAuthorizePublicAndFirstParty: a public client is never approved
// silently (RFC 8252 §8.6, decision D14): with a session and a remembered
// consent it gets the one-click page, and prompt=none interaction_required;
// a first-party client needs no consent after a sign-in, and a
// confidential one none later either.
func TestAuthorizePublicAndFirstParty(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			signIn(t, br, "spa-a", "", "alice", "alice-pass")
			p := br.Authorize(az("spa-a", "", "state", "s"))
			wantPage(t, p, 200, "consent")
			if !p.Brief() || !strings.Contains(p.Body, "Spa A") || !strings.Contains(p.Body, "spa.test") {
				t.Errorf("not the one-click page naming the app and its host:\n%s", p.Body)
			}
			wantCode(t, br.Allow(p), "https://spa.test/cb", "s")
			wantCB(t, br.Authorize(az("spa-a", "", "prompt", "none", "state", "n")), "https://spa.test/cb", "interaction_required", "n")
			// Wider scope: the full consent page.
			p = br.Authorize(az("spa-a", "", "scope", "read write"))
			wantPage(t, p, 200, "consent")
			if p.Brief() {
				t.Error("a wider scope got the one-click page")
			}

			// First-party: no page after the sign-in; confidential ones
			// none later either, public ones one click.
			fb := ts.browser()
			p = fb.Login(fb.Authorize(az("web-1p", "https://first.test/cb", "state", "f")), "alice", "alice-pass")
			wantCode(t, p, "https://first.test/cb", "f")
			wantCode(t, fb.Authorize(az("web-1p", "https://first.test/cb", "state", "g")), "https://first.test/cb", "g")
			p = fb.Authorize(az("spa-1p", "", "state", "h"))
			wantPage(t, p, 200, "consent")
			if !p.Brief() {
				t.Error("a silent request of a public first-party client got the full consent page")
			}
			pb := ts.browser()
			p = pb.Login(pb.Authorize(az("spa-1p", "", "state", "i")), "alice", "alice-pass")
			wantCode(t, p, "https://spa1p.test/cb", "i")
		})
	}
}

// TestAuthorizeCSRF: the login and consent forms are good only in the
// browser they were given to and for their own purpose (RFC 6749 §10.12):
// otherwise 403 and nothing happens (no session cookie, no code).
func TestAuthorizeCSRF(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			j1, j2 := ts.browser(), ts.browser()
			l1 := j1.Authorize(az("web-a", "https://rp.test/cb"))
			l2 := j2.Authorize(az("web-a", "https://rp.test/cb"))
			creds := url.Values{"username": {"alice"}, "password": {"alice-pass"}}

			noToken := url.Values{"csrf": {""}, "username": creds["username"], "password": creds["password"]}
			for name, p := range map[string]*servertest.Page{
				"missing": j1.Submit(l1, noToken),
				"foreign": j1.Submit(l2, creds), // j2's form, posted from j1
				"garbage": j1.Submit(l1, url.Values{"csrf": {"x"}, "username": {"alice"}, "password": {"alice-pass"}}),
			} {
				wantPage(t, p, http.StatusForbidden, "error")
				if strings.Contains(p.Header.Get("Set-Cookie"), "keyturn-session") {
					t.Errorf("%s: a session cookie was set", name)
				}
			}
			if j1.Cookie("__Host-keyturn-session") != nil {
				t.Fatal("j1 holds a session after refused logins")
			}

			c1 := j1.Login(l1, "alice", "alice-pass")
			c2 := j2.Login(l2, "bob", "b0b-pass")
			wantPage(t, c1, 200, "consent")
			wantPage(t, c2, 200, "consent")
			allow := url.Values{"action": {"allow"}}
			for name, p := range map[string]*servertest.Page{
				"missing":    j1.Submit(c1, url.Values{"action": {"allow"}, "csrf": {""}}),
				"foreign":    j1.Submit(c2, allow),
				"login form": j1.Submit(c1, url.Values{"action": {"allow"}, "csrf": l1.Fields["csrf"]}),
			} {
				wantPage(t, p, http.StatusForbidden, "error")
				if t.Failed() {
					t.Fatal(name)
				}
			}
			// The consent page's token with the login form is refused too.
			wantPage(t, j1.Submit(l1, url.Values{"csrf": c1.Fields["csrf"], "username": {"alice"}, "password": {"alice-pass"}}),
				http.StatusForbidden, "error")
			// The right one works.
			wantCode(t, j1.Allow(c1), "https://rp.test/cb", stateOf(t, c1))
		})
	}
}

// stateOf is the state of the request a page carries.
func stateOf(t *testing.T, p *servertest.Page) string {
	t.Helper()
	v, err := url.ParseQuery(p.Fields.Get("request"))
	if err != nil {
		t.Fatal(err)
	}
	return v.Get("state")
}

// TestAuthorizeCookie: over an https issuer the browser session lives in
// one __Host- cookie, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain,
// whose value is a fresh random secret and not the username (RFC 6265bis;
// no session fixation).
func TestAuthorizeCookie(t *testing.T) {
	ts := newAZServer(t, sqlite)
	br := ts.browser()
	p := br.Authorize(az("web-a", "https://rp.test/cb"))
	p = br.Login(p, "alice", "alice-pass")
	var session *http.Cookie
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if strings.Contains(c.Name, "keyturn-session") {
			if session != nil {
				t.Fatal("two session cookies")
			}
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie set by the login")
	}
	raw := ""
	for _, sc := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, session.Name+"=") {
			raw = sc
		}
	}
	if session.Name != "__Host-keyturn-session" || !session.Secure || !session.HttpOnly ||
		session.SameSite != http.SameSiteLaxMode || session.Path != "/" || strings.Contains(strings.ToLower(raw), "domain=") {
		t.Errorf("session cookie %q", raw)
	}
	if len(session.Value) < 43 || strings.Contains(session.Value, "alice") {
		t.Errorf("session cookie value %q", session.Value)
	}
	// The database holds its hash, not the value.
	if _, err := ts.store.GetBrowserSession(t.Context(), session.Value); err == nil {
		t.Error("the cookie value is a session ID")
	}
	if _, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(session.Value)); err != nil {
		t.Errorf("no session under the cookie's hash: %v", err)
	}
	// A made-up cookie is no session.
	u, _ := url.Parse(testIssuer + "/")
	forged := ts.browser()
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-keyturn-session", Value: tokens.NewSecret(), Path: "/", Secure: true}})
	wantPage(t, forged.Authorize(az("web-a", "https://rp.test/cb")), 200, "login")
}

// TestAuthorizePlainHTTPIssuerCookie: over an http issuer (local
// development) the cookies go without __Host- and Secure, which browsers
// refuse there.
func TestAuthorizePlainHTTPIssuerCookie(t *testing.T) {
	store := openStore(t, sqlite)
	hs, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: "http://localhost:8080", Clients: azClients()})
	servertest.AddUser(t, store, "alice", "alice-pass", time.Now())
	br := servertest.NewBrowser(t, "http://localhost:8080", hs.URL)
	p := br.Login(br.Authorize(az("web-a", "https://rp.test/cb")), "alice", "alice-pass")
	wantPage(t, p, 200, "consent")
	c := br.Cookie("keyturn-session")
	if c == nil {
		t.Fatalf("no keyturn-session cookie: %q", p.Header.Values("Set-Cookie"))
	}
	if strings.Contains(strings.Join(p.Header.Values("Set-Cookie"), "\n"), "Secure") {
		t.Error("Secure cookie over an http issuer")
	}
}

// TestAuthorizeLoginThrottle: the login page is the password grant's
// login (RFC 6749 §10.10): its failures and the grant's count together on
// one throttle, 429 with Retry-After once held back, one message for an
// unknown user and a wrong password; another user is unaffected.
func TestAuthorizeLoginThrottle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			p := br.Authorize(az("web-a", "https://rp.test/cb"))
			var msgs []string
			for range 3 {
				p = br.Login(p, "ada", "wrong")
				wantPage(t, p, 200, "login")
				msgs = append(msgs, p.Body)
			}
			if !strings.Contains(msgs[0], "Invalid username or password.") {
				t.Error("no failure message")
			}
			unknown := br.Login(p, "nobody", "wrong")
			if !strings.Contains(unknown.Body, "Invalid username or password.") {
				t.Error("unknown user answered otherwise than a wrong password")
			}
			for range 2 {
				wantError(t, ts.token(confA, pw("ada", "wrong")), 400, "invalid_grant")
			}
			// 3 page + 2 grant failures: held back, on the page and at the grant.
			p = br.Login(p, "ada", userPass)
			wantPage(t, p, http.StatusTooManyRequests, "error")
			if p.Header.Get("Retry-After") == "" {
				t.Error("429 page without Retry-After")
			}
			if br.Cookie("__Host-keyturn-session") != nil {
				t.Error("a session despite the throttle")
			}
			wantError(t, ts.token(confA, pw("ada", userPass)), 429, "temporarily_unavailable")
			// Bob signs in from the same browser.
			p = br.Authorize(az("web-a", "https://rp.test/cb"))
			wantPage(t, br.Login(p, "bob", "b0b-pass"), 200, "consent")
		})
	}
}

// TestAuthorizeEscapesClientName: a client's name is text on every page
// (RFC 6749 §10.14).
func TestAuthorizeEscapesClientName(t *testing.T) {
	ts := newAZServer(t, sqlite)
	br := ts.browser()
	p := br.Authorize(az("xss-c", ""))
	wantPage(t, p, 200, "login")
	p = br.Login(p, "alice", "alice-pass")
	wantPage(t, p, 200, "consent")
	if !strings.Contains(p.Body, "&lt;img src=x onerror=alert(1)&gt;") || strings.Contains(p.Body, "<img src=x") {
		t.Errorf("client name not escaped:\n%s", p.Body)
	}
}

// TestAuthorizeDatabaseDown: with the client and redirect URI verified, a
// database failure is answered by redirect (server_error or
// temporarily_unavailable, RFC 6749 §4.1.2.1), never a 5xx page.
func TestAuthorizeDatabaseDown(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newAZServer(t, b)
			br := ts.browser()
			signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
			if err := ts.store.Close(); err != nil {
				t.Fatal(err)
			}
			p := br.Authorize(az("web-a", "https://rp.test/cb", "state", "x"))
			if p.Location == nil {
				t.Fatalf("%d %q with the database down, want a redirect", p.Status, p.Kind)
			}
			if e := p.Query().Get("error"); e != "server_error" && e != "temporarily_unavailable" {
				t.Fatalf("error = %q", e)
			}
			wantCB(t, p, "https://rp.test/cb", p.Query().Get("error"), "x")
		})
	}
}

// TestAuthorizeAssetsAndCORS: the stylesheet and logo come from Keyturn's
// origin (RFC 9700 §4.2.4, decision D22), the logo with its sniffed type;
// the endpoint sends no CORS headers (RFC 9700 §2.6).
func TestAuthorizeAssetsAndCORS(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	ts := newAZServer(t, sqlite, func(o *server.Options) {
		o.Authorize.Logo = png
		o.Authorize.ProductName = "Acme <ID>"
	})
	br := ts.browser()
	p := br.Authorize(az("web-a", "https://rp.test/cb"))
	wantPage(t, p, 200, "login")
	for _, want := range []string{`href="` + testIssuer + `/assets/style.css"`, `src="` + testIssuer + `/assets/logo"`, "Acme &lt;ID&gt;", `lang="en"`, `<label for="username">`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	css := br.Get(testIssuer + server.PathStyle)
	if css.Status != 200 || css.Header.Get("Content-Type") != "text/css; charset=utf-8" || css.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("style.css: %d %q", css.Status, css.Header.Get("Content-Type"))
	}
	logo := br.Get(testIssuer + server.PathLogo)
	if logo.Status != 200 || logo.Header.Get("Content-Type") != "image/png" || logo.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("logo: %d %q", logo.Status, logo.Header.Get("Content-Type"))
	}
	for _, method := range []string{http.MethodGet, http.MethodOptions} {
		req, _ := http.NewRequest(method, testIssuer+server.PathAuthorize+"?"+az("web-a", "https://rp.test/cb").Encode(), nil)
		req.Header.Set("Origin", "https://spa.test")
		req.Header.Set("Access-Control-Request-Method", "GET")
		if r := br.Do(req); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", method, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// TestAuthorizeChallengeReuse: a client that uses one PKCE challenge twice
// within ten minutes is logged and counted, not refused (RFC 9700 §2.1.1).
func TestAuthorizeChallengeReuse(t *testing.T) {
	ts := newAZServer(t, sqlite)
	br := ts.browser()
	signIn(t, br, "web-a", "https://rp.test/cb", "alice", "alice-pass")
	wantCode(t, br.Authorize(az("web-a", "https://rp.test/cb", "state", "2")), "https://rp.test/cb", "2")
	m := ts.do(call{method: http.MethodGet, path: server.PathMetrics})
	if !strings.Contains(string(m.body), "keyturn_pkce_challenge_reuse_total 1") {
		t.Errorf("reuse not counted:\n%s", grepLines(string(m.body), "pkce"))
	}
	if !strings.Contains(ts.logs.String(), "PKCE code_challenge reused") {
		t.Error("reuse not logged")
	}
	ts.clock.Advance(11 * time.Minute)
	wantCode(t, br.Authorize(az("web-a", "https://rp.test/cb", "state", "3")), "https://rp.test/cb", "3")
	m = ts.do(call{method: http.MethodGet, path: server.PathMetrics})
	if !strings.Contains(string(m.body), "keyturn_pkce_challenge_reuse_total 1") {
		t.Errorf("a reuse after ten minutes counted:\n%s", grepLines(string(m.body), "pkce"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAuthorizeNoOpenRedirect: the login form continues only to the
// client's registered URI, re-checked from the carried request; a target
// smuggled into the form is ignored (RFC 9700 §2.1).
func TestAuthorizeNoOpenRedirect(t *testing.T) {
	ts := newAZServer(t, sqlite)
	br := ts.browser()
	p := br.Authorize(az("web-a", "https://rp.test/cb"))
	for _, evil := range []string{"https://evil.example/", "//evil.example", `/\evil.example`, "https:evil.example"} {
		tampered := az("web-a", evil)
		r := br.Submit(p, url.Values{"request": {tampered.Encode()}, "username": {"alice"}, "password": {"alice-pass"}})
		wantEPAGE(t, r)
		r = br.Submit(p, url.Values{"return_to": {evil}, "redirect_uri": {evil}, "username": {"bob"}, "password": {"b0b-pass"}})
		if r.Location != nil {
			t.Fatalf("Location %v", r.Location)
		}
		wantPage(t, r, 200, "consent")
	}
}

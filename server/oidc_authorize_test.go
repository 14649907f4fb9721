package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/servertest"
)

const rpCB = "https://rp.test/cb"

// TestOIDCRedirectURIRequired (T-OIDC-3.1.2.1-c): an OpenID request names
// its redirect URI, even when the client has one (decision D16): missing,
// it is answered on Keyturn's error page, never by redirect.
func TestOIDCRedirectURIRequired(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signIn(t, br, "spa-a", "", "alice", "alice-pass")
			wantEPAGE(t, br.Authorize(oaz("spa-a", "")))
			wantEPAGE(t, br.Authorize(oaz("spa-a", "", "scope", "read openid", "prompt", "none")))
			wantEPAGE(t, ts.browser().Authorize(oaz("spa-a", "")))
			// With it, the flow goes on; without openid, it may be left out.
			wantPage(t, br.Authorize(oaz("spa-a", "https://spa.test/cb")), 200, "consent")
			wantPage(t, br.Authorize(az("spa-a", "")), 200, "consent")
		})
	}
}

// TestOIDCPromptNone (T-OIDC-3.1.2.1-d, -m): prompt=none shows no page:
// login_required without a session, consent_required without consent, the
// code with both (no id_token_hint needed).
func TestOIDCPromptNone(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			oidcCB(t, ts.browser().Authorize(oaz("web-a", rpCB, "prompt", "none", "state", "s")), rpCB, "login_required", "s")
			br := ts.browser()
			signIn(t, br, "web-1p", "https://first.test/cb", "alice", "alice-pass")
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "prompt", "none", "state", "c")), rpCB, "consent_required", "c")
			wantCode(t, br.Allow(br.Authorize(oaz("web-a", rpCB, "state", "a"))), rpCB, "a")
			wantCode(t, br.Authorize(oaz("web-a", rpCB, "prompt", "none", "state", "n")), rpCB, "n")
		})
	}
}

// TestOIDCPromptLoginConsent (T-OIDC-3.1.2.1-e, -f, -h): prompt=login signs
// in again (the code's auth_time is the new sign-in), prompt=consent asks
// again (Deny: access_denied), both do both; none with any other value is
// invalid_request; unknown values are ignored.
func TestOIDCPromptLoginConsent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			t0 := ts.clock.Now()

			ts.clock.Advance(time.Minute)
			p := br.Authorize(oaz("web-a", rpCB, "prompt", "login", "state", "l"))
			wantPage(t, p, 200, "login")
			p = br.Login(p, "alice", "alice-pass")
			if got := ts.storedCode(p).AuthTime; !got.Equal(t0.Add(time.Minute)) {
				t.Errorf("auth_time after prompt=login = %v, want the new sign-in %v", got, t0.Add(time.Minute))
			}

			p = br.Authorize(oaz("web-a", rpCB, "prompt", "consent", "state", "d"))
			wantPage(t, p, 200, "consent")
			oidcCB(t, br.Deny(p), rpCB, "access_denied", "d")

			p = br.Authorize(oaz("web-a", rpCB, "prompt", "login consent", "state", "b"))
			wantPage(t, p, 200, "login")
			p = br.Login(p, "alice", "alice-pass")
			wantPage(t, p, 200, "consent")
			wantCode(t, br.Allow(p), rpCB, "b")

			for _, prompt := range []string{"none login", "none consent", "none select_account", "login none", "none bogus"} {
				oidcCB(t, br.Authorize(oaz("web-a", rpCB, "prompt", prompt, "state", "x")), rpCB, "invalid_request", "x")
			}
			wantCode(t, br.Authorize(oaz("web-a", rpCB, "prompt", "bogus", "state", "i")), rpCB, "i")
			wantCode(t, br.Authorize(az("web-a", rpCB, "prompt", "bogus", "state", "j")), rpCB, "j")
		})
	}
}

// TestOIDCSelectAccount (T-OIDC-3.1.2.1-g, decision D18): with a session,
// prompt=select_account shows "Continue as alice / Use another account";
// continuing is alice's code, another account is the login page, whose
// sign-in as bob replaces the session, and the code is bob's. The choice is
// a form of this browser's session only.
func TestOIDCSelectAccount(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			const uri = "https://first.test/cb"
			br := ts.browser()
			signIn(t, br, "web-1p", uri, "alice", "alice-pass")
			p := br.Authorize(oaz("web-1p", uri, "prompt", "select_account", "state", "s"))
			wantPage(t, p, 200, "select")
			for _, want := range []string{"Continue as alice", "Use another account", "Web First"} {
				if !strings.Contains(p.Body, want) {
					t.Errorf("select page lacks %q", want)
				}
			}
			c := br.Submit(p, url.Values{"action": {"continue"}})
			wantCode(t, c, uri, "s")
			if u := ts.storedCode(c).UserID; u != "user-alice" {
				t.Errorf("continue: code of %q", u)
			}

			// CSRF: no token, another browser's token: 403, no code.
			wantPage(t, br.Submit(p, url.Values{"action": {"continue"}, "csrf": {""}}), http.StatusForbidden, "error")
			other := ts.browser()
			signIn(t, other, "web-1p", uri, "alice", "alice-pass")
			wantPage(t, other.Submit(p, url.Values{"action": {"continue"}}), http.StatusForbidden, "error")
			wantEPAGE(t, br.Submit(p, url.Values{"action": {"bogus"}}))

			before := br.Cookie("__Host-keyturn-session").Value
			p = br.Submit(p, url.Values{"action": {"another"}})
			wantPage(t, p, 200, "login")
			p = br.Login(p, "bob", "b0b-pass")
			wantCode(t, p, uri, "s")
			if u := ts.storedCode(p).UserID; u != "user-bob" {
				t.Errorf("another account: code of %q, want bob's", u)
			}
			old, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(before))
			if err != nil || old.RevokedAt.IsZero() {
				t.Errorf("alice's browser session not replaced: %+v %v", old, err)
			}
			// Without a session, the login page; with prompt=login, too.
			wantPage(t, ts.browser().Authorize(oaz("web-1p", uri, "prompt", "select_account")), 200, "login")
			wantPage(t, br.Authorize(oaz("web-1p", uri, "prompt", "select_account login")), 200, "login")
		})
	}
}

// TestOIDCMaxAge (T-OIDC-3.1.2.1-i): a sign-in older than max_age signs in
// again; the code's auth_time is the sign-in the request relied on.
func TestOIDCMaxAge(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			t0 := ts.clock.Now()
			ts.clock.Advance(30 * time.Second)
			p := br.Authorize(oaz("web-a", rpCB, "max_age", "60", "state", "a"))
			if got := ts.storedCode(p).AuthTime; !got.Equal(t0) {
				t.Errorf("auth_time %v, want %v", got, t0)
			}
			ts.clock.Advance(90 * time.Second)
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "max_age", "60", "prompt", "none", "state", "n")), rpCB, "login_required", "n")
			p = br.Authorize(oaz("web-a", rpCB, "max_age", "60", "state", "b"))
			wantPage(t, p, 200, "login")
			p = br.Login(p, "alice", "alice-pass")
			if got := ts.storedCode(p).AuthTime; !got.Equal(t0.Add(120 * time.Second)) {
				t.Errorf("auth_time %v, want %v", got, t0.Add(120*time.Second))
			}
			wantPage(t, br.Authorize(oaz("web-a", rpCB, "max_age", "0")), 200, "login")
			for _, v := range []string{"-1", "abc", "1e3", "99999999999"} {
				oidcCB(t, br.Authorize(oaz("web-a", rpCB, "max_age", v, "state", "m")), rpCB, "invalid_request", "m")
			}
		})
	}
}

// TestOIDCIgnoredParameters (T-OIDC-3.1.2.1-j): display, ui_locales,
// claims_locales and acr_values never cause an error; the pages say they
// are in English.
func TestOIDCIgnoredParameters(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			p := br.Authorize(oaz("web-a", rpCB, "ui_locales", "fr-CA fr en"))
			wantPage(t, p, 200, "login")
			if !strings.Contains(p.Body, `<html lang="en">`) {
				t.Error("the page does not say its language")
			}
			wantCode(t, br.Allow(br.Login(p, "alice", "alice-pass")), rpCB, stateOf(t, p))
			for _, kv := range [][]string{
				{"ui_locales", "xx-INVALID"}, {"claims_locales", "de"}, {"acr_values", "urn:mace:incommon:iap:silver"},
				{"display", "page"}, {"display", "popup"}, {"display", "touch"}, {"display", "wap"}, {"display", "bogus"},
			} {
				wantCode(t, br.Authorize(oaz("web-a", rpCB, kv[0], kv[1], "state", "s")), rpCB, "s")
			}
		})
	}
}

// TestOIDCLoginHint (T-OIDC-3.1.2.1-k): login_hint pre-fills the username,
// attribute-escaped.
func TestOIDCLoginHint(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			p := ts.browser().Authorize(oaz("web-a", rpCB, "login_hint", "bob"))
			wantPage(t, p, 200, "login")
			if !strings.Contains(p.Body, `name="username" type="text" value="bob"`) {
				t.Errorf("username not pre-filled:\n%s", p.Body)
			}
			p = ts.browser().Authorize(oaz("web-a", rpCB, "login_hint", `"><script>alert(1)</script>`))
			wantPage(t, p, 200, "login")
			if strings.Contains(p.Body, "<script") || !strings.Contains(p.Body, `value="&#34;&gt;&lt;script&gt;`) {
				t.Errorf("login_hint not escaped:\n%s", p.Body)
			}
			// Without openid, not an OpenID parameter.
			p = ts.browser().Authorize(az("web-a", rpCB, "login_hint", "bob"))
			if strings.Contains(p.Body, `value="bob"`) {
				t.Error("login_hint read in a plain OAuth request")
			}
		})
	}
}

// TestOIDCIDTokenHint (T-OIDC-3.1.2.1-l): a hint naming the signed-in user
// (expired too) is a code; another user's hint is login_required with
// prompt=none and the login page otherwise, never the signed-in user's
// code; a hint this server did not sign, or of another issuer, is
// invalid_request.
func TestOIDCIDTokenHint(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			alice, bob := ts.idToken("user-alice", "web-a", ""), ts.idToken("user-bob", "web-a", "")

			p := br.Authorize(oaz("web-a", rpCB, "prompt", "none", "id_token_hint", alice, "state", "a"))
			if u := ts.storedCode(p).UserID; u != "user-alice" {
				t.Errorf("code of %q", u)
			}
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "prompt", "none", "id_token_hint", bob, "state", "b")), rpCB, "login_required", "b")
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "prompt", "none", "id_token_hint", ts.foreignIDToken("user-alice", "web-a"), "state", "f")),
				rpCB, "invalid_request", "f")
			otherIss := signID(t, ts.keys, "https://evil.example", "user-alice", "web-a", "", ts.clock.Now())
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "prompt", "none", "id_token_hint", otherIss, "state", "i")), rpCB, "invalid_request", "i")
			for _, junk := range []string{"x", "a.b.c", alice + "x", strings.Repeat("A", 5000)} {
				oidcCB(t, br.Authorize(oaz("web-a", rpCB, "id_token_hint", junk, "state", "j")), rpCB, "invalid_request", "j")
			}

			// Bob's hint without prompt=none: the login page; signing in as
			// bob is bob's code, as alice login_required.
			p = br.Authorize(oaz("web-a", rpCB, "id_token_hint", bob, "state", "c"))
			wantPage(t, p, 200, "login")
			oidcCB(t, br.Login(p, "alice", "alice-pass"), rpCB, "login_required", "c")
			p = br.Login(br.Authorize(oaz("web-a", rpCB, "id_token_hint", bob, "state", "d")), "bob", "b0b-pass")
			p = br.Allow(p)
			if u := ts.storedCode(p).UserID; u != "user-bob" {
				t.Errorf("code of %q, want bob's", u)
			}

			// An expired hint of the signed-in user still names them.
			ts.clock.Advance(time.Hour)
			p = br.Authorize(oaz("web-a", rpCB, "prompt", "none", "id_token_hint", bob, "state", "e"))
			if u := ts.storedCode(p).UserID; u != "user-bob" {
				t.Errorf("expired hint: code of %q", u)
			}
		})
	}
}

// TestOIDCNonce: the nonce goes into the code exactly as sent (the ID
// token echoes it, Core §3.1.2.1); repeated, it is invalid_request; a plain
// OAuth request stores none.
func TestOIDCNonce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			for _, nonce := range []string{"n-0S6_WzA2Mj", " a b+c%20é\u4e16 ", strings.Repeat("n", 512)} {
				p := br.Authorize(oaz("web-a", rpCB, "nonce", nonce))
				if got := ts.storedCode(p).Nonce; got != nonce {
					t.Errorf("nonce %q stored as %q", nonce, got)
				}
			}
			if got := ts.storedCode(br.Authorize(az("web-a", rpCB, "nonce", "n"))).Nonce; got != "" {
				t.Errorf("plain OAuth request stored nonce %q", got)
			}
			req := oaz("web-a", rpCB, "nonce", "n1", "state", "r")
			req.Add("nonce", "n2")
			oidcCB(t, br.Authorize(req), rpCB, "invalid_request", "r")
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "nonce", "a\x00b", "state", "z")), rpCB, "invalid_request", "z")
		})
	}
}

// TestOIDCScope (decision D17): with openid, scopes no client knows are
// dropped and the code holds the rest; a known scope the client may not
// have is invalid_scope, with or without openid; without openid an unknown
// scope is invalid_scope as before.
func TestOIDCScope(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			p := br.Authorize(oaz("web-a", rpCB, "scope", "openid bogus read offline_access"))
			if got := ts.storedCode(p).Scope; got != "openid read" {
				t.Errorf("scope %q, want openid read", got)
			}
			oidcCB(t, br.Authorize(oaz("web-a", rpCB, "scope", "openid admin", "state", "a")), rpCB, "invalid_scope", "a")
			wantCB(t, br.Authorize(az("web-a", rpCB, "scope", "read admin", "state", "b")), rpCB, "invalid_scope", "b")
			wantCB(t, br.Authorize(az("web-a", rpCB, "scope", "read bogus", "state", "c")), rpCB, "invalid_scope", "c")
			// openid for a client that may not have it: invalid_scope.
			wantCB(t, br.Authorize(oaz("oauth-only", "https://plain.test/cb", "state", "d")), "https://plain.test/cb", "invalid_scope", "d")
		})
	}
}

// TestOIDCUnsupportedObjects (T-OIDC-3.1.2.6-a, -b): request, request_uri
// and registration are refused by redirect with their own codes, nothing
// is fetched, and error redirects carry nothing but the error, its
// description, state and iss.
func TestOIDCUnsupportedObjects(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			var fetched atomic.Int32
			rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
			t.Cleanup(rp.Close)
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			for _, tc := range []struct{ name, value, code string }{
				{"request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"},
				{"request_uri", rp.URL + "/r", "request_uri_not_supported"},
				{"request_uri", "https://rp.test/r", "request_uri_not_supported"},
				{"registration", "{}", "registration_not_supported"},
			} {
				oidcCB(t, br.Authorize(oaz("web-a", rpCB, tc.name, tc.value, "state", "s", "nonce", "n")), rpCB, tc.code, "s")
				// Before other errors: the object may hold what is missing.
				oidcCB(t, br.Authorize(oaz("web-a", rpCB, tc.name, tc.value, "code_challenge", "-", "state", "t")), rpCB, tc.code, "t")
			}
			if n := fetched.Load(); n != 0 {
				t.Errorf("request_uri fetched %d times", n)
			}
			// Without openid they are unknown parameters, ignored (RFC 6749 §3.1).
			wantCode(t, br.Authorize(az("web-a", rpCB, "request", "x", "state", "u")), rpCB, "u")
			// Only error parameters come back, also for an empty browser.
			oidcCB(t, ts.browser().Authorize(oaz("web-a", rpCB, "prompt", "none", "nonce", "n", "state", "v")), rpCB, "login_required", "v")
		})
	}
}

// signInOIDC runs a first OpenID flow for web-a (scope openid read) as
// user in br, so that br holds a session and web-a the user's consent.
func signInOIDC(t *testing.T, br *servertest.Browser, user, pass string) {
	t.Helper()
	loc := br.Flow(oaz("web-a", rpCB, "scope", "openid read"), user, pass)
	if loc.Query().Get("code") == "" {
		t.Fatalf("sign-in flow ended at %v", loc)
	}
}

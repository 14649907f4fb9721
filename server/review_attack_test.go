package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
)

// hostileValues are values no legitimate browser or client sends.
var hostileValues = []string{
	"\x00", "a\x00b", "\r\nSet-Cookie: x=1", "\x7f", "\xff\xfe", "%00",
	strings.Repeat("A", 60<<10), "<script>alert(1)</script>",
}

// wantNo5xx fails on a server error.
func wantNo5xx(t *testing.T, what string, p *servertest.Page) {
	t.Helper()
	if p.Status >= 500 {
		t.Errorf("%s: %d\n%.300s", what, p.Status, p.Body)
	}
	if loc := p.Header.Get("Location"); strings.ContainsAny(loc, "\r\n\x00") {
		t.Errorf("%s: Location %q", what, loc)
	}
}

// TestReviewHostileParameters: every parameter of the authorization and
// logout endpoints, and every field of their forms (and of the request the
// forms carry), holding a NUL, a control byte, bad UTF-8 or a huge value, is
// a 4xx page or an error redirect, never a 500, on both databases.
func TestReviewHostileParameters(t *testing.T) {
	params := []string{"client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
		"code_challenge_method", "prompt", "max_age", "nonce", "login_hint", "id_token_hint",
		"response_mode", "resource", "display", "acr_values", "ui_locales", "request", "request_uri"}
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			signedIn := ts.browser()
			s := ts.flowTokens(signedIn, "web-a")
			_ = s
			fresh := ts.browser()
			for _, br := range []*servertest.Browser{fresh, signedIn} {
				for _, name := range params {
					for _, v := range hostileValues {
						q := oaz("web-a", rpCB, name, v)
						wantNo5xx(t, "GET authorize "+name, br.Authorize(q))
						wantNo5xx(t, "POST authorize "+name, br.Post(br.Issuer+server.PathAuthorize, q))
						lq := url.Values{name: {v}}
						wantNo5xx(t, "GET logout "+name, logout(br, false, lq))
						wantNo5xx(t, "POST logout "+name, logout(br, true, lq))
					}
				}
			}
			// Forms: login (fresh browser), consent, select (signed in).
			login := fresh.Authorize(oaz("web-a", rpCB))
			wantPage(t, login, 200, "login")
			sel := signedIn.Authorize(oaz("web-a", rpCB, "prompt", "select_account"))
			wantPage(t, sel, 200, "select")
			consent := signedIn.Authorize(oaz("web-a", rpCB, "prompt", "consent"))
			wantPage(t, consent, 200, "consent")
			bye := logout(signedIn, false, url.Values{})
			wantPage(t, bye, 200, "logout")
			for _, pg := range []struct {
				br *servertest.Browser
				p  *servertest.Page
			}{{fresh, login}, {signedIn, sel}, {signedIn, consent}, {signedIn, bye}} {
				for _, field := range []string{"csrf", "request", "username", "password", "action"} {
					for _, v := range hostileValues {
						wantNo5xx(t, pg.p.Kind+" "+field, pg.br.Submit(pg.p, url.Values{field: {v}, "username": {"alice"}, "password": {"x"}}))
					}
				}
				// The carried request with a hostile value in each parameter.
				for _, name := range params {
					for _, v := range hostileValues[:5] {
						q, _ := url.ParseQuery(pg.p.Fields.Get("request"))
						q.Set(name, v)
						wantNo5xx(t, pg.p.Kind+" request."+name, pg.br.Submit(pg.p, url.Values{"request": {q.Encode()}, "action": {"deny"}, "username": {"alice"}, "password": {"x"}}))
					}
				}
			}
			// A login whose username holds what PostgreSQL cannot store.
			for _, u := range []string{"ali\x00ce", "\xff", "ali\rce", strings.Repeat("a", 60<<10)} {
				l := fresh.Authorize(oaz("web-a", rpCB))
				wantNo5xx(t, "username", fresh.Login(l, u, "alice-pass"))
			}
		})
	}
}

// TestReviewCrossFormTokens: a form's CSRF token is good for its own form
// only: the consent, select and logout forms share the session binding,
// so each must refuse the others' tokens (RFC 6749 §10.12).
func TestReviewCrossFormTokens(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			ts.flowTokens(br, "web-a")
			sel := br.Authorize(oaz("web-a", rpCB, "prompt", "select_account"))
			wantPage(t, sel, 200, "select")
			consent := br.Authorize(oaz("web-a", rpCB, "prompt", "consent"))
			wantPage(t, consent, 200, "consent")
			bye := logout(br, false, url.Values{})
			wantPage(t, bye, 200, "logout")
			fresh := ts.browser()
			login := fresh.Authorize(oaz("web-a", rpCB))
			pages := map[string]*servertest.Page{"select": sel, "consent": consent, "logout": bye}
			for target, p := range pages {
				for source, q := range pages {
					if source == target {
						continue
					}
					got := br.Submit(p, url.Values{"csrf": q.Fields["csrf"], "action": {"allow"}})
					wantPage(t, got, http.StatusForbidden, "error")
					got = br.Submit(p, url.Values{"csrf": q.Fields["csrf"], "action": {"continue"}})
					wantPage(t, got, http.StatusForbidden, "error")
				}
				got := br.Submit(p, url.Values{"csrf": login.Fields["csrf"], "action": {"continue"}})
				wantPage(t, got, http.StatusForbidden, "error")
			}
			if !signedIn(t, br) {
				t.Fatal("signed out by a refused form")
			}
		})
	}
}

// TestReviewUserInfoTokens: UserInfo answers only a live access token:
// an ID token, a refresh token, or a revoked access token is
// invalid_token (OpenID Connect Core §5.3.3, RFC 6750 §3.1).
func TestReviewUserInfoTokens(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			loc := br.Flow(oaz("web-a", rpCB), "alice", "alice-pass")
			r := ts.token(webA, codeForm(loc.Query().Get("code"), v1, rpCB))
			wantTokens(t, r)
			for name, tok := range map[string]string{
				"id token": r.str("id_token"), "refresh token": r.str("refresh_token"),
			} {
				got := ts.do(call{method: http.MethodGet, path: server.PathUserInfo, auth: "Bearer " + tok})
				if got.status != http.StatusUnauthorized {
					t.Errorf("%s: %d %s", name, got.status, got.body)
				}
			}
			ok := ts.do(call{method: http.MethodGet, path: server.PathUserInfo, auth: "Bearer " + r.str("access_token")})
			if ok.status != 200 {
				t.Fatalf("access token: %d %s", ok.status, ok.body)
			}
			rv := ts.do(call{path: server.PathRevoke, auth: webA, form: url.Values{"token": {r.str("refresh_token")}}})
			if rv.status != 200 {
				t.Fatalf("revoke: %d %s", rv.status, rv.body)
			}
			got := ts.do(call{method: http.MethodGet, path: server.PathUserInfo, auth: "Bearer " + r.str("access_token")})
			if got.status != http.StatusUnauthorized {
				t.Errorf("revoked session's access token: %d %s", got.status, got.body)
			}
		})
	}
}

// TestReviewCodeAfterLogout: a code issued to a browser session that then
// signs out starts no session: RP-initiated logout ends the sessions the
// browser session started for the client (DESIGN.md §11), and one started
// after the logout by a code of that browser session would outlive it.
func TestReviewCodeAfterLogout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			ts.flowTokens(br, "web-a")
			p := br.Authorize(oaz("web-a", rpCB))
			code := wantCode(t, p, rpCB, stateOf2(t, p))
			bye := logout(br, false, url.Values{})
			wantPage(t, bye, 200, "logout")
			wantSignedOutPage(t, br.Submit(bye, nil))
			r := ts.token(webA, codeForm(code, v1, rpCB))
			if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
				t.Fatalf("code of a signed-out browser session: %d %s", r.status, r.body)
			}
		})
	}
}

// stateOf2 is the state an authorization redirect carries.
func stateOf2(t *testing.T, p *servertest.Page) string {
	t.Helper()
	return p.Query().Get("state")
}

package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
)

const (
	rpBye  = "https://rp.test/bye"
	rpbBye = "https://rpb.test/bye"
	webBCB = "https://rpb.test/cb"
)

// session is what a finished code flow gave a client: its tokens and the
// session (family) ID, the sid of its ID token.
type session struct {
	access, refresh, sid string
}

// flowTokens runs the code flow for client (web-a or web-b) as alice in br
// and redeems the code.
func (ts *testServer) flowTokens(br *servertest.Browser, client string) session {
	ts.t.Helper()
	uri, auth := rpCB, webA
	if client == "web-b" {
		uri, auth = webBCB, webB
	}
	loc := br.Flow(oaz(client, uri), "alice", "alice-pass")
	r := ts.token(auth, codeForm(loc.Query().Get("code"), v1, uri))
	wantTokens(ts.t, r)
	c, err := ts.keys.ParseAccessToken(ts.t.Context(), r.str("access_token"))
	if err != nil {
		ts.t.Fatal(err)
	}
	return session{access: r.str("access_token"), refresh: r.str("refresh_token"), sid: c.SessionID}
}

// logout sends a logout request by GET, or by POST when post.
func logout(br *servertest.Browser, post bool, params url.Values) *servertest.Page {
	if post {
		return br.Post(br.Issuer+server.PathLogout, params)
	}
	return br.Get(br.Issuer + server.PathLogout + "?" + params.Encode())
}

// signedIn reports whether br's session still stands: a prompt=none
// request of web-a is a code.
func signedIn(t *testing.T, br *servertest.Browser) bool {
	t.Helper()
	p := br.Authorize(oaz("web-a", rpCB, "prompt", "none"))
	return p.Query().Get("code") != ""
}

// wantSignedOutPage asserts the signed-out page: 200, no redirect.
func wantSignedOutPage(t *testing.T, p *servertest.Page) {
	t.Helper()
	wantPage(t, p, http.StatusOK, "signedout")
}

// wantByeRedirect asserts a 303 to exactly uri with query want.
func wantByeRedirect(t *testing.T, p *servertest.Page, uri string, want url.Values) {
	t.Helper()
	if p.Status != http.StatusSeeOther || p.Location == nil {
		t.Fatalf("got %d %q, want a 303 to %s:\n%s", p.Status, p.Kind, uri, p.Body)
	}
	u := *p.Location
	u.RawQuery = ""
	if u.String() != uri || p.Location.Query().Encode() != want.Encode() {
		t.Errorf("Location %q, want %s?%s", p.Location, uri, want.Encode())
	}
}

// TestLogoutWithHintOfThisSession (T-LOGOUT-2-a, -2-b, -2-e, -3-a, -3-b):
// with a hint of this browser's session and its client's registered URI,
// GET or POST signs out at once and 303s there with the state; the browser
// session and the sessions it started for that client end, the client's
// sessions in other browsers and other clients' sessions live on.
func TestLogoutWithHintOfThisSession(t *testing.T) {
	for _, b := range backends {
		for _, post := range []bool{false, true} {
			name := b.String() + "/GET"
			if post {
				name = b.String() + "/POST"
			}
			t.Run(name, func(t *testing.T) {
				ts := newOIDCServer(t, b)
				j1, j2 := ts.browser(), ts.browser()
				a1 := ts.flowTokens(j1, "web-a")
				b1 := ts.flowTokens(j1, "web-b")
				a2 := ts.flowTokens(j2, "web-a")
				cookie := j1.Cookie("__Host-keyturn-session").Value

				// The hint has expired: still accepted (§2).
				hint := ts.idToken("user-alice", "web-a", a1.sid)
				ts.clock.Advance(time.Hour)
				p := logout(j1, post, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpBye},
					"state": {"a b&c"}, "ui_locales": {"xx"}, "client_id": {"web-a"}})
				wantByeRedirect(t, p, rpBye, url.Values{"state": {"a b&c"}})
				if sc := p.Header.Get("Set-Cookie"); !strings.Contains(sc, "__Host-keyturn-session=;") || !strings.Contains(sc, "Max-Age=0") {
					t.Errorf("session cookie not cleared: %q", sc)
				}
				if s, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(cookie)); err != nil || s.RevokedAt.IsZero() {
					t.Errorf("browser session not revoked: %+v %v", s, err)
				}
				wantError(t, ts.token(webA, refresh(a1.refresh)), http.StatusBadRequest, "invalid_grant")
				if f, err := ts.store.GetFamily(t.Context(), a1.sid); err != nil || f.RevokeReason != storage.ReasonLogout {
					t.Errorf("web-a's session: %+v %v, want revoked for logout", f, err)
				}
				wantTokens(t, ts.token(webB, refresh(b1.refresh)))
				wantTokens(t, ts.token(webA, refresh(a2.refresh)))
				// The old cookie value signs nobody in.
				old := ts.browser()
				old.Jar.SetCookies(mustURL(t, testIssuer+"/"), []*http.Cookie{{Name: "__Host-keyturn-session", Value: cookie}})
				wantPage(t, old.Authorize(az("web-b", webBCB)), 200, "login")
				wantPage(t, j1.Authorize(az("web-b", webBCB)), 200, "login")
				if !signedIn(t, j2) {
					t.Error("the other browser was signed out")
				}

				// No state sent: none returned.
				p = logout(j2, post, url.Values{"id_token_hint": {ts.idToken("user-alice", "web-a", a2.sid)},
					"post_logout_redirect_uri": {rpBye}})
				wantByeRedirect(t, p, rpBye, url.Values{})
				if signedIn(t, j2) {
					t.Error("j2 still signed in")
				}
			})
		}
	}
}

// endFails is a store whose EndBrowserSession fails while fail is set, as
// when the database goes away during a logout.
type endFails struct {
	storage.Store
	fail atomic.Bool
}

func (s *endFails) EndBrowserSession(ctx context.Context, id, clientID string, now time.Time) (int64, error) {
	if s.fail.Load() {
		return 0, errors.New("end browser session: database unavailable")
	}
	return s.Store.EndBrowserSession(ctx, id, clientID, now)
}

// TestLogoutFailureChangesNothing: a logout whose storage operation fails
// is an error page that leaves the browser signed in, its cookie kept and
// the client's session live (not half a logout); the retry signs out and
// revokes that session.
func TestLogoutFailureChangesNothing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			var store *endFails
			ts := newAZServer(t, b, func(o *server.Options) {
				o.Clients = servertest.Registry(t, testIssuer, oidcClients(), testEnv)
				o.Keys = servertest.Keys(t, o.Store, 7, keys.Options{Now: o.Now, IDTokenAlgorithms: []string{keys.AlgRS256}})
				store = &endFails{Store: o.Store}
				o.Store = store
			})
			j := ts.browser()
			a := ts.flowTokens(j, "web-a")
			cookie := j.Cookie("__Host-keyturn-session").Value
			params := url.Values{"id_token_hint": {ts.idToken("user-alice", "web-a", a.sid)},
				"post_logout_redirect_uri": {rpBye}}

			store.fail.Store(true)
			p := logout(j, false, params)
			wantPage(t, p, http.StatusInternalServerError, "error")
			if sc := p.Header.Get("Set-Cookie"); strings.Contains(sc, "keyturn-session=;") {
				t.Errorf("session cookie cleared by a failed logout: %q", sc)
			}
			if s, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(cookie)); err != nil || !s.RevokedAt.IsZero() {
				t.Errorf("browser session after a failed logout: %+v %v, want live", s, err)
			}
			if f, err := ts.store.GetFamily(t.Context(), a.sid); err != nil || f.Revoked() {
				t.Errorf("web-a's session after a failed logout: %+v %v, want live", f, err)
			}
			if !signedIn(t, j) {
				t.Error("a failed logout signed the browser out")
			}

			store.fail.Store(false)
			wantByeRedirect(t, logout(j, false, params), rpBye, url.Values{})
			if f, err := ts.store.GetFamily(t.Context(), a.sid); err != nil || f.RevokeReason != storage.ReasonLogout {
				t.Errorf("web-a's session after the retry: %+v %v, want revoked for logout", f, err)
			}
			wantError(t, ts.token(webA, refresh(a.refresh)), http.StatusBadRequest, "invalid_grant")
			if signedIn(t, j) {
				t.Error("still signed in after the retry")
			}
		})
	}
}

// TestLogoutRedirectURIs (T-LOGOUT-3-a, -4-a): only a post-logout URI
// registered, exactly, for the hint's client is redirected to; anything
// else ends on the signed-out page. Without a session there is nothing to
// end, and a valid hint with a registered URI is still redirected (§4).
func TestLogoutRedirectURIs(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			hint := ts.idToken("user-alice", "web-a", "")
			for _, uri := range []string{"https://rp.test/bye/", "https://rp.test/bye?x=1", rpbBye, "https://evil.example/",
				"https://RP.test/bye", "https://rp.test/%62ye", rpCB} {
				p := logout(ts.browser(), false, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {uri}, "state": {"s"}})
				wantSignedOutPage(t, p)
				if t.Failed() {
					t.Fatal(uri)
				}
			}
			// Empty jar, valid hint, registered URI: redirected, no error.
			wantByeRedirect(t, logout(ts.browser(), false, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpBye}}),
				rpBye, url.Values{})
			// client_id alone is not enough (decision D20).
			wantSignedOutPage(t, logout(ts.browser(), false, url.Values{"client_id": {"web-a"}, "post_logout_redirect_uri": {rpBye}}))
			br := ts.browser()
			signInOIDC(t, br, "alice", "alice-pass")
			p := logout(br, false, url.Values{"client_id": {"web-a"}, "post_logout_redirect_uri": {rpBye}})
			wantPage(t, p, 200, "logout")
			wantSignedOutPage(t, br.Submit(p, nil))
			// web-b's hint with web-b's URI.
			wantByeRedirect(t, logout(ts.browser(), true, url.Values{"id_token_hint": {ts.idToken("user-alice", "web-b", "")},
				"post_logout_redirect_uri": {rpbBye}, "state": {"x"}}), rpbBye, url.Values{"state": {"x"}})
		})
	}
}

// TestLogoutConfirmation (T-LOGOUT-2-d, decision D20): without a hint of
// this session the user confirms on a page (headers of every page); only
// the form with its CSRF token for this session signs out; confirming
// with a valid hint and a registered URI then redirects.
func TestLogoutConfirmation(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			j1, j2 := ts.browser(), ts.browser()
			a1 := ts.flowTokens(j1, "web-a")
			ts.flowTokens(j2, "web-a")

			p := j1.Get(testIssuer + server.PathLogout)
			wantPage(t, p, 200, "logout")
			if p.Action != testIssuer+server.PathLogoutConfirm || p.Fields.Get("csrf") == "" || !strings.Contains(p.Body, "alice") {
				t.Errorf("confirmation page: action %q, fields %v", p.Action, p.Fields)
			}
			if !signedIn(t, j1) {
				t.Fatal("showing the page signed out")
			}
			for name, page := range map[string]*servertest.Page{
				"no csrf":      j1.Submit(p, url.Values{"csrf": {""}}),
				"garbage csrf": j1.Submit(p, url.Values{"csrf": {"x"}}),
				"other browser": func() *servertest.Page {
					return j2.Submit(p, nil) // j1's form posted from j2
				}(),
			} {
				wantPage(t, page, http.StatusForbidden, "error")
				if t.Failed() {
					t.Fatal(name)
				}
			}
			if !signedIn(t, j1) || !signedIn(t, j2) {
				t.Fatal("a refused form signed out")
			}
			cookie := j1.Cookie("__Host-keyturn-session").Value
			wantSignedOutPage(t, j1.Submit(p, nil))
			if s, err := ts.store.GetBrowserSession(t.Context(), sessionIDOf(cookie)); err != nil || s.RevokedAt.IsZero() {
				t.Errorf("browser session not revoked: %+v %v", s, err)
			}
			if signedIn(t, j1) {
				t.Error("still signed in after confirming")
			}
			// No hint: no client's sessions are ended, only the browser's.
			wantTokens(t, ts.token(webA, refresh(a1.refresh)))

			// A valid hint not of this session (j2's session, hint without
			// sid, another browser's sid): ask; confirming redirects.
			for _, sid := range []string{"", a1.sid, "unknown"} {
				j3 := ts.browser()
				s3 := ts.flowTokens(j3, "web-a")
				p = logout(j3, false, url.Values{"id_token_hint": {ts.idToken("user-alice", "web-a", sid)},
					"post_logout_redirect_uri": {rpBye}, "state": {"c"}})
				wantPage(t, p, 200, "logout")
				if !strings.Contains(p.Body, "Web A") {
					t.Error("the confirmation page does not name the client of the hint")
				}
				wantByeRedirect(t, j3.Submit(p, nil), rpBye, url.Values{"state": {"c"}})
				wantError(t, ts.token(webA, refresh(s3.refresh)), http.StatusBadRequest, "invalid_grant")
			}
			// Another user's hint for this browser's session ID: ask.
			j4 := ts.browser()
			s4 := ts.flowTokens(j4, "web-a")
			wantPage(t, logout(j4, false, url.Values{"id_token_hint": {ts.idToken("user-bob", "web-a", s4.sid)}}), 200, "logout")
			// A browser without a session posting the form: nothing to end;
			// the hint is valid and the URI registered, so back to the client.
			wantByeRedirect(t, ts.browser().Submit(p, nil), rpBye, url.Values{"state": {"c"}})
		})
	}
}

// TestLogoutBadRequests (T-LOGOUT-2-b, -2-c, bad input): a hint this
// server did not sign, of another issuer or malformed, a client_id that is
// not the hint's, an unknown client_id, repeated or NUL-holding parameters:
// an error page, no redirect, nobody signed out.
func TestLogoutBadRequests(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newOIDCServer(t, b)
			br := ts.browser()
			s := ts.flowTokens(br, "web-a")
			good := ts.idToken("user-alice", "web-a", s.sid)
			bad := map[string]url.Values{
				"foreign key":    {"id_token_hint": {ts.foreignIDToken("user-alice", "web-a")}, "post_logout_redirect_uri": {rpBye}},
				"other issuer":   {"id_token_hint": {signID(t, ts.keys, "https://evil.example", "user-alice", "web-a", s.sid, ts.clock.Now())}},
				"malformed":      {"id_token_hint": {"a.b.c"}},
				"access token":   {"id_token_hint": {s.access}, "post_logout_redirect_uri": {rpBye}},
				"other client":   {"id_token_hint": {good}, "client_id": {"web-b"}, "post_logout_redirect_uri": {rpBye}},
				"unknown client": {"client_id": {"nope"}},
				"repeated hint":  {"id_token_hint": {good, good}},
				"repeated state": {"id_token_hint": {good}, "state": {"a", "b"}, "post_logout_redirect_uri": {rpBye}},
				"NUL hint":       {"id_token_hint": {good + "\x00"}},
				"NUL state":      {"id_token_hint": {good}, "state": {"a\x00"}},
				"NUL client":     {"client_id": {"web-a\x00"}},
			}
			for name, params := range bad {
				for _, post := range []bool{false, true} {
					wantEPAGE(t, logout(br, post, params))
					if t.Failed() {
						t.Fatal(name)
					}
				}
			}
			if !signedIn(t, br) {
				t.Fatal("a bad logout request signed out")
			}
			wantTokens(t, ts.token(webA, refresh(s.refresh)))
			// A forged confirmation form: its request is checked again.
			p := logout(br, false, url.Values{})
			wantEPAGE(t, br.Submit(p, url.Values{"request": {"id_token_hint=a.b.c"}}))
			wantEPAGE(t, br.Submit(p, url.Values{"request": {"%zz"}}))
			// Not a form, or the confirmation by GET.
			if p := br.Get(testIssuer + server.PathLogoutConfirm); p.Status != http.StatusMethodNotAllowed {
				t.Errorf("GET of the confirmation: %d", p.Status)
			}
			if !signedIn(t, br) {
				t.Fatal("signed out")
			}
		})
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

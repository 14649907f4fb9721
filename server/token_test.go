package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

func TestTokenEndpointErrors(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ccOnly := basic("cc-only", ccSecret)
	withClient := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name       string
		call       call
		wantStatus int
		wantError  string
	}{
		{"GET", call{method: http.MethodGet, auth: confA}, 405, "invalid_request"},
		{"json body", call{auth: confA, ctype: "application/json", body: `{"grant_type":"password"}`}, 400, "invalid_request"},
		{"no content type", call{auth: confA, ctype: "text/plain", body: "grant_type=client_credentials"}, 400, "invalid_request"},
		{"params in query", call{auth: confA, path: server.PathToken + "?grant_type=password", form: url.Values{"grant_type": {"client_credentials"}}}, 400, "invalid_request"},
		{"secret in query", call{path: server.PathToken + "?client_secret=x", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}}}, 400, "invalid_request"},
		{"repeated parameter", call{auth: confA, body: "grant_type=client_credentials&scope=read&scope=write"}, 400, "invalid_request"},
		{"repeated grant_type", call{auth: confA, body: "grant_type=client_credentials&grant_type=password"}, 400, "invalid_request"},
		{"no client authentication", call{form: url.Values{"grant_type": {"client_credentials"}}}, 401, "invalid_client"},
		{"wrong secret basic", call{auth: basic("conf-a", "nope"), form: url.Values{"grant_type": {"client_credentials"}}}, 401, "invalid_client"},
		{"wrong secret post", call{form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}, "client_secret": {"nope"}}}, 401, "invalid_client"},
		{"unknown client", call{auth: basic("nobody", "x"), form: url.Values{"grant_type": {"client_credentials"}}}, 401, "invalid_client"},
		{"confidential client without secret", call{form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}}}, 401, "invalid_client"},
		{"public client with a secret", call{form: withClient(pw("ada", userPass), "client_id", "public-m", "client_secret", "x")}, 401, "invalid_client"},
		{"basic bad base64", call{auth: "Basic !!!", form: url.Values{"grant_type": {"client_credentials"}}}, 401, "invalid_client"},
		{"bearer scheme", call{auth: "Bearer abc", form: url.Values{"grant_type": {"client_credentials"}}}, 401, "invalid_client"},
		{"basic and client_secret", call{auth: confA, form: url.Values{"grant_type": {"client_credentials"}, "client_secret": {confASecret}}}, 400, "invalid_request"},
		{"basic and another client_id", call{auth: confA, form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-b"}}}, 400, "invalid_request"},
		{"missing grant_type", call{auth: confA, form: url.Values{"scope": {"read"}}}, 400, "invalid_request"},
		{"unknown grant_type", call{auth: confA, form: url.Values{"grant_type": {"magic"}}}, 400, "unsupported_grant_type"},
		{"authorization_code not allowed for client", call{auth: confA, form: url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"https://x"}}}, 400, "unauthorized_client"},
		{"implicit not served", call{auth: confA, form: url.Values{"grant_type": {"implicit"}}}, 400, "unsupported_grant_type"},
		{"grant not allowed for client", call{auth: basic("conf-b", confBSecret), form: url.Values{"grant_type": {"client_credentials"}}}, 400, "unauthorized_client"},
		{"password grant not allowed", call{auth: ccOnly, form: pw("ada", userPass)}, 400, "unauthorized_client"},
		{"missing username", call{auth: confA, form: url.Values{"grant_type": {"password"}, "password": {userPass}}}, 400, "invalid_request"},
		{"missing password", call{auth: confA, form: url.Values{"grant_type": {"password"}, "username": {"ada"}}}, 400, "invalid_request"},
		{"missing refresh_token", call{auth: confA, form: url.Values{"grant_type": {"refresh_token"}}}, 400, "invalid_request"},
		{"wrong password", call{auth: confA, form: pw("ada", "nope")}, 400, "invalid_grant"},
		{"unknown user", call{auth: confA, form: pw("nobody", userPass)}, 400, "invalid_grant"},
		{"scope not allowed", call{auth: confA, form: withClient(pw("ada", userPass), "scope", "admin")}, 400, "invalid_scope"},
		{"scope not allowed cc", call{auth: confA, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"read admin"}}}, 400, "invalid_scope"},
		{"resource not an audience", call{auth: confA, form: url.Values{"grant_type": {"client_credentials"}, "resource": {"https://evil.example.com"}}}, 400, "invalid_target"},
		{"malformed refresh token", call{auth: confA, form: refresh("garbage")}, 400, "invalid_grant"},
		{"unknown family", call{auth: confA, form: refresh("ktr1.AAAAAAAAAAAAAAAAAAAAAA.0." + strings.Repeat("A", 43))}, 400, "invalid_grant"},
		{"oversized body", call{auth: confA, body: "grant_type=client_credentials&pad=" + strings.Repeat("x", 70<<10)}, 413, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ts.do(tt.call), tt.wantStatus, tt.wantError)
		})
	}
	t.Run("405 names POST", func(t *testing.T) {
		if r := ts.do(call{method: http.MethodGet}); r.header.Get("Allow") != "POST" {
			t.Fatalf("Allow = %q", r.header.Get("Allow"))
		}
	})
}

func TestClientAuthentication(t *testing.T) {
	ts := newTestServer(t, sqlite)
	cc := url.Values{"grant_type": {"client_credentials"}}
	t.Run("basic with form-urlencoded special characters", func(t *testing.T) {
		if r := ts.token(confA, cc); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	// RFC 6749 §2.3.1 asks for form-encoded Basic credentials, but curl -u
	// and several client libraries send the secret as is: it is tried as
	// sent when the decoded one fails.
	t.Run("basic not form-urlencoded", func(t *testing.T) {
		if r := ts.token(rawBasic("conf-a", confASecret), cc); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("client_secret_post", func(t *testing.T) {
		r := ts.do(call{form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}, "client_secret": {confASecret}}})
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("basic with matching body client_id", func(t *testing.T) {
		r := ts.do(call{auth: confA, form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"conf-a"}}})
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("public client by client_id", func(t *testing.T) {
		f := pw("ada", userPass)
		f.Set("client_id", "public-m")
		if r := ts.do(call{form: f}); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

// The password is never checked for a client that has not authenticated or
// may not use the grant (go-oauth2's stock flow checks it first). A user
// whose stored hash is corrupt makes a password check observable: it
// would answer 500.
func TestClientCheckedBeforePassword(t *testing.T) {
	ts := newTestServer(t, sqlite)
	u := storage.User{ID: "user-broken", Username: "broken", PasswordHash: "$argon2id$corrupt", CreatedAt: ts.clock.Now(), UpdatedAt: ts.clock.Now()}
	if err := ts.store.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	wantError(t, ts.token(basic("conf-a", "wrong"), pw("broken", "x")), 401, "invalid_client")
	wantError(t, ts.token(basic("cc-only", ccSecret), pw("broken", "x")), 400, "unauthorized_client")
	// The check does run once the client is authenticated: a server error
	// with no internal detail on the wire.
	r := ts.token(confA, pw("broken", "x"))
	if r.status != 500 || string(r.body) != "{\"error\":\"server_error\"}\n" {
		t.Fatalf("got %d %s, want a bare server_error", r.status, r.body)
	}
}

func TestPasswordGrantOneAnswerForEveryFailure(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ts.addUser("dis", userPass)
	if err := ts.store.SetUserDisabled(t.Context(), "dis", true, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, f := range []url.Values{pw("ada", "wrong"), pw("nobody", userPass), pw("dis", userPass)} {
		r := ts.token(confA, f)
		wantError(t, r, 400, "invalid_grant")
		bodies = append(bodies, string(r.body))
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("failures are distinguishable:\n%s", strings.Join(bodies, ""))
	}
}

func TestPasswordGrant(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	for k, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
	}
	if r.str("token_type") != "Bearer" || r.json["expires_in"] != float64(900) || r.str("scope") != "read" {
		t.Fatalf("response %s", r.body)
	}
	if r.json["refresh_expires_in"] != float64(120*3600) {
		t.Fatalf("refresh_expires_in = %v, want the idle TTL", r.json["refresh_expires_in"])
	}
	if !strings.HasPrefix(r.str("refresh_token"), "ktr2.") {
		t.Fatalf("refresh_token = %q", r.str("refresh_token"))
	}
	c := ts.verifyAccessToken(r.str("access_token"))
	if c.Subject != "user-ada" || c.ClientID != "conf-a" || c.Scope != "read" || c.SessionID == "" {
		t.Fatalf("claims %+v", c)
	}
	if len(c.Audience) != 2 || c.Audience[0] != "https://api.example.com" {
		t.Fatalf("aud = %v, want the client's audience", c.Audience)
	}
	// RFC 8707: a resource narrows the audience.
	f := pw("ada", userPass)
	f.Set("resource", "https://other.example.com")
	f.Set("scope", "read write")
	r = ts.token(confA, f)
	c = ts.verifyAccessToken(r.str("access_token"))
	if len(c.Audience) != 1 || c.Audience[0] != "https://other.example.com" || c.Scope != "read write" {
		t.Fatalf("claims %+v", c)
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.token(basic("cc-only", ccSecret), url.Values{"grant_type": {"client_credentials"}})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if _, ok := r.json["refresh_token"]; ok {
		t.Fatal("client_credentials must not issue a refresh token (RFC 6749 §4.4.3)")
	}
	c := ts.verifyAccessToken(r.str("access_token"))
	if c.Subject != "cc-only" || c.ClientID != "cc-only" || c.SessionID != "" {
		t.Fatalf("claims %+v", c)
	}
	if len(c.Audience) != 1 || c.Audience[0] != testIssuer {
		t.Fatalf("aud = %v, want the server default", c.Audience)
	}
	if _, ok := r.json["scope"]; ok {
		t.Fatalf("no scope requested and no default: response %s", r.body)
	}
}

func TestRefreshRotation(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			rt1 := ts.login(confA).str("refresh_token")
			r := ts.token(confA, refresh(rt1))
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			rt2 := r.str("refresh_token")
			if rt2 == "" || rt2 == rt1 {
				t.Fatalf("refresh token not rotated: %q", rt2)
			}
			sid := ts.verifyAccessToken(r.str("access_token")).SessionID
			// Replaying the rotated token revokes the whole session: its
			// newest token dies too (RFC 9700 §4.14.2).
			wantError(t, ts.token(confA, refresh(rt1)), 400, "invalid_grant")
			wantError(t, ts.token(confA, refresh(rt2)), 400, "invalid_grant")
			f, err := ts.store.GetFamily(t.Context(), sid)
			if err != nil {
				t.Fatal(err)
			}
			if f.RevokeReason != storage.ReasonReuse {
				t.Fatalf("family %+v, want revoked for reuse", f)
			}
			if !strings.Contains(ts.logs.String(), `"msg":"refresh token reused; family revoked"`) {
				t.Fatalf("reuse not logged:\n%s", ts.logs)
			}
		})
	}
}

func TestForgedRefreshTokensRevokeNothing(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rt := ts.login(confA).str("refresh_token")
	parts := strings.Split(rt, ".")
	forged := []string{
		strings.Join([]string{parts[0], parts[1], parts[2], strings.Repeat("A", 43)}, "."), // bad MAC
		strings.Join([]string{parts[0], parts[1], "7", parts[3]}, "."),                     // other generation, same MAC
		strings.Join([]string{parts[0], parts[1], "00", parts[3]}, "."),                    // non-canonical generation
		strings.Join([]string{"ktr1", parts[1], parts[2], parts[3]}, "."),                  // other version
		rt + "x",
	}
	for _, f := range forged {
		wantError(t, ts.token(confA, refresh(f)), 400, "invalid_grant")
	}
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Fatalf("genuine token after forgeries: %d %s", r.status, r.body)
	}
}

// TestRefreshTokenFromAnotherServer: two servers share one database but not
// their master secret (two deployments pointed at one database). B finds
// A's session, for the same client, at the current generation: only the
// refresh token's MAC says B did not mint it. B refuses it (invalid_grant,
// RFC 6749 §5.2) and revokes nothing: A's user can still refresh.
func TestRefreshTokenFromAnotherServer(t *testing.T) {
	for _, be := range backends {
		t.Run(be.String(), func(t *testing.T) {
			store := openStore(t, be)
			a := newTestServerOn(t, store)
			b := newTestServerOn(t, store, func(o *server.Options) {
				// B's signing keys live elsewhere: they are sealed under B's
				// secret, which cannot open A's.
				o.Keys = servertest.Keys(t, sqlstoretest.SQLite(t), 8, keys.Options{Now: o.Now})
			})
			rt := a.login(confA).str("refresh_token")
			wantError(t, b.token(confA, refresh(rt)), 400, "invalid_grant")
			if r := a.token(confA, refresh(rt)); r.status != 200 {
				t.Fatalf("A refreshing its own token after B refused it: %d %s", r.status, r.body)
			}
		})
	}
}

func TestRefreshBoundToClient(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rt := ts.login(confA).str("refresh_token")
	wantError(t, ts.token(basic("conf-b", confBSecret), refresh(rt)), 400, "invalid_grant")
	// A confidential client must authenticate to refresh (RFC 6749 §6).
	f := refresh(rt)
	f.Set("client_id", "conf-a")
	wantError(t, ts.do(call{form: f}), 401, "invalid_client")
	wantError(t, ts.token(basic("conf-a", "wrong"), refresh(rt)), 401, "invalid_client")
	// None of that touched the session.
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestPublicClientRefresh(t *testing.T) {
	ts := newTestServer(t, sqlite)
	f := pw("ada", userPass)
	f.Set("client_id", "public-m")
	rt := ts.do(call{form: f}).str("refresh_token")
	f = refresh(rt)
	f.Set("client_id", "public-m")
	if r := ts.do(call{form: f}); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestRefreshScope(t *testing.T) {
	ts := newTestServer(t, sqlite)
	f := pw("ada", userPass)
	f.Set("scope", "read write")
	rt := ts.token(confA, f).str("refresh_token")

	narrow := refresh(rt)
	narrow.Set("scope", "read")
	r := ts.token(confA, narrow)
	if r.status != 200 || r.str("scope") != "read" || ts.verifyAccessToken(r.str("access_token")).Scope != "read" {
		t.Fatalf("narrowed refresh: %d %s", r.status, r.body)
	}
	// The session keeps its scope: omitting scope gives it all back.
	r = ts.token(confA, refresh(r.str("refresh_token")))
	if r.status != 200 || r.str("scope") != "read write" {
		t.Fatalf("refresh without scope: %d %s", r.status, r.body)
	}
	// Never wider than the session: go-oauth2's stock manager allows this.
	f = pw("ada", userPass)
	rt = ts.token(confA, f).str("refresh_token") // scope read
	wide := refresh(rt)
	wide.Set("scope", "read write")
	wantError(t, ts.token(confA, wide), 400, "invalid_scope")
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Fatalf("invalid_scope must not spend the token: %d %s", r.status, r.body)
	}
}

func TestRefreshExpiry(t *testing.T) {
	ts := newTestServer(t, sqlite)
	t.Run("idle", func(t *testing.T) {
		rt := ts.login(confA).str("refresh_token")
		ts.clock.Advance(120*time.Hour + time.Second)
		wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
	})
	t.Run("idle slides, absolute does not", func(t *testing.T) {
		rt := ts.login(confA).str("refresh_token")
		start := ts.clock.Now()
		for ts.clock.Now().Sub(start) < 700*time.Hour {
			ts.clock.Advance(100 * time.Hour)
			r := ts.token(confA, refresh(rt))
			if r.status != 200 {
				t.Fatalf("at +%v: %d %s", ts.clock.Now().Sub(start), r.status, r.body)
			}
			rt = r.str("refresh_token")
			left := time.Duration(r.json["refresh_expires_in"].(float64)) * time.Second
			if want := min(120*time.Hour, start.Add(720*time.Hour).Sub(ts.clock.Now())); left != want {
				t.Fatalf("refresh_expires_in = %v, want %v", left, want)
			}
		}
		ts.clock.Advance(21 * time.Hour) // +721h: idle is fine, absolute has passed
		wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
	})
}

func TestDisabledOrDeletedUserCannotRefresh(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ts.addUser("bob", userPass)
	login := func() string { return ts.token(confA, pw("bob", userPass)).str("refresh_token") }
	rt := login()
	if err := ts.store.SetUserDisabled(t.Context(), "bob", true, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
	if err := ts.store.SetUserDisabled(t.Context(), "bob", false, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant") // enabling does not revive sessions
	rt = login()
	if err := ts.store.DeleteUser(t.Context(), "bob", ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
}

func TestGraceWindow(t *testing.T) {
	ts := newTestServer(t, sqlite)
	g := basic("grace", graceSecret)
	rt1 := ts.login(g).str("refresh_token")
	r := ts.token(g, refresh(rt1))
	rt2, at := r.str("refresh_token"), r.str("access_token")

	ts.clock.Advance(5 * time.Second)
	retry := ts.token(g, refresh(rt1)) // the response to the first refresh was lost
	if retry.status != 200 || retry.str("refresh_token") != rt2 {
		t.Fatalf("grace retry: %d %s, want the same successor", retry.status, retry.body)
	}
	if retry.str("access_token") == at {
		t.Fatal("grace retry must mint a fresh access token")
	}
	r = ts.token(g, refresh(rt2)) // the session is alive and rotates on
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	rt3 := r.str("refresh_token")
	// rt1 is now two generations old: reuse, whatever the window.
	wantError(t, ts.token(g, refresh(rt1)), 400, "invalid_grant")
	wantError(t, ts.token(g, refresh(rt3)), 400, "invalid_grant")

	t.Run("outside the window is reuse", func(t *testing.T) {
		rt1 := ts.login(g).str("refresh_token")
		rt2 := ts.token(g, refresh(rt1)).str("refresh_token")
		ts.clock.Advance(10 * time.Second)
		wantError(t, ts.token(g, refresh(rt1)), 400, "invalid_grant")
		wantError(t, ts.token(g, refresh(rt2)), 400, "invalid_grant")
	})
	t.Run("strict clients have no window", func(t *testing.T) {
		rt1 := ts.login(confA).str("refresh_token")
		rt2 := ts.token(confA, refresh(rt1)).str("refresh_token")
		wantError(t, ts.token(confA, refresh(rt1)), 400, "invalid_grant")
		wantError(t, ts.token(confA, refresh(rt2)), 400, "invalid_grant")
	})
}

// concurrentRefresh presents one refresh token n times at once and
// returns the replies.
func (ts *testServer) concurrentRefresh(auth, rt string, n int) []reply {
	var wg sync.WaitGroup
	replies := make([]reply, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = ts.token(auth, refresh(rt))
		})
	}
	close(start)
	wg.Wait()
	return replies
}

// TestConcurrentRefreshOneWins: of concurrent refreshes with one token,
// exactly one rotates it. For a strict client (no grace window) the others
// are reuse — two parties presented one token — and end the session, the
// winner's new token included (RFC 9700 §4.14.2).
func TestConcurrentRefreshOneWins(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			rt := ts.login(confA).str("refresh_token")
			var won []string
			for _, r := range ts.concurrentRefresh(confA, rt, 20) {
				switch r.status {
				case 200:
					won = append(won, r.str("refresh_token"))
				case 400:
					if r.str("error") != "invalid_grant" {
						t.Errorf("loser: %s", r.body)
					}
				default:
					t.Errorf("status %d %s", r.status, r.body)
				}
			}
			if len(won) != 1 {
				t.Fatalf("%d of 20 concurrent refreshes succeeded, want exactly 1", len(won))
			}
			wantError(t, ts.token(confA, refresh(won[0])), 400, "invalid_grant")
		})
	}
}

// TestConcurrentRefreshWithinGrace: with a grace window the losers are
// retries of the previous generation: all get the same successor, there is
// still only one live token, and the session goes on.
func TestConcurrentRefreshWithinGrace(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			g := basic("grace", graceSecret)
			rt := ts.login(g).str("refresh_token")
			successors := map[string]bool{}
			for _, r := range ts.concurrentRefresh(g, rt, 20) {
				if r.status != 200 {
					t.Fatalf("status %d %s", r.status, r.body)
				}
				successors[r.str("refresh_token")] = true
			}
			if len(successors) != 1 {
				t.Fatalf("%d different successors, want one", len(successors))
			}
			for next := range successors {
				if r := ts.token(g, refresh(next)); r.status != 200 {
					t.Fatalf("the successor: %d %s", r.status, r.body)
				}
			}
		})
	}
}

func TestThousandRotationsOneRow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			rt := ts.login(confA).str("refresh_token")
			for i := range 1000 {
				r := ts.token(confA, refresh(rt))
				if r.status != 200 {
					t.Fatalf("rotation %d: %d %s", i, r.status, r.body)
				}
				rt = r.str("refresh_token")
			}
			fams, err := ts.store.ListFamilies(context.Background(), storage.FamilyFilter{UserID: "user-ada"})
			if err != nil {
				t.Fatal(err)
			}
			if len(fams) != 1 || fams[0].Generation != 1000 {
				t.Fatalf("got %d rows (%+v), want one at generation 1000", len(fams), fams)
			}
			if !strings.HasPrefix(rt, fmt.Sprintf("ktr2.%s.1000.", fams[0].ID)) {
				t.Fatalf("token %q", rt)
			}
		})
	}
}

// TestReuseDecidedBeforeScope: a rotated token is reuse whatever else the
// request says; it cannot probe the session with a bad scope.
func TestReuseDecidedBeforeScope(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rt1 := ts.login(confA).str("refresh_token")
	rt2 := ts.token(confA, refresh(rt1)).str("refresh_token")
	probe := refresh(rt1)
	probe.Set("scope", "write")
	wantError(t, ts.token(confA, probe), 400, "invalid_grant")
	wantError(t, ts.token(confA, refresh(rt2)), 400, "invalid_grant") // the session ended
}

// TestScopeCheckedBeforePassword: a scope the client may never have is
// refused before the password is looked at (a corrupt hash would be a 500).
func TestScopeCheckedBeforePassword(t *testing.T) {
	ts := newTestServer(t, sqlite)
	u := storage.User{ID: "user-broken", Username: "broken", PasswordHash: "$argon2id$corrupt", CreatedAt: ts.clock.Now(), UpdatedAt: ts.clock.Now()}
	if err := ts.store.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	f := pw("broken", "x")
	f.Set("scope", "admin")
	wantError(t, ts.token(confA, f), 400, "invalid_scope")
}

// TestRefreshAcrossInstances: instances that share a database answer every
// refresh alike, whether they have seen the session or not (a ktr2 token
// is checked from the token and the keys alone: nothing of the session is
// kept in memory). Each step runs on the instance that opened the session
// and on ones that never saw it.
func TestRefreshAcrossInstances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			store := openStore(t, b)
			a := newTestServerOn(t, store, nil)
			fresh := func() *testServer { return newTestServerOn(t, store, nil) }
			family := func(sid string) storage.Family {
				f, err := store.GetFamily(t.Context(), sid)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}

			// Rotation alternates between an instance that knows the
			// session (a, from the login) and ones that do not.
			r := a.login(confA)
			rt0, sid := r.str("refresh_token"), a.verifyAccessToken(r.str("access_token")).SessionID
			rts := []string{rt0}
			for i, ts := range []*testServer{fresh(), a, fresh(), a} {
				r := ts.token(confA, refresh(rts[len(rts)-1]))
				if r.status != 200 {
					t.Fatalf("refresh %d: %d %s", i, r.status, r.body)
				}
				rts = append(rts, r.str("refresh_token"))
			}
			if f := family(sid); f.Generation != 4 || f.Revoked() {
				t.Fatalf("after 4 refreshes: generation %d, revoked %v", f.Generation, f.Revoked())
			}

			// Neither kind of instance revokes on a token it did not
			// mint, nor on a genuine one from the future (a database
			// restored from a backup), nor on another client's request.
			f := family(sid)
			future := a.keys.RefreshToken(f, f.Generation+1)
			badMAC := rts[4][:strings.LastIndexByte(rts[4], '.')+1] + strings.Repeat("A", 43)
			for name, ts := range map[string]*testServer{"known": a, "unknown": fresh()} {
				wantError(t, ts.token(confA, refresh(future)), 400, "invalid_grant")
				wantError(t, ts.token(confA, refresh(badMAC)), 400, "invalid_grant")
				wantError(t, ts.token(basic("conf-b", confBSecret), refresh(rts[4])), 400, "invalid_grant")
				if f := family(sid); f.Revoked() || f.Generation != 4 {
					t.Fatalf("%s instance: the session changed: revoked %v (%s), generation %d",
						name, f.Revoked(), f.RevokeReason, f.Generation)
				}
			}

			// Reuse on the instance that knows the session revokes it,
			// and its newest token dies on every instance.
			wantError(t, a.token(confA, refresh(rts[1])), 400, "invalid_grant")
			if f := family(sid); f.RevokeReason != storage.ReasonReuse {
				t.Fatalf("reuse on a known session: %+v, want revoked for reuse", f)
			}
			wantError(t, a.token(confA, refresh(rts[4])), 400, "invalid_grant")
			wantError(t, fresh().token(confA, refresh(rts[4])), 400, "invalid_grant")

			// And on an instance that never saw the session.
			rt0 = a.login(confA).str("refresh_token")
			rt1 := a.token(confA, refresh(rt0)).str("refresh_token")
			c := fresh()
			wantError(t, c.token(confA, refresh(rt0)), 400, "invalid_grant")
			wantError(t, a.token(confA, refresh(rt1)), 400, "invalid_grant")
		})
	}
}

// TestGraceWindowOnAnotherInstance: a retry inside the grace window gets the
// same successor from an instance that did not rotate the session.
func TestGraceWindowOnAnotherInstance(t *testing.T) {
	store := openStore(t, sqlite)
	a, b := newTestServerOn(t, store, nil), newTestServerOn(t, store, nil)
	g := basic("grace", graceSecret)
	rt1 := a.login(g).str("refresh_token")
	rt2 := a.token(g, refresh(rt1)).str("refresh_token")
	if r := b.token(g, refresh(rt1)); r.status != 200 || r.str("refresh_token") != rt2 {
		t.Fatalf("grace retry on b: %d %s, want the same successor", r.status, r.body)
	}
	if r := a.token(g, refresh(rt1)); r.status != 200 || r.str("refresh_token") != rt2 {
		t.Fatalf("grace retry on a: %d %s, want the same successor", r.status, r.body)
	}
	if r := b.token(g, refresh(rt2)); r.status != 200 {
		t.Fatalf("the successor on b: %d %s", r.status, r.body)
	}
}

// TestPasswordGrantWithoutRefreshGrant: a client whose grant_types lack
// refresh_token gets no refresh token (RFC 6749 §4.3.3: it is OPTIONAL; a
// token for a grant the client may not use would be useless at best). Its
// login still opens a session, as long as its access token lives, so that
// the token's sid is introspected like any other: inactive once the user is
// disabled or the session revoked.
func TestPasswordGrantWithoutRefreshGrant(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			auth := basic("pw-only", pwOnly)
			r := ts.login(auth)
			if _, ok := r.json["refresh_token"]; ok {
				t.Fatalf("refresh token issued to a client without the refresh_token grant: %s", r.body)
			}
			if _, ok := r.json["refresh_expires_in"]; ok {
				t.Fatalf("refresh_expires_in without a refresh token: %s", r.body)
			}
			at := r.str("access_token")
			c := ts.verifyAccessToken(at)
			if c.SessionID == "" || c.Subject != "user-ada" {
				t.Fatalf("claims %+v, want ada's and a session", c)
			}
			f, err := ts.store.GetFamily(t.Context(), c.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if exp := c.Expiry.Time(); f.ExpiresAt().Before(exp) || f.ExpiresAt().After(exp.Add(time.Second)) {
				t.Errorf("session expires at %v, want with its access token at %v", f.ExpiresAt(), exp)
			}
			if r := ts.introspect(confBAuth, at); r.json["active"] != true || r.str("username") != "ada" {
				t.Fatalf("introspect: %d %s", r.status, r.body)
			}
			// Refreshing stays refused for this client.
			wantError(t, ts.token(auth, refresh("ktr1.AAAAAAAAAAAAAAAAAAAAAA.0.x")), 400, "unauthorized_client")

			if err := ts.store.SetUserDisabled(t.Context(), "ada", true, ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if r := ts.introspect(confBAuth, at); r.status != 200 || string(r.body) != "{\"active\":false}\n" {
				t.Fatalf("introspect after the user was disabled: %d %s", r.status, r.body)
			}
		})
	}
}

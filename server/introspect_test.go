package server_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
)

func (ts *testServer) introspect(auth, token string) reply {
	ts.t.Helper()
	r := ts.do(call{path: server.PathIntrospect, auth: auth, form: url.Values{"token": {token}}})
	if r.status == 200 && r.header.Get("Cache-Control") != "no-store" {
		ts.t.Errorf("introspection without Cache-Control: no-store")
	}
	return r
}

// wantInactive asserts RFC 7662 §2.2's inactive answer, exactly.
func (ts *testServer) wantInactive(auth, token string) {
	ts.t.Helper()
	r := ts.introspect(auth, token)
	if r.status != 200 || string(r.body) != "{\"active\":false}\n" {
		ts.t.Fatalf("got %d %s, want exactly {\"active\":false}", r.status, r.body)
	}
}

func (ts *testServer) wantActive(auth, token string) reply {
	ts.t.Helper()
	r := ts.introspect(auth, token)
	if r.status != 200 || r.json["active"] != true {
		ts.t.Fatalf("got %d %s, want active", r.status, r.body)
	}
	return r
}

func TestIntrospectAccessToken(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	at := r.str("access_token")
	c := ts.verifyAccessToken(at)
	got := ts.wantActive(rsAuth, at)
	want := map[string]any{
		"active": true, "scope": "read", "client_id": "conf-a", "username": "ada", "sub": "user-ada",
		"iss": testIssuer, "token_type": "Bearer", "jti": c.ID, "sid": c.SessionID,
		"exp": float64(c.Expiry.Time().Unix()), "iat": float64(c.IssuedAt.Time().Unix()),
	}
	for k, v := range want {
		if got.json[k] != v {
			t.Errorf("%s = %v, want %v", k, got.json[k], v)
		}
	}
	if aud, _ := got.json["aud"].([]any); len(aud) != 2 {
		t.Errorf("aud = %v", got.json["aud"])
	}
	// client_credentials tokens have no session and no username.
	cc := ts.token(rsAuth, url.Values{"grant_type": {"client_credentials"}}).str("access_token")
	if r := ts.wantActive(rsAuth, cc); r.json["username"] != nil || r.json["sid"] != nil || r.json["sub"] != "cc-only" {
		t.Fatalf("client_credentials introspection %s", r.body)
	}
}

func TestIntrospectInactive(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	at, rt := r.str("access_token"), r.str("refresh_token")
	other := newTestServer(t, sqlite).login(confA).str("access_token")
	for name, tok := range map[string]string{
		"garbage":        "garbage",
		"empty jwt":      "a.b.c",
		"tampered":       at[:len(at)-4] + "AAAA",
		"alg none":       "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
		"foreign kid":    other,
		"refresh for rs": rt, // refresh tokens are active only to their own client
	} {
		t.Run(name, func(t *testing.T) { ts.wantInactive(rsAuth, tok) })
	}
	t.Run("expired", func(t *testing.T) {
		at := ts.login(confA).str("access_token")
		ts.clock.Advance(15 * time.Minute)
		ts.wantInactive(rsAuth, at)
	})
	t.Run("session expired, token not", func(t *testing.T) {
		short := basic("short", shortSecret)
		at := ts.login(short).str("access_token") // 15 min token, 5 min idle session
		ts.clock.Advance(6 * time.Minute)
		ts.verifyAccessToken(at) // still fine offline
		ts.wantInactive(rsAuth, at)
	})
	t.Run("session revoked by reuse", func(t *testing.T) {
		r := ts.login(confA)
		rt1, at := r.str("refresh_token"), r.str("access_token")
		ts.token(confA, refresh(rt1))
		ts.token(confA, refresh(rt1)) // reuse
		ts.wantInactive(rsAuth, at)
	})
	t.Run("user disabled", func(t *testing.T) {
		ts.addUser("eve", userPass)
		at := ts.token(confA, pw("eve", userPass)).str("access_token")
		ts.wantActive(rsAuth, at)
		if err := ts.store.SetUserDisabled(t.Context(), "eve", true, ts.clock.Now()); err != nil {
			t.Fatal(err)
		}
		ts.wantInactive(rsAuth, at)
	})
}

func TestIntrospectCallers(t *testing.T) {
	ts := newTestServer(t, sqlite)
	at := ts.login(confA).str("access_token")
	// Only registered resource servers may introspect (RFC 7662 §2.1, §4).
	wantError(t, ts.introspect(confA, at), 401, "invalid_client")
	wantError(t, ts.introspect("", at), 401, "invalid_client")
	wantError(t, ts.introspect(basic("cc-only", "wrong"), at), 401, "invalid_client")
	f := tokenForm(at)
	f.Set("client_id", "public-m")
	wantError(t, ts.do(call{path: server.PathIntrospect, form: f}), 401, "invalid_client")
	wantError(t, ts.do(call{path: server.PathIntrospect, auth: rsAuth, form: url.Values{}}), 400, "invalid_request")
	wantError(t, ts.do(call{method: http.MethodGet, path: server.PathIntrospect, auth: rsAuth}), 405, "invalid_request")
}

func TestIntrospectRefreshTokenOwnClientOnly(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rt1 := ts.login(confBAuth).str("refresh_token")
	r := ts.wantActive(confBAuth, rt1) // conf-b may introspect and owns the token
	if r.json["client_id"] != "conf-b" || r.json["username"] != "ada" || r.json["token_type"] != nil {
		t.Fatalf("refresh introspection %s", r.body)
	}
	ts.wantInactive(rsAuth, rt1) // another resource server
	rt2 := ts.token(confBAuth, refresh(rt1)).str("refresh_token")
	ts.wantInactive(confBAuth, rt1) // rotated away
	ts.wantActive(confBAuth, rt2)
	// Introspection is read-only: looking at a rotated token is not reuse.
	if r := ts.token(confBAuth, refresh(rt2)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestIntrospectOnlyForTheCallersAudience: RFC 7662 §4 — a resource server
// learns nothing about tokens for another audience (T-7662-4-b).
func TestIntrospectOnlyForTheCallersAudience(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rs2 := basic("rs-2", rs2Secret)           // serves other.example.com only
	at := ts.login(confA).str("access_token") // aud: api.example.com, other.example.com
	ts.wantActive(rsAuth, at)
	ts.wantActive(rs2, at)
	ts.wantInactive(confBAuth, at) // serves the issuer only
	f := pw("ada", userPass)
	f.Set("resource", "https://api.example.com")
	narrowed := ts.token(confA, f).str("access_token") // aud: api.example.com
	ts.wantActive(rsAuth, narrowed)
	ts.wantInactive(rs2, narrowed)
}

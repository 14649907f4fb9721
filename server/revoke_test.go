package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/sweeper"
	"github.com/keyturn/keyturn/storage"
)

var (
	rsAuth    = basic("cc-only", ccSecret) // a resource server: introspect: true
	confBAuth = basic("conf-b", confBSecret)
)

func (ts *testServer) revoke(auth string, form url.Values) reply {
	ts.t.Helper()
	return ts.do(call{path: server.PathRevoke, auth: auth, form: form})
}

func tokenForm(tok string) url.Values { return url.Values{"token": {tok}} }

func TestRevokeRefreshTokenIsLogout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			r := ts.login(confA)
			rt, at := r.str("refresh_token"), r.str("access_token")
			ts.wantActive(rsAuth, at)
			rv := ts.revoke(confA, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}})
			if rv.status != 200 || rv.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("revoke: %d %s", rv.status, rv.body)
			}
			wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
			// The session's access token is inactive at once, though its
			// signature and exp are still good.
			ts.wantInactive(rsAuth, at)
			f, err := ts.store.GetFamily(t.Context(), ts.verifyAccessToken(at).SessionID)
			if err != nil || f.RevokeReason != storage.ReasonLogout {
				t.Fatalf("family %+v %v, want revoked for logout", f, err)
			}
			// Revoking again, or a token that is already dead: 200.
			if r := ts.revoke(confA, tokenForm(rt)); r.status != 200 {
				t.Fatalf("second revoke: %d", r.status)
			}
		})
	}
}

func TestRevokeAccessToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServer(t, b)
			r := ts.login(confA)
			rt, at1 := r.str("refresh_token"), r.str("access_token")
			r = ts.token(confA, refresh(rt))
			rt2, at2 := r.str("refresh_token"), r.str("access_token")
			// An unknown hint is ignored (RFC 7009 §2.1).
			if r := ts.revoke(confA, url.Values{"token": {at1}, "token_type_hint": {"mystery"}}); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			ts.wantInactive(rsAuth, at1)
			// The rest of the session lives on (DESIGN.md decision D6).
			ts.wantActive(rsAuth, at2)
			if r := ts.token(confA, refresh(rt2)); r.status != 200 {
				t.Fatalf("refresh after access-token revocation: %d %s", r.status, r.body)
			}
		})
	}
}

func TestRevokeAnotherClientsTokenRefused(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	rt, at := r.str("refresh_token"), r.str("access_token")
	wantError(t, ts.revoke(confBAuth, tokenForm(rt)), 400, "invalid_grant")
	wantError(t, ts.revoke(confBAuth, tokenForm(at)), 400, "invalid_grant")
	ts.wantActive(rsAuth, at)
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Fatalf("token revoked by another client: %d %s", r.status, r.body)
	}
}

func TestRevokeAnswers200ForDeadTokens(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	rt, at := r.str("refresh_token"), r.str("access_token")
	parts := strings.Split(rt, ".")
	other := newTestServer(t, sqlite).login(confA)
	for name, tok := range map[string]string{
		"garbage":            "garbage",
		"malformed refresh":  "ktr1.x.y.z",
		"forged refresh":     strings.Join([]string{parts[0], parts[1], parts[2], strings.Repeat("A", 43)}, "."),
		"unknown family":     "ktr1.AAAAAAAAAAAAAAAAAAAAAA.0." + strings.Repeat("A", 43),
		"foreign jwt":        other.str("access_token"),
		"foreign refresh":    other.str("refresh_token"),
		"tampered jwt":       at[:len(at)-4] + "AAAA",
		"alg none jwt":       "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
		"jwt with wrong typ": "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA",
	} {
		t.Run(name, func(t *testing.T) {
			if r := ts.revoke(confA, tokenForm(tok)); r.status != 200 {
				t.Fatalf("got %d %s, want 200", r.status, r.body)
			}
		})
	}
	// None of that touched the real session.
	ts.wantActive(rsAuth, at)
	t.Run("expired access token", func(t *testing.T) {
		ts.clock.Advance(16 * time.Minute)
		if r := ts.revoke(confA, tokenForm(at)); r.status != 200 {
			t.Fatalf("got %d", r.status)
		}
	})
	t.Run("errors", func(t *testing.T) {
		wantError(t, ts.revoke(confA, url.Values{}), 400, "invalid_request")
		wantError(t, ts.revoke("", tokenForm(rt)), 401, "invalid_client")
		wantError(t, ts.revoke(basic("conf-a", "wrong"), tokenForm(rt)), 401, "invalid_client")
		wantError(t, ts.do(call{method: http.MethodGet, path: server.PathRevoke}), 405, "invalid_request")
	})
}

// TestReuseDetectedForTheFamilysWholeLife: one row per session keeps reuse
// detection working as long as the session can live, sweeps included.
func TestReuseDetectedForTheFamilysWholeLife(t *testing.T) {
	ts := newTestServer(t, sqlite)
	cleaner := sweeper.New(ts.store, sweeper.Options{RevokedRetention: 24 * time.Hour, Now: ts.clock.Now}, ts.logger())
	rt1 := ts.login(confA).str("refresh_token")
	ts.clock.Advance(time.Minute)
	rt := ts.token(confA, refresh(rt1)).str("refresh_token") // rt1 rotated away
	for range 29 {
		ts.clock.Advance(24 * time.Hour)
		r := ts.token(confA, refresh(rt))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		rt = r.str("refresh_token")
		if _, err := cleaner.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// 29 days after it was rotated away, rt1 still trips reuse detection.
	wantError(t, ts.token(confA, refresh(rt1)), 400, "invalid_grant")
	wantError(t, ts.token(confA, refresh(rt)), 400, "invalid_grant")
	fams, _ := ts.store.ListFamilies(t.Context(), storage.FamilyFilter{UserID: "user-ada"})
	if len(fams) != 1 || fams[0].RevokeReason != storage.ReasonReuse {
		t.Fatalf("families %+v", fams)
	}
}

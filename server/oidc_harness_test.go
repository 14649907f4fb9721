package server_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// The OpenID fixtures: the browser-flow clients, web-a and web-b with
// post-logout redirect URIs; admin-app, the one client with scope admin
// (a scope Keyturn knows that web-a may not have); oauth-only, a code
// client without openid.
func oidcClients() []clients.Spec {
	specs := append(testClients(), azClients()...)
	for i := range specs {
		switch specs[i].ID {
		case "web-a":
			specs[i].PostLogoutRedirectURIs = []string{"https://rp.test/bye"}
		case "web-b":
			specs[i].PostLogoutRedirectURIs = []string{"https://rpb.test/bye"}
		}
	}
	return append(specs,
		clients.Spec{ID: "admin-app", SecretHash: clients.SHA256Hash("admin-s3cret"),
			GrantTypes: []string{clients.GrantClientCredentials}, Scopes: []string{"admin"}},
		clients.Spec{ID: "oauth-only", SecretHash: clients.SHA256Hash("oauth-s3cret"),
			GrantTypes: []string{clients.GrantAuthorizationCode}, Scopes: []string{"read"},
			RedirectURIs: []string{"https://plain.test/cb"}})
}

// newOIDCServer is newAZServer with the OpenID fixtures.
func newOIDCServer(t *testing.T, b backend) *testServer {
	t.Helper()
	return newAZServer(t, b, func(o *server.Options) {
		o.Clients = servertest.Registry(t, testIssuer, oidcClients(), testEnv)
		// An RS256 lineage for the ID tokens, as serve always keeps one.
		o.Keys = servertest.Keys(t, o.Store, 7, keys.Options{Now: o.Now, IDTokenAlgorithms: []string{keys.AlgRS256}})
	})
}

// oaz is az with scope openid (and the kv changes).
func oaz(client, uri string, kv ...string) url.Values {
	return az(client, uri, append([]string{"scope", "openid"}, kv...)...)
}

// idToken is an ID token of this server (ts's keys, its issuer) for user
// sub, client aud and session sid, issued now, valid five minutes.
func (ts *testServer) idToken(sub, aud, sid string) string {
	ts.t.Helper()
	return signID(ts.t, ts.keys, testIssuer, sub, aud, sid, ts.clock.Now())
}

func signID(t *testing.T, k *keys.Keys, issuer, sub, aud, sid string, now time.Time) string {
	t.Helper()
	tok, err := k.SignIDToken(t.Context(), keys.AlgES256, tokens.IDClaims{
		Issuer: issuer, Subject: sub, Audience: aud, SessionID: sid,
		IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(), AuthTime: now.Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// foreignIDToken is an ID token that names ts's issuer but is signed by a
// key ts never published.
func (ts *testServer) foreignIDToken(sub, aud string) string {
	ts.t.Helper()
	other := servertest.Keys(ts.t, sqlstoretest.SQLite(ts.t), 9, keys.Options{Now: ts.clock.Now})
	return signID(ts.t, other, testIssuer, sub, aud, "", ts.clock.Now())
}

// wantOnlyErrorParams asserts that an error redirect carries nothing but
// error, error_description, error_uri, state and iss (OpenID Connect Core
// §3.1.2.6: "Other parameters SHOULD NOT be returned").
func wantOnlyErrorParams(t *testing.T, p *servertest.Page) {
	t.Helper()
	for k := range p.Query() {
		switch k {
		case "error", "error_description", "error_uri", "state", "iss":
		default:
			t.Errorf("error redirect %v carries %q", p.Location, k)
		}
	}
}

// oidcCB is wantCB and wantOnlyErrorParams.
func oidcCB(t *testing.T, p *servertest.Page, uri, code, state string) {
	t.Helper()
	wantCB(t, p, uri, code, state)
	wantOnlyErrorParams(t, p)
}

// storedCode is the stored authorization code that redirect p carries.
func (ts *testServer) storedCode(p *servertest.Page) storage.AuthCode {
	ts.t.Helper()
	code := p.Query().Get("code")
	if code == "" {
		ts.t.Fatalf("no code: %d %q %v\n%s", p.Status, p.Kind, p.Location, p.Body)
	}
	c, err := ts.store.GetCode(ts.t.Context(), tokens.HashSecret(code))
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

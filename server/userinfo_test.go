package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
)

// The Bearer challenges of the UserInfo endpoint (RFC 6750 §3).
const (
	challengeBare          = `Bearer realm="keyturn"`
	challengeInvalidToken  = `Bearer realm="keyturn", error="invalid_token"`
	challengeInvalidReq    = `Bearer realm="keyturn", error="invalid_request"`
	challengeInsufficientS = `Bearer realm="keyturn", error="insufficient_scope", scope="openid"`
)

// aliceProfile is alice's profile in these tests.
var aliceProfile = storage.UserProfile{Name: "Alice Liddell", Email: "alice@example.test", EmailVerified: true}

// newUserInfoServer is the OpenID test server with alice's profile set.
func newUserInfoServer(t *testing.T, b backend) *testServer {
	t.Helper()
	ts := newOIDCServer(t, b)
	ts.setProfile("alice", aliceProfile)
	return ts
}

func (ts *testServer) setProfile(username string, p storage.UserProfile) {
	ts.t.Helper()
	if err := ts.store.SetUserProfile(ts.t.Context(), username, p, ts.clock.Now()); err != nil {
		ts.t.Fatal(err)
	}
}

// codeTokens runs the code flow for web-a with scope as user in a fresh
// browser and redeems the code: the token response.
func (ts *testServer) codeTokens(user, pass, scope string) reply {
	ts.t.Helper()
	loc := ts.browser().Flow(az("web-a", rpCB, "scope", scope), user, pass)
	r := ts.redeem(loc.Query().Get("code"))
	wantTokens(ts.t, r)
	return r
}

// userinfo calls the UserInfo endpoint: method, an Authorization header
// (""), a form body (nil: none) and a raw query.
func (ts *testServer) userinfo(method, auth string, form url.Values, query string) reply {
	ts.t.Helper()
	path := server.PathUserInfo
	if query != "" {
		path += "?" + query
	}
	c := call{method: method, path: path, auth: auth, form: form}
	if form == nil {
		c.ctype = "text/plain"
	}
	return ts.do(c)
}

func bearer(at string) string { return "Bearer " + at }

// wantClaims asserts a 200 UserInfo response whose body is exactly want.
func wantClaims(t *testing.T, r reply, want string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s (%s), want 200", r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json (Core §5.3.2)", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("UserInfo answers CORS")
	}
}

// wantBearerError asserts an RFC 6750 §3 error: status, the exact
// challenge and, when it names one, the JSON error code.
func wantBearerError(t *testing.T, r reply, status int, challenge string) {
	t.Helper()
	if r.status != status || r.header.Get("WWW-Authenticate") != challenge {
		t.Fatalf("got %d %s WWW-Authenticate %q; want %d %q", r.status, r.body, r.header.Get("WWW-Authenticate"), status, challenge)
	}
	if len(r.header.Values("WWW-Authenticate")) != 1 {
		t.Errorf("WWW-Authenticate %q: want one challenge", r.header.Values("WWW-Authenticate"))
	}
	code := ""
	if _, rest, ok := strings.Cut(challenge, `error="`); ok {
		code, _, _ = strings.Cut(rest, `"`)
	}
	if code == "" {
		if len(r.body) != 0 {
			t.Errorf("no-token answer with a body: %s", r.body)
		}
	} else if r.str("error") != code {
		t.Errorf("body %s, want error %s", r.body, code)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
}

// TestUserInfo (T-OIDC-5.3-a, 5.3.2-a, 5.4-a): GET and POST with the token
// in the header, or in a POST's form body, answer the same JSON: sub, the
// user's ID (the access token's sub, which the ID token's equals), and the
// claims the scope allows, none empty or null.
func TestUserInfo(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newUserInfoServer(t, b)
			r := ts.codeTokens("alice", "alice-pass", "openid profile email")
			at := r.str("access_token")
			if sub := ts.verifyAccessToken(at).Subject; sub != "user-alice" {
				t.Fatalf("access token sub %q", sub)
			}
			full := `{"sub":"user-alice","name":"Alice Liddell","preferred_username":"alice","email":"alice@example.test","email_verified":true}`
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""), full)
			wantClaims(t, ts.userinfo(http.MethodGet, "bearer "+at, nil, ""), full) // RFC 9110 §11.1
			wantClaims(t, ts.userinfo(http.MethodGet, "BEARER  "+at, nil, ""), full)
			wantClaims(t, ts.userinfo(http.MethodPost, bearer(at), url.Values{}, ""), full)
			wantClaims(t, ts.userinfo(http.MethodPost, bearer(at), nil, ""), full)
			// Decision 23: access_token in a form body (RFC 6750 §2.2).
			wantClaims(t, ts.userinfo(http.MethodPost, "", url.Values{"access_token": {at}}, ""), full)
			if idt := r.str("id_token"); idt != "" {
				c, err := ts.keys.ParseIDToken(t.Context(), idt, testIssuer)
				if err != nil || c.Subject != "user-alice" {
					t.Errorf("ID token sub %q, %v; want UserInfo's sub", c.Subject, err)
				}
			}

			for scope, want := range map[string]string{
				"openid":         `{"sub":"user-alice"}`,
				"openid email":   `{"sub":"user-alice","email":"alice@example.test","email_verified":true}`,
				"openid profile": `{"sub":"user-alice","name":"Alice Liddell","preferred_username":"alice"}`,
			} {
				at := ts.codeTokens("alice", "alice-pass", scope).str("access_token")
				wantClaims(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""), want)
			}

			// bob has no profile: no name, no email, no email_verified.
			bob := ts.codeTokens("bob", "b0b-pass", "openid profile email").str("access_token")
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(bob), nil, ""), `{"sub":"user-bob","preferred_username":"bob"}`)
			// An unverified address says so.
			ts.setProfile("bob", storage.UserProfile{Email: "bob@example.test"})
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(bob), nil, ""),
				`{"sub":"user-bob","preferred_username":"bob","email":"bob@example.test","email_verified":false}`)

			// T-OIDC-5.7-a: a changed profile shows at once; sub stays.
			ts.setProfile("alice", storage.UserProfile{Name: "Alice L."})
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""),
				`{"sub":"user-alice","name":"Alice L.","preferred_username":"alice"}`)
		})
	}
}

// TestUserInfoInvalidToken (T-OIDC-5.3.3-a, T-6750-3-a, 3.1-a): no token
// is the bare challenge; a token that is garbage, not an access token,
// expired, revoked, of an ended session or of a disabled or deleted user
// is 401 invalid_token, on both databases.
func TestUserInfoInvalidToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newUserInfoServer(t, b)
			scope := "openid profile"
			r := ts.codeTokens("alice", "alice-pass", scope)
			at, rt := r.str("access_token"), r.str("refresh_token")
			sid := ts.verifyAccessToken(at).SessionID

			wantBearerError(t, ts.userinfo(http.MethodGet, "", nil, ""), 401, challengeBare)
			wantBearerError(t, ts.userinfo(http.MethodPost, "", url.Values{}, ""), 401, challengeBare)
			wantBearerError(t, ts.userinfo(http.MethodGet, webA, nil, ""), 401, challengeBare) // Basic is no bearer token

			for name, tok := range map[string]string{
				"garbage":       "garbage",
				"refresh token": rt,
				"ID token":      ts.idToken("user-alice", "web-a", sid),
				"foreign ID":    ts.foreignIDToken("user-alice", "web-a"),
				"tampered":      at[:len(at)-4] + "AAAA",
			} {
				t.Run(name, func(t *testing.T) {
					wantBearerError(t, ts.userinfo(http.MethodPost, "", url.Values{"access_token": {tok}}, ""), 401, challengeInvalidToken)
					wantBearerError(t, ts.userinfo(http.MethodGet, bearer(tok), nil, ""), 401, challengeInvalidToken)
				})
			}

			// Revoked (RFC 7009) while its session lives on.
			at2 := ts.codeTokens("alice", "alice-pass", scope).str("access_token")
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(at2), nil, ""), `{"sub":"user-alice","name":"Alice Liddell","preferred_username":"alice"}`)
			if r := ts.do(call{path: server.PathRevoke, auth: webA, form: url.Values{"token": {at2}}}); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at2), nil, ""), 401, challengeInvalidToken)

			// The session ended: the refresh token revoked (RFC 7009 §2.1).
			if r := ts.do(call{path: server.PathRevoke, auth: webA, form: url.Values{"token": {rt}}}); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""), 401, challengeInvalidToken)

			// Expired.
			at3 := ts.codeTokens("alice", "alice-pass", scope).str("access_token")
			ts.clock.Advance(15*time.Minute - time.Second)
			if r := ts.userinfo(http.MethodGet, bearer(at3), nil, ""); r.status != 200 {
				t.Fatalf("a second before exp: %d %s", r.status, r.body)
			}
			ts.clock.Advance(time.Second)
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at3), nil, ""), 401, challengeInvalidToken)

			// Disabled, then deleted.
			ts.addUser("carol", "carol-pass")
			at4 := ts.codeTokens("carol", "carol-pass", scope).str("access_token")
			if r := ts.userinfo(http.MethodGet, bearer(at4), nil, ""); r.status != 200 {
				t.Fatalf("carol: %d %s", r.status, r.body)
			}
			if err := ts.store.SetUserDisabled(t.Context(), "carol", true, ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at4), nil, ""), 401, challengeInvalidToken)
			if err := ts.store.SetUserDisabled(t.Context(), "carol", false, ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at4), nil, ""), 401, challengeInvalidToken)
			at5 := ts.codeTokens("carol", "carol-pass", scope).str("access_token")
			if err := ts.store.DeleteUser(t.Context(), "carol", ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at5), nil, ""), 401, challengeInvalidToken)
		})
	}
}

// TestUserInfoInsufficientScope (T-OIDC-5.3.1-a, T-6750-3.1-b): a valid
// access token not granted openid (the code flow without it, the password
// grant, client_credentials) is 403 insufficient_scope, never 200.
func TestUserInfoInsufficientScope(t *testing.T) {
	ts := newUserInfoServer(t, sqlite)
	code := ts.codeTokens("alice", "alice-pass", "read profile email").str("access_token")
	password := ts.login(confA).str("access_token")
	cc := ts.token(basic("cc-only", ccSecret), url.Values{"grant_type": {"client_credentials"}})
	wantTokens(t, cc)
	for name, at := range map[string]string{"code": code, "password": password, "client_credentials": cc.str("access_token")} {
		t.Run(name, func(t *testing.T) {
			wantBearerError(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""), 403, challengeInsufficientS)
		})
	}
}

// TestUserInfoBadRequest (T-6750-2-a, T-6750-2.3-a, decision D19): the
// token in the query, in two places at once, in a repeated or malformed
// header, or an empty one, is 400 invalid_request with the challenge;
// another method is 405; an oversized body 413. Never a 500.
func TestUserInfoBadRequest(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newUserInfoServer(t, b)
			at := ts.codeTokens("alice", "alice-pass", "openid").str("access_token")
			q := url.Values{"access_token": {at}}.Encode()
			for name, r := range map[string]reply{
				"query alone (GET)":       ts.userinfo(http.MethodGet, "", nil, q),
				"query alone (POST)":      ts.userinfo(http.MethodPost, "", nil, q),
				"query and header":        ts.userinfo(http.MethodGet, bearer(at), nil, q),
				"query and body":          ts.userinfo(http.MethodPost, "", url.Values{"access_token": {at}}, q),
				"header and body":         ts.userinfo(http.MethodPost, bearer(at), url.Values{"access_token": {at}}, ""),
				"empty body token":        ts.userinfo(http.MethodPost, "", url.Values{"access_token": {""}}, ""),
				"repeated body token":     ts.do(call{path: server.PathUserInfo, body: "access_token=" + at + "&access_token=" + at}),
				"empty Bearer":            ts.userinfo(http.MethodGet, "Bearer", nil, ""),
				"Bearer and spaces":       ts.userinfo(http.MethodGet, "Bearer   ", nil, ""),
				"two tokens":              ts.userinfo(http.MethodGet, "Bearer "+at+" "+at, nil, ""),
				"not b64token":            ts.userinfo(http.MethodGet, "Bearer a,b", nil, ""),
				"only padding":            ts.userinfo(http.MethodGet, "Bearer ==", nil, ""),
				"control character":       ts.userinfo(http.MethodGet, "Bearer a\tb", nil, ""),
				"a NUL in the body token": ts.userinfo(http.MethodPost, "", url.Values{"access_token": {"a\x00b"}}, ""),
			} {
				t.Run(name, func(t *testing.T) { wantBearerError(t, r, 400, challengeInvalidReq) })
			}

			req, _ := http.NewRequest(http.MethodGet, ts.URL+server.PathUserInfo, nil)
			req.Header.Add("Authorization", bearer(at))
			req.Header.Add("Authorization", bearer(at))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("WWW-Authenticate") != challengeInvalidReq {
				t.Errorf("repeated Authorization: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}

			for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
				r := ts.userinfo(m, bearer(at), nil, "")
				if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
					t.Errorf("%s: %d Allow %q", m, r.status, r.header.Get("Allow"))
				}
			}
			big := ts.do(call{path: server.PathUserInfo, body: "access_token=" + strings.Repeat("a", 1<<20)})
			if big.status != http.StatusRequestEntityTooLarge {
				t.Errorf("1 MiB body: %d %s", big.status, big.body)
			}
			// Nothing above broke the token.
			wantClaims(t, ts.userinfo(http.MethodGet, bearer(at), nil, ""), `{"sub":"user-alice"}`)
		})
	}
}

// TestUserInfoAgreesWithIntrospection: UserInfo and introspection decide
// with one check, so a token one refuses the other refuses too.
func TestUserInfoAgreesWithIntrospection(t *testing.T) {
	ts := newUserInfoServer(t, sqlite)
	r := ts.codeTokens("alice", "alice-pass", "openid")
	at := r.str("access_token")
	active := func() bool {
		t.Helper()
		ir := ts.do(call{path: server.PathIntrospect, auth: basic("cc-only", ccSecret), form: url.Values{"token": {at}}})
		return ir.json["active"] == true
	}
	if !active() || ts.userinfo(http.MethodGet, bearer(at), nil, "").status != 200 {
		t.Fatal("fresh token refused")
	}
	if _, err := ts.store.RevokeFamilies(t.Context(), storage.FamilyFilter{UserID: "user-alice"}, storage.ReasonLogout, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if active() || ts.userinfo(http.MethodGet, bearer(at), nil, "").status != 401 {
		t.Error("a token of a revoked session still accepted")
	}
}

// metadataDoc fetches a metadata document, checking its status, type and
// CORS header (any origin may read it; Discovery §4, T-DISC-3-d).
func (ts *testServer) metadataDoc(path string) map[string]any {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	req.Header.Set("Origin", "https://spa.elsewhere.test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		ts.t.Fatalf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		ts.t.Errorf("%s: Access-Control-Allow-Origin %q, want *", path, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		ts.t.Fatal(err)
	}
	return m
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestDiscovery (T-DISC-4-a, 4.3-a, 3-a, 3-b, 3-c, 4.2-a, 3-e,
// T-LOGOUT-2.1-a): the OpenID Provider configuration has every member
// OpenID Connect needs, no empty array, and agrees with the RFC 8414
// document on every member both have.
func TestDiscovery(t *testing.T) {
	ts := newOIDCServer(t, sqlite)
	d := ts.metadataDoc(server.PathOpenIDConfiguration)
	o := ts.metadataDoc(server.PathMetadata)
	want := map[string]string{
		"issuer":                                         `"` + testIssuer + `"`,
		"authorization_endpoint":                         `"` + testIssuer + `/oauth2/authorize"`,
		"token_endpoint":                                 `"` + testIssuer + `/oauth2/token"`,
		"userinfo_endpoint":                              `"` + testIssuer + `/oauth2/userinfo"`,
		"jwks_uri":                                       `"` + testIssuer + `/.well-known/jwks.json"`,
		"end_session_endpoint":                           `"` + testIssuer + `/oauth2/logout"`,
		"response_types_supported":                       `["code"]`,
		"response_modes_supported":                       `["query"]`,
		"subject_types_supported":                        `["public"]`,
		"id_token_signing_alg_values_supported":          `["RS256"]`,
		"code_challenge_methods_supported":               `["S256"]`,
		"authorization_response_iss_parameter_supported": `true`,
		"request_uri_parameter_supported":                `false`,
		"request_parameter_supported":                    `false`,
		"claims_parameter_supported":                     `false`,
		"grant_types_supported":                          `["authorization_code","client_credentials","password","refresh_token"]`,
		"token_endpoint_auth_methods_supported":          `["client_secret_basic","client_secret_post","none"]`,
		"claims_supported": `["sub","iss","aud","exp","iat","auth_time","nonce","at_hash","sid",` +
			`"name","preferred_username","email","email_verified"]`,
		"scopes_supported": `["admin","email","openid","profile","read","write"]`,
	}
	for k, v := range want {
		if got := jsonOf(d[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	for k, v := range d {
		if a, ok := v.([]any); ok && len(a) == 0 {
			t.Errorf("%s is an empty array (Discovery §4.2)", k)
		}
		if ov, ok := o[k]; ok && jsonOf(ov) != jsonOf(v) {
			t.Errorf("%s: RFC 8414 %s, OpenID %s", k, jsonOf(ov), jsonOf(v))
		}
		if s, ok := v.(string); ok && strings.HasPrefix(s, "http") && !strings.HasPrefix(s, testIssuer+"/") && s != testIssuer {
			t.Errorf("%s = %q is not on the issuer", k, s)
		}
	}
	// The RFC 8414 document has OpenID's endpoints, not its other members.
	for _, k := range []string{"userinfo_endpoint", "end_session_endpoint"} {
		if o[k] != d[k] {
			t.Errorf("RFC 8414 %s = %v", k, o[k])
		}
	}
	for _, k := range []string{"subject_types_supported", "id_token_signing_alg_values_supported", "claims_supported"} {
		if _, ok := o[k]; ok {
			t.Errorf("RFC 8414 document has %s", k)
		}
	}
	// Every member of the RFC 8414 document is in the OpenID one.
	for k := range o {
		if _, ok := d[k]; !ok {
			t.Errorf("%s only in the RFC 8414 document", k)
		}
	}
}

// TestDiscoveryAlgorithms (T-DISC-3-a, T-OIDC-15.1-a): RS256 always, and
// the algorithms clients chose; a reload re-renders.
func TestDiscoveryAlgorithms(t *testing.T) {
	ts := newOIDCServer(t, sqlite)
	specs := oidcClients()
	for i := range specs {
		switch specs[i].ID {
		case "web-a":
			specs[i].IDTokenSignedResponseAlg = "EdDSA"
		case "web-b":
			specs[i].IDTokenSignedResponseAlg = "ES256"
		case "spa-a":
			specs[i].IDTokenSignedResponseAlg = "RS256"
		}
	}
	ts.srv.SetClients(servertest.Registry(t, testIssuer, specs, testEnv))
	if got := jsonOf(ts.metadataDoc(server.PathOpenIDConfiguration)["id_token_signing_alg_values_supported"]); got != `["RS256","ES256","EdDSA"]` {
		t.Errorf("id_token_signing_alg_values_supported = %s", got)
	}
}

// TestCORSOnlyPublicDocuments (T-DISC-3-d): the two metadata documents and
// the JWKS let any origin read them; no other endpoint answers CORS.
func TestCORSOnlyPublicDocuments(t *testing.T) {
	ts := newUserInfoServer(t, sqlite)
	at := ts.codeTokens("alice", "alice-pass", "openid").str("access_token")
	for _, path := range []string{server.PathMetadata, server.PathOpenIDConfiguration, server.PathJWKS} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Origin", "https://evil.test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: CORS headers %v", path, resp.Header)
		}
	}
	for name, c := range map[string]call{
		"token":      {auth: confA, form: pw("ada", userPass)},
		"userinfo":   {method: http.MethodGet, path: server.PathUserInfo, auth: bearer(at)},
		"introspect": {path: server.PathIntrospect, auth: basic("cc-only", ccSecret), form: url.Values{"token": {at}}},
		"revoke":     {path: server.PathRevoke, auth: webA, form: url.Values{"token": {"x"}}},
		"authorize":  {method: http.MethodGet, path: server.PathAuthorize + "?" + az("web-a", rpCB).Encode()},
		"logout":     {method: http.MethodGet, path: server.PathLogout},
	} {
		if r := ts.do(c); r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s answers CORS (%d)", name, r.status)
		}
	}
}

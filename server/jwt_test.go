package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/keyturn/keyturn/server"
)

type atClaims struct {
	jwt.Claims
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	SessionID string `json:"sid"`
}

// jwks fetches the published key set as a resource server would.
func (ts *testServer) jwks() jose.JSONWebKeySet {
	ts.t.Helper()
	resp, err := http.Get(ts.URL + server.PathJWKS)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		ts.t.Fatal(err)
	}
	return set
}

// verifyAccessToken checks an access token offline, as a resource server
// does with the JWKS (RFC 9068 §4): typ, signature by a published kid, iss,
// exp at the test clock; it returns the claims.
func (ts *testServer) verifyAccessToken(token string) atClaims {
	ts.t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		ts.t.Fatalf("parse access token: %v", err)
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		ts.t.Fatalf("typ = %q, want at+jwt (RFC 9068 §2.1)", typ)
	}
	set := ts.jwks()
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		ts.t.Fatalf("kid %q is not published once in the JWKS", h.KeyID)
	}
	var c atClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		ts.t.Fatalf("signature: %v", err)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: testIssuer, Time: ts.clock.Now()}, 0); err != nil {
		ts.t.Fatalf("claims: %v", err)
	}
	if c.IssuedAt == nil || c.Expiry == nil || c.ID == "" || c.Subject == "" || c.ClientID == "" || len(c.Audience) == 0 {
		ts.t.Fatalf("RFC 9068 §2.2 claims missing: %+v", c)
	}
	return c
}

func TestAccessTokenFormat(t *testing.T) {
	ts := newTestServer(t, sqlite)
	at := ts.login(confA).str("access_token")
	parts := strings.Split(at, ".")
	var header map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(b, &header); err != nil {
		t.Fatal(err)
	}
	if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == nil {
		t.Fatalf("header %v", header)
	}
	var claims map[string]any
	b, _ = base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	// Integers, not floats with fractions (DESIGN.md decision D10).
	for _, k := range []string{"exp", "iat"} {
		if !strings.Contains(string(b), `"`+k+`":`) || strings.Contains(string(b), `"`+k+`":1.`) {
			t.Fatalf("%s not an integer in %s", k, b)
		}
	}
	if claims["exp"].(float64)-claims["iat"].(float64) != 900 {
		t.Fatalf("exp-iat = %v", claims["exp"].(float64)-claims["iat"].(float64))
	}
	ts.clock.Advance(16 * time.Minute)
	tok, _ := jwt.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	var c jwt.Claims
	_ = tok.UnsafeClaimsWithoutVerification(&c)
	if err := c.ValidateWithLeeway(jwt.Expected{Time: ts.clock.Now()}, 0); err == nil {
		t.Fatal("token still valid after its 15 minutes")
	}
}

func TestJWKSAndKeyRotation(t *testing.T) {
	ts := newTestServer(t, sqlite)
	set := ts.jwks()
	if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID == "" || set.Keys[0].Use != "sig" {
		t.Fatalf("jwks %+v", set)
	}
	raw, _ := json.Marshal(set)
	if strings.Contains(string(raw), `"d":`) {
		t.Fatalf("private material in the JWKS: %s", raw)
	}
	oldKid := set.Keys[0].KeyID
	next, err := ts.keys.Rotate(t.Context(), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	// Published at once, signing only after the rotation delay (1h here).
	if set := ts.jwks(); len(set.Key(next.ID)) != 1 {
		t.Fatal("rotated-in key not published at once")
	}
	kidOf := func(tok string) string {
		p, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		return p.Headers[0].KeyID
	}
	if kid := kidOf(ts.login(confA).str("access_token")); kid != oldKid {
		t.Fatalf("new key signs before its delay: %s", kid)
	}
	ts.clock.Advance(time.Hour + 31*time.Second) // past the delay and the key cache
	at := ts.login(confA).str("access_token")
	if kid := kidOf(at); kid != next.ID {
		t.Fatalf("signing kid = %s, want %s", kid, next.ID)
	}
	ts.verifyAccessToken(at)
	// The old key stays published until its last token (15 min) expires.
	if set := ts.jwks(); len(set.Key(oldKid)) != 1 {
		t.Fatal("old key withdrawn while its tokens are live")
	}
	ts.clock.Advance(15*time.Minute + 31*time.Second)
	if set := ts.jwks(); len(set.Key(oldKid)) != 0 {
		t.Fatal("old key still published after its last token expired")
	}
	infos, err := ts.keys.List(t.Context())
	if err != nil || len(infos) != 2 || infos[0].State != "expired" || infos[1].State != "active" {
		t.Fatalf("keys list %+v %v", infos, err)
	}
}

func TestMetadata(t *testing.T) {
	ts := newTestServer(t, sqlite)
	resp, err := http.Get(ts.URL + server.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                 testIssuer,
		"token_endpoint":         testIssuer + "/oauth2/token",
		"jwks_uri":               testIssuer + "/.well-known/jwks.json",
		"revocation_endpoint":    testIssuer + "/oauth2/revoke",
		"introspection_endpoint": testIssuer + "/oauth2/introspect",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	gts, _ := json.Marshal(m["grant_types_supported"])
	if string(gts) != `["client_credentials","password","refresh_token"]` {
		t.Errorf("grant_types_supported = %s", gts)
	}
	ams, _ := json.Marshal(m["token_endpoint_auth_methods_supported"])
	if string(ams) != `["client_secret_basic","client_secret_post","none"]` {
		t.Errorf("token_endpoint_auth_methods_supported = %s", ams)
	}
	// No client has the authorization_code grant: no member of the
	// authorization endpoint (DESIGN.md decision D2).
	for _, k := range []string{"authorization_endpoint", "response_types_supported", "response_modes_supported",
		"code_challenge_methods_supported", "authorization_response_iss_parameter_supported"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s listed without a client of the authorization endpoint", k)
		}
	}
	// The issuer is the iss of every token (RFC 8414 §3.3).
	if c := ts.verifyAccessToken(ts.login(confA).str("access_token")); c.Issuer != m["issuer"] {
		t.Fatalf("iss %q != issuer %q", c.Issuer, m["issuer"])
	}
}

// TestMetadataAuthorizationCode (T-8414-2-l, -m, -n, -o, -p, T-9207-2.3-a):
// with clients of the authorization_code grant, the metadata publishes the
// authorization endpoint and what it supports.
func TestMetadataAuthorizationCode(t *testing.T) {
	ts := newCodeServer(t, sqlite)
	_, body := ts.get(server.PathMetadata)
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if m["authorization_endpoint"] != testIssuer+"/oauth2/authorize" || server.PathAuthorize != "/oauth2/authorize" {
		t.Errorf("authorization_endpoint = %v", m["authorization_endpoint"])
	}
	if m["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("authorization_response_iss_parameter_supported = %v, want the JSON boolean true", m["authorization_response_iss_parameter_supported"])
	}
	want := map[string]string{
		"response_types_supported":              `["code"]`,
		"response_modes_supported":              `["query"]`,
		"code_challenge_methods_supported":      `["S256"]`,
		"grant_types_supported":                 `["authorization_code","client_credentials","password","refresh_token"]`,
		"token_endpoint_auth_methods_supported": `["client_secret_basic","client_secret_post","none"]`,
	}
	for k, v := range want {
		if got, _ := json.Marshal(m[k]); string(got) != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
}

// TestGolangOAuth2Client drives the server with golang.org/x/oauth2, a
// real client library: password grant, a TokenSource that refreshes an
// expired token, and clientcredentials.
func TestGolangOAuth2Client(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, ts.Client())
	cfg := &oauth2.Config{
		ClientID: "conf-a", ClientSecret: confASecret,
		Endpoint: oauth2.Endpoint{TokenURL: ts.URL + server.PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"read", "write"},
	}
	tok, err := cfg.PasswordCredentialsToken(ctx, "ada", userPass)
	if err != nil {
		t.Fatal(err)
	}
	c := ts.verifyAccessToken(tok.AccessToken)
	// The resource server checks the audience is its own (RFC 9068 §4).
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{"https://api.example.com"}, Time: ts.clock.Now()}, 0); err != nil {
		t.Fatalf("aud: %v", err)
	}
	if c.Scope != "read write" || tok.RefreshToken == "" {
		t.Fatalf("token %+v claims %+v", tok, c)
	}
	// Let x/oauth2 see the token as expired so its TokenSource refreshes it.
	tok.Expiry = time.Now().Add(-time.Minute)
	src := cfg.TokenSource(ctx, tok)
	fresh, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatal("TokenSource did not refresh and rotate")
	}
	if ts.verifyAccessToken(fresh.AccessToken).SessionID != c.SessionID {
		t.Fatal("refresh left the session")
	}
	// The rotated-away token now counts as reuse.
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("replayed refresh token accepted")
	} else if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != 400 {
		t.Fatalf("replay error %v, want invalid_grant 400", err)
	}

	cc := clientcredentials.Config{
		ClientID: "cc-only", ClientSecret: ccSecret, TokenURL: ts.URL + server.PathToken,
		AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{"read"},
		EndpointParams: url.Values{},
	}
	ctok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := ts.verifyAccessToken(ctok.AccessToken); c.Subject != "cc-only" || c.Scope != "read" {
		t.Fatalf("claims %+v", c)
	}
}

// TestLogsHoldNoSecrets runs a whole session and checks that no password,
// client secret or token value reaches the logs (DESIGN.md decision D11).
func TestLogsHoldNoSecrets(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	rt1, at1 := r.str("refresh_token"), r.str("access_token")
	r = ts.token(confA, refresh(rt1))
	rt2, at2 := r.str("refresh_token"), r.str("access_token")
	ts.token(confA, refresh(rt1))                        // reuse: logged at Warn
	ts.token(basic("conf-b", confBSecret), refresh(rt2)) // other client: logged
	ts.token(basic("conf-a", "wrong-secret"), pw("ada", "wrong-password"))
	logs := ts.logs.String()
	if !strings.Contains(logs, "family_id") {
		t.Fatalf("expected security events in the logs:\n%s", logs)
	}
	for _, secret := range []string{userPass, confASecret, confBSecret, "wrong-secret", "wrong-password", rt1, rt2, at1, at2,
		strings.Split(rt1, ".")[3], strings.Split(at1, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
}

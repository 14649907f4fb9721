package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
)

// The ID-token clients of the tests, beside the OpenID fixtures (web-a
// signs its ID tokens with the default, RS256): web-es and web-ed ask for
// ES256 and EdDSA; pw-oidc is a password client that may be granted
// openid, which still gets no ID token.
const (
	webESSecret  = "web-es-s3cret"
	webEDSecret  = "web-ed-s3cret"
	pwOIDCSecret = "pw-oidc-s3cret"
)

var (
	webES  = basic("web-es", webESSecret)
	webED  = basic("web-ed", webEDSecret)
	pwOIDC = basic("pw-oidc", pwOIDCSecret)
)

func idTokenClients() []clients.Spec {
	code := []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
	web := func(id, secret, alg, uri string) clients.Spec {
		return clients.Spec{ID: id, SecretHash: clients.SHA256Hash(secret), GrantTypes: code,
			Scopes: []string{"openid", "read"}, RedirectURIs: []string{uri},
			IDTokenSignedResponseAlg: alg, Audience: []string{"https://api.example.com"}}
	}
	return []clients.Spec{
		web("web-es", webESSecret, "ES256", "https://es.test/cb"),
		web("web-ed", webEDSecret, "EdDSA", "https://ed.test/cb"),
		{ID: "pw-oidc", SecretHash: clients.SHA256Hash(pwOIDCSecret),
			GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken},
			Scopes:     []string{"openid", "read"}, DefaultScopes: []string{"openid", "read"}},
	}
}

// newIDTokenServer is newAZServer with the OpenID fixtures and the
// ID-token clients, and signing keys for every ID-token algorithm (as serve
// keeps them for the clients' algorithms), from the kit.
func newIDTokenServer(t *testing.T, b backend) *testServer {
	t.Helper()
	return newAZServer(t, b, func(o *server.Options) {
		o.Clients = servertest.Registry(t, testIssuer, append(oidcClients(), idTokenClients()...), testEnv)
		o.Keys = servertest.Keys(t, o.Store, 7, keys.Options{Now: o.Now, IDTokenAlgorithms: clients.IDTokenAlgs()})
	})
}

// oidcFlow runs an authorization request of client (its redirect URI
// uri, secret auth) in br, as alice, changed by kv pairs as az does, and
// redeems the code.
func (ts *testServer) oidcFlow(br *servertest.Browser, client, auth, uri string, kv ...string) reply {
	ts.t.Helper()
	loc := br.Flow(az(client, uri, kv...), "alice", "alice-pass")
	code := loc.Query().Get("code")
	if code == "" {
		ts.t.Fatalf("flow ended at %v", loc)
	}
	r := ts.token(auth, codeForm(code, v1, uri))
	wantTokens(ts.t, r)
	return r
}

// webAFlow is oidcFlow for web-a to https://rp.test/cb.
func (ts *testServer) webAFlow(br *servertest.Browser, kv ...string) reply {
	ts.t.Helper()
	return ts.oidcFlow(br, "web-a", webA, "https://rp.test/cb", kv...)
}

// idToken is an ID token taken apart, not verified: its header and claims
// as JSON members.
type idToken struct {
	raw            string
	header, claims map[string]any
	payload        string
}

func parseIDToken(t *testing.T, raw string) idToken {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[2] == "" {
		t.Fatalf("id_token %q is not a signed compact JWS (Core §2: MUST be signed)", raw)
	}
	tok := idToken{raw: raw}
	for i, m := range []*map[string]any{&tok.header, &tok.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		tok.payload = string(b)
	}
	return tok
}

// num is a claim that must be a JSON integer.
func (tok idToken) num(t *testing.T, k string) int64 {
	t.Helper()
	f, ok := tok.claims[k].(float64)
	if !ok || f != float64(int64(f)) || strings.Contains(tok.payload, `"`+k+`":`+"-") {
		t.Fatalf("%s = %v, want an integer: %s", k, tok.claims[k], tok.payload)
	}
	return int64(f)
}

func (tok idToken) str(k string) string { s, _ := tok.claims[k].(string); return s }

// atHash is at_hash computed here, independently of the server (Core
// §3.1.3.6): the left half of SHA-256 (SHA-512 for EdDSA) of the access
// token, base64url.
func atHash(alg, at string) string {
	var sum []byte
	if alg == "EdDSA" {
		s := sha512.Sum512([]byte(at))
		sum = s[:32]
	} else {
		s := sha256.Sum256([]byte(at))
		sum = s[:16]
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// provider is go-oidc's view of ts, found by discovery
// (/.well-known/openid-configuration under the issuer), as a relying party
// configured with the issuer alone sees it.
func (ts *testServer) provider() (*oidc.Provider, context.Context) {
	ts.t.Helper()
	ctx := oidc.ClientContext(context.Background(), ts.browser().Client) // the issuer's URLs, to ts
	p, err := oidc.NewProvider(ctx, testIssuer)
	if err != nil {
		ts.t.Fatalf("go-oidc discovery: %v", err)
	}
	return p, ctx
}

// verifier is go-oidc's ID-token verifier for clientID (the algorithms
// algs, default those discovery lists) at the test clock: a strict
// relying party (T-OIDC-3.1.3.7-a). Its context is for Verify.
func (ts *testServer) verifier(clientID string, algs ...string) (*oidc.IDTokenVerifier, context.Context) {
	p, ctx := ts.provider()
	return p.Verifier(&oidc.Config{ClientID: clientID, SupportedSigningAlgs: algs, Now: ts.clock.Now}), ctx
}

// verifyID verifies an ID token with ts.verifier.
func (ts *testServer) verifyID(raw, clientID string, algs ...string) (*oidc.IDToken, error) {
	v, ctx := ts.verifier(clientID, algs...)
	return v.Verify(ctx, raw)
}

// wantIDToken checks everything about the ID token of the token response
// r that does not depend on the request: signed with alg by exactly one
// published key fit for it (Core §10.1), without key-carrying headers
// (Core §2), typ JWT; iss, sub (the access token's), aud (client, a
// string), iat (now) and exp (the access token's) as integers; at_hash of
// the response's access token; sid the access token's session; no azp
// (Core §2: aud is the one client); no member without a value; and it
// passes go-oidc. It returns the token.
func (ts *testServer) wantIDToken(r reply, client, alg string) idToken {
	t := ts.t
	t.Helper()
	raw := r.str("id_token")
	if raw == "" {
		t.Fatalf("no id_token in %s", r.body)
	}
	tok := parseIDToken(t, raw)
	if tok.header["alg"] != alg || tok.header["typ"] != "JWT" {
		t.Errorf("header %v, want alg %s, typ JWT", tok.header, alg)
	}
	for _, h := range []string{"jku", "jwk", "x5u", "x5c"} {
		if _, has := tok.header[h]; has {
			t.Errorf("header has %s", h)
		}
	}
	kid, _ := tok.header["kid"].(string)
	set := ts.jwks()
	published := set.Key(kid)
	if len(published) != 1 {
		t.Fatalf("kid %q matches %d published keys, want 1", kid, len(published))
	}
	if k := published[0]; k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != alg {
		t.Errorf("published key use %q alg %q for an %s ID token", k.Use, k.Algorithm, alg)
	}
	if rk, ok := published[0].Key.(*rsa.PublicKey); alg == "RS256" && (!ok || rk.N.BitLen() < 2048) {
		t.Errorf("RS256 key %T not RSA of 2048 bits or more", published[0].Key)
	}
	at := ts.verifyAccessToken(r.str("access_token"))
	now := ts.clock.Now().Unix()
	if tok.str("iss") != testIssuer || tok.str("sub") != at.Subject || tok.str("aud") != client ||
		tok.num(t, "iat") != now || tok.num(t, "exp") != at.Expiry.Time().Unix() || tok.num(t, "exp") <= now {
		t.Errorf("claims %s; access token sub %q exp %v; now %d", tok.payload, at.Subject, at.Expiry.Time().Unix(), now)
	}
	if len(tok.str("sub")) > 255 {
		t.Errorf("sub longer than 255 (Core §2)")
	}
	tok.num(t, "auth_time")
	if tok.str("at_hash") != atHash(alg, r.str("access_token")) {
		t.Errorf("at_hash %q, want %q", tok.str("at_hash"), atHash(alg, r.str("access_token")))
	}
	if tok.str("sid") == "" || tok.str("sid") != at.SessionID {
		t.Errorf("sid %q, access token's %q", tok.str("sid"), at.SessionID)
	}
	known := []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid"}
	for k, v := range tok.claims {
		if !slices.Contains(known, k) {
			t.Errorf("unexpected claim %s (azp: Core §2 with a single audience)", k)
		}
		if v == nil || v == "" {
			t.Errorf("claim %s without a value", k)
		}
	}
	idt, err := ts.verifyID(raw, client, alg)
	if err != nil {
		t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(r.str("access_token")); err != nil {
		t.Errorf("go-oidc: at_hash: %v", err)
	}
	return tok
}

// TestIDTokenOnlyWithOpenID (T-OIDC-3.1.2.1-b): without openid in the scope
// the request is plain OAuth, with no ID token; with it the response has
// one.
func TestIDTokenOnlyWithOpenID(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			br := ts.browser()
			for _, scope := range []string{"read", "read write", "-"} {
				r := ts.webAFlow(br, "scope", scope)
				if _, has := r.json["id_token"]; has {
					t.Fatalf("scope %q: id_token in %s", scope, r.body)
				}
				if r = ts.token(webA, refresh(r.str("refresh_token"))); r.status != 200 || r.json["id_token"] != nil {
					t.Fatalf("scope %q: refresh: %s", scope, r.body)
				}
			}
			ts.wantIDToken(ts.webAFlow(br, "scope", "openid read"), "web-a", "RS256")
		})
	}
}

// TestIDTokenClaims (T-OIDC-2-a, T-OIDC-2-e, T-OIDC-2-f, T-OIDC-10.1-a,
// T-OIDC-15.1-a, T-OIDC-3.1.3.6-a): web-a's ID token is RS256 (the
// default) with the claims of wantIDToken, auth_time the sign-in and sid
// the session, and no nonce when the request had none.
func TestIDTokenClaims(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			r := ts.webAFlow(ts.browser(), "scope", "openid")
			tok := ts.wantIDToken(r, "web-a", "RS256")
			if tok.str("sub") != "user-alice" || tok.num(t, "auth_time") != ts.clock.Now().Unix() {
				t.Errorf("claims %s", tok.payload)
			}
			if tok.num(t, "exp")-tok.num(t, "iat") != 900 { // web-a's access-token lifetime
				t.Errorf("exp - iat = %d", tok.num(t, "exp")-tok.num(t, "iat"))
			}
			if _, has := tok.claims["nonce"]; has {
				t.Errorf("nonce without one in the request: %s", tok.payload)
			}
			if r.str("scope") != "openid" {
				t.Errorf("scope %q", r.str("scope"))
			}
		})
	}
}

// TestIDTokenAuthTime (T-OIDC-2-b): auth_time is when the user signed in to
// the browser, not when the code was issued: a second flow 100 seconds
// later in the same browser (no login page) has the first one's.
func TestIDTokenAuthTime(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			br := ts.browser()
			t0 := ts.clock.Now().Unix()
			first := ts.wantIDToken(ts.webAFlow(br, "scope", "openid"), "web-a", "RS256")
			ts.clock.Advance(100 * time.Second)
			params := az("web-a", "https://rp.test/cb", "scope", "openid")
			code := wantCode(t, br.Authorize(params), "https://rp.test/cb", params.Get("state")) // no page
			second := ts.wantIDToken(ts.token(webA, codeForm(code, v1, "https://rp.test/cb")), "web-a", "RS256")
			if first.num(t, "auth_time") != t0 || second.num(t, "auth_time") != t0 || second.num(t, "iat") != t0+100 {
				t.Fatalf("first %s, second %s, signed in at %d", first.payload, second.payload, t0)
			}
		})
	}
}

// TestIDTokenNonce (T-OIDC-2-c): the ID token's nonce is the code's, byte
// for byte (no Unicode normalisation: "e\u0301" stays two code points),
// and absent when the code has none. The code is stored as the
// authorization endpoint stores it.
func TestIDTokenNonce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			for _, nonce := range []string{"n-0S6_WzA2Mj", "a b+é", "e\u0301", `"quoted"\`, ""} {
				r := ts.redeem(ts.issueCode(authCode{scope: "openid read", nonce: nonce}))
				tok := ts.wantIDToken(r, "web-a", "RS256")
				got, has := tok.claims["nonce"]
				if nonce == "" && has || nonce != "" && got != nonce {
					t.Errorf("nonce %q: id token %s", nonce, tok.payload)
				}
				// Never on refresh (Core §12.2).
				tok = ts.wantIDToken(ts.token(webA, refresh(r.str("refresh_token"))), "web-a", "RS256")
				if _, has := tok.claims["nonce"]; has {
					t.Errorf("nonce %q: refreshed id token %s", nonce, tok.payload)
				}
			}
		})
	}
}

// TestIDTokenRefresh (T-OIDC-12.2-a): a refresh of an OpenID session gets a
// new ID token with the same iss, sub, aud, auth_time and sid, a new iat,
// the new access token's at_hash, and no nonce; a refresh that narrows the
// scope without openid gets none (and still rotates), and the next one
// without a scope parameter has the session's scope again, openid with it.
// Rotation and reuse detection are those of any session.
func TestIDTokenRefresh(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			r := ts.redeem(ts.issueCode(authCode{scope: "openid read", nonce: "N"}))
			first := ts.wantIDToken(r, "web-a", "RS256")
			ts.clock.Advance(time.Minute)
			r2 := ts.token(webA, refresh(r.str("refresh_token")))
			again := ts.wantIDToken(r2, "web-a", "RS256")
			for _, k := range []string{"iss", "sub", "aud", "auth_time", "sid"} {
				if again.claims[k] != first.claims[k] {
					t.Errorf("%s: %v, first %v", k, again.claims[k], first.claims[k])
				}
			}
			if again.num(t, "iat") != first.num(t, "iat")+60 || again.claims["nonce"] != nil || r2.str("scope") != "openid read" {
				t.Errorf("refreshed %s, scope %q", again.payload, r2.str("scope"))
			}
			form := refresh(r2.str("refresh_token"))
			form.Set("scope", "read")
			r3 := ts.token(webA, form)
			if r3.status != 200 || r3.json["id_token"] != nil || r3.str("scope") != "read" || r3.str("refresh_token") == "" {
				t.Fatalf("refresh narrowed to read: %s", r3.body)
			}
			ts.wantIDToken(ts.token(webA, refresh(r3.str("refresh_token"))), "web-a", "RS256")
			// The first refresh token again: reuse, the session ends.
			wantError(t, ts.token(webA, refresh(r.str("refresh_token"))), 400, "invalid_grant")
			wantError(t, ts.token(webA, refresh(r3.str("refresh_token"))), 400, "invalid_grant")
		})
	}
}

// TestIDTokenNotForPassword: OpenID Connect is the code flow here; a
// password login granted openid, and its refresh, get no ID token.
func TestIDTokenNotForPassword(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			form := pw("ada", userPass)
			form.Set("scope", "openid read")
			r := ts.token(pwOIDC, form)
			if r.status != 200 || r.str("scope") != "openid read" || r.json["id_token"] != nil {
				t.Fatalf("password grant: %s", r.body)
			}
			if r = ts.token(pwOIDC, refresh(r.str("refresh_token"))); r.status != 200 || r.json["id_token"] != nil {
				t.Fatalf("refresh of a password session: %s", r.body)
			}
		})
	}
}

// TestIDTokenGoOIDCVerifier (T-OIDC-3.1.3.7-a, T-OIDC-3.1.3.7-b): go-oidc,
// a strict relying party, accepts web-a's ID token for web-a only, until
// it expires; it refuses the access token in its place, and a token whose
// payload was changed.
func TestIDTokenGoOIDCVerifier(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			r := ts.webAFlow(ts.browser(), "scope", "openid read")
			raw := r.str("id_token")
			if _, err := ts.verifyID(raw, "web-a"); err != nil { // RS256, go-oidc's default
				t.Fatalf("web-a: %v", err)
			}
			if _, err := ts.verifyID(raw, "web-b"); err == nil {
				t.Fatal("web-b accepted web-a's ID token")
			}
			if _, err := ts.verifyID(r.str("access_token"), "web-a", "RS256", "ES256"); err == nil {
				t.Fatal("the access token passed as an ID token")
			}
			parts := strings.Split(raw, ".")
			claims := parseIDToken(t, raw).claims
			claims["sub"] = "user-bob"
			b, _ := json.Marshal(claims)
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
			if _, err := ts.verifyID(forged, "web-a"); err == nil {
				t.Fatal("a changed ID token verified")
			}
			ts.clock.Advance(15*time.Minute + time.Second)
			if _, err := ts.verifyID(raw, "web-a"); err == nil {
				t.Fatal("an expired ID token verified")
			}
		})
	}
}

// TestIDTokenNonceFlow (T-OIDC-2-c) through the authorization endpoint: the
// nonce of the request comes back exactly as sent, percent-decoded and
// nothing else (no Unicode normalisation); none, or an empty one, gives no
// nonce claim.
func TestIDTokenNonceFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			br := ts.browser()
			for _, nonce := range []string{"n-0S6_WzA2Mj", "a b+é", "e\u0301", "-", ""} {
				tok := ts.wantIDToken(ts.webAFlow(br, "scope", "openid", "nonce", nonce), "web-a", "RS256")
				got, has := tok.claims["nonce"]
				if want := nonce != "" && nonce != "-"; want && got != nonce || !want && has {
					t.Errorf("nonce %q: id token %s", nonce, tok.payload)
				}
			}
		})
	}
}

// TestIDTokenAlgPerClient (T-OIDC-15.1-a, T-OIDC-3.1.3.6-a): a client that
// registered id_token_signed_response_alg gets its ID tokens signed with
// it, at_hash with that algorithm's hash (SHA-512 for EdDSA); the access
// tokens keep the server's algorithm.
func TestIDTokenAlgPerClient(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			br := ts.browser()
			for _, c := range []struct{ id, auth, uri, alg string }{
				{"web-es", webES, "https://es.test/cb", "ES256"},
				{"web-ed", webED, "https://ed.test/cb", "EdDSA"},
				{"web-a", webA, "https://rp.test/cb", "RS256"},
			} {
				r := ts.oidcFlow(br, c.id, c.auth, c.uri, "scope", "openid read")
				ts.wantIDToken(r, c.id, c.alg)
				ts.wantIDToken(ts.token(c.auth, refresh(r.str("refresh_token"))), c.id, c.alg)
			}
		})
	}
}

// TestGoOIDCEndToEnd drives the OpenID flow with golang.org/x/oauth2 and
// go-oidc, the relying-party libraries of Go, configured with the issuer
// alone: discovery, AuthCodeURL with an S256 challenge and a nonce, the
// pages (as a browser), Exchange, the ID token verified (its nonce,
// at_hash and auth_time checked), then UserInfo with the access token: the
// same sub, and the profile the scopes granted.
func TestGoOIDCEndToEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newIDTokenServer(t, b)
			ts.setProfile("alice", aliceProfile)
			provider, ctx := ts.provider()
			cfg := &oauth2.Config{
				ClientID: "web-a", ClientSecret: webASecret, RedirectURL: "https://rp.test/cb",
				Scopes:   []string{oidc.ScopeOpenID, "profile", "email"},
				Endpoint: provider.Endpoint(),
			}
			verifier, state, nonce := oauth2.GenerateVerifier(), rand.Text(), rand.Text()
			br := ts.browser()
			back := br.Flow(mustQuery(t, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))), "alice", "alice-pass")
			if back.Query().Get("state") != state {
				t.Fatalf("redirect %v", back)
			}
			tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: "web-a", Now: ts.clock.Now}).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			var claims struct {
				AuthTime int64 `json:"auth_time"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if idt.Subject != "user-alice" || idt.Nonce != nonce || claims.AuthTime != ts.clock.Now().Unix() {
				t.Errorf("id token sub %q nonce %q (sent %q) auth_time %d", idt.Subject, idt.Nonce, nonce, claims.AuthTime)
			}
			info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var profile struct {
				Name              string `json:"name"`
				PreferredUsername string `json:"preferred_username"`
			}
			if err := info.Claims(&profile); err != nil {
				t.Fatal(err)
			}
			if info.Subject != idt.Subject || info.Email != aliceProfile.Email || !info.EmailVerified ||
				profile.Name != aliceProfile.Name || profile.PreferredUsername != "alice" {
				t.Errorf("userinfo %+v %+v, id token sub %q", info, profile, idt.Subject)
			}
		})
	}
}

package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"maps"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// webCSecret is the secret of web-c, a client of the code grant without
// refresh_token.
const webCSecret = "web-c-s3cret"

var (
	webA = basic("web-a", webASecret)
	webB = basic("web-b", webBSecret)
)

// codeClients are the authorization endpoint's clients (azClients), web-a
// with two more audiences (RFC 8707 resources to choose from), and web-c.
func codeClients() []clients.Spec {
	specs := azClients()
	for i := range specs {
		if specs[i].ID == "web-a" {
			specs[i].Audience = []string{testIssuer, "https://api.example.com", "https://other.example.com"}
		}
	}
	return append(specs, clients.Spec{ID: "web-c", SecretHash: clients.SHA256Hash(webCSecret),
		GrantTypes: []string{clients.GrantAuthorizationCode}, RedirectURIs: []string{"https://rpc.test/cb"}, Scopes: []string{"read"}})
}

// newCodeServer is newTestServer with the authorization-code clients too.
func newCodeServer(t *testing.T, b backend) *testServer {
	t.Helper()
	return newTestServerOn(t, openStore(t, b), func(o *server.Options) {
		o.Clients = servertest.Registry(t, testIssuer, append(testClients(), codeClients()...), testEnv)
	})
}

// V2/C2 is the OAuth 2.1 example PKCE pair (V1/C1, RFC 7636 Appendix B's,
// are the authorization endpoint tests').
const (
	v2 = "3641a2d12d66101249cdf7a79c000c1f8c05d2aafcf14bf146497bed"
	c2 = "6fdkQaPm51l13DSukcAH3Mdx7_ntecHYd1vi3n0hMZY"
)

// authCode is what the authorization endpoint stores with a code.
type authCode struct {
	client, user string
	redirect     string // "": the authorization request had none
	challenge    string
	scope        string
	resources    []string
	nonce        string    // the OpenID Connect nonce of the request
	authTime     time.Time // zero: the clock's now
}

// issueCode stores a code as the authorization endpoint does, in a fresh
// browser login session of the user, and returns the code. Zero fields
// are web-a's first redirect URI, ada, C1 and scope read.
func (ts *testServer) issueCode(c authCode) string {
	ts.t.Helper()
	ctx := ts.t.Context()
	if c.client == "" {
		c.client, c.redirect = "web-a", "https://rp.test/cb"
	}
	if c.user == "" {
		c.user = "ada"
	}
	if c.challenge == "" {
		c.challenge = c1
	}
	if c.scope == "" {
		c.scope = "read"
	}
	now := ts.clock.Now()
	if c.authTime.IsZero() {
		c.authTime = now
	}
	u, err := ts.store.GetUserByUsername(ctx, c.user)
	if err != nil {
		ts.t.Fatal(err)
	}
	bs := storage.BrowserSession{
		ID: base64.RawURLEncoding.EncodeToString(tokens.HashSecret(tokens.NewSecret())), UserID: u.ID,
		AuthTime: c.authTime, CreatedAt: c.authTime, ExpiresAt: now.Add(12 * time.Hour),
	}
	if err := ts.store.CreateBrowserSession(ctx, bs); err != nil {
		ts.t.Fatal(err)
	}
	code := tokens.NewSecret()
	err = ts.store.CreateCode(ctx, storage.AuthCode{
		Hash: tokens.HashSecret(code), ClientID: c.client, UserID: u.ID, RedirectURI: c.redirect,
		CodeChallenge: c.challenge, Scope: c.scope, Resources: c.resources, Nonce: c.nonce,
		BrowserSessionID: bs.ID, AuthTime: c.authTime, CreatedAt: now, ExpiresAt: now.Add(60 * time.Second),
	})
	if err != nil {
		ts.t.Fatal(err)
	}
	return code
}

// codeForm is an authorization_code token request; an empty redirect or
// verifier is left out.
func codeForm(code, verifier, redirect string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	if redirect != "" {
		f.Set("redirect_uri", redirect)
	}
	return f
}

// redeem exchanges a web-a code (redirect https://rp.test/cb, verifier V1).
func (ts *testServer) redeem(code string) reply {
	ts.t.Helper()
	return ts.token(webA, codeForm(code, v1, "https://rp.test/cb"))
}

// publicForm is a copy of form with client_id, as a public client sends it.
func publicForm(client string, form url.Values) url.Values {
	form = maps.Clone(form)
	form.Set("client_id", client)
	return form
}

func wantTokens(t *testing.T, r reply) {
	t.Helper()
	if r.status != 200 || r.str("access_token") == "" || r.str("token_type") != "Bearer" || r.json["expires_in"] == nil {
		t.Fatalf("got %d %s, want tokens", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("Cache-Control/Pragma = %q/%q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
}

// TestCodeGrant (T-6749-4.1.3-a, T-6749-4.1.4-a): a code buys an access
// token for its user (the sub the password grant gives), its client and
// the consented scope, and a session that is a refresh-token family like a
// password login's: it rotates and detects reuse.
func TestCodeGrant(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			signIn := ts.clock.Now().Add(-5 * time.Minute)
			r := ts.redeem(ts.issueCode(authCode{scope: "read write", authTime: signIn}))
			wantTokens(t, r)
			if r.str("refresh_token") == "" || r.str("scope") != "read write" {
				t.Fatalf("reply %s", r.body)
			}
			c := ts.verifyAccessToken(r.str("access_token"))
			pwSub := ts.verifyAccessToken(ts.login(confA).str("access_token")).Subject
			if c.Subject != pwSub || c.ClientID != "web-a" || c.Scope != "read write" {
				t.Fatalf("claims sub %q (password grant: %q), client_id %q, scope %q", c.Subject, pwSub, c.ClientID, c.Scope)
			}
			f, err := ts.store.GetFamily(t.Context(), c.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if f.GrantType != storage.GrantAuthorizationCode || !f.AuthTime.Equal(signIn) || f.ClientID != "web-a" || f.Scope != "read write" {
				t.Fatalf("session %+v", f)
			}
			if !f.IdleExpiresAt.Equal(ts.clock.Now().Add(120*time.Hour)) || !f.AbsoluteExpiresAt.Equal(ts.clock.Now().Add(720*time.Hour)) {
				t.Errorf("session lifetimes %v %v", f.IdleExpiresAt, f.AbsoluteExpiresAt)
			}
			ts.wantActive(rsAuth, r.str("access_token"))

			// The refresh grant, unchanged: rotation, then reuse revokes.
			rt1 := r.str("refresh_token")
			r2 := ts.token(webA, refresh(rt1))
			wantTokens(t, r2)
			if ts.verifyAccessToken(r2.str("access_token")).Subject != pwSub {
				t.Fatal("refreshed token has another sub")
			}
			wantError(t, ts.token(webA, refresh(rt1)), 400, "invalid_grant")
			wantError(t, ts.token(webA, refresh(r2.str("refresh_token"))), 400, "invalid_grant")
			if f, _ := ts.store.GetFamily(t.Context(), c.SessionID); f.RevokeReason != storage.ReasonReuse {
				t.Fatalf("reuse: session %+v", f)
			}
		})
	}
}

// TestCodeGrantPublicClient (T-6749-4.1.3-b): a public client names itself
// with client_id; the code is bound to that client_id.
func TestCodeGrantPublicClient(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{client: "spa-a", redirect: "https://spa.test/cb"})
			form := codeForm(code, v1, "https://spa.test/cb")
			wantError(t, ts.token("", publicForm("native-a", form)), 400, "invalid_grant")
			wantError(t, ts.token("", form), 401, "invalid_client")
			r := ts.token("", publicForm("spa-a", form))
			wantTokens(t, r)
			if c := ts.verifyAccessToken(r.str("access_token")); c.ClientID != "spa-a" {
				t.Fatalf("client_id %q", c.ClientID)
			}
			wantTokens(t, ts.token("", publicForm("spa-a", refresh(r.str("refresh_token")))))
			// A native app's loopback redirect, with the port it listened on.
			code = ts.issueCode(authCode{client: "native-a", redirect: "http://127.0.0.1:51004/cb"})
			wantTokens(t, ts.token("", publicForm("native-a", codeForm(code, v1, "http://127.0.0.1:51004/cb"))))
		})
	}
}

// TestCodeWithoutRefreshGrant (T-6749-4.1.4-a): a client without the
// refresh_token grant gets no refresh token; its session lives as long as
// the access token.
func TestCodeWithoutRefreshGrant(t *testing.T) {
	ts := newCodeServer(t, sqlite)
	code := ts.issueCode(authCode{client: "web-c", redirect: "https://rpc.test/cb"})
	r := ts.token(basic("web-c", webCSecret), codeForm(code, v1, "https://rpc.test/cb"))
	wantTokens(t, r)
	if r.str("refresh_token") != "" {
		t.Fatalf("refresh token without the refresh_token grant: %s", r.body)
	}
	f, err := ts.store.GetFamily(t.Context(), ts.verifyAccessToken(r.str("access_token")).SessionID)
	if err != nil || !f.AbsoluteExpiresAt.Equal(ts.clock.Now().Add(15*time.Minute)) {
		t.Fatalf("session %+v %v", f, err)
	}
}

// TestCodeExpiry (T-6749-4.1.2-b): a code lives 60 seconds.
func TestCodeExpiry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			live, dead, edge := ts.issueCode(authCode{}), ts.issueCode(authCode{}), ts.issueCode(authCode{})
			ts.clock.Advance(59 * time.Second)
			wantTokens(t, ts.redeem(live))
			ts.clock.Advance(time.Second)
			wantError(t, ts.redeem(edge), 400, "invalid_grant") // at ExpiresAt: expired
			ts.clock.Advance(time.Second)
			wantError(t, ts.redeem(dead), 400, "invalid_grant")
			if !strings.Contains(ts.metrics(), `keyturn_code_redemptions_total{outcome="expired"} 2`) {
				t.Error("expired redemptions not counted")
			}
		})
	}
}

// metrics returns the Prometheus exposition.
func (ts *testServer) metrics() string {
	ts.t.Helper()
	_, body := ts.get(server.PathMetrics)
	return body
}

// TestCodeReplay (T-6749-4.1.2-c, decision on codes): a code presented
// again by its client, with its verifier and redirect_uri, is refused and
// revokes the session its first redemption started, refresh and access
// tokens; the user's other sessions go on. The log names the session, not
// the code.
func TestCodeReplay(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			other := ts.redeem(ts.issueCode(authCode{}))
			pwSession := ts.login(confA)
			code := ts.issueCode(authCode{})
			first := ts.redeem(code)
			wantTokens(t, first)
			ts.clock.Advance(10 * time.Second)
			wantError(t, ts.redeem(code), 400, "invalid_grant")
			wantError(t, ts.token(webA, refresh(first.str("refresh_token"))), 400, "invalid_grant")
			ts.wantInactive(rsAuth, first.str("access_token"))
			sid := ts.verifyAccessToken(first.str("access_token")).SessionID
			if f, _ := ts.store.GetFamily(t.Context(), sid); f.RevokeReason != storage.ReasonCodeReplay {
				t.Fatalf("session %+v", f)
			}
			wantTokens(t, ts.token(webA, refresh(other.str("refresh_token"))))
			wantTokens(t, ts.token(confA, refresh(pwSession.str("refresh_token"))))
			// A replay after the code's 60 seconds is still a replay.
			code2 := ts.issueCode(authCode{})
			second := ts.redeem(code2)
			ts.clock.Advance(5 * time.Minute)
			wantError(t, ts.redeem(code2), 400, "invalid_grant")
			ts.wantInactive(rsAuth, second.str("access_token"))

			if !strings.Contains(ts.metrics(), `keyturn_code_redemptions_total{outcome="replayed"} 2`) {
				t.Error("replays not counted")
			}
			logs := ts.logs.String()
			if !strings.Contains(logs, "authorization code replayed") || !strings.Contains(logs, sid) {
				t.Error("replay not logged with its session")
			}
			for _, secret := range []string{code, code2, v1, webASecret, first.str("refresh_token"), first.str("access_token")} {
				if strings.Contains(logs, secret) {
					t.Fatalf("a secret is in the log: %q", secret)
				}
			}
		})
	}
}

// TestCodeConcurrentRedemption (T-6749-4.1.2-f): of ten redemptions of one
// code at once exactly one wins, and the others, replays, revoke its session.
func TestCodeConcurrentRedemption(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{})
			replies := make([]reply, 10)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range replies {
				wg.Go(func() { <-start; replies[i] = ts.redeem(code) })
			}
			close(start)
			wg.Wait()
			var won []reply
			for _, r := range replies {
				switch {
				case r.status == 200:
					won = append(won, r)
				case r.status != 400 || r.str("error") != "invalid_grant":
					t.Errorf("loser: %d %s", r.status, r.body)
				}
			}
			if len(won) != 1 {
				t.Fatalf("%d of 10 concurrent redemptions succeeded, want exactly 1", len(won))
			}
			wantError(t, ts.token(webA, refresh(won[0].str("refresh_token"))), 400, "invalid_grant")
			ts.wantInactive(rsAuth, won[0].str("access_token"))
		})
	}
}

// TestCodeOtherClient (T-6749-4.1.2-d, T-6749-4.1.3-b, -e): a code is
// redeemed by its client only; another client's attempt revokes nothing
// and leaves it redeemable.
func TestCodeOtherClient(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{})
			wantError(t, ts.token(webB, codeForm(code, v1, "https://rp.test/cb")), 400, "invalid_grant")
			wantError(t, ts.token(webB, codeForm(code, v1, "https://rpb.test/cb")), 400, "invalid_grant")
			// A client without the grant (T-6749-4.1.3-e).
			wantError(t, ts.token(confA, codeForm(code, v1, "https://rp.test/cb")), 400, "unauthorized_client")
			wantError(t, ts.token(basic("web-a", "wrong"), codeForm(code, v1, "https://rp.test/cb")), 401, "invalid_client")
			wantTokens(t, ts.redeem(code))
		})
	}
}

// TestCodeRedirectURI (T-6749-4.1.3-c, T-6749-10.6-a): redirect_uri is the
// authorization request's byte for byte, present if and only if it was
// there; a mismatch leaves the code redeemable.
func TestCodeRedirectURI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{})
			for _, uri := range []string{"", "https://rp.test/cb2?tenant=7", "https://rp.test/cb/", "https://rp.test/cb?",
				"HTTPS://rp.test/cb", "https://RP.test/cb", "https://rp.test:443/cb", "https://rp.test/cb#", "https://evil.test/cb"} {
				wantError(t, ts.token(webA, codeForm(code, v1, uri)), 400, "invalid_grant")
			}
			wantTokens(t, ts.redeem(code))

			// Absent in the authorization request: it must be absent here.
			code = ts.issueCode(authCode{client: "spa-a"})
			wantError(t, ts.token("", publicForm("spa-a", codeForm(code, v1, "https://spa.test/cb"))), 400, "invalid_grant")
			form := publicForm("spa-a", codeForm(code, v1, ""))
			form.Set("redirect_uri", "") // sent without a value: as absent (RFC 6749 §3.2)
			wantTokens(t, ts.token("", form))
		})
	}
}

// TestCodeVerifierSyntax (T-7636-4.1-a): a verifier is 43 to 128
// characters of the unreserved set. One outside it fails even when its
// S256 is the challenge, and a failure leaves the code redeemable.
func TestCodeVerifierSyntax(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			good := strings.Repeat("a", 43)
			bad := []string{strings.Repeat("a", 42), strings.Repeat("a", 129), good + "+", good + "/", good + "=", good + " ", good + "é"}
			code := ts.issueCode(authCode{challenge: servertest.S256(good)})
			for _, v := range bad {
				// Its own challenge: only the syntax rule refuses it.
				own := ts.issueCode(authCode{challenge: servertest.S256(v)})
				wantError(t, ts.token(webA, codeForm(own, v, "https://rp.test/cb")), 400, "invalid_grant")
				wantError(t, ts.token(webA, codeForm(code, v, "https://rp.test/cb")), 400, "invalid_grant")
			}
			wantTokens(t, ts.token(webA, codeForm(code, good, "https://rp.test/cb")))
			long := strings.Repeat("-._~Az9", 19)[:128]
			code = ts.issueCode(authCode{challenge: servertest.S256(long)})
			wantTokens(t, ts.token(webA, codeForm(code, long, "https://rp.test/cb")))
		})
	}
}

// TestCodeVerifier (T-7636-4.4-a, -4.5-a, -4.6-a, T-7636-4.2-a): the
// verifier is required and must be the one whose S256 is the code's
// challenge; RFC 7636 Appendix B's pair and the OAuth 2.1 example pass.
func TestCodeVerifier(t *testing.T) {
	if servertest.S256(v1) != c1 || servertest.S256(v2) != c2 {
		t.Fatal("test vectors")
	}
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{challenge: c1})
			changed := "e" + v1[1:]
			for _, v := range []string{"", changed, c1, v2} {
				wantError(t, ts.token(webA, codeForm(code, v, "https://rp.test/cb")), 400, "invalid_grant")
			}
			wantTokens(t, ts.token(webA, codeForm(code, v1, "https://rp.test/cb")))
			code = ts.issueCode(authCode{client: "spa-a", redirect: "https://spa.test/cb", challenge: c2})
			wantTokens(t, ts.token("", publicForm("spa-a", codeForm(code, v2, "https://spa.test/cb"))))
		})
	}
}

// TestCodeBadInput (T-6749-4.1.3-a, -d): malformed and unknown codes get
// their RFC 6749 §5.2 error, never a 500, on both databases.
func TestCodeBadInput(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			code := ts.issueCode(authCode{})
			wantError(t, ts.token(webA, url.Values{"grant_type": {"authorization_code"}, "code_verifier": {v1}}), 400, "invalid_request")
			for _, bad := range []string{code[:20] + "\x00" + code[21:], "\x00", code + "\n"} {
				wantError(t, ts.token(webA, codeForm(bad, v1, "https://rp.test/cb")), 400, "invalid_request")
			}
			wantError(t, ts.token(webA, codeForm(code, v1+"\x00", "https://rp.test/cb")), 400, "invalid_request")
			wantError(t, ts.token(webA, codeForm(code, v1, "https://rp.test/cb\x00")), 400, "invalid_request")
			flipped := string(code[0]^1) + code[1:]
			for _, bad := range []string{"nope", flipped, strings.Repeat("x", 60000), "é☃", "'; DROP TABLE codes; --"} {
				wantError(t, ts.token(webA, codeForm(bad, v1, "https://rp.test/cb")), 400, "invalid_grant")
			}
			wantTokens(t, ts.redeem(code))
		})
	}
}

// TestCodeUserDisabled: a user disabled or deleted between the code and
// its redemption gets no session.
func TestCodeUserDisabled(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			ts.addUser("bob", userPass)
			ts.addUser("eve", userPass)
			bob, eve := ts.issueCode(authCode{user: "bob"}), ts.issueCode(authCode{user: "eve"})
			if err := ts.store.SetUserDisabled(t.Context(), "bob", true, ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if err := ts.store.DeleteUser(t.Context(), "eve", ts.clock.Now()); err != nil {
				t.Fatal(err)
			}
			wantError(t, ts.redeem(bob), 400, "invalid_grant")
			wantError(t, ts.redeem(eve), 400, "invalid_grant")
			if fs, _ := ts.store.ListFamilies(t.Context(), storage.FamilyFilter{UserID: "user-bob"}); len(fs) != 0 {
				t.Fatalf("sessions of a disabled user: %+v", fs)
			}
		})
	}
}

// TestCodeResources (RFC 8707 §2.1, §2.2): the access token's audience is
// the code's resources; the token request may narrow them, never widen.
func TestCodeResources(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			api, other := "https://api.example.com", "https://other.example.com"
			code := ts.issueCode(authCode{resources: []string{api, testIssuer}})
			form := codeForm(code, v1, "https://rp.test/cb")
			form.Set("resource", other)
			wantError(t, ts.token(webA, form), 400, "invalid_target")
			form.Set("resource", api)
			r := ts.token(webA, form)
			wantTokens(t, r)
			if aud := ts.verifyAccessToken(r.str("access_token")).Audience; len(aud) != 1 || aud[0] != api {
				t.Fatalf("aud %v, want the resource requested", aud)
			}
			r = ts.redeem(ts.issueCode(authCode{resources: []string{api, testIssuer}}))
			if aud := ts.verifyAccessToken(r.str("access_token")).Audience; len(aud) != 2 || !aud.Contains(api) || !aud.Contains(testIssuer) {
				t.Fatalf("aud %v, want the code's resources", aud)
			}
			// A code without resources: the client's audience, which the
			// token request may narrow.
			r = ts.redeem(ts.issueCode(authCode{}))
			if aud := ts.verifyAccessToken(r.str("access_token")).Audience; len(aud) != 3 {
				t.Fatalf("aud %v, want the client's audience", aud)
			}
			form = codeForm(ts.issueCode(authCode{}), v1, "https://rp.test/cb")
			form.Set("resource", other)
			if aud := ts.verifyAccessToken(ts.token(webA, form).str("access_token")).Audience; len(aud) != 1 || aud[0] != other {
				t.Fatalf("aud %v", aud)
			}
		})
	}
}

// TestGolangOAuth2AuthorizationCode drives the whole flow with
// golang.org/x/oauth2, a real client library: AuthCodeURL with an S256
// challenge, the pages (as a browser), Exchange with the verifier, then a
// TokenSource that refreshes; for a confidential and a public client.
func TestGolangOAuth2AuthorizationCode(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newCodeServer(t, b)
			ctx := context.WithValue(t.Context(), oauth2.HTTPClient, ts.Client())
			for _, cfg := range []*oauth2.Config{
				{ClientID: "web-a", ClientSecret: webASecret, RedirectURL: "https://rp.test/cb2?tenant=7",
					Scopes: []string{"read", "write"}},
				{ClientID: "spa-a", Scopes: []string{"read"}}, // one redirect URI: redirect_uri left out
			} {
				cfg.Endpoint = oauth2.Endpoint{AuthURL: testIssuer + server.PathAuthorize, TokenURL: ts.URL + server.PathToken}
				verifier := oauth2.GenerateVerifier()
				state := rand.Text()
				browser := servertest.NewBrowser(t, testIssuer, ts.URL)
				page := browser.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
				if page.Kind != "login" {
					t.Fatalf("%s: authorization endpoint: %d %q", cfg.ClientID, page.Status, page.Kind)
				}
				if page = browser.Login(page, "ada", userPass); page.Kind == "consent" {
					page = browser.Allow(page)
				}
				back := page.Location
				q := back.Query()
				if back == nil || q.Get("state") != state || q.Get("iss") != testIssuer || q.Get("code") == "" {
					t.Fatalf("%s: redirect %v", cfg.ClientID, back)
				}
				tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatalf("%s: exchange: %v", cfg.ClientID, err)
				}
				c := ts.verifyAccessToken(tok.AccessToken)
				if c.ClientID != cfg.ClientID || c.Subject != "user-ada" || c.Scope != strings.Join(cfg.Scopes, " ") || tok.RefreshToken == "" {
					t.Fatalf("%s: token %+v claims %+v", cfg.ClientID, tok, c)
				}
				// The code is spent: exchanging it again fails and ends the session.
				if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
					t.Fatalf("%s: code exchanged twice", cfg.ClientID)
				}
				if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
					t.Fatalf("%s: session of a replayed code still refreshes", cfg.ClientID)
				}

				// A second flow in the same browser: no login, no consent.
				verifier = oauth2.GenerateVerifier()
				back = browser.Flow(mustQuery(t, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), "", "")
				tok, err = cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatalf("%s: exchange: %v", cfg.ClientID, err)
				}
				tok.Expiry = time.Now().Add(-time.Minute) // let x/oauth2 see it expired
				fresh, err := cfg.TokenSource(ctx, tok).Token()
				if err != nil {
					t.Fatalf("%s: refresh: %v", cfg.ClientID, err)
				}
				if fresh.RefreshToken == tok.RefreshToken || ts.verifyAccessToken(fresh.AccessToken).SessionID != ts.verifyAccessToken(tok.AccessToken).SessionID {
					t.Fatalf("%s: TokenSource did not rotate within the session", cfg.ClientID)
				}
			}
		})
	}
}

// mustQuery is the query of an absolute URL.
func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

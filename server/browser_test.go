package server_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
)

// newBrowser starts headless Chromium (Debian's chromium package, or the
// binary KEYTURN_CHROMIUM names) for a test of what a person sees, and
// returns a context that drives a fresh tab of it. Without Chromium the
// test skips, so that `go test ./...` needs Go alone; CI sets
// KEYTURN_TEST_REQUIRE_BROWSER, and then a missing or broken Chromium fails
// the test instead. The browser trusts any certificate: the tests serve
// over httptest's self-signed TLS, so that the pages run with the cookies
// of production (__Host-, Secure).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("KEYTURN_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		if os.Getenv("KEYTURN_TEST_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found (set KEYTURN_CHROMIUM or install Debian's chromium) and KEYTURN_TEST_REQUIRE_BROWSER is set")
		}
		t.Skip("no Chromium on this machine (Debian: apt-get install chromium); CI requires it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(900, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", bin, err)
	}
	return ctx
}

// browse runs steps in the browser of ctx (newBrowser), each run bounded
// so that a page that never comes fails the test instead of hanging it.
func browse[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// screenshot saves a PNG of the page as it is now, under
// KEYTURN_SCREENSHOTS if set (to look at the pages), else in the test's
// temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := browse(t, ctx, chromedp.FullScreenshot(100))
	dir := os.Getenv("KEYTURN_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserCodeFlow drives the authorization code flow in headless
// Chromium, as a person would: the authorization URL of a real client
// library (golang.org/x/oauth2, PKCE S256), the login form typed into, the
// consent page's Allow pressed, the redirect to the app followed; then the
// app exchanges the code it landed with and refreshes. Everything runs over
// TLS with the production cookie (__Host-, Secure). The second
// authorization in the same browser asks for nothing (the session and the
// remembered consent), and an unregistered redirect URI shows the error
// page and goes nowhere.
func TestBrowserCodeFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { testBrowserCodeFlow(t, b, false) })
	}
}

// TestBrowserOpenIDFlow is the same flow with scope openid (OpenID Connect
// Core §3.1): the token response carries an ID token, which a real
// relying-party library (github.com/coreos/go-oidc, finding the endpoints
// by discovery) verifies with the nonce the request sent.
func TestBrowserOpenIDFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { testBrowserCodeFlow(t, b, true) })
	}
}

func testBrowserCodeFlow(t *testing.T, b backend, openid bool) {
	ctx := newBrowser(t)
	store := openStore(t, b)

	// The app: a confidential web client whose redirect URI is a page of
	// its own that shows the query it got.
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!DOCTYPE html><title>app</title><p id=landed>%s</p>", html.EscapeString(r.URL.RawQuery))
	}))
	t.Cleanup(app.Close)
	var handler atomic.Pointer[server.Server]
	as := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().ServeHTTP(w, r)
	}))
	as.StartTLS()
	t.Cleanup(as.Close)
	issuer := as.URL
	const secret = "browser-app-s3cret"
	spec := clients.Spec{
		ID: "web-app", Name: "Web App", SecretHash: clients.SHA256Hash(secret),
		GrantTypes:   []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		Scopes:       []string{"openid", "read", "write"},
		RedirectURIs: []string{app.URL + "/cb"}, Audience: []string{"https://api.example.com"},
	}
	scopes := []string{"read", "write"}
	if openid {
		scopes = append([]string{"openid"}, scopes...)
	}
	clock := newClock()
	srv, _ := servertest.New(t, store, servertest.Setup{Issuer: issuer, Clients: []clients.Spec{spec}, Now: clock.Now,
		IDTokenAlgorithms: []string{keys.AlgRS256}})
	handler.Store(srv)
	servertest.AddUser(t, store, "alice", "alice-pass", clock.Now())

	conf := &oauth2.Config{
		ClientID: spec.ID, ClientSecret: secret, RedirectURL: app.URL + "/cb", Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + server.PathAuthorize, TokenURL: issuer + server.PathToken,
			AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	const nonce = "n-0S6_WzA2Mj"
	authURL := conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	// The login page: fill it in as a person would.
	browse(t, ctx, chromedp.Steps(
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	))
	if title := browse(t, ctx, chromedp.Title()); !strings.Contains(title, "Keyturn") {
		t.Errorf("login page title %q", title)
	}
	screenshot(t, ctx, shotName("login", b, openid))
	browse(t, ctx, chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "wrong"),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role=alert]`)),
	))
	screenshot(t, ctx, shotName("login-failed", b, openid))
	if alert := browse(t, ctx, chromedp.Text(chromedp.CSS(`[role=alert]`))); !strings.Contains(alert, "Invalid username or password") {
		t.Errorf("a failed sign-in says %q", alert)
	}
	browse(t, ctx, chromedp.Steps(
		chromedp.Clear(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "alice-pass"),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-page=consent]`)),
	))
	screenshot(t, ctx, shotName("consent", b, openid))
	consent := browse(t, ctx, chromedp.Text(chromedp.CSS(`main`)))
	for _, want := range []string{"Web App", "127.0.0.1", "alice"} {
		if !strings.Contains(consent, want) {
			t.Errorf("consent page does not show %q:\n%s", want, consent)
		}
	}

	// The session cookie, as the browser stored it.
	got, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range got.Cookies {
		if c.Name == "__Host-keyturn-session" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax || session.Path != "/" {
		t.Errorf("session cookie as stored by the browser: %+v (all: %+v)", session, got.Cookies)
	}

	// Allow: the browser lands on the app with the code.
	landed := func() url.Values {
		t.Helper()
		browse(t, ctx, chromedp.WaitVisible(chromedp.ID(`landed`)))
		text := browse(t, ctx, chromedp.Text(chromedp.ID(`landed`)))
		q, err := url.ParseQuery(text)
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("state") != "st-1" || q.Get("iss") != issuer || q.Get("code") == "" {
			t.Fatalf("the app landed with %q", text)
		}
		return q
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS(`button[value=allow]`)))
	q := landed()

	// The app exchanges the code and refreshes, with golang.org/x/oauth2.
	octx := context.WithValue(t.Context(), oauth2.HTTPClient, as.Client())
	tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("token response %+v", tok)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if !openid {
		if rawID != "" {
			t.Fatal("an ID token without scope openid")
		}
	} else {
		// The relying party's view: discovery, JWKS, signature, iss, aud,
		// exp (at the test clock's time), nonce.
		provider, err := oidc.NewProvider(octx, issuer)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: spec.ID, Now: clock.Now}).Verify(octx, rawID)
		if err != nil {
			t.Fatalf("go-oidc refuses the ID token: %v", err)
		}
		if idt.Nonce != nonce || idt.Subject == "" {
			t.Errorf("ID token nonce %q, sub %q", idt.Nonce, idt.Subject)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}
	}
	tok.Expiry = time.Now().Add(-time.Minute) // make the token source refresh
	fresh, err := conf.TokenSource(octx, tok).Token()
	if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v (%+v)", err, fresh)
	}

	// A second authorization in the same browser: signed in, consent
	// remembered (a confidential client), so straight back to the app.
	verifier2 := oauth2.GenerateVerifier()
	browse(t, ctx, chromedp.Navigate(conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier2))))
	q = landed()
	if _, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier2)); err != nil {
		t.Fatalf("second exchange: %v", err)
	}

	if openid {
		// The account choice (prompt=select_account, decision D18):
		// "Continue as alice" goes on to the app.
		v3 := oauth2.GenerateVerifier()
		browse(t, ctx, chromedp.Steps(
			chromedp.Navigate(conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(v3),
				oauth2.SetAuthURLParam("prompt", "select_account"))),
			chromedp.WaitVisible(chromedp.CSS(`body[data-page=select]`)),
		))
		screenshot(t, ctx, shotName("select", b, openid))
		browse(t, ctx, chromedp.Click(chromedp.CSS(`button[value=continue]`)))
		q = landed()
		if _, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(v3)); err != nil {
			t.Fatalf("exchange after the account choice: %v", err)
		}

		// Logout without an ID token hint asks first (decision D20), and
		// signing out ends the browser session: the next authorization
		// shows the login page again.
		browse(t, ctx, chromedp.Steps(
			chromedp.Navigate(issuer+server.PathLogout),
			chromedp.WaitVisible(chromedp.CSS(`body[data-page=logout]`)),
		))
		screenshot(t, ctx, shotName("logout", b, openid))
		browse(t, ctx, chromedp.Steps(
			chromedp.Click(chromedp.CSS(`button[value=logout]`)),
			chromedp.WaitVisible(chromedp.CSS(`body[data-page=signedout]`)),
		))
		screenshot(t, ctx, shotName("signedout", b, openid))
		browse(t, ctx, chromedp.Steps(
			chromedp.Navigate(conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
			chromedp.WaitVisible(chromedp.CSS(`body[data-page=login]`)),
		))
	}

	// An unregistered redirect URI: the error page, and the browser stays.
	evil := strings.Replace(authURL, url.QueryEscape(app.URL+"/cb"), url.QueryEscape("https://evil.example/cb"), 1)
	browse(t, ctx, chromedp.Steps(
		chromedp.Navigate(evil),
		chromedp.WaitVisible(chromedp.CSS(`body[data-page=error]`)),
	))
	screenshot(t, ctx, shotName("error", b, openid))
	loc := browse(t, ctx, chromedp.Location())
	text := browse(t, ctx, chromedp.Text(chromedp.CSS(`main`)))
	if !strings.HasPrefix(loc, issuer+server.PathAuthorize) || !strings.Contains(text, "redirect") {
		t.Errorf("error page at %s says %q", loc, text)
	}
}

func shotName(page string, b backend, openid bool) string {
	if openid {
		page += "-openid"
	}
	return page + "-" + b.String()
}

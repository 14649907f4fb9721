package main

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
)

// The demo's browser flow. serve --demo also registers demo-app, a public
// third-party client that signs its user in with the authorization code
// flow and PKCE (RFC 6749 §4.1, RFC 7636), as a native app would: its
// redirect URI is a loopback page (RFC 8252 §7.3) that this server serves
// in demo mode only, showing the code it received and the curl that
// exchanges it.

const (
	demoAppID        = "demo-app"
	demoAppName      = "Demo App"
	pathDemoCallback = "/demo/callback"
)

// demoAppSpec is demo-app's registration. Its redirect URIs carry no port,
// so the port the server listens on matches (a public client's loopback
// URI, RFC 8252 §7.3).
func demoAppSpec() clients.Spec {
	return clients.Spec{
		ID:           demoAppID,
		Name:         demoAppName,
		Public:       true,
		GrantTypes:   []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken},
		RedirectURIs: []string{"http://127.0.0.1" + pathDemoCallback, "http://[::1]" + pathDemoCallback},
		// openid and profile: the demo is an OpenID Connect sign-in too
		// (an ID token in the token response, UserInfo with the username).
		Scopes:        []string{"openid", "profile", "read", "write"},
		DefaultScopes: []string{"read"},
	}
}

// demoApp is demo-app's side of the flow: the PKCE verifier and the state
// it made at start and, once the server listens, its redirect URI. It is
// the handler of the callback page.
type demoApp struct {
	issuer    string // as configured: what iss must equal (RFC 9207 §2.4)
	base      string // issuer without a trailing slash, for URLs
	scope     string
	verifier  string // RFC 7636 §4.1: 43 characters of [A-Za-z0-9-_]
	challenge string // S256 of verifier (RFC 7636 §4.2)
	state     string
	// redirectURI is the callback page's URI on the listener; "" when a
	// browser could not reach it, and then note says why.
	redirectURI string
	note        string
}

func newDemoApp(issuer string) (*demoApp, error) {
	verifier, err := randomToken(32)
	if err != nil {
		return nil, err
	}
	state, err := randomToken(16)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(verifier))
	return &demoApp{
		issuer:    issuer,
		base:      strings.TrimSuffix(issuer, "/"),
		scope:     "openid profile read write",
		verifier:  verifier,
		challenge: base64.RawURLEncoding.EncodeToString(sum[:]),
		state:     state,
	}, nil
}

// bind sets the redirect URI to the callback page on the listener at addr,
// if a browser on this machine can follow the flow there: the issuer (where
// the browser signs in) is a loopback URL, the listener speaks plain HTTP
// (a loopback redirect URI is http, RFC 8252 §7.3) and a loopback address
// reaches it.
func (d *demoApp) bind(addr net.Addr, tls bool) {
	u, err := url.Parse(d.issuer)
	var host string
	if err == nil {
		host = u.Hostname()
	}
	ap, aerr := netip.ParseAddrPort(addr.String())
	switch {
	case host != "localhost" && !isLoopbackIP(host):
		d.note = fmt.Sprintf("the issuer %s is not a loopback URL, so a browser signing in there cannot be sent back to this server's loopback page", d.issuer)
	case tls:
		d.note = "this server listens with TLS, and a loopback redirect URI is plain http"
	case aerr != nil:
		d.note = fmt.Sprintf("cannot tell the port of %s", addr)
	case ap.Addr().Unmap().IsLoopback() && ap.Addr().Is6() && !ap.Addr().Is4In6():
		d.redirectURI = fmt.Sprintf("http://[::1]:%d%s", ap.Port(), pathDemoCallback)
	case ap.Addr().Unmap().IsLoopback() || ap.Addr().IsUnspecified():
		d.redirectURI = fmt.Sprintf("http://127.0.0.1:%d%s", ap.Port(), pathDemoCallback)
	default:
		d.note = fmt.Sprintf("this server listens on %s, which no loopback address reaches", addr)
	}
}

func isLoopbackIP(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authorizeURL is the authorization request demo-app would send the
// browser to (RFC 6749 §4.1.1, with RFC 7636 §4.3's challenge).
func (d *demoApp) authorizeURL() string {
	q := []string{
		"response_type=code",
		"client_id=" + demoAppID,
		"redirect_uri=" + url.QueryEscape(d.redirectURI),
		"scope=" + url.QueryEscape(d.scope),
		"state=" + d.state,
		"code_challenge=" + d.challenge,
		"code_challenge_method=S256",
	}
	return d.base + server.PathAuthorize + "?" + strings.Join(q, "&")
}

// exchangeCommand is the token request that redeems code (RFC 6749
// §4.1.3): a public client, so client_id and no secret, with the PKCE
// verifier (RFC 7636 §4.5). code must be safe in a shell command line
// (codeShape).
func (d *demoApp) exchangeCommand(code string) string {
	return strings.Join([]string{
		"curl -s",
		"-d grant_type=authorization_code",
		"-d code=" + code,
		"--data-urlencode redirect_uri=" + d.redirectURI,
		"-d client_id=" + demoAppID,
		"-d code_verifier=" + d.verifier,
		d.base + server.PathToken,
	}, " \\\n  ")
}

// refreshCommand refreshes demo-app's session (RFC 6749 §6).
func (d *demoApp) refreshCommand() string {
	return strings.Join([]string{
		"curl -s",
		"-d grant_type=refresh_token",
		"-d client_id=" + demoAppID,
		"-d refresh_token=REFRESH_TOKEN",
		d.base + server.PathToken,
	}, " \\\n  ")
}

// codeShape is what Keyturn's codes look like (256 bits, base64url). The
// callback page offers a command only for a code of this shape: anyone can
// link a browser to it with a code of their choosing, and a command to be
// pasted into a shell must not carry it.
var codeShape = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

//go:embed demo_callback.html
var demoCallbackHTML string

var demoCallbackPage = template.Must(template.New("callback").Parse(demoCallbackHTML))

// demoCallback is what the callback page shows.
type demoCallback struct {
	Style                   string // the stylesheet's path
	Error, ErrorDescription string
	Code, State, Issuer     string
	// Problems are why the response is not to be used (an app would drop it).
	Problems []string
	Exchange string // the curl that redeems the code; "" with problems
	Refresh  string
}

// ServeHTTP is the callback page: demo-app's redirect URI. It checks the
// response as a client must, and shows it.
func (d *demoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	p := demoCallback{Style: server.PathStyle} // on this page's origin, which need not be the issuer's
	// one is the parameter's value; a repeated one is a problem, and none.
	one := func(name string) string {
		if len(q[name]) > 1 {
			p.Problems = append(p.Problems, name+" is repeated")
			return ""
		}
		return q.Get(name)
	}
	p.Error, p.ErrorDescription = one("error"), one("error_description")
	p.Code, p.State, p.Issuer = one("code"), one("state"), one("iss")
	// RFC 6749 §10.12: the state must be the one the app sent.
	if subtle.ConstantTimeCompare([]byte(p.State), []byte(d.state)) != 1 {
		p.Problems = append(p.Problems, "the state is not the one in the printed URL: a response this app did not ask for (RFC 6749 §10.12)")
	}
	// RFC 9207 §2.4: the issuer must be the one the app sent the user to.
	if p.Issuer != d.issuer {
		p.Problems = append(p.Problems, fmt.Sprintf("iss is not %s: the response comes from another authorization server (RFC 9207)", d.issuer))
	}
	switch {
	case p.Error != "":
	case p.Code == "":
		p.Problems = append(p.Problems, "the response has no code")
	case !codeShape.MatchString(p.Code):
		p.Problems = append(p.Problems, "the code is not one Keyturn issues")
	}
	if len(p.Problems) == 0 && p.Error == "" {
		p.Exchange = d.exchangeCommand(p.Code)
		p.Refresh = d.refreshCommand()
	}
	// The server's own page headers: never cached, never framed, no
	// referrer that would carry the code elsewhere, no script.
	server.SetPageHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	demoCallbackPage.Execute(w, p)
}

// withDemoCallback serves the callback page at its path and everything
// else with next.
func withDemoCallback(next http.Handler, d *demoApp) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathDemoCallback {
			d.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// instructions is demo-app's part of the demo block: the authorization URL
// to open, or why there is none.
func (d *demoApp) instructions(username string) string {
	if d.redirectURI == "" {
		return fmt.Sprintf(`Sign in as a third-party app (client %s, authorization code + PKCE):
not in this setup: %s. Its redirect URI is a page this server serves at
http://127.0.0.1:<port>%s; run the demo with the default issuer
and listen (http://127.0.0.1:8080) to try it in a browser.
`, demoAppID, d.note, pathDemoCallback)
	}
	return fmt.Sprintf(`Sign in as a third-party app (client %s, authorization code + PKCE):
open this URL in a browser, log in as %s with the password above and allow
%q. The browser lands on this server's page %s,
which shows the code and the curl that exchanges it for tokens:
  %s
`, demoAppID, username, demoAppName, d.redirectURI, d.authorizeURL())
}

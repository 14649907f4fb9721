package servertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/server"
)

// Browser drives the authorization endpoint (RFC 6749 §4.1) as a browser
// would, for tests: one cookie jar, no redirect followed (the test reads
// each Location), and forms submitted with their hidden fields plus what a
// person types. It speaks to the issuer's URLs and sends them to the test
// server, so that the jar sees the issuer's origin: over an https issuer
// the __Host- and Secure cookies then behave as in a real browser.
type Browser struct {
	tb     testing.TB
	Issuer string
	Jar    *cookiejar.Jar
	Client *http.Client
}

// NewBrowser returns a browser with an empty jar whose requests for
// issuer's URLs go to serverURL (an httptest.Server's URL).
func NewBrowser(tb testing.TB, issuer, serverURL string) *Browser {
	tb.Helper()
	iss, err := url.Parse(issuer)
	if err != nil {
		tb.Fatal(err)
	}
	to, err := url.Parse(serverURL)
	if err != nil {
		tb.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	return &Browser{
		tb: tb, Issuer: issuer, Jar: jar,
		Client: &http.Client{
			Jar:       jar,
			Transport: rewrite{from: iss, to: to},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// rewrite sends requests for the issuer's origin to the test server.
type rewrite struct{ from, to *url.URL }

func (t rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != t.from.Scheme || r.URL.Host != t.from.Host {
		return nil, &url.Error{Op: r.Method, URL: r.URL.String(), Err: errNotIssuer}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host = t.to.Scheme, t.to.Host
	return http.DefaultTransport.RoundTrip(r2)
}

var errNotIssuer = &notIssuer{}

type notIssuer struct{}

func (*notIssuer) Error() string { return "servertest.Browser only visits the issuer" }

// Page is one response of the authorization endpoint or its forms.
type Page struct {
	Status int
	Header http.Header
	Body   string
	// Kind is the page's kind ("login", "consent", "error"), "" for a
	// response that is not a page (a redirect).
	Kind string
	// Action is the page's form's target; Fields its hidden fields (csrf,
	// request).
	Action string
	Fields url.Values
	// Location is a redirect's target, nil if none.
	Location *url.URL
}

// Query is the redirect's query parameters (code, state, iss, error...).
func (p *Page) Query() url.Values {
	if p.Location == nil {
		return nil
	}
	return p.Location.Query()
}

// Brief reports whether a consent page is the one-click "Continue" page.
func (p *Page) Brief() bool {
	return p.Kind == "consent" && strings.Contains(p.Body, `value="allow">Continue<`)
}

var (
	pageKind    = regexp.MustCompile(`<body data-page="([a-z]+)"`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// Do sends req with the browser's cookies and reads the response as a Page.
func (b *Browser) Do(req *http.Request) *Page {
	b.tb.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.tb.Fatal(err)
	}
	p := &Page{Status: resp.StatusCode, Header: resp.Header, Body: string(body), Fields: url.Values{}}
	if loc := resp.Header.Get("Location"); loc != "" {
		if p.Location, err = url.Parse(loc); err != nil {
			b.tb.Fatalf("Location %q: %v", loc, err)
		}
	}
	if m := pageKind.FindStringSubmatch(p.Body); m != nil {
		p.Kind = m[1]
	}
	if m := formAction.FindStringSubmatch(p.Body); m != nil {
		p.Action = html.UnescapeString(m[1])
	}
	for _, m := range hiddenField.FindAllStringSubmatch(p.Body, -1) {
		p.Fields.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return p
}

// Get loads rawURL (on the issuer).
func (b *Browser) Get(rawURL string) *Page {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.tb.Fatal(err)
	}
	return b.Do(req)
}

// Post posts form to rawURL (on the issuer).
func (b *Browser) Post(rawURL string, form url.Values) *Page {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		b.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// Authorize opens the authorization endpoint with params (GET).
func (b *Browser) Authorize(params url.Values) *Page {
	b.tb.Helper()
	return b.Get(b.Issuer + server.PathAuthorize + "?" + params.Encode())
}

// Submit posts p's form: its hidden fields, then fields (which replace
// hidden ones of the same name).
func (b *Browser) Submit(p *Page, fields url.Values) *Page {
	b.tb.Helper()
	if p.Action == "" {
		b.tb.Fatalf("no form on the page (status %d, kind %q)", p.Status, p.Kind)
	}
	form := url.Values{}
	for k, v := range p.Fields {
		form[k] = v
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.Post(p.Action, form)
}

// Login fills in and submits the login page p.
func (b *Browser) Login(p *Page, username, password string) *Page {
	b.tb.Helper()
	if p.Kind != "login" {
		b.tb.Fatalf("Login: not a login page (status %d, kind %q, Location %v)", p.Status, p.Kind, p.Location)
	}
	return b.Submit(p, url.Values{"username": {username}, "password": {password}})
}

// Allow presses Allow (or Continue) on the consent page p.
func (b *Browser) Allow(p *Page) *Page {
	b.tb.Helper()
	if p.Kind != "consent" {
		b.tb.Fatalf("Allow: not a consent page (status %d, kind %q, Location %v)", p.Status, p.Kind, p.Location)
	}
	return b.Submit(p, url.Values{"action": {"allow"}})
}

// Deny presses Deny (or Cancel) on the consent page p.
func (b *Browser) Deny(p *Page) *Page {
	b.tb.Helper()
	if p.Kind != "consent" {
		b.tb.Fatalf("Deny: not a consent page (status %d, kind %q, Location %v)", p.Status, p.Kind, p.Location)
	}
	return b.Submit(p, url.Values{"action": {"deny"}})
}

// Flow runs an authorization request to its end: it signs in as username
// with password when the login page appears and allows when the consent
// page does, and returns the redirect that leaves Keyturn (with code, or
// error). An error page fails the test.
func (b *Browser) Flow(params url.Values, username, password string) *url.URL {
	b.tb.Helper()
	p := b.Authorize(params)
	for range 4 {
		switch {
		case p.Location != nil:
			return p.Location
		case p.Kind == "login":
			p = b.Login(p, username, password)
		case p.Kind == "consent":
			p = b.Allow(p)
		default:
			b.tb.Fatalf("Flow: status %d, kind %q: %s", p.Status, p.Kind, p.Body)
		}
	}
	b.tb.Fatalf("Flow: no redirect after %d steps", 4)
	return nil
}

// Cookie returns the jar's cookie name for the issuer, nil if none.
func (b *Browser) Cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.Issuer + "/")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// AuthorizeParams are an authorization request for clientID with PKCE
// challenge (S256) and a random state; redirectURI "" leaves redirect_uri
// out. Change or delete parameters on the result.
func AuthorizeParams(clientID, redirectURI, challenge string) url.Values {
	v := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "state": {rand.Text()},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if redirectURI != "" {
		v.Set("redirect_uri", redirectURI)
	}
	return v
}

// S256 is the PKCE S256 challenge of verifier (RFC 7636 §4.2).
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
)

// TestServeDemoBrowserFlow follows what serve --demo prints for demo-app
// as a person would: the authorization URL in a browser (a client with a
// cookie jar), the login page, the consent page, the callback page, and
// the curl that page shows, run over HTTP; then the CLI sees the session
// and the consent, and the demo's end takes both away.
func TestServeDemoBrowserFlow(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		// The issuer is where the browser goes: the address served.
		addr := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
		c.env["KEYTURN_ISSUER"] = "http://" + addr
		c.env["KEYTURN_LISTEN"] = addr
		d := c.startDemo()
		authURL := d.authorizeURL()
		q := authURL.Query()
		callback := "http://" + addr + pathDemoCallback
		for k, want := range map[string]string{
			"response_type": "code", "client_id": demoAppID, "redirect_uri": callback,
			"scope": "openid profile read write", "code_challenge_method": "S256",
		} {
			if got := q.Get(k); got != want {
				t.Errorf("printed URL: %s=%q, want %q", k, got, want)
			}
		}
		if len(q.Get("state")) < 22 || len(q.Get("code_challenge")) != 43 {
			t.Errorf("printed URL: state %q, code_challenge %q", q.Get("state"), q.Get("code_challenge"))
		}

		// The browser signs in, allows, and is sent back to the callback page.
		b := servertest.NewBrowser(t, "http://"+addr, "http://"+addr)
		login := b.Get(authURL.String())
		consent := b.Login(login, d.username, d.password)
		if !strings.Contains(consent.Body, demoAppName) {
			t.Fatalf("consent page does not name %q:\n%s", demoAppName, consent.Body)
		}
		back := b.Allow(consent)
		if back.Location == nil || !strings.HasPrefix(back.Location.String(), callback+"?") {
			t.Fatalf("after Allow: %d, Location %v, want %s", back.Status, back.Location, callback)
		}
		page := b.Get(back.Location.String())
		if page.Status != http.StatusOK {
			t.Fatalf("callback page: %d\n%s", page.Status, page.Body)
		}
		// The callback page has the pages' headers.
		for _, k := range []string{"Content-Type", "Cache-Control", "Pragma", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "X-Content-Type-Options"} {
			if got, want := page.Header.Get(k), login.Header.Get(k); got != want || want == "" {
				t.Errorf("callback page %s: %q, login page's %q", k, got, want)
			}
		}
		if p := elementText(page.Body, "problems"); p != "" {
			t.Fatalf("callback page finds problems: %s", p)
		}
		exchange := parseCurl(t, elementText(page.Body, "exchange"))
		tok, status := exchange.do(t)
		if status != http.StatusOK || tok["refresh_token"] == nil || tok["access_token"] == nil || tok["scope"] != "openid profile read write" || tok["id_token"] == nil {
			t.Fatalf("the page's exchange: %d %v", status, tok)
		}
		refresh := parseCurl(t, elementText(page.Body, "refresh"))
		refresh.form.Set("refresh_token", tok["refresh_token"].(string))
		if tok, status := refresh.do(t); status != http.StatusOK || tok["refresh_token"] == nil {
			t.Fatalf("the page's refresh: %d %v", status, tok)
		}

		// The CLI sees what the flow made.
		if row := listRow(t, c.want(exitOK, "", "sessions", "list", "--client", demoAppID).stdout, sessionOf(t, tok)); row[3] != "authorization_code" {
			t.Errorf("sessions list: %q", row)
		}
		if row := listRow(t, c.want(exitOK, "", "consents", "list", "--user", d.username).stdout, demoAppID); len(row) != 6 || strings.Join(row[2:], " ") != "openid profile read write" {
			t.Errorf("consents list: %q", row)
		}

		// The same code again: refused, and the session it started ends
		// (RFC 6749 §4.1.2).
		if tok, status := exchange.do(t); status != http.StatusBadRequest || tok["error"] != "invalid_grant" {
			t.Errorf("code replayed: %d %v, want 400 invalid_grant", status, tok)
		}

		if code := d.stop(); code != exitOK {
			t.Fatalf("serve exited %d:\n%s", code, d.stderr)
		}
		logs := d.stderr.String()
		for _, secret := range []string{d.password, exchange.form.Get("code"), exchange.form.Get("code_verifier"), tok["refresh_token"].(string)} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain a secret (%.8s…)", secret)
			}
		}
		if out := c.want(exitOK, "", "sessions", "list", "--client", demoAppID).stdout; strings.Contains(out, "active") {
			t.Errorf("after the demo, a demo-app session is active:\n%s", out)
		}
	})
}

// TestServeDemoCallbackPage: the callback page shows what a client must
// check and offers a command only for a response the demo asked for, in
// the shape of a Keyturn code: a link anyone can make must not put their
// text into a command to paste into a shell.
func TestServeDemoCallbackPage(t *testing.T) {
	c := newCLI(t, "")
	d := c.startDemo()
	state := d.authorizeURL().Query().Get("state")
	const code = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
	iss := "http://127.0.0.1:8080" // newCLI's issuer
	get := func(q url.Values) page {
		t.Helper()
		resp, err := http.Get("http://" + d.addr + pathDemoCallback + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return page{status: resp.StatusCode, body: string(body)}
	}
	p := get(url.Values{"code": {code}, "state": {state}, "iss": {iss}})
	if elementText(p.body, "problems") != "" || !strings.Contains(elementText(p.body, "exchange"), "-d code="+code+" ") {
		t.Fatalf("a good response:\n%s", p.body)
	}
	for name, q := range map[string]url.Values{
		"wrong state":     {"code": {code}, "state": {"other"}, "iss": {iss}},
		"no state":        {"code": {code}, "iss": {iss}},
		"another issuer":  {"code": {code}, "state": {state}, "iss": {"http://127.0.0.1:9999"}},
		"no iss":          {"code": {code}, "state": {state}},
		"shell in code":   {"code": {"$(touch /tmp/pwned)"}, "state": {state}, "iss": {iss}},
		"short code":      {"code": {code[1:]}, "state": {state}, "iss": {iss}},
		"no code":         {"state": {state}, "iss": {iss}},
		"repeated code":   {"code": {code, code}, "state": {state}, "iss": {iss}},
		"repeated state":  {"code": {code}, "state": {state, state}, "iss": {iss}},
		"an error answer": {"error": {"access_denied"}, "state": {state}, "iss": {iss}},
	} {
		p := get(q)
		if p.status != http.StatusOK || strings.Contains(p.body, `id="exchange"`) {
			t.Errorf("%s: %d, offers the exchange:\n%s", name, p.status, p.body)
		}
		if strings.HasPrefix(name, "repeated") && !strings.Contains(elementText(p.body, "problems"), "is repeated") {
			t.Errorf("%s: problems %q", name, elementText(p.body, "problems"))
		}
	}
	p = get(url.Values{"error": {"access_denied"}, "error_description": {"<script>alert(1)</script>"}, "state": {state}, "iss": {iss}})
	if got := elementText(p.body, "error"); got != "access_denied" || strings.Contains(p.body, "<script>") {
		t.Errorf("an error answer: error %q\n%s", got, p.body)
	}
	if elementText(p.body, "problems") != "" {
		t.Errorf("a genuine error answer has problems: %s", elementText(p.body, "problems"))
	}
	resp, err := http.Post("http://"+d.addr+pathDemoCallback, "application/x-www-form-urlencoded", strings.NewReader("code="+code))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	d.stop()

	// Without --demo there is no such page.
	s := c.startServe()
	resp, err = http.Get(s.url + pathDemoCallback + "?code=" + code)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("callback without --demo: %d, want 404", resp.StatusCode)
	}
	s.stop()
}

// page is a page's status and body.
type page struct {
	status int
	body   string
}

// authorizeURL is the authorization URL the demo printed.
func (d *demo) authorizeURL() *url.URL {
	d.t.Helper()
	m := regexp.MustCompile(`(?m)^  (http://\S+` + regexp.QuoteMeta(server.PathAuthorize) + `\?\S+)$`).FindStringSubmatch(d.stdout.String())
	if m == nil {
		d.t.Fatalf("no authorization URL in:\n%s", d.stdout)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		d.t.Fatal(err)
	}
	return u
}

// sessionOf is the session (family) id of a token response's refresh token.
func sessionOf(t *testing.T, tok map[string]any) string {
	t.Helper()
	fam, _ := refreshParts(t, tok["refresh_token"].(string))
	return fam
}

// elementText is the text of the element with the given id, its tags
// dropped and unescaped; "" if there is none.
func elementText(body, id string) string {
	open := regexp.MustCompile(`<(\w+)[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindStringSubmatchIndex(body)
	if open == nil {
		return ""
	}
	rest := body[open[1]:]
	end := strings.Index(rest, "</"+body[open[2]:open[3]]+">")
	if end < 0 {
		return ""
	}
	return strings.TrimSpace(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(rest[:end], "")))
}

// tokenRequest is a token request parsed from a curl command the callback
// page shows: `curl -s -d k=v --data-urlencode k=v … URL`, with lines
// continued by a backslash.
type tokenRequest struct {
	form url.Values
	url  string
}

func parseCurl(t *testing.T, cmd string) tokenRequest {
	t.Helper()
	args := strings.Fields(strings.ReplaceAll(cmd, "\\\n", " "))
	if len(args) < 3 || args[0] != "curl" || args[1] != "-s" {
		t.Fatalf("not a curl command: %q", cmd)
	}
	r := tokenRequest{form: url.Values{}}
	for j := 2; j < len(args); j++ {
		switch {
		case (args[j] == "-d" || args[j] == "--data-urlencode") && j+1 < len(args):
			j++
			k, v, _ := strings.Cut(args[j], "=")
			r.form.Add(k, v)
		case j == len(args)-1 && strings.HasPrefix(args[j], "http://"):
			r.url = args[j]
		default:
			t.Fatalf("unexpected curl argument %q in %q", args[j], cmd)
		}
	}
	return r
}

// do sends the request as curl would and returns the JSON answer.
func (r tokenRequest) do(t *testing.T) (map[string]any, int) {
	t.Helper()
	resp, err := http.PostForm(r.url, r.form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %d, not JSON: %v", r.url, resp.StatusCode, err)
	}
	return body, resp.StatusCode
}

// TestDemoAppRedirect: demo-app's redirect URI is the callback page on the
// port served, on a loopback address a browser on this machine reaches,
// and one its registration matches (RFC 8252 §7.3); where a browser could
// not get there, there is none and the demo says why.
func TestDemoAppRedirect(t *testing.T) {
	reg, err := clients.New([]clients.Spec{demoAppSpec()}, config.Default().ClientDefaults(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	app, _ := reg.Get(demoAppID)
	for _, tc := range []struct {
		issuer, addr string
		tls          bool
		want         string // "": a note instead
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", false, "http://127.0.0.1:8080/demo/callback"},
		{"http://127.0.0.1:8080/", "127.0.0.1:41234", false, "http://127.0.0.1:41234/demo/callback"},
		{"http://localhost:8080", "127.0.0.1:8080", false, "http://127.0.0.1:8080/demo/callback"},
		{"http://[::1]:8080", "[::1]:8080", false, "http://[::1]:8080/demo/callback"},
		{"http://127.0.0.1:8080", "0.0.0.0:8080", false, "http://127.0.0.1:8080/demo/callback"},
		{"http://127.0.0.1:8080", "[::]:8080", false, "http://127.0.0.1:8080/demo/callback"},
		{"https://auth.example.com", "127.0.0.1:8080", false, ""},
		{"http://127.0.0.1.evil.example:8080", "127.0.0.1:8080", false, ""},
		{"https://127.0.0.1:8443", "127.0.0.1:8443", true, ""},
		{"http://127.0.0.1:8080", "10.0.0.5:8080", false, ""},
	} {
		d, err := newDemoApp(tc.issuer)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		d.bind(addr, tc.tls)
		if d.redirectURI != tc.want {
			t.Errorf("%s on %s (tls %v): redirect URI %q, want %q", tc.issuer, tc.addr, tc.tls, d.redirectURI, tc.want)
		}
		if tc.want == "" {
			if text := d.instructions("demo"); d.note == "" || !strings.Contains(text, d.note) || strings.Contains(text, server.PathAuthorize) {
				t.Errorf("%s on %s: instructions without a URL should say why:\n%s", tc.issuer, tc.addr, text)
			}
			continue
		}
		if !app.MatchRedirect(d.redirectURI) {
			t.Errorf("demo-app's registration does not match %s", d.redirectURI)
		}
		if !strings.Contains(d.instructions("demo"), d.authorizeURL()) {
			t.Errorf("instructions lack the URL:\n%s", d.instructions("demo"))
		}
	}
}

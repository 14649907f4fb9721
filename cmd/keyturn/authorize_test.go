package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
)

// TestServeAuthorizeSettings: serve hands the authorize.* and pages.*
// settings to the authorization endpoint: the pages show the product name
// and serve the logo file's bytes, the browser session cookie lives
// browser_session_ttl, and a code code_ttl.
func TestServeAuthorizeSettings(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		logo := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 64)...)
		logoPath := filepath.Join(c.dir, "logo.png")
		if err := os.WriteFile(logoPath, logo, 0o600); err != nil {
			t.Fatal(err)
		}
		c.appendConfig(fmt.Sprintf(`authorize:
  code_ttl: 90s
  browser_session_ttl: 2h
pages:
  product_name: Acme Sign-in
  logo_file: %s
clients:
  - id: native
    name: Native
    public: true
    grant_types: [authorization_code, refresh_token]
    redirect_uris: [http://127.0.0.1/cb]
    scopes: [read]
`, logoPath))
		c.want(exitOK, "pw of ada\n", "users", "create", "--username", "ada", "--password-stdin")
		s := c.startServe()
		defer s.stop()

		b := servertest.NewBrowser(t, "http://127.0.0.1:8080", s.url) // newCLI's issuer
		params := servertest.AuthorizeParams("native", "http://127.0.0.1:51004/cb", servertest.S256(strings.Repeat("v", 43)))
		params.Set("scope", "read")
		login := b.Authorize(params)
		if login.Kind != "login" || !strings.Contains(login.Body, "Acme Sign-in") || !strings.Contains(login.Body, server.PathLogo) {
			t.Fatalf("login page without the product name and logo (%d %q):\n%s", login.Status, login.Kind, login.Body)
		}
		consent := b.Login(login, "ada", "pw of ada")
		var session *http.Cookie
		for _, sc := range consent.Header.Values("Set-Cookie") {
			if ck, err := http.ParseSetCookie(sc); err == nil && ck.Name == "keyturn-session" {
				session = ck
			}
		}
		switch {
		case session == nil:
			t.Error("no browser session cookie")
		case session.MaxAge != int((2 * time.Hour).Seconds()):
			t.Errorf("browser session cookie Max-Age %d, want 7200", session.MaxAge) // not its value: a secret
		}
		back := b.Allow(consent)
		code := back.Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %d %v", back.Status, back.Location)
		}
		stored, err := c.store().GetCode(t.Context(), tokens.HashSecret(code))
		if err != nil {
			t.Fatal(err)
		}
		if ttl := stored.ExpiresAt.Sub(stored.CreatedAt); ttl != 90*time.Second {
			t.Errorf("code lifetime %v, want 90s", ttl)
		}

		resp, err := http.Get(s.url + server.PathLogo)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, logo) || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("logo: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
		}
	})
}

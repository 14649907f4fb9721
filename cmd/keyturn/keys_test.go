package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/server"
)

// kidOf is the kid in an access token's JOSE header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h struct{ Kid string }
	if err != nil || json.Unmarshal(b, &h) != nil || h.Kid == "" {
		t.Fatalf("access token header: %q, %v", b, err)
	}
	return h.Kid
}

// jwksKids fetches the demo server's JWKS.
func (d *demo) jwksKids() []string {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + server.PathJWKS)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		d.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// introspect asks the demo server about token as the demo client and
// returns the raw body (RFC 7662 §2.2).
func (d *demo) introspect(token string) string {
	d.t.Helper()
	req, err := http.NewRequestWithContext(d.t.Context(), http.MethodPost, "http://"+d.addr+server.PathIntrospect,
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		d.t.Fatal(err)
	}
	req.SetBasicAuth(d.clientID, d.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("introspect: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestKeysRevoke: `keyturn keys revoke KID` against a running server. The
// server notices by itself within seconds, without a restart or a request:
// the JWKS drops the key, a token it signed (introspected, so remembered
// as verified, before) introspects inactive, and new tokens are signed by
// the replacement. `keys list` shows the key revoked; an unknown kid is a
// usage error.
func TestKeysRevoke(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.env["KEYTURN_SECRET"] = testSecret
		d := c.startDemo()
		cc := request{user: d.clientID, pass: d.secret, url: "http://" + d.addr + server.PathToken,
			form: url.Values{"grant_type": {"client_credentials"}}}
		at, _ := d.token(cc)["access_token"].(string)
		old := kidOf(t, at)
		if body := d.introspect(at); !strings.Contains(body, `"active":true`) {
			t.Fatalf("introspect before revocation: %s", body)
		}
		// The JWKS holds the access-token key and the ID tokens' RS256 key.
		if kids := d.jwksKids(); len(kids) != 2 || !slices.Contains(kids, old) {
			t.Fatalf("JWKS %v, want %s and the RS256 key", kids, old)
		}

		r := c.want(exitOK, "", "keys", "revoke", "--", old)
		m := regexp.MustCompile(`^revoked key ` + regexp.QuoteMeta(old) + `: every instance drops it within seconds\nnew key (\S+) signs from now on\n$`).FindStringSubmatch(r.stdout)
		if m == nil || r.stderr != "" {
			t.Fatalf("revoke: stdout %q, stderr %q", r.stdout, r.stderr)
		}
		next := m[1]

		d.stderr.waitFor(t, "the server to notice the revocation", func(s string) bool {
			return strings.Contains(s, `"msg":"signing key revoked: no longer published, accepted or used","kid":"`+old+`"`)
		})
		if kids := d.jwksKids(); len(kids) != 2 || !slices.Contains(kids, next) || slices.Contains(kids, old) {
			t.Fatalf("JWKS after revocation %v, want %s and the RS256 key, not %s", kids, next, old)
		}
		if body := d.introspect(at); body != "{\"active\":false}\n" {
			t.Fatalf("introspect a token of the revoked key: %s, want inactive", body)
		}
		at2, _ := d.token(cc)["access_token"].(string)
		if kid := kidOf(t, at2); kid != next {
			t.Fatalf("new token signed by %s, want %s", kid, next)
		}
		if body := d.introspect(at2); !strings.Contains(body, `"active":true`) {
			t.Fatalf("introspect a token of the new key: %s", body)
		}

		r = c.want(exitOK, "", "keys", "list")
		if row := listRow(t, r.stdout, old); len(row) != 6 || row[2] != "revoked" || row[5] == "-" {
			t.Errorf("revoked key row %q, want state revoked and when", row)
		}
		if row := listRow(t, r.stdout, next); row[2] != "active" {
			t.Errorf("new key row %q, want active", row)
		}

		r = c.want(exitOK, "", "keys", "revoke", "--", old)
		if !strings.HasPrefix(r.stdout, "key "+old+" was already revoked at ") {
			t.Errorf("revoke again: %q", r.stdout)
		}
		r = c.want(exitUsage, "", "keys", "revoke", "no-such-kid")
		wantOneLine(t, r.stderr, `keyturn: no signing key "no-such-kid" (see keyturn keys list)`)
		c.want(exitUsage, "", "keys", "revoke")
		// One kid in 64 starts with '-': without "--" it reads as a flag,
		// and the error says where it goes; after "--" it is a kid.
		r = c.want(exitUsage, "", "keys", "revoke", "-Vabc")
		if !strings.Contains(r.stderr, "goes after '--'") {
			t.Errorf("revoke -Vabc: %q, want the hint about '--'", r.stderr)
		}
		r = c.want(exitUsage, "", "keys", "revoke", "--", "-Vabc")
		wantOneLine(t, r.stderr, `keyturn: no signing key "-Vabc" (see keyturn keys list)`)
	})
}

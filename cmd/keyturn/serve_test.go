package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
)

func TestServeDemo(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		// First start: the demo user is created.
		d := c.startDemo()
		if d.clientID != "demo" || d.username != "demo" {
			t.Errorf("demo client %q, user %q", d.clientID, d.username)
		}
		d.get(server.PathMetadata)
		d.get(server.PathJWKS)
		tok := d.token(d.curl("Log in"))
		if tok["refresh_token"] == nil || tok["scope"] != "read" {
			t.Fatalf("password grant: %v", tok)
		}
		refresh := d.curl("Refresh")
		refresh.form.Set("refresh_token", tok["refresh_token"].(string))
		if tok := d.token(refresh); tok["access_token"] == nil {
			t.Errorf("refresh grant: %v", tok)
		}
		if tok := d.token(d.curl("Client credentials")); tok["access_token"] == nil {
			t.Errorf("client_credentials grant: %v", tok)
		}
		if code := d.stop(); code != exitOK {
			t.Fatalf("serve exited %d:\n%s", code, d.stderr)
		}
		logs := d.stderr.String()
		for _, secret := range []string{d.secret, d.password, tok["access_token"].(string), tok["refresh_token"].(string)} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain a secret (%.8s…):\n%s", secret, logs)
			}
		}

		// The demo user went with the demo.
		if out := c.want(exitOK, "", "users", "list").stdout; strings.Contains(out, "demo") {
			t.Errorf("after the demo stopped, users list shows its user:\n%s", out)
		}

		// Second start, as the README's first command run twice: a new
		// user with a new password; the previous run's password is refused.
		oldPassword := d.password
		d = c.startDemo()
		login := d.curl("Log in")
		d.token(login)
		login.form.Set("password", oldPassword)
		if err := d.tryToken(login); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("previous run's password: %v, want invalid_grant", err)
		}
		if code := d.stop(); code != exitOK {
			t.Fatalf("serve exited %d:\n%s", code, d.stderr)
		}
	})
}

// TestServeDemoLeavesNoAccount: once a demo stops, a non-demo serve on the
// same database does not let anyone log in as demo, with the printed
// password or at all; its sessions are revoked.
func TestServeDemoLeavesNoAccount(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.appendConfig(appClient)
		d := c.startDemo()
		tok := d.token(d.curl("Log in"))
		if code := d.stop(); code != exitOK {
			t.Fatalf("serve --demo exited %d:\n%s", code, d.stderr)
		}
		s := c.startServe()
		wantInvalidGrant(t, "demo's password after the demo", s.token(t, passwordForm("demo", d.password)))
		// The demo client is gone with the demo; the session is revoked too.
		fam, _ := refreshParts(t, tok["refresh_token"].(string))
		if f, err := c.store().GetFamily(t.Context(), fam); err != nil || !f.Revoked() {
			t.Errorf("the demo's session after the demo: %+v, %v; want revoked", f, err)
		}
		if out := c.want(exitOK, "", "users", "list").stdout; strings.Contains(out, "demo") {
			t.Errorf("users list after the demo:\n%s", out)
		}
		s.stop()
	})
}

// TestServeDemoCrashLeavesNoAccount: a demo that died without stopping
// (here: its user written as the demo writes it) leaves a user behind;
// the next non-demo serve deletes it before it serves, and the next demo
// replaces it.
func TestServeDemoCrashLeavesNoAccount(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.appendConfig(appClient)
		c.want(exitOK, "", "migrate")
		leftover := func() {
			t.Helper()
			hash := servertest.HashPassword(t, "crashed demo pw")
			now := time.Now().UTC()
			if err := c.store().CreateUser(t.Context(), storage.User{ID: demoUserID, Username: "demo", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		leftover()
		s := c.startServe()
		wantInvalidGrant(t, "the crashed demo's password", s.token(t, passwordForm("demo", "crashed demo pw")))
		if !strings.Contains(s.stderr.String(), "removed the demo user") {
			t.Errorf("serve did not say it removed the demo user:\n%s", s.stderr)
		}
		s.stop()

		leftover()
		d := c.startDemo()
		login := d.curl("Log in")
		d.token(login)
		login.form.Set("password", "crashed demo pw")
		if err := d.tryToken(login); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("the crashed demo's password in the next demo: %v, want invalid_grant", err)
		}
		d.stop()
	})
}

// TestServeDemoRefusesUsers: --demo runs only on a database without users
// of its own: it must neither sit next to real accounts nor take over a
// real user who happens to be called demo.
func TestServeDemoRefusesUsers(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		for _, name := range []string{"ada", "demo"} {
			c.want(exitOK, "pw of "+name+"\n", "users", "create", "--username", name, "--password-stdin")
			// Started in the background: were it not refused, it would serve.
			_, stderr, stop := c.start("serve", "--demo")
			stderr.waitFor(t, "the refusal", func(s string) bool { return strings.Contains(s, "keyturn: --demo: the database has users") })
			if code := stop(); code != exitUsage {
				t.Errorf("serve --demo with user %s: exit %d, want %d:\n%s", name, code, exitUsage, stderr)
			}
			c.checkPassword(name, "pw of "+name)
			c.want(exitOK, "", "users", "delete", "--username", name)
		}
	})
}

// TestServeGeneratesSecret: with SQLite, the first start writes the
// master secret (0600, directory 0700); the next start reuses it, so the
// signing key generated on first start still opens.
func TestServeGeneratesSecret(t *testing.T) {
	c := newCLI(t, "")
	path := filepath.Join(c.dir, "data", "secret.key")
	_, stderr, stop := c.start("serve")
	stderr.waitFor(t, "listening", func(s string) bool { return strings.Contains(s, `"msg":"listening"`) })
	if code := stop(); code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", di.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if b, err := config.DecodeSecret(raw); err != nil || len(b) != 32 {
		t.Errorf("secret file holds %q: %d bytes, %v", raw, len(b), err)
	}
	if !strings.Contains(stderr.String(), path) || strings.Contains(stderr.String(), strings.TrimSpace(string(raw))) {
		t.Errorf("log should name the secret file, not the secret:\n%s", stderr)
	}

	_, stderr, stop = c.start("serve")
	stderr.waitFor(t, "listening", func(s string) bool { return strings.Contains(s, `"msg":"listening"`) })
	stop()
	if after, _ := os.ReadFile(path); string(after) != string(raw) {
		t.Error("second start replaced the secret file")
	}
	if strings.Contains(stderr.String(), "generated") {
		t.Errorf("second start generated a secret:\n%s", stderr)
	}

	// A secret file that is too short is the admin's to fix.
	if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.want(exitUsage, "", "serve")
	wantOneLine(t, r.stderr, "keyturn: secret file "+path+": too short: need at least 32 random bytes, base64-encoded (make one with `openssl rand -base64 32`); this is base64 of 5")
	// So is a passphrase, however long: it is not 32 random bytes.
	if err := os.WriteFile(path, []byte("a long passphrase that nobody will ever guess\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.want(exitUsage, "", "serve")
	wantOneLine(t, r.stderr, "keyturn: secret file "+path+": not base64: need at least 32 random bytes, base64-encoded (make one with `openssl rand -base64 32`); a passphrase is not accepted")
}

// TestServePostgresNeedsSecret: instances sharing PostgreSQL must share
// the secret, so serve generates none. The database is not contacted.
func TestServePostgresNeedsSecret(t *testing.T) {
	c := newCLI(t, "postgres://keyturn@127.0.0.1:1/keyturn?sslmode=disable")
	r := c.want(exitUsage, "", "serve")
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.Contains(r.stderr, "set KEYTURN_SECRET or secret_file") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "data")); err == nil {
		t.Error("serve created the data directory")
	}
}

// TestServeUnreachableDatabase: one line, exit 1, the password redacted
// wherever the URL holds it.
func TestServeUnreachableDatabase(t *testing.T) {
	port := closedPort(t)
	const password = "pw-SECRET-42"
	for _, dbURL := range []string{
		fmt.Sprintf("postgres://keyturn:%s@127.0.0.1:%d/keyturn?sslmode=disable", password, port),
		fmt.Sprintf("postgresql://keyturn@127.0.0.1:%d/keyturn?password=%s&sslmode=disable", port, password),
		fmt.Sprintf("postgres://keyturn@127.0.0.1:%d/keyturn?sslmode=disable&sslpassword=%s", port, password),
	} {
		c := newCLI(t, "")
		c.env["KEYTURN_DATABASE_URL"] = dbURL
		c.env["KEYTURN_SECRET"] = testSecret
		r := c.want(exitFailure, "", "serve")
		if strings.Contains(r.stdout+r.stderr, password) {
			t.Errorf("output contains the database password:\n%s", r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "keyturn: cannot open database postgres") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("stderr = %q, want one line: keyturn: cannot open database <url>: …", r.stderr)
		}
		if !strings.Contains(r.stderr, "xxxxx") {
			t.Errorf("stderr = %q, want the URL with its password redacted", r.stderr)
		}
	}
}

func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := newCLI(t, "")
	c.env["KEYTURN_LISTEN"] = ln.Addr().String()
	r := c.want(exitFailure, "", "serve")
	want := "cannot listen on " + ln.Addr().String() + ": bind: address already in use"
	if !strings.HasSuffix(r.stderr, "keyturn: "+want+"\n") {
		t.Errorf("stderr ends %q, want %q", r.stderr, want)
	}
}

func TestServeDemoClientClash(t *testing.T) {
	c := newCLI(t, "")
	c.writeConfig(fmt.Sprintf(`data_dir: %s
clients:
  - id: demo
    public: true
    grant_types: [password]
`, filepath.Join(c.dir, "data")))
	r := c.want(exitUsage, "", "serve", "--demo")
	wantOneLine(t, r.stderr, `keyturn: --demo: the config already has a client "demo"; remove it or run without --demo`)
}

// closedPort returns a local TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// demo is a running `serve --demo` and what it printed.
type demo struct {
	t                  *testing.T
	addr               string // where it listens; the printed issuer has port 8080
	stdout, stderr     *syncBuffer
	stop               func() int
	clientID, secret   string
	username, password string
}

// startDemo starts `serve --demo` and waits until it listens and has
// printed its credentials.
func (c *cli) startDemo() *demo {
	c.t.Helper()
	t := c.t
	stdout, stderr, stop := c.start("serve", "--demo")
	d := &demo{t: t, stdout: stdout, stderr: stderr, stop: stop}
	listening := regexp.MustCompile(`(?m)^\{.*"msg":"listening".*\}$`)
	line := listening.FindString(stderr.waitFor(t, "the listening log line", listening.MatchString))
	var entry struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Addr == "" {
		t.Fatalf("listening log line %q: %v", line, err)
	}
	d.addr = entry.Addr
	out := stdout.waitFor(t, "the demo block", func(s string) bool { return strings.Contains(s, server.PathJWKS+"\n") })
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^  ` + name + `:\s+(\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("demo block lacks %q:\n%s", name, out)
		}
		return m[1]
	}
	d.clientID, d.secret = field("client id"), field("client secret")
	d.username, d.password = field("username"), field("password")
	return d
}

// request is a token request parsed from a printed curl command.
type request struct {
	user, pass string
	form       url.Values
	url        string
}

// curl parses the curl command printed under the heading that starts with
// title: `curl -s -u ID:SECRET -d k=v -d 'k=v' … URL`, aimed at d.addr.
func (d *demo) curl(title string) request {
	d.t.Helper()
	lines := strings.Split(d.stdout.String(), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, title) || i+1 == len(lines) {
			continue
		}
		args := strings.Fields(lines[i+1])
		if len(args) < 4 || args[0] != "curl" || args[1] != "-s" || args[2] != "-u" {
			d.t.Fatalf("not a curl command: %q", lines[i+1])
		}
		r := request{form: url.Values{}}
		r.user, r.pass, _ = strings.Cut(args[3], ":")
		for j := 4; j < len(args); j++ {
			switch {
			case args[j] == "-d" && j+1 < len(args):
				j++
				k, v, _ := strings.Cut(strings.Trim(args[j], "'"), "=")
				r.form.Add(k, v)
			case j == len(args)-1:
				u, err := url.Parse(args[j])
				if err != nil {
					d.t.Fatal(err)
				}
				u.Host = d.addr
				r.url = u.String()
			default:
				d.t.Fatalf("unexpected curl argument %q in %q", args[j], lines[i+1])
			}
		}
		return r
	}
	d.t.Fatalf("no curl command under %q in:\n%s", title, d.stdout)
	return request{}
}

// token runs a token request that must succeed and returns the response.
func (d *demo) token(r request) map[string]any {
	d.t.Helper()
	tok, err := d.post(r)
	if err != nil {
		d.t.Fatal(err)
	}
	return tok
}

// tryToken runs a token request and returns its error response as an error.
func (d *demo) tryToken(r request) error {
	_, err := d.post(r)
	return err
}

func (d *demo) post(r request) (map[string]any, error) {
	req, err := http.NewRequestWithContext(d.t.Context(), http.MethodPost, r.url, strings.NewReader(r.form.Encode()))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(r.user, r.pass)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %v", r.form.Get("grant_type"), resp.StatusCode, body)
	}
	return body, nil
}

// get fetches path from the demo server and expects 200 JSON.
func (d *demo) get(path string) {
	d.t.Helper()
	req, err := http.NewRequestWithContext(d.t.Context(), http.MethodGet, "http://"+d.addr+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !json.Valid(body) {
		d.t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
}

// TestServeSweeps: serve runs the expiry sweeper every cleanup.interval
// and stops it on shutdown.
func TestServeSweeps(t *testing.T) {
	c := newCLI(t, "")
	c.writeConfig(fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
log:
  format: json
cleanup:
  interval: 10ms
`, filepath.Join(c.dir, "data")))
	_, stderr, stop := c.start("serve")
	stderr.waitFor(t, "two sweeps", func(s string) bool { return strings.Count(s, `"msg":"cleanup"`) >= 2 })
	if code := stop(); code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, stderr)
	}
	if strings.Contains(stderr.String(), "cleanup failed") {
		t.Errorf("a sweep failed:\n%s", stderr)
	}
}

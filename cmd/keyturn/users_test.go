package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/keyturn/keyturn/storage/sqlstore"
)

func TestUsers(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		r := c.want(exitOK, "correct horse\n", "users", "create", "--username", "ada", "--password-stdin")
		if !strings.Contains(r.stdout, `created user "ada"`) {
			t.Errorf("create: stdout %q", r.stdout)
		}
		c.checkPassword("ada", "correct horse")

		r = c.want(exitOK, "", "users", "list")
		row := listRow(t, r.stdout, "ada")
		if len(row) != 7 || row[2] != "false" || row[4] != "-" || row[5] != "false" || row[6] != "-" {
			t.Errorf("list: row %q, want username, id, disabled=false, created, no email, unverified, no name", row)
		}

		r = c.want(exitUsage, "other\n", "users", "create", "--username", "ada", "--password-stdin")
		wantOneLine(t, r.stderr, `keyturn: user "ada" already exists`)

		for _, args := range [][]string{
			{"users", "disable", "--username", "nobody"},
			{"users", "enable", "--username", "nobody"},
			{"users", "delete", "--username", "nobody"},
			{"users", "set-password", "--username", "nobody", "--password-stdin"},
		} {
			r = c.want(exitUsage, "pw\n", args...)
			wantOneLine(t, r.stderr, `keyturn: no user "nobody"`)
		}

		c.want(exitOK, "", "users", "disable", "--username", "ada")
		if row := listRow(t, c.want(exitOK, "", "users", "list").stdout, "ada"); row[2] != "true" {
			t.Errorf("after disable: row %q", row)
		}
		c.want(exitOK, "", "users", "enable", "--username", "ada")
		if row := listRow(t, c.want(exitOK, "", "users", "list").stdout, "ada"); row[2] != "false" {
			t.Errorf("after enable: row %q", row)
		}

		// Only the trailing line ending goes; inner and leading spaces stay.
		c.want(exitOK, " new pass \r\nsecond line\n", "users", "set-password", "--username", "ada", "--password-stdin")
		c.checkPassword("ada", " new pass ")

		c.want(exitOK, "", "users", "delete", "--username", "ada")
		if out := c.want(exitOK, "", "users", "list").stdout; strings.Contains(out, "ada") {
			t.Errorf("after delete, list shows ada:\n%s", out)
		}
	})
}

func TestUsersPasswordMistakes(t *testing.T) {
	c := newCLI(t, "")
	for _, stdin := range []string{"", "\n", "\r\n"} {
		r := c.want(exitUsage, stdin, "users", "create", "--username", "ada", "--password-stdin")
		wantOneLine(t, r.stderr, "keyturn: empty password on standard input")
	}
	r := c.want(exitUsage, "pw\n", "users", "create", "--username", "ada")
	wantOneLine(t, r.stderr, "keyturn: --password-stdin is required: the password is read from standard input, never from an argument")
	r = c.want(exitUsage, "pw\n", "users", "create", "--password-stdin")
	wantOneLine(t, r.stderr, `keyturn: required flag(s) "username" not set`)
	c.want(exitUsage, "pw\n", "users", "create", "--username", "", "--password-stdin")
	// Nothing was created.
	if out := c.want(exitOK, "", "users", "list").stdout; strings.Count(out, "\n") != 1 {
		t.Errorf("list after failed creates:\n%s", out)
	}
}

// TestPasswordNeverAnArgument checks that no form of password argument is
// accepted, and that the error does not echo the password.
func TestPasswordNeverAnArgument(t *testing.T) {
	c := newCLI(t, "")
	const pw = "hunter2-SECRET"
	for _, args := range [][]string{
		{"users", "create", "--username", "ada", "--password", pw},
		{"users", "create", "--username", "ada", "--password=" + pw},
		{"users", "create", "--username", "ada", "-p", pw},
		{"users", "create", "--username", "ada", "-p" + pw},
		{"users", "create", "--username", "ada", "--password-stdin=" + pw},
		{"users", "create", "--username", "ada", pw},
		{"users", "set-password", "--username", "ada", "--password", pw},
		{"users", "set-password", "--username", "ada", pw},
		{"clients", "hash-secret", pw},
	} {
		r := c.run("", args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, r.code, exitUsage)
		}
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("%q: output echoes the password:\n%s%s", args, r.stdout, r.stderr)
		}
		if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "keyturn: ") {
			t.Errorf("%q: stderr %q, want one keyturn: line", args, r.stderr)
		}
	}
	if out := c.want(exitOK, "", "users", "list").stdout; strings.Contains(out, "ada") {
		t.Errorf("a user was created:\n%s", out)
	}
}

// store opens the database the commands use, for checking what they did.
func (c *cli) store() *sqlstore.Store {
	c.t.Helper()
	a, err := (&env{configPath: c.config, lookupEnv: c.lookupEnv, stderr: io.Discard}).load()
	if err != nil {
		c.t.Fatal(err)
	}
	store, err := sqlstore.Open(c.t.Context(), a.cfg.DatabaseURL(), sqlstore.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { store.Close() })
	return store
}

// checkPassword asserts that username's stored hash verifies password.
func (c *cli) checkPassword(username, password string) {
	c.t.Helper()
	u, err := c.store().GetUserByUsername(c.t.Context(), username)
	if err != nil {
		c.t.Fatal(err)
	}
	if ok, err := passhash.Verify(u.PasswordHash, password); err != nil || !ok {
		c.t.Errorf("password of %q: Verify(%q) = %v, %v; want true", username, password, ok, err)
	}
}

// listRow returns the fields of the row of a table whose first column is
// key, after checking the header.
func listRow(t *testing.T, table, key string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "USERNAME") && !strings.HasPrefix(lines[0], "KID") && !strings.HasPrefix(lines[0], "FAMILY") && !strings.HasPrefix(lines[0], "CLIENT") {
		t.Fatalf("table without header:\n%s", table)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == key {
			return f
		}
	}
	t.Fatalf("no row %q in:\n%s", key, table)
	return nil
}

// wantOneLine asserts that stderr is exactly the line want.
func wantOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if stderr != want+"\n" {
		t.Errorf("stderr = %q, want %q", stderr, want+"\n")
	}
}

// TestControlCharactersInNames: a NUL or other control character in a
// username, client id or session id is the caller's mistake (exit 2, one
// line), on both databases, never a database error (PostgreSQL refuses a
// NUL in text).
func TestControlCharactersInNames(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		for _, name := range []string{"a\x00da", "\x00", "ada\x01", "ada\x1f", "ada\x7f", "a\nda"} {
			for _, args := range [][]string{
				{"users", "create", "--username", name, "--password-stdin"},
				{"users", "set-password", "--username", name, "--password-stdin"},
				{"users", "disable", "--username", name},
				{"users", "delete", "--username", name},
			} {
				r := c.want(exitUsage, "pw\n", args...)
				wantOneLine(t, r.stderr, "keyturn: --username: control character")
			}
			for _, args := range [][]string{
				{"sessions", "list", "--user", name},
				{"sessions", "list", "--client", name},
				{"sessions", "revoke", "--user", name},
				{"sessions", "revoke", "--client", name},
				{"sessions", "revoke", "--family", name},
			} {
				r := c.want(exitUsage, "", args...)
				if !strings.HasPrefix(r.stderr, "keyturn: --") || !strings.HasSuffix(r.stderr, ": control character\n") {
					t.Errorf("%q: stderr %q, want keyturn: --flag: control character", args, r.stderr)
				}
			}
		}
		if out := c.want(exitOK, "", "users", "list").stdout; strings.Count(out, "\n") != 1 {
			t.Errorf("list after refused creates:\n%s", out)
		}
	})
}

// appClient is a public client for the password and refresh_token grants,
// for tests that log in to a running serve.
const appClient = `clients:
  - id: app
    public: true
    grant_types: [password, refresh_token]
    scopes: [read]
    default_scopes: [read]
`

// appendConfig adds yaml (top-level keys) to the config file.
func (c *cli) appendConfig(yaml string) {
	c.t.Helper()
	old, err := os.ReadFile(c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	c.writeConfig(string(old) + yaml)
}

// serving is a `keyturn serve` running in-process.
type serving struct {
	url    string // http://addr
	stderr *syncBuffer
	stop   func() int
}

// startServe starts `keyturn serve` with args and waits until it listens.
func (c *cli) startServe(args ...string) *serving {
	c.t.Helper()
	_, stderr, stop := c.start(append([]string{"serve"}, args...)...)
	stderr.waitFor(c.t, "listening", func(s string) bool { return listenAddr(s) != "" })
	return &serving{url: "http://" + listenAddr(stderr.String()), stderr: stderr, stop: stop}
}

// token posts form with client_id=app to the token endpoint.
func (s *serving) token(t *testing.T, form url.Values) answer {
	t.Helper()
	form.Set("client_id", "app")
	return post(httpClient(t), s.url, server.PathToken, "", form)
}

// TestSetPasswordEndsSessions: after `users set-password`, a refresh token
// issued before it gets invalid_grant from a running server (the revoked
// session is refused by the rotation's conditional UPDATE, even though the
// server's session cache knows it); with --keep-sessions it still works.
func TestSetPasswordEndsSessions(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.appendConfig(appClient)
		c.want(exitOK, "old pass\n", "users", "create", "--username", "ada", "--password-stdin")
		s := c.startServe()
		login := func(password string) string {
			t.Helper()
			a := s.token(t, passwordForm("ada", password))
			if a.err != nil || a.status != http.StatusOK || a.str("refresh_token") == "" {
				t.Fatalf("login: %v", a)
			}
			// One refresh, so the session is in the server's cache.
			a = s.token(t, refreshForm(a.str("refresh_token")))
			if a.status != http.StatusOK {
				t.Fatalf("refresh: %v", a)
			}
			return a.str("refresh_token")
		}
		rt := login("old pass")

		r := c.want(exitOK, "new pass\n", "users", "set-password", "--username", "ada", "--password-stdin")
		if !strings.Contains(r.stdout, "revoked their sessions") || !strings.Contains(r.stderr, `"reason":"password_changed"`) {
			t.Errorf("set-password: stdout %q, stderr %q", r.stdout, r.stderr)
		}
		wantInvalidGrant(t, "refresh after set-password", s.token(t, refreshForm(rt)))
		wantInvalidGrant(t, "the old password", s.token(t, passwordForm("ada", "old pass")))

		rt = login("new pass")
		r = c.want(exitOK, "newer pass\n", "users", "set-password", "--username", "ada", "--password-stdin", "--keep-sessions")
		if !strings.Contains(r.stdout, "sessions were kept") || strings.Contains(r.stderr, "revoked") {
			t.Errorf("set-password --keep-sessions: stdout %q, stderr %q", r.stdout, r.stderr)
		}
		if a := s.token(t, refreshForm(rt)); a.status != http.StatusOK {
			t.Errorf("refresh after set-password --keep-sessions: %v", a)
		}
		if code := s.stop(); code != exitOK {
			t.Fatalf("serve exited %d:\n%s", code, s.stderr)
		}
	})
}

// profileOf reads username's stored profile.
func (c *cli) profileOf(username string) storage.UserProfile {
	c.t.Helper()
	u, err := c.store().GetUserByUsername(c.t.Context(), username)
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Profile
}

// TestUsersProfile: create takes the profile claims, set-profile changes
// only the flags given (an empty value clears), a new address is not
// verified unless said so, and list shows them.
func TestUsersProfile(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.want(exitOK, "pw\n", "users", "create", "--username", "ada", "--password-stdin",
			"--name", "Ada Lovelace", "--email", "ada@example.com", "--email-verified")
		want := storage.UserProfile{Name: "Ada Lovelace", Email: "ada@example.com", EmailVerified: true}
		if got := c.profileOf("ada"); got != want {
			t.Errorf("after create: %+v, want %+v", got, want)
		}
		row := listRow(t, c.want(exitOK, "", "users", "list").stdout, "ada")
		if got := strings.Join(row[4:], " "); got != "ada@example.com true Ada Lovelace" {
			t.Errorf("list: %q", row)
		}

		steps := []struct {
			args []string
			want storage.UserProfile
		}{
			{[]string{"--name", "Augusta Ada King"}, storage.UserProfile{Name: "Augusta Ada King", Email: "ada@example.com", EmailVerified: true}},
			{[]string{"--email", "ada@example.com"}, storage.UserProfile{Name: "Augusta Ada King", Email: "ada@example.com", EmailVerified: true}},
			// A new address is not verified...
			{[]string{"--email", "countess@example.org"}, storage.UserProfile{Name: "Augusta Ada King", Email: "countess@example.org"}},
			// ...until the admin says so.
			{[]string{"--email-verified"}, storage.UserProfile{Name: "Augusta Ada King", Email: "countess@example.org", EmailVerified: true}},
			{[]string{"--email-verified=false"}, storage.UserProfile{Name: "Augusta Ada King", Email: "countess@example.org"}},
			{[]string{"--email", "new@example.org", "--email-verified"}, storage.UserProfile{Name: "Augusta Ada King", Email: "new@example.org", EmailVerified: true}},
			{[]string{"--name", ""}, storage.UserProfile{Email: "new@example.org", EmailVerified: true}},
			{[]string{"--email", ""}, storage.UserProfile{}},
		}
		for _, st := range steps {
			r := c.want(exitOK, "", append([]string{"users", "set-profile", "--username", "ada"}, st.args...)...)
			if !strings.Contains(r.stdout, `set the profile of user "ada"`) {
				t.Errorf("%q: stdout %q", st.args, r.stdout)
			}
			if got := c.profileOf("ada"); got != st.want {
				t.Errorf("set-profile %q: %+v, want %+v", st.args, got, st.want)
			}
		}
		c.checkPassword("ada", "pw") // nothing else changed

		r := c.want(exitUsage, "", "users", "set-profile", "--username", "ada", "--email-verified")
		wantOneLine(t, r.stderr, "keyturn: --email-verified: the user has no e-mail address")
		r = c.want(exitUsage, "", "users", "set-profile", "--username", "ada")
		wantOneLine(t, r.stderr, "keyturn: nothing to set: give --name, --email or --email-verified")
		r = c.want(exitUsage, "", "users", "set-profile", "--username", "nobody", "--name", "N")
		wantOneLine(t, r.stderr, `keyturn: no user "nobody"`)
		r = c.want(exitUsage, "pw\n", "users", "create", "--username", "bob", "--password-stdin", "--email-verified")
		wantOneLine(t, r.stderr, "keyturn: --email-verified: the user has no e-mail address")
		if got := c.profileOf("ada"); got != (storage.UserProfile{}) {
			t.Errorf("refused set-profile changed the profile: %+v", got)
		}
	})
}

// TestUsersProfileValidation: a bad name or e-mail address is the
// caller's mistake (exit 2, one line), never stored, on both databases
// (a NUL never reaches PostgreSQL).
func TestUsersProfileValidation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.want(exitOK, "pw\n", "users", "create", "--username", "ada", "--password-stdin", "--name", "Ada", "--email", "a@b")
		long := strings.Repeat("a", 250) + "@b.cd" // 255 bytes
		for _, tc := range []struct{ flag, value, msg string }{
			{"--email", "ada", "want one '@' between a local part and a domain"},
			{"--email", "a@b@c", "want one '@' between a local part and a domain"},
			{"--email", "@b", "want one '@' between a local part and a domain"},
			{"--email", "a@", "want one '@' between a local part and a domain"},
			{"--email", "a b@c", "space or control character"},
			{"--email", "a@b\x00", "space or control character"},
			{"--email", "a@b\n", "space or control character"},
			{"--email", "a@b\u2028", "space or control character"},
			{"--email", long, "longer than 254 bytes"},
			{"--email", "a@b\xff", "not UTF-8"},
			{"--name", "Ada\x00", "control or non-printing character"},
			{"--name", "Ada\tL", "control or non-printing character"},
			{"--name", "Ada\u202eL", "control or non-printing character"},
			{"--name", " Ada", "leading or trailing space"},
			{"--name", strings.Repeat("é", 201), "longer than 200 characters"},
			{"--name", "Ada\xff", "not UTF-8"},
		} {
			r := c.want(exitUsage, "", "users", "set-profile", "--username", "ada", tc.flag, tc.value)
			wantOneLine(t, r.stderr, "keyturn: "+tc.flag+": "+tc.msg)
			r = c.want(exitUsage, "pw\n", "users", "create", "--username", "bob", "--password-stdin", tc.flag, tc.value)
			wantOneLine(t, r.stderr, "keyturn: "+tc.flag+": "+tc.msg)
		}
		if got := c.profileOf("ada"); got != (storage.UserProfile{Name: "Ada", Email: "a@b"}) {
			t.Errorf("profile after refused changes: %+v", got)
		}
		// At the limits.
		c.want(exitOK, "", "users", "set-profile", "--username", "ada",
			"--name", strings.Repeat("é", 200), "--email", long[1:])
		if out := c.want(exitOK, "", "users", "list").stdout; strings.Contains(out, "bob") {
			t.Errorf("a refused create stored bob:\n%s", out)
		}
	})
}

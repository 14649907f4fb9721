package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
)

func TestConfigCheck(t *testing.T) {
	c := newCLI(t, "")
	r := c.want(exitOK, "", "config", "check")
	if r.stdout != "ok ("+c.config+")\n" {
		t.Errorf("stdout = %q", r.stdout)
	}

	c.writeConfig(`issuer: ftp://example.com
listen: nowhere
tokens:
  acess_token_ttl: 5m
  refresh_reuse_grace: 2h
log:
  level: loud
clients:
  - id: web
    grant_types: [implicit]
`)
	c.env["KEYTURN_ACCESS_TOKEN_TTL"] = "soon"
	r = c.want(exitUsage, "", "config", "check")
	for _, want := range []string{
		"tokens.acess_token_ttl: unknown key",
		"issuer:",
		"listen:",
		"tokens.refresh_reuse_grace:",
		"log.level:",
		"KEYTURN_ACCESS_TOKEN_TTL:",
		`clients[0].grant_types[0]: unknown grant type "implicit"`,
		"clients[0]: a confidential client needs secret_hash or secret_env",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) < 8 {
		t.Errorf("want one line per problem (8), got %d:\n%s", len(lines), r.stderr)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "keyturn: ") {
			t.Errorf("line %q lacks the keyturn: prefix", l)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}

// TestConfigCheckEnvironment checks what only the environment can get
// wrong: a client's secret_env variable and KEYTURN_SECRET.
func TestConfigCheckEnvironment(t *testing.T) {
	c := newCLI(t, "")
	c.writeConfig(`clients:
  - id: web
    secret_env: WEB_SECRET
    grant_types: [client_credentials]
`)
	r := c.want(exitUsage, "", "config", "check")
	wantOneLine(t, r.stderr, "keyturn: clients[0].secret_env: environment variable WEB_SECRET is not set")

	c.env["WEB_SECRET"] = "s3cret"
	c.env["KEYTURN_SECRET"] = "c2hvcnQ=" + strings.Repeat(" ", 30) // 8 bytes after trimming
	r = c.want(exitUsage, "", "config", "check")
	if !strings.Contains(r.stderr, "KEYTURN_SECRET:") || strings.Contains(r.stderr, "c2hvcnQ") {
		t.Errorf("stderr = %q, want a KEYTURN_SECRET problem without the value", r.stderr)
	}

	c.env["KEYTURN_SECRET"] = testSecret
	c.want(exitOK, "", "config", "check")
}

func TestConfigCheckMissingFile(t *testing.T) {
	c := newCLI(t, "")
	c.config = filepath.Join(c.dir, "nope.yaml")
	r := c.want(exitUsage, "", "config", "check")
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.Contains(r.stderr, "nope.yaml") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

// TestExampleConfig checks that the shipped example passes config check.
func TestExampleConfig(t *testing.T) {
	const example = "../../keyturn.example.yaml"
	lookupEnv := func(name string) (string, bool) {
		switch name {
		case "WEB_CLIENT_SECRET":
			return "example-web-secret", true
		case "API_CLIENT_SECRET":
			return "example-api-secret", true
		}
		return "", false
	}
	cfg, err := config.Load(example, lookupEnv)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", example, err)
	}
	if _, err := clients.New(cfg.Clients, cfg.ClientDefaults(), lookupEnv); err != nil {
		t.Fatalf("clients.New: %v", err)
	}
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"config", "check", "--config", example}, strings.NewReader(""), &stdout, &stderr, lookupEnv); code != exitOK {
		t.Fatalf("config check: exit %d\n%s", code, stderr.String())
	}
	var public, confidential bool
	for _, s := range cfg.Clients {
		public = public || s.Public
		confidential = confidential || s.SecretEnv != ""
	}
	if !public || !confidential {
		t.Errorf("example wants a public client and a secret_env client: %v", cfg.Clients)
	}
}

func TestClientsGenerate(t *testing.T) {
	c := newCLI(t, "")
	r := c.want(exitOK, "", "clients", "generate")
	m := regexp.MustCompile(`^secret:\s+([A-Za-z0-9_-]{43})\nsecret_hash:\s+(sha256:[A-Za-z0-9_-]{43})\n\n.*shown only now.*\n$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout = %q", r.stdout)
	}
	authenticates(t, m[2], m[1])
	if r2 := c.want(exitOK, "", "clients", "generate"); strings.Contains(r2.stdout, m[1]) {
		t.Error("generate printed the same secret twice")
	}
}

func TestClientsHashSecret(t *testing.T) {
	c := newCLI(t, "")
	r := c.want(exitOK, "correct horse battery\n", "clients", "hash-secret")
	hash := strings.TrimSuffix(r.stdout, "\n")
	if !passhash.IsHash(hash) || strings.Contains(hash, "\n") {
		t.Fatalf("stdout = %q, want one argon2id hash line", r.stdout)
	}
	authenticates(t, hash, "correct horse battery")

	r = c.want(exitUsage, "\n", "clients", "hash-secret")
	wantOneLine(t, r.stderr, "keyturn: empty secret on standard input")
}

// authenticates asserts that a client with secret_hash hash accepts secret.
func authenticates(t *testing.T, hash, secret string) {
	t.Helper()
	reg, err := clients.New([]clients.Spec{{ID: "c", SecretHash: hash, GrantTypes: []string{clients.GrantClientCredentials}}},
		config.Default().ClientDefaults(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("secret_hash %q: %v", hash, err)
	}
	if _, err := reg.Authenticate(t.Context(), "c", secret); err != nil {
		t.Errorf("secret does not match its secret_hash: %v", err)
	}
	if _, err := reg.Authenticate(t.Context(), "c", secret+"x"); err == nil {
		t.Error("a wrong secret matches the secret_hash")
	}
}

func TestMigrateTwice(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		r := c.want(exitOK, "", "migrate")
		if !strings.HasPrefix(r.stdout, "applied migrations: [1") {
			t.Errorf("first migrate: stdout %q", r.stdout)
		}
		r = c.want(exitOK, "", "migrate")
		if r.stdout != "schema up to date\n" {
			t.Errorf("second migrate: stdout %q", r.stdout)
		}
	})
}

func TestCleanup(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.want(exitOK, "", "migrate")
		store := c.store()
		ctx := t.Context()
		now := time.Now().UTC()
		if err := store.DenyAccessToken(ctx, "expired-jti", now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := store.DenyAccessToken(ctx, "live-jti", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		stale := []storage.Resolution{{Key: "stale", Outcome: storage.AttemptFailed, Rule: storage.ThrottleRule{Window: time.Hour}}}
		if err := store.ResolveAttempts(ctx, stale, now.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		c.want(exitOK, "pw\n", "users", "create", "--username", "ada", "--password-stdin")
		ada, err := store.GetUserByUsername(ctx, "ada")
		if err != nil {
			t.Fatal(err)
		}
		for _, bs := range []storage.BrowserSession{
			{ID: "expired-bs", UserID: ada.ID, AuthTime: now.Add(-2 * time.Hour), CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
			{ID: "live-bs", UserID: ada.ID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		} {
			if err := store.CreateBrowserSession(ctx, bs); err != nil {
				t.Fatal(err)
			}
		}
		for _, code := range []storage.AuthCode{
			{Hash: tokens.HashSecret("old code"), CreatedAt: now.Add(-49 * time.Hour), ExpiresAt: now.Add(-48 * time.Hour)},
			{Hash: tokens.HashSecret("new code"), CreatedAt: now, ExpiresAt: now.Add(time.Minute)},
		} {
			code.ClientID, code.UserID, code.CodeChallenge, code.BrowserSessionID, code.AuthTime = "app", ada.ID, "c", "live-bs", now
			if err := store.CreateCode(ctx, code); err != nil {
				t.Fatal(err)
			}
		}
		r := c.want(exitOK, "", "cleanup")
		if !strings.HasSuffix(r.stdout, "deleted 0 sessions, 1 denylist entries, 1 login throttles, 0 signing keys, 1 authorization codes, 1 browser sessions\n") {
			t.Errorf("stdout = %q", r.stdout)
		}
		if chk, err := store.CheckAccess(ctx, "live-jti", ""); err != nil || !chk.Denied {
			t.Errorf("live denial: %v, %v; want kept", chk.Denied, err)
		}
		if _, err := store.GetBrowserSession(ctx, "live-bs"); err != nil {
			t.Errorf("live browser session: %v; want kept", err)
		}
		if _, err := store.GetCode(ctx, tokens.HashSecret("new code")); err != nil {
			t.Errorf("live code: %v; want kept", err)
		}
	})
}

func TestKeys(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		c.env["KEYTURN_SECRET"] = testSecret
		// Every lineage rotates: keys.algorithm (ES256, access tokens) and
		// RS256 (ID tokens, always in use).
		r := c.want(exitOK, "", "keys", "rotate")
		m := regexp.MustCompile(`^new key (\S+) \(ES256\): published now, signs from \S+\nnew key (\S+) \(RS256\): published now, signs from \S+\n$`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("rotate: stdout %q", r.stdout)
		}
		r = c.want(exitOK, "", "keys", "rotate", "--alg", "RS256")
		m2 := regexp.MustCompile(`^new key (\S+) \(RS256\): published now, signs from \S+\n$`).FindStringSubmatch(r.stdout)
		if m2 == nil {
			t.Fatalf("rotate --alg RS256: stdout %q", r.stdout)
		}
		r = c.want(exitUsage, "", "keys", "rotate", "--alg", "EdDSA")
		wantOneLine(t, r.stderr, "keyturn: --alg EdDSA: no keys of that algorithm are in use (in use: ES256, RS256)")
		r = c.want(exitOK, "", "keys", "list")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 6 || !strings.HasPrefix(lines[0], "KID") {
			t.Fatalf("list: want a header and five keys:\n%s", r.stdout)
		}
		for kid, alg := range map[string]string{m[1]: "ES256", m[2]: "RS256", m2[1]: "RS256"} {
			if row := listRow(t, r.stdout, kid); len(row) != 6 || row[1] != alg || row[2] != "pending" {
				t.Errorf("rotated key: row %q, want kid, %s, pending, created, activates, retires", row, alg)
			}
		}
		active := map[string]int{}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); f[2] == "active" {
				active[f[1]]++
			}
		}
		if active["ES256"] != 1 || active["RS256"] != 1 || len(active) != 2 {
			t.Errorf("active keys by algorithm %v, want one ES256 and one RS256", active)
		}

		// Another secret cannot open the keys.
		c.env["KEYTURN_SECRET"] = strings.Repeat("x", 43) + "="
		r = c.want(exitFailure, "", "keys", "list")
		if n := strings.Count(r.stderr, "\n"); n != 1 {
			t.Errorf("wrong secret: stderr %q, want one line", r.stderr)
		}
	})
}

// TestKeysNeverGenerateSecret: only serve creates the secret file; keys
// commands fail without one rather than create keys no server can open.
func TestKeysNeverGenerateSecret(t *testing.T) {
	c := newCLI(t, "")
	r := c.want(exitUsage, "", "keys", "rotate")
	wantOneLine(t, r.stderr, "keyturn: secret file "+filepath.Join(c.dir, "data", "secret.key")+
		" does not exist: set KEYTURN_SECRET or secret_file, or run `keyturn serve` once to generate it")
	if _, err := os.Stat(filepath.Join(c.dir, "data", "secret.key")); err == nil {
		t.Error("keys rotate created a secret file")
	}
}

func TestUsage(t *testing.T) {
	c := newCLI(t, "")
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"bogus"}, exitUsage},
		{[]string{"users"}, exitUsage},
		{[]string{"users", "bogus"}, exitUsage},
		{[]string{"migrate", "extra"}, exitUsage},
		{[]string{"serve", "--port", "1"}, exitUsage},
		{[]string{"--help"}, exitOK},
		{[]string{"users", "create", "--help"}, exitOK},
	} {
		r := c.run("", tt.args...)
		if r.code != tt.code {
			t.Errorf("keyturn %q: exit %d, want %d\n%s", tt.args, r.code, tt.code, r.stderr)
		}
		if tt.code == exitUsage && !strings.Contains(r.stderr, "keyturn: ") {
			t.Errorf("keyturn %q: stderr %q, want a keyturn: line", tt.args, r.stderr)
		}
	}
	if r := c.run("", "users", "create", "--help"); strings.Contains(r.stdout, "--password ") || !strings.Contains(r.stdout, "--password-stdin") {
		t.Errorf("users create --help:\n%s", r.stdout)
	}
}

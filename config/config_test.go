package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyturn.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// errorsOf returns the errors an errors.Join result holds.
func errorsOf(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

// wantErrors checks that each entry of want is in exactly one of err's
// errors, and, if exact, that err holds nothing else.
func wantErrors(t *testing.T, err error, exact bool, want ...string) {
	t.Helper()
	errs := errorsOf(err)
	for _, w := range want {
		n := 0
		for _, e := range errs {
			if strings.Contains(e, w) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d errors contain %q, want 1", n, w)
		}
	}
	if exact && len(errs) != len(want) {
		t.Errorf("got %d errors, want %d", len(errs), len(want))
	}
	if t.Failed() {
		t.Logf("errors:\n%s", strings.Join(errs, "\n"))
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"issuer", c.Issuer, "http://127.0.0.1:8080"},
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"data_dir", c.DataDir, "./data"},
		{"database.url", c.Database.URL, ""},
		{"DatabaseURL", c.DatabaseURL(), "sqlite://data/keyturn.db"},
		{"SecretPath", c.SecretPath(), filepath.Join("data", "secret.key")},
		{"max_open_conns", c.Database.MaxOpenConns, 16},
		{"access_token_ttl", c.Tokens.AccessTokenTTL, 15 * time.Minute},
		{"refresh_idle_ttl", c.Tokens.RefreshIdleTTL, 120 * time.Hour},
		{"refresh_absolute_ttl", c.Tokens.RefreshAbsoluteTTL, 720 * time.Hour},
		{"refresh_reuse_grace", c.Tokens.RefreshReuseGrace, time.Duration(0)},
		{"audience", c.Tokens.Audience, []string{"http://127.0.0.1:8080"}},
		{"keys.algorithm", c.Keys.Algorithm, "ES256"},
		{"keys.rotation_delay", c.Keys.RotationDelay, time.Hour},
		{"log.format", c.Log.Format, "text"},
		{"log.level", c.Log.Level, "info"},
		{"authorize.code_ttl", c.Authorize.CodeTTL, time.Minute},
		{"authorize.browser_session_ttl", c.Authorize.BrowserSessionTTL, 12 * time.Hour},
		{"pages.product_name", c.Pages.ProductName, "Keyturn"},
		{"pages.logo_file", c.Pages.LogoFile, ""},
		{"pages.Logo", c.Pages.Logo, []byte(nil)},
		{"ClientDefaults", c.ClientDefaults(), clients.Defaults{
			AccessTokenTTL:     15 * time.Minute,
			RefreshIdleTTL:     120 * time.Hour,
			RefreshAbsoluteTTL: 720 * time.Hour,
			Audience:           []string{"http://127.0.0.1:8080"},
		}},
	}
	for _, tt := range checks {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestPaths(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/keyturn"
	if got, want := c.DatabaseURL(), "sqlite:///var/lib/keyturn/keyturn.db"; got != want {
		t.Errorf("DatabaseURL = %q, want %q", got, want)
	}
	if got, want := c.SecretPath(), "/var/lib/keyturn/secret.key"; got != want {
		t.Errorf("SecretPath = %q, want %q", got, want)
	}
	c.Database.URL, c.SecretFile = "postgres://db/keyturn", "/run/secrets/keyturn"
	if got := c.DatabaseURL(); got != c.Database.URL {
		t.Errorf("DatabaseURL = %q, want database.url", got)
	}
	if got := c.SecretPath(); got != c.SecretFile {
		t.Errorf("SecretPath = %q, want secret_file", got)
	}
}

func TestLoadWithoutFile(t *testing.T) {
	t.Chdir(t.TempDir()) // no keyturn.yaml here
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load(\"\") = %+v, want Default()", c)
	}
}

func TestLoadDefaultFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DefaultFile), []byte("listen: :9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9000" {
		t.Fatalf("listen = %q: ./%s not read", c.Listen, DefaultFile)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, env(nil))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n", "# nothing yet\n", "---\n"} {
		c, err := Load(writeFile(t, content), env(nil))
		if err != nil {
			t.Errorf("Load(%q) = %v", content, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Load(%q) = %+v, want Default()", content, c)
		}
	}
}

const fullFile = `
issuer: https://auth.example.com
listen: 0.0.0.0:8443
admin_listen: 127.0.0.1:9090
shutdown_timeout: 30s
data_dir: /var/lib/keyturn
secret_file: /run/secrets/keyturn
database:
  url: postgres://keyturn:pw@db:5432/keyturn?sslmode=disable
  max_open_conns: 32
  timeout: 2s
login:
  max_concurrent_hashes: 4
  max_queued_hashes: 10
  hash_processors: shared
  free_failures: 3
  base_delay: 2s
  max_delay: 5m
  failure_window: 30m
  trusted_proxies: [10.0.0.0/8, 192.168.1.1]
tls:
  cert_file: /etc/keyturn/tls.crt
  key_file: /etc/keyturn/tls.key
authorize:
  code_ttl: 30s
  browser_session_ttl: 8h
pages:
  product_name: Example Login
tokens:
  access_token_ttl: 5m
  refresh_idle_ttl: 1h30m
  refresh_absolute_ttl: 720h
  refresh_reuse_grace: 10s
  audience: [https://api.example.com]
keys:
  algorithm: EdDSA
  rotation_delay: 10m
log:
  format: json
  level: debug
clients:
  - id: web
    secret_env: WEB_SECRET
    grant_types: [password, refresh_token]
    scopes: [read, write]
    default_scopes: [read]
    access_token_ttl: 2m
    refresh_reuse_grace: 0s
  - id: spa
    public: true
    grant_types: [password]
cleanup:
  interval: 0s
  revoked_retention: 48h
  batch_size: 100
`

func TestLoadFile(t *testing.T) {
	c, err := Load(writeFile(t, fullFile), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Issuer:          "https://auth.example.com",
		Listen:          "0.0.0.0:8443",
		AdminListen:     "127.0.0.1:9090",
		ShutdownTimeout: 30 * time.Second,
		DataDir:         "/var/lib/keyturn",
		SecretFile:      "/run/secrets/keyturn",
		Database:        Database{URL: "postgres://keyturn:pw@db:5432/keyturn?sslmode=disable", MaxOpenConns: 32, Timeout: 2 * time.Second},
		Login: Login{MaxConcurrentHashes: 4, MaxQueuedHashes: 10, HashProcessors: "shared", FreeFailures: 3, BaseDelay: 2 * time.Second,
			MaxDelay: 5 * time.Minute, FailureWindow: 30 * time.Minute,
			UserFailures: 50, AddressFailures: 100, KnownAddressTTL: 30 * 24 * time.Hour, KnownAddresses: 10, TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1"}},
		TLS:       TLS{CertFile: "/etc/keyturn/tls.crt", KeyFile: "/etc/keyturn/tls.key"},
		Authorize: Authorize{CodeTTL: 30 * time.Second, BrowserSessionTTL: 8 * time.Hour},
		Pages:     Pages{ProductName: "Example Login"},
		Tokens: Tokens{
			AccessTokenTTL:     5 * time.Minute,
			RefreshIdleTTL:     90 * time.Minute,
			RefreshAbsoluteTTL: 720 * time.Hour,
			RefreshReuseGrace:  10 * time.Second,
			Audience:           []string{"https://api.example.com"},
		},
		Keys: Keys{Algorithm: "EdDSA", RotationDelay: 10 * time.Minute},
		Log:  Log{Format: "json", Level: "debug"},
		// interval: 0s turns the sweeper off, and stays 0.
		Cleanup: Cleanup{Interval: 0, RevokedRetention: 48 * time.Hour, BatchSize: 100},
		Clients: []clients.Spec{
			{
				ID:                "web",
				SecretEnv:         "WEB_SECRET",
				GrantTypes:        []string{"password", "refresh_token"},
				Scopes:            []string{"read", "write"},
				DefaultScopes:     []string{"read"},
				AccessTokenTTL:    ptr(2 * time.Minute),
				RefreshReuseGrace: ptr(time.Duration(0)),
			},
			{ID: "spa", Public: true, GrantTypes: []string{"password"}},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", c, want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestLoadDurations(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
		err   string
	}{
		{"15m", 15 * time.Minute, ""},
		{"1h", time.Hour, ""},
		{"90s", 90 * time.Second, ""},
		{"1h0m0s", time.Hour, ""},
		{`"30m"`, 30 * time.Minute, ""},
		{"900", 0, "keyturn.yaml:2: tokens.access_token_ttl: cannot unmarshal !!int `900` into time.Duration"},
		{"fifteen", 0, "keyturn.yaml:2: tokens.access_token_ttl: cannot unmarshal !!str `fifteen` into time.Duration"},
		{"15 minutes", 0, "tokens.access_token_ttl: cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			c, err := Load(writeFile(t, "tokens:\n  access_token_ttl: "+tt.value+"\n"), env(nil))
			if tt.err != "" {
				wantErrors(t, err, true, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tokens.AccessTokenTTL != tt.want {
				t.Fatalf("access_token_ttl = %v, want %v", c.Tokens.AccessTokenTTL, tt.want)
			}
		})
	}
}

func TestLoadClientDurations(t *testing.T) {
	c, err := Load(writeFile(t, `
clients:
  - id: a
    secret_env: A
    grant_types: [password]
    access_token_ttl: 90s
    refresh_idle_ttl: 48h
    refresh_absolute_ttl: 240h
    refresh_reuse_grace: 30s
  - id: b
    secret_env: B
    grant_types: [password]
    access_token_ttl:
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Clients[0], c.Clients[1]
	got := []*time.Duration{a.AccessTokenTTL, a.RefreshIdleTTL, a.RefreshAbsoluteTTL, a.RefreshReuseGrace}
	want := []time.Duration{90 * time.Second, 48 * time.Hour, 240 * time.Hour, 30 * time.Second}
	for i := range got {
		if got[i] == nil || *got[i] != want[i] {
			t.Errorf("override %d = %v, want %v", i, got[i], want[i])
		}
	}
	if b.AccessTokenTTL != nil || b.RefreshIdleTTL != nil {
		t.Errorf("unset and null overrides = %v, %v; want nil (inherit)", b.AccessTokenTTL, b.RefreshIdleTTL)
	}
}

func TestLoadDecodeErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"top level", "isuer: https://a\n", []string{"keyturn.yaml:1: isuer: unknown key"}},
		{"nested", "tokens:\n  access_token_ttl: 5m\n  acess_token_ttl: 10m\n",
			[]string{"keyturn.yaml:3: tokens.acess_token_ttl: unknown key"}},
		{"in a client", "clients:\n  - id: a\n    secret_env: A\n    grant_types: [password]\n    secrt_hash: x\n",
			[]string{"keyturn.yaml:5: clients[0].secrt_hash: unknown key"}},
		{"secret is environment only", "secret: 0123456789abcdef0123456789abcdef\n",
			[]string{"keyturn.yaml:1: secret: unknown key"}},
		{"several", "database:\n  urll: x\nlog:\n  formt: json\n  lvl: debug\n", []string{
			"keyturn.yaml:2: database.urll: unknown key",
			"keyturn.yaml:4: log.formt: unknown key",
			"keyturn.yaml:5: log.lvl: unknown key",
		}},
		{"flow mapping", "log: {format: json, levl: info}\n", []string{"keyturn.yaml:1: log.levl: unknown key"}},
		{"repeated key", "listen: :1\nlisten: :2\n", []string{`keyturn.yaml:2: listen: mapping key "listen" already defined at line 1`}},
		{"wrong shape", "tokens:\n  - 5m\n", []string{"keyturn.yaml:2: tokens: cannot unmarshal !!seq into config.Tokens"}},
		// The pointer is allocated before the value fails to decode; its
		// zero is not reported a second time as a non-positive TTL.
		{"wrong type in a client", "clients:\n  - id: a\n    secret_env: A\n    grant_types: [password]\n    refresh_idle_ttl: 2\n",
			[]string{"keyturn.yaml:5: clients[0].refresh_idle_ttl: cannot unmarshal !!int `2` into time.Duration"}},
		{"wrong shape in list", "tokens:\n  audience:\n    - a\n    - {b: c}\n", []string{"keyturn.yaml:4: tokens.audience[1]: cannot unmarshal !!map into string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			_, err := Load(path, env(nil))
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = filepath.Join(filepath.Dir(path), w)
			}
			wantErrors(t, err, true, want...)
		})
	}
}

func TestLoadBadYAML(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"syntax", "tokens:\n  access_token_ttl: [5m\n", "load config: "},
		{"tabs", "tokens:\n\taccess_token_ttl: 5m\n", "load config: "},
		{"two documents", "listen: :1\n---\nlisten: :2\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			_, err := Load(path, env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load = %v, want an error naming %s and containing %q", err, path, tt.want)
			}
		})
	}
}

func TestLoadReportsEverything(t *testing.T) {
	path := writeFile(t, `
issuer: ftp://auth.example.com
listen: localhost
data_dir: ""
database:
  url: mysql://root:hunter2@db/keyturn
  max_open_conns: 0
tokens:
  access_token_ttl: 2h
  refresh_idle_ttl: 200h
  refresh_absolute_ttl: 100h
  refresh_reuse_grace: 2m
  acess_token_ttl: 5m
keys:
  algorithm: HS256
  rotation_delay: -1s
log:
  format: xml
  level: trace
clients:
  - id: web
    grant_types: [implicit]
    secret_hash: hunter2
  - id: web
    public: true
    grant_types: [password]
`)
	_, err := Load(path, env(map[string]string{
		"KEYTURN_REFRESH_REUSE_GRACE": "soon",
		"KEYTURN_SECRET":              "short-hunter2",
	}))
	wantErrors(t, err, true,
		"issuer:",
		"listen:",
		"data_dir: required",
		"database.url: unsupported scheme \"mysql\"",
		"database.max_open_conns: 0 must be at least 1",
		"tokens.access_token_ttl: 2h not in (0, 1h]",
		"tokens.refresh_absolute_ttl: 100h is less than refresh_idle_ttl 200h",
		"tokens.refresh_reuse_grace: 2m not in [0, 1m]",
		"tokens.acess_token_ttl: unknown key",
		"keys.algorithm: unknown algorithm \"HS256\"",
		"keys.rotation_delay: -1s is less than 6m",
		"log.format: unknown format \"xml\"",
		"log.level: unknown level \"trace\"",
		"clients[0].grant_types[0]: unknown grant type \"implicit\"",
		"clients[0].secret_hash: not a hash",
		"clients[1].id: duplicate of clients[0]",
		"KEYTURN_REFRESH_REUSE_GRACE: \"soon\" is not a duration",
		"KEYTURN_SECRET: not base64: need at least 32 random bytes",
	)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an error shows a secret:\n%v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	path := writeFile(t, fullFile)
	vars := map[string]string{
		"KEYTURN_ISSUER":               "https://override.example",
		"KEYTURN_LISTEN":               ":9999",
		"KEYTURN_DATA_DIR":             "/srv/keyturn",
		"KEYTURN_DATABASE_URL":         "sqlite:///srv/keyturn/k.db",
		"KEYTURN_SECRET":               "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"KEYTURN_SECRET_FILE":          "/srv/secret",
		"KEYTURN_ACCESS_TOKEN_TTL":     "1h",
		"KEYTURN_REFRESH_IDLE_TTL":     "2h",
		"KEYTURN_REFRESH_ABSOLUTE_TTL": "3h",
		"KEYTURN_REFRESH_REUSE_GRACE":  "1m",
		"KEYTURN_KEYS_ALGORITHM":       "RS256",
		"KEYTURN_LOG_FORMAT":           "text",
		"KEYTURN_LOG_LEVEL":            "warn",
	}
	c, err := Load(path, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"KEYTURN_ISSUER", c.Issuer, "https://override.example"},
		{"KEYTURN_LISTEN", c.Listen, ":9999"},
		{"KEYTURN_DATA_DIR", c.DataDir, "/srv/keyturn"},
		{"KEYTURN_DATABASE_URL", c.Database.URL, "sqlite:///srv/keyturn/k.db"},
		{"KEYTURN_SECRET", c.Secret, Secret("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")},
		{"KEYTURN_SECRET_FILE", c.SecretFile, "/srv/secret"},
		{"KEYTURN_ACCESS_TOKEN_TTL", c.Tokens.AccessTokenTTL, time.Hour},
		{"KEYTURN_REFRESH_IDLE_TTL", c.Tokens.RefreshIdleTTL, 2 * time.Hour},
		{"KEYTURN_REFRESH_ABSOLUTE_TTL", c.Tokens.RefreshAbsoluteTTL, 3 * time.Hour},
		{"KEYTURN_REFRESH_REUSE_GRACE", c.Tokens.RefreshReuseGrace, time.Minute},
		{"KEYTURN_KEYS_ALGORITHM", c.Keys.Algorithm, "RS256"},
		{"KEYTURN_LOG_FORMAT", c.Log.Format, "text"},
		{"KEYTURN_LOG_LEVEL", c.Log.Level, "warn"},
		{"file's audience kept", c.Tokens.Audience, []string{"https://api.example.com"}},
		{"file's max_open_conns kept", c.Database.MaxOpenConns, 32},
	}
	for _, tt := range checks {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}

	// An empty variable counts as unset.
	empty := make(map[string]string)
	for k := range vars {
		empty[k] = ""
	}
	c, err = Load(path, env(empty))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://auth.example.com" || c.Tokens.AccessTokenTTL != 5*time.Minute || c.Secret != "" {
		t.Errorf("empty variables overrode the file: %+v", c)
	}
}

func TestEnvInvalid(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"KEYTURN_ACCESS_TOKEN_TTL", "15", `KEYTURN_ACCESS_TOKEN_TTL: "15" is not a duration`},
		{"KEYTURN_REFRESH_IDLE_TTL", "a day", `KEYTURN_REFRESH_IDLE_TTL: "a day" is not a duration`},
		{"KEYTURN_REFRESH_ABSOLUTE_TTL", "30d", `KEYTURN_REFRESH_ABSOLUTE_TTL: "30d" is not a duration`},
		{"KEYTURN_REFRESH_REUSE_GRACE", "x", `KEYTURN_REFRESH_REUSE_GRACE: "x" is not a duration`},
		{"KEYTURN_ACCESS_TOKEN_TTL", "2h", "tokens.access_token_ttl (KEYTURN_ACCESS_TOKEN_TTL): 2h not in (0, 1h]"},
		{"KEYTURN_REFRESH_IDLE_TTL", "1000h", "tokens.refresh_absolute_ttl: 720h is less than refresh_idle_ttl 1000h"},
		{"KEYTURN_REFRESH_REUSE_GRACE", "-1s", "tokens.refresh_reuse_grace (KEYTURN_REFRESH_REUSE_GRACE): -1s not in [0, 1m]"},
		{"KEYTURN_ISSUER", "https://a.example/?x=1", "issuer (KEYTURN_ISSUER):"},
		{"KEYTURN_LISTEN", "8080", "listen (KEYTURN_LISTEN):"},
		{"KEYTURN_DATABASE_URL", "mysql://u:hunter2@h/db", "database.url (KEYTURN_DATABASE_URL): unsupported scheme \"mysql\""},
		{"KEYTURN_KEYS_ALGORITHM", "none", "keys.algorithm (KEYTURN_KEYS_ALGORITHM):"},
		{"KEYTURN_LOG_FORMAT", "logfmt", "log.format (KEYTURN_LOG_FORMAT):"},
		{"KEYTURN_LOG_LEVEL", "INFO", "log.level (KEYTURN_LOG_LEVEL):"},
		{"KEYTURN_SECRET", "hunter2", "KEYTURN_SECRET: too short: need at least 32 random bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(writeFile(t, ""), env(map[string]string{tt.name: tt.value}))
			wantErrors(t, err, true, tt.want)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestAudienceFollowsIssuer(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{"file issuer", "issuer: https://a.example\n", nil, []string{"https://a.example"}},
		{"env issuer", "issuer: https://a.example\n", map[string]string{"KEYTURN_ISSUER": "https://b.example"}, []string{"https://b.example"}},
		{"explicit audience", "issuer: https://a.example\ntokens:\n  audience: [x, y]\n", nil, []string{"x", "y"}},
		{"null audience", "issuer: https://a.example\ntokens:\n  audience:\n", nil, []string{"https://a.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, tt.file), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Tokens.Audience, tt.want) || !slices.Equal(c.ClientDefaults().Audience, tt.want) {
				t.Fatalf("audience = %q, client default %q; want %q", c.Tokens.Audience, c.ClientDefaults().Audience, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"https issuer with path", func(c *Config) { c.Issuer = "https://a.example/tenant1" }, "has a path"},
		{"issuer trailing slash", func(c *Config) { c.Issuer = "https://a.example/" }, "has a path"},
		{"http issuer elsewhere", func(c *Config) { c.Issuer = "http://auth.example.com" }, "is plain http"},
		{"http issuer localhost", func(c *Config) { c.Issuer = "http://localhost:8080" }, ""},
		{"http issuer ::1", func(c *Config) { c.Issuer = "http://[::1]:8080" }, ""},
		{"issuer empty", func(c *Config) { c.Issuer = "" }, "issuer: required"},
		{"issuer relative", func(c *Config) { c.Issuer = "/auth" }, "issuer: \"/auth\" is not an absolute http or https URL"},
		{"issuer no host", func(c *Config) { c.Issuer = "https:///x" }, "issuer: \"https:///x\" has no host"},
		{"issuer port only", func(c *Config) { c.Issuer = "https://:443" }, "has no host"},
		{"issuer query", func(c *Config) { c.Issuer = "https://a.example?x=1" }, "has a query or fragment"},
		{"issuer empty query", func(c *Config) { c.Issuer = "https://a.example?" }, "has a query or fragment"},
		{"issuer fragment", func(c *Config) { c.Issuer = "https://a.example#x" }, "has a query or fragment"},
		{"issuer userinfo", func(c *Config) { c.Issuer = "https://u:p@a.example" }, "has user information"},
		{"listen port only", func(c *Config) { c.Listen = ":8080" }, ""},
		{"listen ipv6", func(c *Config) { c.Listen = "[::1]:8080" }, ""},
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, "listen: \"localhost\" is not host:port"},
		{"listen bad port", func(c *Config) { c.Listen = "localhost:http" }, "listen: \"localhost:http\" has an invalid port"},
		{"listen big port", func(c *Config) { c.Listen = ":65536" }, "has an invalid port"},
		{"data_dir", func(c *Config) { c.DataDir = "" }, "data_dir: required"},
		{"sqlite", func(c *Config) { c.Database.URL = "sqlite://data/x.db" }, ""},
		{"sqlite odd path", func(c *Config) { c.Database.URL = "sqlite://my data/100%.db" }, ""},
		{"postgres", func(c *Config) { c.Database.URL = "postgres://u:p@h:5432/db?sslmode=require" }, ""},
		{"postgresql", func(c *Config) { c.Database.URL = "postgresql:///db" }, ""},
		{"sqlite no path", func(c *Config) { c.Database.URL = "sqlite://" }, "database.url: want sqlite://PATH"},
		{"sqlite opaque", func(c *Config) { c.Database.URL = "sqlite:x.db" }, "database.url: want sqlite://PATH"},
		{"postgres opaque", func(c *Config) { c.Database.URL = "postgres:u:hunter2@h" }, "database.url: want postgres://"},
		{"no scheme", func(c *Config) { c.Database.URL = "host=db password=hunter2" }, "database.url: no scheme"},
		{"unparseable", func(c *Config) { c.Database.URL = "postgres://u:hunter2@h:port/db" }, "database.url: not a URL"},
		{"max_open_conns", func(c *Config) { c.Database.MaxOpenConns = -1 }, "database.max_open_conns: -1 must be at least 1"},
		{"access ttl max", func(c *Config) { c.Tokens.AccessTokenTTL = time.Hour }, ""},
		{"access ttl zero", func(c *Config) { c.Tokens.AccessTokenTTL = 0 }, "tokens.access_token_ttl: 0s not in (0, 1h]"},
		{"idle zero", func(c *Config) { c.Tokens.RefreshIdleTTL = 0 }, "tokens.refresh_idle_ttl: 0s must be positive"},
		{"absolute equals idle", func(c *Config) { c.Tokens.RefreshAbsoluteTTL = c.Tokens.RefreshIdleTTL }, ""},
		{"absolute below idle", func(c *Config) { c.Tokens.RefreshAbsoluteTTL = time.Hour }, "tokens.refresh_absolute_ttl: 1h is less than refresh_idle_ttl 120h"},
		{"grace max", func(c *Config) { c.Tokens.RefreshReuseGrace = time.Minute }, ""},
		{"grace negative", func(c *Config) { c.Tokens.RefreshReuseGrace = -time.Second }, "tokens.refresh_reuse_grace: -1s not in [0, 1m]"},
		{"audience empty entry", func(c *Config) { c.Tokens.Audience = []string{"a", ""} }, "tokens.audience[1]: empty"},
		{"algorithms", func(c *Config) { c.Keys.Algorithm = "RS256" }, ""},
		{"algorithm", func(c *Config) { c.Keys.Algorithm = "es256" }, "keys.algorithm: unknown algorithm \"es256\" (want ES256, RS256, EdDSA)"},
		{"rotation zero", func(c *Config) { c.Keys.RotationDelay = 0 }, "keys.rotation_delay: 0s is less than 6m"},
		{"rotation minimum", func(c *Config) { c.Keys.RotationDelay = keys.MinRotationDelay }, ""},
		{"log", func(c *Config) { c.Log = Log{Format: "json", Level: "error"} }, ""},
		{"log format", func(c *Config) { c.Log.Format = "" }, "log.format: unknown format \"\""},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level: unknown level \"verbose\" (want debug, info, warn, error)"},
		{"cleanup off", func(c *Config) { c.Cleanup.Interval = 0 }, ""},
		{"db timeout", func(c *Config) { c.Database.Timeout = 0 }, "database.timeout: 0s not in (0, 1m]"},
		{"admin listen", func(c *Config) { c.AdminListen = "127.0.0.1:9090" }, ""},
		{"admin listen bad", func(c *Config) { c.AdminListen = "nope" }, "admin_listen: \"nope\" is not host:port"},
		{"admin listen same", func(c *Config) { c.AdminListen = c.Listen }, "admin_listen: \"127.0.0.1:8080\" is also listen"},
		{"shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout: 0s not in (0, 10m]"},
		{"free failures", func(c *Config) { c.Login.FreeFailures = 0 }, "login.free_failures: 0 must be at least 1"},
		{"hash processors", func(c *Config) { c.Login.HashProcessors = "many" }, "login.hash_processors: \"many\": want \"own\" or \"shared\""},
		{"hash processors shared", func(c *Config) { c.Login.HashProcessors = HashProcessorsShared }, ""},
		{"max delay", func(c *Config) { c.Login.MaxDelay = time.Millisecond }, "login.max_delay: 1ms is less than base_delay 1s"},
		{"window", func(c *Config) { c.Login.FailureWindow = 0 }, "login.failure_window: 0s must be positive"},
		{"user failures", func(c *Config) { c.Login.UserFailures = 4 }, "login.user_failures: 4 is less than free_failures 5"},
		{"address failures", func(c *Config) { c.Login.AddressFailures = 0 }, "login.address_failures: 0 is less than free_failures 5"},
		{"known address ttl", func(c *Config) { c.Login.KnownAddressTTL = -time.Hour }, "login.known_address_ttl: -1h must be positive"},
		{"known addresses", func(c *Config) { c.Login.KnownAddresses = 0 }, "login.known_addresses: 0 not in [1, 1000]"},
		{"known addresses many", func(c *Config) { c.Login.KnownAddresses = 1001 }, "login.known_addresses: 1001 not in [1, 1000]"},
		{"proxies", func(c *Config) { c.Login.TrustedProxies = []string{"10.0.0.0/8", "::1", "proxy.example"} }, "login.trusted_proxies[2]: \"proxy.example\" is not an address or CIDR"},
		{"tls half", func(c *Config) { c.TLS.CertFile = "x.crt" }, "tls: cert_file and key_file go together"},
		{"cleanup negative", func(c *Config) { c.Cleanup.Interval = -time.Minute }, "cleanup.interval: -1m must not be negative"},
		{"retention negative", func(c *Config) { c.Cleanup.RevokedRetention = -time.Hour }, "cleanup.revoked_retention: -1h must not be negative"},
		{"batch zero", func(c *Config) { c.Cleanup.BatchSize = 0 }, "cleanup.batch_size: 0 not in [1, 100000]"},
		{"secret", func(c *Config) { c.Secret = Secret(strings.Repeat("k", 43) + "=") }, ""},
		{"secret short", func(c *Config) { c.Secret = "hunter2" }, "KEYTURN_SECRET: too short: need at least 32 random bytes"},
		{"clients", func(c *Config) { c.Clients = []clients.Spec{{ID: "a", Public: true}} }, "clients[0].grant_types: at least one"},
		{"code ttl max", func(c *Config) { c.Authorize.CodeTTL = 10 * time.Minute }, ""},
		{"code ttl zero", func(c *Config) { c.Authorize.CodeTTL = 0 }, "authorize.code_ttl: 0s not in (0, 10m]"},
		{"code ttl negative", func(c *Config) { c.Authorize.CodeTTL = -time.Second }, "authorize.code_ttl: -1s not in (0, 10m]"},
		{"code ttl long", func(c *Config) { c.Authorize.CodeTTL = 10*time.Minute + time.Second }, "authorize.code_ttl: 10m1s not in (0, 10m]"},
		{"browser session max", func(c *Config) { c.Authorize.BrowserSessionTTL = 720 * time.Hour }, ""},
		{"browser session zero", func(c *Config) { c.Authorize.BrowserSessionTTL = 0 }, "authorize.browser_session_ttl: 0s not in (0, 720h]"},
		{"browser session long", func(c *Config) { c.Authorize.BrowserSessionTTL = 721 * time.Hour }, "authorize.browser_session_ttl: 721h not in (0, 720h]"},
		{"product name", func(c *Config) { c.Pages.ProductName = "Société Générale — Accès" }, ""},
		{"product name at most", func(c *Config) { c.Pages.ProductName = strings.Repeat("é", 60) }, ""},
		{"product name empty", func(c *Config) { c.Pages.ProductName = "" }, "pages.product_name: required"},
		{"product name blank", func(c *Config) { c.Pages.ProductName = " \t" }, "pages.product_name: required"},
		{"product name long", func(c *Config) { c.Pages.ProductName = strings.Repeat("a", 61) }, "pages.product_name: 61 characters, more than 60"},
		{"product name control", func(c *Config) { c.Pages.ProductName = "Key\x00turn" }, "pages.product_name: \"Key\\x00turn\" has a character that is not printable (U+0000)"},
		{"product name newline", func(c *Config) { c.Pages.ProductName = "Key\nturn" }, "not printable (U+000A)"},
		{"product name bidi", func(c *Config) { c.Pages.ProductName = "Key\u202eturn" }, "not printable (U+202E)"},
		{"product name UTF-8", func(c *Config) { c.Pages.ProductName = "Key\xffturn" }, "pages.product_name: not valid UTF-8"},
		{"logo", func(c *Config) { c.Pages.LogoFile, c.Pages.Logo = "logo.png", pngLogo(t) }, ""},
		{"logo bytes alone", func(c *Config) { c.Pages.Logo = pngLogo(t) }, ""},
		{"logo not read", func(c *Config) { c.Pages.LogoFile = "logo.png" }, "pages.logo_file: not read"},
		{"logo svg", func(c *Config) { c.Pages.Logo = []byte(svgLogo) }, "pages.logo_file: text/xml; charset=utf-8 is not a PNG, JPEG, GIF or WebP image"},
		{"logo empty", func(c *Config) { c.Pages.Logo = []byte{} }, "pages.logo_file: text/plain; charset=utf-8 is not a PNG"},
		{"logo large", func(c *Config) { c.Pages.Logo = append(pngLogo(t), make([]byte, MaxLogoSize)...) }, "pages.logo_file: larger than 256 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			wantErrors(t, err, true, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://keyturn:hunter2@db:5432/keyturn?sslmode=disable", "postgres://keyturn:xxxxx@db:5432/keyturn?sslmode=disable"},
		{"postgresql://keyturn@db/keyturn", "postgresql://keyturn@db/keyturn"},
		{"postgres://u:p%40ss@db/k", "postgres://u:xxxxx@db/k"},
		{"postgres://u@db/k?sslmode=verify-full&password=hunter2&sslpassword=hunter2", "postgres://u@db/k?sslmode=verify-full&password=xxxxx&sslpassword=xxxxx"},
		{"postgres://db/k?pass%77ord=hunter2", "postgres://db/k?password=xxxxx"},
		{"sqlite://data/keyturn.db", "sqlite://data/keyturn.db"},
		{"host=db user=u password=hunter2", "xxxxx"},
		{"postgres://u:hunter2@db:port/k", "xxxxx"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecretRedacts(t *testing.T) {
	const value = "0123456789abcdef0123456789abcdef-hunter2"
	c := Default()
	c.Secret = Secret(value)
	c.Database.URL = "postgres://u:hunter2@db/k"

	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		fmt.Fprintf(&out, verb+"\n", c.Secret)
	}
	fmt.Fprintf(&out, "%v %+v\n", &c.Secret, []Secret{c.Secret})
	log := slog.New(slog.NewTextHandler(&out, nil))
	log.Info("x", "secret", c.Secret, "database", c.Database)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "secret", c.Secret, "database", c.Database)
	b, err := json.Marshal(struct{ Secret Secret }{c.Secret})
	if err != nil {
		t.Fatal(err)
	}
	out.Write(b)

	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("secret printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `secret=[redacted]`) || !strings.Contains(out.String(), `"secret":"[redacted]"`) ||
		!strings.Contains(out.String(), `{"Secret":"[redacted]"}`) {
		t.Fatalf("no [redacted] in log output:\n%s", out.String())
	}
	if got := c.Secret.String() + c.Secret.GoString(); got != "[redacted][redacted]" {
		t.Fatalf("String, GoString = %q", got)
	}
	if string(c.Secret) != value {
		t.Fatal("string(Secret) does not return the value")
	}
}

func TestDecodeSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantLen int // 0: error
	}{
		{"std padded", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=\n", 32},
		{"std unpadded", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8", 32},
		{"url padded", "_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-8=", 32},
		{"url unpadded", " _-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-8\r\n", 32},
		{"long base64", strings.Repeat("A", 88), 66},
		{"short base64", "c2hvcnQ=", 0},
		{"31 bytes base64", strings.Repeat("A", 40) + "AA==", 0},
		{"short raw", "short!", 0},
		{"empty", "  \n", 0},
		// A passphrase is not 32 random bytes, however long it is: only
		// base64 of 32+ bytes is accepted (`openssl rand -base64 32`).
		{"long passphrase", "correct horse battery staple, twice over!", 0},
		{"33 raw characters", "0123456789abcdef0123456789abcdef!", 0},
		{"43 raw characters not base64", strings.Repeat("k", 42) + "!", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSecret([]byte(tt.in))
			if tt.wantLen == 0 {
				if err == nil {
					t.Fatalf("DecodeSecret(%q) = %x, want error", tt.in, got)
				}
				// The error says how to make a good one, and never shows the value.
				if msg := err.Error(); !strings.Contains(msg, "openssl rand -base64 32") || (strings.TrimSpace(tt.in) != "" && strings.Contains(msg, strings.TrimSpace(tt.in))) {
					t.Errorf("DecodeSecret(%q) error = %q", tt.in, msg)
				}
				return
			}
			if err != nil || len(got) != tt.wantLen {
				t.Fatalf("DecodeSecret(%q) = %d bytes, %v; want %d", tt.in, len(got), err, tt.wantLen)
			}
		})
	}
}

// TestPassphraseSecretRejected: a long human passphrase in KEYTURN_SECRET
// is a configuration error, reported by Load with the other problems.
func TestPassphraseSecretRejected(t *testing.T) {
	c := Default()
	c.Secret = "my company's very long and secret passphrase 2026"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "KEYTURN_SECRET: ") || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Fatalf("Validate = %v, want a KEYTURN_SECRET error saying how to make one", err)
	}
	if strings.Contains(err.Error(), "passphrase 2026") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

func TestTrustedPrefixes(t *testing.T) {
	got := Login{TrustedProxies: []string{"10.1.2.3/8", "192.168.1.1", "::ffff:127.0.0.1", "fd00::/8"}}.TrustedPrefixes()
	want := []string{"10.0.0.0/8", "192.168.1.1/32", "127.0.0.1/32", "fd00::/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, got[i], want[i])
		}
	}
}

package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keyturn/keyturn/config"
)

// FuzzLoad feeds arbitrary bytes to Load as the config file, with an empty
// environment: it never panics, and whatever it accepts passes Validate
// (so nothing reaches the server that `keyturn config check` would refuse).
func FuzzLoad(f *testing.F) {
	if example, err := os.ReadFile(filepath.Join("..", "keyturn.example.yaml")); err == nil {
		f.Add(example) // every key, with comments
	}
	for _, s := range []string{
		"",
		"{}",
		"---\n",
		"issuer: https://auth.example.com\nlisten: 127.0.0.1:0\n",
		"issuer: http://[::1]:8080\nlisten: '[::1]:0'\n",
		"issuer: https://auth.example.com?x#y\n",
		"issuer: 'https://user:pw@auth.example.com'\n",
		"tokens:\n  access_token_ttl: 2h\n  refresh_idle_ttl: -1s\n",
		"tokens:\n  access_token_ttl: 9223372036854775807\n",
		"tokens:\n  access_token_ttl: 99999999999999999999h\n",
		"tokens:\n  refresh_reuse_grace: 1m1s\n  audience: ['', x]\n",
		"tokens: ~\nkeys: ~\nclients: ~\n",
		"tokens: [1, 2]\n",
		"database:\n  url: sqlite://\n  max_open_conns: 0\n",
		"database:\n  url: 'postgres:opaque'\n",
		"database:\n  url: \"postgres://u:p%zz@h/db\"\n",
		"cleanup:\n  interval: -1m\n  batch_size: 100001\n",
		"log:\n  format: xml\n  level: trace\n",
		"keys:\n  algorithm: none\n  rotation_delay: -1h\n",
		"issuer: a\nissuer: b\n",
		"unknown: 1\ntokens:\n  acess_token_ttl: 1m\n",
		"a: &a [*a]\n",
		"x: &x {y: 1}\n<<: *x\n",
		"issuer: !!binary aGVsbG8=\n",
		"issuer: https://a\n---\nissuer: https://b\n",
		"\tissuer: x\n",
		"clients:\n  - {}\n",
		"clients:\n  - id: web\n    secret_hash: sha256:AAAA\n    grant_types: [password]\n",
		"clients:\n  - id: web\n    public: true\n    grant_types: [client_credentials]\n    access_token_ttl: 2h\n",
		"clients:\n  - id: a\n    secret_env: A\n  - id: a\n    secret_env: A\n",
		"clients:\n  - id: web\n    secret_env: WEB\n    grant_types: [refresh_token]\n    refresh_reuse_grace: 10s\n    scopes: [read]\n    default_scopes: [write]\n",
		"authorize:\n  code_ttl: 11m\n  browser_session_ttl: -1s\npages:\n  product_name: \"Key\\u202eturn\"\n",
		"pages:\n  product_name: ''\n  logo_file: /dev/zero\n",
		"pages:\n  logo_file: [x]\n",
		"pages:\n  logo_file: .\n",
		"clients:\n  - id: web\n    secret_env: WEB\n    grant_types: [authorization_code, refresh_token]\n    redirect_uris: ['https://rp.test/cb', 'https://rp.test/cb#x', 'http://127.0.0.1/cb']\n    name: \"A\\tB\"\n    first_party: true\n",
		"clients:\n  - id: app\n    public: true\n    grant_types: [authorization_code]\n    redirect_uris: ['http://[::1]/cb', 'com.example.app:/cb', 'myapp:/cb', 'https://*.x/cb']\n",
		"\xff\xfe",
		"issuer: \"\\x00\"\n",
	} {
		f.Add([]byte(s))
	}
	noEnv := func(string) (string, bool) { return "", false }
	path := filepath.Join(f.TempDir(), "keyturn.yaml") // iterations run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, noEnv)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Load(%q): an error with no message", data)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load(%q) accepted a config that Validate refuses: %v", data, err)
		}
		if cfg.DatabaseURL() == "" || cfg.SecretPath() == "" || len(cfg.ClientDefaults().Audience) == 0 {
			t.Fatalf("Load(%q): accepted config without a database, secret path or audience: %+v", data, cfg)
		}
	})
}

package clients

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage/passhash"
)

// fastParams keep argon2id cheap in tests that hash their own secrets.
var fastParams = passhash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func fastHash(t *testing.T, secret string) string {
	t.Helper()
	h, err := passhash.Hash(secret, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testDefaults() Defaults {
	return Defaults{
		AccessTokenTTL:     15 * time.Minute,
		RefreshIdleTTL:     100 * time.Hour,
		RefreshAbsoluteTTL: 720 * time.Hour,
		Audience:           []string{"https://api.example"},
	}
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func dur(d time.Duration) *time.Duration { return &d }

// app is a valid confidential client; tests change one thing at a time.
func app(id string) Spec {
	return Spec{
		ID:            id,
		SecretHash:    SHA256Hash("app-secret"),
		GrantTypes:    []string{GrantPassword, GrantRefreshToken},
		Scopes:        []string{"read", "write"},
		DefaultScopes: []string{"read"},
	}
}

func with(s Spec, change func(*Spec)) Spec {
	change(&s)
	return s
}

// joined returns the errors an errors.Join result holds.
func joined(t *testing.T, err error) []error {
	t.Helper()
	if err == nil {
		return nil
	}
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error is not from errors.Join: %v", err)
	}
	return u.Unwrap()
}

// wantErrors checks that err holds exactly one error per entry of want, each
// containing that entry.
func wantErrors(t *testing.T, err error, want []string) {
	t.Helper()
	errs := joined(t, err)
	for _, w := range want {
		n := 0
		for _, e := range errs {
			if strings.Contains(e.Error(), w) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d errors contain %q, want 1", n, w)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
}

func TestValidate(t *testing.T) {
	argon := fastHash(t, "correct horse")
	tests := []struct {
		name  string
		specs []Spec
		want  []string
	}{
		{"none", nil, nil},
		{"confidential sha256", []Spec{app("web")}, nil},
		{"confidential argon2id", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = argon })}, nil},
		{"confidential env", []Spec{with(app("web"), func(s *Spec) { s.SecretHash, s.SecretEnv = "", "WEB_SECRET" })}, nil},
		{"public", []Spec{with(app("spa"), func(s *Spec) { s.SecretHash, s.Public = "", true })}, nil},
		{"machine", []Spec{with(app("cron"), func(s *Spec) { s.GrantTypes = []string{GrantClientCredentials} })}, nil},
		{"introspect only", []Spec{with(app("api"), func(s *Spec) { s.GrantTypes, s.Introspect, s.Resources = nil, true, []string{"https://api"} })}, nil},
		{"introspect without resources", []Spec{with(app("api"), func(s *Spec) { s.Introspect = true })},
			[]string{"clients[0].resources: required with introspect: true"}},
		{"resources without introspect", []Spec{with(app("api"), func(s *Spec) { s.Resources = []string{"https://api"} })},
			[]string{"clients[0].resources: only with introspect: true"}},
		{"resources duplicate and empty", []Spec{with(app("api"), func(s *Spec) { s.Introspect, s.Resources = true, []string{"a", "a", ""} })},
			[]string{"clients[0].resources[1]: duplicate of resources[0]", "clients[0].resources[2]: empty"}},
		{"id printable ascii", []Spec{app("a!~#$%&'()*+,-./;<=>?@[]^_`{|}\"\\")}, nil},
		{"bounds inclusive", []Spec{with(app("web"), func(s *Spec) {
			s.AccessTokenTTL, s.RefreshReuseGrace = dur(time.Hour), dur(time.Minute)
			s.RefreshIdleTTL, s.RefreshAbsoluteTTL = dur(time.Hour), dur(time.Hour)
		})}, nil},
		{"zero grace", []Spec{with(app("web"), func(s *Spec) { s.RefreshReuseGrace = dur(0) })}, nil},

		{"id required", []Spec{app("")}, []string{"clients[0].id: required"}},
		{"id duplicate", []Spec{app("web"), app("cli"), app("web")}, []string{"clients[2].id: duplicate of clients[0]"}},
		{"id space", []Spec{app("my app")}, []string{"clients[0].id: \"my app\" has a character"}},
		{"id colon", []Spec{app("a:b")}, []string{"clients[0].id: \"a:b\" has a character"}},
		{"id control", []Spec{app("a\tb")}, []string{"clients[0].id: \"a\\tb\" has a character"}},
		{"id non-ascii", []Spec{app("café")}, []string{"clients[0].id:"}},

		{"no grant", []Spec{with(app("web"), func(s *Spec) { s.GrantTypes = nil })},
			[]string{"clients[0].grant_types: at least one"}},
		{"unknown grant", []Spec{app("a"), with(app("web"), func(s *Spec) { s.GrantTypes = []string{"implicit"} })},
			[]string{`clients[1].grant_types[0]: unknown grant type "implicit"`}},
		{"duplicate grant", []Spec{with(app("web"), func(s *Spec) { s.GrantTypes = []string{"password", "password"} })},
			[]string{"clients[0].grant_types[1]: duplicate of grant_types[0]"}},
		{"refresh without password", []Spec{with(app("web"), func(s *Spec) {
			s.GrantTypes = []string{GrantClientCredentials, GrantRefreshToken}
		})}, []string{"clients[0].grant_types: refresh_token requires password or authorization_code"}},

		{"public with secret_hash", []Spec{with(app("spa"), func(s *Spec) { s.Public = true })},
			[]string{"clients[0].secret_hash: a public client has no secret"}},
		{"public with secret_env", []Spec{with(app("spa"), func(s *Spec) { s.Public, s.SecretHash, s.SecretEnv = true, "", "X" })},
			[]string{"clients[0].secret_env: a public client has no secret"}},
		{"public client_credentials", []Spec{with(app("spa"), func(s *Spec) {
			s.Public, s.SecretHash = true, ""
			s.GrantTypes = []string{GrantPassword, GrantClientCredentials}
		})}, []string{"clients[0].grant_types[1]: client_credentials needs a confidential client"}},
		{"public introspect", []Spec{with(app("spa"), func(s *Spec) {
			s.Public, s.SecretHash, s.Introspect, s.Resources = true, "", true, []string{"https://api"}
		})},
			[]string{"clients[0].introspect: a public client cannot authenticate"}},

		{"no secret", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "" })},
			[]string{"clients[0]: a confidential client needs secret_hash or secret_env"}},
		// Rotation: any mix of secrets, each checked like the single one.
		{"hash and env", []Spec{with(app("web"), func(s *Spec) { s.SecretEnv = "WEB_SECRET" })}, nil},
		{"secret lists", []Spec{with(app("web"), func(s *Spec) {
			s.SecretHash, s.SecretHashes, s.SecretEnvs = "", []string{SHA256Hash("new"), argon}, []string{"NEW", "OLD"}
		})}, nil},
		{"secret lists alone", []Spec{with(app("web"), func(s *Spec) { s.SecretHash, s.SecretEnvs = "", []string{"WEB_SECRET"} })}, nil},
		{"secret list entries checked", []Spec{with(app("web"), func(s *Spec) {
			s.SecretHashes = []string{SHA256Hash("app-secret"), "", "sha256:!!!", SHA256Hash("x"), SHA256Hash("x")}
			s.SecretEnv, s.SecretEnvs = "A", []string{"B", "A", "1X", "B"}
		})}, []string{
			"clients[0].secret_hashes[0]: duplicate of secret_hash",
			"clients[0].secret_hashes[1]: empty",
			"clients[0].secret_hashes[2]: malformed sha256 hash",
			"clients[0].secret_hashes[4]: duplicate of secret_hashes[3]",
			"clients[0].secret_envs[1]: duplicate of secret_env",
			"clients[0].secret_envs[2]: not an environment variable name",
			"clients[0].secret_envs[3]: duplicate of secret_envs[0]",
		}},
		{"empty secret lists", []Spec{with(app("web"), func(s *Spec) { s.SecretHash, s.SecretHashes, s.SecretEnvs = "", []string{}, []string{} })},
			[]string{"clients[0]: a confidential client needs secret_hash or secret_env"}},
		{"public with secret lists", []Spec{with(app("spa"), func(s *Spec) {
			s.Public, s.SecretHash, s.SecretHashes, s.SecretEnvs = true, "", []string{SHA256Hash("x")}, []string{"X"}
		})}, []string{
			"clients[0].secret_hashes: a public client has no secret",
			"clients[0].secret_envs: a public client has no secret",
		}},
		{"sha256 bad base64", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "sha256:!!!" })},
			[]string{"clients[0].secret_hash: malformed sha256 hash"}},
		{"sha256 short digest", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "sha256:" + b64url.EncodeToString(make([]byte, 16)) })},
			[]string{"clients[0].secret_hash: malformed sha256 hash"}},
		{"sha256 padded", []Spec{with(app("web"), func(s *Spec) { s.SecretHash += "=" })},
			[]string{"clients[0].secret_hash: malformed sha256 hash"}},
		{"argon2id malformed", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" })},
			[]string{"clients[0].secret_hash: malformed argon2id hash"}},
		{"bcrypt", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "$2a$10$abcdefghijklmnopqrstuv" })},
			[]string{"clients[0].secret_hash: unsupported hash"}},
		{"plaintext", []Spec{with(app("web"), func(s *Spec) { s.SecretHash = "hunter2" })},
			[]string{"clients[0].secret_hash: not a hash"}},
		{"secret_env bad name", []Spec{with(app("web"), func(s *Spec) { s.SecretHash, s.SecretEnv = "", "1X" })},
			[]string{"clients[0].secret_env: not an environment variable name"}},

		{"scope invalid", []Spec{with(app("web"), func(s *Spec) {
			s.Scopes = []string{"read", "a b", `say"hi"`, `back\slash`, "", "é"}
			s.DefaultScopes = nil
		})}, []string{
			`clients[0].scopes[1]: "a b" is not a scope token`,
			`clients[0].scopes[2]:`,
			`clients[0].scopes[3]:`,
			`clients[0].scopes[4]: "" is not a scope token`,
			`clients[0].scopes[5]:`,
		}},
		{"scope punctuation ok", []Spec{with(app("web"), func(s *Spec) { s.Scopes = []string{"read", "user:email", "https://x/y", "!#[]~"} })}, nil},
		{"scope duplicate", []Spec{with(app("web"), func(s *Spec) { s.Scopes = []string{"read", "write", "read"} })},
			[]string{"clients[0].scopes[2]: duplicate of scopes[0]"}},
		{"default scope not allowed", []Spec{with(app("web"), func(s *Spec) { s.DefaultScopes = []string{"read", "admin"} })},
			[]string{`clients[0].default_scopes[1]: "admin" is not in scopes`}},
		{"default scope duplicate", []Spec{with(app("web"), func(s *Spec) { s.DefaultScopes = []string{"read", "read"} })},
			[]string{"clients[0].default_scopes[1]: duplicate of default_scopes[0]"}},

		{"audience empty", []Spec{with(app("web"), func(s *Spec) { s.Audience = []string{"https://a", ""} })},
			[]string{"clients[0].audience[1]: empty"}},
		{"audience duplicate", []Spec{with(app("web"), func(s *Spec) { s.Audience = []string{"https://a", "https://a"} })},
			[]string{"clients[0].audience[1]: duplicate of audience[0]"}},

		{"access ttl zero", []Spec{with(app("web"), func(s *Spec) { s.AccessTokenTTL = dur(0) })},
			[]string{"clients[0].access_token_ttl: 0s not in (0, 1h]"}},
		{"access ttl long", []Spec{with(app("web"), func(s *Spec) { s.AccessTokenTTL = dur(90 * time.Minute) })},
			[]string{"clients[0].access_token_ttl: 1h30m not in (0, 1h]"}},
		{"idle ttl zero", []Spec{with(app("web"), func(s *Spec) { s.RefreshIdleTTL = dur(0) })},
			[]string{"clients[0].refresh_idle_ttl: 0s must be positive"}},
		{"absolute ttl negative", []Spec{with(app("web"), func(s *Spec) { s.RefreshAbsoluteTTL = dur(-time.Hour) })},
			[]string{"clients[0].refresh_absolute_ttl: -1h must be positive"}},
		{"grace negative", []Spec{with(app("web"), func(s *Spec) { s.RefreshReuseGrace = dur(-time.Second) })},
			[]string{"clients[0].refresh_reuse_grace: -1s not in [0, 1m]"}},
		{"grace long", []Spec{with(app("web"), func(s *Spec) { s.RefreshReuseGrace = dur(61 * time.Second) })},
			[]string{"clients[0].refresh_reuse_grace: 1m1s not in [0, 1m]"}},
		{"idle above absolute", []Spec{with(app("web"), func(s *Spec) {
			s.RefreshIdleTTL, s.RefreshAbsoluteTTL = dur(200*time.Hour), dur(100*time.Hour)
		})}, []string{"clients[0].refresh_idle_ttl: 200h exceeds refresh_absolute_ttl 100h"}},

		{"every mistake at once", []Spec{
			app("web"),
			with(app("web"), func(s *Spec) { s.GrantTypes = []string{"implicit"} }),
			with(app("x y"), func(s *Spec) { s.SecretHash, s.Scopes = "", []string{"read", "read"} }),
		}, []string{
			"clients[1].id: duplicate of clients[0]",
			`clients[1].grant_types[0]: unknown grant type "implicit"`,
			"clients[2].id:",
			"clients[2]: a confidential client needs",
			"clients[2].scopes[1]: duplicate of scopes[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, Validate(tt.specs), tt.want)
		})
	}
}

func TestValidatePlaintextSecret(t *testing.T) {
	const secret = "hunter2-correct-horse"
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"secret_hash", with(app("web"), func(s *Spec) { s.SecretHash = secret }), "keyturn clients hash-secret"},
		{"secret_env", with(app("web"), func(s *Spec) { s.SecretHash, s.SecretEnv = "", secret }), "not an environment variable name"},
		{"sha256 prefix", with(app("web"), func(s *Spec) { s.SecretHash = "sha256:" + secret }), "malformed sha256 hash"},
		{"secret_hashes", with(app("web"), func(s *Spec) { s.SecretHashes = []string{secret} }), "keyturn clients hash-secret"},
		{"secret_envs", with(app("web"), func(s *Spec) { s.SecretEnvs = []string{secret} }), "not an environment variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]Spec{tt.spec})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error echoes the secret: %v", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	envSpec := func(id, name string) Spec {
		return with(app(id), func(s *Spec) { s.SecretHash, s.SecretEnv = "", name })
	}
	tests := []struct {
		name  string
		specs []Spec
		d     Defaults
		env   map[string]string
		want  []string
	}{
		{"env set", []Spec{envSpec("web", "WEB_SECRET")}, testDefaults(), map[string]string{"WEB_SECRET": "s"}, nil},
		{"env unset", []Spec{envSpec("web", "WEB_SECRET")}, testDefaults(), nil,
			[]string{"clients[0].secret_env: environment variable WEB_SECRET is not set"}},
		{"env empty", []Spec{app("a"), envSpec("web", "WEB_SECRET")}, testDefaults(), map[string]string{"WEB_SECRET": ""},
			[]string{"clients[1].secret_env: environment variable WEB_SECRET is empty"}},
		{"secret_envs unset and empty", []Spec{with(app("web"), func(s *Spec) { s.SecretEnvs = []string{"NEW", "OLD", "GONE"} })},
			testDefaults(), map[string]string{"NEW": "n", "OLD": ""}, []string{
				"clients[0].secret_envs[1]: environment variable OLD is empty",
				"clients[0].secret_envs[2]: environment variable GONE is not set",
			}},
		{"idle override above default absolute", []Spec{with(app("web"), func(s *Spec) { s.RefreshIdleTTL = dur(800 * time.Hour) })},
			testDefaults(), nil, []string{"clients[0].refresh_idle_ttl: 800h exceeds refresh_absolute_ttl 720h"}},
		{"negative absolute reported once", []Spec{with(app("web"), func(s *Spec) { s.RefreshAbsoluteTTL = dur(-time.Hour) })},
			testDefaults(), nil, []string{"clients[0].refresh_absolute_ttl: -1h must be positive"}},
		{"absolute override below default idle", []Spec{with(app("web"), func(s *Spec) { s.RefreshAbsoluteTTL = dur(time.Hour) })},
			testDefaults(), nil, []string{"clients[0].refresh_idle_ttl: 100h exceeds refresh_absolute_ttl 1h"}},
		{"no audience anywhere", []Spec{app("web")}, with2(testDefaults(), func(d *Defaults) { d.Audience = nil }), nil,
			[]string{"clients[0].audience: required"}},
		{"own audience, none by default", []Spec{with(app("web"), func(s *Spec) { s.Audience = []string{"https://a"} })},
			with2(testDefaults(), func(d *Defaults) { d.Audience = nil }), nil, nil},
		{"bad defaults", nil, Defaults{RefreshReuseGrace: time.Hour, Audience: []string{""}}, nil, []string{
			"defaults.access_token_ttl: 0s not in (0, 1h]",
			"defaults.refresh_idle_ttl: 0s must be positive",
			"defaults.refresh_absolute_ttl: 0s must be positive",
			"defaults.refresh_reuse_grace: 1h not in [0, 1m]",
			"defaults.audience[0]: empty",
		}},
		{"defaults idle above absolute, reported once", []Spec{app("a"), app("b")},
			with2(testDefaults(), func(d *Defaults) { d.RefreshIdleTTL = 800 * time.Hour }), nil,
			[]string{"defaults.refresh_idle_ttl: 800h exceeds refresh_absolute_ttl 720h"}},
		{"static and environment problems together", []Spec{
			envSpec("web", "WEB_SECRET"),
			with(app("cli"), func(s *Spec) { s.GrantTypes = []string{"implicit"} }),
		}, testDefaults(), nil, []string{
			"clients[0].secret_env: environment variable WEB_SECRET is not set",
			`clients[1].grant_types[0]: unknown grant type "implicit"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.specs, tt.d, env(tt.env))
			wantErrors(t, err, tt.want)
			if (r == nil) != (err != nil) {
				t.Fatalf("New = %v, %v: want exactly one of registry and error", r, err)
			}
		})
	}
}

func with2(d Defaults, change func(*Defaults)) Defaults {
	change(&d)
	return d
}

func TestResolve(t *testing.T) {
	d := testDefaults()
	d.RefreshReuseGrace = 5 * time.Second
	specs := []Spec{
		app("inherit"),
		with(app("override"), func(s *Spec) {
			s.AccessTokenTTL = dur(5 * time.Minute)
			s.RefreshIdleTTL = dur(time.Hour)
			s.RefreshAbsoluteTTL = dur(24 * time.Hour)
			s.RefreshReuseGrace = dur(0)
			s.Audience = []string{"https://orders", "https://billing"}
			s.Introspect = true
			s.Resources = []string{"https://orders"}
		}),
	}
	r, err := New(specs, d, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id                            string
		access, idle, absolute, grace time.Duration
		audience                      []string
		introspect                    bool
	}{
		{"inherit", 15 * time.Minute, 100 * time.Hour, 720 * time.Hour, 5 * time.Second, []string{"https://api.example"}, false},
		{"override", 5 * time.Minute, time.Hour, 24 * time.Hour, 0, []string{"https://orders", "https://billing"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			c, ok := r.Get(tt.id)
			if !ok {
				t.Fatalf("Get(%q) found nothing", tt.id)
			}
			if c.ID != tt.id || c.Public || c.Introspect != tt.introspect {
				t.Errorf("ID, Public, Introspect = %q, %v, %v", c.ID, c.Public, c.Introspect)
			}
			got := [4]time.Duration{c.AccessTokenTTL, c.RefreshIdleTTL, c.RefreshAbsoluteTTL, c.RefreshReuseGrace}
			if want := [4]time.Duration{tt.access, tt.idle, tt.absolute, tt.grace}; got != want {
				t.Errorf("access, idle, absolute, grace = %v, want %v", got, want)
			}
			if !slices.Equal(c.Audience, tt.audience) {
				t.Errorf("Audience = %q, want %q", c.Audience, tt.audience)
			}
			if !slices.Equal(c.Scopes, []string{"read", "write"}) || !slices.Equal(c.DefaultScopes, []string{"read"}) {
				t.Errorf("Scopes, DefaultScopes = %q, %q", c.Scopes, c.DefaultScopes)
			}
		})
	}

	// The registry owns its copies: changing the inputs changes nothing.
	d.Audience[0] = "changed"
	specs[0].Scopes[0] = "changed"
	c, _ := r.Get("inherit")
	if c.Audience[0] != "https://api.example" || c.Scopes[0] != "read" || !c.AllowsScope("read") {
		t.Errorf("client shares slices with its spec or defaults: %q, %q", c.Audience, c.Scopes)
	}
}

func TestGetIDs(t *testing.T) {
	r, err := New([]Spec{app("web"), app("cli"), app("api")}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ids := r.IDs()
	if want := []string{"api", "cli", "web"}; !slices.Equal(ids, want) {
		t.Fatalf("IDs = %q, want %q", ids, want)
	}
	ids[0] = "changed"
	if r.IDs()[0] != "api" {
		t.Fatal("IDs returns the registry's own slice")
	}
	if _, ok := r.Get("nope"); ok {
		t.Fatal("Get(unknown) found a client")
	}

	empty, err := New(nil, testDefaults(), env(nil))
	if err != nil || len(empty.IDs()) != 0 {
		t.Fatalf("New(nil) = %v, %v", empty, err)
	}
}

func TestAllows(t *testing.T) {
	r, err := New([]Spec{
		app("web"),
		with(app("cron"), func(s *Spec) { s.GrantTypes, s.Scopes, s.DefaultScopes = []string{GrantClientCredentials}, nil, nil }),
		with(app("api"), func(s *Spec) { s.GrantTypes, s.Introspect, s.Resources = nil, true, []string{"https://api"} }),
	}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id     string
		grants map[string]bool
		scopes map[string]bool
	}{
		{"web",
			map[string]bool{GrantPassword: true, GrantRefreshToken: true, GrantClientCredentials: false, "implicit": false, "": false},
			map[string]bool{"read": true, "write": true, "admin": false, "": false, "read write": false}},
		{"cron",
			map[string]bool{GrantPassword: false, GrantRefreshToken: false, GrantClientCredentials: true},
			map[string]bool{"read": false}},
		{"api",
			map[string]bool{GrantPassword: false, GrantRefreshToken: false, GrantClientCredentials: false},
			map[string]bool{"read": true}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			c, _ := r.Get(tt.id)
			for g, want := range tt.grants {
				if got := c.AllowsGrant(g); got != want {
					t.Errorf("AllowsGrant(%q) = %v, want %v", g, got, want)
				}
			}
			for s, want := range tt.scopes {
				if got := c.AllowsScope(s); got != want {
					t.Errorf("AllowsScope(%q) = %v, want %v", s, got, want)
				}
			}
		})
	}
}

func TestErrInvalidClientIs(t *testing.T) {
	r, err := New([]Spec{app("web")}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(t.Context(), "web", "wrong"); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("Authenticate(wrong) = %v, want ErrInvalidClient", err)
	}
}

// Package config loads Keyturn's configuration once, at the edge: a YAML
// file, then KEYTURN_* environment variables, then defaults, validated as a
// whole with every problem reported at once. Nothing below cmd reads a
// file, flag or environment variable for configuration.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
)

// DefaultFile is the file Load reads when given no path, if it exists.
const DefaultFile = "keyturn.yaml"

// Config is the whole configuration. Its YAML tags are the file's schema.
type Config struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414 §2).
	Issuer string `yaml:"issuer"`
	Listen string `yaml:"listen"`
	// AdminListen, if set, serves /metrics, /healthz and /readyz on a
	// listener of their own (and not on Listen).
	AdminListen string `yaml:"admin_listen"`
	// ShutdownTimeout is how long serve lets in-flight requests finish
	// after SIGTERM or SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DataDir holds generated key material and the default SQLite file.
	DataDir string `yaml:"data_dir"`
	// SecretFile holds the master secret (base64 of at least 32 random
	// bytes); empty means SecretPath's default. The caller generates it on
	// first start, not this package.
	SecretFile string `yaml:"secret_file"`
	// Secret is the master secret from KEYTURN_SECRET; never read from the
	// file, where it would sit next to everything else.
	Secret    Secret         `yaml:"-"`
	Database  Database       `yaml:"database"`
	Tokens    Tokens         `yaml:"tokens"`
	Keys      Keys           `yaml:"keys"`
	Log       Log            `yaml:"log"`
	Cleanup   Cleanup        `yaml:"cleanup"`
	Login     Login          `yaml:"login"`
	TLS       TLS            `yaml:"tls"`
	Authorize Authorize      `yaml:"authorize"`
	Pages     Pages          `yaml:"pages"`
	Clients   []clients.Spec `yaml:"clients"`
}

// Database says where Keyturn keeps its state.
type Database struct {
	// URL is sqlite://PATH, postgres://... or postgresql://...; empty
	// means SQLite under the data directory (see Config.DatabaseURL).
	URL          string `yaml:"url"`
	MaxOpenConns int    `yaml:"max_open_conns"`
	// Timeout is how long a request waits for the database before it
	// answers 503 (so an outage fails fast instead of piling requests up).
	Timeout time.Duration `yaml:"timeout"`
}

// LogValue logs the database settings with any password in the URL
// redacted.
func (d Database) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", RedactURL(d.URL)), slog.Int("max_open_conns", d.MaxOpenConns),
		slog.Duration("timeout", d.Timeout))
}

// Tokens are the server-wide token settings; each client may override
// them (clients.Spec). Together they set the trade-off of DESIGN.md §1: the
// access-token lifetime is how long an offline resource server keeps
// accepting a revoked session.
type Tokens struct {
	AccessTokenTTL     time.Duration `yaml:"access_token_ttl"`
	RefreshIdleTTL     time.Duration `yaml:"refresh_idle_ttl"`
	RefreshAbsoluteTTL time.Duration `yaml:"refresh_absolute_ttl"`
	RefreshReuseGrace  time.Duration `yaml:"refresh_reuse_grace"`
	// Audience is the default aud of access tokens; empty means [issuer].
	Audience []string `yaml:"audience"`
}

// Keys configures access-token signing keys.
type Keys struct {
	Algorithm string `yaml:"algorithm"`
	// RotationDelay is how long a rotated-in key is published in the JWKS
	// before it signs, so that resource servers caching the JWKS know it
	// by then.
	RotationDelay time.Duration `yaml:"rotation_delay"`
}

// Cleanup configures the sweeper that deletes expired state.
type Cleanup struct {
	// Interval between sweeps in `serve`; 0 turns the sweeper off (run
	// `keyturn cleanup` from cron instead).
	Interval time.Duration `yaml:"interval"`
	// RevokedRetention is how long a revoked session stays listed before
	// it is deleted. Sessions past their absolute expiry go at once.
	RevokedRetention time.Duration `yaml:"revoked_retention"`
	// BatchSize bounds each DELETE, so a sweep never holds long locks.
	BatchSize int `yaml:"batch_size"`
}

// Values of login.hash_processors.
const (
	HashProcessorsOwn    = "own"
	HashProcessorsShared = "shared"
)

// Login protects the password grant (RFC 6749 §4.3.2: brute force).
type Login struct {
	// MaxConcurrentHashes bounds argon2id checks at once per instance
	// (each holds ~19 MiB); 0 means the number of CPUs.
	MaxConcurrentHashes int `yaml:"max_concurrent_hashes"`
	// MaxQueuedHashes bounds logins waiting for a hash; beyond it the
	// server answers 503 with Retry-After. 0 means 8 per hash slot.
	MaxQueuedHashes int `yaml:"max_queued_hashes"`
	// HashProcessors is "own" (while hashes run, the process has one Go
	// processor more than its CPUs, which no hash can take, so that a
	// login flood leaves refreshes their latency) or "shared" (hashes share
	// the CPUs' processors with every request: refreshes wait behind
	// hashes during a flood). BENCHMARKS.md has both.
	HashProcessors string `yaml:"hash_processors"`
	// FreeFailures failed logins per (username, source address) cost
	// nothing; each further one doubles the wait from BaseDelay up to
	// MaxDelay (429 with Retry-After). Failures older than FailureWindow
	// are forgotten. Client authentication failures are counted the same
	// way per (client id, source address).
	FreeFailures  int           `yaml:"free_failures"`
	BaseDelay     time.Duration `yaml:"base_delay"`
	MaxDelay      time.Duration `yaml:"max_delay"`
	FailureWindow time.Duration `yaml:"failure_window"`
	// UserFailures is the bar per username over all source addresses,
	// except those the user logged in from within KnownAddressTTL (the
	// KnownAddresses most recent per user); AddressFailures is the bar
	// per source address over all usernames. Past a bar, the same
	// doubling delays.
	UserFailures    int           `yaml:"user_failures"`
	AddressFailures int           `yaml:"address_failures"`
	KnownAddressTTL time.Duration `yaml:"known_address_ttl"`
	KnownAddresses  int           `yaml:"known_addresses"`
	// TrustedProxies are CIDRs (or addresses) of proxies whose
	// X-Forwarded-For names the client's address; others are ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TrustedPrefixes parses TrustedProxies (validated by Validate).
func (l Login) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// TLS makes serve listen with TLS. Both files or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Authorize configures the authorization endpoint (RFC 6749 §4.1).
type Authorize struct {
	// CodeTTL is how long an authorization code may be redeemed: long
	// enough for a client to exchange it at once, short enough that a
	// leaked one is useless (RFC 6749 §4.1.2 recommends at most 10
	// minutes, which is the bound).
	CodeTTL time.Duration `yaml:"code_ttl"`
	// BrowserSessionTTL is how long a browser stays logged in to Keyturn
	// after a login on its pages, however active.
	BrowserSessionTTL time.Duration `yaml:"browser_session_ttl"`
}

// Bounds of the authorize settings.
const (
	MaxCodeTTL           = 10 * time.Minute
	MaxBrowserSessionTTL = 30 * 24 * time.Hour
)

// Pages configures the login and consent pages.
type Pages struct {
	// ProductName is the name the pages give the service.
	ProductName string `yaml:"product_name"`
	// LogoFile is an image (PNG, JPEG, GIF or WebP, at most MaxLogoSize
	// bytes) shown on the pages; Load reads it into Logo. Keyturn serves it
	// from its own origin, so the pages load nothing from elsewhere.
	LogoFile string `yaml:"logo_file"`
	// Logo is LogoFile's content, read by Load; nil without a logo.
	Logo []byte `yaml:"-"`
}

// Bounds of the page settings.
const (
	MaxProductNameLen = 60
	MaxLogoSize       = 256 << 10
)

// logoTypes are the content types a logo may have, as
// http.DetectContentType sniffs them: images every browser shows and none
// that can hold a script (no SVG).
var logoTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp"}

// Log configures the server's log.
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// Secret is a string that never prints: fmt, slog and text or JSON
// encoding all show "[redacted]". Use string(s) for the value.
type Secret string

const redacted = "[redacted]"

// Format prints "[redacted]" whatever the verb: without it, fmt would
// print the value for a verb such as %d, which bypasses String.
func (Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), redacted)
}

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]".
func (Secret) GoString() string { return redacted }

// LogValue returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]", so that encoding a Config (as JSON, for
// instance) does not reveal the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	logFormats = []string{"text", "json"}
	logLevels  = []string{"debug", "info", "warn", "error"}
)

// Default returns the configuration used when nothing is set: enough for
// `go run ./cmd/keyturn` to serve on localhost with SQLite under ./data.
func Default() Config {
	c := defaults()
	c.fillDerived()
	return c
}

// defaults are the defaults that do not depend on other settings.
func defaults() Config {
	return Config{
		Issuer:          "http://127.0.0.1:8080",
		Listen:          "127.0.0.1:8080",
		ShutdownTimeout: 15 * time.Second,
		DataDir:         "./data",
		Database:        Database{MaxOpenConns: 16, Timeout: 5 * time.Second},
		Tokens: Tokens{
			AccessTokenTTL:     15 * time.Minute,
			RefreshIdleTTL:     120 * time.Hour,
			RefreshAbsoluteTTL: 720 * time.Hour,
		},
		Keys:    Keys{Algorithm: keys.AlgES256, RotationDelay: time.Hour},
		Log:     Log{Format: "text", Level: "info"},
		Cleanup: Cleanup{Interval: 10 * time.Minute, RevokedRetention: 7 * 24 * time.Hour, BatchSize: 500},
		Login: Login{
			HashProcessors: HashProcessorsOwn,
			FreeFailures:   5, BaseDelay: time.Second, MaxDelay: 15 * time.Minute, FailureWindow: time.Hour,
			UserFailures: 50, AddressFailures: 100, KnownAddressTTL: 30 * 24 * time.Hour, KnownAddresses: 10,
		},
		Authorize: Authorize{CodeTTL: time.Minute, BrowserSessionTTL: 12 * time.Hour},
		Pages:     Pages{ProductName: "Keyturn"},
	}
}

// fillDerived fills the defaults that follow other settings.
func (c *Config) fillDerived() {
	if len(c.Tokens.Audience) == 0 {
		c.Tokens.Audience = []string{c.Issuer}
	}
}

// envVars are the environment overrides, applied after the file:
//
//	KEYTURN_ISSUER                issuer
//	KEYTURN_LISTEN                listen
//	KEYTURN_ADMIN_LISTEN          admin_listen
//	KEYTURN_DATA_DIR              data_dir
//	KEYTURN_DATABASE_URL          database.url
//	KEYTURN_SECRET                the master secret (environment only)
//	KEYTURN_SECRET_FILE           secret_file
//	KEYTURN_ACCESS_TOKEN_TTL      tokens.access_token_ttl
//	KEYTURN_REFRESH_IDLE_TTL      tokens.refresh_idle_ttl
//	KEYTURN_REFRESH_ABSOLUTE_TTL  tokens.refresh_absolute_ttl
//	KEYTURN_REFRESH_REUSE_GRACE   tokens.refresh_reuse_grace
//	KEYTURN_KEYS_ALGORITHM        keys.algorithm
//	KEYTURN_TLS_CERT_FILE         tls.cert_file
//	KEYTURN_TLS_KEY_FILE          tls.key_file
//	KEYTURN_LOG_FORMAT            log.format
//	KEYTURN_LOG_LEVEL             log.level
//
// Durations are Go durations ("15m", "720h"). A variable set to the empty
// string counts as unset, so `KEYTURN_ISSUER=` in a compose file does not
// blank the issuer.
var envVars = []struct {
	name, key string
	set       func(c *Config, v string) error
}{
	{"KEYTURN_ISSUER", "issuer", func(c *Config, v string) error { c.Issuer = v; return nil }},
	{"KEYTURN_LISTEN", "listen", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"KEYTURN_ADMIN_LISTEN", "admin_listen", func(c *Config, v string) error { c.AdminListen = v; return nil }},
	{"KEYTURN_DATA_DIR", "data_dir", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"KEYTURN_DATABASE_URL", "database.url", func(c *Config, v string) error { c.Database.URL = v; return nil }},
	{"KEYTURN_SECRET", "KEYTURN_SECRET", func(c *Config, v string) error { c.Secret = Secret(v); return nil }},
	{"KEYTURN_SECRET_FILE", "secret_file", func(c *Config, v string) error { c.SecretFile = v; return nil }},
	{"KEYTURN_ACCESS_TOKEN_TTL", "tokens.access_token_ttl", durationVar(func(c *Config) *time.Duration { return &c.Tokens.AccessTokenTTL })},
	{"KEYTURN_REFRESH_IDLE_TTL", "tokens.refresh_idle_ttl", durationVar(func(c *Config) *time.Duration { return &c.Tokens.RefreshIdleTTL })},
	{"KEYTURN_REFRESH_ABSOLUTE_TTL", "tokens.refresh_absolute_ttl", durationVar(func(c *Config) *time.Duration { return &c.Tokens.RefreshAbsoluteTTL })},
	{"KEYTURN_REFRESH_REUSE_GRACE", "tokens.refresh_reuse_grace", durationVar(func(c *Config) *time.Duration { return &c.Tokens.RefreshReuseGrace })},
	{"KEYTURN_KEYS_ALGORITHM", "keys.algorithm", func(c *Config, v string) error { c.Keys.Algorithm = v; return nil }},
	{"KEYTURN_TLS_CERT_FILE", "tls.cert_file", func(c *Config, v string) error { c.TLS.CertFile = v; return nil }},
	{"KEYTURN_TLS_KEY_FILE", "tls.key_file", func(c *Config, v string) error { c.TLS.KeyFile = v; return nil }},
	{"KEYTURN_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"KEYTURN_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
}

func durationVar(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 15m or 720h", v)
		}
		*field(c) = d
		return nil
	}
}

// Load reads the YAML file at path, applies the KEYTURN_* environment
// overrides found through lookupEnv (os.LookupEnv in production), fills
// the defaults and validates the result. With path "", it reads
// ./keyturn.yaml if that exists and otherwise runs on defaults and
// environment alone; a path that is given must exist.
//
// Unknown keys are errors: a misspelt key silently left at its default is
// how a 15-minute token becomes a 720-hour one. Every problem is reported
// at once, each naming its key path (and line, or environment variable).
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	c := defaults()
	var errs []error

	data, name, err := readFile(path)
	if err != nil {
		return Config{}, err
	}
	// undecoded holds the key paths whose values could not be decoded: they
	// hold a default or zero, and are not validated again.
	var undecoded map[string]bool
	if data != nil {
		var derrs []error
		derrs, undecoded, err = decode(data, name, &c)
		if err != nil {
			return Config{}, err
		}
		errs = append(errs, derrs...)
	}

	fromEnv := make(map[string]string) // key path -> variable
	for _, v := range envVars {
		val, ok := lookupEnv(v.name)
		if !ok || val == "" {
			continue
		}
		if err := v.set(&c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
			continue
		}
		fromEnv[v.key] = v.name
	}

	c.fillDerived()
	unread := false // the logo file could not be read: said once
	if c.Pages.LogoFile != "" {
		var err error
		if c.Pages.Logo, err = readLogo(c.Pages.LogoFile); err != nil {
			errs = append(errs, problem{"pages.logo_file", err.Error()})
			unread = true
		}
	}
	for _, p := range c.problems() {
		if undecoded[p.key] || unread && p.key == "pages.logo_file" {
			continue
		}
		if name, ok := fromEnv[p.key]; ok && name != p.key {
			p.key += " (" + name + ")"
		}
		errs = append(errs, p)
	}
	for _, err := range flatten(clients.Validate(c.Clients)) {
		if key, _, _ := strings.Cut(err.Error(), ": "); !undecoded[key] {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// readFile returns the config file's contents and the name to report it
// by, or nil data when path is "" and there is no default file.
func readFile(path string) ([]byte, string, error) {
	if path == "" {
		data, err := os.ReadFile(DefaultFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("load config: %w", err)
		}
		return data, DefaultFile, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("load config: %w", err)
	}
	return data, path, nil
}

// flatten returns the errors an errors.Join result holds.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// problem is one invalid setting.
type problem struct{ key, msg string }

func (p problem) Error() string { return p.key + ": " + p.msg }

// Validate checks the configuration and reports every problem at once,
// each prefixed with its key path.
func (c Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, p)
	}
	errs = append(errs, flatten(clients.Validate(c.Clients))...)
	return errors.Join(errs...)
}

// problems returns every invalid setting, section by section.
func (c Config) problems() []problem {
	var ps problemList
	c.serverProblems(&ps)
	c.Database.problems(&ps)
	c.Tokens.problems(&ps)
	c.Keys.problems(&ps)
	c.Login.problems(&ps)
	c.TLS.problems(&ps)
	c.Authorize.problems(&ps)
	c.Pages.problems(&ps)
	c.Cleanup.problems(&ps)
	c.Log.problems(&ps)
	return ps
}

// problemList collects problems.
type problemList []problem

func (ps *problemList) add(key, format string, args ...any) {
	*ps = append(*ps, problem{key, fmt.Sprintf(format, args...)})
}

// serverProblems checks the listeners, the data directory and the master secret.
func (c Config) serverProblems(ps *problemList) {
	if msg := checkIssuer(c.Issuer); msg != "" {
		ps.add("issuer", "%s", msg)
	}
	if msg := checkListen(c.Listen); msg != "" {
		ps.add("listen", "%s", msg)
	}
	if c.AdminListen != "" {
		if msg := checkListen(c.AdminListen); msg != "" {
			ps.add("admin_listen", "%s", msg)
		} else if c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			ps.add("admin_listen", "%q is also listen", c.AdminListen)
		}
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 10*time.Minute {
		ps.add("shutdown_timeout", "%s not in (0, 10m]", clients.FormatDuration(c.ShutdownTimeout))
	}
	if c.DataDir == "" {
		ps.add("data_dir", "required")
	}
	if c.Secret != "" {
		if _, err := DecodeSecret([]byte(c.Secret)); err != nil {
			ps.add("KEYTURN_SECRET", "%v", err)
		}
	}
}

// problems checks the database URL, pool and timeout.
func (d Database) problems(ps *problemList) {
	if msg := checkDatabaseURL(d.URL); msg != "" {
		ps.add("database.url", "%s", msg)
	}
	if d.MaxOpenConns < 1 {
		ps.add("database.max_open_conns", "%d must be at least 1", d.MaxOpenConns)
	}
	if d.Timeout <= 0 || d.Timeout > time.Minute {
		ps.add("database.timeout", "%s not in (0, 1m]", clients.FormatDuration(d.Timeout))
	}
}

// problems checks the token lifetimes and audience.
func (t Tokens) problems(ps *problemList) {
	if t.AccessTokenTTL <= 0 || t.AccessTokenTTL > clients.MaxAccessTokenTTL {
		ps.add("tokens.access_token_ttl", "%s not in (0, %s]", clients.FormatDuration(t.AccessTokenTTL), clients.FormatDuration(clients.MaxAccessTokenTTL))
	}
	if t.RefreshIdleTTL <= 0 {
		ps.add("tokens.refresh_idle_ttl", "%s must be positive", clients.FormatDuration(t.RefreshIdleTTL))
	}
	if t.RefreshAbsoluteTTL < t.RefreshIdleTTL {
		ps.add("tokens.refresh_absolute_ttl", "%s is less than refresh_idle_ttl %s", clients.FormatDuration(t.RefreshAbsoluteTTL), clients.FormatDuration(t.RefreshIdleTTL))
	} else if t.RefreshAbsoluteTTL <= 0 {
		ps.add("tokens.refresh_absolute_ttl", "%s must be positive", clients.FormatDuration(t.RefreshAbsoluteTTL))
	}
	if t.RefreshReuseGrace < 0 || t.RefreshReuseGrace > clients.MaxRefreshReuseGrace {
		ps.add("tokens.refresh_reuse_grace", "%s not in [0, %s]", clients.FormatDuration(t.RefreshReuseGrace), clients.FormatDuration(clients.MaxRefreshReuseGrace))
	}
	for i, a := range t.Audience {
		if a == "" {
			ps.add(fmt.Sprintf("tokens.audience[%d]", i), "empty")
		}
	}
}

// problems checks the signing algorithm and rotation delay.
func (k Keys) problems(ps *problemList) {
	if !slices.Contains(keys.Algorithms(), k.Algorithm) {
		ps.add("keys.algorithm", "unknown algorithm %q (want %s)", k.Algorithm, strings.Join(keys.Algorithms(), ", "))
	}
	if k.RotationDelay < keys.MinRotationDelay {
		ps.add("keys.rotation_delay", "%s is less than %s: a new key must reach every cached JWKS before it signs",
			clients.FormatDuration(k.RotationDelay), clients.FormatDuration(keys.MinRotationDelay))
	}
}

// problems checks the hashing budget, throttling and trusted proxies.
func (l Login) problems(ps *problemList) {
	if l.MaxConcurrentHashes < 0 {
		ps.add("login.max_concurrent_hashes", "%d must not be negative", l.MaxConcurrentHashes)
	}
	if l.MaxQueuedHashes < 0 {
		ps.add("login.max_queued_hashes", "%d must not be negative", l.MaxQueuedHashes)
	}
	if l.HashProcessors != HashProcessorsOwn && l.HashProcessors != HashProcessorsShared {
		ps.add("login.hash_processors", "%q: want %q or %q", l.HashProcessors, HashProcessorsOwn, HashProcessorsShared)
	}
	if l.FreeFailures < 1 {
		ps.add("login.free_failures", "%d must be at least 1", l.FreeFailures)
	}
	if l.BaseDelay <= 0 {
		ps.add("login.base_delay", "%s must be positive", clients.FormatDuration(l.BaseDelay))
	}
	if l.MaxDelay < l.BaseDelay {
		ps.add("login.max_delay", "%s is less than base_delay %s", clients.FormatDuration(l.MaxDelay), clients.FormatDuration(l.BaseDelay))
	}
	if l.FailureWindow <= 0 {
		ps.add("login.failure_window", "%s must be positive", clients.FormatDuration(l.FailureWindow))
	}
	if l.UserFailures < l.FreeFailures {
		ps.add("login.user_failures", "%d is less than free_failures %d", l.UserFailures, l.FreeFailures)
	}
	if l.AddressFailures < l.FreeFailures {
		ps.add("login.address_failures", "%d is less than free_failures %d", l.AddressFailures, l.FreeFailures)
	}
	if l.KnownAddressTTL <= 0 {
		ps.add("login.known_address_ttl", "%s must be positive", clients.FormatDuration(l.KnownAddressTTL))
	}
	if l.KnownAddresses < 1 || l.KnownAddresses > 1000 {
		ps.add("login.known_addresses", "%d not in [1, 1000]", l.KnownAddresses)
	}
	for i, p := range l.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			ps.add(fmt.Sprintf("login.trusted_proxies[%d]", i), "%q is not an address or CIDR", p)
		}
	}
}

// problems checks that certificate and key come together.
func (t TLS) problems(ps *problemList) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		ps.add("tls", "cert_file and key_file go together")
	}
}

// problems checks the code and browser session lifetimes.
func (a Authorize) problems(ps *problemList) {
	if a.CodeTTL <= 0 || a.CodeTTL > MaxCodeTTL {
		ps.add("authorize.code_ttl", "%s not in (0, %s]", clients.FormatDuration(a.CodeTTL), clients.FormatDuration(MaxCodeTTL))
	}
	if a.BrowserSessionTTL <= 0 || a.BrowserSessionTTL > MaxBrowserSessionTTL {
		ps.add("authorize.browser_session_ttl", "%s not in (0, %s]", clients.FormatDuration(a.BrowserSessionTTL), clients.FormatDuration(MaxBrowserSessionTTL))
	}
}

// problems checks the product name and the logo Load read.
func (p Pages) problems(ps *problemList) {
	switch {
	case p.ProductName == "" || strings.TrimSpace(p.ProductName) == "":
		ps.add("pages.product_name", "required")
	case !utf8.ValidString(p.ProductName):
		ps.add("pages.product_name", "not valid UTF-8")
	case utf8.RuneCountInString(p.ProductName) > MaxProductNameLen:
		ps.add("pages.product_name", "%d characters, more than %d", utf8.RuneCountInString(p.ProductName), MaxProductNameLen)
	default:
		for _, r := range p.ProductName {
			if !unicode.IsPrint(r) {
				ps.add("pages.product_name", "%q has a character that is not printable (%U)", p.ProductName, r)
				break
			}
		}
	}
	switch {
	case p.LogoFile != "" && p.Logo == nil:
		ps.add("pages.logo_file", "not read: Load reads it")
	case p.Logo == nil:
	case len(p.Logo) > MaxLogoSize:
		ps.add("pages.logo_file", "larger than %d KiB", MaxLogoSize>>10)
	case !slices.Contains(logoTypes, http.DetectContentType(p.Logo)):
		ps.add("pages.logo_file", "%s is not a PNG, JPEG, GIF or WebP image", http.DetectContentType(p.Logo))
	}
}

// readLogo reads a logo file, at most one byte more than MaxLogoSize
// (Pages.problems refuses a larger one), so a wrong path to a huge file or
// a device costs no memory.
func readLogo(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxLogoSize+1)) // its errors name the path
}

// problems checks the sweeper's schedule and batch.
func (c Cleanup) problems(ps *problemList) {
	if c.Interval < 0 {
		ps.add("cleanup.interval", "%s must not be negative", clients.FormatDuration(c.Interval))
	}
	if c.RevokedRetention < 0 {
		ps.add("cleanup.revoked_retention", "%s must not be negative", clients.FormatDuration(c.RevokedRetention))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		ps.add("cleanup.batch_size", "%d not in [1, 100000]", c.BatchSize)
	}
}

// problems checks the log format and level.
func (l Log) problems(ps *problemList) {
	if !slices.Contains(logFormats, l.Format) {
		ps.add("log.format", "unknown format %q (want %s)", l.Format, strings.Join(logFormats, ", "))
	}
	if !slices.Contains(logLevels, l.Level) {
		ps.add("log.level", "unknown level %q (want %s)", l.Level, strings.Join(logLevels, ", "))
	}
}

// checkIssuer applies RFC 8414 §2: an issuer is a URL with a host and
// no query or fragment. It must be https, since passwords and tokens cross
// that connection; plain http is allowed only on loopback, for local
// development. It has no path (the endpoints and the metadata's
// well-known location are served at the root) and no trailing slash, so
// issuer + "/oauth2/token" is the token endpoint.
func checkIssuer(issuer string) string {
	if issuer == "" {
		return "required"
	}
	u, err := url.Parse(issuer)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL", issuer)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Sprintf("%q is not an absolute http or https URL", issuer)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host", issuer)
	case u.User != nil:
		return fmt.Sprintf("%q has user information", issuer)
	case strings.ContainsAny(issuer, "?#"):
		return fmt.Sprintf("%q has a query or fragment (RFC 8414 §2)", issuer)
	case u.Path != "" || u.RawPath != "":
		return fmt.Sprintf("%q has a path: Keyturn serves at the root of its host (no trailing slash either)", issuer)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Sprintf("%q is plain http: use https (http only on loopback, for development)", issuer)
	}
	return ""
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func checkListen(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", listen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q has an invalid port", listen)
	}
	return ""
}

// checkDatabaseURL checks u ("" is allowed: SQLite under data_dir) and
// never quotes its password.
func checkDatabaseURL(u string) string {
	if u == "" {
		return ""
	}
	if strings.HasPrefix(u, "sqlite:") { // a file path, not necessarily a valid URL
		if path, ok := strings.CutPrefix(u, "sqlite://"); !ok || path == "" {
			return "want sqlite://PATH, as in sqlite://data/keyturn.db"
		}
		return ""
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return "not a URL"
	case p.Scheme == "postgres" || p.Scheme == "postgresql":
		if p.Opaque != "" {
			return fmt.Sprintf("want %s://user:password@host/dbname", p.Scheme)
		}
	case p.Scheme == "":
		return "no scheme: want sqlite://, postgres:// or postgresql://"
	default:
		return fmt.Sprintf("unsupported scheme %q: want sqlite, postgres or postgresql", p.Scheme)
	}
	return ""
}

// RedactURL returns u with its password replaced by "xxxxx", both in the
// user information and in the password and sslpassword query parameters
// that PostgreSQL also accepts. A value that cannot be parsed as a URL
// with a scheme comes back as "xxxxx" whole: a key=value connection string
// may hold a password anywhere.
func RedactURL(u string) string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return "xxxxx"
	}
	if p.RawQuery != "" {
		parts := strings.Split(p.RawQuery, "&")
		for i, part := range parts {
			k, _, _ := strings.Cut(part, "=")
			if k, err := url.QueryUnescape(k); err == nil && (k == "password" || k == "sslpassword") {
				parts[i] = k + "=xxxxx"
			}
		}
		p.RawQuery = strings.Join(parts, "&")
	}
	return p.Redacted()
}

// DatabaseURL returns database.url, or the SQLite file under the data
// directory when it is empty.
func (c Config) DatabaseURL() string {
	if c.Database.URL != "" {
		return c.Database.URL
	}
	return "sqlite://" + filepath.Join(c.DataDir, "keyturn.db")
}

// SecretPath returns secret_file, or secret.key under the data directory
// when it is empty.
func (c Config) SecretPath() string {
	if c.SecretFile != "" {
		return c.SecretFile
	}
	return filepath.Join(c.DataDir, "secret.key")
}

// ClientDefaults returns the token settings clients inherit.
func (c Config) ClientDefaults() clients.Defaults {
	aud := slices.Clone(c.Tokens.Audience)
	if len(aud) == 0 {
		aud = []string{c.Issuer}
	}
	return clients.Defaults{
		AccessTokenTTL:     c.Tokens.AccessTokenTTL,
		RefreshIdleTTL:     c.Tokens.RefreshIdleTTL,
		RefreshAbsoluteTTL: c.Tokens.RefreshAbsoluteTTL,
		RefreshReuseGrace:  c.Tokens.RefreshReuseGrace,
		Audience:           aud,
	}
}

// DecodeSecret decodes a master secret (KEYTURN_SECRET or the secret
// file): base64 (standard or URL alphabet, padded or not) of at least
// keys.MinSecretLen random bytes. Surrounding whitespace is ignored. A
// passphrase is refused however long it is: the keys derived from the
// secret are only as strong as it is, and a chosen phrase holds far fewer
// than 256 bits. The error never contains the value.
func DecodeSecret(raw []byte) ([]byte, error) {
	s := strings.TrimSpace(string(raw))
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) < keys.MinSecretLen {
				return nil, fmt.Errorf("too short: need at least %d random bytes, base64-encoded (make one with `openssl rand -base64 32`); this is base64 of %d", keys.MinSecretLen, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64: need at least %d random bytes, base64-encoded (make one with `openssl rand -base64 32`); a passphrase is not accepted", keys.MinSecretLen)
}

// Package clients is the registry of OAuth 2.0 clients that admins declare
// in the config file. It validates every declaration up front, resolves
// per-client token settings against the server-wide defaults, and
// authenticates confidential clients without paying for a slow password
// hash on every request (see secret.go). The registry is read-only once
// built: the token endpoint never asks the database about a client.
package clients

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keyturn/keyturn/storage/passhash"
)

// Grant type names (RFC 6749 §4.3, §6 and §4.4).
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Bounds on token settings, shared with config so that a server-wide
// default and a per-client override obey the same limits. Access tokens
// are checked offline, so their lifetime is the time it takes to cut off a
// session; an hour is the most we let that grow. The reuse grace only has
// to cover a retried request, not a session.
const (
	MaxAccessTokenTTL    = time.Hour
	MaxRefreshReuseGrace = time.Minute
)

// ErrInvalidClient is returned by Authenticate for every failure a caller
// may reveal to the client: unknown id, public client or wrong secret. The
// token endpoint answers all of them with invalid_client (RFC 6749 §5.2).
var ErrInvalidClient = errors.New("invalid client credentials")

// Spec is one client as declared in the config file; its YAML tags are the
// schema of an entry under `clients:`.
//
// A spec carries no plaintext secret when it is valid: SecretHash is a
// hash and SecretEnv names the variable that holds the secret. Because a
// spec can be printed before it is validated (with a secret pasted into
// secret_hash by mistake), Format and LogValue redact SecretHash.
type Spec struct {
	ID string `yaml:"id"`
	// SecretHash is "sha256:<base64url, no padding, of SHA-256(secret)>"
	// for a generated high-entropy secret (see Generate), or an argon2id
	// PHC string for a human-chosen one (see HashSecret).
	SecretHash string `yaml:"secret_hash"`
	// SecretEnv names an environment variable that holds the plaintext
	// secret. It is read once, by New, and only its SHA-256 is kept.
	SecretEnv  string   `yaml:"secret_env"`
	Public     bool     `yaml:"public"`
	GrantTypes []string `yaml:"grant_types"`
	Scopes     []string `yaml:"scopes"`
	// DefaultScopes are granted when a request names no scope
	// (RFC 6749 §3.3); they must be a subset of Scopes.
	DefaultScopes []string `yaml:"default_scopes"`
	Audience      []string `yaml:"audience"`
	// Introspect lets the client call the introspection endpoint: it is a
	// resource server that wants the live answer (RFC 7662).
	Introspect bool `yaml:"introspect"`
	// Resources are the audiences an introspecting client serves: it learns
	// about access tokens for them only, and every other token is inactive
	// to it (RFC 7662 §4). Required with introspect: true.
	Resources []string `yaml:"resources"`

	// Per-client overrides of the server-wide token defaults; nil inherits.
	AccessTokenTTL     *time.Duration `yaml:"access_token_ttl"`
	RefreshIdleTTL     *time.Duration `yaml:"refresh_idle_ttl"`
	RefreshAbsoluteTTL *time.Duration `yaml:"refresh_absolute_ttl"`
	RefreshReuseGrace  *time.Duration `yaml:"refresh_reuse_grace"`
}

const redacted = "[redacted]"

// Format prints the spec as fmt would, with SecretHash redacted.
func (s Spec) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.redacted())
}

// LogValue logs the spec with SecretHash redacted.
func (s Spec) LogValue() slog.Value { return slog.AnyValue(s.redacted()) }

// spec has Spec's fields and none of its methods, so fmt prints it
// field by field.
type spec Spec

func (s Spec) redacted() spec {
	v := spec(s)
	if v.SecretHash != "" {
		v.SecretHash = redacted
	}
	return v
}

// Defaults are the server-wide token settings a client inherits.
type Defaults struct {
	AccessTokenTTL     time.Duration
	RefreshIdleTTL     time.Duration
	RefreshAbsoluteTTL time.Duration
	RefreshReuseGrace  time.Duration
	Audience           []string
}

// Client is a client with the defaults applied. It is shared by every
// request and must not be modified. It holds no secret, and prints none of
// the hashes or digests it checks secrets against.
type Client struct {
	ID         string
	Public     bool
	Introspect bool
	Scopes     []string
	// DefaultScopes are granted when a request names no scope.
	DefaultScopes []string
	// Audience is the spec's audience, else Defaults.Audience.
	Audience []string
	// Resources are the audiences an introspecting client serves.
	Resources []string

	AccessTokenTTL     time.Duration
	RefreshIdleTTL     time.Duration
	RefreshAbsoluteTTL time.Duration
	RefreshReuseGrace  time.Duration

	grants grantSet
	scopes map[string]struct{}
	// checkSecret is the verifier's verify method, nil for a public client.
	// A func value, unlike a pointer, prints as an address under every fmt
	// verb, so no rendering of a Client reaches its hashes or digests.
	checkSecret func(secret string, presented [sha256.Size]byte, verifyHash func(encoded, secret string) (bool, error)) (bool, error)
}

// AllowsGrant reports whether the client may use grantType.
func (c *Client) AllowsGrant(grantType string) bool {
	g, ok := grantBits[grantType]
	return ok && c.grants&g != 0
}

// ServesAudience reports whether an introspecting client serves aud.
func (c *Client) ServesAudience(aud string) bool { return slices.Contains(c.Resources, aud) }

// AllowsScope reports whether the client may be granted scope.
func (c *Client) AllowsScope(scope string) bool {
	_, ok := c.scopes[scope]
	return ok
}

type grantSet uint8

var grantBits = map[string]grantSet{
	GrantPassword:          1 << 0,
	GrantRefreshToken:      1 << 1,
	GrantClientCredentials: 1 << 2,
}

// Registry holds the clients declared in the config file. It is read-only
// after New and safe for concurrent use.
type Registry struct {
	clients map[string]*Client
	ids     []string
	// dummy is what Authenticate compares against for an unknown or
	// public client, so that it costs the same as a wrong secret.
	dummy [sha256.Size]byte
	// verifyHash checks an argon2id secret hash: passhash.Verify, bounded
	// by slowSlots (see boundedVerify); swapped in tests to count how often
	// the slow path runs.
	verifyHash func(encoded, secret string) (bool, error)
	// slowSlots bounds argon2id secret checks running at once: client ids
	// are public, and each wrong guess would otherwise cost ~19 MiB.
	slowSlots chan struct{}
}

// ErrBusy: too many slow (argon2id) secret checks are running; the caller
// should answer 503 and let the client retry.
var ErrBusy = errors.New("client authentication busy")

// boundedVerify runs passhash.Verify in a slot, or refuses at once with
// ErrBusy when every slot is taken.
func (r *Registry) boundedVerify(encoded, secret string) (bool, error) {
	select {
	case r.slowSlots <- struct{}{}:
		defer func() { <-r.slowSlots }()
		return passhash.Verify(encoded, secret)
	default:
		return false, ErrBusy
	}
}

// New validates specs and builds the registry. lookupEnv (os.LookupEnv in
// production) resolves secret_env references; each variable is read once,
// here. Every problem is reported at once, as Validate does, including an
// unset or empty secret_env variable, a resolved refresh_idle_ttl above the
// resolved refresh_absolute_ttl, a client left without an audience, and
// defaults outside the bounds Validate applies to overrides.
func New(specs []Spec, d Defaults, lookupEnv func(string) (string, bool)) (*Registry, error) {
	errs := validate(specs)
	errs = append(errs, validateDefaults(d)...)
	r := &Registry{
		clients:   make(map[string]*Client, len(specs)),
		slowSlots: make(chan struct{}, passhash.CPUs()),
	}
	r.verifyHash = r.boundedVerify
	for i, s := range specs {
		c, cerrs := resolve(s, d, lookupEnv, fmt.Sprintf("clients[%d]", i))
		errs = append(errs, cerrs...)
		r.clients[c.ID] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for id := range r.clients {
		r.ids = append(r.ids, id)
	}
	slices.Sort(r.ids)
	return r, nil
}

// resolve builds the client for a spec that validate has checked, and
// reports the problems only visible with the defaults and environment.
func resolve(s Spec, d Defaults, lookupEnv func(string) (string, bool), at string) (*Client, []error) {
	var errs []error
	c := &Client{
		ID:                 s.ID,
		Public:             s.Public,
		Introspect:         s.Introspect,
		Scopes:             slices.Clone(s.Scopes),
		DefaultScopes:      slices.Clone(s.DefaultScopes),
		Audience:           slices.Clone(s.Audience),
		Resources:          slices.Clone(s.Resources),
		AccessTokenTTL:     inherit(s.AccessTokenTTL, d.AccessTokenTTL),
		RefreshIdleTTL:     inherit(s.RefreshIdleTTL, d.RefreshIdleTTL),
		RefreshAbsoluteTTL: inherit(s.RefreshAbsoluteTTL, d.RefreshAbsoluteTTL),
		RefreshReuseGrace:  inherit(s.RefreshReuseGrace, d.RefreshReuseGrace),
		scopes:             make(map[string]struct{}, len(s.Scopes)),
	}
	if len(c.Audience) == 0 {
		c.Audience = slices.Clone(d.Audience)
	}
	if len(c.Audience) == 0 {
		errs = append(errs, fmt.Errorf("%s.audience: required: no default audience to inherit", at))
	}
	for _, g := range s.GrantTypes {
		c.grants |= grantBits[g]
	}
	for _, sc := range s.Scopes {
		c.scopes[sc] = struct{}{}
	}
	// Compare when exactly one is overridden: validate compares two
	// overrides, validateDefaults two defaults, and neither repeats a
	// non-positive value.
	if (s.RefreshIdleTTL == nil) != (s.RefreshAbsoluteTTL == nil) &&
		c.RefreshAbsoluteTTL > 0 && c.RefreshIdleTTL > c.RefreshAbsoluteTTL {
		errs = append(errs, fmt.Errorf("%s.refresh_idle_ttl: %s exceeds refresh_absolute_ttl %s",
			at, FormatDuration(c.RefreshIdleTTL), FormatDuration(c.RefreshAbsoluteTTL)))
	}
	switch {
	case s.Public:
	case s.SecretHash != "" && s.SecretEnv == "":
		v, err := newHashVerifier(s.SecretHash)
		if err == nil {
			c.checkSecret = v.verify
		} // else validate has reported it
	case s.SecretEnv != "" && s.SecretHash == "" && validEnvName(s.SecretEnv):
		secret, ok := lookupEnv(s.SecretEnv)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s.secret_env: environment variable %s is not set", at, s.SecretEnv))
		case secret == "":
			errs = append(errs, fmt.Errorf("%s.secret_env: environment variable %s is empty", at, s.SecretEnv))
		default:
			c.checkSecret = newDigestVerifier(sha256.Sum256([]byte(secret))).verify
		}
	}
	return c, errs
}

func inherit(override *time.Duration, def time.Duration) time.Duration {
	if override != nil {
		return *override
	}
	return def
}

// Get returns the client with the given id.
func (r *Registry) Get(id string) (*Client, bool) {
	c, ok := r.clients[id]
	return c, ok
}

// IDs returns the ids of all clients, sorted.
func (r *Registry) IDs() []string { return slices.Clone(r.ids) }

// Authenticate checks a confidential client's secret (RFC 6749 §2.3.1).
// It returns ErrInvalidClient for an unknown id, a public client or a
// wrong secret, and any other error only for a broken secret hash.
//
// An unknown id costs the same as a wrong secret for a sha256 or
// secret_env client: the presented secret is hashed and compared against
// a dummy digest. A wrong secret for an argon2id client costs an argon2id
// hash, which an unknown id does not; client ids are not secrets
// (RFC 6749 §2.2), and hashing for unknown ids would only hand attackers
// a cheap way to burn CPU.
func (r *Registry) Authenticate(id, secret string) (*Client, error) {
	presented := sha256.Sum256([]byte(secret))
	c, ok := r.clients[id]
	if !ok || c.checkSecret == nil {
		subtle.ConstantTimeCompare(presented[:], r.dummy[:])
		return nil, ErrInvalidClient
	}
	ok, err := c.checkSecret(secret, presented, r.verifyHash)
	if err != nil { // ErrBusy stays visible to errors.Is
		return nil, fmt.Errorf("authenticate client %q: %w", id, err)
	}
	if !ok {
		return nil, ErrInvalidClient
	}
	return c, nil
}

// Validate checks specs without reading the environment and reports every
// problem at once, each prefixed with its key path, such as
// `clients[2].grant_types[0]: unknown grant type "implicit"`.
func Validate(specs []Spec) error { return errors.Join(validate(specs)...) }

func validate(specs []Spec) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	first := make(map[string]int, len(specs))
	for i, s := range specs {
		at := fmt.Sprintf("clients[%d]", i)

		switch j, dup := first[s.ID]; {
		case s.ID == "":
			add("%s.id: required", at)
		case dup:
			add("%s.id: duplicate of clients[%d]", at, j)
		default:
			first[s.ID] = i
			if !validID(s.ID) {
				add("%s.id: %q has a character outside printable ASCII, or a space or ':' (RFC 6749 appendix A.1; ':' would break HTTP Basic authentication)", at, s.ID)
			}
		}

		// A resource server that only introspects needs no grant.
		if len(s.GrantTypes) == 0 && !s.Introspect {
			add("%s.grant_types: at least one of password, refresh_token, client_credentials is required", at)
		}
		grants := make(map[string]int, len(s.GrantTypes))
		for j, g := range s.GrantTypes {
			gat := fmt.Sprintf("%s.grant_types[%d]", at, j)
			if k, dup := grants[g]; dup {
				add("%s: duplicate of grant_types[%d]", gat, k)
				continue
			}
			grants[g] = j
			if _, ok := grantBits[g]; !ok {
				add("%s: unknown grant type %q (want password, refresh_token or client_credentials)", gat, g)
			}
			if g == GrantClientCredentials && s.Public {
				add("%s: client_credentials needs a confidential client (RFC 6749 §4.4)", gat)
			}
		}
		if _, refresh := grants[GrantRefreshToken]; refresh {
			if _, password := grants[GrantPassword]; !password {
				add("%s.grant_types: refresh_token requires password: only password logins issue refresh tokens", at)
			}
		}

		if s.Public {
			if s.SecretHash != "" {
				add("%s.secret_hash: a public client has no secret", at)
			}
			if s.SecretEnv != "" {
				add("%s.secret_env: a public client has no secret", at)
			}
			if s.Introspect {
				add("%s.introspect: a public client cannot authenticate to the introspection endpoint (RFC 7662 §2.1)", at)
			}
		} else {
			switch {
			case s.SecretHash == "" && s.SecretEnv == "":
				add("%s: a confidential client needs secret_hash or secret_env (or set public: true)", at)
			case s.SecretHash != "" && s.SecretEnv != "":
				add("%s: set only one of secret_hash and secret_env", at)
			}
			if s.SecretHash != "" {
				if _, err := newHashVerifier(s.SecretHash); err != nil {
					add("%s.secret_hash: %w", at, err)
				}
			}
			if s.SecretEnv != "" && !validEnvName(s.SecretEnv) {
				// Not echoed: it may be a secret pasted in the wrong key.
				add("%s.secret_env: not an environment variable name (want letters, digits and '_', not starting with a digit)", at)
			}
		}

		scopes := checkList(add, at, "scopes", s.Scopes, func(v string) string {
			if !validScope(v) {
				return fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3)", v)
			}
			return ""
		})
		checkList(add, at, "default_scopes", s.DefaultScopes, func(v string) string {
			if _, ok := scopes[v]; !ok {
				return fmt.Sprintf("%q is not in scopes", v)
			}
			return ""
		})
		checkList(add, at, "audience", s.Audience, nonEmpty)
		switch {
		case s.Introspect && len(s.Resources) == 0:
			add("%s.resources: required with introspect: true (the audiences whose tokens it may introspect)", at)
		case !s.Introspect && len(s.Resources) > 0:
			add("%s.resources: only with introspect: true", at)
		}
		checkList(add, at, "resources", s.Resources, nonEmpty)

		errs = append(errs, checkTTLs(at, s.AccessTokenTTL, s.RefreshIdleTTL, s.RefreshAbsoluteTTL, s.RefreshReuseGrace)...)
		if s.RefreshIdleTTL != nil && s.RefreshAbsoluteTTL != nil && *s.RefreshAbsoluteTTL > 0 && *s.RefreshIdleTTL > *s.RefreshAbsoluteTTL {
			add("%s.refresh_idle_ttl: %s exceeds refresh_absolute_ttl %s",
				at, FormatDuration(*s.RefreshIdleTTL), FormatDuration(*s.RefreshAbsoluteTTL))
		}
	}
	return errs
}

func validateDefaults(d Defaults) []error {
	errs := checkTTLs("defaults", &d.AccessTokenTTL, &d.RefreshIdleTTL, &d.RefreshAbsoluteTTL, &d.RefreshReuseGrace)
	if d.RefreshAbsoluteTTL > 0 && d.RefreshIdleTTL > d.RefreshAbsoluteTTL {
		errs = append(errs, fmt.Errorf("defaults.refresh_idle_ttl: %s exceeds refresh_absolute_ttl %s",
			FormatDuration(d.RefreshIdleTTL), FormatDuration(d.RefreshAbsoluteTTL)))
	}
	for j, a := range d.Audience {
		if a == "" {
			errs = append(errs, fmt.Errorf("defaults.audience[%d]: empty", j))
		}
	}
	return errs
}

// checkTTLs checks the token durations that are set (non-nil).
func checkTTLs(at string, access, idle, absolute, grace *time.Duration) []error {
	var errs []error
	if access != nil && (*access <= 0 || *access > MaxAccessTokenTTL) {
		errs = append(errs, fmt.Errorf("%s.access_token_ttl: %s not in (0, %s]", at, FormatDuration(*access), FormatDuration(MaxAccessTokenTTL)))
	}
	if idle != nil && *idle <= 0 {
		errs = append(errs, fmt.Errorf("%s.refresh_idle_ttl: %s must be positive", at, FormatDuration(*idle)))
	}
	if absolute != nil && *absolute <= 0 {
		errs = append(errs, fmt.Errorf("%s.refresh_absolute_ttl: %s must be positive", at, FormatDuration(*absolute)))
	}
	if grace != nil && (*grace < 0 || *grace > MaxRefreshReuseGrace) {
		errs = append(errs, fmt.Errorf("%s.refresh_reuse_grace: %s not in [0, %s]", at, FormatDuration(*grace), FormatDuration(MaxRefreshReuseGrace)))
	}
	return errs
}

// checkList reports, for the list key of the client at, every repeated
// value and every value check objects to, and returns the first index of
// each value.
func checkList(add func(string, ...any), at, key string, values []string, check func(string) string) map[string]int {
	seen := make(map[string]int, len(values))
	for j, v := range values {
		if k, dup := seen[v]; dup {
			add("%s.%s[%d]: duplicate of %s[%d]", at, key, j, key, k)
			continue
		}
		seen[v] = j
		if msg := check(v); msg != "" {
			add("%s.%s[%d]: %s", at, key, j, msg)
		}
	}
	return seen
}

func nonEmpty(v string) string {
	if v == "" {
		return "empty"
	}
	return ""
}

// validID reports whether id is made of VSCHAR (RFC 6749 appendix A.1)
// other than space and ':', which separates id and secret in HTTP Basic
// authentication.
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= 0x20 || b >= 0x7f || b == ':' {
			return false
		}
	}
	return true
}

// validScope reports whether s is a scope-token (RFC 6749 §3.3):
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// validEnvName reports whether s is a portable environment variable name
// (POSIX.1-2017 §8.1).
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

// FormatDuration prints d without trailing zero units: "200h", not
// "200h0m0s", as config errors quote durations.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

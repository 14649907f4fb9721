// Package clients is the registry of OAuth 2.0 clients that admins declare
// in the config file. It validates every declaration up front, resolves
// per-client token settings against the server-wide defaults, and
// authenticates confidential clients without paying for a slow password
// hash on every request (see secret.go). The registry is read-only once
// built: the token endpoint never asks the database about a client.
package clients

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/keyturn/keyturn/storage/passhash"
)

// Grant type names (RFC 6749 §4.3, §6 and §4.4).
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantAuthorizationCode is RFC 6749 §4.1, always with PKCE (RFC 7636).
	GrantAuthorizationCode = "authorization_code"
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
// secret_hash by mistake), Format and LogValue redact SecretHash and
// every entry of SecretHashes.
type Spec struct {
	ID string `yaml:"id"`
	// SecretHash is "sha256:<base64url, no padding, of SHA-256(secret)>"
	// for a generated high-entropy secret (see Generate), or an argon2id
	// PHC string for a human-chosen one (see HashSecret).
	SecretHash string `yaml:"secret_hash"`
	// SecretEnv names an environment variable that holds the plaintext
	// secret. It is read once, by New, and only its SHA-256 is kept.
	SecretEnv string `yaml:"secret_env"`
	// SecretHashes and SecretEnvs are further secrets, each like
	// SecretHash or SecretEnv: any one of the client's secrets
	// authenticates it, so a secret is rotated without downtime (add the
	// new one, reload, move the client over, remove the old one).
	SecretHashes []string `yaml:"secret_hashes"`
	SecretEnvs   []string `yaml:"secret_envs"`
	Public       bool     `yaml:"public"`
	// Name is shown to people on the consent page; default: the id.
	Name string `yaml:"name"`
	// RedirectURIs are where the authorization endpoint may send the
	// browser back (RFC 6749 §3.1.2), compared as exact strings (RFC 9700
	// §2.1), except the port of a public client's loopback URI (RFC 8252
	// §7.3). Required with the authorization_code grant.
	RedirectURIs []string `yaml:"redirect_uris"`
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser afterwards (OpenID Connect RP-Initiated Logout 1.0 §3),
	// compared as exact strings and checked as redirect_uris are. Only
	// with the authorization_code grant.
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	// FirstParty: the organisation's own app, which needs no consent page.
	FirstParty bool `yaml:"first_party"`
	// IDTokenSignedResponseAlg is the JWS algorithm of the client's ID
	// tokens (OpenID Connect Registration §2): RS256 (the default, OpenID
	// Connect Core §15.1), ES256 or EdDSA.
	IDTokenSignedResponseAlg string   `yaml:"id_token_signed_response_alg"`
	GrantTypes               []string `yaml:"grant_types"`
	Scopes                   []string `yaml:"scopes"`
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

// Format prints the spec as fmt would, with the secret hashes redacted.
func (s Spec) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.redacted())
}

// LogValue logs the spec with the secret hashes redacted.
func (s Spec) LogValue() slog.Value { return slog.AnyValue(s.redacted()) }

// spec has Spec's fields and none of its methods, so fmt prints it
// field by field.
type spec Spec

func (s Spec) redacted() spec {
	v := spec(s)
	if v.SecretHash != "" {
		v.SecretHash = redacted
	}
	if v.SecretHashes != nil {
		v.SecretHashes = make([]string, len(s.SecretHashes))
		for i := range v.SecretHashes {
			v.SecretHashes[i] = redacted
		}
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
	// Name is shown on the consent page (the spec's name, else the id).
	Name         string
	RedirectURIs []string
	FirstParty   bool
	// IDTokenAlg signs the client's ID tokens (default RS256).
	IDTokenAlg             string
	PostLogoutRedirectURIs []string
	Scopes                 []string
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

	// Guessable: one of the client's secrets may have been chosen by a
	// person (an argon2id secret_hash, or a secret_env value shorter than
	// MinGeneratedSecretLen), so failed authentications must be throttled.
	// A generated secret (sha256: hash, or a long secret_env value) has
	// at least 128 bits that no online guessing reaches.
	Guessable bool

	grants grantSet
	scopes map[string]struct{}
	// secrets returns the verifiers of the client's secrets, one per
	// secret, in the order declared; nil for a public client. A func
	// value, unlike a pointer, prints as an address under every fmt verb,
	// so no rendering of a Client reaches its hashes or digests.
	secrets func() []*verifier
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
	GrantAuthorizationCode: 1 << 3,
}

// Registry holds the clients declared in the config file. It is read-only
// after New and safe for concurrent use.
type Registry struct {
	clients map[string]*Client
	ids     []string
	// scopes are the scopes of all clients together (KnowsScope).
	scopes map[string]struct{}
	// dummy is what Authenticate compares against for an unknown or
	// public client, so that it costs the same as a wrong secret.
	dummy [sha256.Size]byte
	// slow returns what runs the argon2id checks. A func value prints as
	// an address under every fmt verb (a pointer does not: %q expands
	// it), so fmt never reads its counters or the digests in flight.
	slow func() *slowChecks
}

// slowChecks bounds and shares the argon2id checks of a registry.
type slowChecks struct {
	// verifyHash checks an argon2id secret hash (passhash.Verify, or
	// SlowChecks.Verify); it runs in a slot.
	verifyHash func(encoded, secret string) (bool, error)
	// hashes bounds argon2id secret checks running at once, together
	// with the process's logins: client ids are public, and each wrong
	// guess would otherwise cost ~19 MiB.
	hashes *passhash.Limiter
	// flight makes identical concurrent checks (same client, same
	// presented secret) share one hash.
	flight singleflight.Group
	// joined, if set (tests), is called when a check has joined or
	// started a run.
	joined func()
}

// ErrBusy: too many slow (argon2id) secret checks are running and waiting,
// or a check's context ended while it waited for a slot; the caller should
// answer 503 and let the client retry.
var ErrBusy = errors.New("client authentication busy")

// SlowChecks bounds the argon2id secret checks of a registry.
type SlowChecks struct {
	// Limiter is the process's one hashing budget, shared with the
	// password grant and kept across reloads: its slots bound the checks
	// running at once, and past its slots and queue Authenticate answers
	// ErrBusy at once; an admitted check waits for a slot no longer than
	// its context. nil means a limiter of the registry's own with the
	// default size (passhash.NewLimiter(0, 0)).
	Limiter *passhash.Limiter
	// Verify checks a secret against an argon2id hash; nil means
	// passhash.Verify (tests count the hashes with it).
	Verify func(encoded, secret string) (bool, error)
}

// New validates specs and builds the registry. lookupEnv (os.LookupEnv in
// production) resolves secret_env and secret_envs references; each variable
// is read once, here. Every problem is reported at once, as Validate does,
// including an unset or empty secret_env variable, a resolved
// refresh_idle_ttl above the resolved refresh_absolute_ttl, a client left
// without an audience, and defaults outside the bounds Validate applies to
// overrides. Argon2id checks get the default SlowChecks.
func New(specs []Spec, d Defaults, lookupEnv func(string) (string, bool)) (*Registry, error) {
	return NewWithSlowChecks(specs, d, lookupEnv, SlowChecks{})
}

// NewWithSlowChecks is New with the given bounds on argon2id checks.
func NewWithSlowChecks(specs []Spec, d Defaults, lookupEnv func(string) (string, bool), sc SlowChecks) (*Registry, error) {
	errs := validate(specs)
	errs = append(errs, validateDefaults(d)...)
	if sc.Limiter == nil {
		sc.Limiter = passhash.NewLimiter(0, 0)
	}
	if sc.Verify == nil {
		sc.Verify = passhash.Verify
	}
	slow := &slowChecks{
		verifyHash: sc.Verify,
		hashes:     sc.Limiter,
	}
	r := &Registry{
		clients: make(map[string]*Client, len(specs)),
		slow:    func() *slowChecks { return slow },
	}
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
	r.scopes = make(map[string]struct{})
	for _, c := range r.clients {
		for sc := range c.scopes {
			r.scopes[sc] = struct{}{}
		}
	}
	return r, nil
}

// KnowsScope reports whether some client may be granted scope: the
// scopes_supported of the metadata. OpenID Connect requests drop the
// scopes no client knows (Core §3.1.2.1, DESIGN.md decision D17).
func (r *Registry) KnowsScope(scope string) bool {
	_, ok := r.scopes[scope]
	return ok
}

// resolve builds the client for a spec that validate has checked, and
// reports the problems only visible with the defaults and environment.
func resolve(s Spec, d Defaults, lookupEnv func(string) (string, bool), at string) (*Client, []error) {
	var errs []error
	c := &Client{
		ID:                     s.ID,
		Public:                 s.Public,
		Introspect:             s.Introspect,
		Name:                   s.Name,
		RedirectURIs:           slices.Clone(s.RedirectURIs),
		PostLogoutRedirectURIs: slices.Clone(s.PostLogoutRedirectURIs),
		FirstParty:             s.FirstParty,
		IDTokenAlg:             s.IDTokenSignedResponseAlg,
		Scopes:                 slices.Clone(s.Scopes),
		DefaultScopes:          slices.Clone(s.DefaultScopes),
		Audience:               slices.Clone(s.Audience),
		Resources:              slices.Clone(s.Resources),
		AccessTokenTTL:         inherit(s.AccessTokenTTL, d.AccessTokenTTL),
		RefreshIdleTTL:         inherit(s.RefreshIdleTTL, d.RefreshIdleTTL),
		RefreshAbsoluteTTL:     inherit(s.RefreshAbsoluteTTL, d.RefreshAbsoluteTTL),
		RefreshReuseGrace:      inherit(s.RefreshReuseGrace, d.RefreshReuseGrace),
		scopes:                 make(map[string]struct{}, len(s.Scopes)),
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = DefaultIDTokenAlg
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
		errs = append(errs, idleExceedsAbsolute(at, c.RefreshIdleTTL, c.RefreshAbsoluteTTL))
	}
	if s.Public {
		return c, errs
	}
	var vs []*verifier
	eachSecret(s, func(key, hash string) {
		if v, err := newHashVerifier(hash); err == nil {
			vs = append(vs, v)
			c.Guessable = c.Guessable || v.slow()
		} // else validate has reported it
	}, func(key, name string) {
		if !validEnvName(name) {
			return // validate has reported it
		}
		switch secret, ok := lookupEnv(name); {
		case !ok:
			errs = append(errs, fmt.Errorf("%s.%s: environment variable %s is not set", at, key, name))
		case secret == "":
			errs = append(errs, fmt.Errorf("%s.%s: environment variable %s is empty", at, key, name))
		default:
			vs = append(vs, newDigestVerifier(sha256.Sum256([]byte(secret))))
			c.Guessable = c.Guessable || len(secret) < MinGeneratedSecretLen
		}
	})
	if len(vs) > 0 {
		c.secrets = func() []*verifier { return vs }
	}
	return c, errs
}

// eachSecret calls hash for secret_hash and each secret_hashes entry, and
// env for secret_env and each secret_envs entry, in that order, with the
// key path of each within the client (secret_hashes[1]); empty single
// keys are skipped.
func eachSecret(s Spec, hash, env func(key, value string)) {
	if s.SecretHash != "" {
		hash("secret_hash", s.SecretHash)
	}
	for j, h := range s.SecretHashes {
		hash(fmt.Sprintf("secret_hashes[%d]", j), h)
	}
	if s.SecretEnv != "" {
		env("secret_env", s.SecretEnv)
	}
	for j, e := range s.SecretEnvs {
		env(fmt.Sprintf("secret_envs[%d]", j), e)
	}
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

// Authenticate checks a confidential client's secret (RFC 6749 §2.3.1):
// any one of the client's secrets authenticates it. alternates are other
// readings of the same presented credential (the Basic password as sent,
// when a client skipped the form-encoding RFC 6749 §2.3.1 asks for); they
// are tried only when secret fails, and only when they differ from it.
// It returns ErrInvalidClient for an unknown id, a public client or a
// wrong secret, ErrBusy (wrapped) when an argon2id check found no slot
// before ctx ended, and any other error only for a broken secret hash.
//
// An unknown id costs the same as a wrong secret for a sha256 or
// secret_env client: the presented secret is hashed and compared against
// a dummy digest. A wrong secret for an argon2id client costs an argon2id
// hash, which an unknown id does not; client ids are not secrets
// (RFC 6749 §2.2), and hashing for unknown ids would only hand attackers
// a cheap way to burn CPU.
func (r *Registry) Authenticate(ctx context.Context, id, secret string, alternates ...string) (*Client, error) {
	candidates := []string{secret}
	for _, a := range alternates {
		if !slices.Contains(candidates, a) {
			candidates = append(candidates, a)
		}
	}
	digests := make([][sha256.Size]byte, len(candidates))
	for i, s := range candidates {
		digests[i] = sha256.Sum256([]byte(s))
	}
	c, ok := r.clients[id]
	if !ok || c.secrets == nil {
		for _, d := range digests {
			subtle.ConstantTimeCompare(d[:], r.dummy[:])
		}
		return nil, ErrInvalidClient
	}
	vs := c.secrets()
	for _, d := range digests {
		if matchDigest(vs, d) {
			return c, nil
		}
	}
	for i, s := range candidates {
		ok, err := r.slow().check(ctx, c.ID, vs, s, digests[i])
		if err != nil { // ErrBusy stays visible to errors.Is
			return nil, fmt.Errorf("authenticate client %q: %w", id, err)
		}
		if ok {
			return c, nil
		}
	}
	return nil, ErrInvalidClient
}

// check checks secret, whose SHA-256 is presented, against the
// client's argon2id hashes. Identical concurrent checks (same client, same
// presented secret; keyed by the digest, never the secret) share one run:
// a resource server starting with many requests at once pays one hash, not
// one per request. The run waits for a slot as long as the context of the
// request that started it lasts; a request sharing it waits as long as its
// own, and starts a run of its own if the first request ended first.
func (r *slowChecks) check(ctx context.Context, id string, vs []*verifier, secret string, presented [sha256.Size]byte) (bool, error) {
	if !slices.ContainsFunc(vs, (*verifier).slow) {
		return false, nil
	}
	key := id + "\x00" + string(presented[:])
	for {
		ch := r.flight.DoChan(key, func() (any, error) {
			// A run that finished since the caller looked may have cached it.
			if matchDigest(vs, presented) {
				return true, nil
			}
			release, err := r.acquire(ctx)
			if err != nil {
				return false, err
			}
			defer release()
			for _, v := range vs {
				if ok, err := v.verifySlow(secret, presented, r.verifyHash); ok || err != nil {
					return ok, err
				}
			}
			return false, nil
		})
		if r.joined != nil {
			r.joined()
		}
		select {
		case res := <-ch:
			if res.Shared && errors.Is(res.Err, errWaitEnded) && ctx.Err() == nil {
				continue // the request that ran it ended, not this one
			}
			ok, _ := res.Val.(bool)
			return ok, res.Err
		case <-ctx.Done():
			return false, ErrBusy
		}
	}
}

// errWaitEnded: the request ended while its check waited for a slot.
var errWaitEnded = fmt.Errorf("%w: the request ended while waiting for a slot", ErrBusy)

// acquire takes a slot of the hashing budget for an argon2id check,
// waiting for one while ctx lasts if the budget admits it; else it answers
// ErrBusy.
func (r *slowChecks) acquire(ctx context.Context) (release func(), err error) {
	leave, err := r.hashes.Admit()
	if err != nil {
		return nil, ErrBusy
	}
	slot, err := r.hashes.Acquire(ctx)
	if err != nil {
		leave()
		return nil, errWaitEnded
	}
	return func() { slot(); leave() }, nil
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
		validateGrants(add, at, s)
		validateSecrets(add, at, s)
		validateBrowser(add, at, s)
		validateIDTokenAlg(add, at, s)
		validateLists(add, at, s)
		for _, err := range checkTTLs(at, s.AccessTokenTTL, s.RefreshIdleTTL, s.RefreshAbsoluteTTL, s.RefreshReuseGrace) {
			add("%w", err)
		}
	}
	return errs
}

// validateGrants checks a client's grant types.
func validateGrants(add func(string, ...any), at string, s Spec) {
	// A resource server that only introspects needs no grant.
	if len(s.GrantTypes) == 0 && !s.Introspect {
		add("%s.grant_types: at least one of %s is required", at, grantNames)
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
			add("%s: unknown grant type %q (want one of %s)", gat, g, grantNames)
		}
		if g == GrantClientCredentials && s.Public {
			add("%s: client_credentials needs a confidential client (RFC 6749 §4.4)", gat)
		}
	}
	_, refresh := grants[GrantRefreshToken]
	_, password := grants[GrantPassword]
	_, code := grants[GrantAuthorizationCode]
	if refresh && !password && !code {
		add("%s.grant_types: refresh_token requires password or authorization_code: only a login starts a session that refresh tokens continue", at)
	}
}

// grantNames lists the grant types a client may name, for error messages.
const grantNames = "authorization_code, password, refresh_token, client_credentials"

// validateSecrets checks that a public client has no secret and a
// confidential one has at least one, each well formed and none repeated.
func validateSecrets(add func(string, ...any), at string, s Spec) {
	if s.Public {
		if s.SecretHash != "" {
			add("%s.secret_hash: a public client has no secret", at)
		}
		if s.SecretEnv != "" {
			add("%s.secret_env: a public client has no secret", at)
		}
		if len(s.SecretHashes) > 0 {
			add("%s.secret_hashes: a public client has no secret", at)
		}
		if len(s.SecretEnvs) > 0 {
			add("%s.secret_envs: a public client has no secret", at)
		}
		if s.Introspect {
			add("%s.introspect: a public client cannot authenticate to the introspection endpoint (RFC 7662 §2.1)", at)
		}
	} else {
		n := 0
		hashes, envs := map[string]string{}, map[string]string{}
		eachSecret(s, func(key, hash string) {
			n++
			if first, dup := hashes[hash]; dup {
				add("%s.%s: duplicate of %s", at, key, first)
				return
			}
			hashes[hash] = key
			if hash == "" {
				add("%s.%s: empty", at, key)
			} else if _, err := newHashVerifier(hash); err != nil {
				add("%s.%s: %w", at, key, err)
			}
		}, func(key, name string) {
			n++
			if first, dup := envs[name]; dup {
				add("%s.%s: duplicate of %s", at, key, first)
				return
			}
			envs[name] = key
			if !validEnvName(name) {
				// Not echoed: it may be a secret pasted in the wrong key.
				add("%s.%s: not an environment variable name (want letters, digits and '_', not starting with a digit)", at, key)
			}
		})
		if n == 0 {
			add("%s: a confidential client needs secret_hash or secret_env, or secret_hashes or secret_envs (or set public: true)", at)
		}
	}
}

// validateLists checks a client's scopes, default scopes, audience and
// resources.
func validateLists(add func(string, ...any), at string, s Spec) {
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
}

func validateDefaults(d Defaults) []error {
	errs := checkTTLs("defaults", &d.AccessTokenTTL, &d.RefreshIdleTTL, &d.RefreshAbsoluteTTL, &d.RefreshReuseGrace)
	for j, a := range d.Audience {
		if a == "" {
			errs = append(errs, fmt.Errorf("defaults.audience[%d]: empty", j))
		}
	}
	return errs
}

// checkTTLs checks the token durations that are set (non-nil), and that
// the idle lifetime does not exceed the absolute one when both are set.
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
	if idle != nil && absolute != nil && *absolute > 0 && *idle > *absolute {
		errs = append(errs, idleExceedsAbsolute(at, *idle, *absolute))
	}
	return errs
}

func idleExceedsAbsolute(at string, idle, absolute time.Duration) error {
	return fmt.Errorf("%s.refresh_idle_ttl: %s exceeds refresh_absolute_ttl %s", at, FormatDuration(idle), FormatDuration(absolute))
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

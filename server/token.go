package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
)

// tokenRequest is a token-endpoint request whose client is authenticated
// and allowed the grant type. The grant-specific fields are filled by the
// request parser (go-oauth2, see oauth2lib.go).
type tokenRequest struct {
	client       *clients.Client
	scope        []string   // requested scope; nil when the parameter is absent
	resources    []string   // RFC 8707 resource parameters
	addr         netip.Addr // the source address, for login throttling
	userID       string     // password grant: the authenticated user
	refreshToken string     // refresh_token grant: the presented token
}

type tokenRequestKey struct{}

func withTokenRequest(ctx context.Context, req *tokenRequest) context.Context {
	return context.WithValue(ctx, tokenRequestKey{}, req)
}

func tokenRequestFrom(ctx context.Context) *tokenRequest {
	req, _ := ctx.Value(tokenRequestKey{}).(*tokenRequest)
	return req
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshExpiresIn is seconds until the session's idle or absolute
	// expiry, whichever comes first (not in RFC 6749; widely used).
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

// grant issues tokens for one grant_type.
type grant interface {
	// required lists the parameters the grant needs besides grant_type.
	required() []string
	issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error)
}

// tokenHandler serves POST /oauth2/token (RFC 6749 §3.2).
type tokenHandler struct {
	clients *clientSet
	guard   *clientGuard // client authentication throttle
	grants  map[string]grant
	lib     *tokenLib
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
	log     *slog.Logger
}

func (h *tokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := h.parse(w, r)
	var resp *tokenResponse
	if err == nil {
		resp, err = h.lib.issue(r.WithContext(withTokenRequest(r.Context(), req)))
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parse authenticates the client and checks its grant type before anything
// else about the request is looked at: no password is checked and no token
// is looked up for a client that has not authenticated.
func (h *tokenHandler) parse(w http.ResponseWriter, r *http.Request) (*tokenRequest, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return nil, err
	}
	info := infoFrom(r.Context())
	gt := form.Get("grant_type")
	g, known := h.grants[gt]
	if info.grantType = gt; !known {
		info.grantType = "unknown" // a bounded metrics label
	}
	client, err := authenticateClient(r, form, h.clients.registry(), h.guard)
	if err != nil {
		return nil, err
	}
	info.clientID = client.ID
	switch {
	case gt == "":
		return nil, errInvalidRequest("missing grant_type")
	case !known:
		return nil, errUnsupportedGrantType("unsupported grant_type")
	case !client.AllowsGrant(gt):
		return nil, errUnauthorizedClient("the client may not use this grant type")
	}
	for _, p := range g.required() {
		if form.Get(p) == "" {
			return nil, errInvalidRequest("missing " + p)
		}
	}
	resources := slices.Compact(slices.Sorted(slices.Values(form["resource"])))
	if len(resources) > maxResources {
		return nil, errInvalidTarget("too many resource parameters")
	}
	req := &tokenRequest{client: client, resources: resources, addr: clientAddr(r, h.trusted)}
	if s := form.Get("scope"); s != "" {
		req.scope = scopeList(s)
	}
	// A scope the client may never have is refused now, before a password
	// is hashed or a token looked up (the refresh grant narrows further).
	if _, err := grantScope(req.scope, client.AllowsScope, nil); err != nil {
		return nil, err
	}
	for _, res := range req.resources {
		if !slices.Contains(client.Audience, res) {
			return nil, errInvalidTarget("resource is not an audience of this client")
		}
	}
	return req, nil
}

// maxResources bounds the RFC 8707 resource parameters of one request:
// each becomes an audience of the access token.
const maxResources = 8

// truncate cuts s to at most n bytes, for echoing input in descriptions.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// grantScope resolves a requested scope (RFC 6749 §3.3): absent means the
// default; every requested token must be allowed.
func grantScope(requested []string, allowed func(string) bool, defaults []string) ([]string, error) {
	if requested == nil {
		return defaults, nil
	}
	for _, s := range requested {
		if !allowed(s) {
			return nil, errInvalidScope("scope " + sanitizeDescription(truncate(s, 64)) + " is not allowed")
		}
	}
	return requested, nil
}

// audience is the client's audience, narrowed to the RFC 8707 resources
// requested (already checked to be among them).
func audience(req *tokenRequest) []string {
	if len(req.resources) > 0 {
		return req.resources
	}
	return req.client.Audience
}

// minter signs access tokens.
type minter struct {
	issuer string
	keys   *Keys
}

// accessToken signs an RFC 9068 access token for sub, valid from now for
// the client's access-token lifetime.
func (m *minter) accessToken(ctx context.Context, req *tokenRequest, sub string, scope []string, sid string, now time.Time) (string, int64, error) {
	ttl := req.client.AccessTokenTTL
	tok, err := m.keys.signAccessToken(ctx, accessClaims{
		Issuer:    m.issuer,
		Subject:   sub,
		Audience:  audience(req),
		IssuedAt:  now.Unix(),
		Expiry:    now.Add(ttl).Unix(),
		ID:        newID(),
		ClientID:  req.client.ID,
		Scope:     strings.Join(scope, " "),
		SessionID: sid,
	})
	if err != nil {
		return "", 0, err
	}
	return tok, int64(ttl / time.Second), nil
}

func (m *minter) response(ctx context.Context, req *tokenRequest, sub string, scope []string, sid string, now time.Time) (*tokenResponse, error) {
	at, expiresIn, err := m.accessToken(ctx, req, sub, scope, sid, now)
	if err != nil {
		return nil, err
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: expiresIn, Scope: strings.Join(scope, " ")}, nil
}

// withRefresh adds family f's refresh token at generation gen to resp.
func withRefresh(resp *tokenResponse, keys *Keys, f storage.Family, gen uint64, now time.Time) *tokenResponse {
	resp.RefreshToken = keys.RefreshToken(f, gen)
	resp.RefreshExpiresIn = int64(f.ExpiresAt().Sub(now) / time.Second)
	return resp
}

// passwordGrant is the resource owner password credentials grant (RFC 6749
// §4.3). It starts a new session (family).
type passwordGrant struct {
	store    storage.Store
	sessions *sessionCache
	keys     *Keys
	minter   *minter
	now      func() time.Time
}

func (passwordGrant) required() []string { return []string{"username", "password"} }

func (g passwordGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	c := req.client
	scope, err := grantScope(req.scope, c.AllowsScope, c.DefaultScopes)
	if err != nil {
		return nil, err
	}
	now := g.now().UTC()
	// RFC 6749 §4.3.3: the refresh token is OPTIONAL, and a client without
	// the refresh_token grant gets none. Its login is still a session (the
	// access token's sid), so that introspection ends the access token
	// with it (user disabled, deleted, new password, admin revocation); the
	// session lives exactly as long as the access token, then is swept.
	refreshable := c.AllowsGrant(clients.GrantRefreshToken)
	idle, absolute := c.RefreshIdleTTL, c.RefreshAbsoluteTTL
	if !refreshable {
		idle, absolute = c.AccessTokenTTL, c.AccessTokenTTL
	}
	f := storage.Family{
		ID: newID(), ClientID: c.ID, UserID: req.userID, Scope: strings.Join(scope, " "),
		Salt: newSalt(), KeyID: g.keys.MACKeyID(),
		CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt:     now.Add(idle),
		AbsoluteExpiresAt: now.Add(absolute),
	}
	if err := g.store.CreateFamily(ctx, f); errors.Is(err, storage.ErrNotFound) {
		return nil, errBadCredentials // disabled or deleted since the password check
	} else if err != nil {
		return nil, fmt.Errorf("password grant: %w", err)
	}
	resp, err := g.minter.response(ctx, req, req.userID, scope, f.ID, now)
	if err != nil || !refreshable {
		return resp, err
	}
	g.sessions.put(f)
	return withRefresh(resp, g.keys, f, f.Generation, now), nil
}

// userAuth checks resource-owner passwords for the password grant. Every
// bad-credential failure is one invalid_grant, and an unknown user costs
// the same hash as a wrong password, so neither answers nor timing
// enumerate users. Each attempt is counted by the throttle before its
// password is hashed, and refused (429) before any hashing.
type userAuth struct {
	store     storage.Store
	throttle  *throttle
	hashing   *hashSlots
	dummyHash string
	logins    *prometheus.CounterVec
}

func newUserAuth(store storage.Store, th *throttle, opts LoginOptions, m *metrics) (*userAuth, error) {
	dummy, err := passhash.Hash(newID(), passhash.Default)
	if err != nil {
		return nil, err
	}
	return &userAuth{
		store:     store,
		throttle:  th,
		hashing:   newHashSlots(opts.MaxConcurrentHashes, opts.MaxQueuedHashes),
		dummyHash: dummy,
		logins:    m.logins,
	}, nil
}

var errBadCredentials = errInvalidGrant("invalid username or password")

// rememberEvery is how often a login from a known address refreshes when
// it was last seen.
const rememberEvery = 24 * time.Hour

func (a *userAuth) authenticate(ctx context.Context, username, password string) (string, error) {
	var addr netip.Addr
	if req := tokenRequestFrom(ctx); req != nil {
		addr = req.addr
	}
	leave, err := a.hashing.admit()
	if err != nil {
		a.logins.WithLabelValues(loginShed).Inc()
		return "", err
	}
	defer leave()
	addrKey, uKey := addressKey(addr), userKey(username)
	opts := a.throttle.opts
	seen, err := a.store.AddressLastSeen(ctx, uKey, addrKey)
	if err != nil {
		return "", fmt.Errorf("password grant: %w", err)
	}
	known := !seen.IsZero() && a.throttle.now().Sub(seen) <= opts.KnownAddressTTL
	at, err := a.throttle.reserve(ctx, a.throttle.loginCounters(username, addrKey, known))
	if err != nil {
		var refused *Error
		if errors.As(err, &refused) {
			a.logins.WithLabelValues(loginThrottled).Inc()
		}
		return "", err
	}
	judged := false
	defer func() {
		if !judged { // a database or hash error, a panic: not counted
			at.refund(ctx)
		}
	}()
	u, err := a.store.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("password grant: %w", err)
	}
	hash := u.PasswordHash
	if err != nil {
		hash = a.dummyHash
	}
	release, herr := a.hashing.acquire(ctx)
	if herr != nil {
		a.logins.WithLabelValues(loginShed).Inc()
		return "", herr
	}
	ok, verr := func() (bool, error) {
		defer release() // a panic in the hash must not keep the slot
		return passhash.Verify(hash, password)
	}()
	if verr != nil {
		return "", fmt.Errorf("password grant: stored hash of user %s: %w", u.ID, verr)
	}
	judged = true
	if err != nil || !ok || u.Disabled {
		a.logins.WithLabelValues(loginFailed).Inc()
		if err := at.resolve(ctx, true); err != nil {
			return "", err
		}
		return "", errBadCredentials
	}
	if err := at.resolve(ctx, false); err != nil {
		return "", err
	}
	// The address now passes the username's bar for this user (recorded
	// at most once a day per address: a write fewer on most logins).
	if now := a.throttle.now(); !known || now.Sub(seen) >= rememberEvery {
		if err := a.store.RememberAddress(ctx, uKey, addrKey, now, opts.KnownAddresses); err != nil {
			return "", fmt.Errorf("password grant: %w", err)
		}
	}
	a.logins.WithLabelValues(loginOK).Inc()
	return u.ID, nil
}

// clientCredentialsGrant is RFC 6749 §4.4: a confidential client acting on
// its own behalf. No refresh token (§4.4.3).
type clientCredentialsGrant struct {
	minter *minter
	now    func() time.Time
}

func (clientCredentialsGrant) required() []string { return nil }

func (g clientCredentialsGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	// RFC 6749 §4.4 is for confidential clients only: clients.Validate
	// refuses a public client with this grant.
	c := req.client
	scope, err := grantScope(req.scope, c.AllowsScope, c.DefaultScopes)
	if err != nil {
		return nil, err
	}
	return g.minter.response(ctx, req, c.ID, scope, "", g.now().UTC())
}

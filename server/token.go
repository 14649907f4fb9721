package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// tokenRequest is a token-endpoint request, parsed once: its client is
// authenticated and allowed the grant type, and it holds every parameter
// any grant reads (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6; RFC 7636 §4.5;
// RFC 8707 §2). A parameter sent without a value is as absent (RFC 6749
// §3.2): "".
type tokenRequest struct {
	client       *clients.Client
	grantType    grantType
	scope        []string   // requested scope; nil when the parameter is absent
	resources    []string   // RFC 8707 resource parameters
	addr         netip.Addr // the source address, for login throttling
	username     string     // password grant
	password     string     // password grant
	refreshToken string     // refresh_token grant: the presented token
	code         string     // authorization_code grant: the code
	codeVerifier string     // authorization_code grant: the PKCE verifier
	redirectURI  string     // authorization_code grant: as sent
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
	// IDToken says who signed in (OpenID Connect Core §3.1.3.3): for a
	// session the code grant started with openid in its scope.
	IDToken string `json:"id_token,omitempty"`
}

// grant issues tokens for one grant_type.
type grant interface {
	// required lists the parameters the grant needs besides grant_type.
	required() []string
	issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error)
}

// tokenHandler serves POST /oauth2/token (RFC 6749 §3.2): it parses the
// request once and hands it to the grant its grant_type names.
type tokenHandler struct {
	clients *clientSet
	guard   *clientGuard // client authentication throttle
	grants  map[grantType]grant
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
	log     *slog.Logger
}

func (h *tokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := h.parse(w, r)
	var resp *tokenResponse
	if err == nil {
		resp, err = h.grants[req.grantType].issue(r.Context(), req)
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parse authenticates the client and checks its grant type before anything
// else about the request is looked at: no password is checked and no token
// is looked up for a client that has not authenticated. On success the
// request's grant type is one of h.grants.
func (h *tokenHandler) parse(w http.ResponseWriter, r *http.Request) (*tokenRequest, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return nil, err
	}
	info := infoFrom(r.Context())
	gt := grantType(form.Get("grant_type"))
	g, known := h.grants[gt]
	if info.grantType = gt.String(); !known {
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
	case !client.AllowsGrant(gt.String()):
		return nil, errUnauthorizedClient("the client may not use this grant type")
	}
	for _, p := range g.required() {
		if form.Get(p) == "" {
			return nil, errInvalidRequest("missing " + p)
		}
	}
	req := &tokenRequest{
		client: client, grantType: gt, addr: clientAddr(r, h.trusted),
		username: form.Get("username"), password: form.Get("password"),
		refreshToken: form.Get("refresh_token"),
		code:         form.Get("code"), codeVerifier: form.Get("code_verifier"),
		redirectURI: form.Get("redirect_uri"),
	}
	return req, req.target(form)
}

// target reads the requested scope (RFC 6749 §3.3) and resources (RFC 8707
// §2) into req, refusing now, before a password is hashed or a token
// looked up, a scope or resource the client may never have (the refresh
// grant narrows the scope further).
func (req *tokenRequest) target(form url.Values) error {
	req.resources = slices.Compact(slices.Sorted(slices.Values(form["resource"])))
	if len(req.resources) > maxResources {
		return errInvalidTarget("too many resource parameters")
	}
	if s := form.Get("scope"); s != "" {
		req.scope = scopeList(s)
	}
	if _, err := grantScope(req.scope, req.client.AllowsScope, nil); err != nil {
		return err
	}
	for _, res := range req.resources {
		if !slices.Contains(req.client.Audience, res) {
			return errInvalidTarget("resource is not an audience of this client")
		}
	}
	return nil
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
	keys   *keys.Keys
}

// accessToken signs an RFC 9068 access token for sub, valid from now for
// the client's access-token lifetime.
func (m *minter) accessToken(ctx context.Context, req *tokenRequest, sub string, scope []string, sid string, now time.Time) (string, int64, error) {
	ttl := req.client.AccessTokenTTL
	tok, err := m.keys.SignAccessToken(ctx, tokens.AccessClaims{
		Issuer:    m.issuer,
		Subject:   sub,
		Audience:  audience(req),
		IssuedAt:  now.Unix(),
		Expiry:    now.Add(ttl).Unix(),
		ID:        tokens.NewID(),
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

// scopeOpenID makes an authorization request an OpenID Connect one (Core
// §3.1.2.1); without it the request is plain OAuth and no ID token is issued.
const scopeOpenID = "openid"

// withIDToken adds to resp, which grants scope in session f, an ID token
// (OpenID Connect Core §2, §3.1.3.3) when f was started by the code grant
// and scope holds openid: OpenID Connect is the code flow here, so a
// password login, or its refresh, never gets one. It is the one place ID
// tokens are minted: at the code's redemption with the authentication
// request's nonce, and at each refresh of the session with none (Core
// §12.2), the same sub and auth_time and a new iat. The token is signed
// with the client's algorithm (RS256 unless it registered another) and
// lives as long as the access token it comes with, whose at_hash it holds
// (Core §3.1.3.6). aud is the client alone, so there is no azp (Core §2).
func (m *minter) withIDToken(ctx context.Context, req *tokenRequest, resp *tokenResponse, f storage.Family, scope []string, nonce string, now time.Time) (*tokenResponse, error) {
	if f.GrantType != storage.GrantAuthorizationCode || !slices.Contains(scope, scopeOpenID) {
		return resp, nil
	}
	alg := req.client.IDTokenAlg
	atHash, err := tokens.AccessTokenHash(alg, resp.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("id token: %w", err)
	}
	idToken, err := m.keys.SignIDToken(ctx, alg, tokens.IDClaims{
		Issuer:          m.issuer,
		Subject:         f.UserID, // the access token's sub
		Audience:        req.client.ID,
		IssuedAt:        now.Unix(),
		Expiry:          now.Add(req.client.AccessTokenTTL).Unix(),
		AuthTime:        f.AuthTime.Unix(),
		Nonce:           nonce,
		AccessTokenHash: atHash,
		SessionID:       f.ID,
	})
	if err != nil {
		return nil, fmt.Errorf("id token: %w", err)
	}
	resp.IDToken = idToken
	return resp, nil
}

// withRefresh adds family f's refresh token at generation gen to resp.
func withRefresh(resp *tokenResponse, keys *keys.Keys, f storage.Family, gen uint64, now time.Time) *tokenResponse {
	resp.RefreshToken = keys.RefreshToken(f, gen)
	resp.RefreshExpiresIn = int64(f.ExpiresAt().Sub(now) / time.Second)
	return resp
}

// refreshable reports whether c's sessions get refresh tokens: RFC 6749
// §4.1.4 and §4.3.3 make the refresh token OPTIONAL, and a client without
// the refresh_token grant gets none.
func refreshable(c *clients.Client) bool { return c.AllowsGrant(clients.GrantRefreshToken) }

// newSession is the session (family) that a user's login, by grant
// (storage.GrantPassword or storage.GrantAuthorizationCode), starts for
// req's client at now; authTime is when the user authenticated. It is the
// one shape of a session, whichever grant started it: the client's idle
// and absolute lifetimes, rotation and reuse detection as DESIGN.md §2.
// A login by a client without the refresh_token grant is still a session
// (the access token's sid), so that introspection ends the access token
// with it (user disabled, deleted, new password, admin revocation); it then
// lives exactly as long as the access token, and is swept.
func newSession(req *tokenRequest, k *keys.Keys, userID string, scope []string, grant string, authTime, now time.Time) storage.Family {
	c := req.client
	idle, absolute := c.RefreshIdleTTL, c.RefreshAbsoluteTTL
	if !refreshable(c) {
		idle, absolute = c.AccessTokenTTL, c.AccessTokenTTL
	}
	return storage.Family{
		ID: tokens.NewID(), ClientID: c.ID, UserID: userID, Scope: strings.Join(scope, " "),
		Salt: tokens.NewSalt(), KeyID: k.MACKeyID(),
		CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt:     now.Add(idle),
		AbsoluteExpiresAt: now.Add(absolute),
		GrantType:         grant,
		AuthTime:          authTime,
	}
}

// sessionResponse answers a login that started session f: an access token
// for its user (sub is the user id, whichever grant logged in) and, for a
// client with the refresh_token grant, the session's first refresh token.
func (m *minter) sessionResponse(ctx context.Context, req *tokenRequest, f storage.Family, scope []string, now time.Time) (*tokenResponse, error) {
	resp, err := m.response(ctx, req, f.UserID, scope, f.ID, now)
	if err != nil || !refreshable(req.client) {
		return resp, err
	}
	return withRefresh(resp, m.keys, f, f.Generation, now), nil
}

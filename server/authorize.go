package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// authzRequest is an authorization request (RFC 6749 §4.1.1), parsed once
// by parseAuthorization, which the authorization endpoint, the login POST
// and the consent POST all use on the same parameters (the pages carry
// them in a hidden field). Its client and redirect target are verified;
// everything else that is wrong is held in err, answered by redirect once
// the user is authenticated (decision D15).
type authzRequest struct {
	// params are the request's parameters as received, repeats and all.
	params url.Values
	client *clients.Client
	// redirectURI is the redirect_uri parameter exactly as sent, "" if
	// absent; target is where answers go: it, or the one registered URI.
	redirectURI, target string
	// state is echoed in every answer (RFC 6749 §4.1.2); "" when absent,
	// repeated or malformed.
	state string
	// err is the first problem past client and redirect URI (an *Error
	// with an RFC 6749 §4.1.2.1 code); nil if none.
	err *Error

	scope     []string // resolved: requested, or the client's default
	resources []string // RFC 8707 §2
	challenge string   // PKCE S256 code_challenge (RFC 7636 §4.3)
	// prompt (OpenID Connect Core §3.1.2.1; valid values only: all false
	// when err says the parameter is malformed).
	promptNone, promptLogin, promptConsent, promptSelect bool
	maxAge                                               time.Duration // valid only when hasMaxAge
	hasMaxAge                                            bool

	// openid: the scope holds openid, an OpenID Connect request (Core
	// §3.1.2.1). Only then are nonce, login_hint and id_token_hint read.
	openid bool
	// nonce goes into the code as sent, to be echoed in the ID token.
	nonce string
	// loginHint pre-fills the login page's username.
	loginHint string
	// idTokenHint is the id_token_hint as sent; hintSubject the sub of it
	// once authorizeFlow.parse has verified it ("" if none).
	idTokenHint, hintSubject string
}

// authorizeParams collects an authorization request's parameters: the
// query of a GET; the query and the form body of a POST (RFC 6749 §3.1:
// the endpoint MAY accept POST), together, so that a parameter sent in
// both counts as repeated. Unparseable input is a page error: it is not
// known yet where an answer could be sent.
func authorizeParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errInvalidRequest("The request's query string is malformed.")
	}
	if r.Method != http.MethodPost {
		return q, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("The request body must be a form (application/x-www-form-urlencoded).")
	}
	body, err := readFormBody(w, r)
	if err != nil {
		return nil, err
	}
	for k, vs := range body {
		q[k] = append(q[k], vs...)
	}
	return q, nil
}

// readFormBody reads a bounded form body, without the query.
func readFormBody(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, oauthError(http.StatusRequestEntityTooLarge, codeInvalidRequest, "The request is too large.")
		}
		return nil, errInvalidRequest("The request body is malformed.")
	}
	return r.PostForm, nil
}

// pageParam is the one value of a parameter that decides where answers go
// (client_id, redirect_uri, response_mode): repeated, not UTF-8 or holding
// a control character, it makes the request unanswerable by redirect.
func pageParam(params url.Values, name string) (string, error) {
	vs := nonEmpty(params[name])
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", errInvalidRequest(name + " is repeated.")
	case !utf8.ValidString(vs[0]) || checkValue(name, vs[0]) != nil:
		return "", errInvalidRequest(name + " holds characters no valid value has.")
	}
	return vs[0], nil
}

// nonEmpty drops empty values: RFC 6749 §3.1, a parameter sent without a
// value is treated as omitted.
func nonEmpty(vs []string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
}

// parseAuthorization parses an authorization request. Its error (an *Error,
// shown on a page, never redirected) means the client or the redirect URI
// cannot be trusted: unknown client, a redirect URI not registered for it
// (exact match, RFC 6749 §3.1.2.3, RFC 9700 §2.1; loopback port: RFC 8252
// §7.3) or missing while several are registered (decision D16), either
// repeated (RFC 6749 §3.1), or a response_mode other than query. Every
// other problem goes in the request's err.
func parseAuthorization(params url.Values, reg *clients.Registry) (*authzRequest, error) {
	req := &authzRequest{params: params}
	id, err := pageParam(params, "client_id")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errInvalidRequest("The request names no client (client_id is missing).")
	}
	c, ok := reg.Get(id)
	if !ok {
		return nil, errInvalidRequest("The application is not registered here (unknown client_id).")
	}
	req.client = c
	req.openid = requestsOpenID(params)
	if req.redirectURI, err = pageParam(params, "redirect_uri"); err != nil {
		return nil, err
	}
	switch {
	case req.redirectURI != "" && !c.MatchRedirect(req.redirectURI):
		return nil, errInvalidRequest("The redirect_uri is not registered for this application.")
	case req.redirectURI != "":
		req.target = req.redirectURI
	case len(c.RedirectURIs) == 0:
		return nil, errInvalidRequest("This application has no redirect URI registered, so it cannot use this page.")
	case req.openid:
		// OpenID Connect Core §3.1.2.1: REQUIRED (decision D16).
		return nil, errInvalidRequest("The request has no redirect_uri, which an OpenID Connect request must carry.")
	case len(c.RedirectURIs) == 1:
		req.target = c.RedirectURIs[0]
	default:
		return nil, errInvalidRequest("The request has no redirect_uri, and the application has several registered.")
	}
	// Responses are query parameters only (RFC 6749 §4.1.2; the metadata's
	// response_modes_supported is ["query"]); OpenID Connect Core
	// §3.1.2.6: an unsupported mode is a 400 without a redirect.
	if mode, err := pageParam(params, "response_mode"); err != nil {
		return nil, err
	} else if mode != "" && mode != "query" {
		return nil, errInvalidRequest("The response_mode is not supported (only query is).")
	}
	req.parseRest(reg)
	return req, nil
}

// requestsOpenID reports whether a scope parameter holds openid: an OpenID
// Connect request (Core §3.1.2.1), which must name its redirect URI.
func requestsOpenID(params url.Values) bool {
	for _, v := range params["scope"] {
		if slices.Contains(scopeList(v), "openid") {
			return true
		}
	}
	return false
}

// unsupportedObjects are the OpenID Connect request parameters Keyturn
// does not support, with their errors (Core §3.1.2.6): request objects
// (§6) and dynamic registration data (§7.2.1). Nothing is fetched.
var unsupportedObjects = []struct{ name, code string }{
	{"request", "request_not_supported"},
	{"request_uri", "request_uri_not_supported"},
	{"registration", "registration_not_supported"},
}

// parseRest reads everything after the client and its redirect URI,
// recording the first problem in req.err.
func (req *authzRequest) parseRest(reg *clients.Registry) {
	fail := func(e *Error) {
		if req.err == nil {
			req.err = e
		}
	}
	p := make(url.Values, len(req.params))
	for name, vs := range req.params {
		vs = nonEmpty(vs)
		if len(vs) == 0 {
			continue
		}
		// State first: a repeated or malformed state is not echoed.
		valid := utf8.ValidString(name)
		for _, v := range vs {
			valid = valid && utf8.ValidString(v) && checkValue(name, v) == nil
		}
		switch {
		case !valid:
			fail(errInvalidRequest("parameter " + sanitizeDescription(truncate(name, 32)) + " holds characters no valid value has"))
		case len(vs) > 1 && !repeatable[name]:
			fail(errInvalidRequest("parameter " + sanitizeDescription(truncate(name, 32)) + " is repeated"))
		case name == "state":
			req.state = vs[0]
		}
		if valid && (len(vs) == 1 || repeatable[name]) {
			p[name] = vs // a repeated parameter is not read: its request fails
		}
	}
	c := req.client
	if req.openid {
		// First: a request object may hold the parameters missing outside it.
		for _, u := range unsupportedObjects {
			if _, has := p[u.name]; has {
				fail(oauthError(400, u.code, u.name+" is not supported"))
			}
		}
		req.nonce = p.Get("nonce") // as sent: the ID token echoes it exactly
		req.loginHint = p.Get("login_hint")
		req.idTokenHint = p.Get("id_token_hint")
		// display, ui_locales, claims_locales and acr_values are accepted
		// and ignored (Core §3.1.2.1, §15.1: they must not cause errors).
	}
	switch rt := p.Get("response_type"); {
	case rt == "":
		fail(errInvalidRequest("response_type is missing"))
	case rt != "code":
		fail(oauthError(400, "unsupported_response_type", "only response_type=code is supported"))
	case !c.AllowsGrant(clients.GrantAuthorizationCode):
		fail(errUnauthorizedClient("the client may not use the authorization code grant"))
	}
	// PKCE is required of every client, S256 only (decision D13; RFC 7636
	// §4.4.1: invalid_request). A missing method means plain (§4.3).
	req.challenge = p.Get("code_challenge")
	switch m := p.Get("code_challenge_method"); {
	case req.challenge == "":
		fail(errInvalidRequest("code_challenge required (PKCE, RFC 7636)"))
	case m != "S256":
		fail(errInvalidRequest("code_challenge_method must be S256; transform algorithm not supported"))
	case !isS256Challenge(req.challenge):
		fail(errInvalidRequest("code_challenge must be 43 base64url characters (S256)"))
	}
	req.parsePrompt(p.Get("prompt"), fail)
	if v := p.Get("max_age"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || strings.TrimLeft(v, "0123456789") != "" {
			fail(errInvalidRequest("max_age must be a non-negative integer"))
		} else {
			req.maxAge, req.hasMaxAge = time.Duration(n)*time.Second, true
		}
	}
	// Scope and resources as at the token endpoint (RFC 6749 §3.3, RFC
	// 8707 §2); an OpenID request first drops the scopes no client knows
	// (Core §3.1.2.1: "SHOULD be ignored"; decision D17), so that a known
	// scope this client may not have is still invalid_scope.
	if req.openid && p.Get("scope") != "" {
		scope := slices.DeleteFunc(scopeList(p.Get("scope")), func(s string) bool {
			return s != "openid" && !reg.KnowsScope(s)
		})
		p.Set("scope", strings.Join(scope, " "))
	}
	tr := tokenRequest{client: c}
	if err := tr.target(p); err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			fail(oe)
		}
		return
	}
	req.resources = tr.resources
	req.scope, _ = grantScope(tr.scope, c.AllowsScope, c.DefaultScopes)
}

// parsePrompt reads prompt (OpenID Connect Core §3.1.2.1): a set of none,
// login, consent and select_account; none only alone ("If this parameter
// contains none with any other value, an error is returned"); unknown
// values are ignored (the OP "MAY ignore" them).
func (req *authzRequest) parsePrompt(v string, fail func(*Error)) {
	values := scopeList(v)
	if slices.Contains(values, "none") && len(values) > 1 {
		fail(errInvalidRequest("prompt=none cannot be combined with other values"))
		return
	}
	for _, s := range values {
		switch s {
		case "none":
			req.promptNone = true
		case "login":
			req.promptLogin = true
		case "consent":
			req.promptConsent = true
		case "select_account":
			req.promptSelect = true
		}
	}
}

// isS256Challenge reports whether s can be an S256 code challenge: the
// base64url encoding, without padding, of 32 bytes (RFC 7636 §4.2).
func isS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// needsLogin reports whether the session s (nil: none) does not do for
// this request: no session, prompt=login, a sign-in max_age or more ago
// (OpenID Connect Core §3.1.2.1; so max_age=0 always asks, as with a
// clock of whole seconds it otherwise would not), or another user than
// the id_token_hint names (§3.1.2.2: never that user's tokens). The login
// POST does not ask it again: the sign-in it just did is the fresh one.
func (req *authzRequest) needsLogin(s *storage.BrowserSession, now time.Time) bool {
	return s == nil || req.promptLogin || req.hasMaxAge && now.Sub(s.AuthTime) >= req.maxAge ||
		req.hintSubject != "" && req.hintSubject != s.UserID
}

// responseURL is the redirect URI with the answer's parameters and state
// and iss (RFC 9207 §2) appended (appendQuery).
func (req *authzRequest) responseURL(issuer string, kv ...string) string {
	if req.state != "" {
		kv = append(kv, "state", req.state)
	}
	return appendQuery(req.target, append(kv, "iss", issuer)...)
}

// appendQuery is uri with the kv pairs appended as query parameters: the
// registered string kept as it is (RFC 6749 §3.1.2: its query is
// retained), each new value escaped.
func appendQuery(uri string, kv ...string) string {
	var b strings.Builder
	b.WriteString(uri)
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
		if strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&") {
			sep = ""
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(sep)
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[i+1]))
		sep = "&"
	}
	return b.String()
}

// authorizeFlow is what the authorization endpoint and its two forms
// share: the clients, the browser session, the pages, and what issues a
// code.
type authorizeFlow struct {
	issuer   string
	keys     *keys.Keys // verifies id_token_hint
	clients  *clientSet
	browser  *browserAuth
	pages    *pages
	codes    storage.Codes
	consents storage.Consents
	users    storage.Users
	codeTTL  time.Duration
	now      func() time.Time
	log      *slog.Logger
	// challenges remembers recently used PKCE challenges per client, to
	// detect a client that reuses one (RFC 9700 §2.1.1 encourages it).
	challenges     *lru.Cache[[sha256.Size]byte, time.Time]
	challengeReuse prometheus.Counter
}

// recentChallenges bounds the challenges remembered (about 100 bytes
// each); challengeWindow is how long a reuse counts as one.
const (
	recentChallenges = 65536
	challengeWindow  = 10 * time.Minute
)

// authorizeHandler serves GET and POST /oauth2/authorize (RFC 6749 §3.1,
// §4.1.1). Order of checks (decision D15): client and redirect URI (an
// error page), then the user (login page, or login_required for
// prompt=none), then the rest of the request (error redirect), then
// consent.
type authorizeHandler struct{ *authorizeFlow }

func (h authorizeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, err := authorizeParams(w, r)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	req, err := h.parse(r.Context(), params)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	infoFrom(r.Context()).clientID = req.client.ID
	s, err := h.browser.session(r.Context(), r)
	if err != nil {
		h.redirectError(w, r, req, err)
		return
	}
	switch {
	case req.needsLogin(s, h.now()) && req.promptNone:
		// OpenID Connect Core §3.1.2.6: no page may be shown.
		h.redirectError(w, r, req, oauthError(400, "login_required", "the user is not signed in"))
	case req.needsLogin(s, h.now()):
		h.showLogin(w, r, req, http.StatusOK, "", req.loginHint)
	case req.promptSelect:
		h.showSelect(w, r, req, s)
	default:
		h.proceed(w, r, req, s, false)
	}
}

// parse parses an authorization request (parseAuthorization) and verifies
// its id_token_hint (OpenID Connect Core §3.1.2.1, §3.1.2.2): signed by a
// key of this server, with its issuer; an expired one is accepted ("SHOULD
// accept ID Tokens ... even when the exp time has passed"). A hint that
// does not verify is invalid_request, by redirect like any error after
// the client.
func (f *authorizeFlow) parse(ctx context.Context, params url.Values) (*authzRequest, error) {
	req, err := parseAuthorization(params, f.clients.registry())
	if err != nil || req.idTokenHint == "" || req.err != nil {
		return req, err
	}
	claims, err := f.keys.ParseIDToken(ctx, req.idTokenHint, f.issuer)
	switch {
	case errors.Is(err, tokens.ErrMalformed):
		req.err = errInvalidRequest("id_token_hint is not an ID token issued here")
	case err != nil:
		return nil, fmt.Errorf("id_token_hint: %w", err)
	case claims.Subject == "":
		req.err = errInvalidRequest("id_token_hint names no subject")
	default:
		req.hintSubject = claims.Subject
	}
	return req, nil
}

// pageError answers on a page what cannot be answered by redirect.
// readForm reads the POST of one of the pages' forms: the form, and the
// request it carries in its hidden "request" field, which the caller checks
// again as if it came anew, so that a form can ask for nothing the
// endpoint would refuse. On failure it has answered with the error page.
func (f *authorizeFlow) readForm(w http.ResponseWriter, r *http.Request) (form, request url.Values, ok bool) {
	form, err := parseForm(w, r)
	if err != nil {
		f.pageError(w, r, err)
		return nil, nil, false
	}
	request, err = url.ParseQuery(form.Get("request"))
	if err != nil {
		f.pageError(w, r, errInvalidRequest("The form is malformed."))
		return nil, nil, false
	}
	return form, request, true
}

// formRequest is readForm for the authorization pages' forms (login,
// consent, account choice): the authorization request they carry, parsed
// by the endpoint's own parse.
func (f *authorizeFlow) formRequest(w http.ResponseWriter, r *http.Request) (url.Values, *authzRequest, bool) {
	form, params, ok := f.readForm(w, r)
	if !ok {
		return nil, nil, false
	}
	req, err := f.parse(r.Context(), params)
	if err != nil {
		f.pageError(w, r, err)
		return nil, nil, false
	}
	infoFrom(r.Context()).clientID = req.client.ID
	return form, req, true
}

// sessionForm returns the browser session a signed-in form was posted
// from, if the form's CSRF token is purpose's for that session (RFC 6749
// §10.12); otherwise 403 and nothing happens. On failure it has answered.
func (f *authorizeFlow) sessionForm(w http.ResponseWriter, r *http.Request, req *authzRequest, form url.Values, purpose string) (*storage.BrowserSession, bool) {
	s, err := f.browser.session(r.Context(), r)
	if err != nil {
		f.redirectError(w, r, req, err)
		return nil, false
	}
	if s == nil || !f.browser.checkForm(purpose, consentBinding(s), form.Get("csrf")) {
		f.pageError(w, r, errForbiddenForm)
		return nil, false
	}
	return s, true
}

func (f *authorizeFlow) pageError(w http.ResponseWriter, r *http.Request, err error) {
	writePageError(w, r, f.log, f.pages, err)
}

// redirectError answers err by redirect to the client (RFC 6749 §4.1.2.1).
func (f *authorizeFlow) redirectError(w http.ResponseWriter, r *http.Request, req *authzRequest, err error) {
	oe := authorizationError(r, f.log, err)
	f.redirect(w, r, req.responseURL(f.issuer, "error", oe.Code, "error_description", sanitizeDescription(oe.Description)))
}

// redirect sends the browser to the client: 302 for a GET, 303 after a
// POST (RFC 9700 §4.12: never 307, which would repost the form). The
// Location may hold a code: no referrer, no caching.
func (f *authorizeFlow) redirect(w http.ResponseWriter, r *http.Request, location string) {
	h := w.Header()
	h.Set("Location", location)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	status := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	w.WriteHeader(status)
}

// showLogin shows the login page for req.
func (f *authorizeFlow) showLogin(w http.ResponseWriter, r *http.Request, req *authzRequest, status int, message, username string) {
	binding := f.browser.loginBinding(w, r)
	f.pages.render(w, r, status, pageData{
		Kind: pageLogin, Title: "Sign in", Action: f.issuer + PathLogin,
		CSRF: f.browser.formToken(formLogin, binding), Request: req.params.Encode(),
		Client: req.client.Name, Username: username, Message: message,
	})
}

// proceed continues a request whose user is authenticated by session s;
// interacted: the user signed in on the login page in this same request.
func (f *authorizeFlow) proceed(w http.ResponseWriter, r *http.Request, req *authzRequest, s *storage.BrowserSession, interacted bool) {
	if req.err != nil {
		f.redirectError(w, r, req, req.err)
		return
	}
	if req.hintSubject != "" && req.hintSubject != s.UserID {
		// OpenID Connect Core §3.1.2.2: the user who signed in is not the
		// one the id_token_hint names; never answer with their tokens.
		f.redirectError(w, r, req, oauthError(400, "login_required", "the signed-in user is not the one id_token_hint names"))
		return
	}
	need, err := f.consentNeeded(r.Context(), req, s, interacted)
	switch {
	case err != nil:
		f.redirectError(w, r, req, err)
	case need == consentNone:
		f.issue(w, r, req, s)
	case req.promptNone && need == consentBrief:
		f.redirectError(w, r, req, oauthError(400, "interaction_required", "the user must confirm this application"))
	case req.promptNone:
		f.redirectError(w, r, req, oauthError(400, "consent_required", "the user has not allowed this application"))
	default:
		f.showConsent(w, r, req, s, need == consentBrief)
	}
}

// issue stores a new code for req and sends the browser back with it
// (RFC 6749 §4.1.2). Only the code's hash is stored.
func (f *authorizeFlow) issue(w http.ResponseWriter, r *http.Request, req *authzRequest, s *storage.BrowserSession) {
	now := f.now().UTC()
	code := tokens.NewSecret()
	err := f.codes.CreateCode(r.Context(), storage.AuthCode{
		Hash: tokens.HashSecret(code), ClientID: req.client.ID, UserID: s.UserID,
		RedirectURI: req.redirectURI, CodeChallenge: req.challenge, Nonce: req.nonce,
		Scope: strings.Join(req.scope, " "), Resources: req.resources,
		BrowserSessionID: s.ID, AuthTime: s.AuthTime,
		CreatedAt: now, ExpiresAt: now.Add(f.codeTTL),
	})
	if err != nil {
		f.redirectError(w, r, req, fmt.Errorf("store code: %w", err))
		return
	}
	f.noteChallenge(r.Context(), req, now)
	f.redirect(w, r, req.responseURL(f.issuer, "code", code))
}

// noteChallenge logs and counts a PKCE challenge that the client already
// used within challengeWindow (RFC 9700 §2.1.1: detect constant
// challenges). It does not refuse: a person may open one link twice. The
// memory is per instance and bounded, so detection is best effort.
func (f *authorizeFlow) noteChallenge(ctx context.Context, req *authzRequest, now time.Time) {
	key := sha256.Sum256([]byte(req.client.ID + "\x00" + req.challenge))
	if prev, ok := f.challenges.Get(key); ok && now.Sub(prev) < challengeWindow {
		f.challengeReuse.Inc()
		f.log.WarnContext(ctx, "PKCE code_challenge reused by client", "client_id", req.client.ID)
	}
	f.challenges.Add(key, now)
}

// newAuthorizeFlow builds what the authorization endpoint and its forms share.
func newAuthorizeFlow(o Options, cs *clientSet, log *slog.Logger, m *metrics) (*authorizeFlow, error) {
	ao := o.Authorize.withDefaults()
	challenges, err := lru.New[[sha256.Size]byte, time.Time](recentChallenges)
	if err != nil {
		return nil, err
	}
	return &authorizeFlow{
		issuer: o.Issuer, keys: o.Keys, clients: cs,
		browser: &browserAuth{
			sessions: o.Store, keys: o.Keys, ttl: ao.BrowserSessionTTL, now: o.Now,
			secure: strings.HasPrefix(o.Issuer, "https://"),
		},
		pages:    &pages{issuer: o.Issuer, product: ao.ProductName, logo: ao.Logo, log: log},
		codes:    o.Store,
		consents: o.Store,
		users:    o.Store,
		codeTTL:  ao.CodeTTL,
		now:      o.Now,
		log:      log,

		challenges:     challenges,
		challengeReuse: m.pkceReuse,
	}, nil
}

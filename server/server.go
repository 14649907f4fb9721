// Package server is Keyturn's HTTP surface: the token endpoint and its
// grants, metadata (RFC 8414), the JWKS, and the OAuth error responses
// (RFC 6749 §5.2). It reaches the database only through storage.Store and
// never reads a file, flag or environment variable: cmd hands it values.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
)

// Endpoint paths (a contract: tests outside this repository use them).
const (
	PathToken      = "/oauth2/token"
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	// PathUserInfo is OpenID Connect's UserInfo endpoint (Core §5.3).
	PathUserInfo = "/oauth2/userinfo"
	PathMetadata = "/.well-known/oauth-authorization-server"
	// PathOpenIDConfiguration is the OpenID Provider configuration
	// document (OpenID Connect Discovery 1.0 §4).
	PathOpenIDConfiguration = "/.well-known/openid-configuration"
	PathJWKS                = "/.well-known/jwks.json"
	PathMetrics             = "/metrics" // Prometheus exposition
	PathHealth              = "/healthz" // the process is alive
	PathReady               = "/readyz"  // and can serve: database, schema, signing key
	// PathAuthorize is the authorization endpoint (RFC 6749 §3.1); its
	// pages post their forms to PathLogin, PathConsent and
	// PathSelectAccount (prompt=select_account).
	PathAuthorize     = "/oauth2/authorize"
	PathLogin         = PathAuthorize + "/login"
	PathConsent       = PathAuthorize + "/consent"
	PathSelectAccount = PathAuthorize + "/select"
	// PathLogout is the end_session_endpoint (OpenID Connect RP-Initiated
	// Logout 1.0 §2); its confirmation page posts to PathLogoutConfirm.
	PathLogout        = "/oauth2/logout"
	PathLogoutConfirm = PathLogout + "/confirm"
	// PathStyle and PathLogo are the pages' stylesheet and optional logo,
	// served from Keyturn's own origin (RFC 9700 §4.2.4).
	PathStyle = "/assets/style.css"
	PathLogo  = "/assets/logo"
)

// Options are the server's dependencies and settings.
type Options struct {
	Issuer  string
	Store   storage.Store
	Clients *clients.Registry
	Keys    *keys.Keys
	Logger  *slog.Logger
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// Login protects the password grant: throttling.
	Login LoginOptions
	// Hashes is the process's one budget for argon2id checks, shared with
	// the client registry (SlowChecks.Limiter); logins past its slots and
	// queue are shed with 503 and Retry-After. nil: a limiter of its own
	// with the default size (tests).
	Hashes *passhash.Limiter
	// RequestTimeout bounds each request's wait for the database (default
	// 5s): when it is down or hanging, requests answer 503 instead of piling up.
	RequestTimeout time.Duration
	// Ready reports whether the server can serve (database reachable,
	// schema current); default Store.Ping. /readyz also checks the keys.
	Ready func(ctx context.Context) error
	// Collectors are added to /metrics beside the server's own metrics:
	// cmd hands it the process-wide ones (Go runtime, process, the
	// database pool's statistics), so that the server imports no database
	// package (DESIGN.md §9).
	Collectors []prometheus.Collector
	// Authorize configures the authorization endpoint and its pages.
	Authorize AuthorizeOptions
	// SeparateAdmin leaves /metrics, /healthz and /readyz off the public
	// handler; serve them from AdminHandler on a listener of their own.
	SeparateAdmin bool
}

// LoginOptions protect the password grant and client authentication: the
// throttle's bars and timings, and the proxies whose X-Forwarded-For names
// a request's source address.
type LoginOptions struct {
	throttle.Options
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a request's source address.
	TrustedProxies []netip.Prefix
}

// AuthorizeOptions configure the authorization endpoint and its pages.
type AuthorizeOptions struct {
	CodeTTL           time.Duration // authorization code lifetime; default 60s
	BrowserSessionTTL time.Duration // browser login session absolute lifetime; default 12h
	ProductName       string        // shown on the pages; default "Keyturn"
	Logo              []byte        // optional PNG/JPEG/GIF/WebP, served from Keyturn's origin
}

// Defaults of AuthorizeOptions.
const (
	DefaultCodeTTL           = time.Minute
	DefaultBrowserSessionTTL = 12 * time.Hour
	DefaultProductName       = "Keyturn"
)

func (o AuthorizeOptions) withDefaults() AuthorizeOptions {
	if o.CodeTTL <= 0 {
		o.CodeTTL = DefaultCodeTTL
	}
	if o.BrowserSessionTTL <= 0 {
		o.BrowserSessionTTL = DefaultBrowserSessionTTL
	}
	if o.ProductName == "" {
		o.ProductName = DefaultProductName
	}
	return o
}

// Server is the authorization server's HTTP surface.
type Server struct {
	public  http.Handler
	admin   http.Handler
	clients *clientSet
	log     *slog.Logger
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Issuer == "" || o.Store == nil || o.Clients == nil || o.Keys == nil || o.Logger == nil {
		return nil, errors.New("server: issuer, store, clients, keys and logger are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Hashes == nil {
		o.Hashes = passhash.NewLimiter(0, 0)
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Ready == nil {
		o.Ready = o.Store.Ping
	}
	log := slog.New(requestIDHandler{o.Logger.Handler()})
	met := newMetrics(o.Keys, o.Collectors)
	th := throttle.New(o.Store, o.Login.Options, o.Now)
	guard := &clientGuard{throttle: th, trusted: o.Login.TrustedProxies}
	users, err := newUserAuth(o.Store, th, o.Hashes, met)
	if err != nil {
		return nil, err
	}
	cs := newClientSet(o.Issuer, o.Clients)
	m := &minter{issuer: o.Issuer, keys: o.Keys}
	grants := map[grantType]grant{
		grantPassword: passwordGrant{users: users, families: o.Store, keys: o.Keys, minter: m, now: o.Now},
		grantRefreshToken: refreshGrant{families: o.Store, keys: o.Keys, minter: m,
			now: o.Now, log: log, metrics: met},
		grantClientCredentials: clientCredentialsGrant{minter: m, now: o.Now},
		grantAuthorizationCode: codeGrant{codes: o.Store, families: o.Store, keys: o.Keys, minter: m,
			now: o.Now, log: log, metrics: met},
	}
	az, err := newAuthorizeFlow(o, cs, log, met)
	if err != nil {
		return nil, err
	}
	ops := tokenOpEndpoint{clients: cs, guard: guard, keys: o.Keys, now: o.Now, log: log}
	access := accessChecker{clients: cs, keys: o.Keys, denylist: o.Store, now: o.Now}
	d := routeDeps{
		token:      &tokenHandler{clients: cs, guard: guard, grants: grants, log: log, trusted: o.Login.TrustedProxies},
		revoke:     &revokeHandler{tokenOpEndpoint: ops, families: o.Store, denylist: o.Store},
		introspect: &introspectHandler{tokenOpEndpoint: ops, access: access, denylist: o.Store},
		userinfo:   &userInfoHandler{access: access, users: o.Store, log: log},
		metadata:   &metadataHandler{clients: cs},
		openIDConf: &metadataHandler{clients: cs, openID: true},
		authorize:  authorizeHandler{az},
		login:      loginHandler{authorizeFlow: az, users: users, trusted: o.Login.TrustedProxies},
		consent:    consentHandler{az},
		selectAcct: selectHandler{az},
		logout:     logoutHandler{authorizeFlow: az, families: o.Store},
		logo:       http.HandlerFunc(az.pages.serveLogo),
		jwks:       &jwksHandler{keys: o.Keys, log: log},
		ready:      &readyHandler{ready: o.Ready, keys: o.Keys, log: log},
		metrics:    met,
		trusted:    o.Login.TrustedProxies,
		timeout:    o.RequestTimeout,
		log:        log,
	}
	s := &Server{clients: cs, log: log, admin: adminRoutes(d)}
	if o.SeparateAdmin {
		s.public = routes(d, nil)
	} else {
		s.public = routes(d, s.admin)
	}
	return s, nil
}

// ServeHTTP serves the public endpoints (and, unless Options.SeparateAdmin,
// the admin ones).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.public.ServeHTTP(w, r) }

// AdminHandler serves /metrics, /healthz and /readyz, for a listener of
// their own (Options.SeparateAdmin).
func (s *Server) AdminHandler() http.Handler { return s.admin }

// SetClients swaps in a new client registry (a configuration reload): every
// request sees the old registry or the new one whole. Tokens of a client
// that is gone stop refreshing (the client cannot authenticate) and
// introspect inactive.
func (s *Server) SetClients(reg *clients.Registry) {
	s.clients.set(reg)
	s.log.Info("clients reloaded", "clients", reg.IDs())
}

type routeDeps struct {
	token      http.Handler
	revoke     http.Handler
	introspect http.Handler
	userinfo   http.Handler // GET and POST; answers 405 itself
	metadata   http.Handler
	openIDConf http.Handler
	authorize  http.Handler // GET and POST
	login      http.Handler // the login page's form
	consent    http.Handler // the consent page's form
	selectAcct http.Handler // the account choice's form
	logout     http.Handler // GET and POST; POST only on PathLogoutConfirm
	logo       http.Handler
	jwks       http.Handler
	ready      http.Handler
	metrics    *metrics
	trusted    []netip.Prefix // proxies whose X-Forwarded-For is believed
	timeout    time.Duration
	log        *slog.Logger
}

// routes is the whole public HTTP surface, top to bottom; admin, if not
// nil, serves the admin paths on the same listener.
func routes(d routeDeps, admin http.Handler) http.Handler {
	r := strictRouter()
	// in instruments an endpoint; timed also gives each request a deadline
	// for its database work (Options.RequestTimeout).
	in := func(endpoint string, h http.Handler) http.Handler { return instrument(endpoint, 0, d, h) }
	timed := func(endpoint string, h http.Handler) http.Handler { return instrument(endpoint, d.timeout, d, h) }
	// POST-only endpoints answer 405 themselves, with a JSON body.
	r.Handle(PathToken, timed("token", d.token))
	r.Handle(PathRevoke, timed("revoke", d.revoke))
	r.Handle(PathIntrospect, timed("introspect", d.introspect))
	r.Handle(PathUserInfo, timed("userinfo", d.userinfo))
	r.Handle(PathMetadata, in("metadata", d.metadata)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathOpenIDConfiguration, in("metadata", d.openIDConf)).Methods(http.MethodGet, http.MethodHead)
	// The authorization endpoint and its pages (RFC 6749 §3.1). No CORS
	// here (RFC 9700 §2.6): nothing sets Access-Control-* headers.
	r.Handle(PathAuthorize, timed("authorize", d.authorize)).Methods(http.MethodGet, http.MethodPost)
	r.Handle(PathLogin, timed("authorize", d.login)).Methods(http.MethodPost)
	r.Handle(PathConsent, timed("authorize", d.consent)).Methods(http.MethodPost)
	r.Handle(PathSelectAccount, timed("authorize", d.selectAcct)).Methods(http.MethodPost)
	r.Handle(PathLogout, timed("logout", d.logout)).Methods(http.MethodGet, http.MethodPost)
	r.Handle(PathLogoutConfirm, timed("logout", d.logout)).Methods(http.MethodPost)
	r.Handle(PathStyle, in("assets", http.HandlerFunc(serveStyle))).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathLogo, in("assets", d.logo)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathJWKS, timed("jwks", d.jwks)).Methods(http.MethodGet, http.MethodHead)
	if admin != nil {
		for _, p := range []string{PathMetrics, PathHealth, PathReady} {
			r.Handle(p, admin)
		}
	}
	notFound(r, d)
	return r
}

// adminRoutes serves the operator's endpoints. They are not instrumented:
// scrapes and probes would drown the request metrics and the access log.
func adminRoutes(d routeDeps) http.Handler {
	r := strictRouter()
	r.Handle(PathMetrics, d.metrics.handler()).Methods(http.MethodGet)
	r.HandleFunc(PathHealth, health).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathReady, d.ready).Methods(http.MethodGet, http.MethodHead)
	notFound(r, d)
	return r
}

// strictRouter matches paths exactly as sent: no redirect of "/a/../b" or
// "//b" (a 301 with an HTML body, which a client following it would turn
// into a GET), and no decoding of "%2F" into a separator. Anything else is
// a JSON 404.
func strictRouter() *mux.Router {
	return mux.NewRouter().SkipClean(true).UseEncodedPath()
}

func notFound(r *mux.Router, d routeDeps) {
	r.NotFoundHandler = instrument("other", 0, d, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, d.log, errNotFound())
	}))
	// RFC 9110 §15.5.6: a 405 lists the methods the route does take. Every
	// path is fixed, so each has one route and one list, read off the router
	// once (notFound is called after the last route is added).
	allow := map[string]string{}
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, perr := route.GetPathTemplate()
		methods, merr := route.GetMethods()
		if perr == nil && merr == nil {
			allow[path] = strings.Join(methods, ", ")
		}
		return nil
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, d.log, errMethodNotAllowed(allow[req.URL.EscapedPath()]))
	})
}

// health answers 200 while the process serves HTTP at all (liveness).
func health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyHandler answers 200 when the server can serve tokens: the database
// answers with a current schema and a signing key is loaded; else 503, with
// the cause in the log only.
type readyHandler struct {
	ready func(ctx context.Context) error
	keys  *keys.Keys
	log   *slog.Logger
}

func (h *readyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := h.ready(ctx)
	if err == nil {
		err = h.keys.Ready(ctx)
	}
	if err != nil {
		h.log.WarnContext(ctx, "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

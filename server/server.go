// Package server is Keyturn's HTTP surface: the token endpoint and its
// grants, metadata (RFC 8414), the JWKS, and the OAuth error responses
// (RFC 6749 §5.2). It reaches the database only through storage.Store and
// never reads a file, flag or environment variable: cmd hands it values.
package server

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/storage"
)

// Endpoint paths (a contract: tests outside this repository use them).
const (
	PathToken      = "/oauth2/token"
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	PathMetadata   = "/.well-known/oauth-authorization-server"
	PathJWKS       = "/.well-known/jwks.json"
)

// Options are the server's dependencies and settings.
type Options struct {
	Issuer  string
	Store   storage.Store
	Clients *clients.Registry
	Keys    *Keys
	Logger  *slog.Logger
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// MaxConcurrentHashes bounds argon2id password checks running at once
	// (default: the number of CPUs).
	MaxConcurrentHashes int
}

// Server is the HTTP handler of the authorization server.
type Server struct {
	handler http.Handler
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Issuer == "" || o.Store == nil || o.Clients == nil || o.Keys == nil || o.Logger == nil {
		return nil, errors.New("server: issuer, store, clients, keys and logger are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	users, err := newUserAuth(o.Store, o.MaxConcurrentHashes)
	if err != nil {
		return nil, err
	}
	m := &minter{issuer: o.Issuer, keys: o.Keys}
	grants := map[string]grant{
		clients.GrantPassword:          passwordGrant{store: o.Store, keys: o.Keys, minter: m, now: o.Now},
		clients.GrantRefreshToken:      refreshGrant{store: o.Store, keys: o.Keys, minter: m, now: o.Now, log: o.Logger},
		clients.GrantClientCredentials: clientCredentialsGrant{minter: m, now: o.Now},
	}
	s := &Server{}
	s.handler = routes(routeDeps{
		token: &tokenHandler{
			clients: o.Clients, grants: grants, log: o.Logger,
			lib: newTokenLib(grants, users.authenticate),
		},
		revoke:     &revokeHandler{clients: o.Clients, store: o.Store, keys: o.Keys, now: o.Now, log: o.Logger},
		introspect: &introspectHandler{clients: o.Clients, store: o.Store, keys: o.Keys, now: o.Now, log: o.Logger},
		metadata:   newMetadataHandler(o.Issuer, o.Clients),
		jwks:       &jwksHandler{keys: o.Keys, log: o.Logger},
		log:        o.Logger,
	})
	return s, nil
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type routeDeps struct {
	token      http.Handler
	revoke     http.Handler
	introspect http.Handler
	metadata   http.Handler
	jwks       http.Handler
	log        *slog.Logger
}

// routes is the whole HTTP surface, top to bottom.
func routes(d routeDeps) http.Handler {
	r := mux.NewRouter()
	// POST-only endpoints answer 405 themselves, with a JSON body.
	r.Handle(PathToken, d.token)
	r.Handle(PathRevoke, d.revoke)
	r.Handle(PathIntrospect, d.introspect)
	r.Handle(PathMetadata, d.metadata).Methods(http.MethodGet, http.MethodHead)
	r.Handle(PathJWKS, d.jwks).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, d.log, errNotFound())
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, d.log, errMethodNotAllowed(strings.Join([]string{http.MethodGet, http.MethodHead}, ", ")))
	})
	return r
}

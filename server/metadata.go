package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
)

// metadata is the RFC 8414 §2 authorization server metadata document.
// response_types_supported is omitted, not [] and not ["none"]: there is no
// authorization endpoint (DESIGN.md decision D2, RFC 8414 errata 7793).
type metadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	// RFC 8414 §2: revocation accepts the token endpoint's methods;
	// introspection only confidential resource servers (no "none").
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
}

// metadataHandler serves the document rendered for the current clients.
type metadataHandler struct {
	clients *clientSet
}

// renderMetadata renders the document for a registry.
func renderMetadata(issuer string, reg *clients.Registry) []byte {
	m := metadata{
		Issuer:                issuer,
		TokenEndpoint:         issuer + PathToken,
		JWKSURI:               issuer + PathJWKS,
		RevocationEndpoint:    issuer + PathRevoke,
		IntrospectionEndpoint: issuer + PathIntrospect,
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
	}
	grants, scopes := map[string]bool{}, map[string]bool{}
	public := false
	for _, id := range reg.IDs() {
		c, _ := reg.Get(id)
		for _, g := range []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials} {
			if c.AllowsGrant(g) {
				grants[g] = true
			}
		}
		for _, s := range c.Scopes {
			scopes[s] = true
		}
		public = public || c.Public
	}
	// Only grants some client may use are listed (RFC 9700 §2.4: the
	// password grant is advertised only where it is on).
	m.GrantTypesSupported = sortedKeys(grants)
	m.ScopesSupported = sortedKeys(scopes)
	m.TokenEndpointAuthMethodsSupported = []string{"client_secret_basic", "client_secret_post"}
	if public {
		m.TokenEndpointAuthMethodsSupported = append(m.TokenEndpointAuthMethodsSupported, "none")
	}
	m.RevocationEndpointAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
	body, _ := json.MarshalIndent(m, "", "  ")
	return append(body, '\n')
}

func (h *metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(h.clients.metadata())
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Clip(out)
}

// jwksHandler serves the published signing keys (RFC 7517 §5): public
// material only.
type jwksHandler struct {
	keys *keys.Keys
	log  *slog.Logger
}

func (h *jwksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set, err := h.keys.Published(r.Context())
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Short enough that a rotated-in key reaches caches before it signs
	// (keys.rotation_delay is at least keys.MinRotationDelay). It is also
	// how long a resource server may still hold a revoked key: the set
	// itself drops it at once (Keys.Revoke; README).
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(keys.JWKSMaxAge/time.Second)))
	_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: set})
}

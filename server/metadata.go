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
// The authorization endpoint's members are published while some client
// has the authorization_code grant; without one, there is no grant that
// uses the endpoint (RFC 8414 §2: authorization_endpoint is then not
// required), and response_types_supported is omitted, not [] and not
// ["none"] (DESIGN.md decision D2, RFC 8414 errata 7793).
type metadata struct {
	Issuer                 string   `json:"issuer"`
	AuthorizationEndpoint  string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint          string   `json:"token_endpoint"`
	JWKSURI                string   `json:"jwks_uri"`
	RevocationEndpoint     string   `json:"revocation_endpoint"`
	IntrospectionEndpoint  string   `json:"introspection_endpoint"`
	ResponseTypesSupported []string `json:"response_types_supported,omitempty"`
	// RFC 8414 §2: the default, ["query", "fragment"], would claim
	// fragment; Keyturn answers in the query only.
	ResponseModesSupported []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported    []string `json:"grant_types_supported"`
	// RFC 7636 §4.2, RFC 9700 §2.1.1: S256 only, required of every client.
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported,omitempty"`
	// RFC 9207 §3: every authorization response carries iss.
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	// RFC 8414 §2: revocation accepts the token endpoint's methods;
	// introspection only confidential resource servers (no "none").
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
	// OpenID Connect's endpoints, in both documents (RFC 8414 §2 admits
	// them; the two documents must agree, RFC 8414 §4 and Discovery §3).
	UserInfoEndpoint   string `json:"userinfo_endpoint,omitempty"`
	EndSessionEndpoint string `json:"end_session_endpoint,omitempty"`
	// openIDMetadata is set in the OpenID Provider document only.
	*openIDMetadata
}

// openIDMetadata are the members only OpenID Connect Discovery 1.0 §3
// defines. The false ones are published because their absence would mean
// something else: request_uri_parameter_supported defaults to true.
type openIDMetadata struct {
	// Public subjects only: sub is the user's ID (Core §8).
	SubjectTypesSupported []string `json:"subject_types_supported"`
	// RS256 always (Discovery §3: it MUST be listed), and every algorithm
	// a client has chosen with id_token_signed_response_alg.
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
	RequestParameterSupported        bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported     bool     `json:"request_uri_parameter_supported"`
	ClaimsParameterSupported         bool     `json:"claims_parameter_supported"`
}

// claimsSupported are the claims Keyturn can return: in the ID token (Core
// §2; sid as in Front-Channel Logout §3) and from UserInfo (Core §5.1).
var claimsSupported = []string{
	"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
	"name", "preferred_username", "email", "email_verified",
}

// metadataHandler serves a document rendered for the current clients:
// the RFC 8414 one, or the OpenID Provider one (Discovery 1.0 §4).
type metadataHandler struct {
	clients *clientSet
	openID  bool
}

// renderMetadata renders both documents for a registry from one value, so
// that they agree on every member they share.
func renderMetadata(issuer string, reg *clients.Registry) (oauth, openID []byte) {
	m := metadata{
		Issuer:                issuer,
		TokenEndpoint:         issuer + PathToken,
		JWKSURI:               issuer + PathJWKS,
		RevocationEndpoint:    issuer + PathRevoke,
		IntrospectionEndpoint: issuer + PathIntrospect,
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
	}
	grants, scopes, algs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	public := false
	for _, id := range reg.IDs() {
		c, _ := reg.Get(id)
		for _, g := range []string{clients.GrantAuthorizationCode, clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials} {
			if c.AllowsGrant(g) {
				grants[g] = true
			}
		}
		for _, s := range c.Scopes {
			scopes[s] = true
		}
		if c.IDTokenAlg != "" && c.IDTokenAlg != clients.DefaultIDTokenAlg {
			algs[c.IDTokenAlg] = true
		}
		public = public || c.Public
	}
	// Only grants some client may use are listed (RFC 9700 §2.4: the
	// password grant is advertised only where it is on).
	m.GrantTypesSupported = sortedKeys(grants)
	if grants[clients.GrantAuthorizationCode] {
		m.AuthorizationEndpoint = issuer + PathAuthorize
		m.ResponseTypesSupported = []string{"code"}
		m.ResponseModesSupported = []string{"query"}
		m.CodeChallengeMethodsSupported = []string{pkceS256.String()}
		m.AuthorizationResponseISSParameterSupported = true
		// OpenID Connect is the code flow here: its endpoints and scope
		// values come with it (Discovery §3: openid MUST be supported).
		m.UserInfoEndpoint = issuer + PathUserInfo
		m.EndSessionEndpoint = issuer + PathLogout
		for _, s := range []string{"openid", scopeProfile, scopeEmail} {
			scopes[s] = true
		}
	}
	m.ScopesSupported = sortedKeys(scopes)
	m.TokenEndpointAuthMethodsSupported = []string{"client_secret_basic", "client_secret_post"}
	if public {
		m.TokenEndpointAuthMethodsSupported = append(m.TokenEndpointAuthMethodsSupported, "none")
	}
	m.RevocationEndpointAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
	oauth = marshalMetadata(m)
	m.openIDMetadata = &openIDMetadata{
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: append([]string{clients.DefaultIDTokenAlg}, sortedKeys(algs)...),
		ClaimsSupported:                  claimsSupported,
	}
	return oauth, marshalMetadata(m)
}

func marshalMetadata(m metadata) []byte {
	body, _ := json.MarshalIndent(m, "", "  ")
	return append(body, '\n')
}

func (h *metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	allowAnyOrigin(w)
	doc := h.clients.metadata()
	if h.openID {
		doc = h.clients.openIDConfiguration()
	}
	_, _ = w.Write(doc)
}

// allowAnyOrigin lets a script on any origin read the response (CORS,
// Discovery §4 and Core §5.3 recommend it): only for the public documents,
// the two metadata documents and the JWKS, which hold nothing a caller's
// credentials could unlock. No other endpoint answers CORS.
func allowAnyOrigin(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
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
	allowAnyOrigin(w)
	// Short enough that a rotated-in key reaches caches before it signs
	// (keys.rotation_delay is at least keys.MinRotationDelay). It is also
	// how long a resource server may still hold a revoked key: the set
	// itself drops it at once (Keys.Revoke; README).
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(keys.JWKSMaxAge/time.Second)))
	_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: set})
}

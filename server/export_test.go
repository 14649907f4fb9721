package server

// Exports of unexported functions for the external tests and benchmarks
// (package server_test), which use the test kit server/servertest; an
// internal test cannot, since the kit imports server.

import (
	"net/http"

	"github.com/keyturn/keyturn/clients"
)

// ParseAndAuthenticate is the first step of every token-endpoint request:
// parseForm, then authenticateClient without a failure guard.
func ParseAndAuthenticate(w http.ResponseWriter, r *http.Request, reg *clients.Registry) error {
	form, err := parseForm(w, r)
	if err != nil {
		return err
	}
	_, err = authenticateClient(r, form, reg, nil)
	return err
}

// TokenResponse is the token endpoint's success body (RFC 6749 §5.1).
type TokenResponse = tokenResponse

// Introspection is the introspection response (RFC 7662 §2.2).
type Introspection = introspection

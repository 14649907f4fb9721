package server

import (
	"testing"

	"github.com/keyturn/keyturn/clients"
)

// The library's vocabulary must be the one clients are configured in and
// the one RFC 6749 registers: an upgrade that renamed a value would
// otherwise refuse every grant or send an unregistered error code.
func TestLibraryVocabulary(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{grantPassword.String(), clients.GrantPassword},         // RFC 6749 §4.3.2
		{grantRefreshToken.String(), clients.GrantRefreshToken}, // RFC 6749 §6
		{grantClientCredentials.String(), clients.GrantClientCredentials},
		{codeInvalidRequest, "invalid_request"}, // RFC 6749 §5.2
		{codeInvalidClient, "invalid_client"},
		{codeInvalidGrant, "invalid_grant"},
		{codeInvalidScope, "invalid_scope"},
		{codeUnauthorizedClient, "unauthorized_client"},
		{codeUnsupportedGrantType, "unsupported_grant_type"},
		{codeServerError, "server_error"},                       // RFC 6749 §4.1.2.1
		{codeTemporarilyUnavailable, "temporarily_unavailable"}, // RFC 6749 §4.1.2.1
	} {
		if c.got != c.want {
			t.Errorf("library value %q, want %q", c.got, c.want)
		}
	}
}

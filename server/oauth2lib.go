package server

// This file is the only one that imports go-oauth2/oauth2/v4 (DESIGN.md §5).
// The library gives the token endpoint its vocabulary: the grant types the
// endpoint dispatches on (oauth2.GrantType) and the RFC 6749 §5.2 error
// codes (its errors package's registered values), so that a Keyturn grant
// and a go-oauth2 grant are named alike. Its server.Server, manager and
// stores are not used: parsing, client authentication, dispatch and
// every status code are ours (DESIGN.md §5 lists why).

import (
	"github.com/go-oauth2/oauth2/v4"
	liberrors "github.com/go-oauth2/oauth2/v4/errors"
)

// grantType is a grant_type value of a token request (RFC 6749 §4.3.2,
// §4.4.2, §4.1.3, §6): the library's type, the key the token endpoint dispatches on.
type grantType = oauth2.GrantType

// The grant types the token endpoint serves.
const (
	grantPassword          grantType = oauth2.PasswordCredentials // RFC 6749 §4.3
	grantRefreshToken      grantType = oauth2.Refreshing          // RFC 6749 §6
	grantClientCredentials grantType = oauth2.ClientCredentials   // RFC 6749 §4.4
	grantAuthorizationCode grantType = oauth2.AuthorizationCode   // RFC 6749 §4.1.3
)

// pkceS256 is the one PKCE code_challenge_method Keyturn accepts (RFC 7636
// §4.2; DESIGN.md: plain is refused). Only the name is taken: the
// library's check trims padding and compares with ==, so the verifier is
// checked by verifyPKCE.
const pkceS256 = oauth2.CodeChallengeS256

// RFC 6749 §5.2 error codes, as the library registers them. Only the codes
// are taken: the library's StatusCodes answer 401 for invalid_grant and
// unauthorized_client, where §5.2 says 400 (errors.go sets the statuses).
var (
	codeInvalidRequest         = liberrors.ErrInvalidRequest.Error()
	codeInvalidClient          = liberrors.ErrInvalidClient.Error()
	codeInvalidGrant           = liberrors.ErrInvalidGrant.Error()
	codeInvalidScope           = liberrors.ErrInvalidScope.Error()
	codeUnauthorizedClient     = liberrors.ErrUnauthorizedClient.Error()
	codeUnsupportedGrantType   = liberrors.ErrUnsupportedGrantType.Error()
	codeServerError            = liberrors.ErrServerError.Error()
	codeTemporarilyUnavailable = liberrors.ErrTemporarilyUnavailable.Error()
)

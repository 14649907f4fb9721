package clients

import (
	"slices"
	"strings"
)

// ID-token signing algorithms a client may ask for in
// id_token_signed_response_alg (RFC 7518 §3.1, RFC 8037 §3.1): the
// asymmetric ones Keyturn keeps signing keys for. RS256 is the default, the
// algorithm OpenID Connect Core §15.1 makes mandatory and the one relying
// parties assume when they were told nothing (Core §3.1.3.7).
const (
	DefaultIDTokenAlg = "RS256"
	IDTokenAlgES256   = "ES256"
	IDTokenAlgEdDSA   = "EdDSA"
)

// IDTokenAlgs lists the algorithms a client may ask its ID tokens to be
// signed with, the default first.
func IDTokenAlgs() []string { return []string{DefaultIDTokenAlg, IDTokenAlgES256, IDTokenAlgEdDSA} }

// validateIDTokenAlg checks id_token_signed_response_alg: empty (RS256) or
// one of IDTokenAlgs, exactly (JWS alg values are case-sensitive, RFC 7515
// §4.1.1). "none" is refused: ID tokens must be signed (OpenID Connect Core
// §2). HMAC algorithms are refused: they would be keyed with the client
// secret (Core §10.1), which a public client does not have (Core §16.19)
// and which Keyturn keeps only as a hash.
func validateIDTokenAlg(add func(string, ...any), at string, s Spec) {
	alg := s.IDTokenSignedResponseAlg
	switch {
	case alg == "":
	case slices.Contains(IDTokenAlgs(), alg):
	case strings.EqualFold(alg, "none"):
		add("%s.id_token_signed_response_alg: %q refused: ID tokens must be signed (OpenID Connect Core §2); want %s", at, alg, algList)
	case len(alg) == 5 && strings.EqualFold(alg[:2], "HS"):
		add("%s.id_token_signed_response_alg: %q refused: HMAC would sign with the client secret, which public clients lack and Keyturn keeps only hashed (OpenID Connect Core §10.1, §16.19); want %s", at, alg, algList)
	default:
		add("%s.id_token_signed_response_alg: unsupported algorithm %q; want %s", at, alg, algList)
	}
}

// algList names the accepted algorithms, for error messages.
const algList = "RS256 (the default), ES256 or EdDSA"

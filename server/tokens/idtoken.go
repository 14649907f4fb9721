package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
)

// AccessTokenHash is the at_hash of accessToken for an ID token signed with
// alg (OpenID Connect Core §3.1.3.6): base64url, without padding, of the
// left-most half of the hash of the token's ASCII octets, with the hash
// alg uses: SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519 signs
// with SHA-512, RFC 8032 §5.1).
func AccessTokenHash(alg, accessToken string) (string, error) {
	var h hash.Hash
	switch alg {
	case "RS256", "ES256":
		h = sha256.New()
	case "EdDSA":
		h = sha512.New()
	default:
		return "", fmt.Errorf("at_hash: no hash for algorithm %q", alg)
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

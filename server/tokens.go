package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/storage"
)

// refreshPrefix starts every refresh token; the version lets the format change.
const refreshPrefix = "ktr1"

// refreshToken is a parsed refresh token: ktr1.<family_id>.<generation>.<mac>
// (DESIGN.md §2). The value is never stored: the token of any generation can be
// recomputed from the family row and the MAC key.
type refreshToken struct {
	FamilyID   string
	Generation uint64
	MAC        []byte
}

var errMalformedToken = errors.New("malformed token")

// newID returns 128 random bits, base64url without padding (22 characters).
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newSalt() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

// parseRefreshToken checks the shape of a presented refresh token. It does
// not verify the MAC (that needs the family's salt).
func parseRefreshToken(s string) (refreshToken, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != refreshPrefix || len(parts[1]) != 22 {
		return refreshToken{}, errMalformedToken
	}
	if !canonicalBase64(parts[1]) {
		return refreshToken{}, errMalformedToken
	}
	// Canonical decimal only: no sign, no leading zeros, so one token has one spelling.
	g := parts[2]
	if g == "" || len(g) > 20 || (len(g) > 1 && g[0] == '0') || strings.TrimLeft(g, "0123456789") != "" {
		return refreshToken{}, errMalformedToken
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return refreshToken{}, errMalformedToken
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(mac) != sha256.Size || !canonicalBase64(parts[3]) {
		return refreshToken{}, errMalformedToken
	}
	return refreshToken{FamilyID: parts[1], Generation: gen, MAC: mac}, nil
}

// canonicalBase64 reports whether s is base64url without padding in its
// one canonical spelling. The decoder alone would accept CR and LF anywhere
// and ignore the unused low bits of the last character, so that one token
// could be presented in several spellings (found by FuzzParseRefreshToken).
func canonicalBase64(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && base64.RawURLEncoding.EncodeToString(b) == s
}

// refreshMAC is HMAC-SHA256(mac_key, family_id ‖ generation ‖ salt).
func (k *Keys) refreshMAC(f storage.Family, gen uint64) []byte {
	m := hmac.New(sha256.New, k.macKey)
	m.Write([]byte(refreshPrefix))
	m.Write([]byte(f.ID))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	m.Write(g[:])
	m.Write(f.Salt)
	return m.Sum(nil)
}

// RefreshToken returns the refresh token of family f at generation gen.
func (k *Keys) RefreshToken(f storage.Family, gen uint64) string {
	return refreshPrefix + "." + f.ID + "." + strconv.FormatUint(gen, 10) + "." +
		base64.RawURLEncoding.EncodeToString(k.refreshMAC(f, gen))
}

// verifyRefresh reports whether t is a genuine token of family f: minted
// with our MAC key for that family's salt, at any generation.
func (k *Keys) verifyRefresh(f storage.Family, t refreshToken) bool {
	return f.KeyID == k.macKeyID && hmac.Equal(t.MAC, k.refreshMAC(f, t.Generation))
}

// MACKeyID names the refresh MAC key new families are minted under.
func (k *Keys) MACKeyID() string { return k.macKeyID }

// accessClaims are the claims of a JWT access token (RFC 9068 §2.2).
type accessClaims struct {
	Issuer   string       `json:"iss"`
	Subject  string       `json:"sub"`
	Audience jsonAudience `json:"aud"`
	Expiry   int64        `json:"exp"`
	IssuedAt int64        `json:"iat"`
	ID       string       `json:"jti"`
	ClientID string       `json:"client_id"`
	Scope    string       `json:"scope,omitempty"`
	// SessionID is the family: introspection answers inactive as soon as the
	// session is revoked, though the signature and exp are still good.
	SessionID string `json:"sid,omitempty"`
}

// jsonAudience marshals one audience as a string and several as an array
// (RFC 7519 §4.1.3 allows both).
type jsonAudience []string

func (a jsonAudience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *jsonAudience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = jsonAudience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// signAccessToken signs claims as an RFC 9068 JWT with the current key.
func (k *Keys) signAccessToken(ctx context.Context, c accessClaims) (string, error) {
	sk, err := k.signer(ctx)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	jws, err := sk.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return jws.CompactSerialize()
}

var signatureAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// parseAccessToken verifies a JWT access token's signature against the
// published keys and its typ header, and returns its claims. It does not
// check exp or the session: callers decide what "active" means at now.
//
// A token verified before is answered from memory, as long as the key that
// verified it is still published: same bytes, same signature, same claims.
func (k *Keys) parseAccessToken(ctx context.Context, token string) (accessClaims, error) {
	sum := sha256.Sum256([]byte(token))
	if v, ok := k.verified.Get(sum); ok {
		if _, published := k.verificationKey(ctx, v.kid); published {
			return v.claims, nil
		}
		k.verified.Remove(sum) // its key was retired: verify (and fail) as any other
	}
	jws, err := jose.ParseSignedCompact(token, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return accessClaims{}, errMalformedToken
	}
	h := jws.Signatures[0].Protected
	// RFC 9068 §4: typ must be at+jwt (media types compare case-insensitively).
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return accessClaims{}, errMalformedToken
	}
	key, ok := k.verificationKey(ctx, h.KeyID)
	if !ok || key.Algorithm != h.Algorithm {
		return accessClaims{}, errMalformedToken
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return accessClaims{}, errMalformedToken
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return accessClaims{}, errMalformedToken
	}
	k.verified.Add(sum, verifiedToken{claims: c, kid: h.KeyID})
	return c, nil
}

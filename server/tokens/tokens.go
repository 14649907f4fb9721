// Package tokens owns the formats of the tokens Keyturn issues, as pure
// functions: the refresh token ktr1.<family>.<generation>.<mac> (parsing
// with canonical-spelling checks, formatting, and what its MAC covers,
// computed under a key the caller passes), the claims of an RFC 9068 JWT
// access token, and the random identifiers and salts tokens are made of.
// It holds no key and signs nothing: package keys does, using these
// formats.
package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// refreshPrefix starts every refresh token; the version lets the format change.
const refreshPrefix = "ktr1"

// Refresh is a parsed refresh token: ktr1.<family_id>.<generation>.<mac>
// (DESIGN.md §2). The value is never stored: the token of any generation can be
// recomputed from the family row and the MAC key.
type Refresh struct {
	FamilyID   string
	Generation uint64
	MAC        []byte
}

// ErrMalformed is returned for a token that is not well-formed (or, for an
// access token, whose signature or header does not verify).
var ErrMalformed = errors.New("malformed token")

// NewID returns 128 random bits, base64url without padding (22 characters):
// the form of family IDs (which ParseRefresh checks), of jti, and of any
// other opaque identifier the server makes up (request IDs).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewSalt returns a family's salt, which its refresh tokens' MAC covers.
func NewSalt() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

// IsRefresh reports whether s is presented as a refresh token (it has the
// refresh-token prefix), well-formed or not.
func IsRefresh(s string) bool { return strings.HasPrefix(s, refreshPrefix+".") }

// ParseRefresh checks the shape of a presented refresh token. It does
// not verify the MAC (that needs the family's salt).
func ParseRefresh(s string) (Refresh, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != refreshPrefix || len(parts[1]) != 22 {
		return Refresh{}, ErrMalformed
	}
	if !canonicalBase64(parts[1]) {
		return Refresh{}, ErrMalformed
	}
	// Canonical decimal only: no sign, no leading zeros, so one token has one spelling.
	g := parts[2]
	if g == "" || len(g) > 20 || (len(g) > 1 && g[0] == '0') || strings.TrimLeft(g, "0123456789") != "" {
		return Refresh{}, ErrMalformed
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return Refresh{}, ErrMalformed
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(mac) != sha256.Size || !canonicalBase64(parts[3]) {
		return Refresh{}, ErrMalformed
	}
	return Refresh{FamilyID: parts[1], Generation: gen, MAC: mac}, nil
}

// canonicalBase64 reports whether s is base64url without padding in its
// one canonical spelling. The decoder alone would accept CR and LF anywhere
// and ignore the unused low bits of the last character, so that one token
// could be presented in several spellings (found by FuzzParseRefreshToken).
func canonicalBase64(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && base64.RawURLEncoding.EncodeToString(b) == s
}

// RefreshMAC is HMAC-SHA256(key, family_id ‖ generation ‖ salt): the MAC
// of the refresh token of family familyID at generation gen.
func RefreshMAC(key []byte, familyID string, gen uint64, salt []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(refreshPrefix))
	m.Write([]byte(familyID))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	m.Write(g[:])
	m.Write(salt)
	return m.Sum(nil)
}

// FormatRefresh spells the refresh token of family familyID at generation
// gen whose MAC is mac: the one spelling ParseRefresh accepts.
func FormatRefresh(familyID string, gen uint64, mac []byte) string {
	return refreshPrefix + "." + familyID + "." + strconv.FormatUint(gen, 10) + "." +
		base64.RawURLEncoding.EncodeToString(mac)
}

// AccessClaims are the claims of a JWT access token (RFC 9068 §2.2).
type AccessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience Audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	// SessionID is the family: introspection answers inactive as soon as the
	// session is revoked, though the signature and exp are still good.
	SessionID string `json:"sid,omitempty"`
}

// Audience marshals one audience as a string and several as an array
// (RFC 7519 §4.1.3 allows both).
type Audience []string

// MarshalJSON writes one audience as a string, several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON reads a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

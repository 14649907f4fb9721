// Package tokens owns the formats of the tokens Keyturn issues, as pure
// functions: the refresh token ktr2.<family>.<generation>.<mac> and its
// predecessor ktr1 (parsing with canonical-spelling checks, formatting, and
// what each version's MAC covers, computed under a key the caller passes), the claims of an RFC 9068 JWT
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

// The version prefixes of refresh tokens (DESIGN.md §2). Keyturn issues
// ktr2 only. ktr1, whose MAC covers a per-session salt held in the row (so
// checking it needs a read before the rotation), is still accepted until the
// last one issued has passed its session's absolute expiry: after the
// longest refresh_absolute_ttl of any client has gone by since the release
// that issues ktr2, ktr1 and everything marked "ktr1" can be deleted.
const (
	RefreshV1 = "ktr1"
	RefreshV2 = "ktr2"
)

// Refresh is a parsed refresh token: <version>.<family_id>.<generation>.<mac>
// (DESIGN.md §2). The value is never stored: the token of any generation can be
// recomputed from the family row and the MAC key.
type Refresh struct {
	Version    string // RefreshV1 or RefreshV2
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

// NewSecret returns 256 random bits, base64url without padding (43
// characters): authorization codes and browser-session cookies, which are
// bearer secrets (RFC 6749 §10.10 asks at most 2^-128 odds of guessing
// one, and SHOULD 2^-160). Only their hash (HashSecret) is stored.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret is SHA-256 of a NewSecret value, the form in which the
// database holds it: the secret has 256 random bits, so a fast hash is
// enough, and a dump of the table opens nothing.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// IsRefresh reports whether s is presented as a refresh token (it has a
// refresh-token prefix of either version), well-formed or not.
func IsRefresh(s string) bool {
	return strings.HasPrefix(s, RefreshV2+".") || strings.HasPrefix(s, RefreshV1+".")
}

// ParseRefresh checks the shape of a presented refresh token of either
// version. It does not verify the MAC.
func ParseRefresh(s string) (Refresh, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 || (parts[0] != RefreshV2 && parts[0] != RefreshV1) || len(parts[1]) != 22 {
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
	return Refresh{Version: parts[0], FamilyID: parts[1], Generation: gen, MAC: mac}, nil
}

// canonicalBase64 reports whether s is base64url without padding in its
// one canonical spelling. The decoder alone would accept CR and LF anywhere
// and ignore the unused low bits of the last character, so that one token
// could be presented in several spellings (found by FuzzParseRefreshToken).
func canonicalBase64(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && base64.RawURLEncoding.EncodeToString(b) == s
}

// RefreshMAC is HMAC-SHA256(key, "ktr1" ‖ family_id ‖ generation ‖ salt):
// the MAC of the ktr1 refresh token of family familyID at generation gen.
// Checking it needs the family's salt, hence its row. ktr1: delete with it.
func RefreshMAC(key []byte, familyID string, gen uint64, salt []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(RefreshV1))
	m.Write([]byte(familyID))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	m.Write(g[:])
	m.Write(salt)
	return m.Sum(nil)
}

// RefreshMACv2 is the MAC of the ktr2 refresh token of family familyID at
// generation gen, issued to client clientID:
//
//	HMAC-SHA256(key, "ktr2" ‖ len(family_id) ‖ family_id ‖ generation ‖ len(client_id) ‖ client_id)
//
// with each length a 4-byte and the generation an 8-byte big-endian
// integer, so that no two (family, generation, client) share an input. It
// needs nothing from the database: a token can be checked for the client
// that presents it before the one statement that spends it. The "ktr2"
// prefix keeps its inputs apart from ktr1's under the same key.
func RefreshMACv2(key []byte, familyID string, gen uint64, clientID string) []byte {
	m := hmac.New(sha256.New, key)
	var b [8]byte
	m.Write([]byte(RefreshV2))
	binary.BigEndian.PutUint32(b[:4], uint32(len(familyID)))
	m.Write(b[:4])
	m.Write([]byte(familyID))
	binary.BigEndian.PutUint64(b[:], gen)
	m.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(len(clientID)))
	m.Write(b[:4])
	m.Write([]byte(clientID))
	return m.Sum(nil)
}

// FormatRefresh spells the refresh token of version v (RefreshV1 or
// RefreshV2) of family familyID at generation gen whose MAC is mac: the one
// spelling ParseRefresh accepts.
func FormatRefresh(v, familyID string, gen uint64, mac []byte) string {
	return v + "." + familyID + "." + strconv.FormatUint(gen, 10) + "." +
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

// IDClaims are the claims of an OpenID Connect ID token (Core §2): who
// signed in, for which client, and when. Profile claims are not here:
// UserInfo returns them (Core §5.4).
type IDClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"` // the client id, as a string (Core §2)
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	// AuthTime is when the user authenticated (Core §2 auth_time).
	AuthTime int64 `json:"auth_time"`
	// Nonce echoes the authentication request's nonce exactly; omitted
	// when it had none, and on refresh (Core §2, §12.2).
	Nonce string `json:"nonce,omitempty"`
	// AccessTokenHash is at_hash (Core §3.1.3.6): the left half of the
	// hash of the access token issued with it, base64url.
	AccessTokenHash string `json:"at_hash,omitempty"`
	// SessionID is the session (family) the tokens belong to.
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

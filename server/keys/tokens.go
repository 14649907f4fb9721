package keys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// RefreshToken returns the ktr2 refresh token of family f at generation
// gen, bound to f's client (DESIGN.md §2).
func (k *Keys) RefreshToken(f storage.Family, gen uint64) string {
	return tokens.FormatRefresh(tokens.RefreshV2, f.ID, gen, tokens.RefreshMACv2(k.macKey, f.ID, gen, f.ClientID))
}

// RefreshTokenV1 returns the ktr1 refresh token of family f at generation
// gen, which Keyturn no longer issues: it exists so that tests can present
// one. ktr1: delete with it.
func (k *Keys) RefreshTokenV1(f storage.Family, gen uint64) string {
	return tokens.FormatRefresh(tokens.RefreshV1, f.ID, gen, tokens.RefreshMAC(k.macKey, f.ID, gen, f.Salt))
}

// VerifyRefreshFor reports whether t is a genuine ktr2 token issued to
// client clientID, from the token and the MAC key alone: no database. It is
// false for every ktr1 token (those need their family: VerifyRefresh).
func (k *Keys) VerifyRefreshFor(t tokens.Refresh, clientID string) bool {
	return t.Version == tokens.RefreshV2 &&
		hmac.Equal(t.MAC, tokens.RefreshMACv2(k.macKey, t.FamilyID, t.Generation, clientID))
}

// VerifyRefresh reports whether t is a genuine token of family f, of either
// version: minted with our MAC key for that family (its client for ktr2,
// its salt for ktr1), at any generation.
func (k *Keys) VerifyRefresh(f storage.Family, t tokens.Refresh) bool {
	switch {
	case t.FamilyID != f.ID:
		return false
	case t.Version == tokens.RefreshV2:
		return k.VerifyRefreshFor(t, f.ClientID)
	default: // ktr1: delete with it.
		return f.KeyID == k.macKeyID && hmac.Equal(t.MAC, tokens.RefreshMAC(k.macKey, f.ID, t.Generation, f.Salt))
	}
}

// FormToken is the CSRF token of a page's form (RFC 6749 §10.12):
// HMAC-SHA256, under a key derived from the master secret, of the form's
// purpose and the browser it was given to (binding: a value only that
// browser's cookies lead to), each length-prefixed so that no two inputs
// run together. Any instance recomputes it; nothing is stored.
func (k *Keys) FormToken(purpose, binding string) []byte {
	m := hmac.New(sha256.New, k.formKey)
	for _, s := range []string{purpose, binding} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// MACKeyID names the refresh MAC key new families are minted under.
func (k *Keys) MACKeyID() string { return k.macKeyID }

// SignAccessToken signs claims as an RFC 9068 JWT with the current key of
// the access tokens' lineage (Options.Algorithm).
func (k *Keys) SignAccessToken(ctx context.Context, c tokens.AccessClaims) (string, error) {
	sk, err := k.signer(ctx, k.opts.Algorithm)
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

// ParseAccessToken verifies a JWT access token's signature against the
// published keys and its typ header, and returns its claims. It does not
// check exp or the session: callers decide what "active" means at now.
// Any token that does not verify is tokens.ErrMalformed.
//
// A token verified before is answered from memory, as long as the key that
// verified it is still published: same bytes, same signature, same claims.
func (k *Keys) ParseAccessToken(ctx context.Context, token string) (tokens.AccessClaims, error) {
	sum := sha256.Sum256([]byte(token))
	if v, ok := k.verified.Get(sum); ok {
		if _, published := k.verificationKey(ctx, v.kid); published {
			return v.claims, nil
		}
		k.verified.Remove(sum) // its key was retired: verify (and fail) as any other
	}
	jws, err := jose.ParseSignedCompact(token, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return tokens.AccessClaims{}, tokens.ErrMalformed
	}
	h := jws.Signatures[0].Protected
	// RFC 9068 §4: typ must be at+jwt (media types compare case-insensitively).
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return tokens.AccessClaims{}, tokens.ErrMalformed
	}
	key, ok := k.verificationKey(ctx, h.KeyID)
	if !ok || key.Algorithm != h.Algorithm {
		return tokens.AccessClaims{}, tokens.ErrMalformed
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return tokens.AccessClaims{}, tokens.ErrMalformed
	}
	var c tokens.AccessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return tokens.AccessClaims{}, tokens.ErrMalformed
	}
	k.verified.Add(sum, verifiedToken{claims: c, kid: h.KeyID})
	return c, nil
}

// SignIDToken signs an OpenID Connect ID token (Core §2) with the current
// signing key of algorithm alg (RS256, ES256 or EdDSA; Core §15.1 requires
// RS256), with typ JWT and the key's kid (Core §10.1). An error if no key
// of alg signs now.
func (k *Keys) SignIDToken(ctx context.Context, alg string, c tokens.IDClaims) (string, error) {
	sk, err := k.signer(ctx, alg)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	jws, err := sk.idSigner.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	return jws.CompactSerialize()
}

// ParseIDToken verifies an ID token this server issued (id_token_hint:
// Core §3.1.2.1, RP-Initiated Logout §2): a published key of any algorithm
// signed it, its typ is JWT (an access token, typ at+jwt, is refused: RFC
// 8725 §3.11) and its iss is the issuer. It does not check exp: a hint may
// have expired (the caller decides). ErrMalformed-wrapping errors for
// anything else.
func (k *Keys) ParseIDToken(ctx context.Context, token, issuer string) (tokens.IDClaims, error) {
	jws, err := jose.ParseSignedCompact(token, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return tokens.IDClaims{}, fmt.Errorf("id token: not a signed JWT: %w", tokens.ErrMalformed)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "JWT") {
		return tokens.IDClaims{}, fmt.Errorf("id token: typ %q, want JWT: %w", typ, tokens.ErrMalformed)
	}
	key, ok := k.verificationKey(ctx, h.KeyID)
	if !ok || key.Algorithm != h.Algorithm {
		return tokens.IDClaims{}, fmt.Errorf("id token: no published %s key %q: %w", h.Algorithm, h.KeyID, tokens.ErrMalformed)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return tokens.IDClaims{}, fmt.Errorf("id token: signature: %w", tokens.ErrMalformed)
	}
	var c tokens.IDClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return tokens.IDClaims{}, fmt.Errorf("id token: claims: %w", tokens.ErrMalformed)
	}
	if c.Issuer != issuer {
		return tokens.IDClaims{}, fmt.Errorf("id token: issuer %q: %w", c.Issuer, tokens.ErrMalformed)
	}
	return c, nil
}

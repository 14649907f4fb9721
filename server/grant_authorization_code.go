package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// codeGrant is the authorization code grant at the token endpoint (RFC 6749
// §4.1.3) with PKCE (RFC 7636 §4.5, §4.6): it spends a code that the
// authorization endpoint issued and starts the session the user signed in
// and consented to, a session like a password login's (newSession).
type codeGrant struct {
	codes    storage.Codes
	families storage.Families
	keys     *keys.Keys
	minter   *minter
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
}

// code_verifier is required too (RFC 7636 §4.5), but its absence is
// invalid_grant, not invalid_request: a missing verifier fails RFC 7636
// §4.6's comparison like a wrong one, and the answer does not tell which.
func (codeGrant) required() []string { return []string{"code"} }

// errCodeInvalid is the one answer for every code that cannot be redeemed
// by this request, whatever the reason (unknown, expired, used, another
// client's or redirect_uri's, a verifier that does not match): the reason
// is for metrics and logs only, so that the answer tells nobody holding a
// code more about it.
var errCodeInvalid = errInvalidGrant("the authorization code is invalid, expired or used, or does not match this client, redirect_uri or code_verifier")

// refused counts a refused redemption by outcome and answers invalid_grant.
func (g codeGrant) refused(outcome string) error {
	g.metrics.codes.WithLabelValues(outcome).Inc()
	return errCodeInvalid
}

// issue checks what the request must match (client, redirect_uri,
// verifier) first, and a mismatch is only refused: it revokes nothing and
// leaves the code redeemable by its client until it expires, so that
// nobody who saw a code, without its verifier, can spend or burn it. Only
// a request that matches in everything and finds the code used is a
// replay, which revokes the session the code started (RFC 6749 §4.1.2,
// §10.5).
func (g codeGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	if req.codeVerifier == "" {
		// RFC 7636 §4.5: required. Every code has a challenge (PKCE is
		// required of every client), so no code can be redeemed without.
		g.metrics.codes.WithLabelValues(codeInvalid).Inc()
		return nil, errInvalidGrant("missing code_verifier")
	}
	hash := tokens.HashSecret(req.code)
	code, err := g.codes.GetCode(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, g.refused(codeInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("authorization code: %w", err)
	}
	if reason := mismatch(req, code); reason != "" {
		g.log.InfoContext(ctx, "authorization code refused", "client_id", req.client.ID,
			"owner_client_id", code.ClientID, "reason", reason)
		return nil, g.refused(codeInvalid)
	}
	now := g.now().UTC()
	// A replay is told before expiry: a used code is a replay for as long
	// as it is kept (sweeper.CodeRetention past expiry), not only
	// until it expires.
	if code.Used() {
		return nil, g.replayed(ctx, req, code, now)
	}
	if !now.Before(code.ExpiresAt) {
		return nil, g.refused(codeExpired)
	}
	if err := codeResources(req, code); err != nil {
		return nil, err
	}
	scope := codeScope(req, code)
	f := newSession(req, g.keys, code.UserID, scope, storage.GrantAuthorizationCode, code.AuthTime, now)
	f.BrowserSessionID = code.BrowserSessionID // RP-initiated logout ends it with the browser session
	// One conditional statement spends the code and starts the session:
	// of concurrent redemptions exactly one wins (RFC 6749 §4.1.2). It
	// also requires the browser session the code was issued in to stand,
	// in the same transaction, so that a logout is wholly before the
	// redemption (which fails) or after it (and ends the session it
	// started): a code of a browser that signed out must not start a
	// session that outlives the logout (RP-Initiated Logout 1.0 §2,
	// DESIGN.md §11).
	stored, err := g.codes.RedeemCode(ctx, hash, f, now)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrCodeUsed): // lost the race: a replay like any other
		return nil, g.replayed(ctx, req, stored, now)
	case errors.Is(err, storage.ErrCodeExpired):
		return nil, g.refused(codeExpired)
	case errors.Is(err, storage.ErrNotFound):
		// The user was disabled or deleted since the code was issued (or
		// the code was swept): no session starts, the code stays unused.
		g.log.InfoContext(ctx, "authorization code of a user no longer enabled", "client_id", req.client.ID)
		return nil, g.refused(codeInvalid)
	case errors.Is(err, storage.ErrBrowserSessionEnded):
		// Signed out, revoked or expired since the code was issued: no
		// session starts, and the code stays unused, as useless as it is
		// (a browser session never comes back).
		g.log.InfoContext(ctx, "authorization code of a browser session that ended", "client_id", req.client.ID)
		return nil, g.refused(codeInvalid)
	default:
		return nil, fmt.Errorf("authorization code: %w", err)
	}
	g.metrics.codes.WithLabelValues(codeRedeemed).Inc()
	resp, err := g.minter.sessionResponse(ctx, req, f, scope, now)
	if err != nil {
		return nil, err
	}
	// The nonce goes into the ID token exactly as the authentication
	// request sent it (OpenID Connect Core §2, §15.5.2).
	return g.minter.withIDToken(ctx, req, resp, f, scope, code.Nonce, now)
}

// mismatch says why the request may not redeem code ("" if it may): RFC
// 6749 §4.1.3 requires that the code was issued to the authenticated
// client (or, public, to client_id in the request) and that redirect_uri
// is identical to the authorization request's: present if it was there.
// Keyturn also requires it absent if it was absent there (one value, ""
// for both), which OAuth 2.1 clients that never send it meet when they
// sent none at the authorization endpoint either. RFC 7636 §4.6: the
// verifier matches the challenge.
func mismatch(req *tokenRequest, code storage.AuthCode) string {
	switch {
	case code.ClientID != req.client.ID:
		return "another client"
	case req.redirectURI != code.RedirectURI:
		return "redirect_uri"
	case !verifyPKCE(code.CodeChallenge, req.codeVerifier):
		return "code_verifier"
	}
	return ""
}

// verifyPKCE reports whether verifier is a well-formed code verifier
// (RFC 7636 §4.1) whose S256 transform is challenge (RFC 7636 §4.6:
// BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), no padding), compared in
// constant time.
func verifyPKCE(challenge, verifier string) bool {
	if !validVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// validVerifier checks RFC 7636 §4.1: code-verifier = 43*128unreserved,
// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := range len(v) {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// replayed answers a code presented again by its client with its verifier
// and redirect_uri: invalid_grant, and the session its first redemption
// started is revoked (RFC 6749 §4.1.2 SHOULD, §10.5): whoever presented it
// first may not have been the client.
func (g codeGrant) replayed(ctx context.Context, req *tokenRequest, code storage.AuthCode, now time.Time) error {
	if code.FamilyID != "" {
		err := g.families.RevokeFamily(ctx, code.FamilyID, storage.ReasonCodeReplay, now)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("authorization code replay: revoke session: %w", err)
		}
	}
	g.log.WarnContext(ctx, "authorization code replayed; session revoked",
		"client_id", req.client.ID, "family_id", code.FamilyID, "reason", storage.ReasonCodeReplay)
	return g.refused(codeReplayed)
}

// codeScope is the scope the user consented to in the authorization
// request (the token request's scope parameter is not read: RFC 6749
// §4.1.3 defines none). Scopes the client may no longer have (the
// configuration was reloaded since) are dropped, as on refresh.
func codeScope(req *tokenRequest, code storage.AuthCode) []string {
	var scope []string
	for _, s := range scopeList(code.Scope) {
		if req.client.AllowsScope(s) {
			scope = append(scope, s)
		}
	}
	return scope
}

// codeResources sets the request's resources, the access token's
// audience, to the code's (RFC 8707 §2.1), or to those the token request
// names, which must be among the code's (RFC 8707 §2.2: a token request may
// narrow the grant's resources, never widen them). A code issued without a
// resource is a grant of the client's whole audience, which target has
// already checked the token request against. Each must still be an
// audience of the client: invalid_target if the configuration took it
// away since.
func codeResources(req *tokenRequest, code storage.AuthCode) error {
	if len(req.resources) == 0 {
		req.resources = code.Resources
	}
	for _, r := range req.resources {
		if len(code.Resources) > 0 && !slices.Contains(code.Resources, r) {
			return errInvalidTarget("resource was not requested in the authorization request")
		}
		if !slices.Contains(req.client.Audience, r) {
			return errInvalidTarget("resource is not an audience of this client")
		}
	}
	return nil
}

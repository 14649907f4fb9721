package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// refreshGrant is the refresh_token grant (RFC 6749 §6) with rotation and
// reuse detection (RFC 9700 §4.14.2) over one row per session (DESIGN.md §2).
type refreshGrant struct {
	families storage.Families
	keys     *keys.Keys
	minter   *minter
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
}

func (refreshGrant) required() []string { return []string{"refresh_token"} }

// errRefreshInvalid is the one answer for every refresh token that cannot
// be used, whatever the reason: the reason is for metrics and logs only.
var errRefreshInvalid = errInvalidGrant("the refresh token is invalid, expired or revoked")

// refused counts a refused refresh by outcome and answers invalid_grant.
func (g refreshGrant) refused(outcome string) error {
	g.metrics.refresh.WithLabelValues(outcome).Inc()
	return errRefreshInvalid
}

// liveOutcome says why a family that is not live refuses.
func liveOutcome(f storage.Family) string {
	if f.Revoked() {
		return refreshRevoked
	}
	return refreshExpired
}

func (g refreshGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	tok, err := tokens.ParseRefresh(req.refreshToken)
	if err != nil {
		return nil, g.refused(refreshInvalid)
	}
	if tok.Version == tokens.RefreshV2 {
		// A ktr2 token proves on its own that we minted it for this
		// client (DESIGN.md §2; RFC 6749 §6 and §10.4: a refresh token is
		// bound to its client): a forged token, or another client's, is
		// refused here, with no database work, and revokes nothing.
		if !g.keys.VerifyRefreshFor(tok, req.client.ID) {
			g.log.InfoContext(ctx, "refresh token with a bad mac or of another client",
				"client_id", req.client.ID, "family_id", tok.FamilyID)
			return nil, g.refused(refreshInvalid)
		}
		// Without a scope to check, the one conditional UPDATE is the whole
		// of the database work, whichever instance this is: it rotates, or
		// says (on its failure path only) whether the token is stale, the
		// session revoked, expired or unknown. A request that narrows the
		// scope reads the row first, below, so that a rotated token is found
		// out (and the session revoked) before its scope is looked at.
		if req.scope == nil {
			return g.rotate(ctx, req, storage.Family{ID: tok.FamilyID}, tok, g.now().UTC())
		}
	}
	// ktr1 tokens, and scope narrowing: read the row first. ktr1: the read
	// is needed for its MAC (the salt); when ktr1 goes, this path serves
	// scope narrowing only.
	f, err := g.families.GetFamily(ctx, tok.FamilyID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, g.refused(refreshInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if err := g.genuine(ctx, req, f, tok); err != nil {
		return nil, err
	}
	now := g.now().UTC()
	if !f.Live(now) {
		return nil, g.refused(liveOutcome(f))
	}
	switch {
	case tok.Generation == f.Generation:
		return g.rotate(ctx, req, f, tok, now)
	case tok.Generation < f.Generation:
		// Reuse is decided before anything else about the request, so a
		// stolen rotated token cannot probe the session (with a bad scope,
		// say) without ending it.
		return g.stale(ctx, req, f, tok, now)
	default:
		return nil, g.future(ctx, req, f)
	}
}

// genuine checks what a refresh token proves about itself against its
// session's fixed fields: that we minted it, and for this client.
func (g refreshGrant) genuine(ctx context.Context, req *tokenRequest, f storage.Family, tok tokens.Refresh) error {
	// A token whose MAC does not verify was not minted by us: refuse it and
	// revoke nothing, or a stranger who knows a session id (it is the
	// access token's sid) could log its owner out.
	if !g.keys.VerifyRefresh(f, tok) {
		g.log.InfoContext(ctx, "refresh token with a bad mac", "client_id", req.client.ID, "family_id", f.ID)
		return g.refused(refreshInvalid)
	}
	// RFC 6749 §6 / §10.4: a refresh token is bound to the client it was issued to.
	if f.ClientID != req.client.ID {
		g.log.WarnContext(ctx, "refresh token presented by another client",
			"client_id", req.client.ID, "owner_client_id", f.ClientID, "family_id", f.ID)
		return g.refused(refreshInvalid)
	}
	return nil
}

// rotate spends tok, presumed current, with one conditional UPDATE (DESIGN.md §2),
// which also decides whether the session is still live and tok still current.
// f is the session as read before, or (a ktr2 token, no scope requested)
// only its ID: the session's scope then comes from the UPDATE's row.
func (g refreshGrant) rotate(ctx context.Context, req *tokenRequest, f storage.Family, tok tokens.Refresh, now time.Time) (*tokenResponse, error) {
	// A bad scope is refused before the token is spent. With no scope
	// requested nothing can be refused (the session's own scope is used).
	if req.scope != nil {
		if _, err := sessionScope(req, f); err != nil {
			return nil, err
		}
	}
	next, err := g.families.RotateFamily(ctx, f.ID, tok.Generation, now, now.Add(req.client.RefreshIdleTTL))
	switch {
	case err == nil:
		if next.ClientID != req.client.ID {
			// Unreachable: the token's MAC binds the client, checked before.
			return nil, fmt.Errorf("refresh: session %s of client %q rotated by client %q", next.ID, next.ClientID, req.client.ID)
		}
		scope, err := sessionScope(req, next)
		if err != nil {
			return nil, err
		}
		g.metrics.refresh.WithLabelValues(refreshRotated).Inc()
		return g.respond(ctx, req, next, scope, now)
	case errors.Is(err, storage.ErrStaleGeneration) && tok.Generation < next.Generation:
		// An earlier request with the same token won the rotation (or
		// rotated it long ago): ours is a rotated token like any other.
		return g.stale(ctx, req, next, tok, now)
	case errors.Is(err, storage.ErrStaleGeneration):
		return nil, g.future(ctx, req, next)
	case errors.Is(err, storage.ErrFamilyRevoked):
		return nil, g.refused(refreshRevoked)
	case errors.Is(err, storage.ErrFamilyExpired):
		return nil, g.refused(refreshExpired)
	case errors.Is(err, storage.ErrNotFound):
		return nil, g.refused(refreshInvalid)
	default:
		return nil, fmt.Errorf("refresh: %w", err)
	}
}

// future refuses a genuine token from the future: the database was restored
// from an older backup. Revoking would not make it safer.
func (g refreshGrant) future(ctx context.Context, req *tokenRequest, f storage.Family) error {
	g.log.WarnContext(ctx, "refresh token newer than its session", "client_id", req.client.ID, "family_id", f.ID)
	return g.refused(refreshInvalid)
}

// sessionScope resolves the requested scope against the session's (RFC
// 6749 §6): it may be narrowed, never widened, and the session keeps its
// own. Scopes the client may no longer have are dropped.
func sessionScope(req *tokenRequest, f storage.Family) ([]string, error) {
	c := req.client
	inSession := func(s string) bool { return c.AllowsScope(s) && hasScope(f.Scope, s) }
	var defaults []string
	for _, s := range scopeList(f.Scope) {
		if c.AllowsScope(s) {
			defaults = append(defaults, s)
		}
	}
	return grantScope(req.scope, inSession, defaults)
}

// stale handles a genuine token of an earlier generation than f's. Inside
// the client's grace window the immediately previous generation gets the
// same successor again (a retry after a lost response); anything else is
// reuse: two parties hold the session, so it is revoked (RFC 9700 §4.14.2).
func (g refreshGrant) stale(ctx context.Context, req *tokenRequest, f storage.Family, tok tokens.Refresh, now time.Time) (*tokenResponse, error) {
	grace := req.client.RefreshReuseGrace
	if grace > 0 && tok.Generation+1 == f.Generation && now.Before(f.RotatedAt.Add(grace)) {
		scope, err := sessionScope(req, f)
		if err != nil {
			return nil, err
		}
		g.metrics.refresh.WithLabelValues(refreshGraceRetry).Inc()
		return g.respond(ctx, req, f, scope, now)
	}
	if err := g.families.RevokeFamily(ctx, f.ID, storage.ReasonReuse, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("refresh: revoke reused session: %w", err)
	}
	g.log.WarnContext(ctx, "refresh token reused; family revoked",
		"client_id", req.client.ID, "family_id", f.ID, "reason", storage.ReasonReuse,
		"presented_generation", tok.Generation, "current_generation", f.Generation)
	return nil, g.refused(refreshReuse)
}

// respond issues a fresh access token and the refresh token of f's current
// generation, and, for an OpenID session whose scope (as narrowed by the
// request) still holds openid, a new ID token without a nonce (OpenID
// Connect Core §12.2).
func (g refreshGrant) respond(ctx context.Context, req *tokenRequest, f storage.Family, scope []string, now time.Time) (*tokenResponse, error) {
	resp, err := g.minter.response(ctx, req, f.UserID, scope, f.ID, now)
	if err != nil {
		return nil, err
	}
	return g.minter.withIDToken(ctx, req, withRefresh(resp, g.keys, f, f.Generation, now), f, scope, "", now)
}

func hasScope(scope, s string) bool {
	for _, t := range strings.Split(scope, " ") {
		if t == s {
			return true
		}
	}
	return false
}

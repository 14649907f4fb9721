package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// revokeHandler serves POST /oauth2/revoke (RFC 7009). Revoking a refresh
// token is logout: the whole session (family) is revoked. Revoking an
// access token puts its jti on the denylist until it expires; the session
// lives on (RFC 7009 §2.1 makes revoking the grant optional; DESIGN.md
// decision D6).
type revokeHandler struct {
	tokenOpEndpoint
	families storage.Families
	denylist storage.Denylist
}

func (h *revokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, err := h.parse(w, r)
	if err == nil {
		err = h.revoke(r.Context(), op)
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	// RFC 7009 §2.2: 200, and the client ignores the body.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// errNotYourToken refuses to revoke a token issued to another client, with
// no effect. RFC 7009 §2.1: "the request is refused and the client is
// informed of the error"; RFC 6749 §5.2 names invalid_grant for a grant
// "issued to another client" (DESIGN.md decision D1).
var errNotYourToken = errInvalidGrant("the token was issued to another client")

// revoke answers nil (200) for unknown, expired, malformed and already
// revoked tokens (RFC 7009 §2.2): the client could not act on the
// difference, and saying so would leak validity.
func (h *revokeHandler) revoke(ctx context.Context, req tokenOp) error {
	if tokens.IsRefresh(req.token) {
		return h.revokeRefresh(ctx, req)
	}
	return h.revokeAccess(ctx, req)
}

func (h *revokeHandler) revokeRefresh(ctx context.Context, req tokenOp) error {
	tok, err := tokens.ParseRefresh(req.token)
	if err != nil {
		return nil
	}
	f, err := h.families.GetFamily(ctx, tok.FamilyID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if !h.keys.VerifyRefresh(f, tok) {
		return nil // forged: revokes nothing
	}
	if f.ClientID != req.client.ID {
		h.log.WarnContext(ctx, "revocation of another client's token refused",
			"client_id", req.client.ID, "owner_client_id", f.ClientID, "family_id", f.ID)
		return errNotYourToken
	}
	if f.Revoked() {
		return nil
	}
	// Any genuine generation logs the session out: the current token is
	// the normal case, an older one is either a late logout or reuse, and
	// both end the session.
	if err := h.families.RevokeFamily(ctx, f.ID, storage.ReasonLogout, h.now().UTC()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("revoke: %w", err)
	}
	h.log.InfoContext(ctx, "session revoked", "client_id", req.client.ID, "family_id", f.ID, "reason", storage.ReasonLogout)
	return nil
}

func (h *revokeHandler) revokeAccess(ctx context.Context, req tokenOp) error {
	c, err := h.keys.ParseAccessToken(ctx, req.token)
	if err != nil {
		return nil
	}
	if c.ClientID != req.client.ID {
		h.log.WarnContext(ctx, "revocation of another client's token refused",
			"client_id", req.client.ID, "owner_client_id", c.ClientID)
		return errNotYourToken
	}
	exp := time.Unix(c.Expiry, 0).UTC()
	if !h.now().Before(exp) {
		return nil // expired: nothing left to revoke
	}
	if err := h.denylist.DenyAccessToken(ctx, c.ID, exp); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	h.log.InfoContext(ctx, "access token revoked", "client_id", req.client.ID, "jti", c.ID, "family_id", c.SessionID)
	return nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/storage"
)

// revokeHandler serves POST /oauth2/revoke (RFC 7009). Revoking a refresh
// token is logout: the whole session (family) is revoked. Revoking an
// access token puts its jti on the denylist until it expires; the session
// lives on (RFC 7009 §2.1 makes revoking the grant optional; DESIGN.md
// decision D6).
type revokeHandler struct {
	clients *clientSet
	guard   *clientGuard
	store   storage.Store
	keys    *Keys
	now     func() time.Time
	log     *slog.Logger
}

// tokenOp is a revocation or introspection request (RFC 7009 §2.1, RFC
// 7662 §2.1): an authenticated client and the token it names.
type tokenOp struct {
	client *clients.Client
	token  string
}

func (h *revokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, err := parseTokenOp(w, r, h.clients, h.guard)
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

// parseTokenOp reads the form, authenticates the client as the token
// endpoint does, and requires token. token_type_hint is not needed, so
// any hint, known or not, is ignored (RFC 7009 §2.1): a refresh token is
// recognised by its prefix.
func parseTokenOp(w http.ResponseWriter, r *http.Request, cs *clientSet, guard *clientGuard) (tokenOp, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return tokenOp{}, err
	}
	client, err := authenticateClient(r, form, cs.registry(), guard)
	if err != nil {
		return tokenOp{}, err
	}
	infoFrom(r.Context()).clientID = client.ID
	token := form.Get("token")
	if token == "" {
		return tokenOp{}, errInvalidRequest("missing token")
	}
	return tokenOp{client: client, token: token}, nil
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
	if strings.HasPrefix(req.token, refreshPrefix+".") {
		return h.revokeRefresh(ctx, req)
	}
	return h.revokeAccess(ctx, req)
}

func (h *revokeHandler) revokeRefresh(ctx context.Context, req tokenOp) error {
	tok, err := parseRefreshToken(req.token)
	if err != nil {
		return nil
	}
	f, err := h.store.GetFamily(ctx, tok.FamilyID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if !h.keys.verifyRefresh(f, tok) {
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
	if err := h.store.RevokeFamily(ctx, f.ID, storage.ReasonLogout, h.now().UTC()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("revoke: %w", err)
	}
	h.log.InfoContext(ctx, "session revoked", "client_id", req.client.ID, "family_id", f.ID, "reason", storage.ReasonLogout)
	return nil
}

func (h *revokeHandler) revokeAccess(ctx context.Context, req tokenOp) error {
	c, err := h.keys.parseAccessToken(ctx, req.token)
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
	if err := h.store.DenyAccessToken(ctx, c.ID, exp); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	h.log.InfoContext(ctx, "access token revoked", "client_id", req.client.ID, "jti", c.ID, "family_id", c.SessionID)
	return nil
}

// introspectHandler serves POST /oauth2/introspect (RFC 7662) to resource
// servers: confidential clients registered with introspect: true. It gives
// what offline JWT checks cannot: an access token whose session was revoked
// or expired is inactive at once, though its signature and exp are fine.
type introspectHandler struct {
	clients *clientSet
	guard   *clientGuard
	store   storage.Store
	keys    *Keys
	now     func() time.Time
	log     *slog.Logger
}

// introspection is the RFC 7662 §2.2 response. An inactive token is
// exactly {"active":false}: nothing else is said about it.
type introspection struct {
	Active    bool         `json:"active"`
	Scope     string       `json:"scope,omitempty"`
	ClientID  string       `json:"client_id,omitempty"`
	Username  string       `json:"username,omitempty"`
	TokenType string       `json:"token_type,omitempty"`
	Expiry    int64        `json:"exp,omitempty"`
	IssuedAt  int64        `json:"iat,omitempty"`
	Subject   string       `json:"sub,omitempty"`
	Audience  jsonAudience `json:"aud,omitempty"`
	Issuer    string       `json:"iss,omitempty"`
	ID        string       `json:"jti,omitempty"`
	SessionID string       `json:"sid,omitempty"`
}

var inactive = introspection{}

func (h *introspectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, err := parseTokenOp(w, r, h.clients, h.guard)
	var resp introspection
	if err == nil {
		resp, err = h.introspect(r.Context(), op)
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *introspectHandler) introspect(ctx context.Context, op tokenOp) (introspection, error) {
	// RFC 7662 §2.1 requires authorization of the caller; §4: only
	// registered resource servers may learn about tokens.
	if op.client.Public || !op.client.Introspect {
		return inactive, errInvalidClient("the client may not introspect tokens")
	}
	if strings.HasPrefix(op.token, refreshPrefix+".") {
		return h.refresh(ctx, op.client, op.token)
	}
	return h.access(ctx, op.client, op.token)
}

func (h *introspectHandler) access(ctx context.Context, caller *clients.Client, token string) (introspection, error) {
	c, err := h.keys.parseAccessToken(ctx, token)
	if err != nil {
		return inactive, nil
	}
	// RFC 7662 §4: a resource server learns only about tokens it may
	// accept, those whose audience it serves; any other token is inactive
	// to it, so one resource server cannot harvest another's tokens.
	if !slices.ContainsFunc(c.Audience, caller.ServesAudience) {
		return inactive, nil
	}
	now := h.now()
	if !now.Before(time.Unix(c.Expiry, 0)) {
		return inactive, nil
	}
	if _, ok := h.clients.registry().Get(c.ClientID); !ok {
		return inactive, nil // the client was removed from the configuration
	}
	// The denylist, the session and its user in one round trip.
	chk, err := h.store.CheckAccess(ctx, c.ID, c.SessionID)
	if err != nil {
		return inactive, fmt.Errorf("introspect: %w", err)
	}
	if chk.Denied {
		return inactive, nil
	}
	resp := introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer",
		Expiry: c.Expiry, IssuedAt: c.IssuedAt, Subject: c.Subject, Audience: c.Audience,
		Issuer: c.Issuer, ID: c.ID, SessionID: c.SessionID,
	}
	if c.SessionID == "" { // client_credentials: no session, no user
		return resp, nil
	}
	// A token of a session that ended, or whose user is gone, is inactive.
	if chk.Family.ID == "" || !chk.Family.Live(now) || chk.Username == "" {
		return inactive, nil
	}
	resp.Username = chk.Username
	return resp, nil
}

// refresh reports a refresh token active only to the client it was issued
// to, and only while it is the session's current token (DESIGN.md
// decision D5); it never revokes anything (introspection is read-only).
func (h *introspectHandler) refresh(ctx context.Context, caller *clients.Client, token string) (introspection, error) {
	tok, err := parseRefreshToken(token)
	if err != nil {
		return inactive, nil
	}
	chk, err := h.store.CheckAccess(ctx, "", tok.FamilyID)
	if err != nil {
		return inactive, fmt.Errorf("introspect: %w", err)
	}
	f, username := chk.Family, chk.Username
	if f.ID == "" || username == "" {
		return inactive, nil // no such session, or its user is gone
	}
	if !h.keys.verifyRefresh(f, tok) || f.ClientID != caller.ID || tok.Generation != f.Generation || !f.Live(h.now()) {
		return inactive, nil
	}
	iat := f.CreatedAt
	if !f.RotatedAt.IsZero() {
		iat = f.RotatedAt
	}
	return introspection{
		Active: true, Scope: f.Scope, ClientID: f.ClientID, Username: username, Subject: f.UserID,
		Expiry: f.ExpiresAt().Unix(), IssuedAt: iat.Unix(), SessionID: f.ID,
	}, nil
}

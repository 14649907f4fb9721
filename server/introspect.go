package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// introspectHandler serves POST /oauth2/introspect (RFC 7662) to resource
// servers: confidential clients registered with introspect: true. It gives
// what offline JWT checks cannot: an access token whose session was revoked
// or expired is inactive at once, though its signature and exp are fine.
type introspectHandler struct {
	tokenOpEndpoint
	access   accessChecker
	denylist storage.Denylist
}

// introspection is the RFC 7662 §2.2 response. An inactive token is
// exactly {"active":false}: nothing else is said about it.
type introspection struct {
	Active    bool            `json:"active"`
	Scope     string          `json:"scope,omitempty"`
	ClientID  string          `json:"client_id,omitempty"`
	Username  string          `json:"username,omitempty"`
	TokenType string          `json:"token_type,omitempty"`
	Expiry    int64           `json:"exp,omitempty"`
	IssuedAt  int64           `json:"iat,omitempty"`
	Subject   string          `json:"sub,omitempty"`
	Audience  tokens.Audience `json:"aud,omitempty"`
	Issuer    string          `json:"iss,omitempty"`
	ID        string          `json:"jti,omitempty"`
	SessionID string          `json:"sid,omitempty"`
}

var inactive = introspection{}

func (h *introspectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, err := h.parse(w, r)
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
	if tokens.IsRefresh(op.token) {
		return h.refresh(ctx, op.client, op.token)
	}
	return h.accessToken(ctx, op.client, op.token)
}

func (h *introspectHandler) accessToken(ctx context.Context, caller *clients.Client, token string) (introspection, error) {
	// RFC 7662 §4: a resource server learns only about tokens it may
	// accept, those whose audience it serves; any other token is inactive
	// to it, so one resource server cannot harvest another's tokens.
	a, err := h.access.check(ctx, token, func(c tokens.AccessClaims) bool {
		return slices.ContainsFunc(c.Audience, caller.ServesAudience)
	})
	switch {
	case errors.Is(err, errInactive):
		return inactive, nil
	case err != nil:
		return inactive, fmt.Errorf("introspect: %w", err)
	}
	c := a.claims
	return introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: a.username, TokenType: "Bearer",
		Expiry: c.Expiry, IssuedAt: c.IssuedAt, Subject: c.Subject, Audience: c.Audience,
		Issuer: c.Issuer, ID: c.ID, SessionID: c.SessionID,
	}, nil
}

// accessChecker decides whether an access token is valid now, for
// introspection (RFC 7662) and UserInfo (OpenID Connect Core §5.3) alike:
// one code path, so that a token one of them refuses the other refuses too.
type accessChecker struct {
	clients  *clientSet
	keys     *keys.Keys
	denylist storage.Denylist
	now      func() time.Time
}

// errInactive: the access token is not valid (any more), for whatever
// reason; callers must not say which (RFC 7662 §2.2).
var errInactive = errors.New("access token inactive")

// activeAccess is a valid access token: its claims and, for a token of a
// session (every grant but client_credentials), its user's username.
type activeAccess struct {
	claims   tokens.AccessClaims
	username string
}

// check verifies token: our signature and type (an ID or refresh token is
// not an access token), accept (before any database read; nil accepts
// all), exp, a client still configured, not revoked (RFC 7009 denylist),
// and, for a session's token, the session live and its user there. The
// denylist, the session and its user are read in one round trip.
// errInactive if any of that fails; other errors are the server's.
func (a accessChecker) check(ctx context.Context, token string, accept func(tokens.AccessClaims) bool) (activeAccess, error) {
	c, err := a.keys.ParseAccessToken(ctx, token)
	if err != nil || (accept != nil && !accept(c)) {
		return activeAccess{}, errInactive
	}
	now := a.now()
	if !now.Before(time.Unix(c.Expiry, 0)) {
		return activeAccess{}, errInactive
	}
	if _, ok := a.clients.registry().Get(c.ClientID); !ok {
		return activeAccess{}, errInactive // the client was removed from the configuration
	}
	chk, err := a.denylist.CheckAccess(ctx, c.ID, c.SessionID)
	if err != nil {
		return activeAccess{}, err
	}
	if chk.Denied {
		return activeAccess{}, errInactive
	}
	if c.SessionID == "" { // client_credentials: no session, no user
		return activeAccess{claims: c}, nil
	}
	// A token of a session that ended, or whose user is gone, is inactive.
	if chk.Family.ID == "" || !chk.Family.Live(now) || chk.Username == "" {
		return activeAccess{}, errInactive
	}
	return activeAccess{claims: c, username: chk.Username}, nil
}

// refresh reports a refresh token (ktr2, or ktr1 until those have expired)
// active only to the client it was issued to, and only while it is the
// session's current token (DESIGN.md decision D5); it never revokes
// anything (introspection is read-only).
func (h *introspectHandler) refresh(ctx context.Context, caller *clients.Client, token string) (introspection, error) {
	tok, err := tokens.ParseRefresh(token)
	if err != nil {
		return inactive, nil
	}
	// A ktr2 token shows, before any read, whether it is the caller's own
	// (DESIGN.md §2): a forged token, or another client's, is inactive at
	// once (RFC 7662 §2.2). A ktr1 token is checked against its row below.
	if tok.Version == tokens.RefreshV2 && !h.keys.VerifyRefreshFor(tok, caller.ID) {
		return inactive, nil
	}
	chk, err := h.denylist.CheckAccess(ctx, "", tok.FamilyID)
	if err != nil {
		return inactive, fmt.Errorf("introspect: %w", err)
	}
	f, username := chk.Family, chk.Username
	if f.ID == "" || username == "" {
		return inactive, nil // no such session, or its user is gone
	}
	if !h.keys.VerifyRefresh(f, tok) || f.ClientID != caller.ID || tok.Generation != f.Generation || !f.Live(h.now()) {
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

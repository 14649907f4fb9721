package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
)

// passwordGrant is the resource owner password credentials grant (RFC 6749
// §4.3). It authenticates the user (RFC 6749 §4.3.2) and starts a new
// session (family).
type passwordGrant struct {
	users    *userAuth
	families storage.Families
	keys     *keys.Keys
	minter   *minter
	now      func() time.Time
}

func (passwordGrant) required() []string { return []string{"username", "password"} }

func (g passwordGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	userID, hash, err := g.users.authenticate(ctx, req.addr, req.username, req.password)
	if err != nil {
		return nil, err
	}
	c := req.client
	scope, err := grantScope(req.scope, c.AllowsScope, c.DefaultScopes)
	if err != nil {
		return nil, err
	}
	now := g.now().UTC()
	// RFC 6749 §4.3.3: the refresh token is OPTIONAL, and a client without
	// the refresh_token grant gets none. Its login is still a session (the
	// access token's sid), so that introspection ends the access token
	// with it (user disabled, deleted, new password, admin revocation); the
	// session lives exactly as long as the access token, then is swept.
	refreshable := c.AllowsGrant(clients.GrantRefreshToken)
	idle, absolute := c.RefreshIdleTTL, c.RefreshAbsoluteTTL
	if !refreshable {
		idle, absolute = c.AccessTokenTTL, c.AccessTokenTTL
	}
	f := storage.Family{
		ID: tokens.NewID(), ClientID: c.ID, UserID: userID, Scope: strings.Join(scope, " "),
		Salt: tokens.NewSalt(), KeyID: g.keys.MACKeyID(),
		CreatedAt: now, LastUsedAt: now,
		GrantType: storage.GrantPassword, AuthTime: now,
		IdleExpiresAt:     now.Add(idle),
		AbsoluteExpiresAt: now.Add(absolute),
		// A password change since the check ends the user's sessions
		// (`users set-password`): this login's, checked against the old
		// password, must not start after it (RFC 6749 §10.4, §10.3).
		PasswordHash: hash,
	}
	if err := g.families.CreateFamily(ctx, f); errors.Is(err, storage.ErrNotFound) {
		return nil, errBadCredentials // disabled, deleted or password changed since the check
	} else if err != nil {
		return nil, fmt.Errorf("password grant: %w", err)
	}
	resp, err := g.minter.response(ctx, req, userID, scope, f.ID, now)
	if err != nil || !refreshable {
		return resp, err
	}
	return withRefresh(resp, g.keys, f, f.Generation, now), nil
}

// userAuth checks resource-owner passwords for the password grant. Every
// bad-credential failure is one invalid_grant, and an unknown user costs
// the same hash as a wrong password, so neither answers nor timing
// enumerate users. Each attempt is counted by the throttle before its
// password is hashed, and refused (429) before any hashing.
type userAuth struct {
	users     storage.Users
	throttle  *throttle.Throttle
	hashing   *passhash.Limiter
	dummyHash string
	logins    *prometheus.CounterVec
}

func newUserAuth(users storage.Users, th *throttle.Throttle, hashing *passhash.Limiter, m *metrics) (*userAuth, error) {
	dummy, err := passhash.Hash(tokens.NewID(), passhash.Default)
	if err != nil {
		return nil, err
	}
	return &userAuth{
		users:     users,
		throttle:  th,
		hashing:   hashing,
		dummyHash: dummy,
		logins:    m.logins,
	}, nil
}

var errBadCredentials = errInvalidGrant("invalid username or password")

// authenticate returns the id of the user whose password this is, from
// addr (the zero Addr when unknown), and the password hash it was checked
// against; or invalid_grant.
func (a *userAuth) authenticate(ctx context.Context, addr netip.Addr, username, password string) (string, string, error) {
	leave, err := a.hashing.Admit()
	if err != nil {
		a.logins.WithLabelValues(loginShed).Inc()
		return "", "", errHashingBusy
	}
	defer leave()
	login, err := a.throttle.BeginLogin(ctx, addr, username)
	if err != nil {
		var refused *throttle.Refused
		if errors.As(err, &refused) {
			a.logins.WithLabelValues(loginThrottled).Inc()
		}
		return "", "", err
	}
	judged := false
	defer func() {
		if !judged { // a database or hash error, a panic: not counted
			login.Refund(ctx)
		}
	}()
	u, err := a.users.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", "", fmt.Errorf("password grant: %w", err)
	}
	hash := u.PasswordHash
	if err != nil {
		hash = a.dummyHash
	}
	release, herr := a.hashing.Acquire(ctx)
	if herr != nil {
		a.logins.WithLabelValues(loginShed).Inc()
		return "", "", errHashingBusy
	}
	ok, verr := func() (bool, error) {
		defer release() // a panic in the hash must not keep the slot
		return passhash.Verify(hash, password)
	}()
	if verr != nil {
		return "", "", fmt.Errorf("password grant: stored hash of user %s: %w", u.ID, verr)
	}
	judged = true
	if err != nil || !ok || u.Disabled {
		a.logins.WithLabelValues(loginFailed).Inc()
		if err := login.Fail(ctx); err != nil {
			return "", "", err
		}
		return "", "", errBadCredentials
	}
	if err := login.Succeed(ctx); err != nil {
		return "", "", err
	}
	a.logins.WithLabelValues(loginOK).Inc()
	return u.ID, u.PasswordHash, nil
}

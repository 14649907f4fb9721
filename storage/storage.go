// Package storage holds Keyturn's domain types, the Store interface through
// which the server persists them, and the sentinel errors every
// implementation returns. It has no database code: see storage/sqlstore.
package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Implementations return these (possibly wrapped) so callers
// can use errors.Is without knowing the database.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrStaleGeneration: RotateFamily was asked to advance from a generation
	// that is no longer current. The family is live and unchanged; the
	// Family returned with it holds the current state (for the grace window).
	ErrStaleGeneration = errors.New("stale refresh generation")
	// ErrFamilyRevoked: the family was revoked; nothing was changed.
	ErrFamilyRevoked = errors.New("session revoked")
	// ErrFamilyExpired: the family is past its idle or absolute expiry.
	ErrFamilyExpired = errors.New("session expired")
	// ErrUnavailable: the database could not be reached or did not answer
	// in time. The operation may or may not have happened; retrying later
	// is the caller's remedy (the server answers 503).
	ErrUnavailable = errors.New("database unavailable")
	// ErrCodeUsed: RedeemCode found the authorization code already
	// redeemed; the AuthCode returned with it names the session
	// (FamilyID) its first redemption started.
	ErrCodeUsed = errors.New("authorization code already used")
	// ErrCodeExpired: RedeemCode found the authorization code unused but
	// past its expiry.
	ErrCodeExpired = errors.New("authorization code expired")
	// ErrBrowserSessionEnded: RedeemCode found the browser session the
	// code was issued in signed out, revoked, expired or gone; nothing was
	// changed.
	ErrBrowserSessionEnded = errors.New("browser session ended")
	// ErrInvalidText: a string to be stored holds a NUL byte, which
	// PostgreSQL cannot store in text; every implementation refuses it
	// alike, before any database is asked (CheckText).
	ErrInvalidText = errors.New("text contains a NUL byte")
)

// CheckText returns ErrInvalidText if any of ss holds a NUL byte. The
// stores call it on every string they are asked to store, so that a value
// PostgreSQL refuses is refused by SQLite and memstore too.
func CheckText(ss ...string) error {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return ErrInvalidText
		}
	}
	return nil
}

// Revocation reasons recorded on a family.
const (
	ReasonLogout       = "logout"
	ReasonReuse        = "reuse"
	ReasonAdmin        = "admin"
	ReasonUserDisabled = "user_disabled"
	ReasonUserDeleted  = "user_deleted"
	// ReasonPasswordChanged: the user's password was set; sessions opened
	// with the old one end (unless the admin chose to keep them).
	ReasonPasswordChanged = "password_changed"
	// ReasonCodeReplay: the authorization code that started the session
	// was presented again (RFC 6749 §4.1.2: the tokens issued on it are
	// revoked).
	ReasonCodeReplay = "code_replay"
	// ReasonConsentRevoked: the user's consent to the client was revoked
	// (`keyturn consents revoke`).
	ReasonConsentRevoked = "consent_revoked"
)

// Grant types that start a session (Family.GrantType).
const (
	GrantPassword          = "password"
	GrantAuthorizationCode = "authorization_code"
)

// Family is one login session: the single row behind every refresh token
// the session has ever had (DESIGN.md §2). Its refresh
// token for generation g is recomputable from ID, g, Salt and the MAC key
// KeyID names, so no token value is stored.
type Family struct {
	ID                string
	ClientID          string
	UserID            string
	Scope             string // space-separated, as granted at login
	Generation        uint64
	Salt              []byte
	KeyID             string
	CreatedAt         time.Time
	LastUsedAt        time.Time
	IdleExpiresAt     time.Time
	AbsoluteExpiresAt time.Time
	RotatedAt         time.Time // zero: never rotated
	RevokedAt         time.Time // zero: not revoked
	RevokeReason      string
	// GrantType is the grant that started the session: GrantPassword or
	// GrantAuthorizationCode. Required.
	GrantType string
	// BrowserSessionID is the browser login session (BrowserSession.ID)
	// the session's authorization code was issued in; "" for a session
	// not started in a browser (the password grant).
	BrowserSessionID string
	// AuthTime is when the user last authenticated for this session: the
	// password grant's login, or the browser login session's sign-in that
	// the authorization code was issued under (OpenID Connect auth_time).
	AuthTime time.Time
	// PasswordHash, for CreateFamily only and never stored, is the user's
	// password hash a login was checked against: if the user has another
	// one by the insert (SetUserPassword since), CreateFamily fails as for
	// a disabled user. Empty: not checked (a session not started by a
	// password).
	PasswordHash string
}

// CheckNew reports what makes f unfit to be created, before any database
// is asked: a generation past what the databases store (int64), a
// GrantType that is not GrantPassword or GrantAuthorizationCode, a zero
// AuthTime, or a NUL byte in a string (ErrInvalidText). In a batch
// (CreateFamilies, batch true) it must also carry no PasswordHash: a
// password-checked session is created alone, by CreateFamily.
func (f Family) CheckNew(batch bool) error {
	switch {
	case f.Generation > math.MaxInt64:
		return fmt.Errorf("generation %d out of range", f.Generation)
	case f.GrantType != GrantPassword && f.GrantType != GrantAuthorizationCode:
		return fmt.Errorf("grant type %q: want %q or %q", f.GrantType, GrantPassword, GrantAuthorizationCode)
	case f.AuthTime.IsZero():
		return errors.New("no auth time")
	case batch && f.PasswordHash != "":
		return errors.New("a password-checked session is created alone (CreateFamily)")
	}
	return CheckText(f.ID, f.ClientID, f.UserID, f.Scope, f.KeyID, f.RevokeReason, f.BrowserSessionID, f.PasswordHash)
}

// Revoked reports whether the family has been revoked.
func (f Family) Revoked() bool { return !f.RevokedAt.IsZero() }

// ExpiresAt is the earlier of the idle and absolute expiry.
func (f Family) ExpiresAt() time.Time {
	if f.IdleExpiresAt.Before(f.AbsoluteExpiresAt) {
		return f.IdleExpiresAt
	}
	return f.AbsoluteExpiresAt
}

// Live reports whether a refresh token of this family may still be used at now.
func (f Family) Live(now time.Time) bool {
	return !f.Revoked() && now.Before(f.ExpiresAt())
}

// FamilyFilter selects families for listing and bulk revocation. Empty
// fields match everything; at least one field must be set for bulk revocation.
type FamilyFilter struct {
	UserID   string
	ClientID string
	// BrowserSessionID selects the sessions started by authorization codes
	// issued in one browser login session (RP-initiated logout).
	BrowserSessionID string
}

// CheckText returns ErrInvalidText if a field of the filter holds a NUL
// byte (no stored family can match it, and PostgreSQL refuses to compare).
func (f FamilyFilter) CheckText() error {
	return CheckText(f.UserID, f.ClientID, f.BrowserSessionID)
}

// User is a resource owner who logs in with the password grant.
type User struct {
	ID           string
	Username     string
	PasswordHash string // argon2id, PHC string format (storage/passhash)
	Disabled     bool
	// Profile is what OpenID Connect tells relying parties about the user
	// (Core §5.1), set by an admin.
	Profile   UserProfile
	CreatedAt time.Time
	UpdatedAt time.Time
}

// UserProfile holds a user's standard claims besides sub and
// preferred_username (the username): empty means not set, and a claim
// that is not set is left out (OpenID Connect Core §5.3.2).
type UserProfile struct {
	Name          string
	Email         string
	EmailVerified bool // meaningful only with Email
}

// CheckText returns ErrInvalidText if a string of the user, its profile
// included, holds a NUL byte.
func (u User) CheckText() error {
	return CheckText(u.ID, u.Username, u.PasswordHash, u.Profile.Name, u.Profile.Email)
}

// SigningKey is an access-token signing key. The private key is stored
// only encrypted, under a key derived from a secret kept outside the database.
type SigningKey struct {
	ID               string // the JWS "kid"
	Algorithm        string // ES256, RS256 or EdDSA
	PublicJWK        []byte // JSON of the public JWK
	PrivateEncrypted []byte
	CreatedAt        time.Time
	ActivateAt       time.Time // published from CreatedAt, signs from ActivateAt
	// RevokedAt: when `keyturn keys revoke` withdrew the key (zero: never).
	// A revoked key is neither published nor used, and its
	// PrivateEncrypted is erased.
	RevokedAt time.Time
}

// Revoked reports whether the key has been revoked.
func (k SigningKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// KeyRevocations summarises the revoked signing keys: it changes whenever a
// key is revoked (or a revoked key is deleted), so an instance can learn of
// a revocation with a query far cheaper than reloading every key.
type KeyRevocations struct {
	Count  int64
	Latest time.Time // the latest RevokedAt; zero if Count is 0
}

// Throttle is the state of one throttle key (a username, a source
// address, or a pair of them; see package server/throttle), shared by all
// instances: the failures committed, and the attempts in flight, reserved
// before their password (or client secret) was checked and not yet
// resolved.
type Throttle struct {
	Key           string
	Failures      int
	LastFailureAt time.Time // zero: never failed
	Pending       int
	// PendingSince is when the pending attempts began, or when one of them
	// last resolved while others stayed pending: set when the first is
	// reserved, restarted by each resolution that leaves some pending. A
	// pending count that saw no resolution for the rule's Orphan time was
	// left by a crashed instance; one that keeps resolving is alive.
	PendingSince time.Time
}

// ThrottleRule is what a reservation of a key is checked against.
type ThrottleRule struct {
	// Free failures (at least 1) cost nothing: attempts are reserved while
	// failures + pending < Free.
	Free int
	// Past Free failures one attempt at a time is let through, once
	// Delay(failures) has passed since the last failure.
	BaseDelay, MaxDelay time.Duration
	// Window: failures whose last is older are forgotten.
	Window time.Duration
	// Orphan: pending attempts older than this (their login crashed with
	// its instance) are counted as failures.
	Orphan time.Duration
}

// Delay is how long after its last failure a key with failures committed
// failures is held back: nothing below Free, then BaseDelay doubling with
// each further failure, up to MaxDelay. It is capped before shifting, so
// no setting or count overflows.
func (r ThrottleRule) Delay(failures int) time.Duration {
	if failures < r.Free {
		return 0
	}
	shift := failures - r.Free
	if shift >= r.DelayCapShift() {
		return r.MaxDelay
	}
	return r.BaseDelay << shift
}

// DelayCapShift is the least n for which BaseDelay << n reaches MaxDelay
// (the shifts below it do not overflow).
func (r ThrottleRule) DelayCapShift() int {
	n := 0
	for d := r.BaseDelay; d > 0 && d < r.MaxDelay; d <<= 1 {
		n++
	}
	return n
}

// Reservation asks for one attempt on Key under Rule.
type Reservation struct {
	Key  string
	Rule ThrottleRule
}

// ReserveResult is what ReserveAttempts did.
type ReserveResult struct {
	// Refused is the index of the key refused; -1 when all were reserved.
	Refused int
	// States are the keys' states up to the refused one: after their
	// reservation, and the refused one as it stands.
	States []Throttle
}

// Resolution ends one attempt reserved on Key under Rule.
type Resolution struct {
	Key     string
	Outcome AttemptOutcome
	Rule    ThrottleRule
}

// AttemptOutcome is how a reserved attempt ended.
type AttemptOutcome int

const (
	// AttemptFailed commits the reservation as a failure.
	AttemptFailed AttemptOutcome = iota + 1
	// AttemptRefunded drops the reservation (the attempt was not judged).
	AttemptRefunded
	// AttemptSucceeded drops the reservation and forgets the key's failures.
	AttemptSucceeded
	// AttemptAllowed drops the reservation, and keeps the failures: a
	// success that must not reset the key (one an attacker could reset
	// with an account of their own, like a source address).
	AttemptAllowed
)

// Valid reports whether o is one of the outcomes above.
func (o AttemptOutcome) Valid() bool { return o >= AttemptFailed && o <= AttemptAllowed }

// AccessCheck is what introspecting an access token (RFC 7662 §2.2) needs
// from the database, read at once: whether its jti is on the denylist, and
// its session with the session's username.
type AccessCheck struct {
	Denied   bool   // the jti is on the denylist
	Family   Family // zero (empty ID): no such family, or none was asked for
	Username string // the family's user; "" if that user no longer exists
}

// Store is everything the server persists: the role interfaces below,
// composed, plus Ping and Close. Implementations must be safe for
// concurrent use. Every time is taken as an argument (no clock inside) and
// comes back in UTC, at microsecond precision. Each consumer takes the
// role(s) it needs rather than the whole Store.
type Store interface {
	Families
	Users
	Denylist
	SigningKeys
	Throttles
	Codes
	BrowserSessions
	Consents

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Families are login sessions (DESIGN.md §2): one row per session, rotated
// by one conditional update.
type Families interface {
	// CreateFamily starts a session. ErrAlreadyExists if the ID is taken;
	// ErrNotFound if f.UserID (a User.ID) names no enabled user. The user is
	// checked atomically with the insert, so a concurrent SetUserDisabled,
	// DeleteUser or SetUserPassword (when f.PasswordHash is set) either
	// revokes the new family or makes this fail.
	CreateFamily(ctx context.Context, f Family) error
	// CreateFamilies starts many sessions at once, for bulk loads
	// (keyturn-bench -seed-sessions): all of them or, on any error, none.
	// Each is checked as by CreateFamily (ErrAlreadyExists, ErrNotFound for
	// a user that is not enabled); PasswordHash must be empty.
	CreateFamilies(ctx context.Context, fs []Family) error
	// GetFamily returns ErrNotFound for an unknown ID.
	GetFamily(ctx context.Context, id string) (Family, error)
	// RotateFamily advances the family from generation gen to gen+1 if, and
	// only if, gen is still current and the family is live at now; it sets
	// RotatedAt and LastUsedAt to now and IdleExpiresAt to idleExpiresAt
	// (AbsoluteExpiresAt never moves). Of any number of concurrent callers
	// with the same gen, exactly one succeeds. The others get an error and
	// the family is unchanged: ErrNotFound, ErrFamilyRevoked,
	// ErrFamilyExpired, or ErrStaleGeneration together with the current
	// family (checked in that order; a gen above the current one is
	// stale too).
	RotateFamily(ctx context.Context, id string, gen uint64, now, idleExpiresAt time.Time) (Family, error)
	// RevokeFamily marks one family revoked with reason, expired or not.
	// Revoking a revoked family is a no-op that keeps the first reason.
	// ErrNotFound if unknown.
	RevokeFamily(ctx context.Context, id, reason string, now time.Time) error
	// RevokeFamilies revokes every live family matching the filter (which
	// must not be empty) and returns how many it revoked.
	RevokeFamilies(ctx context.Context, filter FamilyFilter, reason string, now time.Time) (int64, error)
	// ListFamilies returns the families matching the filter, newest first.
	ListFamilies(ctx context.Context, filter FamilyFilter) ([]Family, error)
	// DeleteFamilies deletes up to limit (> 0; every Delete* method takes
	// a limit > 0) families that passed their
	// absolute expiry before expiredBefore, or were revoked before
	// revokedBefore.
	DeleteFamilies(ctx context.Context, expiredBefore, revokedBefore time.Time, limit int) (int64, error)
}

// Users are the resource owners of the password grant, managed by the CLI.
// Disabling, deleting or re-passwording a user revokes their sessions in
// the same transaction.
type Users interface {
	// CreateUser adds a user. ErrAlreadyExists if the username (or ID) is taken.
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	// ListUsers returns all users ordered by username, by code point.
	ListUsers(ctx context.Context) ([]User, error)
	// SetUserDisabled enables or disables a user. Disabling also revokes the
	// user's live families (ReasonUserDisabled) in the same transaction.
	SetUserDisabled(ctx context.Context, username string, disabled bool, now time.Time) error
	// SetUserPassword replaces the user's password hash and, unless
	// keepSessions, revokes the user's live families
	// (ReasonPasswordChanged) in the same transaction: sessions opened with
	// the old password end with it.
	SetUserPassword(ctx context.Context, username, passwordHash string, keepSessions bool, now time.Time) error
	// DeleteUser deletes the user and revokes their live families
	// (ReasonUserDeleted) in the same transaction.
	DeleteUser(ctx context.Context, username string, now time.Time) error
	// SetUserProfile replaces the user's profile (User.Profile).
	// ErrNotFound if unknown.
	SetUserProfile(ctx context.Context, username string, p UserProfile, now time.Time) error
}

// Denylist holds revoked access tokens (RFC 7009) until they expire.
// CheckAccess belongs here although it also reads families and users: its
// one caller, introspection (RFC 7662 §2.2), asks the denylist question and
// the session question in one round trip, and no Families user needs it.
type Denylist interface {
	// DenyAccessToken puts an access token's jti on the denylist until
	// expiresAt (RFC 7009). Denying twice is a no-op.
	DenyAccessToken(ctx context.Context, jti string, expiresAt time.Time) error
	// CheckAccess reads, in one round trip, whether jti is on the denylist
	// (false for an empty jti) and the family familyID with its user's
	// username (none for an empty familyID). An unknown family or user is
	// no error: the fields stay zero.
	CheckAccess(ctx context.Context, jti, familyID string) (AccessCheck, error)
	// DeleteDenials deletes up to limit denylist entries that expired before t.
	DeleteDenials(ctx context.Context, before time.Time, limit int) (int64, error)
}

// SigningKeys are the access-token signing keys, stored with their private
// half sealed, and the summary of their revocations.
type SigningKeys interface {
	// CreateSigningKey stores a key. ErrAlreadyExists if the ID is taken.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns all keys ordered by ActivateAt, then ID.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// ActivateSigningKey moves a key's ActivateAt to at (a pending key
	// promoted to sign at once when the signing key is revoked).
	// ErrNotFound if the ID is unknown or the key is revoked.
	ActivateSigningKey(ctx context.Context, id string, at time.Time) error
	// RevokeSigningKey marks a key revoked at now and erases its private
	// half. Revoking a revoked key is a no-op that keeps the first time.
	// ErrNotFound if unknown.
	RevokeSigningKey(ctx context.Context, id string, now time.Time) error
	// SigningKeyRevocations counts the revoked keys and returns the latest
	// RevokedAt, in one cheap query.
	SigningKeyRevocations(ctx context.Context) (KeyRevocations, error)
	// DeleteSigningKeys deletes up to limit keys that were revoked before
	// revokedBefore, or were superseded before supersededBefore: some key
	// with a later ActivateAt, not revoked before that, activated before
	// supersededBefore. A key is superseded only by a key of the same
	// Algorithm: each algorithm is a lineage of its own (access tokens
	// sign with one, ID tokens may use others).
	DeleteSigningKeys(ctx context.Context, supersededBefore, revokedBefore time.Time, limit int) (int64, error)
}

// Throttles is the login defense's shared state: the reservations and
// failures of throttle keys, and the addresses each user is known to log
// in from.
type Throttles interface {
	// ReserveAttempts reserves one attempt on every key, in order, or on
	// none, in one write. Each key is reserved by one conditional
	// statement (creating the key on first use) if its Rule allows it at
	// now, so that of any number of concurrent callers on any number of
	// instances no more are let through than the rule allows. Before it
	// refuses a key, it counts that key's pending attempts older than
	// Rule.Orphan as failures, forgets its failures older than
	// Rule.Window, and tries again. At the first key refused, the
	// reservations already taken are undone.
	ReserveAttempts(ctx context.Context, keys []Reservation, now time.Time) (ReserveResult, error)
	// GetThrottle returns a key's state; ErrNotFound for a key never used.
	GetThrottle(ctx context.Context, key string) (Throttle, error)
	// ResolveAttempts ends attempts reserved on their keys (see
	// AttemptOutcome), in one write. A failure after Rule.Window without
	// one starts again at one.
	ResolveAttempts(ctx context.Context, attempts []Resolution, now time.Time) error
	// DeleteThrottles deletes up to limit keys whose last failure is before
	// t and that have no attempt pending since t or later.
	DeleteThrottles(ctx context.Context, before time.Time, limit int) (int64, error)

	// RememberAddress records that userKey logged in from addr at now, and
	// keeps only the keep (> 0) most recent addresses of userKey.
	RememberAddress(ctx context.Context, userKey, addr string, now time.Time, keep int) error
	// AddressLastSeen is when userKey last logged in from addr (as
	// recorded by RememberAddress); the zero time if not kept.
	AddressLastSeen(ctx context.Context, userKey, addr string) (time.Time, error)
	// DeleteKnownAddresses deletes up to limit addresses last seen before t.
	DeleteKnownAddresses(ctx context.Context, before time.Time, limit int) (int64, error)
}

// AuthCode is an authorization code (RFC 6749 §4.1.2) as stored: only its
// hash, never the code, with everything the token endpoint checks when it
// is redeemed (DESIGN.md §10).
type AuthCode struct {
	// Hash is SHA-256 of the code (tokens.CodeHash); the primary key.
	Hash     []byte
	ClientID string
	UserID   string
	// RedirectURI is the redirect_uri of the authorization request, exactly
	// as sent; "" when the request omitted it (RFC 6749 §4.1.3).
	RedirectURI string
	// CodeChallenge is the PKCE S256 challenge (RFC 7636 §4.4).
	CodeChallenge string
	Scope         string   // space-separated, as consented
	Resources     []string // RFC 8707 resource parameters; may be empty
	// Nonce is the OpenID Connect nonce of the request ("" if none).
	Nonce string
	// BrowserSessionID is the browser login session the code was issued
	// in (BrowserSession.ID).
	BrowserSessionID string
	AuthTime         time.Time // when the user signed in to that browser session
	CreatedAt        time.Time
	ExpiresAt        time.Time
	UsedAt           time.Time // zero: not redeemed
	// FamilyID is the session the code's redemption started; "" until then.
	FamilyID string
}

// Used reports whether the code has been redeemed.
func (c AuthCode) Used() bool { return !c.UsedAt.IsZero() }

// Codes are authorization codes (RFC 6749 §4.1.2, §10.5): single use,
// short-lived, shared by every instance.
type Codes interface {
	// CreateCode stores a new code. ErrAlreadyExists if its Hash is taken.
	CreateCode(ctx context.Context, c AuthCode) error
	// GetCode returns the code with this hash, redeemed or not, expired or
	// not; ErrNotFound if unknown (or already swept).
	GetCode(ctx context.Context, hash []byte) (AuthCode, error)
	// RedeemCode spends the code and starts the session f it was
	// exchanged for, in one transaction: the code is marked used at now
	// with FamilyID f.ID, and f is created as by CreateFamily, by one
	// conditional statement, so that of any number of concurrent callers
	// exactly one succeeds. f.BrowserSessionID must be the code's browser
	// session, and that session must be live at now (the user's, not
	// revoked, now before its ExpiresAt), checked in the same transaction
	// and ordered against a concurrent EndBrowserSession or user change:
	// a redemption that commits before the revocation is seen by it (its
	// family is among those EndBrowserSession or the user change revokes),
	// and one after it fails (RP-Initiated Logout 1.0 §2). The callers that do
	// not succeed change nothing and get ErrNotFound (unknown hash),
	// ErrCodeUsed with the code as stored (so its FamilyID, the session to
	// revoke), ErrCodeExpired (unused, at or past ExpiresAt), CreateFamily's
	// errors (ErrNotFound for a user no longer enabled), or
	// ErrBrowserSessionEnded, in that order of precedence; but for
	// ErrCodeUsed the code stays unused.
	RedeemCode(ctx context.Context, hash []byte, f Family, now time.Time) (AuthCode, error)
	// DeleteCodes deletes up to limit codes that expired before t, used
	// or not.
	DeleteCodes(ctx context.Context, before time.Time, limit int) (int64, error)
}

// BrowserSession is a user's sign-in in one browser (the login page's
// cookie): an opaque cookie whose SHA-256 is the ID, so the database holds
// nothing that opens it.
type BrowserSession struct {
	ID        string // base64url (no padding) SHA-256 of the cookie value
	UserID    string
	AuthTime  time.Time // when the password was checked
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero: not revoked
	// PasswordHash, for CreateBrowserSession only and never stored, is as
	// Family.PasswordHash: the hash the sign-in was checked against.
	PasswordHash string
}

// Live reports whether the browser session may still be used at now.
func (s BrowserSession) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// BrowserSessions are the browser login sessions of the authorization
// endpoint. Disabling, deleting or re-passwording a user (Users) revokes
// the user's browser sessions and deletes their unredeemed codes in the
// same transaction.
type BrowserSessions interface {
	// CreateBrowserSession stores a new browser session. ErrAlreadyExists
	// if the ID is taken; ErrNotFound if UserID names no enabled user, or
	// (PasswordHash set) the user's password changed since, checked
	// atomically with the insert as CreateFamily does.
	CreateBrowserSession(ctx context.Context, s BrowserSession) error
	// GetBrowserSession returns the session, live or not; ErrNotFound if
	// unknown.
	GetBrowserSession(ctx context.Context, id string) (BrowserSession, error)
	// EndBrowserSession marks it revoked at now (a no-op if it already is)
	// and, when clientID is set, revokes with ReasonLogout the live
	// families that this browser session started for clientID (those with
	// its BrowserSessionID and its UserID), all in one transaction: a
	// logout happens wholly or not at all. On an ended session it still
	// revokes those families, so a retry finishes the job. It returns how
	// many families it revoked. ErrNotFound if the session is unknown
	// (then nothing changes). Ordered against RedeemCode as that says: a
	// redemption of a code of this session either commits before (and its
	// family is among those revoked) or fails.
	EndBrowserSession(ctx context.Context, id, clientID string, now time.Time) (int64, error)
	// DeleteBrowserSessions deletes up to limit sessions that expired, or
	// were revoked, before t.
	DeleteBrowserSessions(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Consent is what a user has allowed a client (RFC 6749 §10.2): the union
// of every scope set they consented to for it.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string  // sorted; may be empty (consent to the client with no scope)
	GrantedAt time.Time // the latest grant
}

// Covers reports whether the consent covers every scope in scope.
func (c Consent) Covers(scope []string) bool {
	for _, s := range scope {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// Consents remember what users allowed clients, shared by every instance.
// DeleteUser deletes the user's consents in its transaction.
type Consents interface {
	// GrantConsent adds scopes to userID's consent for clientID (creating
	// it, possibly with no scope), atomically: concurrent grants never
	// lose a scope.
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error
	// GetConsent returns userID's consent for clientID; ErrNotFound if none.
	GetConsent(ctx context.Context, userID, clientID string) (Consent, error)
	// ListConsents returns userID's consents, ordered by client id.
	ListConsents(ctx context.Context, userID string) ([]Consent, error)
	// RevokeConsents forgets userID's consent for clientID (every client
	// if clientID is "") and revokes the matching live sessions
	// (ReasonConsentRevoked) in one transaction; it returns how many
	// consents it deleted and sessions it revoked.
	RevokeConsents(ctx context.Context, userID, clientID string, now time.Time) (consents, sessions int64, err error)
}

package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// Row types mirror migrations/*/0001_init.sql. Every time is a unix
// microsecond count (see the comment at the top of that file); field names
// end in US so that GORM's CreatedAt/UpdatedAt magic never applies.

// micros is t as unix microseconds. The location does not matter.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the UTC time of v unix microseconds.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// nullMicros maps the zero time ("never") to NULL.
func nullMicros(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := micros(t)
	return &v
}

func fromNullMicros(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicros(*v)
}

// nonNil stores a nil slice as an empty one (the columns are NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type familyRow struct {
	ID                  string `gorm:"column:id;primaryKey"`
	ClientID            string `gorm:"column:client_id"`
	UserID              string `gorm:"column:user_id"`
	Scope               string `gorm:"column:scope"`
	Generation          int64  `gorm:"column:generation"`
	Salt                []byte `gorm:"column:salt"`
	KeyID               string `gorm:"column:key_id"`
	CreatedAtUS         int64  `gorm:"column:created_at"`
	LastUsedAtUS        int64  `gorm:"column:last_used_at"`
	IdleExpiresAtUS     int64  `gorm:"column:idle_expires_at"`
	AbsoluteExpiresAtUS int64  `gorm:"column:absolute_expires_at"`
	RotatedAtUS         *int64 `gorm:"column:rotated_at"`
	RevokedAtUS         *int64 `gorm:"column:revoked_at"`
	RevokeReason        string `gorm:"column:revoke_reason"`
	GrantType           string `gorm:"column:grant_type"`
	// AuthTimeUS NULL: a session from before migration 0005 (or an
	// instance of the release before it), whose auth time is CreatedAt.
	AuthTimeUS *int64 `gorm:"column:auth_time"`
	// BrowserSessionID "": not started in a browser, or from before
	// migration 0006.
	BrowserSessionID string `gorm:"column:browser_session_id"`
}

func (familyRow) TableName() string { return "families" }

// familyColumns lists familyRow's columns, for RETURNING.
const familyColumns = "id, client_id, user_id, scope, generation, salt, key_id, " +
	"created_at, last_used_at, idle_expires_at, absolute_expires_at, " +
	"rotated_at, revoked_at, revoke_reason, grant_type, auth_time, browser_session_id"

// dest is r's fields in familyColumns order, for rows.Scan.
func (r *familyRow) dest() []any {
	return []any{&r.ID, &r.ClientID, &r.UserID, &r.Scope, &r.Generation, &r.Salt, &r.KeyID,
		&r.CreatedAtUS, &r.LastUsedAtUS, &r.IdleExpiresAtUS, &r.AbsoluteExpiresAtUS,
		&r.RotatedAtUS, &r.RevokedAtUS, &r.RevokeReason, &r.GrantType, &r.AuthTimeUS, &r.BrowserSessionID}
}

// toFamilyRow assumes f.Generation fits in an int64 (checked by callers).
func toFamilyRow(f storage.Family) familyRow {
	return familyRow{
		ID:                  f.ID,
		ClientID:            f.ClientID,
		UserID:              f.UserID,
		Scope:               f.Scope,
		Generation:          int64(f.Generation),
		Salt:                nonNil(f.Salt),
		KeyID:               f.KeyID,
		CreatedAtUS:         micros(f.CreatedAt),
		LastUsedAtUS:        micros(f.LastUsedAt),
		IdleExpiresAtUS:     micros(f.IdleExpiresAt),
		AbsoluteExpiresAtUS: micros(f.AbsoluteExpiresAt),
		RotatedAtUS:         nullMicros(f.RotatedAt),
		RevokedAtUS:         nullMicros(f.RevokedAt),
		RevokeReason:        f.RevokeReason,
		GrantType:           f.GrantType,
		AuthTimeUS:          nullMicros(f.AuthTime), // never zero (CheckNew)
		BrowserSessionID:    f.BrowserSessionID,
	}
}

func (r familyRow) family() storage.Family {
	f := storage.Family{
		ID:                r.ID,
		ClientID:          r.ClientID,
		UserID:            r.UserID,
		Scope:             r.Scope,
		Generation:        uint64(r.Generation), // CHECK (generation >= 0)
		Salt:              r.Salt,
		KeyID:             r.KeyID,
		CreatedAt:         fromMicros(r.CreatedAtUS),
		LastUsedAt:        fromMicros(r.LastUsedAtUS),
		IdleExpiresAt:     fromMicros(r.IdleExpiresAtUS),
		AbsoluteExpiresAt: fromMicros(r.AbsoluteExpiresAtUS),
		RotatedAt:         fromNullMicros(r.RotatedAtUS),
		RevokedAt:         fromNullMicros(r.RevokedAtUS),
		RevokeReason:      r.RevokeReason,
		GrantType:         r.GrantType,
		BrowserSessionID:  r.BrowserSessionID,
		AuthTime:          fromMicros(r.CreatedAtUS),
	}
	if r.AuthTimeUS != nil {
		f.AuthTime = fromMicros(*r.AuthTimeUS)
	}
	return f
}

type userRow struct {
	ID           string `gorm:"column:id;primaryKey"`
	Username     string `gorm:"column:username"`
	PasswordHash string `gorm:"column:password_hash"`
	Disabled     bool   `gorm:"column:disabled"`
	// Name, Email and EmailVerified are User.Profile (migration 0006).
	Name          string `gorm:"column:name"`
	Email         string `gorm:"column:email"`
	EmailVerified bool   `gorm:"column:email_verified"`
	CreatedAtUS   int64  `gorm:"column:created_at"`
	UpdatedAtUS   int64  `gorm:"column:updated_at"`
}

func (userRow) TableName() string { return "users" }

func toUserRow(u storage.User) userRow {
	return userRow{
		ID:            u.ID,
		Username:      u.Username,
		PasswordHash:  u.PasswordHash,
		Disabled:      u.Disabled,
		Name:          u.Profile.Name,
		Email:         u.Profile.Email,
		EmailVerified: u.Profile.EmailVerified,
		CreatedAtUS:   micros(u.CreatedAt),
		UpdatedAtUS:   micros(u.UpdatedAt),
	}
}

func (r userRow) user() storage.User {
	return storage.User{
		ID:           r.ID,
		Username:     r.Username,
		PasswordHash: r.PasswordHash,
		Disabled:     r.Disabled,
		Profile:      storage.UserProfile{Name: r.Name, Email: r.Email, EmailVerified: r.EmailVerified},
		CreatedAt:    fromMicros(r.CreatedAtUS),
		UpdatedAt:    fromMicros(r.UpdatedAtUS),
	}
}

type signingKeyRow struct {
	ID               string `gorm:"column:id;primaryKey"`
	Algorithm        string `gorm:"column:algorithm"`
	PublicJWK        []byte `gorm:"column:public_jwk"`
	PrivateEncrypted []byte `gorm:"column:private_encrypted"`
	CreatedAtUS      int64  `gorm:"column:created_at"`
	ActivateAtUS     int64  `gorm:"column:activate_at"`
	RevokedAtUS      *int64 `gorm:"column:revoked_at"`
}

func (signingKeyRow) TableName() string { return "signing_keys" }

func toSigningKeyRow(k storage.SigningKey) signingKeyRow {
	return signingKeyRow{
		ID:               k.ID,
		Algorithm:        k.Algorithm,
		PublicJWK:        nonNil(k.PublicJWK),
		PrivateEncrypted: nonNil(k.PrivateEncrypted),
		CreatedAtUS:      micros(k.CreatedAt),
		ActivateAtUS:     micros(k.ActivateAt),
		RevokedAtUS:      nullMicros(k.RevokedAt),
	}
}

func (r signingKeyRow) signingKey() storage.SigningKey {
	return storage.SigningKey{
		ID:               r.ID,
		Algorithm:        r.Algorithm,
		PublicJWK:        r.PublicJWK,
		PrivateEncrypted: r.PrivateEncrypted,
		CreatedAt:        fromMicros(r.CreatedAtUS),
		ActivateAt:       fromMicros(r.ActivateAtUS),
		RevokedAt:        fromNullMicros(r.RevokedAtUS),
	}
}

type throttleRow struct {
	Key             string `gorm:"column:key;primaryKey"`
	Failures        int    `gorm:"column:failures"`
	LastFailureAtUS int64  `gorm:"column:last_failure_at"`
	Pending         int    `gorm:"column:pending"`
	PendingSinceUS  int64  `gorm:"column:pending_since"`
}

func (throttleRow) TableName() string { return "login_throttles" }

func (r throttleRow) throttle() storage.Throttle {
	t := storage.Throttle{Key: r.Key, Failures: r.Failures, Pending: r.Pending}
	if r.LastFailureAtUS != 0 {
		t.LastFailureAt = fromMicros(r.LastFailureAtUS)
	}
	if r.Pending > 0 {
		t.PendingSince = fromMicros(r.PendingSinceUS)
	}
	return t
}

type codeRow struct {
	Hash             []byte `gorm:"column:hash;primaryKey"`
	ClientID         string `gorm:"column:client_id"`
	UserID           string `gorm:"column:user_id"`
	RedirectURI      string `gorm:"column:redirect_uri"`
	CodeChallenge    string `gorm:"column:code_challenge"`
	Scope            string `gorm:"column:scope"`
	Resources        string `gorm:"column:resources"` // JSON array of strings
	Nonce            string `gorm:"column:nonce"`
	BrowserSessionID string `gorm:"column:browser_session_id"`
	AuthTimeUS       int64  `gorm:"column:auth_time"`
	CreatedAtUS      int64  `gorm:"column:created_at"`
	ExpiresAtUS      int64  `gorm:"column:expires_at"`
	UsedAtUS         *int64 `gorm:"column:used_at"`
	FamilyID         string `gorm:"column:family_id"`
}

func (codeRow) TableName() string { return "auth_codes" }

// codeColumns lists codeRow's columns, for SELECT and RETURNING.
const codeColumns = "hash, client_id, user_id, redirect_uri, code_challenge, scope, resources, nonce, " +
	"browser_session_id, auth_time, created_at, expires_at, used_at, family_id"

// dest is r's fields in codeColumns order, for rows.Scan.
func (r *codeRow) dest() []any {
	return []any{&r.Hash, &r.ClientID, &r.UserID, &r.RedirectURI, &r.CodeChallenge, &r.Scope, &r.Resources, &r.Nonce,
		&r.BrowserSessionID, &r.AuthTimeUS, &r.CreatedAtUS, &r.ExpiresAtUS, &r.UsedAtUS, &r.FamilyID}
}

func toCodeRow(c storage.AuthCode) (codeRow, error) {
	resources, err := json.Marshal(nonNilStrings(c.Resources))
	if err != nil {
		return codeRow{}, err
	}
	return codeRow{
		Hash:             nonNil(c.Hash),
		ClientID:         c.ClientID,
		UserID:           c.UserID,
		RedirectURI:      c.RedirectURI,
		CodeChallenge:    c.CodeChallenge,
		Scope:            c.Scope,
		Resources:        string(resources),
		Nonce:            c.Nonce,
		BrowserSessionID: c.BrowserSessionID,
		AuthTimeUS:       micros(c.AuthTime),
		CreatedAtUS:      micros(c.CreatedAt),
		ExpiresAtUS:      micros(c.ExpiresAt),
		UsedAtUS:         nullMicros(c.UsedAt),
		FamilyID:         c.FamilyID,
	}, nil
}

func (r codeRow) code() (storage.AuthCode, error) {
	var resources []string
	if err := json.Unmarshal([]byte(r.Resources), &resources); err != nil {
		return storage.AuthCode{}, fmt.Errorf("code resources: %w", err)
	}
	if len(resources) == 0 {
		resources = nil
	}
	return storage.AuthCode{
		Hash:             r.Hash,
		ClientID:         r.ClientID,
		UserID:           r.UserID,
		RedirectURI:      r.RedirectURI,
		CodeChallenge:    r.CodeChallenge,
		Scope:            r.Scope,
		Resources:        resources,
		Nonce:            r.Nonce,
		BrowserSessionID: r.BrowserSessionID,
		AuthTime:         fromMicros(r.AuthTimeUS),
		CreatedAt:        fromMicros(r.CreatedAtUS),
		ExpiresAt:        fromMicros(r.ExpiresAtUS),
		UsedAt:           fromNullMicros(r.UsedAtUS),
		FamilyID:         r.FamilyID,
	}, nil
}

func nonNilStrings(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

type browserSessionRow struct {
	ID          string `gorm:"column:id;primaryKey"`
	UserID      string `gorm:"column:user_id"`
	AuthTimeUS  int64  `gorm:"column:auth_time"`
	CreatedAtUS int64  `gorm:"column:created_at"`
	ExpiresAtUS int64  `gorm:"column:expires_at"`
	RevokedAtUS *int64 `gorm:"column:revoked_at"`
}

func (browserSessionRow) TableName() string { return "browser_sessions" }

func toBrowserSessionRow(b storage.BrowserSession) browserSessionRow {
	return browserSessionRow{
		ID:          b.ID,
		UserID:      b.UserID,
		AuthTimeUS:  micros(b.AuthTime),
		CreatedAtUS: micros(b.CreatedAt),
		ExpiresAtUS: micros(b.ExpiresAt),
		RevokedAtUS: nullMicros(b.RevokedAt),
	}
}

func (r browserSessionRow) browserSession() storage.BrowserSession {
	return storage.BrowserSession{
		ID:        r.ID,
		UserID:    r.UserID,
		AuthTime:  fromMicros(r.AuthTimeUS),
		CreatedAt: fromMicros(r.CreatedAtUS),
		ExpiresAt: fromMicros(r.ExpiresAtUS),
		RevokedAt: fromNullMicros(r.RevokedAtUS),
	}
}

package sqlstore

import (
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
}

func (familyRow) TableName() string { return "families" }

// familyColumns lists familyRow's columns, for RETURNING.
const familyColumns = "id, client_id, user_id, scope, generation, salt, key_id, " +
	"created_at, last_used_at, idle_expires_at, absolute_expires_at, " +
	"rotated_at, revoked_at, revoke_reason"

// dest is r's fields in familyColumns order, for rows.Scan.
func (r *familyRow) dest() []any {
	return []any{&r.ID, &r.ClientID, &r.UserID, &r.Scope, &r.Generation, &r.Salt, &r.KeyID,
		&r.CreatedAtUS, &r.LastUsedAtUS, &r.IdleExpiresAtUS, &r.AbsoluteExpiresAtUS,
		&r.RotatedAtUS, &r.RevokedAtUS, &r.RevokeReason}
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
	}
}

func (r familyRow) family() storage.Family {
	return storage.Family{
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
	}
}

type userRow struct {
	ID           string `gorm:"column:id;primaryKey"`
	Username     string `gorm:"column:username"`
	PasswordHash string `gorm:"column:password_hash"`
	Disabled     bool   `gorm:"column:disabled"`
	CreatedAtUS  int64  `gorm:"column:created_at"`
	UpdatedAtUS  int64  `gorm:"column:updated_at"`
}

func (userRow) TableName() string { return "users" }

func toUserRow(u storage.User) userRow {
	return userRow{
		ID:           u.ID,
		Username:     u.Username,
		PasswordHash: u.PasswordHash,
		Disabled:     u.Disabled,
		CreatedAtUS:  micros(u.CreatedAt),
		UpdatedAtUS:  micros(u.UpdatedAt),
	}
}

func (r userRow) user() storage.User {
	return storage.User{
		ID:           r.ID,
		Username:     r.Username,
		PasswordHash: r.PasswordHash,
		Disabled:     r.Disabled,
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

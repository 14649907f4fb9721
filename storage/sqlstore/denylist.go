package sqlstore

import (
	"context"
	"time"
)

// DenyAccessToken puts jti on the denylist until expiresAt (RFC 7009).
// Denying twice is a no-op that keeps the first expiry.
func (s *Store) DenyAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	err := s.db.WithContext(ctx).Exec(
		"INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
		jti, micros(expiresAt)).Error
	return mapErr("deny access token", err)
}

// AccessTokenDenied reports whether jti is on the denylist.
func (s *Store) AccessTokenDenied(ctx context.Context, jti string) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&denialRow{}).Where("jti = ?", jti).Count(&n).Error; err != nil {
		return false, mapErr("access token denied", err)
	}
	return n > 0, nil
}

// DeleteDenials deletes up to limit denylist entries that expired before t.
func (s *Store) DeleteDenials(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "revoked_access_tokens", "jti", "expires_at < ?", []any{micros(before)}, limit)
	return n, mapErr("delete denials", err)
}

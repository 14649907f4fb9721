package sqlstore

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// addFailureSQL counts a failure in one statement, so concurrent failures
// on any number of instances all count. A key whose last failure is older
// than the reset cutoff starts again at one.
const addFailureSQL = `INSERT INTO login_throttles ("key", failures, last_failure_at) VALUES (?, 1, ?)
ON CONFLICT ("key") DO UPDATE SET
  failures = CASE WHEN login_throttles.last_failure_at < ? THEN 1 ELSE login_throttles.failures + 1 END,
  last_failure_at = ?
RETURNING "key", failures, last_failure_at`

// AddLoginFailure records a failed login for key at now and returns the
// new state. A key whose last failure is before resetBefore starts again
// at one failure.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now, resetBefore time.Time) (storage.Throttle, error) {
	var rows []throttleRow
	nowUS := micros(now)
	err := s.write(ctx, func(db *gorm.DB) error {
		rows = nil
		return db.Raw(addFailureSQL, key, nowUS, micros(resetBefore), nowUS).Scan(&rows).Error
	})
	if err != nil {
		return storage.Throttle{}, mapErr("add login failure", err)
	}
	if len(rows) != 1 {
		return storage.Throttle{}, mapErr("add login failure", errNoRow)
	}
	return rows[0].throttle(), nil
}

// GetThrottle returns ErrNotFound for a key with no recorded failure.
func (s *Store) GetThrottle(ctx context.Context, key string) (storage.Throttle, error) {
	var row throttleRow
	if err := s.db.WithContext(ctx).Where(`"key" = ?`, key).Take(&row).Error; err != nil {
		return storage.Throttle{}, mapErr("get throttle", err)
	}
	return row.throttle(), nil
}

// ResetThrottle forgets a key's failures. Unknown keys are not an error.
func (s *Store) ResetThrottle(ctx context.Context, key string) error {
	return mapErr("reset throttle", s.write(ctx, func(db *gorm.DB) error {
		return db.Where(`"key" = ?`, key).Delete(&throttleRow{}).Error
	}))
}

// DeleteThrottles deletes up to limit keys whose last failure is before t.
func (s *Store) DeleteThrottles(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "login_throttles", `"key"`, "last_failure_at < ?", []any{micros(before)}, limit)
	return n, mapErr("delete throttles", err)
}

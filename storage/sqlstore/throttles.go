package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// Every statement below is the same text on SQLite and PostgreSQL; each
// is atomic on its own, which is what makes the counts exact under any
// concurrency, on one instance or many. Parameters are cast so that
// PostgreSQL infers their types.

// expireThrottleSQL counts pending attempts older than the orphan cutoff
// as failures (their login crashed with its instance: conservatively, a
// failure at now) and forgets failures older than the window. Its WHERE
// makes it a no-op, without a write, on a key that needs neither.
const expireThrottleSQL = `UPDATE login_throttles SET
  failures = CASE WHEN last_failure_at < CAST(? AS BIGINT) THEN 0 ELSE failures END
    + CASE WHEN pending > 0 AND pending_since < CAST(? AS BIGINT) THEN pending ELSE 0 END,
  last_failure_at = CASE WHEN pending > 0 AND pending_since < CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE last_failure_at END,
  pending = CASE WHEN pending > 0 AND pending_since < CAST(? AS BIGINT) THEN 0 ELSE pending END
WHERE "key" = ? AND ((failures > 0 AND last_failure_at < CAST(? AS BIGINT)) OR (pending > 0 AND pending_since < CAST(? AS BIGINT)))`

// reserveSQL takes one reservation if failures + pending stay under the
// free failures, or, past them, if nothing is pending and the delay since
// the last failure has passed. The delay is BaseDelay << (failures -
// Free), capped at MaxDelay from the shift DelayCapShift on, so the shift
// never overflows. A new key starts with the reservation.
const reserveSQL = `INSERT INTO login_throttles ("key", failures, last_failure_at, pending, pending_since)
VALUES (?, 0, 0, 1, CAST(? AS BIGINT))
ON CONFLICT ("key") DO UPDATE SET
  pending = login_throttles.pending + 1,
  pending_since = CASE WHEN login_throttles.pending = 0 THEN excluded.pending_since ELSE login_throttles.pending_since END
WHERE login_throttles.failures + login_throttles.pending < CAST(? AS INTEGER)
   OR (login_throttles.pending = 0 AND login_throttles.last_failure_at <= CAST(? AS BIGINT) -
       CASE WHEN login_throttles.failures - CAST(? AS INTEGER) >= CAST(? AS INTEGER) THEN CAST(? AS BIGINT)
            ELSE CAST(? AS BIGINT) << (login_throttles.failures - CAST(? AS INTEGER)) END)
RETURNING "key", failures, last_failure_at, pending, pending_since`

// ReserveAttempts reserves one attempt on every key or none, in one
// write (on SQLite, one commit). Failures past the window and orphaned
// reservations still weigh on the first try of a key; only a refusal pays
// for expiring them (and tries again), so the common case is one
// statement per key.
func (s *Store) ReserveAttempts(ctx context.Context, keys []storage.Reservation, now time.Time) (storage.ReserveResult, error) {
	var res storage.ReserveResult
	err := s.write(ctx, func(db *gorm.DB) error {
		res = storage.ReserveResult{Refused: -1, States: make([]storage.Throttle, 0, len(keys))}
		for i, k := range keys {
			th, ok, err := reserveOne(db, k.Key, k.Rule, now)
			if err != nil {
				return err
			}
			res.States = append(res.States, th)
			if ok {
				continue
			}
			res.Refused = i
			for _, taken := range keys[:i] {
				if err := db.Exec(resolveRefundSQL, micros(now), taken.Key).Error; err != nil {
					return err
				}
			}
			return nil
		}
		return nil
	})
	if err != nil {
		return storage.ReserveResult{}, mapErr("reserve attempts", err)
	}
	return res, nil
}

// reserveOne reserves one attempt on key, or reads why not.
func reserveOne(db *gorm.DB, key string, rule storage.ThrottleRule, now time.Time) (storage.Throttle, bool, error) {
	nowUS := micros(now)
	windowStart, orphanBefore := micros(now.Add(-rule.Window)), micros(now.Add(-rule.Orphan))
	baseUS, maxUS := rule.BaseDelay.Microseconds(), rule.MaxDelay.Microseconds()
	capShift := rule.DelayCapShift()
	var rows []throttleRow
	take := func() (bool, error) {
		rows = nil
		err := db.Raw(reserveSQL, key, nowUS, rule.Free, nowUS, rule.Free, capShift, maxUS, baseUS, rule.Free).Scan(&rows).Error
		return len(rows) == 1, err
	}
	if ok, err := take(); err != nil || ok {
		return throttleOf(rows), ok, err // the common case: one statement
	}
	// Refused: expire orphans and forgotten failures, and if that changed
	// the key, try once more.
	res := db.Exec(expireThrottleSQL, windowStart, orphanBefore, orphanBefore, nowUS, orphanBefore,
		key, windowStart, orphanBefore)
	if res.Error != nil {
		return storage.Throttle{}, false, res.Error
	}
	if res.RowsAffected > 0 {
		if ok, err := take(); err != nil || ok {
			return throttleOf(rows), ok, err
		}
	}
	// Still refused: read the state, for the caller to say how long to wait.
	err := db.Raw(`SELECT "key", failures, last_failure_at, pending, pending_since FROM login_throttles WHERE "key" = ?`,
		key).Scan(&rows).Error
	if err == nil && len(rows) != 1 {
		err = errNoRow
	}
	return throttleOf(rows), false, err
}

func throttleOf(rows []throttleRow) storage.Throttle {
	if len(rows) != 1 {
		return storage.Throttle{}
	}
	return rows[0].throttle()
}

// GetThrottle returns ErrNotFound for a key never used.
func (s *Store) GetThrottle(ctx context.Context, key string) (storage.Throttle, error) {
	var row throttleRow
	if err := s.db.WithContext(ctx).Where(`"key" = ?`, key).Take(&row).Error; err != nil {
		return storage.Throttle{}, mapErr("get throttle", err)
	}
	return row.throttle(), nil
}

// resolveFailedSQL commits a reservation as a failure. A key that is gone
// (its reservation was expired and swept meanwhile) is created with it.
const resolveFailedSQL = `INSERT INTO login_throttles ("key", failures, last_failure_at, pending, pending_since)
VALUES (?, 1, CAST(? AS BIGINT), 0, 0)
ON CONFLICT ("key") DO UPDATE SET
  failures = CASE WHEN login_throttles.last_failure_at < CAST(? AS BIGINT) THEN 1 ELSE login_throttles.failures + 1 END,
  last_failure_at = excluded.last_failure_at,
  pending_since = CASE WHEN login_throttles.pending > 1 THEN excluded.last_failure_at ELSE login_throttles.pending_since END,
  pending = CASE WHEN login_throttles.pending > 0 THEN login_throttles.pending - 1 ELSE 0 END`

// A reservation already expired as an orphan leaves pending at 0: the
// decrement stops there rather than take another attempt's reservation.
// A resolution that leaves others pending restarts pending_since: the key
// is alive, and only a pending count that sees no resolution for the
// orphan time is taken as left by a crashed instance.
const (
	resolveRefundSQL = `UPDATE login_throttles SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END,
  pending_since = CASE WHEN pending > 1 THEN CAST(? AS BIGINT) ELSE pending_since END WHERE "key" = ?`
	resolveSuccessSQL = `UPDATE login_throttles SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END,
  pending_since = CASE WHEN pending > 1 THEN CAST(? AS BIGINT) ELSE pending_since END, failures = 0 WHERE "key" = ?`
)

// ResolveAttempts ends attempts reserved on their keys, in one write (on
// SQLite, one commit).
func (s *Store) ResolveAttempts(ctx context.Context, attempts []storage.Resolution, now time.Time) error {
	for _, a := range attempts {
		if !a.Outcome.Valid() {
			return fmt.Errorf("resolve attempt: unknown outcome %d", a.Outcome)
		}
	}
	return mapErr("resolve attempts", s.write(ctx, func(db *gorm.DB) error {
		for _, a := range attempts {
			var err error
			switch a.Outcome {
			case storage.AttemptFailed:
				err = db.Exec(resolveFailedSQL, a.Key, micros(now), micros(now.Add(-a.Rule.Window))).Error
			case storage.AttemptSucceeded:
				err = db.Exec(resolveSuccessSQL, micros(now), a.Key).Error
			default:
				err = db.Exec(resolveRefundSQL, micros(now), a.Key).Error
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

// DeleteThrottles deletes up to limit keys whose last failure is before t
// and with no attempt pending since t or later.
func (s *Store) DeleteThrottles(ctx context.Context, before time.Time, limit int) (int64, error) {
	b := micros(before)
	n, err := s.deleteBatch(ctx, "login_throttles", `"key"`, "last_failure_at < ? AND (pending = 0 OR pending_since < ?)", []any{b, b}, limit)
	return n, mapErr("delete throttles", err)
}

// RememberAddress records a login of userKey from addr at now and keeps
// the keep most recent addresses of userKey.
func (s *Store) RememberAddress(ctx context.Context, userKey, addr string, now time.Time, keep int) error {
	if keep <= 0 {
		return fmt.Errorf("remember address: keep %d: must be positive", keep)
	}
	return mapErr("remember address", s.write(ctx, func(db *gorm.DB) error {
		err := db.Exec(`INSERT INTO known_addresses (user_key, addr, last_seen_at) VALUES (?, ?, CAST(? AS BIGINT))
ON CONFLICT (user_key, addr) DO UPDATE SET last_seen_at = CASE
  WHEN excluded.last_seen_at > known_addresses.last_seen_at THEN excluded.last_seen_at ELSE known_addresses.last_seen_at END`,
			userKey, addr, micros(now)).Error
		if err != nil {
			return err
		}
		return db.Exec(`DELETE FROM known_addresses WHERE user_key = ? AND addr NOT IN (
  SELECT addr FROM known_addresses WHERE user_key = ? ORDER BY last_seen_at DESC, addr LIMIT ?)`,
			userKey, userKey, keep).Error
	}))
}

// AddressLastSeen is when userKey last logged in from addr; zero if not kept.
func (s *Store) AddressLastSeen(ctx context.Context, userKey, addr string) (time.Time, error) {
	var seen []int64
	err := s.db.WithContext(ctx).Raw(`SELECT last_seen_at FROM known_addresses WHERE user_key = ? AND addr = ?`,
		userKey, addr).Scan(&seen).Error
	if err != nil || len(seen) == 0 {
		return time.Time{}, mapErr("address last seen", err)
	}
	return fromMicros(seen[0]), nil
}

// DeleteKnownAddresses deletes up to limit addresses last seen before t.
func (s *Store) DeleteKnownAddresses(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("limit %d: must be positive", limit)
	}
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Exec(`DELETE FROM known_addresses WHERE last_seen_at < ? AND (user_key, addr) IN (
  SELECT user_key, addr FROM known_addresses WHERE last_seen_at < ? LIMIT ?)`, micros(before), micros(before), limit)
		n = res.RowsAffected
		return res.Error
	})
	return n, mapErr("delete known addresses", err)
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// CreateSigningKey stores a key. ErrAlreadyExists if the ID is taken.
func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	row := toSigningKeyRow(k)
	return s.create(ctx, "create signing key", &row)
}

// ListSigningKeys returns all keys ordered by ActivateAt, then ID.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	return find(s.db.WithContext(ctx).Order("activate_at").Order(s.orderText("id", false)),
		"list signing keys", signingKeyRow.signingKey)
}

// ActivateSigningKey moves a live key's ActivateAt to at. ErrNotFound if
// the key is unknown or revoked.
func (s *Store) ActivateSigningKey(ctx context.Context, id string, at time.Time) error {
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Exec("UPDATE signing_keys SET activate_at = ? WHERE id = ? AND revoked_at IS NULL", micros(at), id)
		n = res.RowsAffected
		return res.Error
	})
	if err == nil && n == 0 {
		return fmt.Errorf("activate signing key: %w", storage.ErrNotFound)
	}
	return mapErr("activate signing key", err)
}

// RevokeSigningKey marks a key revoked at now and erases its private half
// in the same statement. Revoking a revoked key keeps the first time.
// ErrNotFound if unknown.
func (s *Store) RevokeSigningKey(ctx context.Context, id string, now time.Time) error {
	return s.revokeOnce(ctx, "revoke signing key", &signingKeyRow{}, id,
		"UPDATE signing_keys SET revoked_at = ?, private_encrypted = ? WHERE id = ? AND revoked_at IS NULL",
		micros(now), []byte{}, id)
}

// SigningKeyRevocations counts the revoked keys and returns the latest
// revocation time: one aggregate over a table of a handful of rows.
func (s *Store) SigningKeyRevocations(ctx context.Context) (storage.KeyRevocations, error) {
	var out storage.KeyRevocations
	err := queryRows(s.db.WithContext(ctx),
		"SELECT COUNT(*), COALESCE(MAX(revoked_at), 0) FROM signing_keys WHERE revoked_at IS NOT NULL", nil,
		func(rows *sql.Rows) error {
			var latest int64
			if err := rows.Scan(&out.Count, &latest); err != nil {
				return err
			}
			if out.Count > 0 {
				out.Latest = fromMicros(latest)
			}
			return nil
		})
	return out, mapErr("signing key revocations", err)
}

// deleteSigningKeysCond selects keys revoked before $1, or superseded
// before $2: a later key of the same algorithm (each algorithm is a
// lineage of its own; strictly later ActivateAt, so a tie never retires a
// key early), not revoked before it activated, activated before $2. Such
// keys are a prefix of their lineage's activation order, so deleting any
// of them never changes when a remaining key was superseded.
const deleteSigningKeysCond = `revoked_at < ? OR EXISTS (SELECT 1 FROM signing_keys n
  WHERE n.algorithm = signing_keys.algorithm
    AND n.activate_at > signing_keys.activate_at AND n.activate_at < ?
    AND (n.revoked_at IS NULL OR n.revoked_at >= n.activate_at))`

// DeleteSigningKeys deletes up to limit keys revoked before revokedBefore
// or superseded (by a key of their algorithm) before supersededBefore.
func (s *Store) DeleteSigningKeys(ctx context.Context, supersededBefore, revokedBefore time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "signing_keys", "id", deleteSigningKeysCond,
		[]any{micros(revokedBefore), micros(supersededBefore)}, limit)
	return n, mapErr("delete signing keys", err)
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/keyturn/keyturn/migrations"
	"github.com/keyturn/keyturn/storage"
)

// DenyAccessToken puts jti on the denylist until expiresAt (RFC 7009).
// Denying twice is a no-op that keeps the first expiry.
func (s *Store) DenyAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Exec(
			"INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
			jti, micros(expiresAt)).Error
	})
	return mapErr("deny access token", err)
}

// DeleteDenials deletes up to limit denylist entries that expired before t.
func (s *Store) DeleteDenials(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "revoked_access_tokens", "jti", "expires_at < ?", []any{micros(before)}, limit)
	return n, mapErr("delete denials", err)
}

// checkAccessSQL answers CheckAccess with one row whatever matches: the
// denylist as EXISTS, the family and its user by LEFT JOIN onto a one-row
// table. The family's NOT NULL columns are coalesced so that one scan
// (familyRow.dest) serves the found and the missing family alike; an empty
// id tells them apart (ids are never empty).
const checkAccessSQL = `SELECT
  EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?),
  COALESCE(f.id, ''), COALESCE(f.client_id, ''), COALESCE(f.user_id, ''), COALESCE(f.scope, ''),
  COALESCE(f.generation, 0), f.salt, COALESCE(f.key_id, ''),
  COALESCE(f.created_at, 0), COALESCE(f.last_used_at, 0),
  COALESCE(f.idle_expires_at, 0), COALESCE(f.absolute_expires_at, 0),
  f.rotated_at, f.revoked_at, COALESCE(f.revoke_reason, ''),
  COALESCE(f.grant_type, ''), f.auth_time, COALESCE(f.browser_session_id, ''),
  COALESCE(u.username, '')
FROM (SELECT 1 AS one) AS one
LEFT JOIN families f ON f.id = ?
LEFT JOIN users u ON u.id = f.user_id`

// checkAccessSQLPostgres is checkAccessSQL for pgx (see withPgx).
var checkAccessSQLPostgres = dollarParams(checkAccessSQL)

// CheckAccess reads the denylist entry, family and username behind an
// access token in one statement (introspection's three lookups in one
// round trip; BENCHMARKS.md). It is introspection's only statement, so on
// PostgreSQL it skips GORM as the refresh's rotation does (withPgx).
func (s *Store) CheckAccess(ctx context.Context, jti, familyID string) (storage.AccessCheck, error) {
	var out storage.AccessCheck
	n := 0
	each := func(scan func(dest ...any) error) error {
		var denied bool
		var f familyRow
		var username string
		if err := scan(append(append([]any{&denied}, f.dest()...), &username)...); err != nil {
			return err
		}
		n++
		out.Denied = denied && jti != ""
		if f.ID != "" && familyID != "" {
			out.Family, out.Username = f.family(), username
		}
		return nil
	}
	args := []any{jti, familyID}
	var err error
	if s.dialect == migrations.Postgres {
		err = s.queryPgx(ctx, checkAccessSQLPostgres, args, func(rows pgx.Rows) error { return each(rows.Scan) })
	} else {
		err = queryRows(s.db.WithContext(ctx), checkAccessSQL, args, func(rows *sql.Rows) error { return each(rows.Scan) })
	}
	if err == nil && n != 1 {
		err = fmt.Errorf("%d rows", n)
	}
	return out, mapErr("check access", err)
}

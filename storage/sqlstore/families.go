package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/keyturn/keyturn/migrations"
	"github.com/keyturn/keyturn/storage"
)

// CreateFamily starts a session for an enabled user. ErrAlreadyExists if
// the ID is taken; ErrNotFound if the user does not exist or is disabled.
//
// The user is checked in the same transaction, holding a share lock on its
// row (PostgreSQL; SQLite transactions are serialised), so a concurrent
// SetUserDisabled or DeleteUser either waits and then revokes the new
// family, or commits first and makes this fail: a session can never
// outlive its user's disabling.
func (s *Store) CreateFamily(ctx context.Context, f storage.Family) error {
	if err := f.CheckNew(false); err != nil {
		return fmt.Errorf("create family: %w", err)
	}
	row := toFamilyRow(f)
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := s.lockUser(tx, f.UserID, f.PasswordHash); err != nil {
				return err
			}
			return tx.Create(&row).Error
		})
	})
	return mapErr("create family", err)
}

// lockUser checks, in transaction tx, that userID names an enabled user
// (whose password hash is passwordHash, unless that is empty), or returns
// ErrNotFound. It holds a share lock on the user's row until tx ends
// (PostgreSQL; SQLite's writes are serialised), so a SetUserDisabled,
// DeleteUser or SetUserPassword either committed before this check, which
// then fails, or waits for tx and then revokes what tx created.
func (s *Store) lockUser(tx *gorm.DB, userID, passwordHash string) error {
	q, args := "SELECT id FROM users WHERE id = ? AND NOT disabled", []any{userID}
	if passwordHash != "" {
		q, args = q+" AND password_hash = ?", append(args, passwordHash)
	}
	if s.dialect == migrations.Postgres {
		q += " FOR SHARE"
	}
	var ids []string
	if err := tx.Raw(q, args...).Scan(&ids).Error; err != nil {
		return err
	}
	if len(ids) == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// familiesPerInsert bounds the rows of one multi-row INSERT: at 17
// parameters a row, under SQLite's 32,766 and PostgreSQL's 65,535.
const familiesPerInsert = 1000

// CreateFamilies starts many sessions in one transaction, a multi-row
// INSERT per familiesPerInsert rows: all or none. Their users are checked
// as CreateFamily checks one (share-locked on PostgreSQL): ErrNotFound if
// any is missing or disabled; ErrAlreadyExists if any ID is taken.
func (s *Store) CreateFamilies(ctx context.Context, fs []storage.Family) error {
	if len(fs) == 0 {
		return nil
	}
	rows := make([]familyRow, len(fs))
	users := map[string]bool{}
	for i, f := range fs {
		if err := f.CheckNew(true); err != nil {
			return fmt.Errorf("create families: %w", err)
		}
		rows[i] = toFamilyRow(f)
		users[f.UserID] = true
	}
	userIDs := slices.Collect(maps.Keys(users))
	lock := ""
	if s.dialect == migrations.Postgres {
		lock = " FOR SHARE"
	}
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			var ids []string
			if err := tx.Raw("SELECT id FROM users WHERE id IN ? AND NOT disabled"+lock, userIDs).Scan(&ids).Error; err != nil {
				return err
			}
			if len(ids) != len(userIDs) {
				return storage.ErrNotFound
			}
			return tx.CreateInBatches(rows, familiesPerInsert).Error
		})
	})
	return mapErr("create families", err)
}

// GetFamily returns ErrNotFound for an unknown ID.
func (s *Store) GetFamily(ctx context.Context, id string) (storage.Family, error) {
	f, err := s.getFamily(ctx, id)
	return f, mapErr("get family", err)
}

const getFamilySQL = "SELECT " + familyColumns + " FROM families WHERE id = ?"

func (s *Store) getFamily(ctx context.Context, id string) (storage.Family, error) {
	if err := checkID(id); err != nil {
		return storage.Family{}, err
	}
	rows, err := queryFamilies(s.db.WithContext(ctx), getFamilySQL, id)
	switch {
	case err != nil:
		return storage.Family{}, err
	case len(rows) == 0:
		return storage.Family{}, gorm.ErrRecordNotFound
	}
	return rows[0].family(), nil
}

// queryFamilies runs a statement that returns familyColumns. It is on the
// refresh and introspection paths, so it scans by hand (see queryRows).
func queryFamilies(db *gorm.DB, query string, args ...any) ([]familyRow, error) {
	var out []familyRow
	err := queryRows(db, query, args, func(rows *sql.Rows) error {
		var r familyRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// rotateSQL is the whole of a successful rotation: one statement, one round
// trip, and of any number of concurrent callers with the same generation
// only one can match (DESIGN.md §2). Live means now < both expiries.
const rotateSQL = `UPDATE families
SET generation = generation + 1, rotated_at = ?, last_used_at = ?, idle_expires_at = ?
WHERE id = ? AND generation = ? AND revoked_at IS NULL
  AND idle_expires_at > ? AND absolute_expires_at > ?
RETURNING ` + familyColumns

// rotateSQLPostgres is rotateSQL for pgx (see withPgx).
var rotateSQLPostgres = dollarParams(rotateSQL)

// RotateFamily advances the family from gen to gen+1 with one conditional
// UPDATE … RETURNING. Only when it matches nothing does it read the row, to
// say why: ErrNotFound, ErrFamilyRevoked, ErrFamilyExpired, or
// ErrStaleGeneration with the current family.
func (s *Store) RotateFamily(ctx context.Context, id string, gen uint64, now, idleExpiresAt time.Time) (storage.Family, error) {
	if err := checkID(id); err != nil {
		return storage.Family{}, mapErr("rotate family", err)
	}
	nowUS := micros(now)
	if gen <= math.MaxInt64 { // larger cannot be current: fall through to stale
		args := []any{nowUS, nowUS, micros(idleExpiresAt), id, int64(gen), nowUS, nowUS}
		var row familyRow
		var n int
		var err error
		if s.dialect == migrations.Postgres {
			row, n, err = s.rotatePostgres(ctx, args)
		} else {
			var rows []familyRow
			err = s.write(ctx, func(db *gorm.DB) (err error) {
				rows, err = queryFamilies(db, rotateSQL, args...)
				return err
			})
			if n = len(rows); n > 0 {
				row = rows[0]
			}
		}
		if err != nil {
			return storage.Family{}, mapErr("rotate family", err)
		}
		switch n {
		case 1:
			return row.family(), nil
		case 0:
		default:
			return storage.Family{}, fmt.Errorf("rotate family: %d rows updated", n)
		}
	}

	f, err := s.getFamily(ctx, id)
	switch {
	case err != nil:
		return storage.Family{}, mapErr("rotate family", err)
	case f.Revoked():
		return storage.Family{}, fmt.Errorf("rotate family: %w", storage.ErrFamilyRevoked)
	case nowUS >= micros(f.IdleExpiresAt) || nowUS >= micros(f.AbsoluteExpiresAt):
		return storage.Family{}, fmt.Errorf("rotate family: %w", storage.ErrFamilyExpired)
	case f.Generation == gen:
		// Unreachable: generation only grows, and revocation and expiry
		// do not undo themselves. Say so rather than guess.
		return storage.Family{}, fmt.Errorf("rotate family: generation %d is current and live but did not rotate", gen)
	default:
		return f, fmt.Errorf("rotate family: %w", storage.ErrStaleGeneration)
	}
}

// rotatePostgres runs rotateSQL with args straight through pgx (withPgx
// says why) and returns the first row and how many rows it returned.
func (s *Store) rotatePostgres(ctx context.Context, args []any) (familyRow, int, error) {
	var row familyRow
	n := 0
	err := s.queryPgx(ctx, rotateSQLPostgres, args, func(rows pgx.Rows) error {
		if n++; n > 1 {
			return nil
		}
		return rows.Scan(row.dest()...)
	})
	return row, n, err
}

// RevokeFamily marks one family revoked. Revoking a revoked family keeps
// the first reason and time. ErrNotFound if unknown.
func (s *Store) RevokeFamily(ctx context.Context, id, reason string, now time.Time) error {
	return s.revokeOnce(ctx, "revoke family", &familyRow{}, id,
		"UPDATE families SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL",
		micros(now), reason, id)
}

// errEmptyFilter refuses a bulk revocation that would end every session.
var errEmptyFilter = errors.New("empty filter: refusing to revoke every family")

// RevokeFamilies revokes every live family matching the filter, which must
// not be empty, and returns how many it revoked.
func (s *Store) RevokeFamilies(ctx context.Context, filter storage.FamilyFilter, reason string, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(db *gorm.DB) (err error) {
		n, err = revokeLiveFamilies(db, filter, reason, now)
		return err
	})
	return n, mapErr("revoke families", err)
}

// revokeLiveFamilies is RevokeFamilies on db, which may be a transaction.
func revokeLiveFamilies(db *gorm.DB, filter storage.FamilyFilter, reason string, now time.Time) (int64, error) {
	if filter == (storage.FamilyFilter{}) {
		return 0, errEmptyFilter
	}
	if err := filter.CheckText(); err != nil {
		return 0, err
	}
	nowUS := micros(now)
	q := whereFilter(db.Model(&familyRow{}), filter).
		Where("revoked_at IS NULL AND idle_expires_at > ? AND absolute_expires_at > ?", nowUS, nowUS)
	res := q.Updates(map[string]any{"revoked_at": nowUS, "revoke_reason": reason})
	return res.RowsAffected, res.Error
}

func whereFilter(q *gorm.DB, filter storage.FamilyFilter) *gorm.DB {
	if filter.UserID != "" {
		q = q.Where("user_id = ?", filter.UserID)
	}
	if filter.ClientID != "" {
		q = q.Where("client_id = ?", filter.ClientID)
	}
	if filter.BrowserSessionID != "" {
		q = q.Where("browser_session_id = ?", filter.BrowserSessionID)
	}
	return q
}

// ListFamilies returns the families matching the filter, newest first
// (ties by ID, descending).
func (s *Store) ListFamilies(ctx context.Context, filter storage.FamilyFilter) ([]storage.Family, error) {
	if err := filter.CheckText(); err != nil {
		return nil, fmt.Errorf("list families: %w", err)
	}
	q := whereFilter(s.db.WithContext(ctx), filter).
		Order("created_at DESC").Order(s.orderText("id", true))
	return find(q, "list families", familyRow.family)
}

// DeleteFamilies deletes up to limit families whose absolute expiry is
// before expiredBefore or that were revoked before revokedBefore.
func (s *Store) DeleteFamilies(ctx context.Context, expiredBefore, revokedBefore time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "families", "id",
		"absolute_expires_at < ? OR revoked_at < ?",
		[]any{micros(expiredBefore), micros(revokedBefore)}, limit)
	return n, mapErr("delete families", err)
}

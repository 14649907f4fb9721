package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/migrations"
)

// migrateLockKey is the pg_advisory_lock key that serializes Migrate across
// processes sharing a PostgreSQL database ("keyturn" in ASCII).
const migrateLockKey int64 = 0x6b65797475726e

// schemaMigrationsDDL records applied migrations: one row per version,
// inserted in the migration's own transaction.
var schemaMigrationsDDL = map[string]string{
	migrations.Postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL)`,
	migrations.SQLite: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY NOT NULL,
		applied_at INTEGER NOT NULL) STRICT`,
}

// Migrate applies the pending migrations in version order, each in its own
// transaction together with its schema_migrations row, and returns the
// versions it applied (none when the schema is current). Concurrent callers
// are safe: on PostgreSQL they queue on an advisory lock, on SQLite on the
// write lock every transaction takes at BEGIN (_txlock=immediate); either
// way each migration is applied once.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	ms, err := migrations.List(s.dialect)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	err = s.wdb.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		// A fresh statement per call, all on the one connection.
		conn = conn.Session(&gorm.Session{})
		if s.dialect == migrations.Postgres {
			unlock, err := advisoryLock(ctx, conn)
			if err != nil {
				return err
			}
			defer unlock()
		}
		if err := conn.Exec(schemaMigrationsDDL[s.dialect]).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := conn.Raw("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current).Error; err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > latest {
			return newerSchemaError(current, latest)
		}
		for _, m := range ms {
			if m.Version <= current {
				continue
			}
			done, err := s.apply(ctx, conn, m)
			if err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if done {
				applied = append(applied, m.Version)
				s.log.InfoContext(ctx, "applied migration", "version", m.Version, "name", m.Name)
			}
		}
		return nil
	})
	if err != nil {
		return applied, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// apply runs m in a transaction unless another process applied it first,
// and reports whether it ran.
func (s *Store) apply(ctx context.Context, conn *gorm.DB, m migrations.Migration) (bool, error) {
	done := false
	err := conn.Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Raw("SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.Version).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		// Straight to the driver: a file holds several statements and
		// must not go through GORM's placeholder expansion.
		if _, err := tx.Statement.ConnPool.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		if err := tx.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
			m.Version, micros(time.Now())).Error; err != nil {
			return err
		}
		done = true
		return nil
	})
	return done && err == nil, err
}

// advisoryLock takes the migration lock on conn's session and returns the
// function that releases it. If the unlock fails, the connection is
// discarded instead of going back to the pool still holding the lock.
func advisoryLock(ctx context.Context, conn *gorm.DB) (unlock func(), err error) {
	if err := conn.Exec("SELECT pg_advisory_lock(?)", migrateLockKey).Error; err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := conn.WithContext(uctx).Exec("SELECT pg_advisory_unlock(?)", migrateLockKey).Error
		if err == nil {
			return
		}
		if c, ok := conn.Statement.ConnPool.(*sql.Conn); ok {
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

// SchemaVersion returns the database's current schema version (0 before
// the first migration) and the newest version this build embeds. Current
// < latest means Migrate has work to do; current > latest means the
// database was migrated by a newer Keyturn.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	latest, err = migrations.Latest(s.dialect)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	db := s.db.WithContext(ctx)
	var exists bool
	switch s.dialect {
	case migrations.Postgres:
		// to_regclass resolves the name through search_path.
		err = db.Raw("SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists).Error
	default:
		err = db.Raw("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&exists).Error
	}
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	if err := db.Raw("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current).Error; err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	return current, latest, nil
}

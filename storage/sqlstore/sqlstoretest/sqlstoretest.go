// Package sqlstoretest opens real, fresh, migrated stores for tests: a
// SQLite file in a temporary directory, and a PostgreSQL schema of its own
// in the database named by KEYTURN_TEST_DATABASE_URL (skipped when unset;
// CI sets it and fails on any skipped PostgreSQL test).
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for schema setup only

	"github.com/keyturn/keyturn/storage/sqlstore"
)

// EnvPostgres names the PostgreSQL database the tests may use.
const EnvPostgres = "KEYTURN_TEST_DATABASE_URL"

// SQLiteURL returns the URL of a new SQLite file under t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "keyturn.db")
}

// RequirePostgres returns KEYTURN_TEST_DATABASE_URL, or skips the test
// when it is unset.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skip("set " + EnvPostgres + " to a PostgreSQL database (docker compose up -d postgres)")
	}
	return base
}

// PostgresURL creates an empty schema in the test database and returns a
// URL whose connections use it (search_path); the schema is dropped when
// the test ends. It skips the test when KEYTURN_TEST_DATABASE_URL is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := RequirePostgres(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "kt_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", EnvPostgres, err)
	}
	if _, err := db.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Connect opens the store at url, without migrating it, and closes it
// when the test ends.
func Connect(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), url, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Open opens and migrates the store at url and closes it when the test ends.
func Open(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	s := Connect(t, url)
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// SQLite returns a fresh, migrated SQLite store.
func SQLite(t testing.TB) *sqlstore.Store { t.Helper(); return Open(t, SQLiteURL(t)) }

// Postgres returns a fresh, migrated PostgreSQL store, or skips.
func Postgres(t testing.TB) *sqlstore.Store { t.Helper(); return Open(t, PostgresURL(t)) }

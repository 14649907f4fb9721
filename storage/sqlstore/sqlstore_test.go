package sqlstore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
	"github.com/keyturn/keyturn/storage/storagetest"
)

// openStore opens url, unmigrated, and closes it at cleanup.
func openStore(t *testing.T, url string) *sqlstore.Store { return sqlstoretest.Connect(t, url) }

func migrate(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

func TestSQLite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return sqlstoretest.SQLite(t) })
}

func TestPostgres(t *testing.T) {
	sqlstoretest.RequirePostgres(t)
	storagetest.Run(t, func(t *testing.T) storage.Store { return sqlstoretest.Postgres(t) })
}

// dialects runs fn against a fresh, unmigrated database URL of each dialect.
func dialects(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, sqlstoretest.SQLiteURL(t)) })
	t.Run("Postgres", func(t *testing.T) { fn(t, sqlstoretest.PostgresURL(t)) })
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		cur, latest, err := s.SchemaVersion(t.Context())
		if err != nil || cur != 0 || latest < 1 {
			t.Fatalf("SchemaVersion before = %d, %d, %v", cur, latest, err)
		}
		applied, err := s.Migrate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := versions(latest); !slices.Equal(applied, want) {
			t.Errorf("first Migrate applied %v, want %v", applied, want)
		}
		applied, err = s.Migrate(t.Context())
		if err != nil || len(applied) != 0 {
			t.Errorf("second Migrate = %v, %v; want nothing", applied, err)
		}
		cur, _, err = s.SchemaVersion(t.Context())
		if err != nil || cur != latest {
			t.Errorf("SchemaVersion after = %d, %v; want %d", cur, err, latest)
		}
		// A second store on the same database agrees.
		if applied, err := openStore(t, url).Migrate(t.Context()); err != nil || len(applied) != 0 {
			t.Errorf("Migrate from another store = %v, %v; want nothing", applied, err)
		}
	})
}

func versions(latest int) []int {
	var v []int
	for i := 1; i <= latest; i++ {
		v = append(v, i)
	}
	return v
}

// TestConcurrentMigrate: instances starting together on a fresh database
// all succeed, and each migration is applied once.
func TestConcurrentMigrate(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		const n = 8
		stores := make([]*sqlstore.Store, n)
		for i := range stores {
			stores[i] = openStore(t, url)
		}
		applied := make([][]int, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				<-start
				applied[i], errs[i] = s.Migrate(t.Context())
			})
		}
		close(start)
		wg.Wait()
		var all []int
		for i := range n {
			if errs[i] != nil {
				t.Errorf("Migrate %d: %v", i, errs[i])
			}
			all = append(all, applied[i]...)
		}
		slices.Sort(all)
		_, latest, _ := stores[0].SchemaVersion(t.Context())
		if want := versions(latest); !slices.Equal(all, want) {
			t.Errorf("applied in total %v, want %v once each", all, want)
		}
		var rows int64
		if err := stores[0].Gorm().Table("schema_migrations").Count(&rows).Error; err != nil || rows != int64(latest) {
			t.Errorf("schema_migrations has %d rows (%v), want %d", rows, err, latest)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		migrate(t, s)
		_, latest, err := s.SchemaVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		newer := latest + 1
		if err := s.Gorm().Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", newer, 0).Error; err != nil {
			t.Fatal(err)
		}
		_, err = sqlstore.Open(t.Context(), url, sqlstore.Options{})
		want := sqlstore.NewerSchemaError(newer, latest).Error()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open = %v, want an error containing %q", err, want)
		}
		if _, err := s.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate = %v, want an error containing %q", err, want)
		}
	})
}

// TestDuplicateKey checks the driver error translation behind
// ErrAlreadyExists on each database, primary key and UNIQUE alike.
func TestDuplicateKey(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		migrate(t, s)
		ctx := t.Context()
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		u := storage.User{ID: "u1", Username: "ada", PasswordHash: "h", CreatedAt: at, UpdatedAt: at}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		u2 := u
		u2.Username = "bob"
		err := s.CreateUser(ctx, u2) // primary key
		if !errors.Is(err, storage.ErrAlreadyExists) || !strings.HasPrefix(err.Error(), "create user: ") {
			t.Errorf("CreateUser(same id) = %v", err)
		}
		u3 := u
		u3.ID = "u2"
		if err := s.CreateUser(ctx, u3); !errors.Is(err, storage.ErrAlreadyExists) { // UNIQUE (username)
			t.Errorf("CreateUser(same username) = %v", err)
		}
		k := storage.SigningKey{ID: "k1", Algorithm: "EdDSA", CreatedAt: at, ActivateAt: at}
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSigningKey(ctx, k); !errors.Is(err, storage.ErrAlreadyExists) {
			t.Errorf("CreateSigningKey twice = %v", err)
		}
	})
}

func TestOpenRedactsPassword(t *testing.T) {
	const password = "s3cr3t-Passw0rd"
	for _, u := range []string{
		"postgres://keyturn:" + password + "@127.0.0.1:1/keyturn?sslmode=disable&connect_timeout=2",
		"postgresql://keyturn@127.0.0.1:1/keyturn?sslmode=disable&connect_timeout=2&password=" + password,
		"postgresql://keyturn@127.0.0.1:1/keyturn?sslmode=disable&connect_timeout=2&sslpassword=" + password,
		"postgres://keyturn:" + password + "@[::1:bad/keyturn", // malformed
	} {
		_, err := sqlstore.Open(t.Context(), u, sqlstore.Options{})
		if err == nil {
			t.Fatal("Open: no error")
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("Open error contains the password: %v", err)
		}

	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, u := range []string{
		"",
		"mysql://localhost/keyturn",
		"sqlite://",
		"sqlite://:memory:",
		"sqlite://data.db?mode=ro",
		"sqlite://" + filepath.Join(t.TempDir(), "missing-dir", "keyturn.db"),
	} {
		if s, err := sqlstore.Open(t.Context(), u, sqlstore.Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", u)
		}
	}
}

func TestOpenSQLiteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, "sqlite://data/keyturn.db")
	migrate(t, s)
	if _, err := os.Stat(filepath.Join("data", "keyturn.db")); err != nil {
		t.Fatal(err)
	}
}

func TestPragmas(t *testing.T) {
	s := sqlstoretest.SQLite(t)
	for name, db := range map[string]*gorm.DB{"reader": s.Gorm(), "writer": s.WriterGorm()} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"synchronous":  "2", // FULL
			"busy_timeout": "10000",
		} {
			var got string
			if err := db.Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, pragma, got, want)
			}
		}
	}
}

// TestSQLiteOneWriterConnection: SQLite writers queue for one connection in
// Go; readers keep a pool. PostgreSQL uses one pool for both.
func TestSQLiteOneWriterConnection(t *testing.T) {
	s := sqlstoretest.SQLite(t)
	reader, writer := s.Pools()
	if got := writer.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("SQLite writer pool: %d connections, want 1", got)
	}
	if got := reader.Stats().MaxOpenConnections; got != sqlstore.DefaultMaxOpenConns {
		t.Errorf("SQLite reader pool: %d connections, want %d", got, sqlstore.DefaultMaxOpenConns)
	}
	// Writers at once all succeed, each in turn.
	ctx := t.Context()
	if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "ada"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			f := storage.Family{ID: fmt.Sprintf("f%d", i), UserID: "u", GrantType: storage.GrantPassword, AuthTime: time.Unix(1e9, 0), IdleExpiresAt: time.Unix(1e9, 0), AbsoluteExpiresAt: time.Unix(1e9, 0)}
			if err := s.CreateFamily(ctx, f); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	pg := sqlstoretest.Postgres(t)
	if reader, writer := pg.Pools(); writer != reader || pg.WriterGorm() != pg.Gorm() {
		t.Error("PostgreSQL: separate writer pool")
	}
}

// TestTimesStoredAsMicroseconds pins the on-disk representation the
// migrations promise: integers, not driver-formatted text.
func TestTimesStoredAsMicroseconds(t *testing.T) {
	check := func(t *testing.T, s *sqlstore.Store) {
		at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
		if err := s.CreateUser(t.Context(), storage.User{ID: "u", Username: "ada", CreatedAt: at, UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
		f := storage.Family{ID: "f", UserID: "u", GrantType: storage.GrantPassword, AuthTime: at, CreatedAt: at, LastUsedAt: at, IdleExpiresAt: at, AbsoluteExpiresAt: at}
		if err := s.CreateFamily(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		var got struct {
			CreatedAt int64
			RotatedAt *int64
		}
		if err := s.Gorm().Raw("SELECT created_at, rotated_at FROM families WHERE id = 'f'").Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if got.CreatedAt != at.UnixMicro() || got.RotatedAt != nil {
			t.Errorf("stored created_at %d rotated_at %v, want %d and NULL", got.CreatedAt, got.RotatedAt, at.UnixMicro())
		}
	}
	t.Run("SQLite", func(t *testing.T) { check(t, sqlstoretest.SQLite(t)) })
	t.Run("Postgres", func(t *testing.T) { check(t, sqlstoretest.Postgres(t)) })
}

// TestNewColumnDoesNotBreakRunningStore: during a rolling upgrade a newer
// instance may add columns while this one runs. Its statements name their
// columns and no statement plan is pinned, so every call keeps working.
func TestNewColumnDoesNotBreakRunningStore(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		migrate(t, s)
		s.DB().SetMaxOpenConns(1) // the connection that cached the statements
		ctx := t.Context()
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "ada", CreatedAt: at, UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
		f := storage.Family{ID: "f", UserID: "u", GrantType: storage.GrantPassword, AuthTime: at, CreatedAt: at, LastUsedAt: at, IdleExpiresAt: at.Add(time.Hour), AbsoluteExpiresAt: at.Add(time.Hour)}
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
		calls := func() error {
			if _, err := s.GetFamily(ctx, "f"); err != nil {
				return err
			}
			if _, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: f.UserID}); err != nil {
				return err
			}
			if _, err := s.GetUserByUsername(ctx, "ada"); err != nil {
				return err
			}
			_, err := s.ListUsers(ctx)
			return err
		}
		if err := calls(); err != nil {
			t.Fatal(err)
		}
		newer := openStore(t, url)
		for _, ddl := range []string{
			"ALTER TABLE families ADD COLUMN device TEXT",
			"ALTER TABLE users ADD COLUMN locale TEXT",
		} {
			if err := newer.Gorm().Exec(ddl).Error; err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			if err := calls(); err != nil {
				t.Fatalf("call %d after ALTER TABLE: %v", i, err)
			}
		}
	})
}

// TestFamiliesFillfactorPostgres: migrations leave room on each families
// page (fillfactor 90, migration 0004) so that a rotation, which changes no
// indexed column, can stay a heap-only (HOT) update with a million sessions.
func TestFamiliesFillfactorPostgres(t *testing.T) {
	s := sqlstoretest.Postgres(t)
	var opts []string
	// 'families'::regclass resolves through the test schema's search_path.
	if err := s.Gorm().Raw("SELECT unnest(reloptions) FROM pg_class WHERE oid = 'families'::regclass").Scan(&opts).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opts, "fillfactor=90") {
		t.Errorf("families reloptions = %q, want fillfactor=90", opts)
	}
}

// TestFamilyFromBeforeMigration5: a session row that names neither
// grant_type nor auth_time (one created before migration 0005, or by an
// instance of the release before it during a rolling upgrade) reads as a
// password session signed in when it was created.
func TestFamilyFromBeforeMigration5(t *testing.T) {
	dialects(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		migrate(t, s)
		ctx := t.Context()
		at := time.Date(2025, 1, 1, 0, 0, 0, 1000, time.UTC)
		if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "ada", CreatedAt: at, UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
		// The INSERT of the release before 0005.
		if err := s.Gorm().Exec(`INSERT INTO families (id, client_id, user_id, scope, generation, salt, key_id,
			created_at, last_used_at, idle_expires_at, absolute_expires_at, rotated_at, revoked_at, revoke_reason)
			VALUES ('old', 'c', 'u', '', 0, ?, 'k', ?, ?, ?, ?, NULL, NULL, '')`,
			[]byte("s"), at.UnixMicro(), at.UnixMicro(), at.Add(time.Hour).UnixMicro(), at.Add(time.Hour).UnixMicro()).Error; err != nil {
			t.Fatal(err)
		}
		check := func(op string, f storage.Family) {
			t.Helper()
			if f.GrantType != storage.GrantPassword || !f.AuthTime.Equal(at) {
				t.Errorf("%s: GrantType %q AuthTime %v, want %q %v", op, f.GrantType, f.AuthTime, storage.GrantPassword, at)
			}
		}
		f, err := s.GetFamily(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		check("GetFamily", f)
		list, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "u"})
		if err != nil || len(list) != 1 {
			t.Fatalf("ListFamilies = %v, %v", list, err)
		}
		check("ListFamilies", list[0])
		chk, err := s.CheckAccess(ctx, "", "old")
		if err != nil {
			t.Fatal(err)
		}
		check("CheckAccess", chk.Family)
		r, err := s.RotateFamily(ctx, "old", 0, at.Add(time.Minute), at.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		check("RotateFamily", r)
	})
}

// TestPostgresRotationIndexesNoNewColumn: migration 0005 indexes neither
// grant_type nor auth_time, so a rotation stays a HOT update (0004).
func TestPostgresRotationIndexesNoNewColumn(t *testing.T) {
	s := sqlstoretest.Postgres(t)
	var defs []string
	if err := s.Gorm().Raw("SELECT indexdef FROM pg_indexes WHERE tablename = 'families' AND schemaname = current_schema()").Scan(&defs).Error; err != nil {
		t.Fatal(err)
	}
	if len(defs) == 0 {
		t.Fatal("no index on families found")
	}
	for _, d := range defs {
		for _, col := range []string{"grant_type", "auth_time", "generation", "idle_expires_at", "last_used_at", "rotated_at"} {
			if strings.Contains(d, col) {
				t.Errorf("index %q covers %s, which a rotation or migration 0005 touches", d, col)
			}
		}
	}
}

package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// The rotation runs straight through pgx on PostgreSQL (withPgx). These are
// the cases of that path the conformance suite does not reach: a context
// ending while the statement waits, and a connection the server ended.

var pgxAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// newRotatable returns a PostgreSQL store with one live family "f".
func newRotatable(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := sqlstoretest.Postgres(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "ada", CreatedAt: pgxAt, UpdatedAt: pgxAt}); err != nil {
		t.Fatal(err)
	}
	f := storage.Family{ID: "f", ClientID: "app", UserID: "u", Salt: []byte("s"), GrantType: storage.GrantPassword,
		AuthTime: pgxAt, CreatedAt: pgxAt, LastUsedAt: pgxAt,
		IdleExpiresAt: pgxAt.Add(time.Hour), AbsoluteExpiresAt: pgxAt.Add(time.Hour)}
	if err := s.CreateFamily(ctx, f); err != nil {
		t.Fatal(err)
	}
	return s
}

// rotateCurrent rotates "f" from whatever generation it is at, which must
// work: the pool has no broken connection left.
func rotateCurrent(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	ctx := t.Context()
	f, err := s.GetFamily(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	now := pgxAt.Add(time.Minute)
	got, err := s.RotateFamily(ctx, "f", f.Generation, now, now.Add(time.Hour))
	if err != nil || got.Generation != f.Generation+1 {
		t.Fatalf("RotateFamily(%d) = generation %d, %v; want %d", f.Generation, got.Generation, err, f.Generation+1)
	}
}

// TestRotateContextEndsPostgres: a rotation waiting on a row lock stops when
// its context ends. A deadline is an outage (ErrUnavailable: the server
// answers 503); a cancellation (the client went away) is not. Either way
// the store stays usable, and the UPDATE does not run after all once the
// lock is free (it was cancelled on the server, see dialectorFor).
func TestRotateContextEndsPostgres(t *testing.T) {
	s := newRotatable(t)
	for _, tc := range []struct {
		name        string
		ctx         func() (context.Context, context.CancelFunc)
		want        error
		unavailable bool
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 200*time.Millisecond)
		}, context.DeadlineExceeded, true},
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
			context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := s.Gorm().WithContext(t.Context()).Begin()
			if tx.Error != nil {
				t.Fatal(tx.Error)
			}
			defer tx.Rollback()
			var ids []string
			if err := tx.Raw("SELECT id FROM families WHERE id = 'f' FOR UPDATE").Scan(&ids).Error; err != nil || len(ids) != 1 {
				t.Fatalf("lock: %v, %v", ids, err)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			if tc.want == context.Canceled {
				go func() { waitForRotation(t, s, true, true); cancel() }()
			}
			f, err := s.GetFamily(t.Context(), "f")
			if err != nil {
				t.Fatal(err)
			}
			now := pgxAt.Add(time.Minute)
			_, err = s.RotateFamily(ctx, "f", f.Generation, now, now.Add(time.Hour))
			if !errors.Is(err, tc.want) || errors.Is(err, storage.ErrUnavailable) != tc.unavailable {
				t.Errorf("RotateFamily = %v; want %v, unavailable %v", err, tc.want, tc.unavailable)
			}
			if err := tx.Rollback().Error; err != nil {
				t.Fatal(err)
			}
			// The abandoned UPDATE was cancelled on the server, not left to
			// run (and commit) once the lock is free: the family is where it
			// was, so the caller's retry of the same token is no reuse.
			waitForRotation(t, s, false, false)
			after, err := s.GetFamily(t.Context(), "f")
			if err != nil {
				t.Fatal(err)
			}
			if after.Generation != f.Generation {
				t.Errorf("generation %d after the abandoned rotation, want %d (it still ran)", after.Generation, f.Generation)
			}
			rotateCurrent(t, s)
		})
	}
}

// waitForRotation polls the server until the number of other backends of
// the test database running a rotation (waiting for a lock, if waiting) is
// nonzero (want true) or zero (want false).
func waitForRotation(t *testing.T, s *sqlstore.Store, waiting, want bool) {
	q := `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND query LIKE 'UPDATE families%'
		AND datname = current_database() AND pid <> pg_backend_pid()`
	if waiting {
		q += " AND wait_event_type = 'Lock'"
	}
	// Each poll is a round trip to the server, which paces the loop: no
	// sleep and no clock, only a bound on the number of polls.
	for range 20000 {
		var n int64
		if err := s.Gorm().Raw(q).Scan(&n).Error; err != nil {
			t.Error(err)
			return
		}
		if (n > 0) == want {
			return
		}
	}
	t.Errorf("rotation running (waiting %v) never became %v", waiting, want)
}

// TestRotateBackendTerminatedPostgres: when the server ends the pooled
// connection (an administrator, a failover), the rotation on it either
// fails as unavailable or, if pgx finds out before sending it, runs on
// another connection; the next one succeeds.
func TestRotateBackendTerminatedPostgres(t *testing.T) {
	s := newRotatable(t)
	s.DB().SetMaxOpenConns(1)
	rotateCurrent(t, s) // the one connection has the statement prepared
	var pids []int64
	if err := s.Gorm().Raw("SELECT pg_backend_pid()").Scan(&pids).Error; err != nil || len(pids) != 1 {
		t.Fatalf("backend pid: %v, %v", pids, err)
	}
	other := sqlstoretest.Connect(t, sqlstoretest.RequirePostgres(t))
	var ok bool
	if err := other.Gorm().Raw("SELECT pg_terminate_backend(?, 5000)", pids[0]).Scan(&ok).Error; err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v, %v", ok, err)
	}
	now := pgxAt.Add(time.Minute)
	cur := uint64(1)
	_, err := s.RotateFamily(t.Context(), "f", cur, now, now.Add(time.Hour))
	t.Logf("RotateFamily on a terminated connection: %v", err)
	if err != nil && !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("RotateFamily on a terminated connection = %v; want success or %v", err, storage.ErrUnavailable)
	}
	rotateCurrent(t, s)
}

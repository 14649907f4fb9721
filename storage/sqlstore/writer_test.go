package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// insertUser is a write that adds one user.
func insertUser(id string) func(*gorm.DB) error {
	return func(db *gorm.DB) error {
		row := toUserRow(storage.User{ID: id, Username: id})
		return db.Create(&row).Error
	}
}

func userExists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, err := s.GetUser(t.Context(), id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func request(ctx context.Context, fn func(*gorm.DB) error) writeReq {
	return writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
}

// TestGroupCommitIsolatesRefusedWrites: in one batch, a write the database
// refuses fails alone; the others commit.
func TestGroupCommitIsolatesRefusedWrites(t *testing.T) {
	s := openSQLite(t)
	if err := s.CreateUser(t.Context(), storage.User{ID: "taken", Username: "taken"}); err != nil {
		t.Fatal(err)
	}
	batch := []writeReq{
		request(t.Context(), insertUser("a")),
		request(t.Context(), insertUser("taken")), // duplicate key
		request(t.Context(), func(db *gorm.DB) error {
			// A write whose own transaction fails half-way leaves nothing.
			return db.Transaction(func(tx *gorm.DB) error {
				if err := insertUser("half")(tx); err != nil {
					return err
				}
				return gorm.ErrRecordNotFound
			})
		}),
		request(t.Context(), insertUser("b")),
	}
	s.writer.run(batch)
	for i, want := range []error{nil, gorm.ErrDuplicatedKey, gorm.ErrRecordNotFound, nil} {
		if err := <-batch[i].done; !errors.Is(err, want) {
			t.Errorf("write %d: err %v, want %v", i, err, want)
		}
	}
	for id, want := range map[string]bool{"a": true, "b": true, "half": false, "taken": true} {
		if got := userExists(t, s, id); got != want {
			t.Errorf("user %s exists: %v, want %v", id, got, want)
		}
	}
}

// TestGroupCommitFailsWhole: when the connection fails under one write,
// every write of the batch fails and none is left behind.
func TestGroupCommitFailsWhole(t *testing.T) {
	s := openSQLite(t)
	batch := []writeReq{
		request(t.Context(), insertUser("a")),
		request(t.Context(), func(*gorm.DB) error { return io.ErrUnexpectedEOF }),
		request(t.Context(), insertUser("b")),
	}
	s.writer.run(batch)
	for i := range batch {
		if err := <-batch[i].done; !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("write %d: err %v, want the batch's failure", i, err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if userExists(t, s, id) {
			t.Errorf("user %s committed by a failed batch", id)
		}
	}
}

// TestGroupCommitSkipsAbandonedWrites: a write whose caller gave up before
// its batch started is not run.
func TestGroupCommitSkipsAbandonedWrites(t *testing.T) {
	s := openSQLite(t)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	batch := []writeReq{request(gone, insertUser("a")), request(t.Context(), insertUser("b"))}
	s.writer.run(batch)
	if err := <-batch[0].done; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned write: err %v, want context.Canceled", err)
	}
	if err := <-batch[1].done; err != nil {
		t.Errorf("live write: %v", err)
	}
	if userExists(t, s, "a") || !userExists(t, s, "b") {
		t.Error("the abandoned write ran, or the live one did not")
	}
	// A caller whose context is over before it is queued returns at once.
	if err := s.CreateUser(gone, storage.User{ID: "c", Username: "c"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateUser(cancelled) = %v, want context.Canceled", err)
	}
	if userExists(t, s, "c") {
		t.Error("a write cancelled before it was queued ran")
	}
}

// TestGroupCommitBatches: writes that arrive while a commit is in progress
// are committed together, fewer commits than writes (one, unless a caller
// was slow to reach the queue).
func TestGroupCommitBatches(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	release := make(chan struct{})
	blocked := make(chan error, 1)
	go func() {
		blocked <- s.write(ctx, func(*gorm.DB) error { <-release; return nil })
	}()
	for s.writer.waiting.Load() != 1 || s.writer.commits.Load() != 1 {
		runtime.Gosched() // the blocking write is in its batch
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateUser(ctx, storage.User{ID: fmt.Sprint("u", i), Username: fmt.Sprint("u", i)})
		})
	}
	for s.writer.waiting.Load() != 1+n {
		runtime.Gosched() // every write is waiting for the writer
	}
	close(release)
	wg.Wait()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if commits := s.writer.commits.Load() - 1; commits >= n {
		t.Fatalf("%d writes took %d commits: not grouped", n, commits)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != n {
		t.Fatalf("%d users, %v; want %d", len(users), err, n)
	}
}

// TestGroupCommitUnderLoad: many writers at once, some refused, through the
// Store's methods; each gets its own answer and the successful ones stay.
func TestGroupCommitUnderLoad(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "u"}); err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(4e9, 0)
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Go(func() {
			// Every family ID twice: one insert of each pair must fail.
			f := storage.Family{ID: fmt.Sprintf("f%d", i/2), UserID: "u", IdleExpiresAt: exp, AbsoluteExpiresAt: exp}
			errs[i] = s.CreateFamily(ctx, f)
		})
	}
	wg.Wait()
	for i := 0; i < len(errs); i += 2 {
		a, b := errs[i], errs[i+1]
		if (a == nil) == (b == nil) || !errors.Is(errors.Join(a, b), storage.ErrAlreadyExists) {
			t.Errorf("family f%d: %v and %v, want one success and one ErrAlreadyExists", i/2, a, b)
		}
	}
	fams, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "u"})
	if err != nil || len(fams) != len(errs)/2 {
		t.Fatalf("%d families, %v; want %d", len(fams), err, len(errs)/2)
	}
}

func TestGroupWriterClosed(t *testing.T) {
	s := openStore(t, sqliteURL(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.write(t.Context(), insertUser("a")); !errors.Is(err, errStoreClosed) {
		t.Errorf("write after Close: %v, want errStoreClosed", err)
	}
}

// TestGroupCommitPanickingWrite: a write that panics (a bug) fails its batch
// with an error instead of ending the process; nothing of the batch stays.
func TestGroupCommitPanickingWrite(t *testing.T) {
	s := openSQLite(t)
	boom := func(*gorm.DB) error { panic("boom") }
	batch := []writeReq{request(t.Context(), insertUser("a")), request(t.Context(), boom), request(t.Context(), insertUser("b"))}
	s.writer.run(batch)
	for i := range batch {
		var p panicError
		if err := <-batch[i].done; !errors.As(err, &p) {
			t.Errorf("write %d: err %v, want the panic as an error", i, err)
		}
	}
	if userExists(t, s, "a") || userExists(t, s, "b") {
		t.Error("a batch with a panicking write committed")
	}
	alone := []writeReq{request(t.Context(), boom)}
	s.writer.run(alone)
	if err := <-alone[0].done; err == nil {
		t.Error("a panicking write alone: no error")
	}
}

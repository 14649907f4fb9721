package sqlstore_test

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
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

func userExists(t *testing.T, s *sqlstore.Store, id string) bool {
	t.Helper()
	_, err := s.GetUser(t.Context(), id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestGroupCommitIsolatesRefusedWrites: in one batch, a write the database
// refuses fails alone; the others commit.
func TestGroupCommitIsolatesRefusedWrites(t *testing.T) {
	s := sqlstoretest.SQLite(t)
	if err := s.CreateUser(t.Context(), storage.User{ID: "taken", Username: "taken"}); err != nil {
		t.Fatal(err)
	}
	batch := []sqlstore.WriteReq{
		sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("a")),
		sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("taken")), // duplicate key
		sqlstore.NewWriteReq(t.Context(), func(db *gorm.DB) error {
			// A write whose own transaction fails half-way leaves nothing.
			return db.Transaction(func(tx *gorm.DB) error {
				if err := sqlstore.InsertUser("half")(tx); err != nil {
					return err
				}
				return gorm.ErrRecordNotFound
			})
		}),
		sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("b")),
	}
	s.RunBatch(batch)
	for i, want := range []error{nil, gorm.ErrDuplicatedKey, gorm.ErrRecordNotFound, nil} {
		if err := batch[i].Result(); !errors.Is(err, want) {
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
	s := sqlstoretest.SQLite(t)
	batch := []sqlstore.WriteReq{
		sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("a")),
		sqlstore.NewWriteReq(t.Context(), func(*gorm.DB) error { return io.ErrUnexpectedEOF }),
		sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("b")),
	}
	s.RunBatch(batch)
	for i := range batch {
		if err := batch[i].Result(); !errors.Is(err, io.ErrUnexpectedEOF) {
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
	s := sqlstoretest.SQLite(t)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	batch := []sqlstore.WriteReq{sqlstore.NewWriteReq(gone, sqlstore.InsertUser("a")), sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("b"))}
	s.RunBatch(batch)
	if err := batch[0].Result(); !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned write: err %v, want context.Canceled", err)
	}
	if err := batch[1].Result(); err != nil {
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
	s := sqlstoretest.SQLite(t)
	ctx := t.Context()
	release := make(chan struct{})
	blocked := make(chan error, 1)
	go func() {
		blocked <- s.Write(ctx, func(*gorm.DB) error { <-release; return nil })
	}()
	for waiting, commits := s.WriterQueue(); waiting != 1 || commits != 1; waiting, commits = s.WriterQueue() {
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
	for waiting, _ := s.WriterQueue(); waiting != 1+n; waiting, _ = s.WriterQueue() {
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
	if _, total := s.WriterQueue(); total-1 >= n { // less the blocking write's commit
		t.Fatalf("%d writes took %d commits: not grouped", n, total-1)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != n {
		t.Fatalf("%d users, %v; want %d", len(users), err, n)
	}
}

// TestGroupCommitUnderLoad: many writers at once, some refused, through the
// Store's methods; each gets its own answer and the successful ones stay.
func TestGroupCommitUnderLoad(t *testing.T) {
	s := sqlstoretest.SQLite(t)
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
			f := storage.Family{ID: fmt.Sprintf("f%d", i/2), UserID: "u", GrantType: storage.GrantPassword, AuthTime: exp, IdleExpiresAt: exp, AbsoluteExpiresAt: exp}
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
	s := sqlstoretest.Connect(t, sqlstoretest.SQLiteURL(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), sqlstore.InsertUser("a")); !errors.Is(err, sqlstore.ErrStoreClosed) {
		t.Errorf("write after Close: %v, want errStoreClosed", err)
	}
}

// TestGroupCommitPanickingWrite: a write that panics (a bug) fails its batch
// with an error instead of ending the process; nothing of the batch stays.
func TestGroupCommitPanickingWrite(t *testing.T) {
	s := sqlstoretest.SQLite(t)
	boom := func(*gorm.DB) error { panic("boom") }
	batch := []sqlstore.WriteReq{sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("a")), sqlstore.NewWriteReq(t.Context(), boom), sqlstore.NewWriteReq(t.Context(), sqlstore.InsertUser("b"))}
	s.RunBatch(batch)
	for i := range batch {
		var p sqlstore.PanicError
		if err := batch[i].Result(); !errors.As(err, &p) {
			t.Errorf("write %d: err %v, want the panic as an error", i, err)
		}
	}
	if userExists(t, s, "a") || userExists(t, s, "b") {
		t.Error("a batch with a panicking write committed")
	}
	alone := []sqlstore.WriteReq{sqlstore.NewWriteReq(t.Context(), boom)}
	s.RunBatch(alone)
	if err := alone[0].Result(); err == nil {
		t.Error("a panicking write alone: no error")
	}
}

package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// write runs fn, one write operation, with a handle for its statements.
// Every write of the Store goes through it.
//
// On PostgreSQL fn runs at once on the pool, with the caller's context
// (as does the rotation, which skips GORM there: see withPgx).
//
// On SQLite, where one writer holds the database at a time and every commit
// is an fsync (synchronous=FULL), the writes of concurrent callers are
// committed together: a single goroutine owns the one writer connection and
// runs whatever writes are waiting as one transaction, each in a savepoint of
// its own, then commits once (group commit). A caller returns only after the
// commit of its write, so durability is that of a commit of its own. A write
// that fails is rolled back to its savepoint and fails alone; a failure of
// the connection or the commit fails the whole batch, which then leaves
// nothing behind. A write still queued when its caller's context ends is not
// run; one already in a batch is waited for (its statements do not see the
// caller's context).
func (s *Store) write(ctx context.Context, fn func(db *gorm.DB) error) error {
	if s.writer == nil {
		return fn(s.wdb.WithContext(ctx))
	}
	return s.writer.do(ctx, fn)
}

// maxBatch bounds the writes committed together: enough to turn most of
// a burst into one fsync, few enough that one batch stays short.
const maxBatch = 64

// writeReq is one write waiting for the SQLite writer.
type writeReq struct {
	ctx  context.Context
	fn   func(*gorm.DB) error
	done chan error // buffered: the writer never waits for the caller
}

// groupWriter is the goroutine that owns SQLite's writer connection.
type groupWriter struct {
	db       *gorm.DB
	reqs     chan writeReq
	stop     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}
	// waiting counts callers handing a write over; commits counts the
	// batches run (a lone write is a batch). Tests read them.
	waiting, commits atomic.Int64
}

func newGroupWriter(db *gorm.DB) *groupWriter {
	w := &groupWriter{db: db, reqs: make(chan writeReq), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	return w
}

var errStoreClosed = errors.New("store closed")

func (w *groupWriter) do(ctx context.Context, fn func(*gorm.DB) error) error {
	r := writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stopped:
		return errStoreClosed
	}
	return <-r.done
}

// close stops the writer once the batch in progress is committed. Closing
// twice is harmless.
func (w *groupWriter) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.stopped
}

func (w *groupWriter) loop() {
	defer close(w.stopped)
	batch := make([]writeReq, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		case <-w.stop:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		w.run(batch)
	}
}

// run commits one batch and answers every caller in it.
func (w *groupWriter) run(batch []writeReq) {
	live := make([]writeReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) > 0 {
		w.commits.Add(1)
	}
	switch len(live) {
	case 0:
		return
	case 1: // alone: no savepoint needed, and fn may open its own transaction
		live[0].done <- call(live[0].fn, w.db)
		return
	}
	errs := make([]error, len(live))
	err := w.db.Transaction(func(tx *gorm.DB) error {
		for i, r := range live {
			// Savepoints by Exec: the SQLite dialector's SavePoint and
			// RollbackTo do not report errors.
			if err := tx.Exec("SAVEPOINT w").Error; err != nil {
				return err
			}
			errs[i] = call(r.fn, tx)
			if errs[i] == nil {
				if err := tx.Exec("RELEASE SAVEPOINT w").Error; err != nil {
					return err
				}
				continue
			}
			// A write the database refused (a duplicate key, say) is
			// undone alone. The connection failing, SQLite having rolled
			// the whole transaction back (it does on SQLITE_BUSY, FULL,
			// IOERR or NOMEM), or a panic, fails the batch.
			var p panicError
			if unavailable(errs[i]) || errors.As(errs[i], &p) {
				return errs[i]
			}
			if err := tx.Exec("ROLLBACK TO SAVEPOINT w").Error; err != nil {
				return fmt.Errorf("roll back one write of a batch: %w", err)
			}
			if err := tx.Exec("RELEASE SAVEPOINT w").Error; err != nil {
				return err
			}
		}
		return nil
	})
	for i, r := range live {
		if err != nil {
			r.done <- err
		} else {
			r.done <- errs[i]
		}
	}
}

// panicError is a write that panicked: a bug, reported to its caller as an
// error instead of ending the process from the writer goroutine (where no
// HTTP server recovers it) and leaving the rest of the batch waiting.
type panicError struct{ value any }

func (p panicError) Error() string { return fmt.Sprintf("write panicked: %v", p.value) }

// call runs fn on db, turning a panic into a panicError.
func call(fn func(*gorm.DB) error, db *gorm.DB) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError{value: v}
		}
	}()
	return fn(db)
}

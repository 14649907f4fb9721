package sqlstore

// The internals the external tests (package sqlstore_test) reach: the
// handles and pools behind a Store, the SQLite group writer, and the
// error classification. Only test builds have them.

import (
	"context"
	"database/sql"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

const DefaultMaxOpenConns = defaultMaxOpenConns

var (
	ErrStoreClosed   = errStoreClosed
	NewerSchemaError = newerSchemaError
	Unavailable      = unavailable
)

// PanicError is what a panicking write becomes.
type PanicError = panicError

// Gorm is the store's reader handle (on PostgreSQL, also its writer's).
func (s *Store) Gorm() *gorm.DB { return s.db }

// WriterGorm is the store's writer handle (SQLite: its one connection).
func (s *Store) WriterGorm() *gorm.DB { return s.wdb }

// Pools are the connection pools under Gorm and WriterGorm.
func (s *Store) Pools() (reader, writer *sql.DB) { return s.sqlDB, s.wsqlDB }

// Write runs fn as a write: through the group writer on SQLite.
func (s *Store) Write(ctx context.Context, fn func(*gorm.DB) error) error { return s.write(ctx, fn) }

// WriteReq is one write handed to the SQLite group writer.
type WriteReq = writeReq

// NewWriteReq is a write of fn for a caller whose context is ctx.
func NewWriteReq(ctx context.Context, fn func(*gorm.DB) error) WriteReq {
	return writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
}

// Result waits for the write's answer.
func (r WriteReq) Result() error { return <-r.done }

// RunBatch commits batch as the SQLite group writer would (SQLite only).
func (s *Store) RunBatch(batch []WriteReq) { s.writer.run(batch) }

// WriterQueue is how many callers are handing a write to the SQLite group
// writer, and how many batches it has run.
func (s *Store) WriterQueue() (waiting, commits int64) {
	return s.writer.waiting.Load(), s.writer.commits.Load()
}

// InsertUser is a write that adds the user id (its username too).
func InsertUser(id string) func(*gorm.DB) error {
	return func(db *gorm.DB) error {
		row := toUserRow(storage.User{ID: id, Username: id})
		return db.Create(&row).Error
	}
}

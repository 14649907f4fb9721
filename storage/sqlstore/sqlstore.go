// Package sqlstore implements storage.Store with GORM on SQLite (the
// embedded default) and PostgreSQL. The schema comes from the numbered SQL
// files in package migrations, applied by Migrate; nothing here creates
// tables from Go types.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	litedriver "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/semaphore"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyturn/keyturn/migrations"
	"github.com/keyturn/keyturn/storage"
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// MaxOpenConns caps the connection pool (idle connections are kept up
	// to the same number). 0 means 10.
	MaxOpenConns int
	// Logger receives migration progress. nil discards. SQL statements are
	// never logged: their arguments can hold password hashes.
	Logger *slog.Logger
}

const defaultMaxOpenConns = 10

// Store is a storage.Store backed by SQLite or PostgreSQL. It is safe for
// concurrent use.
//
// Reads go through db, writes through write (writer.go) and wdb. On
// PostgreSQL db and wdb are the same pool. On SQLite, which allows one
// writer at a time, wdb is a pool of one connection that the group writer
// owns: writers queue in Go, and the writes waiting together are committed
// together, instead of each sleeping in SQLite's busy handler (1, 2, 5, … up
// to 100 ms between attempts) and then paying an fsync of its own
// (BENCHMARKS.md). busy_timeout still covers other processes (the CLI)
// writing to the same file.
type Store struct {
	db     *gorm.DB
	sqlDB  *sql.DB
	wdb    *gorm.DB
	wsqlDB *sql.DB
	writer *groupWriter // SQLite only
	// pgxQueue (PostgreSQL only) admits withPgx's callers to the pool
	// first come, first served; see withPgx.
	pgxQueue *semaphore.Weighted
	dialect  string // migrations.SQLite or migrations.Postgres
	log      *slog.Logger
}

var _ storage.Store = (*Store)(nil)

// sqlitePragmas are applied to every SQLite connection (glebarez/modernc
// DSN syntax). busy_timeout comes first so that the others wait for locks
// instead of failing. _txlock=immediate makes every transaction take the
// write lock at BEGIN: a deferred transaction that reads and then writes can
// fail with SQLITE_BUSY when it upgrades, whatever the busy timeout.
const sqlitePragmas = "_pragma=busy_timeout(10000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(FULL)" +
	"&_txlock=immediate"

// Open connects to the database named by rawURL: sqlite://PATH (relative
// or absolute; the directory must exist, the file is created) or
// postgres://… / postgresql://… (pgx URL parameters; unknown ones, such as
// search_path, are sent as runtime parameters). It pings the database and
// refuses one whose schema is newer than this build's migrations; it does
// not migrate (see Migrate). Errors do not repeat the URL (the caller names
// it, redacted, once) and never contain its passwords.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	s, err := open(ctx, rawURL, opts)
	if err != nil {
		return nil, scrub(fmt.Errorf("open database: %w", err), rawURL)
	}
	return s, nil
}

func open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	dialect, dialector, err := dialectorFor(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := openGORM(dialector, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, wdb: db, dialect: dialect}
	if s.sqlDB, err = db.DB(); err != nil {
		return nil, err
	}
	s.wsqlDB = s.sqlDB
	if dialect == migrations.Postgres {
		s.pgxQueue = semaphore.NewWeighted(int64(poolSize(opts)))
	}
	if dialect == migrations.SQLite {
		// A second pool needs a dialector of its own; the URL parsed above.
		_, writer, err := dialectorFor(rawURL)
		if err == nil {
			s.wdb, err = openGORM(writer, Options{MaxOpenConns: 1})
		}
		if err != nil {
			s.sqlDB.Close()
			return nil, err
		}
		if s.wsqlDB, err = s.wdb.DB(); err != nil {
			s.sqlDB.Close()
			return nil, err
		}
		s.writer = newGroupWriter(s.wdb)
	}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.sqlDB.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("ping: %w", err)
	}
	current, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	if current > latest {
		s.Close()
		return nil, newerSchemaError(current, latest)
	}
	return s, nil
}

// openGORM opens one connection pool of at most opts.MaxOpenConns.
func openGORM(dialector gorm.Dialector, opts Options) (*gorm.DB, error) {
	db, err := gorm.Open(dialector, &gorm.Config{
		// Storage errors become storage sentinels (see mapErr).
		TranslateError: true,
		// Never log SQL: arguments can hold password hashes.
		Logger: logger.Discard,
		// Every write is one statement or an explicit transaction.
		SkipDefaultTransaction: true,
		// Name the columns instead of SELECT *: a column added by a newer
		// Keyturn's migration (rolling upgrade) must not change the result
		// of an older instance's statements.
		QueryFields: true,
		// No GORM statement cache: pgx already keeps a per-connection
		// cache on PostgreSQL, and unlike GORM's it drops a statement whose
		// plan a schema change broke ("cached plan must not change result
		// type") instead of failing until restart; GORM's closes evicted
		// statements (every 24h at least) under concurrent users; and on
		// SQLite it saved nothing measurable next to each write's fsync.
		PrepareStmt: false,
		// We ping with the caller's context below.
		DisableAutomaticPing: true,
	})
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	n := poolSize(opts)
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	return db, nil
}

// poolSize is the most connections a pool opened with opts holds.
func poolSize(opts Options) int {
	if opts.MaxOpenConns <= 0 {
		return defaultMaxOpenConns
	}
	return opts.MaxOpenConns
}

func newerSchemaError(current, latest int) error {
	return fmt.Errorf("database schema version %d is newer than this keyturn (%d); upgrade keyturn", current, latest)
}

// dialectorFor picks the GORM dialector for a database URL.
// cancelGrace is how long a statement whose context ended waits for the
// server to confirm its cancellation before the connection is closed.
const cancelGrace = 250 * time.Millisecond

func dialectorFor(rawURL string) (string, gorm.Dialector, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		switch {
		case path == "":
			return "", nil, errors.New("sqlite url has no path")
		case strings.ContainsAny(path, "?#"):
			// The driver would read it as DSN parameters.
			return "", nil, errors.New("sqlite path must not contain '?' or '#'")
		case path == ":memory:" || strings.HasPrefix(path, "file:"):
			// Every pooled connection would get its own empty database.
			return "", nil, errors.New("sqlite path must be a file name")
		}
		return migrations.SQLite, sqlite.Open(path + "?" + sqlitePragmas), nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		// Parse here so that a malformed URL never reaches an error message
		// unredacted (url.Error quotes the whole input).
		if _, err := url.Parse(rawURL); err != nil {
			return "", nil, errors.New("malformed postgres url")
		}
		cfg, err := pgx.ParseConfig(rawURL)
		if err != nil {
			return "", nil, scrub(fmt.Errorf("postgres url: %w", err), rawURL)
		}
		// A statement whose context ends (a request's deadline) is
		// cancelled on the server, not only abandoned on the client: pgx's
		// default closes the socket, and PostgreSQL then still runs the
		// statement (a rotation waiting on a row lock, say) and commits it
		// once it can, after the client was told 503, so that a retry of
		// the same refresh token looked like reuse (DESIGN.md §2). With a
		// cancel request the statement fails on the server; only if the
		// server does not answer within cancelGrace is the socket closed.
		cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelGrace}
		}
		return migrations.Postgres, postgres.New(postgres.Config{Conn: stdlib.OpenDB(*cfg)}), nil
	default:
		return "", nil, errors.New("unsupported database url: want sqlite://PATH or postgres://…")
	}
}

// secretParams are the URL query parameters that hold credentials.
var secretParams = []string{"password", "sslpassword"}

// scrub makes sure err's message does not contain rawURL's passwords, in
// case a driver quotes them. The original stays reachable with errors.Is/As.
func scrub(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || strings.HasPrefix(rawURL, "sqlite://") {
		return err
	}
	var secrets []string
	if p, ok := u.User.Password(); ok && p != "" {
		secrets = append(secrets, p)
	}
	for _, k := range secretParams {
		if p := u.Query().Get(k); p != "" {
			secrets = append(secrets, p)
		}
	}
	msg := err.Error()
	for _, p := range secrets {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
		if e := url.QueryEscape(p); e != p {
			msg = strings.ReplaceAll(msg, e, "xxxxx")
		}
		if e := url.PathEscape(p); e != p {
			msg = strings.ReplaceAll(msg, e, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// DB is the connection pool, for its statistics (metrics); statements go
// through the Store's methods.
func (s *Store) DB() *sql.DB { return s.sqlDB }

// Close closes the connection pools.
func (s *Store) Close() error {
	if s.writer != nil {
		s.writer.close()
	}
	err := s.sqlDB.Close()
	if s.wsqlDB != s.sqlDB {
		err = errors.Join(err, s.wsqlDB.Close())
	}
	return err
}

// queryRows runs a read or an UPDATE … RETURNING through GORM's connection
// pool and calls scan for each row. The statements on the refresh and
// introspection paths use it instead of Raw(…).Scan(…), which maps columns
// by reflection and, whatever the logger, renders every statement with its
// arguments for a trace recorder: together about a tenth of a refresh's
// CPU (BENCHMARKS.md).
func queryRows(db *gorm.DB, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := db.Raw(query, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close() // reports a failed commit of an UPDATE … RETURNING
}

// pgxAttempts is how many connections withPgx tries for a statement that
// failed before it was sent: as many as database/sql tries for the
// statements through GORM.
const pgxAttempts = 3

// withPgx runs fn with the pgx connection under one of the pool's
// connections (PostgreSQL only). It is the one way a statement bypasses
// GORM, and only two do, each the whole of its endpoint's database work:
// the refresh's rotation and introspection's CheckAccess. On a refresh,
// GORM's statement building and callbacks, database/sql's rows and
// pgx/stdlib's value conversion cost about an eighth of its CPU, as much
// as pgx's own query (BENCHMARKS.md, Issue 15). The connection is the
// pool's, so the pool's size stays the operator's setting and instances
// still share one database. pgx's per-connection statement cache prepares
// a statement once per connection (unless the URL sets
// default_query_exec_mode, which then applies here too); placeholders are
// $n (see dollarParams).
//
// Its errors are those of the statements through GORM: a connection the
// pool hands out has been checked (pgx/stdlib's ResetSession); a statement
// that failed before it was sent (pgconn.SafeToRetry) discards its
// connection and is tried again on another, as database/sql does; a
// connection that failed otherwise is closed by pgx and discarded by the
// pool when next handed out. fn must not keep the connection, and is run
// again from the start on a retry.
//
// Callers reach the pool in the order they arrived (pgxQueue, as many at
// once as the pool has connections). database/sql hands a connection that
// comes free to a random one of its waiters, so with more requests in
// flight than connections a request's wait is geometric, not the queue's
// length: refreshing at concurrency 64 on 16 connections, the p99 was three
// times the mean (BENCHMARKS.md, Issue 15). A FIFO semaphore in front keeps
// database/sql's waiters to the statements that do not come through here.
func (s *Store) withPgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	if err := s.pgxQueue.Acquire(ctx, 1); err != nil {
		return err
	}
	defer s.pgxQueue.Release(1)
	var err error
	for range pgxAttempts {
		err = s.onPgxConn(ctx, fn)
		if !errors.Is(err, driver.ErrBadConn) {
			break
		}
	}
	if err != nil && ctx.Err() != nil {
		// The statement was cancelled on the server because ctx ended
		// (dialectorFor): say why, as a deadline (an outage) or a caller
		// that went away (not one).
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func (s *Store) onPgxConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres driver connection is %T, not pgx", dc)
		}
		c := sc.Conn()
		if c.IsClosed() {
			return driver.ErrBadConn
		}
		err := fn(c)
		if err != nil && pgconn.SafeToRetry(err) {
			// Raw discards the connection on ErrBadConn.
			return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
		}
		return err
	})
}

// queryPgx is queryRows on PostgreSQL through withPgx: it runs query ($n
// placeholders) and calls scan for each row. A retry (withPgx) happens only
// before the statement is sent, so before any row is scanned.
func (s *Store) queryPgx(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
	return s.withPgx(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err() // includes a failed commit of an UPDATE … RETURNING
	})
}

// dollarParams rewrites a statement's ? placeholders as $1, $2, … for pgx,
// so that the GORM and pgx paths share one statement text. query must have
// no ? other than placeholders (none in a literal or comment).
func dollarParams(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteString("$" + strconv.Itoa(n))
	}
	return b.String()
}

// create inserts row (a pointer to a row type) in a write of its own.
// ErrAlreadyExists if a unique key is taken.
func (s *Store) create(ctx context.Context, op string, row any) error {
	return mapErr(op, s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }))
}

// find runs q for every row of type R and converts each with conv.
func find[R, V any](q *gorm.DB, op string, conv func(R) V) ([]V, error) {
	var rows []R
	if err := q.Find(&rows).Error; err != nil {
		return nil, mapErr(op, err)
	}
	out := make([]V, len(rows))
	for i, r := range rows {
		out[i] = conv(r)
	}
	return out, nil
}

// checkID refuses, as not found (gorm.ErrRecordNotFound, for mapErr), an id
// that no row can have: one holding a NUL byte (storage.CheckText, which
// every create applies) or not UTF-8. PostgreSQL would refuse a statement
// with it (SQLSTATE 22021) instead of matching nothing, where SQLite and
// memstore answer not found.
func checkID(id string) error {
	if storage.CheckText(id) != nil || !utf8.ValidString(id) {
		return gorm.ErrRecordNotFound
	}
	return nil
}

// revokeOnce runs update, which must set the revocation of the row with
// primary key id only while it is live ("... AND revoked_at IS NULL"), so
// that revoking twice keeps the first revocation. When it changes no row,
// the row is either revoked already (nil) or unknown (ErrNotFound), told
// apart by a count on model (a pointer to the row type).
func (s *Store) revokeOnce(ctx context.Context, op string, model any, id, update string, args ...any) error {
	if err := checkID(id); err != nil {
		return mapErr(op, err)
	}
	var revoked int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Exec(update, args...)
		revoked = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return mapErr(op, err)
	}
	if revoked > 0 {
		return nil
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(model).Where("id = ?", id).Count(&n).Error; err != nil {
		return mapErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	}
	return nil
}

// mapErr turns GORM and driver errors into storage sentinels, wrapped with
// the operation name.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	// The sentinels first: they are common (an unknown id) and cheap to
	// check, unavailable is neither.
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w", op, storage.ErrAlreadyExists)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", op, storage.ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// unavailable reports whether err means the database could not be reached
// or did not answer in time, as opposed to refusing the statement: a dial
// or I/O failure, a dropped or bad connection, a deadline, a PostgreSQL
// connection exception (SQLSTATE class 08), shutdown or overload (57P0x,
// 53300), a cancelled statement (57014), SQLite still locked after its busy timeout, or an SQLite failure
// of the disk, memory or an interrupt (which also roll its transaction back).
func unavailable(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var liteErr *litedriver.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		// pgx: an operation on a connection it has already closed (a
		// cancelled query, a socket gone away) wraps pgconn.ErrConnClosed.
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// 57014: a statement cancelled on its deadline (dialectorFor), by
		// statement_timeout or by an administrator.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P0") ||
			pgErr.Code == "53300" || pgErr.Code == "57014"
	case errors.As(err, &liteErr):
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
			return true
		}
	}
	return false
}

// orderText is an ORDER BY term for a text column that sorts by code point
// on both databases (SQLite's BINARY collation; PostgreSQL's default
// collation depends on the cluster's locale).
func (s *Store) orderText(column string, desc bool) string {
	t := column
	if s.dialect == migrations.Postgres {
		t += ` COLLATE "C"`
	}
	if desc {
		t += " DESC"
	}
	return t
}

// maxDeleteChunk bounds the IN (…) list of one DELETE, well below the
// databases' limits on bound parameters (32766 on SQLite, 65535 on
// PostgreSQL).
const maxDeleteChunk = 500

// deleteBatch deletes up to limit rows of table matching cond (with args):
// it selects up to limit keys, then deletes those keys in chunks, each its
// own short statement, so a large backlog never holds long locks. The
// DELETE repeats cond, so a row that stopped matching in between (a
// throttle key with a fresh failure) is left alone. keyColumn must be
// quoted if needed.
func (s *Store) deleteBatch(ctx context.Context, table, keyColumn, cond string, args []any, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("limit %d: must be positive", limit)
	}
	var total int64
	err := s.write(ctx, func(db *gorm.DB) error {
		total = 0
		var keys []string
		sel := "SELECT " + keyColumn + " FROM " + table + " WHERE " + cond + " LIMIT ?"
		if err := db.Raw(sel, append(args[:len(args):len(args)], limit)...).Scan(&keys).Error; err != nil {
			return err
		}
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), maxDeleteChunk)]
			keys = keys[len(chunk):]
			del := "DELETE FROM " + table + " WHERE " + keyColumn + " IN ? AND (" + cond + ")"
			res := db.Exec(del, append([]any{chunk}, args...)...)
			if res.Error != nil {
				return res.Error
			}
			total += res.RowsAffected
		}
		return nil
	})
	return total, err
}

// errNoRow: an INSERT … RETURNING returned nothing.
var errNoRow = errors.New("statement returned no row")

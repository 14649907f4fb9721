package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage/sqlstore"
)

// TestUnavailableByType: an outage is told from a refused statement by the
// drivers' typed errors, however wrapped, never by the words in a message
// (a column or value may contain "conn closed").
func TestUnavailableByType(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("query: %w", err) }
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"pgx conn closed":    {wrap(pgconn.ErrConnClosed), true},
		"connection reset":   {wrap(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		"bare ECONNRESET":    {wrap(syscall.ECONNRESET), true},
		"bad conn":           {wrap(driver.ErrBadConn), true},
		"conn done":          {wrap(sql.ErrConnDone), true},
		"unexpected EOF":     {wrap(io.ErrUnexpectedEOF), true},
		"deadline":           {wrap(context.DeadlineExceeded), true},
		"pg admin shutdown":  {wrap(&pgconn.PgError{Code: "57P01"}), true},
		"pg conn failure":    {wrap(&pgconn.PgError{Code: "08006"}), true},
		"pg too many conns":  {wrap(&pgconn.PgError{Code: "53300"}), true},
		"pg unique":          {wrap(&pgconn.PgError{Code: "23505", Message: "conn closed"}), false},
		"not found":          {wrap(gorm.ErrRecordNotFound), false},
		"canceled":           {wrap(context.Canceled), false},
		"words, no type":     {errors.New(`column "conn closed_at" does not exist`), false},
		"reset in a message": {errors.New("value: connection reset by peer"), false},
	} {
		if got := sqlstore.Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: unavailable(%v) = %v, want %v", name, tc.err, got, tc.want)
		}
	}
}

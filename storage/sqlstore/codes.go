package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/migrations"
	"github.com/keyturn/keyturn/storage"
)

// checkCode refuses a code with a NUL byte in any string (ErrInvalidText).
func checkCode(c storage.AuthCode) error {
	if err := storage.CheckText(c.ClientID, c.UserID, c.RedirectURI, c.CodeChallenge, c.Scope,
		c.Nonce, c.BrowserSessionID, c.FamilyID); err != nil {
		return err
	}
	return storage.CheckText(c.Resources...)
}

// CreateCode stores a new code. ErrAlreadyExists if its hash is taken.
func (s *Store) CreateCode(ctx context.Context, c storage.AuthCode) error {
	if err := checkCode(c); err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	row, err := toCodeRow(c)
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return s.create(ctx, "create code", &row)
}

const getCodeSQL = "SELECT " + codeColumns + " FROM auth_codes WHERE hash = ?"

// GetCode returns the code with this hash, used or not, expired or not;
// ErrNotFound if unknown.
func (s *Store) GetCode(ctx context.Context, hash []byte) (storage.AuthCode, error) {
	c, err := getCode(s.db.WithContext(ctx), hash)
	return c, mapErr("get code", err)
}

func getCode(db *gorm.DB, hash []byte) (storage.AuthCode, error) {
	rows, err := queryCodes(db, getCodeSQL, nonNil(hash))
	switch {
	case err != nil:
		return storage.AuthCode{}, err
	case len(rows) == 0:
		return storage.AuthCode{}, gorm.ErrRecordNotFound
	}
	return rows[0].code()
}

// queryCodes runs a statement that returns codeColumns. It is on the token
// endpoint's path, so it scans by hand (see queryRows).
func queryCodes(db *gorm.DB, query string, args ...any) ([]codeRow, error) {
	var out []codeRow
	err := queryRows(db, query, args, func(rows *sql.Rows) error {
		var r codeRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// redeemSQL spends a code: one conditional statement, so that of any
// number of concurrent redemptions only one can match (RFC 6749 §4.1.2:
// a code is used once). Unexpired means now < expires_at. The code must
// have been issued to the user, client and browser session of the session
// it starts, and that browser session must be live at now, the user's, not
// revoked and unexpired (RP-Initiated Logout 1.0 §2, DESIGN.md §11). On
// PostgreSQL the browser session's row is share-locked (redeemSQLForShare)
// until the commit: a concurrent revocation waits for the redemption, and
// a redemption that finds the row being revoked waits for that and then
// finds it revoked (READ COMMITTED re-checks the updated row).
const (
	redeemSQLHead = `UPDATE auth_codes SET used_at = ?, family_id = ?
WHERE hash = ? AND used_at IS NULL AND expires_at > ? AND user_id = ? AND client_id = ? AND browser_session_id = ?
AND EXISTS (SELECT 1 FROM browser_sessions b WHERE b.id = auth_codes.browser_session_id
AND b.user_id = auth_codes.user_id AND b.revoked_at IS NULL AND b.expires_at > ?`
	redeemSQLTail     = `) RETURNING ` + codeColumns
	redeemSQL         = redeemSQLHead + redeemSQLTail
	redeemSQLForShare = redeemSQLHead + " FOR SHARE" + redeemSQLTail
)

// errCodeNotRedeemed: redeemSQL matched no row; RedeemCode reads the code
// to say why.
var errCodeNotRedeemed = errors.New("code not redeemed")

// RedeemCode spends the code and creates the family f in one transaction:
// the user is checked and share-locked as CreateFamily does (before the
// code, the order SetUserDisabled, SetUserPassword and DeleteUser take
// the user's row and then its browser sessions and codes in, so the two
// never deadlock), then redeemSQL checks (and share-locks) the browser
// session and spends the code, then f is inserted. If any step fails the
// transaction rolls back and the code stays unused. Only then is the code
// read, to say why: ErrNotFound, ErrCodeUsed with the code, ErrCodeExpired,
// ErrNotFound for a user no longer enabled, or, the browser session read
// too, ErrBrowserSessionEnded.
func (s *Store) RedeemCode(ctx context.Context, hash []byte, f storage.Family, now time.Time) (storage.AuthCode, error) {
	if err := f.CheckNew(false); err != nil {
		return storage.AuthCode{}, fmt.Errorf("redeem code: %w", err)
	}
	row := toFamilyRow(f)
	nowUS := micros(now)
	redeem := redeemSQL
	if s.dialect == migrations.Postgres {
		redeem = redeemSQLForShare
	}
	var redeemed []codeRow
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) (err error) {
			if err := s.lockUser(tx, f.UserID, f.PasswordHash); err != nil {
				return err
			}
			redeemed, err = queryCodes(tx, redeem, nowUS, f.ID, nonNil(hash), nowUS, f.UserID, f.ClientID,
				f.BrowserSessionID, nowUS)
			switch {
			case err != nil:
				return err
			case len(redeemed) == 0:
				return errCodeNotRedeemed
			case len(redeemed) > 1:
				return fmt.Errorf("%d codes redeemed", len(redeemed)) // PRIMARY KEY (hash)
			}
			return tx.Create(&row).Error
		})
	})
	userGone := errors.Is(err, storage.ErrNotFound)
	switch {
	case err == nil:
		c, err := redeemed[0].code()
		return c, mapErr("redeem code", err)
	case !userGone && !errors.Is(err, errCodeNotRedeemed):
		return storage.AuthCode{}, mapErr("redeem code", err)
	}
	db := s.db.WithContext(ctx)
	c, err := getCode(db, hash)
	switch {
	case err != nil:
		return storage.AuthCode{}, mapErr("redeem code", err)
	case c.Used():
		return c, fmt.Errorf("redeem code: %w", storage.ErrCodeUsed)
	case nowUS >= micros(c.ExpiresAt):
		return storage.AuthCode{}, fmt.Errorf("redeem code: %w", storage.ErrCodeExpired)
	case userGone:
		return storage.AuthCode{}, fmt.Errorf("redeem code: user: %w", storage.ErrNotFound)
	case c.UserID != f.UserID || c.ClientID != f.ClientID || c.BrowserSessionID != f.BrowserSessionID:
		return storage.AuthCode{}, errors.New("redeem code: the session's user, client or browser session is not the code's")
	}
	var b browserSessionRow
	err = db.Where("id = ?", c.BrowserSessionID).Take(&b).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return storage.AuthCode{}, fmt.Errorf("redeem code: %w", storage.ErrBrowserSessionEnded)
	case err != nil:
		return storage.AuthCode{}, mapErr("redeem code: browser session", err)
	case b.UserID != c.UserID || b.RevokedAtUS != nil || b.ExpiresAtUS <= nowUS:
		return storage.AuthCode{}, fmt.Errorf("redeem code: %w", storage.ErrBrowserSessionEnded)
	default:
		// Unreachable: a code is never un-used, expiry does not undo
		// itself, and neither does a browser session's end. Say so
		// rather than guess.
		return storage.AuthCode{}, errors.New("redeem code: code is unused and unexpired but was not redeemed")
	}
}

// DeleteCodes deletes up to limit codes that expired before t, used or
// not, in one statement (a code's key is bytes, which deleteBatch's text
// keys do not carry; a sweep's batch is small).
func (s *Store) DeleteCodes(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("delete codes: limit %d: must be positive", limit)
	}
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Exec("DELETE FROM auth_codes WHERE hash IN (SELECT hash FROM auth_codes WHERE expires_at < ? LIMIT ?)",
			micros(before), limit)
		n = res.RowsAffected
		return res.Error
	})
	return n, mapErr("delete codes", err)
}

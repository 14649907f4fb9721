package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/migrations"
	"github.com/keyturn/keyturn/storage"
)

// CreateBrowserSession stores a new browser session for an enabled user,
// checked and share-locked in the same transaction as CreateFamily does
// (with the password hash the sign-in was checked against, if set), so a
// sign-in racing a disable, delete or password change cannot outlive it.
// ErrAlreadyExists if the ID is taken; ErrNotFound for the user.
func (s *Store) CreateBrowserSession(ctx context.Context, b storage.BrowserSession) error {
	if err := storage.CheckText(b.ID, b.UserID, b.PasswordHash); err != nil {
		return fmt.Errorf("create browser session: %w", err)
	}
	row := toBrowserSessionRow(b)
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := s.lockUser(tx, b.UserID, b.PasswordHash); err != nil {
				return err
			}
			return tx.Create(&row).Error
		})
	})
	return mapErr("create browser session", err)
}

// GetBrowserSession returns the session, live or not; ErrNotFound if unknown.
func (s *Store) GetBrowserSession(ctx context.Context, id string) (storage.BrowserSession, error) {
	if err := storage.CheckText(id); err != nil {
		return storage.BrowserSession{}, fmt.Errorf("get browser session: %w", err)
	}
	var row browserSessionRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return storage.BrowserSession{}, mapErr("get browser session", err)
	}
	return row.browserSession(), nil
}

// EndBrowserSession revokes the session at now (revoking it again keeps the
// first time) and, with clientID, the live families it started for that
// client, in one transaction. Locks are taken in RedeemCode's order: the
// user's row (share-locked on PostgreSQL, disabled or not), then the
// browser session's row, then families. Against RedeemCode, which also
// share-locks the user and then the session's row, the session's row
// decides who goes first and neither holds anything the other waits for
// later (a family RedeemCode inserts is invisible to the UPDATE here until
// it commits, and the UPDATE then sees it, READ COMMITTED). Against
// SetUserDisabled, SetUserPassword and DeleteUser, which lock the user's
// row first and then take families before browser sessions, the user's
// row orders the two before either touches anything else, so the reverse
// order of families and sessions cannot deadlock. SQLite serialises
// writes. ErrNotFound if unknown, and nothing changes.
func (s *Store) EndBrowserSession(ctx context.Context, id, clientID string, now time.Time) (int64, error) {
	if err := storage.CheckText(id, clientID); err != nil {
		return 0, fmt.Errorf("end browser session: %w", err)
	}
	lockUser := "SELECT id FROM users WHERE id = ?"
	if s.dialect == migrations.Postgres {
		lockUser += " FOR SHARE"
	}
	nowUS := micros(now)
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			var userIDs []string
			if err := tx.Raw("SELECT user_id FROM browser_sessions WHERE id = ?", id).Scan(&userIDs).Error; err != nil {
				return err
			}
			if len(userIDs) == 0 {
				return gorm.ErrRecordNotFound
			}
			userID := userIDs[0]
			var ids []string
			if err := tx.Raw(lockUser, userID).Scan(&ids).Error; err != nil {
				return err
			}
			if err := tx.Exec("UPDATE browser_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
				nowUS, id).Error; err != nil {
				return err
			}
			if clientID == "" {
				return nil
			}
			filter := storage.FamilyFilter{UserID: userID, ClientID: clientID, BrowserSessionID: id}
			var err error
			n, err = revokeLiveFamilies(tx, filter, storage.ReasonLogout, now)
			return err
		})
	})
	if err != nil {
		return 0, mapErr("end browser session", err)
	}
	return n, nil
}

// DeleteBrowserSessions deletes up to limit sessions that expired, or were
// revoked, before t.
func (s *Store) DeleteBrowserSessions(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := s.deleteBatch(ctx, "browser_sessions", "id", "expires_at < ? OR revoked_at < ?",
		[]any{micros(before), micros(before)}, limit)
	return n, mapErr("delete browser sessions", err)
}

// endBrowserLogins revokes userID's live browser sessions and deletes the
// user's unused codes, in tx: what disabling, deleting or re-passwording a
// user does besides revoking the user's families. A used code is kept: a
// replay of it must still name its session.
func endBrowserLogins(tx *gorm.DB, userID string, now time.Time) error {
	nowUS := micros(now)
	if err := tx.Exec("UPDATE browser_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?",
		nowUS, userID, nowUS).Error; err != nil {
		return err
	}
	return tx.Exec("DELETE FROM auth_codes WHERE user_id = ? AND used_at IS NULL", userID).Error
}

package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

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

// RevokeBrowserSession marks the session revoked at now; revoking it again
// keeps the first time. ErrNotFound if unknown.
func (s *Store) RevokeBrowserSession(ctx context.Context, id string, now time.Time) error {
	if err := storage.CheckText(id); err != nil {
		return fmt.Errorf("revoke browser session: %w", err)
	}
	return s.revokeOnce(ctx, "revoke browser session", &browserSessionRow{}, id,
		"UPDATE browser_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", micros(now), id)
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

package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// CreateUser adds a user. ErrAlreadyExists if the username or ID is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if err := u.CheckText(); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	row := toUserRow(u)
	return s.create(ctx, "create user", &row)
}

// GetUser returns ErrNotFound for an unknown ID.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	return s.getUser(ctx, "get user", "id = ?", id)
}

// GetUserByUsername returns ErrNotFound for an unknown username.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (storage.User, error) {
	return s.getUser(ctx, "get user by username", "username = ?", username)
}

func (s *Store) getUser(ctx context.Context, op, cond string, arg string) (storage.User, error) {
	var row userRow
	if err := s.db.WithContext(ctx).Where(cond, arg).Take(&row).Error; err != nil {
		return storage.User{}, mapErr(op, err)
	}
	return row.user(), nil
}

// ListUsers returns all users ordered by username, by code point.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	return find(s.db.WithContext(ctx).Order(s.orderText("username", false)), "list users", userRow.user)
}

// SetUserDisabled enables or disables a user. Disabling also revokes the
// user's live families (ReasonUserDisabled) and browser sessions, and
// deletes their unused codes, in the same transaction; enabling does not
// bring them back. ErrNotFound for an unknown username.
func (s *Store) SetUserDisabled(ctx context.Context, username string, disabled bool, now time.Time) error {
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			id, err := userIDReturning(tx,
				"UPDATE users SET disabled = ?, updated_at = ? WHERE username = ? RETURNING id",
				disabled, micros(now), username)
			if err != nil || !disabled {
				return err
			}
			return endSessions(tx, id, storage.ReasonUserDisabled, now)
		})
	})
	return mapErr("set user disabled", err)
}

// SetUserPassword replaces a user's password hash and, unless
// keepSessions, revokes the user's live families (ReasonPasswordChanged)
// and browser sessions and deletes their unused codes, in the same
// transaction. ErrNotFound for an unknown username.
func (s *Store) SetUserPassword(ctx context.Context, username, passwordHash string, keepSessions bool, now time.Time) error {
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			id, err := userIDReturning(tx,
				"UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ? RETURNING id",
				passwordHash, micros(now), username)
			if err != nil || keepSessions {
				return err
			}
			return endSessions(tx, id, storage.ReasonPasswordChanged, now)
		})
	})
	return mapErr("set user password", err)
}

// SetUserProfile replaces the user's profile (name, email,
// email_verified). Sessions are untouched: the claims are read when asked
// for (UserInfo). ErrNotFound for an unknown username.
func (s *Store) SetUserProfile(ctx context.Context, username string, p storage.UserProfile, now time.Time) error {
	if err := storage.CheckText(username, p.Name, p.Email); err != nil {
		return fmt.Errorf("set user profile: %w", err)
	}
	err := s.write(ctx, func(db *gorm.DB) error {
		_, err := userIDReturning(db,
			"UPDATE users SET name = ?, email = ?, email_verified = ?, updated_at = ? WHERE username = ? RETURNING id",
			p.Name, p.Email, p.EmailVerified, micros(now), username)
		return err
	})
	return mapErr("set user profile", err)
}

// DeleteUser deletes the user, revokes their live families
// (ReasonUserDeleted) and browser sessions, and deletes their unused codes
// and their consents, in the same transaction. The families stay, revoked,
// until DeleteFamilies sweeps them. ErrNotFound for an unknown username.
func (s *Store) DeleteUser(ctx context.Context, username string, now time.Time) error {
	err := s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			id, err := userIDReturning(tx, "DELETE FROM users WHERE username = ? RETURNING id", username)
			if err != nil {
				return err
			}
			if err := endSessions(tx, id, storage.ReasonUserDeleted, now); err != nil {
				return err
			}
			return tx.Exec("DELETE FROM consents WHERE user_id = ?", id).Error
		})
	})
	return mapErr("delete user", err)
}

// endSessions ends everything the user userID is signed in with, in tx:
// it revokes the user's live families with reason and live browser
// sessions, and deletes their unused codes.
func endSessions(tx *gorm.DB, userID, reason string, now time.Time) error {
	if _, err := revokeLiveFamilies(tx, storage.FamilyFilter{UserID: userID}, reason, now); err != nil {
		return err
	}
	return endBrowserLogins(tx, userID, now)
}

// userIDReturning runs an UPDATE or DELETE … RETURNING id on users and
// returns the one ID it touched, or gorm.ErrRecordNotFound.
func userIDReturning(tx *gorm.DB, sql string, args ...any) (string, error) {
	var ids []string
	if err := tx.Raw(sql, args...).Scan(&ids).Error; err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", gorm.ErrRecordNotFound
	case 1:
		return ids[0], nil
	default:
		return "", fmt.Errorf("%d users matched", len(ids)) // UNIQUE (username)
	}
}

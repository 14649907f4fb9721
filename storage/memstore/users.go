package memstore

import (
	"cmp"
	"context"
	"time"

	"github.com/keyturn/keyturn/storage"
)

func normUser(u storage.User) storage.User {
	u.CreatedAt, u.UpdatedAt = at(u.CreatedAt), at(u.UpdatedAt)
	return u
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(_ context.Context, u storage.User) error {
	if err := u.CheckText(); err != nil {
		return errorf("create user", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; ok {
		return errorf("create user", storage.ErrAlreadyExists)
	}
	if _, ok := s.byUsername(u.Username); ok {
		return errorf("create user", storage.ErrAlreadyExists)
	}
	s.users[u.ID] = normUser(u)
	return nil
}

// byUsername finds a user; s.mu is held.
func (s *Store) byUsername(username string) (storage.User, bool) {
	for _, u := range s.users {
		if u.Username == username {
			return u, true
		}
	}
	return storage.User{}, false
}

// GetUser implements storage.Users.
func (s *Store) GetUser(_ context.Context, id string) (storage.User, error) {
	return read(s, s.users, id, "get user", normUser)
}

// GetUserByUsername implements storage.Users.
func (s *Store) GetUserByUsername(_ context.Context, username string) (storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byUsername(username)
	if !ok {
		return storage.User{}, errorf("get user by username", storage.ErrNotFound)
	}
	return u, nil
}

// ListUsers implements storage.Users.
func (s *Store) ListUsers(context.Context) ([]storage.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return list(s.users, all, normUser, func(a, b storage.User) int { return cmp.Compare(a.Username, b.Username) }), nil
}

// updateUser applies change to the user named username and, if reason is
// not empty, ends the user's sessions with it (endSessions).
func (s *Store) updateUser(op, username string, now time.Time, reason string, change func(*storage.User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byUsername(username)
	if !ok {
		return errorf(op, storage.ErrNotFound)
	}
	change(&u)
	u.UpdatedAt = at(now)
	s.users[u.ID] = u
	if reason == "" {
		return nil
	}
	return s.endSessions(u.ID, reason, now)
}

// endSessions revokes the user's live families with reason and live
// browser sessions, and deletes their unused codes; s.mu is held.
func (s *Store) endSessions(userID, reason string, now time.Time) error {
	if _, err := s.revokeLive(storage.FamilyFilter{UserID: userID}, reason, now); err != nil {
		return err
	}
	s.endBrowserLogins(userID, now)
	return nil
}

// SetUserDisabled implements storage.Users.
func (s *Store) SetUserDisabled(_ context.Context, username string, disabled bool, now time.Time) error {
	reason := ""
	if disabled {
		reason = storage.ReasonUserDisabled
	}
	return s.updateUser("set user disabled", username, now, reason, func(u *storage.User) { u.Disabled = disabled })
}

// SetUserPassword implements storage.Users.
func (s *Store) SetUserPassword(_ context.Context, username, passwordHash string, keepSessions bool, now time.Time) error {
	reason := storage.ReasonPasswordChanged
	if keepSessions {
		reason = ""
	}
	return s.updateUser("set user password", username, now, reason, func(u *storage.User) { u.PasswordHash = passwordHash })
}

// SetUserProfile implements storage.Users.
func (s *Store) SetUserProfile(_ context.Context, username string, p storage.UserProfile, now time.Time) error {
	if err := storage.CheckText(username, p.Name, p.Email); err != nil {
		return errorf("set user profile", err)
	}
	return s.updateUser("set user profile", username, now, "", func(u *storage.User) { u.Profile = p })
}

// DeleteUser implements storage.Users.
func (s *Store) DeleteUser(_ context.Context, username string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byUsername(username)
	if !ok {
		return errorf("delete user", storage.ErrNotFound)
	}
	delete(s.users, u.ID)
	for k := range s.consents {
		if k.userID == u.ID {
			delete(s.consents, k)
		}
	}
	return s.endSessions(u.ID, storage.ReasonUserDeleted, now)
}

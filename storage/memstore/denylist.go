package memstore

import (
	"context"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// DenyAccessToken implements storage.Denylist.
func (s *Store) DenyAccessToken(_ context.Context, jti string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.denials[jti]; !ok {
		s.denials[jti] = at(expiresAt)
	}
	return nil
}

// CheckAccess implements storage.Denylist.
func (s *Store) CheckAccess(_ context.Context, jti, familyID string) (storage.AccessCheck, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out storage.AccessCheck
	_, out.Denied = s.denials[jti]
	out.Denied = out.Denied && jti != ""
	if f, ok := s.families[familyID]; ok && familyID != "" {
		out.Family = normFamily(f)
		out.Username = s.users[f.UserID].Username
	}
	return out, nil
}

// DeleteDenials implements storage.Denylist.
func (s *Store) DeleteDenials(_ context.Context, before time.Time, limit int) (int64, error) {
	before = at(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleteWhere(s.denials, limit, func(exp time.Time) bool { return exp.Before(before) })
}

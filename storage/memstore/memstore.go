// Package memstore is an in-memory storage.Store: every method under one
// mutex, nothing durable, one process only. It exists so the handler
// benchmarks (server/bench_test.go) can measure the server's own CPU work
// without a database's; it passes the same conformance suite as
// storage/sqlstore (storagetest), so a benchmark over it exercises the
// real contract. It is not for serving.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// Store is the in-memory storage.Store. The zero value is not ready: use New.
type Store struct {
	mu              sync.Mutex
	families        map[string]storage.Family
	users           map[string]storage.User // by ID
	denials         map[string]time.Time    // jti → expiry
	keys            map[string]storage.SigningKey
	throttles       map[string]throttle
	addresses       map[string]map[string]time.Time // user key → address → last seen
	codes           map[string]storage.AuthCode     // by string(Hash)
	browserSessions map[string]storage.BrowserSession
	consents        map[consentKey]storage.Consent
}

var _ storage.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		families: map[string]storage.Family{}, users: map[string]storage.User{},
		denials: map[string]time.Time{}, keys: map[string]storage.SigningKey{},
		throttles: map[string]throttle{}, addresses: map[string]map[string]time.Time{},
		codes: map[string]storage.AuthCode{}, browserSessions: map[string]storage.BrowserSession{},
		consents: map[consentKey]storage.Consent{},
	}
}

// at is t as the Store contract returns times: UTC, microsecond precision,
// the zero time kept as "never".
func at(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func errorf(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }

func checkLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("limit %d: must be positive", limit)
	}
	return nil
}

// deleteWhere deletes up to limit entries of m for which del is true.
func deleteWhere[V any](m map[string]V, limit int, del func(V) bool) (int64, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	var n int64
	for k, v := range m {
		if n == int64(limit) {
			break
		}
		if del(v) {
			delete(m, k)
			n++
		}
	}
	return n, nil
}

// read returns out of m's entry for key, or ErrNotFound.
func read[V, R any](s *Store, m map[string]V, key, op string, out func(V) R) (R, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[key]
	if !ok {
		var zero R
		return zero, errorf(op, storage.ErrNotFound)
	}
	return out(v), nil
}

// update applies change to m's entry for key, or returns ErrNotFound.
func update[V any](s *Store, m map[string]V, key, op string, change func(*V)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[key]
	if !ok {
		return errorf(op, storage.ErrNotFound)
	}
	change(&v)
	m[key] = v
	return nil
}

// list returns norm of the values of m that keep accepts, sorted by order.
func list[V any](m map[string]V, keep func(V) bool, norm func(V) V, order func(a, b V) int) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		if keep(v) {
			out = append(out, norm(v))
		}
	}
	slices.SortFunc(out, order)
	return out
}

func all[V any](V) bool { return true }

// Ping always answers.
func (s *Store) Ping(context.Context) error { return nil }

// Close does nothing; the store stays usable.
func (s *Store) Close() error { return nil }

// Families

func normFamily(f storage.Family) storage.Family {
	f.Salt = clone(f.Salt)
	f.PasswordHash = "" // never stored
	f.CreatedAt, f.LastUsedAt = at(f.CreatedAt), at(f.LastUsedAt)
	f.IdleExpiresAt, f.AbsoluteExpiresAt = at(f.IdleExpiresAt), at(f.AbsoluteExpiresAt)
	f.RotatedAt, f.RevokedAt = at(f.RotatedAt), at(f.RevokedAt)
	f.AuthTime = at(f.AuthTime)
	return f
}

// CreateFamily implements storage.Families.
func (s *Store) CreateFamily(_ context.Context, f storage.Family) error {
	if err := f.CheckNew(false); err != nil {
		return fmt.Errorf("create family: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[f.UserID]; !ok || u.Disabled || (f.PasswordHash != "" && f.PasswordHash != u.PasswordHash) {
		return errorf("create family", storage.ErrNotFound)
	}
	if _, ok := s.families[f.ID]; ok {
		return errorf("create family", storage.ErrAlreadyExists)
	}
	s.families[f.ID] = normFamily(f)
	return nil
}

// CreateFamilies implements storage.Families.
func (s *Store) CreateFamilies(_ context.Context, fs []storage.Family) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		if err := f.CheckNew(true); err != nil {
			return fmt.Errorf("create families: %w", err)
		}
		if u, ok := s.users[f.UserID]; !ok || u.Disabled {
			return errorf("create families", storage.ErrNotFound)
		}
		if _, ok := s.families[f.ID]; ok || seen[f.ID] {
			return errorf("create families", storage.ErrAlreadyExists)
		}
		seen[f.ID] = true
	}
	for _, f := range fs {
		s.families[f.ID] = normFamily(f)
	}
	return nil
}

// GetFamily implements storage.Families.
func (s *Store) GetFamily(_ context.Context, id string) (storage.Family, error) {
	return read(s, s.families, id, "get family", normFamily)
}

// RotateFamily implements storage.Families.
func (s *Store) RotateFamily(_ context.Context, id string, gen uint64, now, idleExpiresAt time.Time) (storage.Family, error) {
	now = at(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.families[id]
	switch {
	case !ok:
		return storage.Family{}, errorf("rotate family", storage.ErrNotFound)
	case f.Revoked():
		return storage.Family{}, errorf("rotate family", storage.ErrFamilyRevoked)
	case !now.Before(f.IdleExpiresAt) || !now.Before(f.AbsoluteExpiresAt):
		return storage.Family{}, errorf("rotate family", storage.ErrFamilyExpired)
	case f.Generation != gen:
		return normFamily(f), errorf("rotate family", storage.ErrStaleGeneration)
	}
	f.Generation++
	f.RotatedAt, f.LastUsedAt, f.IdleExpiresAt = now, now, at(idleExpiresAt)
	s.families[id] = f
	return normFamily(f), nil
}

// RevokeFamily implements storage.Families.
func (s *Store) RevokeFamily(_ context.Context, id, reason string, now time.Time) error {
	return update(s, s.families, id, "revoke family", func(f *storage.Family) {
		if !f.Revoked() {
			f.RevokedAt, f.RevokeReason = at(now), reason
		}
	})
}

func matches(f storage.Family, filter storage.FamilyFilter) bool {
	return (filter.UserID == "" || f.UserID == filter.UserID) && (filter.ClientID == "" || f.ClientID == filter.ClientID) &&
		(filter.BrowserSessionID == "" || f.BrowserSessionID == filter.BrowserSessionID)
}

// RevokeFamilies implements storage.Families.
func (s *Store) RevokeFamilies(_ context.Context, filter storage.FamilyFilter, reason string, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeLive(filter, reason, now)
}

// revokeLive revokes the live families matching filter; s.mu is held.
func (s *Store) revokeLive(filter storage.FamilyFilter, reason string, now time.Time) (int64, error) {
	if filter == (storage.FamilyFilter{}) {
		return 0, errors.New("revoke families: empty filter: refusing to revoke every family")
	}
	if err := filter.CheckText(); err != nil {
		return 0, errorf("revoke families", err)
	}
	now = at(now)
	var n int64
	for id, f := range s.families {
		if matches(f, filter) && f.Live(now) {
			f.RevokedAt, f.RevokeReason = now, reason
			s.families[id] = f
			n++
		}
	}
	return n, nil
}

// ListFamilies implements storage.Families.
func (s *Store) ListFamilies(_ context.Context, filter storage.FamilyFilter) ([]storage.Family, error) {
	if err := filter.CheckText(); err != nil {
		return nil, errorf("list families", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := func(f storage.Family) bool { return matches(f, filter) }
	return list(s.families, keep, normFamily, func(a, b storage.Family) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	}), nil
}

// DeleteFamilies implements storage.Families.
func (s *Store) DeleteFamilies(_ context.Context, expiredBefore, revokedBefore time.Time, limit int) (int64, error) {
	expiredBefore, revokedBefore = at(expiredBefore), at(revokedBefore)
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleteWhere(s.families, limit, func(f storage.Family) bool {
		return f.AbsoluteExpiresAt.Before(expiredBefore) || (f.Revoked() && f.RevokedAt.Before(revokedBefore))
	})
}

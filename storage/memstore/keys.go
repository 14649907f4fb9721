package memstore

import (
	"cmp"
	"context"
	"time"

	"github.com/keyturn/keyturn/storage"
)

func normKey(k storage.SigningKey) storage.SigningKey {
	k.PublicJWK, k.PrivateEncrypted = clone(k.PublicJWK), clone(k.PrivateEncrypted)
	k.CreatedAt, k.ActivateAt, k.RevokedAt = at(k.CreatedAt), at(k.ActivateAt), at(k.RevokedAt)
	return k
}

// CreateSigningKey implements storage.SigningKeys.
func (s *Store) CreateSigningKey(_ context.Context, k storage.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return errorf("create signing key", storage.ErrAlreadyExists)
	}
	s.keys[k.ID] = normKey(k)
	return nil
}

// ListSigningKeys implements storage.SigningKeys.
func (s *Store) ListSigningKeys(context.Context) ([]storage.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return list(s.keys, all, normKey, func(a, b storage.SigningKey) int {
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), cmp.Compare(a.ID, b.ID))
	}), nil
}

// ActivateSigningKey implements storage.SigningKeys.
func (s *Store) ActivateSigningKey(_ context.Context, id string, activateAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok || k.Revoked() {
		return errorf("activate signing key", storage.ErrNotFound)
	}
	k.ActivateAt = at(activateAt)
	s.keys[id] = k
	return nil
}

// RevokeSigningKey implements storage.SigningKeys.
func (s *Store) RevokeSigningKey(_ context.Context, id string, now time.Time) error {
	return update(s, s.keys, id, "revoke signing key", func(k *storage.SigningKey) {
		if !k.Revoked() {
			k.RevokedAt, k.PrivateEncrypted = at(now), []byte{}
		}
	})
}

// SigningKeyRevocations implements storage.SigningKeys.
func (s *Store) SigningKeyRevocations(context.Context) (storage.KeyRevocations, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out storage.KeyRevocations
	for _, k := range s.keys {
		if k.Revoked() {
			out.Count++
			if k.RevokedAt.After(out.Latest) {
				out.Latest = k.RevokedAt
			}
		}
	}
	return out, nil
}

// DeleteSigningKeys implements storage.SigningKeys with the rule of
// storage/sqlstore's deleteSigningKeysCond.
func (s *Store) DeleteSigningKeys(_ context.Context, supersededBefore, revokedBefore time.Time, limit int) (int64, error) {
	supersededBefore, revokedBefore = at(supersededBefore), at(revokedBefore)
	s.mu.Lock()
	defer s.mu.Unlock()
	superseded := func(k storage.SigningKey) bool {
		for _, n := range s.keys {
			if n.Algorithm == k.Algorithm && n.ActivateAt.After(k.ActivateAt) && n.ActivateAt.Before(supersededBefore) &&
				(!n.Revoked() || !n.RevokedAt.Before(n.ActivateAt)) {
				return true
			}
		}
		return false
	}
	// Decide first, then delete: a key's deletion must not change whether
	// another was superseded (one SQL statement sees one state).
	doomed := map[string]bool{}
	for id, k := range s.keys {
		if (k.Revoked() && k.RevokedAt.Before(revokedBefore)) || superseded(k) {
			doomed[id] = true
		}
	}
	return deleteWhere(s.keys, limit, func(k storage.SigningKey) bool { return doomed[k.ID] })
}

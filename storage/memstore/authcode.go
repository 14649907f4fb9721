package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// Codes

func normCode(c storage.AuthCode) storage.AuthCode {
	c.Hash = clone(c.Hash)
	c.Resources = slices.Clone(c.Resources)
	if len(c.Resources) == 0 {
		c.Resources = nil
	}
	c.AuthTime, c.CreatedAt, c.ExpiresAt, c.UsedAt = at(c.AuthTime), at(c.CreatedAt), at(c.ExpiresAt), at(c.UsedAt)
	return c
}

// CreateCode implements storage.Codes.
func (s *Store) CreateCode(_ context.Context, c storage.AuthCode) error {
	if err := storage.CheckText(append([]string{c.ClientID, c.UserID, c.RedirectURI, c.CodeChallenge,
		c.Scope, c.Nonce, c.BrowserSessionID, c.FamilyID}, c.Resources...)...); err != nil {
		return errorf("create code", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.codes[string(c.Hash)]; ok {
		return errorf("create code", storage.ErrAlreadyExists)
	}
	s.codes[string(c.Hash)] = normCode(c)
	return nil
}

// GetCode implements storage.Codes.
func (s *Store) GetCode(_ context.Context, hash []byte) (storage.AuthCode, error) {
	return read(s, s.codes, string(hash), "get code", normCode)
}

// RedeemCode implements storage.Codes, checking in the order sqlstore
// reports: the code, the user, then the browser session, all under s.mu,
// so that a revocation of the browser session is wholly before or after
// the redemption.
func (s *Store) RedeemCode(_ context.Context, hash []byte, f storage.Family, now time.Time) (storage.AuthCode, error) {
	if err := f.CheckNew(false); err != nil {
		return storage.AuthCode{}, fmt.Errorf("redeem code: %w", err)
	}
	now = at(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[string(hash)]
	u, userOK := s.users[f.UserID]
	userOK = userOK && !u.Disabled && (f.PasswordHash == "" || f.PasswordHash == u.PasswordHash)
	switch {
	case !ok:
		return storage.AuthCode{}, errorf("redeem code", storage.ErrNotFound)
	case c.Used():
		return normCode(c), errorf("redeem code", storage.ErrCodeUsed)
	case !now.Before(c.ExpiresAt):
		return storage.AuthCode{}, errorf("redeem code", storage.ErrCodeExpired)
	case !userOK:
		return storage.AuthCode{}, fmt.Errorf("redeem code: user: %w", storage.ErrNotFound)
	case c.UserID != f.UserID || c.ClientID != f.ClientID || c.BrowserSessionID != f.BrowserSessionID:
		return storage.AuthCode{}, errors.New("redeem code: the session's user, client or browser session is not the code's")
	}
	if b, ok := s.browserSessions[c.BrowserSessionID]; !ok || b.UserID != c.UserID || !b.Live(now) {
		return storage.AuthCode{}, errorf("redeem code", storage.ErrBrowserSessionEnded)
	}
	if _, ok := s.families[f.ID]; ok {
		return storage.AuthCode{}, errorf("redeem code", storage.ErrAlreadyExists)
	}
	s.families[f.ID] = normFamily(f)
	c.UsedAt, c.FamilyID = now, f.ID
	s.codes[string(hash)] = c
	return normCode(c), nil
}

// DeleteCodes implements storage.Codes.
func (s *Store) DeleteCodes(_ context.Context, before time.Time, limit int) (int64, error) {
	before = at(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleteWhere(s.codes, limit, func(c storage.AuthCode) bool { return c.ExpiresAt.Before(before) })
}

// Browser sessions

func normBrowserSession(b storage.BrowserSession) storage.BrowserSession {
	b.PasswordHash = "" // never stored
	b.AuthTime, b.CreatedAt, b.ExpiresAt, b.RevokedAt = at(b.AuthTime), at(b.CreatedAt), at(b.ExpiresAt), at(b.RevokedAt)
	return b
}

// CreateBrowserSession implements storage.BrowserSessions.
func (s *Store) CreateBrowserSession(_ context.Context, b storage.BrowserSession) error {
	if err := storage.CheckText(b.ID, b.UserID, b.PasswordHash); err != nil {
		return errorf("create browser session", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[b.UserID]; !ok || u.Disabled || (b.PasswordHash != "" && b.PasswordHash != u.PasswordHash) {
		return errorf("create browser session", storage.ErrNotFound)
	}
	if _, ok := s.browserSessions[b.ID]; ok {
		return errorf("create browser session", storage.ErrAlreadyExists)
	}
	s.browserSessions[b.ID] = normBrowserSession(b)
	return nil
}

// GetBrowserSession implements storage.BrowserSessions.
func (s *Store) GetBrowserSession(_ context.Context, id string) (storage.BrowserSession, error) {
	if err := storage.CheckText(id); err != nil {
		return storage.BrowserSession{}, errorf("get browser session", err)
	}
	return read(s, s.browserSessions, id, "get browser session", normBrowserSession)
}

// EndBrowserSession implements storage.BrowserSessions: the session and
// its families under one hold of s.mu.
func (s *Store) EndBrowserSession(_ context.Context, id, clientID string, now time.Time) (int64, error) {
	if err := storage.CheckText(id, clientID); err != nil {
		return 0, errorf("end browser session", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.browserSessions[id]
	if !ok {
		return 0, errorf("end browser session", storage.ErrNotFound)
	}
	if b.RevokedAt.IsZero() {
		b.RevokedAt = at(now)
		s.browserSessions[id] = b
	}
	if clientID == "" {
		return 0, nil
	}
	filter := storage.FamilyFilter{UserID: b.UserID, ClientID: clientID, BrowserSessionID: id}
	n, err := s.revokeLive(filter, storage.ReasonLogout, now)
	if err != nil {
		return 0, errorf("end browser session", err)
	}
	return n, nil
}

// DeleteBrowserSessions implements storage.BrowserSessions.
func (s *Store) DeleteBrowserSessions(_ context.Context, before time.Time, limit int) (int64, error) {
	before = at(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleteWhere(s.browserSessions, limit, func(b storage.BrowserSession) bool {
		return b.ExpiresAt.Before(before) || (!b.RevokedAt.IsZero() && b.RevokedAt.Before(before))
	})
}

// endBrowserLogins revokes userID's live browser sessions and deletes the
// user's unused codes; s.mu is held.
func (s *Store) endBrowserLogins(userID string, now time.Time) {
	now = at(now)
	for id, b := range s.browserSessions {
		if b.UserID == userID && b.Live(now) {
			b.RevokedAt = now
			s.browserSessions[id] = b
		}
	}
	for h, c := range s.codes {
		if c.UserID == userID && !c.Used() {
			delete(s.codes, h)
		}
	}
}

// Consents

type consentKey struct{ userID, clientID string }

// GrantConsent implements storage.Consents.
func (s *Store) GrantConsent(_ context.Context, userID, clientID string, scopes []string, now time.Time) error {
	if err := storage.CheckText(append([]string{userID, clientID}, scopes...)...); err != nil {
		return errorf("grant consent", err)
	}
	now = at(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := consentKey{userID, clientID}
	c, ok := s.consents[k]
	if !ok {
		c = storage.Consent{UserID: userID, ClientID: clientID}
	}
	for _, sc := range scopes {
		if sc != "" && !slices.Contains(c.Scopes, sc) {
			c.Scopes = append(c.Scopes, sc)
		}
	}
	slices.Sort(c.Scopes)
	if now.After(c.GrantedAt) {
		c.GrantedAt = now
	}
	s.consents[k] = c
	return nil
}

func normConsent(c storage.Consent) storage.Consent {
	c.Scopes = slices.Clone(c.Scopes)
	return c
}

// GetConsent implements storage.Consents.
func (s *Store) GetConsent(_ context.Context, userID, clientID string) (storage.Consent, error) {
	if err := storage.CheckText(userID, clientID); err != nil {
		return storage.Consent{}, errorf("get consent", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.consents[consentKey{userID, clientID}]
	if !ok {
		return storage.Consent{}, errorf("get consent", storage.ErrNotFound)
	}
	return normConsent(c), nil
}

// ListConsents implements storage.Consents.
func (s *Store) ListConsents(_ context.Context, userID string) ([]storage.Consent, error) {
	if err := storage.CheckText(userID); err != nil {
		return nil, errorf("list consents", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.Consent
	for k, c := range s.consents {
		if k.userID == userID {
			out = append(out, normConsent(c))
		}
	}
	slices.SortFunc(out, func(a, b storage.Consent) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// RevokeConsents implements storage.Consents.
func (s *Store) RevokeConsents(_ context.Context, userID, clientID string, now time.Time) (consents, sessions int64, err error) {
	if err := storage.CheckText(userID, clientID); err != nil {
		return 0, 0, errorf("revoke consents", err)
	}
	if userID == "" {
		return 0, 0, errors.New("revoke consents: no user")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.consents {
		if k.userID == userID && (clientID == "" || k.clientID == clientID) {
			delete(s.consents, k)
			consents++
		}
	}
	sessions, err = s.revokeLive(storage.FamilyFilter{UserID: userID, ClientID: clientID}, storage.ReasonConsentRevoked, now)
	return consents, sessions, err
}

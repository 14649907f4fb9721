package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// Consent rows (migration 0005): one per user, client and scope, and a
// marker row whose scope is consentMarker for the consent to the client
// itself (a consent with no scope).
const consentMarker = ""

// GrantConsent adds scopes to userID's consent for clientID with one
// INSERT … ON CONFLICT of a row per scope (and the marker): nothing is
// read first, so concurrent grants union. The rows go in sorted order, so
// concurrent grants lock the rows they share in the same order
// (PostgreSQL: no deadlock). A row granted again keeps the later time.
func (s *Store) GrantConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error {
	if err := storage.CheckText(append([]string{userID, clientID}, scopes...)...); err != nil {
		return fmt.Errorf("grant consent: %w", err)
	}
	rows := slices.Compact(slices.Sorted(slices.Values(append([]string{consentMarker}, scopes...))))
	values := make([]string, len(rows))
	args := make([]any, 0, 4*len(rows))
	for i, scope := range rows {
		values[i] = "(?, ?, ?, ?)"
		args = append(args, userID, clientID, scope, micros(now))
	}
	q := "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES " + strings.Join(values, ", ") +
		" ON CONFLICT (user_id, client_id, scope) DO UPDATE SET granted_at = excluded.granted_at" +
		" WHERE consents.granted_at < excluded.granted_at"
	err := s.write(ctx, func(db *gorm.DB) error { return db.Exec(q, args...).Error })
	return mapErr("grant consent", err)
}

// consentRow is one row of consents.
type consentRow struct {
	ClientID    string
	Scope       string
	GrantedAtUS int64
}

// consentsOf groups rows, ordered by client, into consents.
func consentsOf(userID string, rows []consentRow) []storage.Consent {
	var out []storage.Consent
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].ClientID != r.ClientID {
			out = append(out, storage.Consent{UserID: userID, ClientID: r.ClientID})
		}
		c := &out[len(out)-1]
		if r.Scope != consentMarker {
			c.Scopes = append(c.Scopes, r.Scope)
		}
		if at := fromMicros(r.GrantedAtUS); at.After(c.GrantedAt) {
			c.GrantedAt = at
		}
	}
	for i := range out {
		slices.Sort(out[i].Scopes) // by code point, whatever the collation
	}
	return out
}

func (s *Store) consentRows(ctx context.Context, userID, clientID string) ([]consentRow, error) {
	q := s.db.WithContext(ctx).Table("consents").Select("client_id, scope, granted_at AS granted_at_us").
		Where("user_id = ?", userID).Order(s.orderText("client_id", false))
	if clientID != "" {
		q = q.Where("client_id = ?", clientID)
	}
	var rows []consentRow
	err := q.Scan(&rows).Error
	return rows, err
}

// GetConsent returns userID's consent for clientID; ErrNotFound if none.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (storage.Consent, error) {
	if err := storage.CheckText(userID, clientID); err != nil {
		return storage.Consent{}, fmt.Errorf("get consent: %w", err)
	}
	if clientID == "" {
		return storage.Consent{}, fmt.Errorf("get consent: %w", storage.ErrNotFound)
	}
	rows, err := s.consentRows(ctx, userID, clientID)
	if err != nil {
		return storage.Consent{}, mapErr("get consent", err)
	}
	cs := consentsOf(userID, rows)
	if len(cs) == 0 {
		return storage.Consent{}, fmt.Errorf("get consent: %w", storage.ErrNotFound)
	}
	return cs[0], nil
}

// ListConsents returns userID's consents, ordered by client id (code point).
func (s *Store) ListConsents(ctx context.Context, userID string) ([]storage.Consent, error) {
	if err := storage.CheckText(userID); err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	rows, err := s.consentRows(ctx, userID, "")
	if err != nil {
		return nil, mapErr("list consents", err)
	}
	return consentsOf(userID, rows), nil
}

// RevokeConsents deletes userID's consent rows for clientID (every client
// if "") and revokes the matching live families (ReasonConsentRevoked) in
// one transaction. It counts a consent per marker row deleted.
func (s *Store) RevokeConsents(ctx context.Context, userID, clientID string, now time.Time) (consents, sessions int64, err error) {
	if err := storage.CheckText(userID, clientID); err != nil {
		return 0, 0, fmt.Errorf("revoke consents: %w", err)
	}
	if userID == "" {
		return 0, 0, errors.New("revoke consents: no user")
	}
	err = s.write(ctx, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			q, args := "DELETE FROM consents WHERE user_id = ?", []any{userID}
			if clientID != "" {
				q, args = q+" AND client_id = ?", append(args, clientID)
			}
			var scopes []string
			if err := tx.Raw(q+" RETURNING scope", args...).Scan(&scopes).Error; err != nil {
				return err
			}
			consents = int64(len(slices.DeleteFunc(scopes, func(s string) bool { return s != consentMarker })))
			var err error
			sessions, err = revokeLiveFamilies(tx, storage.FamilyFilter{UserID: userID, ClientID: clientID},
				storage.ReasonConsentRevoked, now)
			return err
		})
	})
	if err != nil {
		return 0, 0, mapErr("revoke consents", err)
	}
	return consents, sessions, nil
}

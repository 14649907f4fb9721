package sqlstore

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/keyturn/keyturn/storage"
)

// CreateSigningKey stores a key. ErrAlreadyExists if the ID is taken.
func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	row := toSigningKeyRow(k)
	return mapErr("create signing key", s.write(ctx, func(db *gorm.DB) error { return db.Create(&row).Error }))
}

// ListSigningKeys returns all keys ordered by ActivateAt, then ID.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	var rows []signingKeyRow
	err := s.db.WithContext(ctx).Order("activate_at").Order(s.orderText("id", false)).Find(&rows).Error
	if err != nil {
		return nil, mapErr("list signing keys", err)
	}
	out := make([]storage.SigningKey, len(rows))
	for i, r := range rows {
		out[i] = r.signingKey()
	}
	return out, nil
}

// DeleteSigningKey deletes a key. ErrNotFound if unknown.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Where("id = ?", id).Delete(&signingKeyRow{})
		n = res.RowsAffected
		return res.Error
	})
	if err == nil && n == 0 {
		return fmt.Errorf("delete signing key: %w", storage.ErrNotFound)
	}
	return mapErr("delete signing key", err)
}

package sqlstore_test

import (
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// BenchmarkRotateFamilyPostgres is a refresh's whole database work on
// PostgreSQL: one successful RotateFamily, client side CPU and allocations
// plus the round trip. It skips without KEYTURN_TEST_DATABASE_URL.
//
//	go test -run '^$' -bench RotateFamily -benchmem ./storage/sqlstore/
func BenchmarkRotateFamilyPostgres(b *testing.B) {
	s := sqlstoretest.Postgres(b)
	ctx := b.Context()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateUser(ctx, storage.User{ID: "u", Username: "ada", CreatedAt: at, UpdatedAt: at}); err != nil {
		b.Fatal(err)
	}
	f := storage.Family{ID: "fam-bench", ClientID: "app", UserID: "u", Scope: "openid read", Salt: []byte("salt"),
		KeyID: "k1", GrantType: storage.GrantPassword, AuthTime: at, CreatedAt: at, LastUsedAt: at,
		IdleExpiresAt: at.Add(time.Hour), AbsoluteExpiresAt: at.Add(10000 * time.Hour)}
	if err := s.CreateFamily(ctx, f); err != nil {
		b.Fatal(err)
	}
	gen := uint64(0)
	now := at
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		got, err := s.RotateFamily(ctx, f.ID, gen, now, now.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		gen = got.Generation
	}
}

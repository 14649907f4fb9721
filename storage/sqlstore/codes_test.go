package sqlstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// TestRedeemCodeWaitsForRevocationPostgres: a redemption that meets its
// browser session's row being revoked by a transaction not yet committed
// waits for it, then finds the session revoked (RP-Initiated Logout 1.0
// §2). Without the share lock it would read the row as last committed,
// live, and start a session the logout's RevokeFamilies, run before its
// commit, never sees. The storagetest race case shows the other order.
func TestRedeemCodeWaitsForRevocationPostgres(t *testing.T) {
	s := sqlstoretest.Postgres(t)
	ctx := t.Context()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateUser(ctx, storage.User{ID: "user-1", Username: "ada", PasswordHash: "$argon2id$x",
		CreatedAt: base, UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}
	b := storage.BrowserSession{ID: "bs-1", UserID: "user-1", AuthTime: base, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateBrowserSession(ctx, b); err != nil {
		t.Fatal(err)
	}
	c := storage.AuthCode{Hash: []byte("code-1"), ClientID: "app", UserID: "user-1", CodeChallenge: "x",
		BrowserSessionID: b.ID, AuthTime: base, CreatedAt: base, ExpiresAt: base.Add(time.Minute)}
	if err := s.CreateCode(ctx, c); err != nil {
		t.Fatal(err)
	}

	revoke := s.Gorm().Begin()
	t.Cleanup(func() { revoke.Rollback() })
	if err := revoke.Exec("UPDATE browser_sessions SET revoked_at = 1 WHERE id = ?", b.ID).Error; err != nil {
		t.Fatal(err)
	}
	f := storage.Family{ID: "fam-1", ClientID: "app", UserID: "user-1", Salt: []byte("0123456789abcdef"),
		KeyID: "k", CreatedAt: base, LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour),
		AbsoluteExpiresAt: base.Add(time.Hour), GrantType: storage.GrantAuthorizationCode, AuthTime: base,
		BrowserSessionID: b.ID}
	done := make(chan error, 1)
	go func() {
		_, err := s.RedeemCode(ctx, c.Hash, f, base)
		done <- err
	}()
	// Wait until the redemption waits for the revocation's row lock (or,
	// without the lock, has already finished).
	for waiting := 0; waiting == 0; {
		select {
		case err := <-done:
			t.Fatalf("RedeemCode did not wait for the uncommitted revocation: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if err := s.Gorm().Raw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() " +
			"AND wait_event_type = 'Lock' AND query LIKE 'UPDATE auth_codes%'").Scan(&waiting).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := revoke.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, storage.ErrBrowserSessionEnded) {
		t.Fatalf("RedeemCode = %v, want ErrBrowserSessionEnded", err)
	}
	if _, err := s.GetFamily(ctx, f.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("family created: %v", err)
	}
}

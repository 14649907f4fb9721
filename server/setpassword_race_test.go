package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
)

// passwordChangedStore changes ada's password, as `keyturn users
// set-password` does, just before the first session is created: a login
// whose password was checked against the old hash and whose session is
// stored after the change (set-password runs between the hash and the
// insert). The store is the real one; only the order is forced.
type passwordChangedStore struct {
	storage.Store
	once   sync.Once
	change func(context.Context) error
	err    error
}

func (s *passwordChangedStore) CreateFamily(ctx context.Context, f storage.Family) error {
	s.once.Do(func() { s.err = s.change(ctx) })
	return s.Store.CreateFamily(ctx, f)
}

// TestSetPasswordRacingLogin: a login that checked the old password must
// not leave a session behind a password change that ends the user's
// sessions: its session would be the attacker's, kept after the reset.
func TestSetPasswordRacingLogin(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			base := openStore(t, b)
			st := &passwordChangedStore{Store: base}
			ts := newTestServerOn(t, st)
			st.change = func(ctx context.Context) error {
				h := servertest.HashPassword(t, "a new password")
				return base.SetUserPassword(ctx, "ada", h, false, ts.clock.Now())
			}
			r := ts.token(confA, pw("ada", userPass))
			if st.err != nil {
				t.Fatalf("set password: %v", st.err)
			}
			if r.status == http.StatusOK {
				if rt := r.str("refresh_token"); rt != "" {
					if again := ts.token(confA, refresh(rt)); again.status == http.StatusOK {
						t.Fatalf("the session of a login checked against the old password outlived the change: refresh %d", again.status)
					}
				}
				t.Fatalf("login checked against the old password got tokens after the change: %s", r.body)
			}
			wantError(t, r, http.StatusBadRequest, "invalid_grant")
		})
	}
}

package sweeper_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/sweeper"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// TestSweepDeletesOnlyWhatIsPastRetention runs a sweep, with an injected
// clock and a batch size of one, over every kind of row on both sides of
// each cutoff.
func TestSweepDeletesOnlyWhatIsPastRetention(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx := t.Context()
			now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			seed(t, store, now)
			c := sweeper.New(store, sweeper.Options{
				RevokedRetention: 7 * 24 * time.Hour, ThrottleRetention: 24 * time.Hour, BatchSize: 1,
				Now: func() time.Time { return now },
			}, slog.New(slog.DiscardHandler))
			res, err := c.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res != (sweeper.Result{Families: 2, Denials: 2, Throttles: 1, KnownAddresses: 1, Codes: 2, BrowserSessions: 2}) {
				t.Fatalf("sweep deleted %+v", res)
			}
			for id, want := range map[string]bool{
				"absolute-expired": false, "revoked-past-retention": false,
				"idle-expired-only": true, "live": true, "revoked-recently": true,
			} {
				_, err := store.GetFamily(ctx, id)
				if got := err == nil; got != want {
					t.Errorf("family %s kept = %v, want %v (%v)", id, got, want, err)
				}
			}
			for jti, want := range map[string]bool{"old": false, "old2": false, "fresh": true} {
				if chk, _ := store.CheckAccess(ctx, jti, ""); chk.Denied != want {
					t.Errorf("denial %s kept = %v, want %v", jti, chk.Denied, want)
				}
			}
			if _, err := store.GetThrottle(ctx, "recent"); err != nil {
				t.Errorf("recent throttle deleted: %v", err)
			}
			if _, err := store.GetThrottle(ctx, "stale"); err == nil {
				t.Error("stale throttle kept")
			}
			for user, want := range map[string]bool{"gone": false, "kept": true} {
				if seen, err := store.AddressLastSeen(ctx, user, "addr:192.0.2.1"); err != nil || seen.IsZero() == want {
					t.Errorf("known address of %s: %s, %v; want kept %v", user, seen, err, want)
				}
			}
			// Codes: kept a day past expiry, used or not (a late replay
			// still names its session).
			for code, want := range map[string]bool{"code-old": false, "code-used-old": false, "code-day": true, "code-used-day": true} {
				if _, err := store.GetCode(ctx, []byte(code)); (err == nil) != want {
					t.Errorf("code %s kept = %v, want %v (%v)", code, err == nil, want, err)
				}
			}
			for id, want := range map[string]bool{"bs-expired": false, "bs-revoked": false, "bs-live": true} {
				if _, err := store.GetBrowserSession(ctx, id); (err == nil) != want {
					t.Errorf("browser session %s kept = %v, want %v (%v)", id, err == nil, want, err)
				}
			}
			// A second sweep finds nothing: the cutoffs are stable.
			if res, err := c.Sweep(ctx); err != nil || res != (sweeper.Result{}) {
				t.Fatalf("second sweep %+v %v", res, err)
			}
		})
	}
}

// backends open a fresh store of each database the sweeper runs on.
var backends = map[string]func(testing.TB) *sqlstore.Store{
	"SQLite":   sqlstoretest.SQLite,
	"Postgres": sqlstoretest.Postgres,
}

// seed writes every kind of row the sweeper deletes, on both sides of each
// cutoff of a sweep at now.
func seed(t *testing.T, store *sqlstore.Store, now time.Time) {
	t.Helper()
	ctx := t.Context()
	if err := store.CreateUser(ctx, storage.User{ID: "u", Username: "u", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	fam := func(id string, absolute, idle, revoked time.Time) {
		f := storage.Family{ID: id, ClientID: "c", UserID: "u", Salt: []byte("s"), KeyID: "k",
			CreatedAt: now.Add(-800 * time.Hour), LastUsedAt: now.Add(-800 * time.Hour),
			GrantType: storage.GrantPassword, AuthTime: now.Add(-800 * time.Hour),
			IdleExpiresAt: idle, AbsoluteExpiresAt: absolute}
		if err := store.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
		if !revoked.IsZero() {
			if err := store.RevokeFamily(ctx, id, storage.ReasonLogout, revoked); err != nil {
				t.Fatal(err)
			}
		}
	}
	var never time.Time
	later := now.Add(time.Hour)
	fam("absolute-expired", now.Add(-time.Second), now.Add(-time.Second), never)
	fam("idle-expired-only", later, now.Add(-time.Hour), never) // dead, but reuse detection keeps it
	fam("live", later, later, never)
	fam("revoked-past-retention", later, later, now.Add(-8*24*time.Hour))
	fam("revoked-recently", later, later, now.Add(-6*24*time.Hour))
	for jti, exp := range map[string]time.Time{"old": now.Add(-time.Second), "old2": now.Add(-time.Hour), "fresh": later} {
		if err := store.DenyAccessToken(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	for key, at := range map[string]time.Time{"stale": now.Add(-25 * time.Hour), "recent": now.Add(-time.Hour)} {
		if err := store.ResolveAttempts(ctx, []storage.Resolution{{Key: key, Outcome: storage.AttemptFailed, Rule: storage.ThrottleRule{Window: time.Hour}}}, at); err != nil {
			t.Fatal(err)
		}
	}
	for id, exp := range map[string]time.Time{"bs-expired": now.Add(-time.Second), "bs-revoked": later, "bs-live": later} {
		b := storage.BrowserSession{ID: id, UserID: "u", AuthTime: now.Add(-time.Hour), CreatedAt: now.Add(-time.Hour), ExpiresAt: exp}
		if err := store.CreateBrowserSession(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for code, exp := range map[string]time.Time{
		"code-old": now.Add(-25 * time.Hour), "code-used-old": now.Add(-25 * time.Hour),
		"code-day": now.Add(-23 * time.Hour), "code-used-day": now.Add(-23 * time.Hour),
	} {
		c := storage.AuthCode{Hash: []byte(code), ClientID: "c", UserID: "u", Scope: "s", BrowserSessionID: "bs-live",
			AuthTime: exp.Add(-2 * time.Minute), CreatedAt: exp.Add(-time.Minute), ExpiresAt: exp}
		if err := store.CreateCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(code, "used") {
			f := storage.Family{ID: "fam-" + code, ClientID: "c", UserID: "u", Salt: []byte("s"), KeyID: "k", BrowserSessionID: "bs-live",
				GrantType: storage.GrantAuthorizationCode, AuthTime: c.AuthTime, CreatedAt: c.CreatedAt, LastUsedAt: c.CreatedAt,
				IdleExpiresAt: later, AbsoluteExpiresAt: later}
			if _, err := store.RedeemCode(ctx, c.Hash, f, c.CreatedAt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := store.EndBrowserSession(ctx, "bs-revoked", "", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for user, at := range map[string]time.Time{"gone": now.Add(-31 * 24 * time.Hour), "kept": now.Add(-29 * 24 * time.Hour)} {
		if err := store.RememberAddress(ctx, user, "addr:192.0.2.1", at, 10); err != nil {
			t.Fatal(err)
		}
	}
}

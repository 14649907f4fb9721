package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage"
)

// TestCleanerDeletesOnlyWhatIsPastRetention runs a sweep, with an injected
// clock and a batch size of one, over every kind of row on both sides of
// each cutoff.
func TestCleanerDeletesOnlyWhatIsPastRetention(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			store := openStore(t, b)
			ctx := t.Context()
			now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			if err := store.CreateUser(ctx, storage.User{ID: "u", Username: "u", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			fam := func(id string, absolute, idle, revoked time.Time) {
				f := storage.Family{ID: id, ClientID: "c", UserID: "u", Salt: []byte("s"), KeyID: "k",
					CreatedAt: now.Add(-800 * time.Hour), LastUsedAt: now.Add(-800 * time.Hour),
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
			for user, at := range map[string]time.Time{"gone": now.Add(-31 * 24 * time.Hour), "kept": now.Add(-29 * 24 * time.Hour)} {
				if err := store.RememberAddress(ctx, user, "addr:192.0.2.1", at, 10); err != nil {
					t.Fatal(err)
				}
			}
			c := server.NewCleaner(store, server.CleanupOptions{
				RevokedRetention: 7 * 24 * time.Hour, ThrottleRetention: 24 * time.Hour, BatchSize: 1,
				Now: func() time.Time { return now },
			}, discardLogger())
			res, err := c.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res != (server.CleanupResult{Families: 2, Denials: 2, Throttles: 1, KnownAddresses: 1}) {
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
			// A second sweep finds nothing: the cutoffs are stable.
			if res, err := c.Sweep(ctx); err != nil || res != (server.CleanupResult{}) {
				t.Fatalf("second sweep %+v %v", res, err)
			}
		})
	}
}

// TestCleanerPrunesSigningKeys: a key is deleted once it can neither sign
// nor verify: superseded longer than the longest token lifetime ago, or
// revoked (its private half already erased) as long ago. Pruning never
// changes what is published.
func TestCleanerPrunesSigningKeys(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ctx := t.Context()
			store := openStore(t, b)
			clock := newClock()
			const maxTTL = 15 * time.Minute
			keys := adminKeys(t, store, clock) // k0, signing now
			c := server.NewCleaner(store, server.CleanupOptions{MaxTokenTTL: maxTTL, BatchSize: 1, Now: clock.Now}, discardLogger())
			sweep := func(want int64) {
				t.Helper()
				res, err := c.Sweep(ctx)
				if err != nil || res != (server.CleanupResult{Keys: want}) {
					t.Fatalf("sweep = %+v, %v; want %d keys deleted", res, err, want)
				}
			}
			ids := func() []string {
				t.Helper()
				rows, err := store.ListSigningKeys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, r := range rows {
					out = append(out, r.ID)
				}
				return out
			}
			published := func() string {
				t.Helper()
				set, err := keys.Published(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, k := range set {
					out = append(out, k.KeyID)
				}
				return strings.Join(out, ",")
			}
			k0 := ids()[0]
			k1, err := keys.Rotate(ctx) // signs from +1h
			if err != nil {
				t.Fatal(err)
			}
			sweep(0)
			clock.Advance(time.Hour + maxTTL) // k0 superseded exactly maxTTL ago: kept to the boundary
			sweep(0)
			clock.Advance(time.Microsecond)
			before := published()
			sweep(1)
			if got := ids(); len(got) != 1 || got[0] != k1.ID || contains(got, k0) {
				t.Fatalf("keys after pruning k0: %v", got)
			}
			if after := published(); after != before || after != k1.ID {
				t.Fatalf("published %q after pruning, %q before; want %s", after, before, k1.ID)
			}

			clock.Advance(time.Hour)
			res, err := keys.Revoke(ctx, k1.ID)
			if err != nil {
				t.Fatal(err)
			}
			sweep(0) // the revoked row stays while it orders its neighbours, and for `keys list`
			clock.Advance(maxTTL)
			sweep(0)
			clock.Advance(time.Microsecond)
			before = published()
			sweep(1)
			if got := ids(); len(got) != 1 || got[0] != res.SignerID {
				t.Fatalf("keys after pruning the revoked key: %v, want [%s]", got, res.SignerID)
			}
			if after := published(); after != before || after != res.SignerID {
				t.Fatalf("published %q after pruning, %q before; want %s", after, before, res.SignerID)
			}
		})
	}
}

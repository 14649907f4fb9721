package throttle_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// backends open a fresh store of each database the throttle counts in.
var backends = map[string]func(testing.TB) *sqlstore.Store{
	"SQLite":   sqlstoretest.SQLite,
	"Postgres": sqlstoretest.Postgres,
}

// onBackends runs test on each database with a throttle of two free
// failures whose clock is *now.
func onBackends(t *testing.T, test func(t *testing.T, th *throttle.Throttle, now *time.Time)) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			test(t, throttle.New(open(t), throttle.Options{FreeFailures: 2}, func() time.Time { return now }), &now)
		})
	}
}

// TestLoginRefusedPastFreeFailures: the free failures of a (username,
// address) pass, the next login is refused with a *Refused whose
// RetryAfter is the base delay, and an IPv6 address is counted by its /64.
func TestLoginRefusedPastFreeFailures(t *testing.T) {
	onBackends(t, func(t *testing.T, th *throttle.Throttle, now *time.Time) {
		ctx := t.Context()
		for i := range 2 {
			l, err := th.BeginLogin(ctx, netip.MustParseAddr("2001:db8::1"), "ada")
			if err != nil {
				t.Fatalf("login %d: %v", i, err)
			}
			if err := l.Fail(ctx); err != nil {
				t.Fatal(err)
			}
		}
		_, err := th.BeginLogin(ctx, netip.MustParseAddr("2001:db8::2"), "ada") // same /64
		var refused *throttle.Refused
		if !errors.As(err, &refused) || refused.RetryAfter != time.Second {
			t.Fatalf("third login: %v, want *Refused after 1s", err)
		}
		l, err := th.BeginLogin(ctx, netip.MustParseAddr("2001:db8:1::1"), "ada") // another /64
		if err != nil {
			t.Fatalf("login from another /64: %v", err)
		}
		if err := l.Succeed(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCheckClientCountsWrongSecrets: a wrong secret (false, nil) is
// counted and answered until the free failures are spent; then even the
// right secret is refused without revealing it, and an error from the
// check (nothing judged) is returned and not counted.
func TestCheckClientCountsWrongSecrets(t *testing.T) {
	onBackends(t, func(t *testing.T, th *throttle.Throttle, now *time.Time) {
		ctx := t.Context()
		addr := netip.MustParseAddr("192.0.2.7")
		busy := errors.New("busy")
		if _, err := th.CheckClient(ctx, "app", addr, func() (bool, error) { return false, busy }); !errors.Is(err, busy) {
			t.Fatalf("check error: %v, want it returned", err)
		}
		for i := range 2 {
			if ok, err := th.CheckClient(ctx, "app", addr, func() (bool, error) { return false, nil }); ok || err != nil {
				t.Fatalf("wrong secret %d: %v %v, want false, nil", i, ok, err)
			}
		}
		var refused *throttle.Refused
		if _, err := th.CheckClient(ctx, "app", addr, func() (bool, error) { return true, nil }); !errors.As(err, &refused) {
			t.Fatalf("right secret past the bar: %v, want *Refused", err)
		}
		*now = now.Add(refused.RetryAfter)
		if ok, err := th.CheckClient(ctx, "app", addr, func() (bool, error) { return true, nil }); !ok || err != nil {
			t.Fatalf("right secret after the wait: %v %v", ok, err)
		}
	})
}

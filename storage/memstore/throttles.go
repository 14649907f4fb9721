package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// throttle is one key's state in unix microseconds, as storage/sqlstore
// keeps it (0: never), so the rules below read as its statements do.
type throttle struct {
	failures, pending         int
	lastFailure, pendingSince int64
}

func (t throttle) state(key string) storage.Throttle {
	out := storage.Throttle{Key: key, Failures: t.failures, Pending: t.pending}
	if t.lastFailure != 0 {
		out.LastFailureAt = time.UnixMicro(t.lastFailure).UTC()
	}
	if t.pending > 0 {
		out.PendingSince = time.UnixMicro(t.pendingSince).UTC()
	}
	return out
}

// allows reports whether rule lets one more attempt be reserved at nowUS.
func (t throttle) allows(rule storage.ThrottleRule, nowUS int64) bool {
	if t.failures+t.pending < rule.Free {
		return true
	}
	return t.pending == 0 && t.lastFailure <= nowUS-rule.Delay(t.failures).Microseconds()
}

// expired counts pending attempts reserved before orphanBefore as failures
// at nowUS and forgets failures last made before windowStart.
func (t throttle) expired(windowStart, orphanBefore, nowUS int64) (throttle, bool) {
	stale := t.failures > 0 && t.lastFailure < windowStart
	orphaned := t.pending > 0 && t.pendingSince < orphanBefore
	if stale {
		t.failures = 0
	}
	if orphaned {
		t.failures += t.pending
		t.lastFailure, t.pending = nowUS, 0
	}
	return t, stale || orphaned
}

// release ends one pending attempt at nowUS; one that leaves others
// pending restarts pendingSince (the key is alive: see sqlstore).
func (t throttle) release(nowUS int64) throttle {
	if t.pending > 1 {
		t.pendingSince = nowUS
	}
	t.pending = max(t.pending-1, 0)
	return t
}

// ReserveAttempts implements storage.Throttles.
func (s *Store) ReserveAttempts(_ context.Context, keys []storage.Reservation, now time.Time) (storage.ReserveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := storage.ReserveResult{Refused: -1, States: make([]storage.Throttle, 0, len(keys))}
	for i, k := range keys {
		th, ok := s.reserveOne(k.Key, k.Rule, now)
		res.States = append(res.States, th)
		if ok {
			continue
		}
		res.Refused = i
		for _, taken := range keys[:i] {
			s.throttles[taken.Key] = s.throttles[taken.Key].release(now.UnixMicro())
		}
		break
	}
	return res, nil
}

// reserveOne reserves one attempt on key, or says why not; s.mu is held.
func (s *Store) reserveOne(key string, rule storage.ThrottleRule, now time.Time) (storage.Throttle, bool) {
	nowUS := now.UnixMicro()
	t, ok := s.throttles[key]
	if !ok {
		t = throttle{pending: 1, pendingSince: nowUS}
		s.throttles[key] = t
		return t.state(key), true
	}
	if !t.allows(rule, nowUS) {
		var changed bool
		t, changed = t.expired(now.Add(-rule.Window).UnixMicro(), now.Add(-rule.Orphan).UnixMicro(), nowUS)
		s.throttles[key] = t
		if !changed || !t.allows(rule, nowUS) {
			return t.state(key), false
		}
	}
	if t.pending == 0 {
		t.pendingSince = nowUS
	}
	t.pending++
	s.throttles[key] = t
	return t.state(key), true
}

// GetThrottle implements storage.Throttles.
func (s *Store) GetThrottle(_ context.Context, key string) (storage.Throttle, error) {
	return read(s, s.throttles, key, "get throttle", func(t throttle) storage.Throttle { return t.state(key) })
}

// ResolveAttempts implements storage.Throttles.
func (s *Store) ResolveAttempts(_ context.Context, attempts []storage.Resolution, now time.Time) error {
	for _, a := range attempts {
		if !a.Outcome.Valid() {
			return fmt.Errorf("resolve attempt: unknown outcome %d", a.Outcome)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nowUS := now.UnixMicro()
	for _, a := range attempts {
		t, ok := s.throttles[a.Key]
		switch {
		case a.Outcome == storage.AttemptFailed:
			if t.lastFailure < now.Add(-a.Rule.Window).UnixMicro() {
				t.failures = 0
			}
			t.failures++
			t.lastFailure = nowUS
			s.throttles[a.Key] = t.release(nowUS)
		case !ok: // nothing to release
		case a.Outcome == storage.AttemptSucceeded:
			t.failures = 0
			s.throttles[a.Key] = t.release(nowUS)
		default:
			s.throttles[a.Key] = t.release(nowUS)
		}
	}
	return nil
}

// DeleteThrottles implements storage.Throttles.
func (s *Store) DeleteThrottles(_ context.Context, before time.Time, limit int) (int64, error) {
	b := before.UnixMicro()
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleteWhere(s.throttles, limit, func(t throttle) bool {
		return t.lastFailure < b && (t.pending == 0 || t.pendingSince < b)
	})
}

// RememberAddress implements storage.Throttles.
func (s *Store) RememberAddress(_ context.Context, userKey, addr string, now time.Time, keep int) error {
	if keep <= 0 {
		return fmt.Errorf("remember address: keep %d: must be positive", keep)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.addresses[userKey]
	if seen == nil {
		seen = map[string]time.Time{}
		s.addresses[userKey] = seen
	}
	if now = at(now); now.After(seen[addr]) {
		seen[addr] = now
	}
	addrs := make([]string, 0, len(seen))
	for a := range seen {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(a, b string) int { return cmp.Or(seen[b].Compare(seen[a]), cmp.Compare(a, b)) })
	for _, a := range addrs[min(keep, len(addrs)):] {
		delete(seen, a)
	}
	return nil
}

// AddressLastSeen implements storage.Throttles.
func (s *Store) AddressLastSeen(_ context.Context, userKey, addr string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addresses[userKey][addr], nil
}

// DeleteKnownAddresses implements storage.Throttles.
func (s *Store) DeleteKnownAddresses(_ context.Context, before time.Time, limit int) (int64, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	before = at(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for userKey, seen := range s.addresses {
		m, _ := deleteWhere(seen, limit-int(n), func(t time.Time) bool { return t.Before(before) })
		n += m
		if len(seen) == 0 {
			delete(s.addresses, userKey)
		}
		if n == int64(limit) {
			break
		}
	}
	return n, nil
}

// Package throttle owns Keyturn's login defense: the failure counters kept
// in the database (storage.Throttles) per (username, address), username,
// address and (client id, address); the reservations that count an attempt
// before its password is hashed; the bounded wait for attempts in flight;
// the known-address rule; and the counting of client authentications. It
// knows nothing of HTTP: callers pass the source address and names as plain
// values, and a refusal is a *Refused that the server answers with 429.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// Options are the throttle's bars and timings. Zero values take defaults.
type Options struct {
	// FreeFailures failed logins per (username, source address) are free;
	// each further one doubles the wait from BaseDelay, up to MaxDelay.
	// Failures older than FailureWindow are forgotten. Client
	// authentication failures are counted the same way per (client id,
	// source address). Zero values take the defaults 5, 1s, 15m and 1h.
	FreeFailures  int
	BaseDelay     time.Duration
	MaxDelay      time.Duration
	FailureWindow time.Duration
	// UserFailures is the bar per username over all addresses (default
	// 50), which slows a guesser spread over many addresses. It does not
	// hold back an address from which the user logged in within
	// KnownAddressTTL (default 30 days; the KnownAddresses most recent
	// are kept per user, default 10).
	UserFailures    int
	KnownAddressTTL time.Duration
	KnownAddresses  int
	// AddressFailures is the bar per source address over all usernames
	// (default 100): password spraying.
	AddressFailures int
	// PendingWait bounds how long an attempt waits for the attempts in
	// flight on its counters to resolve (default 3s; then 429), and
	// PendingPoll is how often it re-reads the database meanwhile, for
	// attempts on other instances (default 25ms; those on this instance
	// wake it at once). OrphanAfter is when a reservation never resolved
	// (its instance died) counts as a failure (default 1m).
	PendingWait time.Duration
	PendingPoll time.Duration
	OrphanAfter time.Duration
}

// withDefaults fills in the defaults of the zero fields.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.FreeFailures, 5)
	def(&o.UserFailures, 50)
	def(&o.AddressFailures, 100)
	def(&o.KnownAddresses, 10)
	defDur(&o.BaseDelay, time.Second)
	defDur(&o.MaxDelay, 15*time.Minute)
	o.MaxDelay = max(o.MaxDelay, o.BaseDelay)
	defDur(&o.FailureWindow, time.Hour)
	defDur(&o.KnownAddressTTL, 30*24*time.Hour)
	defDur(&o.PendingWait, 3*time.Second)
	defDur(&o.PendingPoll, 25*time.Millisecond)
	defDur(&o.OrphanAfter, time.Minute)
	return o
}

// rule is the throttle rule with free failures.
func (o Options) rule(free int) storage.ThrottleRule {
	return storage.ThrottleRule{Free: free, BaseDelay: o.BaseDelay, MaxDelay: o.MaxDelay,
		Window: o.FailureWindow, Orphan: o.OrphanAfter}
}

// Refused is an attempt the throttle holds back: too many failures on one
// of its counters, or attempts in flight that did not resolve within
// PendingWait. The caller answers 429 with Retry-After (RFC 6585 §4).
type Refused struct {
	RetryAfter time.Duration
}

func (r *Refused) Error() string {
	return fmt.Sprintf("throttle: too many failed attempts; retry after %s", r.RetryAfter)
}

func refused(wait time.Duration) error { return &Refused{RetryAfter: wait} }

// Throttle slows password guessing (RFC 6749 §4.3.2: the authorization
// server MUST protect the endpoint against brute force) and client secret
// guessing (RFC 6749 §2.3.1, §10.10). Attempts are counted in the
// database, per key, so every instance sees the same counts (DESIGN.md §7
// gives the model and why).
//
// A login is counted BEFORE its password is hashed: it reserves a place
// on each of its keys (storage.Store.ReserveAttempts: one conditional
// statement per key, all keys or none), and after the check each
// reservation becomes a failure or is refunded. So a burst of guesses, on
// one instance or many, hashes no more passwords than are free. An attempt that finds a key's
// free places taken by attempts still in flight, though its failures are
// under the bar, waits for them (bounded by PendingWait): that is what
// lets concurrent correct logins all succeed.
type Throttle struct {
	store storage.Throttles
	opts  Options
	now   func() time.Time
	// resolved wakes the attempts waiting on this instance whenever one
	// resolves; waits for other instances' attempts poll the database.
	resolved signal
}

// New returns the throttle counting in store, with the clock now; zero
// options get defaults.
func New(store storage.Throttles, opts Options, now func() time.Time) *Throttle {
	return &Throttle{store: store, opts: opts.withDefaults(), now: now}
}

// counter is one key an attempt is counted on, with its rule and what a
// success does to it.
type counter struct {
	key     string
	rule    storage.ThrottleRule
	success storage.AttemptOutcome // AttemptSucceeded resets the key
}

// addressKey is the counter of a source address: an IPv6 client is
// counted by its /64, which one host controls.
func addressKey(addr netip.Addr) string {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + addr.Unmap().String()
}

// hashKey makes a fixed-size key from arbitrary input.
func hashKey(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// userKey is the counter of a username (hashed: arbitrary input).
func userKey(username string) string { return hashKey("user:", username) }

// loginCounters are the keys a password login is counted on: (username,
// address), reset by a success; and, unless the address is known for the
// user (DESIGN.md §7), the username across addresses and the address
// across usernames, neither reset by a success (an attacker could reset
// them with an account of their own). A known address passing both wide
// bars is what keeps a stranger from locking an owner out from elsewhere,
// and one person at an office's address from locking the office out.
func (t *Throttle) loginCounters(username, addrKey string, known bool) []counter {
	o := t.opts
	cs := []counter{{key: hashKey("login:", username, addrKey), rule: o.rule(o.FreeFailures), success: storage.AttemptSucceeded}}
	if known {
		return cs
	}
	return append(cs,
		counter{key: userKey(username), rule: o.rule(o.UserFailures), success: storage.AttemptAllowed},
		counter{key: addrKey, rule: o.rule(o.AddressFailures), success: storage.AttemptAllowed})
}

// clientCounter is the key a client authentication is counted on:
// (client id, address) only, so that nobody can lock a client out from
// addresses of their own.
func (t *Throttle) clientCounter(clientID, addrKey string) counter {
	return counter{key: hashKey("client:", clientID, addrKey), rule: t.opts.rule(t.opts.FreeFailures), success: storage.AttemptSucceeded}
}

// attempt holds the reservations of one login or client authentication.
type attempt struct {
	t        *Throttle
	counters []counter
}

// reserve takes a reservation on every counter or on none, waiting while
// the attempts in flight on a counter, not its failures, stand in the
// way. The error is a *Refused or the database's.
func (t *Throttle) reserve(ctx context.Context, counters []counter) (*attempt, error) {
	keys := make([]storage.Reservation, len(counters))
	for i, c := range counters {
		keys[i] = storage.Reservation{Key: c.key, Rule: c.rule}
	}
	var deadline <-chan time.Time
	for {
		woken := t.resolved.wait() // before reading, so no wake-up is missed
		now := t.now()
		res, err := t.store.ReserveAttempts(ctx, keys, now)
		if err != nil {
			return nil, fmt.Errorf("throttle: %w", err)
		}
		if res.Refused < 0 {
			return &attempt{t: t, counters: counters}, nil
		}
		if wait := blockedFor(res.States[res.Refused], keys[res.Refused].Rule, now); wait > 0 {
			return nil, refused(wait)
		}
		// Under the bar but for attempts in flight: wait for them.
		if deadline == nil {
			timer := time.NewTimer(t.opts.PendingWait)
			defer timer.Stop()
			deadline = timer.C
		}
		poll := time.NewTimer(t.opts.PendingPoll)
		select {
		case <-woken:
		case <-poll.C:
		case <-deadline:
			poll.Stop()
			return nil, refused(time.Second)
		case <-ctx.Done():
			poll.Stop()
			return nil, refused(time.Second)
		}
		poll.Stop()
	}
}

// blockedFor is how long a key in state th is refused whatever resolves:
// its committed failures have reached the bar and the delay since the
// last one has not passed. 0: it waits only for attempts in flight.
func blockedFor(th storage.Throttle, rule storage.ThrottleRule, now time.Time) time.Duration {
	if th.Failures < rule.Free {
		return 0
	}
	return max(th.LastFailureAt.Add(rule.Delay(th.Failures)).Sub(now), 0)
}

// resolve ends the attempt: failed counts a failure on every counter, a
// success refunds them (and resets those reset by a success). It runs to
// the end even when the request is gone, with a deadline of its own: a
// reservation left behind would hold a place until it expires.
func (a *attempt) resolve(ctx context.Context, failed bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	defer a.t.resolved.broadcast()
	if len(a.counters) == 0 {
		return nil
	}
	rs := make([]storage.Resolution, len(a.counters))
	for i, c := range a.counters {
		rs[i] = storage.Resolution{Key: c.key, Outcome: c.success, Rule: c.rule}
		if failed {
			rs[i].Outcome = storage.AttemptFailed
		}
	}
	a.counters = nil
	if err := a.t.store.ResolveAttempts(ctx, rs, a.t.now()); err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// refund ends an attempt that was not judged (a database error, a hash
// error): nothing is counted, nothing reset.
func (a *attempt) refund(ctx context.Context) {
	for i := range a.counters {
		a.counters[i].success = storage.AttemptRefunded
	}
	_ = a.resolve(ctx, false) // on error, the reservations expire as orphans
}

// clean reports whether c's counter has no failure within the window and
// fewer pending attempts than its free places: a success may then pass
// without taking a place, since even if every pending attempt fails, the
// failures before it stay under the bar.
func (t *Throttle) clean(ctx context.Context, c counter) (bool, error) {
	th, err := t.store.GetThrottle(ctx, c.key)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("throttle: %w", err)
	}
	stale := th.LastFailureAt.Before(t.now().Add(-c.rule.Window))
	return (th.Failures == 0 || stale) && th.Pending < c.rule.Free, nil
}

// heldBack is how long c's counter refuses every attempt whatever
// resolves (blockedFor), read once; 0 for a key never used or whose
// failures are past the window.
func (t *Throttle) heldBack(ctx context.Context, c counter) (time.Duration, error) {
	th, err := t.store.GetThrottle(ctx, c.key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("throttle: %w", err)
	}
	now := t.now()
	if th.LastFailureAt.Before(now.Add(-c.rule.Window)) {
		return 0, nil
	}
	return blockedFor(th, c.rule, now), nil
}

// signal wakes every waiter at once: wait returns a channel that the next
// broadcast closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// LoginOptions protect the password grant, the slow and attackable path.
type LoginOptions struct {
	// MaxConcurrentHashes bounds argon2id checks running at once on this
	// instance (each holds ~19 MiB); 0 means the number of CPUs.
	MaxConcurrentHashes int
	// MaxQueuedHashes bounds the logins let in beyond the hash slots
	// (checking the throttle, or waiting for a slot); past it the server
	// sheds load at once, before any database work, with 503 and
	// Retry-After. 0 means 8 per slot.
	MaxQueuedHashes int
	// SharedHashProcessors leaves GOMAXPROCS alone. By default New gives
	// each hash slot a Go processor of its own (passhash.ReserveProcessors),
	// so that during a login flood other requests never wait behind hashes
	// for Go's 10 ms preemption; sharing gives more logins per second when
	// logins alone load the machine, and slower refreshes during a flood.
	SharedHashProcessors bool
	// FreeFailures failed logins per username, and per source address, are
	// free; each further one doubles the wait from BaseDelay, up to
	// MaxDelay. Failures older than FailureWindow are forgotten.
	// Zero values take the defaults 5, 1s, 15m and 1h.
	FreeFailures  int
	BaseDelay     time.Duration
	MaxDelay      time.Duration
	FailureWindow time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a request's source address.
	TrustedProxies []netip.Prefix
}

func (o LoginOptions) withDefaults(cpus int) LoginOptions {
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = cpus
	}
	if o.MaxQueuedHashes <= 0 {
		o.MaxQueuedHashes = 8 * o.MaxConcurrentHashes
	}
	if o.FreeFailures <= 0 {
		o.FreeFailures = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 15 * time.Minute
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Hour
	}
	return o
}

// throttle slows password guessing (RFC 6749 §4.3.2: the authorization
// server MUST protect the endpoint against brute force). Failed logins are
// counted per username and per source address in the database, so every
// instance sees the same counts and spreading guesses over instances gains
// nothing. Because a username's counter also delays its owner, the delay
// is capped at MaxDelay: the longest anyone can lock a user out.
type throttle struct {
	store storage.Store
	opts  LoginOptions
	now   func() time.Time
}

// throttleKeys are the counters a login attempt touches: its username
// (hashed, so arbitrary input makes a fixed-size key) and its source
// address (an IPv6 client is counted by its /64, which one host controls).
func throttleKeys(username string, addr netip.Addr) (user, source string) {
	h := sha256.Sum256([]byte(username))
	user = "user:" + hex.EncodeToString(h[:16])
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return user, "addr:" + p.String()
	}
	return user, "addr:" + addr.Unmap().String()
}

// check returns how long the most blocked of keys must still wait (0: the
// login may proceed).
func (t *throttle) check(ctx context.Context, keys ...string) (time.Duration, error) {
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		th, err := t.store.GetThrottle(ctx, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("login throttle: %w", err)
		}
		if until := t.blockedUntil(th, now); until.After(now) {
			wait = max(wait, until.Sub(now))
		}
	}
	return wait, nil
}

// blockedUntil is when a key with th's failures may try again.
func (t *throttle) blockedUntil(th storage.Throttle, now time.Time) time.Time {
	over := th.Failures - t.opts.FreeFailures
	if over <= 0 || th.LastFailureAt.Before(now.Add(-t.opts.FailureWindow)) {
		return time.Time{}
	}
	d := t.opts.MaxDelay
	if over <= 30 {
		d = min(t.opts.BaseDelay<<(over-1), t.opts.MaxDelay)
	}
	return th.LastFailureAt.Add(d)
}

// failed records a failed login against every key.
func (t *throttle) failed(ctx context.Context, keys ...string) error {
	now := t.now()
	for _, k := range keys {
		if _, err := t.store.AddLoginFailure(ctx, k, now, now.Add(-t.opts.FailureWindow)); err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
	}
	return nil
}

// hashSlots bounds concurrent password hashing, and the logins admitted to
// wait for it: a flood is shed at the door, before any database work, and
// never starves refreshes of CPU or the process of memory. Shedding is
// cheap so that a flood that keeps retrying spends the CPU on hashes, not
// on refusals (BENCHMARKS.md: c=64 password run).
type hashSlots struct {
	slots       chan struct{}
	admitted    atomic.Int64
	maxAdmitted int64 // slots + queue places
}

func newHashSlots(concurrent, queued int) *hashSlots {
	return &hashSlots{slots: make(chan struct{}, concurrent), maxAdmitted: int64(concurrent + queued)}
}

var errHashingBusy = errTemporarilyUnavailable("too many logins at once; retry shortly", time.Second)

// admit lets one login in, or refuses it at once when every slot and every
// queue place is taken. leave must be called when the login is done,
// hashed or not.
func (h *hashSlots) admit() (leave func(), err error) {
	if h.admitted.Add(1) > h.maxAdmitted {
		h.admitted.Add(-1)
		return nil, errHashingBusy
	}
	return func() { h.admitted.Add(-1) }, nil
}

// acquire takes a slot for an admitted login, waiting for one; release
// gives it back. A login whose request ends while it waits is shed.
func (h *hashSlots) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-ctx.Done():
		return nil, errHashingBusy
	}
}

// clientAddr is a request's source address: the peer's, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For address that is not
// one (addresses further left are whatever the client claimed).
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a malformed hop: trust nothing beyond the last proxy
		}
		if a = a.Unmap(); !isTrusted(a, trusted) {
			return a
		}
		addr = a
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

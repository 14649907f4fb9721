package throttle

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// rememberEvery is how often a login from a known address refreshes when
// it was last seen.
const rememberEvery = 24 * time.Hour

// Login is one password login's reservations, taken by BeginLogin before
// its password is hashed and ended by exactly one of Fail, Succeed or
// Refund.
type Login struct {
	at            *attempt
	userKey, addr string
	known         bool
	seen          time.Time
}

// BeginLogin counts a login of username from addr (the zero Addr when
// unknown) before its password is hashed (RFC 6749 §4.3.2: protect the
// endpoint against brute force). Its counters are (username, address),
// reset by a success; and, unless addr is known for the user (the user
// logged in from it within KnownAddressTTL, DESIGN.md §7), the username
// across addresses and the address across usernames. The error is a
// *Refused or the database's.
func (t *Throttle) BeginLogin(ctx context.Context, addr netip.Addr, username string) (*Login, error) {
	l := &Login{userKey: userKey(username), addr: addressKey(addr)}
	seen, err := t.store.AddressLastSeen(ctx, l.userKey, l.addr)
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	l.seen = seen
	l.known = !seen.IsZero() && t.now().Sub(seen) <= t.opts.KnownAddressTTL
	if l.at, err = t.reserve(ctx, t.loginCounters(username, l.addr, l.known)); err != nil {
		return nil, err
	}
	return l, nil
}

// Fail counts the login as a failure on every counter.
func (l *Login) Fail(ctx context.Context) error { return l.at.resolve(ctx, true) }

// Refund ends a login that was not judged (a database error, a hash
// error): nothing is counted, nothing reset.
func (l *Login) Refund(ctx context.Context) { l.at.refund(ctx) }

// Succeed refunds the login's reservations (resetting its (username,
// address) counter), and remembers the address for the user, so that it
// now passes the username's bar (recorded at most once a day per address:
// a write fewer on most logins).
func (l *Login) Succeed(ctx context.Context) error {
	if err := l.at.resolve(ctx, false); err != nil {
		return err
	}
	t := l.at.t
	if now := t.now(); !l.known || now.Sub(l.seen) >= rememberEvery {
		if err := t.store.RememberAddress(ctx, l.userKey, l.addr, now, t.opts.KnownAddresses); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
	}
	return nil
}

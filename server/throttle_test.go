package server_test

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
)

// behindProxy trusts loopback as a proxy, so each request's
// X-Forwarded-For names its source address.
func behindProxy(o *server.Options) {
	o.Login.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

func (ts *testServer) loginFrom(addr, user, pass string) reply {
	ts.t.Helper()
	return ts.do(call{auth: confA, form: pw(user, pass), xff: addr})
}

// wantThrottled asserts 429 with a Retry-After of want seconds.
func wantThrottled(t *testing.T, r reply, want int) {
	t.Helper()
	wantError(t, r, 429, "temporarily_unavailable")
	if got, _ := strconv.Atoi(r.header.Get("Retry-After")); got != want {
		t.Fatalf("Retry-After = %q, want %d", r.header.Get("Retry-After"), want)
	}
}

// TestLoginThrottlePerUsername: after five free failures each further one
// doubles the wait; while blocked even the right password is refused
// without being checked; after the wait it works and clears the count.
func TestLoginThrottlePerUsername(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	for i := range 6 { // from six addresses: only the username's count matters here
		wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "wrong"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom("203.0.113.9", "ada", userPass), 1)
	ts.clock.Advance(time.Second)
	if r := ts.loginFrom("203.0.113.9", "ada", userPass); r.status != 200 {
		t.Fatalf("after the delay: %d %s", r.status, r.body)
	}
	// The success cleared the username's count: five free failures again.
	for i := range 5 {
		wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+10), "ada", "wrong"), 400, "invalid_grant")
	}
	if r := ts.loginFrom("203.0.113.9", "ada", userPass); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestLoginThrottleDelaysDoubleUpToTheCap(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) {
		behindProxy(o)
		o.Login.MaxDelay = 30 * time.Second
	})
	for i := range 5 {
		wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "wrong"), 400, "invalid_grant")
	}
	for i, want := range []int{1, 2, 4, 8, 16, 30, 30, 30} {
		wantError(t, ts.loginFrom("198.51.100.10"+strconv.Itoa(i), "ada", "wrong"), 400, "invalid_grant")
		wantThrottled(t, ts.loginFrom("192.0.2.1", "ada", userPass), want)
		ts.clock.Advance(time.Duration(want) * time.Second)
	}
	// However long an attacker keeps failing, the owner waits at most the cap.
	if r := ts.loginFrom("192.0.2.1", "ada", userPass); r.status != 200 {
		t.Fatalf("owner locked out past the cap: %d %s", r.status, r.body)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	ts.addUser("bob", userPass)
	for i := range 6 { // six usernames from one address
		wantError(t, ts.loginFrom("198.51.100.7", "user"+strconv.Itoa(i), "guess"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom("198.51.100.7", "bob", userPass), 1)
	// Another address is not affected, nor is bob.
	if r := ts.loginFrom("198.51.100.8", "bob", userPass); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// An IPv6 client is counted by its /64.
	for i := range 6 {
		wantError(t, ts.loginFrom("2001:db8:1:2::"+strconv.Itoa(i+1), "user"+strconv.Itoa(i), "guess"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom("2001:db8:1:2::ffff", "bob", userPass), 1)
}

// TestLoginThrottleIgnoresUntrustedForwardedFor: without trusted proxies
// the peer address counts, whatever X-Forwarded-For claims.
func TestLoginThrottleIgnoresUntrustedForwardedFor(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ts.addUser("bob", userPass)
	for i := range 6 {
		wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "user"+strconv.Itoa(i), "guess"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom("203.0.113.1", "bob", userPass), 1)
}

// TestLoginThrottleSharedAcrossInstances: two servers on one database see
// one count, so spreading guesses over instances gains nothing.
func TestLoginThrottleSharedAcrossInstances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			store := openStore(t, b)
			a := newTestServerOn(t, store, behindProxy)
			c := newTestServerOn(t, store, behindProxy)
			for i := range 6 {
				ts := []*testServer{a, c}[i%2]
				wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "wrong"), 400, "invalid_grant")
			}
			wantThrottled(t, a.loginFrom("192.0.2.1", "ada", userPass), 1)
			wantThrottled(t, c.loginFrom("192.0.2.1", "ada", userPass), 1)
		})
	}
}

// TestThrottleLeavesRefreshAlone: a throttled username does not stop its
// existing sessions from refreshing.
func TestThrottleLeavesRefreshAlone(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	rt := ts.login(confA).str("refresh_token")
	last := 0
	for i := range 7 {
		last = ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "wrong").status
	}
	if last != 429 {
		t.Fatalf("the 7th bad login: %d, want 429 (the username is throttled)", last)
	}
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestHealthAndReady(t *testing.T) {
	ts := newTestServer(t, sqlite)
	for _, path := range []string{server.PathHealth, server.PathReady} {
		r := ts.do(call{method: "GET", path: path})
		if r.status != 200 || r.str("status") != "ok" {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	notReady := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) {
		o.Ready = func(context.Context) error { return errors.New("schema version 1, want 2") }
	})
	r := notReady.do(call{method: "GET", path: server.PathReady})
	if r.status != 503 || string(r.body) != "{\"status\":\"unavailable\"}\n" {
		t.Fatalf("readyz: %d %s, want 503 without the cause", r.status, r.body)
	}
}

// TestLoginBurstCannotOutrunTheThrottle: guesses fired in parallel at one
// username are checked one at a time, so no more than the free failures
// (and the one that trips the delay) are ever checked.
func TestLoginBurstCannotOutrunTheThrottle(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			statuses <- ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "guess"+strconv.Itoa(i)).status
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		switch s {
		case 400:
			checked++
		case 429:
		default:
			t.Errorf("status %d", s)
		}
	}
	if checked < 1 || checked > 6 {
		t.Fatalf("%d passwords checked in a burst, want 1 to 6 (5 free + 1)", checked)
	}
}

package server_test

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage/passhash"
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

// TestLoginThrottleDelaysDoubleUpToTheCap: per (username, address), five
// free failures, then one attempt at a time after a wait that doubles from
// base_delay up to max_delay; while held back even the right password is
// refused without being checked.
func TestLoginThrottleDelaysDoubleUpToTheCap(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) {
		behindProxy(o)
		o.Login.MaxDelay = 30 * time.Second
	})
	const addr = "198.51.100.1"
	for range 5 {
		wantError(t, ts.loginFrom(addr, "ada", "wrong"), 400, "invalid_grant")
	}
	for _, want := range []int{1, 2, 4, 8, 16, 30, 30, 30} {
		wantThrottled(t, ts.loginFrom(addr, "ada", userPass), want)
		ts.clock.Advance(time.Duration(want) * time.Second)
		wantError(t, ts.loginFrom(addr, "ada", "wrong"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom(addr, "ada", userPass), 30)
	// However long an attacker keeps failing, the owner waits at most the cap.
	ts.clock.Advance(30 * time.Second)
	if r := ts.loginFrom(addr, "ada", userPass); r.status != 200 {
		t.Fatalf("owner locked out past the cap: %d %s", r.status, r.body)
	}
	// The success reset the pair: five free failures again.
	for range 5 {
		wantError(t, ts.loginFrom(addr, "ada", "wrong"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom(addr, "ada", userPass), 1)
}

// TestLoginThrottlePerUsername: failures spread over many addresses reach
// the username's bar; an address new to the user is then held back.
func TestLoginThrottlePerUsername(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, withLimits(0, 8, 0))
	for i := range 8 {
		wantError(t, ts.loginFrom("198.51.100."+strconv.Itoa(i+1), "ada", "wrong"), 400, "invalid_grant")
	}
	wantThrottled(t, ts.loginFrom("203.0.113.9", "ada", userPass), 1)
	ts.clock.Advance(time.Second)
	if r := ts.loginFrom("203.0.113.9", "ada", userPass); r.status != 200 {
		t.Fatalf("after the delay: %d %s", r.status, r.body)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, withLimits(0, 0, 6))
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
	ts := newTestServerOn(t, openStore(t, sqlite), withLimits(0, 0, 6))
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
			for i := range 5 {
				ts := []*testServer{a, c}[i%2]
				wantError(t, ts.loginFrom("198.51.100.1", "ada", "wrong"), 400, "invalid_grant")
			}
			wantThrottled(t, a.loginFrom("198.51.100.1", "ada", userPass), 1)
			wantThrottled(t, c.loginFrom("198.51.100.1", "ada", userPass), 1)
		})
	}
}

// TestThrottleLeavesRefreshAlone: a throttled username does not stop its
// existing sessions from refreshing.
func TestThrottleLeavesRefreshAlone(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	rt := ts.login(confA).str("refresh_token")
	last := 0
	for range 6 {
		last = ts.loginFrom("198.51.100.1", "ada", "wrong").status
	}
	if last != 429 {
		t.Fatalf("the 6th bad login: %d, want 429 (throttled)", last)
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

// burst fires the logins at once (each from addr, as user, with
// password) spread over the servers, and returns how many passwords were
// checked (400) and refused (429); anything else fails the test.
func burst(t *testing.T, servers []*testServer, logins [][3]string) (checked, refused int) {
	t.Helper()
	statuses := make([]reply, len(logins))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, l := range logins {
		wg.Go(func() {
			<-start
			statuses[i] = servers[i%len(servers)].loginFrom(l[0], l[1], l[2])
		})
	}
	close(start)
	wg.Wait()
	return tally(t, statuses, 400, "invalid_grant")
}

// tally counts the replies that were answered (status and OAuth error
// code) and those refused with 429 and Retry-After; any other reply fails
// the test.
func tally(t *testing.T, replies []reply, status int, code string) (answered, refused int) {
	t.Helper()
	for _, r := range replies {
		switch {
		case r.status == status && r.str("error") == code:
			answered++
		case r.status == 429 && r.header.Get("Retry-After") != "":
			refused++
		default:
			t.Errorf("status %d %s", r.status, r.body)
		}
	}
	return answered, refused
}

// bigQueue admits every login of a burst (none shed with 503), and gives
// each request a minute of database time instead of the default 5s, so
// that a slow machine (the race detector on a loaded CI runner) cannot turn
// the count these tests make into 503s.
func bigQueue(o *server.Options) {
	o.Hashes = passhash.NewLimiter(0, 128)
	o.RequestTimeout = time.Minute
}

// TestConcurrentCorrectLoginsAllSucceed: ten parallel logins with the right
// password for one user from one address all get tokens (issue 11, 1).
func TestConcurrentCorrectLoginsAllSucceed(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServerOn(t, openStore(t, b), behindProxy, bigQueue)
			const n = 10
			replies := make([]reply, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					replies[i] = ts.loginFrom("198.51.100.1", "ada", userPass)
				})
			}
			close(start)
			wg.Wait()
			for i, r := range replies {
				if r.status != 200 || r.str("access_token") == "" {
					t.Errorf("login %d: %d %s", i, r.status, r.body)
				}
			}
		})
	}
}

// TestLoginBurstChecksOnlyTheFreeFailures: twenty wrong passwords fired at
// once for one (username, address) check exactly the free number; the
// rest are refused without a hash (issue 11, 2).
func TestLoginBurstChecksOnlyTheFreeFailures(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServerOn(t, openStore(t, b), behindProxy, bigQueue, withLimits(8, 0, 0))
			logins := make([][3]string, 20)
			for i := range logins {
				logins[i] = [3]string{"198.51.100.1", "ada", "guess" + strconv.Itoa(i)}
			}
			if checked, refused := burst(t, []*testServer{ts}, logins); checked != 8 || refused != 12 {
				t.Fatalf("burst: %d passwords checked, %d refused; want 8 and 12", checked, refused)
			}
		})
	}
}

// TestLoginSprayFromOneAddress: forty usernames guessed at once from one
// address check no more passwords than the address's bar.
func TestLoginSprayFromOneAddress(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, bigQueue, withLimits(0, 0, 3))
	logins := make([][3]string, 40)
	for i := range logins {
		logins[i] = [3]string{"198.51.100.1", "user" + strconv.Itoa(i), "guess"}
	}
	if checked, refused := burst(t, []*testServer{ts}, logins); checked != 3 || refused != 37 {
		t.Fatalf("spray: %d passwords checked, %d refused; want 3 and 37", checked, refused)
	}
}

// TestLoginBurstAcrossInstances: the burst limit holds across two servers
// on one database.
func TestLoginBurstAcrossInstances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			store := openStore(t, b)
			servers := []*testServer{
				newTestServerOn(t, store, behindProxy, bigQueue, withLimits(8, 0, 0)),
				newTestServerOn(t, store, behindProxy, bigQueue, withLimits(8, 0, 0)),
			}
			logins := make([][3]string, 24)
			for i := range logins {
				logins[i] = [3]string{"198.51.100.1", "ada", "guess" + strconv.Itoa(i)}
			}
			if checked, refused := burst(t, servers, logins); checked != 8 || refused != 16 {
				t.Fatalf("burst over two instances: %d passwords checked, %d refused; want 8 and 16", checked, refused)
			}
		})
	}
}

// TestStrangerCannotLockOwnerOut: a stranger failing on the owner's
// username from ever new addresses, again after each wait, cannot stop the
// owner logging in from an address they logged in from before (issue 11, 3).
func TestStrangerCannotLockOwnerOut(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, withLimits(0, 8, 0))
	const home = "192.0.2.10"
	if r := ts.loginFrom(home, "ada", userPass); r.status != 200 {
		t.Fatalf("first login: %d %s", r.status, r.body)
	}
	addr := 0
	for round := range 3 {
		for range 12 {
			addr++
			r := ts.loginFrom("198.51.100."+strconv.Itoa(addr), "ada", "wrong")
			if r.status != 400 && r.status != 429 {
				t.Fatalf("stranger: %d %s", r.status, r.body)
			}
		}
		// The username's bar holds strangers (and new addresses) back...
		if r := ts.loginFrom("203.0.113.1", "ada", userPass); r.status != 429 {
			t.Fatalf("round %d: a new address past the username's bar: %d, want 429", round, r.status)
		}
		// ...but not the owner at home.
		if r := ts.loginFrom(home, "ada", userPass); r.status != 200 {
			t.Fatalf("round %d: owner at a known address: %d %s", round, r.status, r.body)
		}
		ts.clock.Advance(15 * time.Minute) // the wait ends; the stranger starts again
	}
}

// TestOfficeNotLockedOutByOneColleague: failures against one username from
// an office's one address hold back that username there, not the office.
func TestOfficeNotLockedOutByOneColleague(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	ts.addUser("bob", userPass)
	const office = "198.51.100.50"
	for range 12 {
		ts.clock.Advance(time.Minute)
		r := ts.loginFrom(office, "bob", "wrong")
		if r.status != 400 && r.status != 429 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if r := ts.loginFrom(office, "ada", userPass); r.status != 200 {
		t.Fatalf("a colleague at the office: %d %s", r.status, r.body)
	}
	if r := ts.loginFrom(office, "bob", userPass); r.status != 429 {
		t.Fatalf("bob at the office after the guesses: %d, want 429", r.status)
	}
	if r := ts.loginFrom("192.0.2.1", "bob", userPass); r.status != 200 {
		t.Fatalf("bob elsewhere: %d %s", r.status, r.body)
	}
}

// TestOfficeNotLockedOutBySprayer: someone at an office's one address
// spraying wrong passwords over many usernames spends the address's bar,
// and new logins from there are held back; but colleagues who have logged
// in from the office before still log in there (the non-negotiable: no
// lockout of an office).
func TestOfficeNotLockedOutBySprayer(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, func(o *server.Options) {
		o.Login.AddressFailures = 10
	})
	const office = "198.51.100.50"
	if r := ts.loginFrom(office, "ada", userPass); r.status != 200 {
		t.Fatalf("ada at the office, first time: %d %s", r.status, r.body)
	}
	ts.addUser("newcomer", userPass)
	for i := range 30 {
		ts.clock.Advance(time.Second)
		r := ts.loginFrom(office, "victim"+strconv.Itoa(i), "wrong")
		if r.status != 400 && r.status != 429 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if r := ts.loginFrom(office, "newcomer", userPass); r.status != 429 {
		t.Fatalf("a first login from the sprayed address: %d, want 429", r.status)
	}
	if r := ts.loginFrom(office, "ada", userPass); r.status != 200 {
		t.Fatalf("ada at the office after the spraying: %d %s", r.status, r.body)
	}
}

// TestBackoffAtExtremeSettings: with a one-hour base delay the doubling
// never wraps negative or to zero however many failures (issue 11, 7):
// every wait is positive, at most max_delay, and reaches it.
func TestBackoffAtExtremeSettings(t *testing.T) {
	const maxDelay = 1000 * time.Hour
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy, func(o *server.Options) {
		o.Login.BaseDelay, o.Login.MaxDelay, o.Login.FailureWindow = time.Hour, maxDelay, 100000*time.Hour
	})
	const addr = "198.51.100.1"
	// Fail until held back, then, each time the wait ends, once more.
	r := ts.loginFrom(addr, "ada", "wrong")
	for n := 0; r.status == 400; n++ {
		if n > 10 {
			t.Fatal("never held back")
		}
		r = ts.loginFrom(addr, "ada", "wrong")
	}
	prev := 0
	for i := range 70 {
		wantError(t, r, 429, "temporarily_unavailable")
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs <= 0 || secs > int(maxDelay/time.Second) || secs < prev {
			t.Fatalf("round %d: Retry-After %q (previous %d), want in [previous, %d]",
				i, r.header.Get("Retry-After"), prev, int(maxDelay/time.Second))
		}
		prev = secs
		ts.clock.Advance(time.Duration(secs) * time.Second)
		wantError(t, ts.loginFrom(addr, "ada", "wrong"), 400, "invalid_grant")
		r = ts.loginFrom(addr, "ada", "wrong") // at once: held back again
	}
	if prev != int(maxDelay/time.Second) {
		t.Fatalf("the wait never reached max_delay: %d", prev)
	}
}

// TestClientAuthThrottledPerClientAndAddress: wrong secrets for a
// confidential client with a guessable secret from one address get 429 after the free failures,
// and so does the right one from there; from another address the client
// still authenticates.
func TestClientAuthThrottledPerClientAndAddress(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	cc := url.Values{"grant_type": {"client_credentials"}}
	human := basic("human", humanSecret)
	from := func(addr, auth string) reply {
		return ts.do(call{auth: auth, form: cc, xff: addr})
	}
	for range 5 {
		wantError(t, from("198.51.100.1", basic("human", "wrong")), 401, "invalid_client")
	}
	wantThrottled(t, from("198.51.100.1", basic("human", "wrong")), 1)
	wantThrottled(t, from("198.51.100.1", human), 1)
	if r := from("198.51.100.2", human); r.status != 200 {
		t.Fatalf("the client from another address: %d %s", r.status, r.body)
	}
	// The secret in the body is counted the same way.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"human"}, "client_secret": {"wrong"}}
	wantThrottled(t, ts.do(call{form: form, xff: "198.51.100.1"}), 1)
	// After the wait, the right secret works and resets the count.
	ts.clock.Advance(time.Second)
	if r := from("198.51.100.1", human); r.status != 200 {
		t.Fatalf("after the wait: %d %s", r.status, r.body)
	}
	wantError(t, from("198.51.100.1", basic("human", "wrong")), 401, "invalid_client")
	// Unknown client ids are not counted (nothing to protect).
	for range 8 {
		wantError(t, from("198.51.100.1", basic("nobody", "wrong")), 401, "invalid_client")
	}
}

// TestClientAuthBurstAnswersOnlyTheFreeFailures: wrong secrets fired at
// once for one client with a guessable secret from one address get no more answers than the free
// failures; the rest are 429.
func TestClientAuthBurstAnswersOnlyTheFreeFailures(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ts := newTestServerOn(t, openStore(t, b), behindProxy)
			const n = 20
			replies := make([]reply, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					replies[i] = ts.do(call{auth: basic("human", "guess"+strconv.Itoa(i)),
						form: url.Values{"grant_type": {"client_credentials"}}, xff: "198.51.100.1"})
				})
			}
			close(start)
			wg.Wait()
			answered, refused := tally(t, replies, 401, "invalid_client")
			if answered != 5 || refused != n-5 {
				t.Fatalf("%d wrong secrets answered, %d refused; want 5 and %d", answered, refused, n-5)
			}
		})
	}
}

// TestGeneratedClientSecretNotThrottled: a generated 256-bit secret is
// beyond online guessing, so its client is never held back and its
// requests never read the throttle (DESIGN.md decision D12): wrong secrets
// are all answered 401, and the right one still works from that address.
func TestGeneratedClientSecretNotThrottled(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), behindProxy)
	cc := url.Values{"grant_type": {"client_credentials"}}
	for range 12 {
		wantError(t, ts.do(call{auth: basic("cc-only", "wrong"), form: cc, xff: "198.51.100.1"}), 401, "invalid_client")
	}
	if r := ts.do(call{auth: basic("cc-only", ccSecret), form: cc, xff: "198.51.100.1"}); r.status != 200 {
		t.Fatalf("the right secret after wrong ones: %d %s", r.status, r.body)
	}
	// No counter was written: deleting every throttle row deletes none.
	if n, err := ts.store.DeleteThrottles(t.Context(), ts.clock.Now().Add(time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("throttle rows written for a client with a generated secret: %d, %v", n, err)
	}
}

package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// The tests here refresh ktr2 tokens (DESIGN.md §2) on an instance that has
// never seen the session: the login happens on instance a, every refresh on
// another instance over the same database, so nothing of the session can be
// in that instance's memory.

// unseen is a store shared by a login instance and fresh instances.
type unseen struct {
	t     *testing.T
	store storage.Store
	a     *testServer
}

func newUnseen(t *testing.T, b backend) *unseen {
	store := openStore(t, b)
	return &unseen{t: t, store: store, a: newTestServerOn(t, store, nil)}
}

// fresh is an instance that has seen no session.
func (u *unseen) fresh() *testServer { return newTestServerOn(u.t, u.store, nil) }

// login opens a session on a as the client auth names and returns its
// ktr2 refresh token and session id.
func (u *unseen) login(auth string) (rt, sid string) {
	u.t.Helper()
	r := u.a.login(auth)
	rt = r.str("refresh_token")
	if !strings.HasPrefix(rt, "ktr2.") {
		u.t.Fatalf("login issued %q, want a ktr2 refresh token", rt)
	}
	return rt, u.a.verifyAccessToken(r.str("access_token")).SessionID
}

func (u *unseen) family(sid string) storage.Family {
	u.t.Helper()
	f, err := u.store.GetFamily(u.t.Context(), sid)
	if err != nil {
		u.t.Fatal(err)
	}
	return f
}

// untouched fails unless session sid is live, unrevoked, at generation gen.
func (u *unseen) untouched(sid string, gen uint64) {
	u.t.Helper()
	if f := u.family(sid); f.Revoked() || f.Generation != gen {
		u.t.Fatalf("the session changed: revoked %v (%s), generation %d, want %d",
			f.Revoked(), f.RevokeReason, f.Generation, gen)
	}
}

// refreshed refreshes rt on ts and returns the successor, a ktr2 token.
func refreshed(t *testing.T, ts *testServer, auth, rt string) string {
	t.Helper()
	r := ts.token(auth, refresh(rt))
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	next := r.str("refresh_token")
	if !strings.HasPrefix(next, "ktr2.") || next == rt {
		t.Fatalf("successor %q, want a new ktr2 token", next)
	}
	return next
}

// flipMAC changes one byte of a refresh token's MAC, keeping its spelling canonical.
func flipMAC(rt string) string {
	i := strings.LastIndexByte(rt, '.') + 1
	c := byte('A')
	if rt[i] == 'A' {
		c = 'B'
	}
	return rt[:i] + string(c) + rt[i+1:]
}

func TestUnseenSessionRefresh(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { unseenSessionRefresh(t, b) })
	}
}

func unseenSessionRefresh(t *testing.T, b backend) {
	u := newUnseen(t, b)
	grace := basic("grace", graceSecret)

	t.Run("rotation", func(t *testing.T) {
		rt0, sid := u.login(confA)
		rt1 := refreshed(t, u.fresh(), confA, rt0)
		refreshed(t, u.fresh(), confA, rt1)
		u.untouched(sid, 2)
	})
	// RFC 9700 §4.14.2: a rotated token presented again revokes the session.
	t.Run("reuse", func(t *testing.T) {
		rt0, sid := u.login(confA)
		rt1 := refreshed(t, u.fresh(), confA, rt0)
		wantError(t, u.fresh().token(confA, refresh(rt0)), 400, "invalid_grant")
		if f := u.family(sid); f.RevokeReason != storage.ReasonReuse {
			t.Fatalf("after reuse: %+v, want revoked for reuse", f)
		}
		wantError(t, u.fresh().token(confA, refresh(rt1)), 400, "invalid_grant")
	})
	t.Run("grace", func(t *testing.T) {
		rt0, sid := u.login(grace)
		rt1 := refreshed(t, u.fresh(), grace, rt0)
		c := u.fresh()
		c.clock.Advance(5 * time.Second)
		if r := c.token(grace, refresh(rt0)); r.status != 200 || r.str("refresh_token") != rt1 {
			t.Fatalf("grace retry: %d %s, want the same successor", r.status, r.body)
		}
		u.untouched(sid, 1)
		d := u.fresh()
		d.clock.Advance(11 * time.Second) // outside the window: reuse
		wantError(t, d.token(grace, refresh(rt0)), 400, "invalid_grant")
		if f := u.family(sid); f.RevokeReason != storage.ReasonReuse {
			t.Fatalf("after the window: %+v, want revoked for reuse", f)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		rt0, sid := u.login(confA)
		c := u.fresh()
		c.clock.Advance(120*time.Hour + time.Second) // conf-a's idle TTL
		wantError(t, c.token(confA, refresh(rt0)), 400, "invalid_grant")
		u.untouched(sid, 0) // expired, not revoked
	})
	t.Run("revocation", func(t *testing.T) {
		rt0, sid := u.login(confA)
		if err := u.store.RevokeFamily(t.Context(), sid, storage.ReasonAdmin, u.a.clock.Now()); err != nil {
			t.Fatal(err)
		}
		wantError(t, u.fresh().token(confA, refresh(rt0)), 400, "invalid_grant")
		if f := u.family(sid); f.RevokeReason != storage.ReasonAdmin || f.Generation != 0 {
			t.Fatalf("after revocation: %+v", f)
		}
	})
	// A genuine token of a session that does not exist (deleted by the
	// sweeper, say) is invalid_grant (RFC 6749 §5.2), not a 500.
	t.Run("unknown session", func(t *testing.T) {
		gone := u.a.keys.RefreshToken(storage.Family{ID: tokens.NewID(), ClientID: "conf-a"}, 3)
		wantError(t, u.fresh().token(confA, refresh(gone)), 400, "invalid_grant")
	})
	// RFC 6749 §6 / §10.4: another client's token is refused and ends nothing.
	t.Run("client binding", func(t *testing.T) {
		rt0, sid := u.login(confA)
		wantError(t, u.fresh().token(basic("conf-b", confBSecret), refresh(rt0)), 400, "invalid_grant")
		wantError(t, u.fresh().token(grace, refresh(rt0)), 400, "invalid_grant")
		u.untouched(sid, 0)
		refreshed(t, u.fresh(), confA, rt0)
	})
	t.Run("a forged token revokes nothing", func(t *testing.T) {
		rt0, sid := u.login(confA)
		rt1 := refreshed(t, u.fresh(), confA, rt0)
		f := u.family(sid)
		other := servertest.Keys(t, sqlstoretest.SQLite(t), 8, keys.Options{Now: u.a.clock.Now})
		for name, forged := range map[string]string{
			"flipped mac, current":     flipMAC(rt1),
			"flipped mac, rotated":     flipMAC(rt0),
			"another key, current":     other.RefreshToken(f, 1),
			"another key, rotated":     other.RefreshToken(f, 0),
			"ktr1 spelling, current":   "ktr1" + strings.TrimPrefix(rt1, "ktr2"),
			"ktr1 spelling, rotated":   "ktr1" + strings.TrimPrefix(rt0, "ktr2"),
			"genuine, from the future": u.a.keys.RefreshToken(f, 2),
		} {
			wantError(t, u.fresh().token(confA, refresh(forged)), 400, "invalid_grant")
			t.Log(name)
			u.untouched(sid, 1)
		}
		refreshed(t, u.fresh(), confA, rt1)
	})
}

// TestKTR1StillRefreshes: a ktr1 token issued before ktr2 refreshes (read
// first) on any instance, its successor is ktr2, and its reuse, forgery and
// client binding are decided as before. ktr1: delete with it.
func TestKTR1StillRefreshes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			u := newUnseen(t, b)
			_, sid := u.login(confA)
			f := u.family(sid)
			v1 := u.a.keys.RefreshTokenV1(f, 0)
			if !strings.HasPrefix(v1, "ktr1.") {
				t.Fatalf("minted %q, want ktr1", v1)
			}
			wantError(t, u.fresh().token(confA, refresh(flipMAC(v1))), 400, "invalid_grant")
			wantError(t, u.fresh().token(basic("conf-b", confBSecret), refresh(v1)), 400, "invalid_grant")
			u.untouched(sid, 0)
			next := refreshed(t, u.fresh(), confA, v1) // ktr2
			refreshed(t, u.a, confA, next)
			wantError(t, u.fresh().token(confA, refresh(v1)), 400, "invalid_grant") // reuse
			if f := u.family(sid); f.RevokeReason != storage.ReasonReuse {
				t.Fatalf("ktr1 reuse: %+v, want revoked for reuse", f)
			}
		})
	}
}

// callLog records the database operations of the server it serves: the
// real store underneath, only counted (every method a token request can
// reach).
type callLog struct {
	storage.Store
	mu    sync.Mutex
	calls []string
}

func (c *callLog) add(name string) { c.mu.Lock(); c.calls = append(c.calls, name); c.mu.Unlock() }

func (c *callLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

func (c *callLog) CreateFamily(ctx context.Context, f storage.Family) error {
	c.add("CreateFamily")
	return c.Store.CreateFamily(ctx, f)
}

func (c *callLog) GetFamily(ctx context.Context, id string) (storage.Family, error) {
	c.add("GetFamily")
	return c.Store.GetFamily(ctx, id)
}

func (c *callLog) RotateFamily(ctx context.Context, id string, gen uint64, now, idle time.Time) (storage.Family, error) {
	c.add("RotateFamily")
	return c.Store.RotateFamily(ctx, id, gen, now, idle)
}

func (c *callLog) RevokeFamily(ctx context.Context, id, reason string, now time.Time) error {
	c.add("RevokeFamily")
	return c.Store.RevokeFamily(ctx, id, reason, now)
}

func (c *callLog) GetUser(ctx context.Context, id string) (storage.User, error) {
	c.add("GetUser")
	return c.Store.GetUser(ctx, id)
}

func (c *callLog) GetUserByUsername(ctx context.Context, name string) (storage.User, error) {
	c.add("GetUserByUsername")
	return c.Store.GetUserByUsername(ctx, name)
}

func (c *callLog) CheckAccess(ctx context.Context, jti, familyID string) (storage.AccessCheck, error) {
	c.add("CheckAccess")
	return c.Store.CheckAccess(ctx, jti, familyID)
}

func (c *callLog) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	c.add("ListSigningKeys")
	return c.Store.ListSigningKeys(ctx)
}

func (c *callLog) SigningKeyRevocations(ctx context.Context) (storage.KeyRevocations, error) {
	c.add("SigningKeyRevocations")
	return c.Store.SigningKeyRevocations(ctx)
}

func (c *callLog) ReserveAttempts(ctx context.Context, keys []storage.Reservation, now time.Time) (storage.ReserveResult, error) {
	c.add("ReserveAttempts")
	return c.Store.ReserveAttempts(ctx, keys, now)
}

func (c *callLog) GetThrottle(ctx context.Context, key string) (storage.Throttle, error) {
	c.add("GetThrottle")
	return c.Store.GetThrottle(ctx, key)
}

func (c *callLog) ResolveAttempts(ctx context.Context, attempts []storage.Resolution, now time.Time) error {
	c.add("ResolveAttempts")
	return c.Store.ResolveAttempts(ctx, attempts, now)
}

func (c *callLog) RememberAddress(ctx context.Context, userKey, addr string, now time.Time, keep int) error {
	c.add("RememberAddress")
	return c.Store.RememberAddress(ctx, userKey, addr, now, keep)
}

func (c *callLog) AddressLastSeen(ctx context.Context, userKey, addr string) (time.Time, error) {
	c.add("AddressLastSeen")
	return c.Store.AddressLastSeen(ctx, userKey, addr)
}

func (c *callLog) Ping(ctx context.Context) error {
	c.add("Ping")
	return c.Store.Ping(ctx)
}

// TestKTR2RefreshIsOneStatement: a ktr2 refresh on an instance that never
// saw the session costs one database statement, the conditional UPDATE
// (RotateFamily, whose success is one UPDATE … RETURNING); a forged or
// another client's token costs none.
func TestKTR2RefreshIsOneStatement(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			u := newUnseen(t, b)
			rt0, _ := u.login(confA)
			log := &callLog{Store: u.store}
			c := newTestServerOn(t, log, nil)
			log.take() // the instance's start
			rt1 := refreshed(t, c, confA, rt0)
			if calls := log.take(); len(calls) != 1 || calls[0] != "RotateFamily" {
				t.Fatalf("a refresh on an unseen session: %v, want [RotateFamily]", calls)
			}
			wantError(t, c.token(confA, refresh(flipMAC(rt1))), 400, "invalid_grant")
			wantError(t, c.token(basic("conf-b", confBSecret), refresh(rt1)), 400, "invalid_grant")
			if calls := log.take(); len(calls) != 0 {
				t.Fatalf("refused forgeries: %v, want no database work", calls)
			}
		})
	}
}

// TestIntrospectRefreshBothVersions: introspection of refresh tokens
// (DESIGN.md decision D5) accepts ktr2 and ktr1 tokens, each active only to
// its own client while current; a tampered one is inactive.
func TestIntrospectRefreshBothVersions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			u := newUnseen(t, b)
			v2, sid := u.login(confBAuth)
			v1 := u.a.keys.RefreshTokenV1(u.family(sid), 0)
			c := u.fresh()
			for _, rt := range []string{v2, v1} {
				if r := c.wantActive(confBAuth, rt); r.json["client_id"] != "conf-b" || r.json["sid"] != sid {
					t.Fatalf("introspect %s: %s", rt[:4], r.body)
				}
				c.wantInactive(confBAuth, flipMAC(rt))
				c.wantInactive(rsAuth, rt) // another resource server
			}
			next := refreshed(t, c, confBAuth, v2)
			c.wantInactive(confBAuth, v2) // rotated away
			c.wantInactive(confBAuth, v1)
			u.fresh().wantActive(confBAuth, next)
			u.untouched(sid, 1)
		})
	}
}

package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
)

// countingStore counts the signing-key reads of the instance it serves:
// the real store underneath, only counted.
type countingStore struct {
	storage.Store
	lists, checks atomic.Int64
	// hold, if not nil, holds the first revocation check until it is
	// closed, after announcing it on entered.
	hold, entered chan struct{}
}

func (c *countingStore) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	c.lists.Add(1)
	return c.Store.ListSigningKeys(ctx)
}

func (c *countingStore) SigningKeyRevocations(ctx context.Context) (storage.KeyRevocations, error) {
	if c.checks.Add(1) == 1 && c.hold != nil {
		c.entered <- struct{}{}
		<-c.hold
	}
	return c.Store.SigningKeyRevocations(ctx)
}

func (c *countingStore) reads() (lists, checks int64) { return c.lists.Load(), c.checks.Load() }

func (c *countingStore) reset() { c.lists.Store(0); c.checks.Store(0) }

// revocationCheck is keys.revocationCheckInterval: how long another
// instance may take to see a revocation.
const revocationCheck = 2 * time.Second

func kidOf(t *testing.T, token string) string {
	t.Helper()
	p, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	return p.Headers[0].KeyID
}

// adminKeys is a Keys of its own on the instances' store, as `keyturn keys`
// opens one: it shares nothing with the servers but the database.
func adminKeys(t *testing.T, store storage.Store, clock *testClock) *keys.Keys {
	t.Helper()
	return servertest.Keys(t, store, 7, keys.Options{Now: clock.Now})
}

// jwksOf fetches the JWKS and checks its caching headers.
func (ts *testServer) jwksKids() []string {
	ts.t.Helper()
	resp, err := http.Get(ts.URL + server.PathJWKS)
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		ts.t.Errorf("JWKS Cache-Control = %q", cc)
	}
	var kids []string
	for _, k := range ts.jwks().Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRevokeSigningKeyTwoInstances: a key revoked through a third Keys (the
// CLI's) disappears from both instances' JWKS within the revocation check
// interval, tokens it signed introspect inactive there even though each
// instance remembered them as verified, both sign with the replacement, and
// sessions go on. Between checks no request reads the keys.
func TestRevokeSigningKeyTwoInstances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ctx := t.Context()
			store := openStore(t, b)
			ts1 := newTestServerOn(t, store, nil)
			counted := &countingStore{Store: store}
			ts2 := newTestServerOn(t, counted, nil)
			advance := func(d time.Duration) { ts1.clock.Advance(d); ts2.clock.Advance(d) }
			advance(time.Minute) // past keyCacheTTL: the next request reloads

			login := ts1.login(confA)
			at, rt := login.str("access_token"), login.str("refresh_token")
			old := kidOf(t, at)
			ts1.wantActive(rsAuth, at)
			ts2.wantActive(rsAuth, at) // now remembered as verified on both

			// Between checks, introspection and refresh read no key.
			counted.reset()
			for range 20 {
				ts2.clock.Advance(50 * time.Millisecond) // 1s in all
				ts2.wantActive(rsAuth, at)
			}
			r := ts2.token(confA, refresh(rt))
			if r.status != http.StatusOK {
				t.Fatalf("refresh: %d %s", r.status, r.body)
			}
			rt = r.str("refresh_token")
			if lists, checks := counted.reads(); lists != 0 || checks != 0 {
				t.Fatalf("21 requests within %s read the keys %d times and checked revocations %d times, want 0", revocationCheck, lists, checks)
			}
			ts2.clock.Advance(revocationCheck)
			ts2.wantActive(rsAuth, at)
			if lists, checks := counted.reads(); lists != 0 || checks != 1 {
				t.Fatalf("after %s: %d reloads, %d checks; want 0, 1", revocationCheck, lists, checks)
			}
			ts1.clock.Advance(time.Second + revocationCheck)

			admin := adminKeys(t, store, ts1.clock)
			res, err := admin.Revoke(ctx, old)
			if err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if res.ID != old || res.SignerID == "" || res.SignerID == old || !res.NewSigner || res.AlreadyRevoked {
				t.Fatalf("Revoke = %+v", res)
			}
			// The private half is gone from the database at once.
			rows, err := store.ListSigningKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				if row.ID == old && (!row.Revoked() || len(row.PrivateEncrypted) != 0) {
					t.Fatalf("revoked key row %+v keeps its private half or is not revoked", row)
				}
			}

			advance(revocationCheck)
			counted.reset()
			for i, ts := range []*testServer{ts1, ts2} {
				kids := ts.jwksKids()
				if contains(kids, old) || !contains(kids, res.SignerID) {
					t.Fatalf("instance %d: JWKS %v after revoking %s, want %s only", i+1, kids, old, res.SignerID)
				}
				ts.wantInactive(rsAuth, at)
				fresh := ts.login(confA).str("access_token")
				if kid := kidOf(t, fresh); kid != res.SignerID {
					t.Fatalf("instance %d signs with %s, want %s", i+1, kid, res.SignerID)
				}
				ts.verifyAccessToken(fresh)
				ts.wantActive(rsAuth, fresh)
			}
			if lists, checks := counted.reads(); lists != 1 || checks != 1 {
				t.Errorf("instance 2 learned of the revocation with %d reloads and %d checks, want 1 and 1", lists, checks)
			}
			// The session survives: its refresh token is not signed by the key.
			r = ts2.token(confA, refresh(rt))
			if r.status != http.StatusOK || kidOf(t, r.str("access_token")) != res.SignerID {
				t.Fatalf("refresh after revocation: %d %s", r.status, r.body)
			}

			infos, err := admin.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			states := map[string]string{}
			for _, k := range infos {
				states[k.ID] = k.State
			}
			if states[old] != "revoked" || states[res.SignerID] != "active" || len(states) != 2 {
				t.Errorf("keys list states = %v", states)
			}

			again, err := admin.Revoke(ctx, old)
			if err != nil || !again.AlreadyRevoked || !again.RevokedAt.Equal(res.RevokedAt) || again.SignerID != "" {
				t.Errorf("second Revoke = %+v, %v", again, err)
			}
			if _, err := admin.Revoke(ctx, "no-such-kid"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestRevokeSigningKeyPromotesPendingKey: when a rotated-in key is waiting
// out its rotation delay, revoking the signing key makes that key (already
// in resource servers' JWKS caches) sign at once instead of a new one.
func TestRevokeSigningKeyPromotesPendingKey(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ctx := t.Context()
	old := kidOf(t, ts.login(confA).str("access_token"))
	next, err := ts.keys.Rotate(ctx, keys.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(time.Minute)
	res, err := adminKeys(t, ts.store, ts.clock).Revoke(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if res.SignerID != next.ID || res.NewSigner {
		t.Fatalf("Revoke = %+v, want pending key %s to sign", res, next.ID)
	}
	ts.clock.Advance(revocationCheck)
	if kid := kidOf(t, ts.login(confA).str("access_token")); kid != next.ID {
		t.Fatalf("signing kid = %s, want the promoted %s", kid, next.ID)
	}
	if kids := ts.jwksKids(); len(kids) != 1 || kids[0] != next.ID {
		t.Fatalf("JWKS %v, want [%s]", kids, next.ID)
	}
}

// TestRevokePendingSigningKey: a pending key revoked before it signs is
// withdrawn from the JWKS and never signs; the current key signs on.
func TestRevokePendingSigningKey(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ctx := t.Context()
	cur := kidOf(t, ts.login(confA).str("access_token"))
	next, err := ts.keys.Rotate(ctx, keys.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(time.Minute)
	res, err := adminKeys(t, ts.store, ts.clock).Revoke(ctx, next.ID)
	if err != nil || res.SignerID != "" {
		t.Fatalf("Revoke(pending) = %+v, %v; want no new signer", res, err)
	}
	ts.clock.Advance(revocationCheck)
	if kids := ts.jwksKids(); len(kids) != 1 || kids[0] != cur {
		t.Fatalf("JWKS %v, want [%s]", kids, cur)
	}
	ts.clock.Advance(2 * time.Hour) // past when the revoked key would have signed
	at := ts.login(confA).str("access_token")
	if kid := kidOf(t, at); kid != cur {
		t.Fatalf("signing kid = %s, want %s", kid, cur)
	}
	ts.verifyAccessToken(at)
	if kids := ts.jwksKids(); strings.Join(kids, ",") != cur {
		t.Fatalf("JWKS %v, want [%s]", kids, cur)
	}
}

// TestRevokedKeyNeverSigns: a signing key revoked with no replacement (the
// replacement deleted by hand) signs nothing, not even for a moment, and
// no older key stands in for it; revoking it again installs a replacement.
func TestRevokedKeyNeverSigns(t *testing.T) {
	ts := newTestServer(t, sqlite)
	ctx := t.Context()
	older := kidOf(t, ts.login(confA).str("access_token"))
	ts.clock.Advance(time.Minute)
	// A key that signs now, superseding older (which is still published).
	res, err := adminKeys(t, ts.store, ts.clock).Revoke(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	cur := res.SignerID
	ts.clock.Advance(time.Minute)
	if err := ts.store.RevokeSigningKey(ctx, cur, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(revocationCheck)
	if r := ts.token(confA, pw("ada", userPass)); r.status == http.StatusOK {
		t.Fatalf("signed with %s while the signing key is revoked", kidOf(t, r.str("access_token")))
	}
	// (Through the server's own Keys: a Keys opened now would find no live
	// key and generate one as on first start.)
	again, err := ts.keys.Revoke(ctx, cur)
	if err != nil || !again.AlreadyRevoked || !again.NewSigner || again.SignerID == cur || again.SignerID == older {
		t.Fatalf("Revoke(revoked signing key) = %+v, %v; want a new signer", again, err)
	}
	ts.clock.Advance(revocationCheck)
	if kid := kidOf(t, ts.login(confA).str("access_token")); kid != again.SignerID {
		t.Fatalf("signing kid = %s, want %s", kid, again.SignerID)
	}
}

// TestRevocationCheckOncePerInterval: when the check falls due, one
// request asks the database; requests arriving while it waits for the
// answer go on with the keys they have.
func TestRevocationCheckOncePerInterval(t *testing.T) {
	store := openStore(t, sqlite)
	counted := &countingStore{Store: store}
	ts := newTestServerOn(t, counted, nil)
	at := ts.login(confA).str("access_token")
	ts.wantActive(rsAuth, at)
	ts.clock.Advance(revocationCheck)
	counted.reset()
	counted.hold, counted.entered = make(chan struct{}), make(chan struct{})
	first := make(chan reply)
	go func() { first <- ts.introspect(rsAuth, at) }()
	<-counted.entered // the first request is waiting for the database
	for range 8 {
		ts.wantActive(rsAuth, at)
	}
	close(counted.hold)
	if r := <-first; r.status != http.StatusOK || r.json["active"] != true {
		t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	if lists, checks := counted.reads(); lists != 0 || checks != 1 {
		t.Fatalf("9 introspections at the check: %d reloads, %d checks; want 0, 1", lists, checks)
	}
}

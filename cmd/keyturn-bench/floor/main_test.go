package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// TestFloorRefreshPostgres: a session created through Keyturn's store and
// keys is refreshed by the floor twice (the second time with the floor's
// successor), each answer carrying the very token Keyturn would issue for
// the next generation; the spent token, another client's token and a wrong
// secret are refused with RFC 6749 §5.2's codes and rotate nothing.
func TestFloorRefreshPostgres(t *testing.T) {
	ctx := context.Background()
	dbURL := sqlstoretest.PostgresURL(t)
	store := sqlstoretest.Open(t, dbURL)
	secret := []byte("0123456789abcdef0123456789abcdef")
	clock := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	k, err := keys.New(ctx, store, secret, keys.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(ctx, storage.User{ID: "user-1", Username: "alice", PasswordHash: "unused", CreatedAt: clock, UpdatedAt: clock}); err != nil {
		t.Fatal(err)
	}
	fam := storage.Family{
		ID: tokens.NewID(), ClientID: "bench", UserID: "user-1", Scope: "read write",
		Salt: tokens.NewSalt(), KeyID: k.MACKeyID(), CreatedAt: clock, LastUsedAt: clock,
		GrantType: storage.GrantPassword, AuthTime: clock,
		IdleExpiresAt: clock.Add(time.Hour), AbsoluteExpiresAt: clock.Add(24 * time.Hour),
	}
	if err := store.CreateFamily(ctx, fam); err != nil {
		t.Fatal(err)
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	mac, err := macKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := newSigner()
	if err != nil {
		t.Fatal(err)
	}
	f := &floor{db: pool, issuer: "http://floor.test", clientID: "bench", macKey: mac, signer: signer,
		digest: sha256.Sum256([]byte("s3cret")), now: func() time.Time { return clock }}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)

	refresh := func(id, secret, rt string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+server.PathToken,
			strings.NewReader("grant_type=refresh_token&refresh_token="+url.QueryEscape(rt)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("status %d, body not JSON: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, body, resp.Header
	}

	rt := k.RefreshToken(fam, 0)
	for gen := uint64(1); gen <= 2; gen++ {
		clock = clock.Add(time.Minute)
		status, body, h := refresh("bench", "s3cret", rt)
		if status != http.StatusOK {
			t.Fatalf("refresh to generation %d: %d %v", gen, status, body)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("generation %d: headers %v, want no-store", gen, h)
		}
		if want := k.RefreshToken(fam, gen); body["refresh_token"] != want {
			t.Fatalf("generation %d: refresh_token %v, want Keyturn's %s", gen, body["refresh_token"], want)
		}
		jws, err := jose.ParseSignedCompact(body["access_token"].(string), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var c tokens.AccessClaims
		if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Subject != "user-1" || c.SessionID != fam.ID || c.Scope != "read write" || c.ClientID != "bench" {
			t.Errorf("generation %d: claims %+v", gen, c)
		}
		rt = body["refresh_token"].(string)
	}

	for _, tc := range []struct {
		name, id, secret, token string
		status                  int
		code                    string
	}{
		{"spent token", "bench", "s3cret", k.RefreshToken(fam, 0), 400, "invalid_grant"},
		{"rotated token", "bench", "s3cret", k.RefreshToken(fam, 1), 400, "invalid_grant"},
		{"another client's token", "bench", "s3cret", k.RefreshToken(storage.Family{ID: fam.ID, ClientID: "other"}, 2), 400, "invalid_grant"},
		{"ktr1 token", "bench", "s3cret", k.RefreshTokenV1(fam, 2), 400, "invalid_grant"},
		{"malformed token", "bench", "s3cret", "ktr2.x.2.y", 400, "invalid_grant"},
		{"wrong secret", "bench", "s3cret!", rt, 401, "invalid_client"},
		{"wrong client", "other", "s3cret", rt, 401, "invalid_client"},
	} {
		status, body, _ := refresh(tc.id, tc.secret, tc.token)
		if status != tc.status || body["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}
	got, err := store.GetFamily(ctx, fam.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || !got.IdleExpiresAt.Equal(clock.Add(refreshIdleTTL)) {
		t.Errorf("session after the refusals: generation %d, idle expiry %v; want 2, %v", got.Generation, got.IdleExpiresAt, clock.Add(refreshIdleTTL))
	}
}

// TestFloorFallbackNeverRefreshes: -fallback forwards what the floor does
// not serve (keyturn-bench's setup logins), body intact, but never a
// refresh grant, wherever it is sent: a refresh served by Keyturn behind the
// floor would pass Keyturn's figures off as the floor's.
func TestFloorFallbackNeverRefreshes(t *testing.T) {
	var forwarded []string
	keyturn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		forwarded = append(forwarded, r.URL.Path+" "+r.PostForm.Encode())
	}))
	t.Cleanup(keyturn.Close)
	u, _ := url.Parse(keyturn.URL)
	f := &floor{clientID: "bench", fallback: httputil.NewSingleHostReverseProxy(u), now: time.Now}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	post := func(path, body string) int {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(server.PathToken, "grant_type=password&username=bench-1"); got != http.StatusOK {
		t.Errorf("login: %d, want 200 from the fallback", got)
	}
	// Sent to the token endpoint, a refresh is the floor's (401: no client auth).
	if got := post(server.PathToken, "grant_type=refresh_token&refresh_token=x"); got != http.StatusUnauthorized {
		t.Errorf("refresh: %d, want the floor's 401", got)
	}
	if got := post("/token", "grant_type=refresh_token&refresh_token=x"); got != http.StatusNotFound {
		t.Errorf("refresh to another path: %d, want 404", got)
	}
	if want := []string{server.PathToken + " grant_type=password&username=bench-1"}; strings.Join(forwarded, "|") != strings.Join(want, "|") {
		t.Errorf("forwarded %q, want %q", forwarded, want)
	}
}

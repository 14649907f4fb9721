package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

const testIssuer = "https://auth.example.com"

// onBothStores runs fn on a fresh SQLite store and a fresh PostgreSQL one.
func onBothStores(t *testing.T, fn func(t *testing.T, store storage.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqlstoretest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, sqlstoretest.Postgres(t)) })
}

// testClock is a settable clock for Options.Now.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestClock() *testClock { return &testClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func testKeys(t *testing.T, store storage.SigningKeys, clock *testClock, opts Options) *Keys {
	t.Helper()
	opts.Now = clock.Now
	if opts.RotationDelay == 0 {
		opts.RotationDelay = time.Hour
	}
	if opts.MaxTokenTTL == 0 {
		opts.MaxTokenTTL = 15 * time.Minute
	}
	k, err := New(t.Context(), store, bytes.Repeat([]byte{9}, 32), opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func idClaims(now time.Time) tokens.IDClaims {
	return tokens.IDClaims{Issuer: testIssuer, Subject: "u1", Audience: "app",
		IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), AuthTime: now.Unix(), Nonce: "n-0S6", SessionID: "fam"}
}

// header returns the protected header of a compact JWS.
func header(t *testing.T, tok string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("parse %q: %v", tok, err)
	}
	return jws.Signatures[0].Protected
}

// TestIDTokenRoundTrip: an ID token carries typ JWT, the signing key's kid
// and the algorithm asked for; ParseIDToken gives its claims back, and
// does not look at exp.
func TestIDTokenRoundTrip(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256})
		want := idClaims(clock.Now())
		tok, err := k.SignIDToken(ctx, AlgES256, want)
		if err != nil {
			t.Fatal(err)
		}
		h := header(t, tok)
		pub, err := k.Published(ctx)
		if err != nil || len(pub) != 1 {
			t.Fatalf("published: %v, %v", pub, err)
		}
		if typ := h.ExtraHeaders[jose.HeaderType]; typ != "JWT" || h.KeyID != pub[0].KeyID || h.Algorithm != AlgES256 {
			t.Fatalf("header typ %v kid %q alg %q; want JWT, %q, ES256", typ, h.KeyID, h.Algorithm, pub[0].KeyID)
		}
		clock.Advance(2 * time.Hour) // expired: still parsed (an id_token_hint may be)
		got, err := k.ParseIDToken(ctx, tok, testIssuer)
		if err != nil || got != want {
			t.Fatalf("parse: %+v, %v; want %+v", got, err, want)
		}
	})
}

// TestIDTokenRefused: ParseIDToken refuses an access token, another
// issuer's token, a forged signature and a token signed by a key this
// server does not publish; ParseAccessToken refuses an ID token; and
// SignIDToken refuses an algorithm no key signs with.
func TestIDTokenRefused(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256})
		now := clock.Now()
		idTok, err := k.SignIDToken(ctx, AlgES256, idClaims(now))
		if err != nil {
			t.Fatal(err)
		}
		access, err := k.SignAccessToken(ctx, tokens.AccessClaims{Issuer: testIssuer, Subject: "u1", Audience: tokens.Audience{"app"},
			IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), ID: "jti", ClientID: "app"})
		if err != nil {
			t.Fatal(err)
		}
		otherIss := idClaims(now)
		otherIss.Issuer = "https://evil.example.com"
		otherIssTok, err := k.SignIDToken(ctx, AlgES256, otherIss)
		if err != nil {
			t.Fatal(err)
		}
		// A key of another server (another store, another secret), same kid
		// scheme: its kid is not published here.
		foreign := testKeys(t, sqlstoretest.SQLite(t), clock, Options{Algorithm: AlgES256})
		foreignTok, err := foreign.SignIDToken(ctx, AlgES256, idClaims(now))
		if err != nil {
			t.Fatal(err)
		}
		// The foreign signature under our kid: a forgery.
		parts, fparts := strings.Split(idTok, "."), strings.Split(foreignTok, ".")
		forged := parts[0] + "." + fparts[1] + "." + fparts[2]
		tampered := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4] + "AAAA"

		for name, tok := range map[string]string{
			"access token": access, "other issuer": otherIssTok, "foreign key": foreignTok,
			"forged": forged, "tampered": tampered, "garbage": "a.b.c", "empty": "", "nul": "\x00." + parts[1] + "." + parts[2],
		} {
			if c, err := k.ParseIDToken(ctx, tok, testIssuer); !errors.Is(err, tokens.ErrMalformed) {
				t.Errorf("%s: ParseIDToken = %+v, %v; want ErrMalformed", name, c, err)
			}
		}
		if c, err := k.ParseAccessToken(ctx, idTok); !errors.Is(err, tokens.ErrMalformed) {
			t.Errorf("ParseAccessToken(id token) = %+v, %v; want ErrMalformed", c, err)
		}
		if _, err := k.SignIDToken(ctx, AlgEdDSA, idClaims(now)); err == nil {
			t.Error("SignIDToken(EdDSA) with no EdDSA key: no error")
		}
	})
}

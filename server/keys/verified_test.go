package keys

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// TestVerifiedAccessTokensRemembered: a verified token is answered from
// memory the next time, only byte for byte, and only while the key that
// verified it is still published.
func TestVerifiedAccessTokensRemembered(t *testing.T) {
	ctx := t.Context()
	store := sqlstoretest.SQLite(t)
	now := func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	keys, err := New(ctx, store, bytes.Repeat([]byte{9}, 32), Options{
		Algorithm: AlgES256, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := tokens.AccessClaims{Issuer: "https://auth.example.com", Subject: "u", ID: "jti-1", ClientID: "app",
		IssuedAt: now().Unix(), Expiry: now().Add(15 * time.Minute).Unix(), Scope: "read"}
	tok, err := keys.SignAccessToken(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		got, err := keys.ParseAccessToken(ctx, tok)
		if err != nil || got.ID != want.ID || got.Subject != want.Subject || got.Expiry != want.Expiry {
			t.Fatalf("parse %d: %+v, %v", i, got, err)
		}
		if keys.verified.Len() != 1 {
			t.Fatalf("parse %d: %d tokens remembered, want 1", i, keys.verified.Len())
		}
	}
	// Another spelling of the signature is verified on its own, and a
	// tampered token is refused and not remembered.
	tampered := tok[:len(tok)-4] + "AAAA"
	if _, err := keys.ParseAccessToken(ctx, tampered); !errors.Is(err, tokens.ErrMalformed) {
		t.Fatalf("tampered token: %v", err)
	}
	if keys.verified.Len() != 1 {
		t.Fatalf("%d tokens remembered after a tampered one, want 1", keys.verified.Len())
	}

	// Once its key is withdrawn, a remembered token is refused and forgotten.
	pub, err := keys.Published(ctx)
	if err != nil || len(pub) != 1 {
		t.Fatalf("published: %d keys, %v", len(pub), err)
	}
	if err := store.RevokeSigningKey(ctx, pub[0].KeyID, now()); err != nil {
		t.Fatal(err)
	}
	if err := keys.reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.ParseAccessToken(ctx, tok); !errors.Is(err, tokens.ErrMalformed) {
		t.Fatalf("token of a deleted key: %v, want refused", err)
	}
	if keys.verified.Len() != 0 {
		t.Fatalf("%d tokens remembered after their key went, want 0", keys.verified.Len())
	}
}

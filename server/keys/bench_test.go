package keys

// Benchmarks of the key material's per-request CPU work: signing an access
// token (every token response), verifying one (every introspection) and a
// refresh token's MAC. BENCHMARKS.md has figures:
//
//	go test -run '^$' -bench . -benchmem ./server/keys/

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
)

func benchKeys(b *testing.B, alg string) *Keys {
	b.Helper()
	k, err := New(context.Background(), memstore.New(), bytes.Repeat([]byte{7}, 32), Options{
		Algorithm: alg, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchClaims() tokens.AccessClaims {
	now := time.Now()
	return tokens.AccessClaims{
		Issuer: "https://auth.example.com", Subject: "yqeKL9eNOWHCcqHQkj8bdA", Audience: tokens.Audience{"https://api.example.com"},
		IssuedAt: now.Unix(), Expiry: now.Add(15 * time.Minute).Unix(), ID: tokens.NewID(),
		ClientID: "bench", Scope: "read", SessionID: "4i7T6Skbj3HMoAE4uyQ23w",
	}
}

var benchAlgorithms = []string{AlgES256, AlgEdDSA, AlgRS256}

// BenchmarkSignAccessToken is the signature of every token response:
// claims JSON, JWS signing and compact serialisation (go-jose).
func BenchmarkSignAccessToken(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k := benchKeys(b, alg)
			c := benchClaims()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.SignAccessToken(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyAccessToken is introspection's signature check (and what
// an offline resource server pays per API call).
func BenchmarkVerifyAccessToken(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k, tok := benchSignedToken(b, alg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				k.verified.Purge() // a token not seen before: the signature is verified
				if _, err := k.ParseAccessToken(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A token verified before (a resource server introspecting it again).
	b.Run("remembered", func(b *testing.B) {
		k, tok := benchSignedToken(b, AlgES256)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.ParseAccessToken(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSignedToken returns keys of alg and an access token they signed.
func benchSignedToken(b *testing.B, alg string) (*Keys, string) {
	b.Helper()
	k := benchKeys(b, alg)
	tok, err := k.SignAccessToken(context.Background(), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	return k, tok
}

// BenchmarkRefreshToken is the refresh token's own cost: minting one
// (HMAC-SHA256 and encoding), and parsing and verifying a presented one.
func BenchmarkRefreshToken(b *testing.B) {
	k := benchKeys(b, AlgES256)
	f := storage.Family{ID: tokens.NewID(), Salt: tokens.NewSalt(), KeyID: k.MACKeyID(), Generation: 41}
	b.Run("mint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = k.RefreshToken(f, f.Generation+1)
		}
	})
	b.Run("parse_verify", func(b *testing.B) {
		tok := k.RefreshToken(f, f.Generation)
		b.ReportAllocs()
		for b.Loop() {
			t, err := tokens.ParseRefresh(tok)
			if err != nil || !k.VerifyRefresh(f, t) {
				b.Fatal("refresh token did not verify")
			}
		}
	})
}

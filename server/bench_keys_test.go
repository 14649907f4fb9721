package server

// Benchmarks of the token formats' and keys' own CPU work (signing,
// verifying, minting refresh tokens, the JSON body, argon2id); see
// bench_test.go for the whole-handler benchmarks. They use unexported
// functions, so they are in package server and cannot use the test kit
// (server/servertest imports server).

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
	"github.com/keyturn/keyturn/storage/passhash"
)

const (
	benchIssuer   = "https://auth.example.com"
	benchPassword = "correct horse battery staple"
)

func benchKeys(b *testing.B, store storage.SigningKeys, alg string) *Keys {
	b.Helper()
	k, err := NewKeys(context.Background(), store, bytes.Repeat([]byte{7}, 32), KeysOptions{
		Algorithm: alg, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchClaims() accessClaims {
	now := time.Now()
	return accessClaims{
		Issuer: benchIssuer, Subject: "yqeKL9eNOWHCcqHQkj8bdA", Audience: jsonAudience{"https://api.example.com"},
		IssuedAt: now.Unix(), Expiry: now.Add(15 * time.Minute).Unix(), ID: newID(),
		ClientID: "bench", Scope: "read", SessionID: "4i7T6Skbj3HMoAE4uyQ23w",
	}
}

var benchAlgorithms = []string{AlgES256, AlgEdDSA, AlgRS256}

// BenchmarkSignAccessToken is the signature of every token response:
// claims JSON, JWS signing and compact serialisation (go-jose).
func BenchmarkSignAccessToken(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			k := benchKeys(b, memstore.New(), alg)
			c := benchClaims()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.signAccessToken(ctx, c); err != nil {
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
				if _, err := k.parseAccessToken(ctx, tok); err != nil {
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
			if _, err := k.parseAccessToken(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSignedToken returns keys of alg and an access token they signed.
func benchSignedToken(b *testing.B, alg string) (*Keys, string) {
	b.Helper()
	k := benchKeys(b, memstore.New(), alg)
	tok, err := k.signAccessToken(context.Background(), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	return k, tok
}

// BenchmarkRefreshToken is the refresh token's own cost: minting one
// (HMAC-SHA256 and encoding), and parsing and verifying a presented one.
func BenchmarkRefreshToken(b *testing.B) {
	k := benchKeys(b, memstore.New(), AlgES256)
	f := storage.Family{ID: newID(), Salt: newSalt(), KeyID: k.MACKeyID(), Generation: 41}
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
			t, err := parseRefreshToken(tok)
			if err != nil || !k.verifyRefresh(f, t) {
				b.Fatal("refresh token did not verify")
			}
		}
	})
}

// benchDiscard is a ResponseWriter that keeps headers and drops the body.
type benchDiscard struct{ h http.Header }

func (d benchDiscard) Header() http.Header       { return d.h }
func (benchDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (benchDiscard) WriteHeader(int)             {}

// BenchmarkTokenResponseJSON is the response body of a refresh: headers
// and JSON encoding.
func BenchmarkTokenResponseJSON(b *testing.B) {
	k := benchKeys(b, memstore.New(), AlgES256)
	at, err := k.signAccessToken(context.Background(), benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	f := storage.Family{ID: newID(), Salt: newSalt(), KeyID: k.MACKeyID(), Generation: 7}
	resp := &tokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: 900,
		RefreshToken: k.RefreshToken(f, 7), RefreshExpiresIn: 432000, Scope: "read",
	}
	w := benchDiscard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		writeJSON(w, http.StatusOK, resp)
	}
}

// BenchmarkArgon2idVerify is one password check with the production
// parameters (passhash.Default): the password grant's bound is
// GOMAXPROCS / this time.
func BenchmarkArgon2idVerify(b *testing.B) {
	h, err := passhash.Hash(benchPassword, passhash.Default)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := passhash.Verify(h, benchPassword); err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}

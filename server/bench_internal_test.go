package server

// Benchmarks of per-request work that is not a whole handler: the JSON body
// of a token response and one argon2id check (bench_test.go has the
// whole-handler benchmarks; server/keys has signing, verifying and refresh
// tokens). writeJSON and tokenResponse are unexported, so this file is in
// package server and cannot use the test kit (server/servertest imports
// server).

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
	"github.com/keyturn/keyturn/storage/passhash"
)

// benchDiscard is a ResponseWriter that keeps headers and drops the body.
type benchDiscard struct{ h http.Header }

func (d benchDiscard) Header() http.Header       { return d.h }
func (benchDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (benchDiscard) WriteHeader(int)             {}

// BenchmarkTokenResponseJSON is the response body of a refresh: headers
// and JSON encoding.
func BenchmarkTokenResponseJSON(b *testing.B) {
	ctx := context.Background()
	k, err := keys.New(ctx, memstore.New(), bytes.Repeat([]byte{7}, 32), keys.Options{
		Algorithm: keys.AlgES256, RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	at, err := k.SignAccessToken(ctx, tokens.AccessClaims{
		Issuer: "https://auth.example.com", Subject: "user-1", Audience: tokens.Audience{"https://api.example.com"},
		IssuedAt: now.Unix(), Expiry: now.Add(15 * time.Minute).Unix(), ID: tokens.NewID(),
		ClientID: "bench", Scope: "read", SessionID: tokens.NewID(),
	})
	if err != nil {
		b.Fatal(err)
	}
	f := storage.Family{ID: tokens.NewID(), Salt: tokens.NewSalt(), KeyID: k.MACKeyID(), Generation: 7}
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
	h, err := passhash.Hash("correct horse battery staple", passhash.Default)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := passhash.Verify(h, "correct horse battery staple"); err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}

package keys

import (
	"crypto/rsa"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// signingKID returns the kid in the header of a token signed with alg: an
// ID token, or the access token when alg is "".
func signingKID(t *testing.T, k *Keys, alg string) string {
	t.Helper()
	now := k.opts.Now()
	var tok string
	var err error
	if alg == "" {
		tok, err = k.SignAccessToken(t.Context(), tokens.AccessClaims{Issuer: testIssuer, Subject: "u1", ID: "j", ClientID: "app",
			IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	} else {
		tok, err = k.SignIDToken(t.Context(), alg, idClaims(now))
	}
	if err != nil {
		t.Fatalf("sign (%q): %v", alg, err)
	}
	return header(t, tok).KeyID
}

// publishedByKID returns the JWK Set by kid, failing on a duplicate kid or
// a key without alg and use=sig.
func publishedByKID(t *testing.T, k *Keys) map[string]jose.JSONWebKey {
	t.Helper()
	set, err := k.Published(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]jose.JSONWebKey{}
	for _, jwk := range set {
		if _, dup := out[jwk.KeyID]; dup {
			t.Fatalf("kid %s published twice", jwk.KeyID)
		}
		if jwk.Algorithm == "" || jwk.Use != "sig" {
			t.Fatalf("kid %s: alg %q use %q; want both set, use sig", jwk.KeyID, jwk.Algorithm, jwk.Use)
		}
		out[jwk.KeyID] = jwk
	}
	return out
}

// TestIDTokenAlgorithms: with access tokens on ES256, ID tokens are signed
// RS256 (a 2048-bit or larger RSA key), ES256 or EdDSA as asked, each by a
// key of its own lineage; the header's kid names exactly one published
// key, whose alg is the header's.
func TestIDTokenAlgorithms(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256, IDTokenAlgorithms: []string{AlgRS256, AlgEdDSA}})
		if got := k.Lineages(); !slices.Equal(got, []string{AlgES256, AlgRS256, AlgEdDSA}) {
			t.Fatalf("lineages %v", got)
		}
		jwks := publishedByKID(t, k)
		if len(jwks) != 3 {
			t.Fatalf("%d keys published, want 3 (one per algorithm)", len(jwks))
		}
		for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA} {
			tok, err := k.SignIDToken(ctx, alg, idClaims(clock.Now()))
			if err != nil {
				t.Fatalf("%s: %v", alg, err)
			}
			h := header(t, tok)
			jwk, ok := jwks[h.KeyID]
			if h.Algorithm != alg || !ok || jwk.Algorithm != alg {
				t.Fatalf("%s: header alg %q kid %q; published key %v (alg %q)", alg, h.Algorithm, h.KeyID, ok, jwk.Algorithm)
			}
			if alg == AlgRS256 {
				if pub, ok := jwk.Key.(*rsa.PublicKey); !ok || pub.N.BitLen() < 2048 {
					t.Fatalf("RS256 key %T of %d bits, want RSA of 2048+", jwk.Key, pub.N.BitLen())
				}
			}
			if c, err := k.ParseIDToken(ctx, tok, testIssuer); err != nil || c.Subject != "u1" {
				t.Fatalf("%s: parse: %+v, %v", alg, c, err)
			}
		}
		// Access tokens stay on keys.algorithm.
		if jwk := jwks[signingKID(t, k, "")]; jwk.Algorithm != AlgES256 {
			t.Fatalf("access token signed by a %q key, want ES256", jwk.Algorithm)
		}
	})
}

// TestRotateLineage: rotating the RS256 lineage leaves the ES256 one
// alone; the old RS256 key signs until the new one's RotationDelay has
// passed and stays published for MaxTokenTTL after. A rotation of ES256
// never retires the RS256 key, however long ago it activated.
func TestRotateLineage(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256, IDTokenAlgorithms: []string{AlgRS256},
			RotationDelay: time.Hour, MaxTokenTTL: 15 * time.Minute})
		rsOld, esOld := signingKID(t, k, AlgRS256), signingKID(t, k, "")
		oldIDToken, err := k.SignIDToken(ctx, AlgRS256, idClaims(clock.Now()))
		if err != nil {
			t.Fatal(err)
		}

		if _, err := k.Rotate(ctx, AlgEdDSA); err == nil {
			t.Fatal("Rotate(EdDSA), not in use: no error")
		}
		rsNew, err := k.Rotate(ctx, AlgRS256)
		if err != nil || rsNew.Algorithm != AlgRS256 {
			t.Fatalf("Rotate(RS256) = %+v, %v", rsNew, err)
		}
		if _, ok := publishedByKID(t, k)[rsNew.ID]; !ok {
			t.Fatal("rotated-in RS256 key not published at once")
		}
		if got := signingKID(t, k, AlgRS256); got != rsOld {
			t.Fatalf("RS256 signer %s before the rotation delay, want the old %s", got, rsOld)
		}
		clock.Advance(time.Hour)
		if err := k.reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got := signingKID(t, k, AlgRS256); got != rsNew.ID {
			t.Fatalf("RS256 signer %s after the delay, want %s", got, rsNew.ID)
		}
		if got := signingKID(t, k, ""); got != esOld {
			t.Fatalf("ES256 signer %s, want %s untouched", got, esOld)
		}
		if _, ok := publishedByKID(t, k)[rsOld]; !ok {
			t.Fatal("superseded RS256 key withdrawn before MaxTokenTTL")
		}
		if _, err := k.ParseIDToken(ctx, oldIDToken, testIssuer); err != nil {
			t.Fatalf("ID token of the superseded key: %v", err)
		}
		clock.Advance(15 * time.Minute)
		if _, ok := publishedByKID(t, k)[rsOld]; ok {
			t.Fatal("superseded RS256 key still published after MaxTokenTTL")
		}
		if _, err := k.ParseIDToken(ctx, oldIDToken, testIssuer); !errors.Is(err, tokens.ErrMalformed) {
			t.Fatalf("ID token of a retired key: %v, want ErrMalformed", err)
		}

		// RotateAll: one new key per lineage. The ES256 rotation does not
		// retire the RS256 key (older than the new ES256 key), in the JWKS
		// or in the database.
		infos, err := k.RotateAll(ctx)
		if err != nil || len(infos) != 2 || infos[0].Algorithm != AlgES256 || infos[1].Algorithm != AlgRS256 {
			t.Fatalf("RotateAll = %+v, %v", infos, err)
		}
		clock.Advance(2 * time.Hour)
		if err := k.reload(ctx); err != nil {
			t.Fatal(err)
		}
		jwks := publishedByKID(t, k)
		if len(jwks) != 2 {
			t.Fatalf("%d keys published, want the two new signers", len(jwks))
		}
		n, err := store.DeleteSigningKeys(ctx, clock.Now().Add(-k.opts.MaxTokenTTL), clock.Now(), 100)
		if err != nil || n != 3 {
			t.Fatalf("DeleteSigningKeys = %d, %v; want 3 (es-old, rs-old, rs-mid)", n, err)
		}
		if err := k.reload(ctx); err != nil {
			t.Fatal(err)
		}
		for _, alg := range []string{"", AlgRS256} {
			if kid := signingKID(t, k, alg); !slices.ContainsFunc(infos, func(i Info) bool { return i.ID == kid }) {
				t.Fatalf("%q signer %s after pruning, want the rotated-in one", alg, kid)
			}
		}
	})
}

// TestRevokeLineage: revoking the RS256 signer makes an RS256 key sign at
// once (a new one, or the pending RS256 key) and never touches the ES256
// signer; revoking the ES256 signer never touches the RS256 one.
func TestRevokeLineage(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256, IDTokenAlgorithms: []string{AlgRS256}})
		rs0, es0 := signingKID(t, k, AlgRS256), signingKID(t, k, "")
		// A pending ES256 key must not be taken for the RS256 replacement.
		esPending, err := k.Rotate(ctx, AlgES256)
		if err != nil {
			t.Fatal(err)
		}

		res, err := k.Revoke(ctx, rs0)
		if err != nil || !res.NewSigner || res.SignerID == "" {
			t.Fatalf("Revoke(RS256 signer) = %+v, %v; want a new signer", res, err)
		}
		rs1 := signingKID(t, k, AlgRS256)
		jwks := publishedByKID(t, k)
		if rs1 != res.SignerID || jwks[rs1].Algorithm != AlgRS256 {
			t.Fatalf("RS256 signer %s (alg %q), want the replacement %s of RS256", rs1, jwks[rs1].Algorithm, res.SignerID)
		}
		if _, ok := jwks[rs0]; ok {
			t.Fatal("revoked RS256 key still published")
		}
		if got := signingKID(t, k, ""); got != es0 {
			t.Fatalf("ES256 signer %s after an RS256 revocation, want %s", got, es0)
		}
		if _, ok := jwks[esPending.ID]; !ok {
			t.Fatal("pending ES256 key withdrawn by an RS256 revocation")
		}

		// With an RS256 key pending, it is the replacement.
		rsPending, err := k.Rotate(ctx, AlgRS256)
		if err != nil {
			t.Fatal(err)
		}
		res, err = k.Revoke(ctx, rs1)
		if err != nil || res.NewSigner || res.SignerID != rsPending.ID {
			t.Fatalf("Revoke with an RS256 key pending = %+v, %v; want %s to sign", res, err, rsPending.ID)
		}
		if got := signingKID(t, k, AlgRS256); got != rsPending.ID {
			t.Fatalf("RS256 signer %s, want the pending %s", got, rsPending.ID)
		}

		// Revoking the ES256 signer promotes the pending ES256 key and
		// leaves RS256 alone.
		res, err = k.Revoke(ctx, es0)
		if err != nil || res.SignerID != esPending.ID {
			t.Fatalf("Revoke(ES256 signer) = %+v, %v; want %s to sign", res, err, esPending.ID)
		}
		if got := signingKID(t, k, AlgRS256); got != rsPending.ID {
			t.Fatalf("RS256 signer %s after an ES256 revocation, want %s", got, rsPending.ID)
		}
		if err := k.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	})
}

// TestEnsure: a newly needed algorithm gets a key that signs at once, and
// only once (another instance, or Ensure again, adds none); List tells
// each key's algorithm.
func TestEnsure(t *testing.T) {
	onBothStores(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clock := newTestClock()
		k := testKeys(t, store, clock, Options{Algorithm: AlgES256})
		if _, err := k.SignIDToken(ctx, AlgEdDSA, idClaims(clock.Now())); err == nil {
			t.Fatal("EdDSA ID token before Ensure: no error")
		}
		if err := k.Ensure(ctx, []string{AlgEdDSA}); err != nil {
			t.Fatal(err)
		}
		ed := signingKID(t, k, AlgEdDSA)
		if err := k.Ensure(ctx, []string{AlgEdDSA, AlgES256}); err != nil {
			t.Fatal(err)
		}
		other := testKeys(t, store, clock, Options{Algorithm: AlgES256, IDTokenAlgorithms: []string{AlgEdDSA}})
		if got := signingKID(t, other, AlgEdDSA); got != ed {
			t.Fatalf("other instance signs EdDSA with %s, want %s", got, ed)
		}
		list, err := k.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var algs []string
		for _, i := range list {
			if i.State != "active" {
				t.Errorf("key %s (%s) %s, want active", i.ID, i.Algorithm, i.State)
			}
			algs = append(algs, i.Algorithm)
		}
		slices.Sort(algs)
		if !slices.Equal(algs, []string{AlgES256, AlgEdDSA}) {
			t.Fatalf("keys of %v, want one ES256 and one EdDSA", algs)
		}
		if err := k.Ensure(ctx, []string{"HS256"}); err == nil {
			t.Fatal("Ensure(HS256): no error")
		}
	})
}

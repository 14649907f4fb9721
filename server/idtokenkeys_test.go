package server_test

import (
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
)

// TestServerIDTokenKeys: a test server asked for ID-token algorithms
// publishes a key of each beside the access tokens' ES256 key, and signs
// ID tokens that ParseIDToken accepts; its RS256 key is the kit's shared
// one, stored fresh (activating at the test clock's now) in each store.
func TestServerIDTokenKeys(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			clock := newClock()
			store := openStore(t, b)
			_, opts := servertest.New(t, store, servertest.Setup{Issuer: testIssuer, Clients: testClients(), Env: testEnv,
				Now: clock.Now, IDTokenAlgorithms: []string{keys.AlgRS256, keys.AlgEdDSA}})
			set, err := opts.Keys.Published(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			algs := map[string]int{}
			for _, k := range set {
				algs[k.Algorithm]++
			}
			if len(set) != 3 || algs[keys.AlgES256] != 1 || algs[keys.AlgRS256] != 1 || algs[keys.AlgEdDSA] != 1 {
				t.Fatalf("published %v, want one key of each algorithm", algs)
			}
			now := clock.Now()
			for _, alg := range []string{keys.AlgRS256, keys.AlgEdDSA} {
				tok, err := opts.Keys.SignIDToken(t.Context(), alg, tokens.IDClaims{Issuer: testIssuer, Subject: "u", Audience: "web-a",
					IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), AuthTime: now.Unix()})
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				if _, err := opts.Keys.ParseIDToken(t.Context(), tok, testIssuer); err != nil {
					t.Fatalf("%s: parse: %v", alg, err)
				}
			}
		})
	}
}

package server_test

import (
	"net/url"
	"testing"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/passhash"
)

// TestHeldBackClientCostsNoHash: once a (client id, address) pair of a
// client with an argon2id secret is held back, its further attempts are
// refused (429) before any hash runs, as a held-back login is: the answer
// is 429 whatever the secret, so hashing it would only let one address
// spend the hashing budget that logins share, without limit, and have
// everyone else's logins shed with 503.
func TestHeldBackClientCostsNoHash(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			const rsSecret = "a chosen resource-server secret"
			hashes := passhash.NewLimiter(1, 1)
			reg, err := clients.NewWithSlowChecks(append(testClients(),
				clients.Spec{ID: "rs-argon", SecretHash: servertest.HashPassword(t, rsSecret), Introspect: true, Resources: []string{testIssuer}}),
				servertest.Defaults(testIssuer), testEnv, clients.SlowChecks{Limiter: hashes})
			if err != nil {
				t.Fatal(err)
			}
			ts := newTestServerOn(t, openStore(t, b), behindProxy, func(o *server.Options) { o.Clients, o.Hashes = reg, hashes })
			introspect := func(secret string) reply {
				return ts.do(call{path: server.PathIntrospect, auth: basic("rs-argon", secret),
					form: url.Values{"token": {"not-a-token"}}, xff: "198.51.100.1"})
			}
			for range 5 {
				wantError(t, introspect("wrong"), 401, "invalid_client")
			}
			wantThrottled(t, introspect("wrong"), 1)

			// The budget full (1 slot + 1 queued): a request that hashed
			// would be shed with 503; a held-back one never hashes.
			hashing, err := hashes.Admit()
			if err != nil {
				t.Fatal(err)
			}
			defer hashing()
			release, err := hashes.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			waiting, err := hashes.Admit()
			if err != nil {
				t.Fatal(err)
			}
			defer waiting()
			wantThrottled(t, introspect("another guess"), 1)
		})
	}
}

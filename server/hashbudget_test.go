package server_test

import (
	"strconv"
	"testing"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/passhash"
)

// TestOneHashingBudget: logins and argon2id client-secret checks share one
// budget (Options.Hashes, the registry's SlowChecks.Limiter): while its
// slots and queue are taken, a login is shed at the door and a client whose
// secret needs argon2id is refused, both with 503 and Retry-After; once it
// frees, both pass. Two budgets would let twice the hashes run.
func TestOneHashingBudget(t *testing.T) {
	const rsSecret = "a chosen resource-server secret"
	h := servertest.HashPassword(t, rsSecret)
	hashes := passhash.NewLimiter(1, 1)
	reg, err := clients.NewWithSlowChecks(append(testClients(),
		clients.Spec{ID: "rs-argon", SecretHash: h, Introspect: true, Resources: []string{testIssuer}}),
		servertest.Defaults(testIssuer), testEnv, clients.SlowChecks{Limiter: hashes})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) { o.Clients, o.Hashes = reg, hashes })

	// One hash running and one waiting fill the budget (1 slot + 1 queued).
	hashing, err := hashes.Admit()
	if err != nil {
		t.Fatal(err)
	}
	release, err := hashes.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := hashes.Admit()
	if err != nil {
		t.Fatal(err)
	}
	wantBusy := func(what string, r reply) {
		t.Helper()
		if r.status != 503 || r.str("error") != "temporarily_unavailable" || r.header.Get("Retry-After") != strconv.Itoa(1) {
			t.Fatalf("%s with the budget full: %d %s %v, want 503 with Retry-After: 1", what, r.status, r.body, r.header)
		}
	}
	wantBusy("login", ts.token(confA, pw("ada", userPass)))
	wantBusy("argon2id client", ts.introspect(basic("rs-argon", rsSecret), "not-a-token"))

	release()
	hashing()
	waiting()
	if r := ts.token(confA, pw("ada", userPass)); r.status != 200 {
		t.Fatalf("login with the budget free: %d %s", r.status, r.body)
	}
	if r := ts.introspect(basic("rs-argon", rsSecret), "not-a-token"); r.status != 200 {
		t.Fatalf("argon2id client with the budget free: %d %s", r.status, r.body)
	}
	if n := hashes.Admitted(); n != 0 {
		t.Fatalf("%d hashes still admitted", n)
	}
}

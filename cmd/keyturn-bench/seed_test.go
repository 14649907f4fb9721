package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// testIssuer is the issuer of the test servers of this file.
const testIssuer = "http://127.0.0.1"

// benchSpecs are the clients of a bench config, as run.sh writes it.
func benchSpecs() []clients.Spec {
	return []clients.Spec{
		{ID: "bench", SecretHash: clients.SHA256Hash(benchSecret),
			GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials},
			Scopes:     []string{"read", "write"}, DefaultScopes: []string{"read"}},
	}
}

// backends runs fn on a fresh, migrated SQLite store and on a PostgreSQL
// one (skipped without KEYTURN_TEST_DATABASE_URL), with the store's URL.
func backends(t *testing.T, fn func(t *testing.T, dbURL string, store *sqlstore.Store)) {
	for name, newURL := range map[string]func(testing.TB) string{
		"sqlite": sqlstoretest.SQLiteURL, "postgres": sqlstoretest.PostgresURL,
	} {
		t.Run(name, func(t *testing.T) {
			u := newURL(t)
			fn(t, u, sqlstoretest.Open(t, u))
		})
	}
}

// writeBenchConfig writes the keyturn.yaml of a server on dbURL with the
// bench client (its secret from KEYTURN_BENCH_CLIENT_SECRET) and returns
// its path and the environment it needs: the master secret of the test
// servers (servertest's key seed 7), so that seeded tokens are theirs.
func writeBenchConfig(t *testing.T, dbURL string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	yaml := `issuer: ` + testIssuer + `
data_dir: ` + filepath.Join(dir, "data") + `
database:
  url: "` + dbURL + `"
clients:
  - id: bench
    secret_env: ` + envClientSecret + `
    grant_types: [password, refresh_token, client_credentials]
    scopes: [read, write]
    default_scopes: [read]
`
	path := filepath.Join(dir, "keyturn.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, map[string]string{
		"KEYTURN_SECRET": base64.StdEncoding.EncodeToString(servertest.KeySecret(7)),
		envClientSecret:  benchSecret,
	}
}

// runJSON runs the tool with args and env and decodes its JSON result.
func runJSON(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "-json"), func(k string) string { return env[k] }, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	return res
}

// TestSeededRefresh seeds a few hundred sessions straight into the store
// of a running server (as -seed-sessions does with a million), then
// refreshes random ones of them over HTTP: zero errors means every seeded
// token is one the server accepts, and that every refresh presented the
// session's latest token, also to sessions refreshed more than once (a
// stale one would be reuse, revoke the session and fail).
func TestSeededRefresh(t *testing.T) {
	backends(t, func(t *testing.T, dbURL string, store *sqlstore.Store) {
		ts, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: testIssuer, Clients: benchSpecs()})
		cfg, env := writeBenchConfig(t, dbURL)
		const seeded, requests = 300, 200
		res := runJSON(t, env, "-url", ts.URL, "-client-id", "bench", "-seed-sessions", "300", "-config", cfg,
			"-scenario", "refresh", "-c", "4", "-n", "200", "-d", "30s")
		if res.Summary.Requests != requests || res.Summary.OK != requests || len(res.Errors) != 0 {
			t.Fatalf("requests %d, ok %d, errors %v; want %d ok", res.Summary.Requests, res.Summary.OK, res.Errors, requests)
		}
		if res.Setup.Seeded != seeded || res.Setup.Sessions != seeded || res.Setup.Logins != 0 || res.Relogins != 0 || res.LostSession != 0 {
			t.Fatalf("setup %+v, relogins %d, lost %d: want %d seeded sessions, no logins", res.Setup, res.Relogins, res.LostSession, seeded)
		}

		fams, err := store.ListFamilies(t.Context(), storage.FamilyFilter{ClientID: "bench"})
		if err != nil {
			t.Fatal(err)
		}
		var sum, rotated, most uint64
		users := map[string]bool{}
		for _, f := range fams {
			sum += f.Generation
			most = max(most, f.Generation)
			if f.Generation > 0 {
				rotated++
			}
			users[f.UserID] = true
			if !f.Live(time.Now()) || f.Scope != "read" {
				t.Fatalf("seeded family %+v: want live, with the client's default scope", f)
			}
		}
		if len(fams) != seeded || sum != requests {
			t.Fatalf("%d families, %d rotations; want %d and %d", len(fams), sum, seeded, requests)
		}
		// Random picks (not the next in turn): about 146 of 300 sessions
		// rotated, some of them twice or more (50 picks of a worker's 75
		// sessions all differ with probability about e^-16).
		if rotated <= 4 || most < 2 {
			t.Errorf("%d sessions rotated, at most %d times: want random picks over all of them, some again", rotated, most)
		}
		u, err := store.GetUserByUsername(t.Context(), seedUsername)
		if err != nil || len(users) != 1 || !users[u.ID] {
			t.Errorf("sessions of users %v; want all of %s (%v)", users, seedUsername, err)
		}
	})
}

// TestSeedingRefusesAWrongSetup: seeding checks what it is told before it
// writes: a client of the config that may refresh, and bench users that
// exist.
func TestSeedingRefusesAWrongSetup(t *testing.T) {
	dbURL := sqlstoretest.SQLiteURL(t)
	store := sqlstoretest.Open(t, dbURL)
	ts, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: testIssuer, Clients: benchSpecs()})
	cfg, env := writeBenchConfig(t, dbURL)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown client", []string{"-client-id", "nobody"}, `client "nobody" is not in`},
		{"missing bench user", []string{"-client-id", "bench", "-username", "ghost"}, `user "ghost" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-url", ts.URL, "-seed-sessions", "10", "-config", cfg, "-c", "2", "-n", "4", "-password", "pw"}, tc.args...)
			if code := run(args, func(k string) string { return env[k] }, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, %q; want 1 and %q", code, stderr.String(), tc.want)
			}
		})
	}
	if fams, err := store.ListFamilies(t.Context(), storage.FamilyFilter{}); err != nil || len(fams) != 0 {
		t.Fatalf("%d families, %v: want none seeded", len(fams), err)
	}
}

// TestRoundRobinInstances runs refreshes against two instances on one
// store, as behind a round-robin load balancer: the requests alternate,
// and with one worker and one session each refresh presents to one
// instance the token the other just issued; zero errors.
func TestRoundRobinInstances(t *testing.T) {
	backends(t, func(t *testing.T, _ string, store *sqlstore.Store) {
		now := time.Now().UTC()
		for _, name := range []string{benchUser + "-1", benchUser + "-2"} {
			servertest.AddUser(t, store, name, benchPass, now)
		}
		a, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: testIssuer, Clients: benchSpecs()})
		b, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: testIssuer, Clients: benchSpecs()})
		env := map[string]string{envClientSecret: benchSecret, envPassword: benchPass}
		res := runJSON(t, env, "-url", a.URL+","+b.URL+"/", "-client-id", "bench", "-username", benchUser, "-users", "2",
			"-scenario", "refresh", "-c", "1", "-sessions", "1", "-n", "100", "-d", "30s")
		if res.Summary.OK != 100 || len(res.Errors) != 0 || res.Relogins != 0 {
			t.Fatalf("ok %d, errors %v, relogins %d; want 100 ok", res.Summary.OK, res.Errors, res.Relogins)
		}
		if res.ByURL[a.URL] != 50 || res.ByURL[b.URL] != 50 || len(res.ByURL) != 2 {
			t.Fatalf("requests by instance %v; want 50 each to %s and %s", res.ByURL, a.URL, b.URL)
		}
		if res.URL != a.URL+","+b.URL {
			t.Errorf("url %q", res.URL)
		}
	})
}

// TestSeededMixed: the mixed scenario refreshes seeded sessions and logs
// in only for its access tokens and its password requests.
func TestSeededMixed(t *testing.T) {
	dbURL := sqlstoretest.SQLiteURL(t)
	store := sqlstoretest.Open(t, dbURL)
	servertest.AddUser(t, store, benchUser, benchPass, time.Now().UTC())
	specs := append(benchSpecs(), clients.Spec{ID: "rs", SecretHash: clients.SHA256Hash(rsSecret), Introspect: true, Resources: []string{testIssuer}})
	ts, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: testIssuer, Clients: specs})
	cfg, env := writeBenchConfig(t, dbURL)
	env[envPassword], env[envIntrospectSecret] = benchPass, rsSecret
	res := runJSON(t, env, "-url", ts.URL, "-client-id", "bench", "-introspect-client-id", "rs", "-username", benchUser,
		"-seed-sessions", "50", "-config", cfg, "-scenario", "mixed", "-c", "2", "-tokens", "3", "-n", "80", "-d", "30s")
	if res.Summary.OK != 80 || len(res.Errors) != 0 || res.Ops["refresh"].Requests == 0 {
		t.Fatalf("ok %d, errors %v, ops %+v; want 80 ok with refreshes", res.Summary.OK, res.Errors, res.Ops)
	}
	if res.Setup.Seeded != 50 || res.Setup.Sessions != 50 || res.Setup.Logins != 3 || res.Setup.Tokens != 3 {
		t.Fatalf("setup %+v: want 50 seeded sessions and 3 logins for the access tokens", res.Setup)
	}
}

// TestSeededSessionLost: without a password to log in again, a seeded
// session whose refresh fails is given up and leaves the worker's share,
// so the worker goes on with the others and never presents it again.
func TestSeededSessionLost(t *testing.T) {
	url := newTestServer(t)
	c := settings{URL: url, ClientID: "bench", ClientSecret: benchSecret, Scenario: scenarioRefresh,
		Concurrency: 1, Duration: time.Minute, Requests: 1, Users: 1, Tokens: 1, Timeout: 5 * time.Second, Seed: 1,
		SeedSessions: 1, Config: "unused.yaml"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(c)
	defer tg.close()
	w := &worker{t: tg, scenario: scenarioRefresh, random: true, sessions: []string{"ktr2.bogus.0.bogus"},
		rng: rand.New(rand.NewPCG(1, 1)), stats: newStats()}
	if out := w.send(t.Context(), opRefresh); out.ok || out.errorKey() != "400 invalid_grant" {
		t.Fatalf("bogus token: %+v, want 400 invalid_grant", out)
	}
	if w.stats.lost != 1 || w.stats.relogins != 0 || len(w.sessions) != 0 || w.haveSession() {
		t.Fatalf("lost %d, relogins %d, sessions %q: want the session given up", w.stats.lost, w.stats.relogins, w.sessions)
	}
}

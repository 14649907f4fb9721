package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// Credentials of the in-process test server.
const (
	benchSecret = "bench-secret"
	rsSecret    = "rs-secret"
	benchUser   = "ada"
	benchPass   = "correct horse"
)

// newTestServer runs the real Keyturn handler over a fresh SQLite store,
// on loopback, with the clients a bench config declares: a confidential
// client with every grant and a resource server that may introspect.
func newTestServer(t *testing.T) string {
	t.Helper()
	store := sqlstoretest.SQLite(t)
	const issuer = "http://127.0.0.1"
	now := time.Now().UTC()
	// ada for -users 1; ada-1 ... ada-4 for -users 4 (the kit's fast hash
	// keeps the test fast).
	for _, name := range []string{benchUser, benchUser + "-1", benchUser + "-2", benchUser + "-3", benchUser + "-4"} {
		servertest.AddUser(t, store, name, benchPass, now)
	}
	ts, _, _ := servertest.Serve(t, store, servertest.Setup{Issuer: issuer, Clients: []clients.Spec{
		{ID: "bench", SecretHash: clients.SHA256Hash(benchSecret),
			GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials},
			Scopes:     []string{"read", "write"}, DefaultScopes: []string{"read"}},
		{ID: "rs", SecretHash: clients.SHA256Hash(rsSecret), Introspect: true, Resources: []string{issuer}},
	}})
	return ts.URL
}

// TestScenarios runs every scenario for a few requests against a real
// server: zero errors means the tool speaks the protocol, and for refresh
// that every request presented the token the previous one returned (a
// reused token would revoke the session and fail the next refresh).
func TestScenarios(t *testing.T) {
	url := newTestServer(t)
	for _, scenario := range scenarios {
		t.Run(scenario, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{
				"-url", url, "-client-id", "bench", "-username", benchUser, "-users", "4",
				"-introspect-client-id", "rs",
				"-scenario", scenario, "-c", "4", "-n", "60", "-d", "30s",
				"-sessions", "5", "-tokens", "4", "-pid", strconv.Itoa(os.Getpid()), "-json", "-label", "test",
			}
			env := map[string]string{
				envClientSecret: benchSecret, envPassword: benchPass, envIntrospectSecret: rsSecret,
			}
			code := run(args, func(k string) string { return env[k] }, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var res result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
			}
			if res.Summary.Requests != 60 || res.Summary.OK != 60 || res.Summary.Errors != 0 || len(res.Errors) != 0 {
				t.Fatalf("requests %d, ok %d, errors %v; want 60 ok", res.Summary.Requests, res.Summary.OK, res.Errors)
			}
			if res.Relogins != 0 || res.LostSession != 0 {
				t.Errorf("relogins %d, lost %d; want 0", res.Relogins, res.LostSession)
			}
			if res.Summary.P50ms <= 0 || res.Summary.P50ms > res.Summary.P99ms || res.Summary.P99ms > res.Summary.MaxMs {
				t.Errorf("latency p50 %v p99 %v max %v: want 0 < p50 <= p99 <= max", res.Summary.P50ms, res.Summary.P99ms, res.Summary.MaxMs)
			}
			if res.Usage.PID != os.Getpid() || res.Usage.MaxRSSMiB <= 0 || res.Usage.RSSSamples == 0 {
				t.Errorf("usage %+v: want this process's RSS sampled", res.Usage)
			}
			switch scenario {
			case scenarioRefresh:
				if res.Setup.Sessions != 5 {
					t.Errorf("setup sessions %d, want 5", res.Setup.Sessions)
				}
			case scenarioIntrospect:
				if res.Setup.Tokens != 4 {
					t.Errorf("setup tokens %d, want 4", res.Setup.Tokens)
				}
			case scenarioMixed:
				if res.Ops["refresh"].Requests == 0 {
					t.Errorf("mixed sent no refresh: %+v", res.Ops)
				}
			}
		})
	}
}

// TestRefreshRotationIsReal checks that replaying a rotated token is what
// the server sees as reuse: the tool must never do it. Refreshing one
// session 20 times in a row, with -c 1, succeeds only if each request used
// the previous response's token.
func TestRefreshRotationIsReal(t *testing.T) {
	url := newTestServer(t)
	c := settings{
		URL: url, ClientID: "bench", ClientSecret: benchSecret, Username: benchUser, Password: benchPass,
		Scenario: scenarioRefresh, Concurrency: 1, Duration: 30 * time.Second, Requests: 20, Sessions: 1, Tokens: 1, Users: 1,
		Timeout: 5 * time.Second, Seed: 1,
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	res, err := runBench(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.OK != 20 || res.Relogins != 0 {
		t.Fatalf("ok %d, relogins %d, errors %v", res.Summary.OK, res.Relogins, res.Errors)
	}

	// The other way round: a session whose token the tool did not get
	// back (here: a stale one) fails, is counted, and is replaced.
	tg := newTarget(c)
	defer tg.close()
	var buf bytes.Buffer
	login := tg.login(t.Context(), &buf, benchUser)
	if !login.ok {
		t.Fatalf("login: %s", login.errorKey())
	}
	if out := tg.refresh(t.Context(), &buf, login.refreshToken); !out.ok {
		t.Fatalf("refresh: %s", out.errorKey())
	}
	w := &worker{t: tg, scenario: scenarioRefresh, sessions: []string{login.refreshToken}, users: []string{benchUser}, stats: newStats()}
	out := w.send(t.Context(), opRefresh)
	if out.ok || out.errorKey() != "400 invalid_grant" {
		t.Fatalf("replayed token: %+v, want 400 invalid_grant", out)
	}
	if w.stats.relogins != 1 || w.sessions[0] == "" || w.sessions[0] == login.refreshToken {
		t.Fatalf("after a failed refresh: relogins %d, session %q", w.stats.relogins, w.sessions[0])
	}
}

// TestInterruptedRunReports: a signal (here: ctx) ends the run early, and
// the figures up to then are still reported.
func TestInterruptedRunReports(t *testing.T) {
	url := newTestServer(t)
	c := settings{
		URL: url, ClientID: "bench", ClientSecret: benchSecret,
		Scenario: scenarioClientCredentials, Concurrency: 2, Duration: 30 * time.Second, Users: 1, Tokens: 1,
		Timeout: 5 * time.Second, Seed: 1,
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	res, err := runBench(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Seconds > 5 || res.Summary.OK == 0 || res.Summary.Errors != 0 {
		t.Fatalf("interrupted %v after %.1fs: ok %d, errors %v", res.Interrupted, res.Seconds, res.Summary.OK, res.Errors)
	}
}

// TestUsersSpreadLogins: -users N names <username>-1 ... <username>-N,
// over which logins are spread (as a deployment's are over its users);
// -users 1 is <username> itself.
func TestUsersSpreadLogins(t *testing.T) {
	c := settings{Username: "ada", Users: 3}
	if got := c.usernames(); len(got) != 3 || got[0] != "ada-1" || got[2] != "ada-3" {
		t.Fatalf("usernames = %v", got)
	}
	c.Users = 1
	if got := c.usernames(); len(got) != 1 || got[0] != "ada" {
		t.Fatalf("usernames = %v", got)
	}
}

func TestMeasureHash(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with the production parameters")
	}
	h, err := measureHash(1)
	if err != nil {
		t.Fatal(err)
	}
	if h.MedianMs <= 0 || h.LimitPerSecond <= 0 || h.CPUs < 1 || !strings.Contains(h.Params, "argon2id") {
		t.Fatalf("%+v", h)
	}
}

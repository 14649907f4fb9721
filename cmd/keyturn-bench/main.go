// Command keyturn-bench drives a running Keyturn over real HTTP with a fixed
// concurrency for a bounded time or number of requests, and reports
// requests/s, latency percentiles, errors by HTTP status and OAuth error
// code, and (with -pid) the server's CPU and memory. See BENCHMARKS.md.
//
//	keyturn-bench -url http://127.0.0.1:8080 -client-id bench -username bench -users 64 \
//	    -scenario refresh -c 16 -d 15s -pid "$(pgrep -n keyturn)"
//
// Secrets are best given in the environment, where other users cannot see
// them in the process list: KEYTURN_BENCH_CLIENT_SECRET, KEYTURN_BENCH_PASSWORD
// and KEYTURN_BENCH_INTROSPECT_SECRET (the flags of the same names override
// them). Use test credentials only: this is a load generator, not a client.
//
// Runs are bounded: at most 10 minutes (-allow-long lifts that to 24 hours)
// and, unless -allow-remote, only against a loopback address.
//
// Logins can be spread over -users test users, <username>-1 to
// <username>-N, all with the same password, as a deployment's logins are
// spread over its users (the login throttle counts failures per username
// and address; concurrent correct logins of one user all succeed). A
// worker owns its users as it owns its sessions.
//
// At scale: -seed-sessions N -config keyturn.yaml inserts N live sessions
// of -client-id straight into the database the server's config names,
// with their ktr2 refresh tokens minted from its master secret, before
// the run; each refresh then goes to a uniformly random seeded session
// (of the worker's own share) with its latest token. Several -url values,
// comma-separated, get the requests in turn, as behind a round-robin load
// balancer:
//
//	keyturn-bench -url http://127.0.0.1:8080,http://127.0.0.1:8081 -client-id bench \
//	    -seed-sessions 1000000 -config keyturn.yaml -scenario refresh -c 64 -d 30s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Scenarios.
const (
	scenarioRefresh           = "refresh"
	scenarioPassword          = "password"
	scenarioClientCredentials = "client_credentials"
	scenarioIntrospect        = "introspect"
	scenarioMixed             = "mixed"
)

var scenarios = []string{scenarioRefresh, scenarioPassword, scenarioClientCredentials, scenarioIntrospect, scenarioMixed}

// Bounds on a run.
const (
	maxDuration     = 10 * time.Minute
	maxLongDuration = 24 * time.Hour
	maxConcurrency  = 4096
	maxSessions     = 1_000_000 // logged in or seeded
	maxTokens       = 10_000
	maxUsers        = 100_000
)

// Environment variables that hold secrets (flags override them).
const (
	envClientSecret     = "KEYTURN_BENCH_CLIENT_SECRET"
	envPassword         = "KEYTURN_BENCH_PASSWORD"
	envIntrospectSecret = "KEYTURN_BENCH_INTROSPECT_SECRET"
)

// settings is a validated command line.
type settings struct {
	URL              string
	ClientID         string
	ClientSecret     string
	Username         string
	Users            int
	Password         string
	IntrospectID     string
	IntrospectSecret string
	Scenario         string
	Concurrency      int
	Duration         time.Duration // 0: until Requests, within maxDuration
	Requests         int64         // 0: until Duration
	Sessions         int
	Tokens           int
	PID              int
	JSON             bool
	Label            string
	Timeout          time.Duration
	AllowRemote      bool
	AllowLong        bool
	MeasureHash      int
	Seed             uint64
	SignalAfterSetup bool
	SeedSessions     int
	Config           string
	// URLs are the instances of -url, in the order requests go to them.
	URLs []string
	// lookupEnv resolves the environment references of -config.
	lookupEnv func(string) (string, bool)
}

// parseArgs parses and validates the command line. getenv supplies the
// secrets not given as flags.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	var c settings
	fs := flag.NewFlagSet("keyturn-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "base URL of the running Keyturn (loopback only, unless -allow-remote); several, comma-separated: each request goes to the next in turn (round-robin)")
	fs.StringVar(&c.ClientID, "client-id", "", "client for the token endpoint (password, refresh_token, client_credentials)")
	fs.StringVar(&c.ClientSecret, "client-secret", "", "its secret (default $"+envClientSecret+"; empty: a public client, client_id in the body)")
	fs.StringVar(&c.Username, "username", "", "test user for the password grant (with -users N > 1: the prefix of <username>-1 ... <username>-N)")
	fs.IntVar(&c.Users, "users", 1, "how many test users logins are spread over, as a deployment's are (the login throttle counts per username)")
	fs.StringVar(&c.Password, "password", "", "its password (default $"+envPassword+")")
	fs.StringVar(&c.IntrospectID, "introspect-client-id", "", "resource-server client (introspect: true) for introspection (default -client-id)")
	fs.StringVar(&c.IntrospectSecret, "introspect-client-secret", "", "its secret (default $"+envIntrospectSecret+", else -client-secret)")
	fs.StringVar(&c.Scenario, "scenario", scenarioRefresh, "what to send: "+strings.Join(scenarios, ", "))
	fs.IntVar(&c.Concurrency, "c", 16, "concurrent requests (workers)")
	fs.DurationVar(&c.Duration, "d", 15*time.Second, "how long to run (at most 10m; 0: until -n)")
	fs.Int64Var(&c.Requests, "n", 0, "stop after this many requests (0: run for -d); with -d, whichever comes first")
	fs.IntVar(&c.Sessions, "sessions", 0, "refresh, mixed: sessions logged in first, shared out among workers (default -c; at least -c)")
	fs.IntVar(&c.Tokens, "tokens", 16, "introspect, mixed: access tokens obtained first (password logins) and introspected in turn")
	fs.IntVar(&c.PID, "pid", 0, "server process id: report its CPU and RSS (from /proc)")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON")
	fs.StringVar(&c.Label, "label", "", "a name for this run, printed with the result")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.BoolVar(&c.AllowLong, "allow-long", false, "allow -d up to 24h")
	fs.IntVar(&c.MeasureHash, "measure-hash", 0, "instead of a run: time this many argon2id verifications with Keyturn's default parameters and print the password-grant limit (cores / hash time)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the mixed scenario's choices")
	fs.BoolVar(&c.SignalAfterSetup, "signal-after-setup", false, "send SIGUSR1 to -pid when the setup logins are done and the measured run starts: the profiling server of profile_test.go starts its CPU profile then (keyturn itself would die of it)")
	fs.IntVar(&c.SeedSessions, "seed-sessions", 0, "refresh, mixed: insert this many live sessions of -client-id into the database of -config before the run (instead of -sessions logins); each refresh picks a uniformly random one of the worker's share")
	fs.StringVar(&c.Config, "config", "", "with -seed-sessions: the server's keyturn.yaml (its database, clients and master secret: KEYTURN_SECRET or secret_file)")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.lookupEnv = func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	if set["sessions"] && c.SeedSessions != 0 {
		return settings{}, errors.New("-sessions and -seed-sessions: give one (seeded sessions replace the logged-in ones)")
	}
	if !set["client-secret"] {
		c.ClientSecret = getenv(envClientSecret)
	}
	if !set["password"] {
		c.Password = getenv(envPassword)
	}
	if !set["introspect-client-secret"] {
		c.IntrospectSecret = getenv(envIntrospectSecret)
	}
	if c.MeasureHash != 0 {
		if c.MeasureHash < 1 || c.MeasureHash > 1000 {
			return settings{}, errors.New("-measure-hash: want 1 to 1000 hashes")
		}
		return c, nil
	}
	return c, c.validate()
}

// validate checks the bounds and fills the defaults that depend on other flags.
func (c *settings) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	known := false
	for _, s := range scenarios {
		known = known || s == c.Scenario
	}
	if !known {
		add("-scenario: unknown %q (want %s)", c.Scenario, strings.Join(scenarios, ", "))
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		add("-c: %d not in [1, %d]", c.Concurrency, maxConcurrency)
	}
	limit := maxDuration
	if c.AllowLong {
		limit = maxLongDuration
	}
	switch {
	case c.Duration < 0:
		add("-d: %s is negative", c.Duration)
	case c.Duration > limit && !c.AllowLong:
		add("-d: %s is over %s (add -allow-long to go up to %s)", c.Duration, maxDuration, maxLongDuration)
	case c.Duration > limit:
		add("-d: %s is over %s", c.Duration, limit)
	}
	if c.Requests < 0 {
		add("-n: %d is negative", c.Requests)
	}
	if c.Duration == 0 && c.Requests == 0 {
		add("-d and -n are both 0: give a duration, a request count or both")
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		add("-timeout: %s not in (0, 1m]", c.Timeout)
	}
	c.URLs = nil
	for _, u := range strings.Split(c.URL, ",") {
		if err := checkTarget(u, c.AllowRemote); err != nil {
			add("-url: %v", err)
		}
		c.URLs = append(c.URLs, strings.TrimRight(u, "/"))
	}
	c.URL = strings.Join(c.URLs, ",")

	usesSessions := c.Scenario == scenarioRefresh || c.Scenario == scenarioMixed
	if c.SeedSessions != 0 {
		switch {
		case !usesSessions:
			add("-seed-sessions: the %s scenario uses no sessions", c.Scenario)
		case c.Config == "":
			add("-seed-sessions: needs -config, the server's keyturn.yaml")
		}
		c.Sessions = c.SeedSessions
	} else if c.Config != "" {
		add("-config: only with -seed-sessions")
	}
	// Seeded refreshes need no login: a password only replaces a session
	// lost to a failed refresh.
	needsUser := c.Scenario != scenarioClientCredentials && !(c.Scenario == scenarioRefresh && c.SeedSessions != 0)
	if c.ClientID == "" {
		add("-client-id: required")
	}
	if needsUser && (c.Username == "" || c.Password == "") {
		add("-username and -password (or $%s): required by the %s scenario", envPassword, c.Scenario)
	}
	if c.IntrospectID == "" {
		c.IntrospectID = c.ClientID
		if c.IntrospectSecret == "" {
			c.IntrospectSecret = c.ClientSecret
		}
	}
	if c.Sessions == 0 && usesSessions {
		c.Sessions = c.Concurrency
	}
	switch {
	case c.SeedSessions != 0 && (c.SeedSessions < c.Concurrency || c.SeedSessions > maxSessions):
		add("-seed-sessions: %d not in [-c %d, %d]: every worker needs a session of its own", c.SeedSessions, c.Concurrency, maxSessions)
	case c.Sessions < 0 || c.Sessions > maxSessions:
		add("-sessions: %d not in [0, %d]", c.Sessions, maxSessions)
	case usesSessions && c.Sessions < c.Concurrency:
		// A worker owns its sessions, so that a refresh token is never
		// presented by two workers (which would be reuse, and revoke it).
		add("-sessions: %d is fewer than -c %d: every worker needs a session of its own", c.Sessions, c.Concurrency)
	}
	if c.Users < 1 || c.Users > maxUsers {
		add("-users: %d not in [1, %d]", c.Users, maxUsers)
	}
	if c.Tokens < 1 || c.Tokens > maxTokens {
		add("-tokens: %d not in [1, %d]", c.Tokens, maxTokens)
	}
	if c.PID < 0 {
		add("-pid: %d is negative", c.PID)
	}
	if c.SignalAfterSetup && c.PID == 0 {
		add("-signal-after-setup: needs -pid")
	}
	return errors.Join(errs...)
}

// usernames lists the test users logins are spread over.
func (c *settings) usernames() []string {
	if c.Users <= 1 {
		return []string{c.Username}
	}
	names := make([]string, c.Users)
	for i := range names {
		names[i] = c.Username + "-" + strconv.Itoa(i+1)
	}
	return names
}

// deadline is how long the run may last: -d, or the cap when only -n is given.
func (c *settings) deadline() time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	if c.AllowLong {
		return maxLongDuration
	}
	return maxDuration
}

// checkTarget refuses anything but an http(s) URL whose host is a loopback
// address (an IP literal or "localhost"), unless allowRemote: a load tool
// pointed at someone else's server by mistake is an attack.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http or https URL", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want a base URL without user, query or fragment", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address (127.0.0.0/8, ::1, localhost); add -allow-remote if you mean it", host)
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status (0 ok, 2 a
// usage error, 1 a failed run).
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "keyturn-bench:", strings.ReplaceAll(err.Error(), "\n", "\nkeyturn-bench: "))
		return 2
	}
	if c.MeasureHash > 0 {
		return printHashTime(stdout, c.MeasureHash, c.JSON)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runBench(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "keyturn-bench:", err)
		return 1
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "keyturn-bench:", err)
			return 1
		}
	} else {
		res.print(stdout)
	}
	return 0
}

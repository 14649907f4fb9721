package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keyturn/keyturn/server"
)

// op is one kind of request.
type op int

const (
	opRefresh op = iota
	opIntrospect
	opClientCredentials
	opPassword
	numOps
)

var opNames = [numOps]string{"refresh", "introspect", "client_credentials", "password"}

func (o op) String() string { return opNames[o] }

// mixedWeights is the mixed scenario's blend, in percent: mostly refreshes
// (every session refreshes once per access-token lifetime), some resource
// servers introspecting, a few services, and rare logins.
var mixedWeights = [numOps]int{opRefresh: 80, opIntrospect: 15, opClientCredentials: 4, opPassword: 1}

// pickOp maps a number in [0, 100) to an op of the mixed blend.
func pickOp(n int) op {
	for o := range numOps {
		if n < mixedWeights[o] {
			return o
		}
		n -= mixedWeights[o]
	}
	return opRefresh
}

// target sends requests to the server under test. It is shared by every
// worker: one transport, with as many idle connections per host as there
// are workers, so connections are reused and never re-dialled. With
// several instances, each request goes to the next one in turn, as a
// round-robin load balancer sends them.
type target struct {
	http      *http.Client
	bases     []string
	turn      atomic.Uint64 // requests sent so far: the next goes to bases[turn % len]
	auth      string        // Authorization of the token client; "" for a public client
	clientID  string
	introAuth string
	password  string
}

func newTarget(c settings) *target {
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: the target is on loopback
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        c.Concurrency + 16,
		MaxIdleConnsPerHost: c.Concurrency + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	t := &target{
		http:     &http.Client{Transport: tr, Timeout: c.Timeout},
		bases:    c.URLs,
		clientID: c.ClientID,
		password: c.Password,
	}
	if c.ClientSecret != "" {
		t.auth = basicAuth(c.ClientID, c.ClientSecret)
	}
	if c.IntrospectSecret != "" {
		t.introAuth = basicAuth(c.IntrospectID, c.IntrospectSecret)
	}
	return t
}

func (t *target) close() { t.http.CloseIdleConnections() }

// basicAuth encodes client credentials as RFC 6749 §2.3.1 requires: each
// form-urlencoded, then joined with ':' and base64-encoded.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// outcome is one request's result.
type outcome struct {
	status  int    // 0: no HTTP response
	target  int    // index of the instance (-url) it was sent to
	code    string // OAuth error code, or why a 200 did not count
	ok      bool
	latency time.Duration
	// refreshToken is the new refresh token of a successful refresh or login.
	refreshToken string
	accessToken  string
	retryAfter   time.Duration
}

// errorKey names an unsuccessful outcome for the error tallies.
func (o outcome) errorKey() string {
	if o.status == 0 {
		return "transport: " + o.code
	}
	if o.code == "" {
		return strconv.Itoa(o.status)
	}
	return strconv.Itoa(o.status) + " " + o.code
}

// tokenBody is what the tool reads of a response; every other field is ignored.
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Active       *bool  `json:"active"`
	Error        string `json:"error"`
}

// post sends a form body to path with auth and reads the whole response, so
// that the connection goes back to the pool.
func (t *target) post(ctx context.Context, buf *bytes.Buffer, path, auth, body string, want op) outcome {
	inst := int((t.turn.Add(1) - 1) % uint64(len(t.bases)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.bases[inst]+path, strings.NewReader(body))
	if err != nil {
		return outcome{code: err.Error(), target: inst}
	}
	req.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if auth != "" {
		req.Header["Authorization"] = []string{auth}
	}
	start := time.Now()
	resp, err := t.http.Do(req)
	if err != nil {
		return outcome{code: transportError(err), latency: time.Since(start), target: inst}
	}
	buf.Reset()
	_, rerr := buf.ReadFrom(resp.Body)
	resp.Body.Close()
	out := outcome{status: resp.StatusCode, latency: time.Since(start), target: inst}
	if rerr != nil {
		out.status, out.code = 0, transportError(rerr)
		return out
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil {
			out.retryAfter = time.Duration(s) * time.Second
		}
	}
	if resp.StatusCode != http.StatusOK {
		var b tokenBody
		if json.Unmarshal(buf.Bytes(), &b) == nil {
			out.code = b.Error
		}
		return out
	}
	switch want {
	case opClientCredentials:
		out.ok = true // the body is not needed; skip decoding it
	case opIntrospect:
		var b tokenBody
		switch {
		case json.Unmarshal(buf.Bytes(), &b) != nil || b.Active == nil:
			out.code = "malformed introspection response"
		case !*b.Active:
			out.code = "active=false"
		default:
			out.ok = true
		}
	default:
		var b tokenBody
		switch {
		case json.Unmarshal(buf.Bytes(), &b) != nil:
			out.code = "malformed token response"
		case b.AccessToken == "" || b.RefreshToken == "":
			out.code = "token response without access or refresh token"
		default:
			out.ok, out.accessToken, out.refreshToken = true, b.AccessToken, b.RefreshToken
		}
	}
	return out
}

// transportError names a failure without an HTTP response, coarsely enough
// that the tallies group them.
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + " error"
	}
	return "other"
}

func (t *target) refresh(ctx context.Context, buf *bytes.Buffer, rt string) outcome {
	return t.post(ctx, buf, server.PathToken, t.auth, t.clientParam("grant_type=refresh_token&refresh_token="+url.QueryEscape(rt)), opRefresh)
}

func (t *target) login(ctx context.Context, buf *bytes.Buffer, username string) outcome {
	return t.post(ctx, buf, server.PathToken, t.auth, t.clientParam("grant_type=password&username="+
		url.QueryEscape(username)+"&password="+url.QueryEscape(t.password)), opPassword)
}

func (t *target) clientCredentials(ctx context.Context, buf *bytes.Buffer) outcome {
	return t.post(ctx, buf, server.PathToken, t.auth, t.clientParam("grant_type=client_credentials"), opClientCredentials)
}

func (t *target) introspect(ctx context.Context, buf *bytes.Buffer, at string) outcome {
	return t.post(ctx, buf, server.PathIntrospect, t.introAuth, "token="+url.QueryEscape(at), opIntrospect)
}

// clientParam adds client_id to the body of a public client's request.
func (t *target) clientParam(body string) string {
	if t.auth != "" {
		return body
	}
	return body + "&client_id=" + url.QueryEscape(t.clientID)
}

// stats is one worker's (or, merged, the run's) tallies per op.
type stats struct {
	hist     [numOps]*histogram // nil for an op the scenario does not send
	requests [numOps]int64
	ok       [numOps]int64
	errors   map[string]int64 // errorKey -> count, over every op
	byStatus map[string]int64 // status (or "transport") -> count
	byTarget map[int]int64    // instance (-url index) -> requests sent to it
	relogins int64            // logins to replace a session lost to a failed refresh (not counted above)
	lost     int64            // sessions given up
}

func newStats() *stats {
	return &stats{errors: map[string]int64{}, byStatus: map[string]int64{}, byTarget: map[int]int64{}}
}

func (s *stats) add(o op, out outcome) {
	if s.hist[o] == nil {
		s.hist[o] = newHistogram()
	}
	s.requests[o]++
	s.byTarget[out.target]++
	// Latency of every answered request, errors included: a fast error is
	// still a request the server handled. Transport failures have none.
	if out.status != 0 {
		s.hist[o].record(out.latency)
	}
	if out.ok {
		s.ok[o]++
		return
	}
	s.errors[out.errorKey()]++
	if out.status == 0 {
		s.byStatus["transport"]++
	} else {
		s.byStatus[strconv.Itoa(out.status)]++
	}
}

func (s *stats) merge(o *stats) {
	for i := range numOps {
		if o.hist[i] != nil {
			if s.hist[i] == nil {
				s.hist[i] = newHistogram()
			}
			s.hist[i].merge(o.hist[i])
		}
		s.requests[i] += o.requests[i]
		s.ok[i] += o.ok[i]
	}
	for k, v := range o.errors {
		s.errors[k] += v
	}
	for k, v := range o.byStatus {
		s.byStatus[k] += v
	}
	for k, v := range o.byTarget {
		s.byTarget[k] += v
	}
	s.relogins += o.relogins
	s.lost += o.lost
}

// worker is one concurrent client. It owns its sessions: a refresh token
// is only ever presented by the worker that received it, so no session is
// ever refreshed by two requests at once (which would be reuse, and
// revoke it). It logs in its own users (shared only when there are fewer
// users than workers).
type worker struct {
	t        *target
	scenario string
	sessions []string // current refresh token of each owned session; "" once lost
	next     int
	// random: each refresh picks a uniformly random session of the
	// worker's share, not the next in turn (seeded sessions: a refresh
	// reaches a session no recent request touched, as in a deployment
	// with many). A lost session is removed from the share.
	random   bool
	users    []string
	nextUser int
	tokens   []string // access tokens to introspect (shared, read-only)
	rng      *rand.Rand
	buf      bytes.Buffer
	stats    *stats
}

// loop sends requests until the deadline, the request budget or ctx ends.
func (w *worker) loop(ctx context.Context, end time.Time, claim func() bool) {
	for time.Now().Before(end) && ctx.Err() == nil && claim() {
		o := w.choose()
		if o == opRefresh && !w.haveSession() {
			return // every session lost; already counted
		}
		out := w.send(ctx, o)
		if ctx.Err() != nil && out.status == 0 {
			return // interrupted: not the server's failure
		}
		w.stats.add(o, out)
	}
}

func (w *worker) choose() op {
	switch w.scenario {
	case scenarioRefresh:
		return opRefresh
	case scenarioPassword:
		return opPassword
	case scenarioClientCredentials:
		return opClientCredentials
	case scenarioIntrospect:
		return opIntrospect
	}
	return pickOp(w.rng.IntN(100))
}

func (w *worker) haveSession() bool {
	if w.random {
		return len(w.sessions) > 0
	}
	for range w.sessions {
		if w.sessions[w.next] != "" {
			return true
		}
		w.next = (w.next + 1) % len(w.sessions)
	}
	return false
}

func (w *worker) send(ctx context.Context, o op) outcome {
	switch o {
	case opRefresh:
		i := w.next
		if w.random {
			i = w.rng.IntN(len(w.sessions))
		} else {
			w.next = (w.next + 1) % len(w.sessions)
		}
		out := w.t.refresh(ctx, &w.buf, w.sessions[i])
		if out.ok {
			w.sessions[i] = out.refreshToken
		} else if ctx.Err() == nil {
			w.replace(ctx, i)
			if w.random && w.sessions[i] == "" {
				last := len(w.sessions) - 1
				w.sessions[i], w.sessions = w.sessions[last], w.sessions[:last]
			}
		}
		return out
	case opIntrospect:
		return w.t.introspect(ctx, &w.buf, w.tokens[w.rng.IntN(len(w.tokens))])
	case opClientCredentials:
		return w.t.clientCredentials(ctx, &w.buf)
	default:
		return w.t.login(ctx, &w.buf, w.user())
	}
}

// user returns the next of the worker's users, round-robin.
func (w *worker) user() string {
	u := w.users[w.nextUser]
	w.nextUser = (w.nextUser + 1) % len(w.users)
	return u
}

// replace logs in a new session for slot i after a failed refresh: the old
// token's state is unknown (the rotation may have happened), and sending
// it again would be reuse. Not counted as a request of the run. Without a
// password (seeded sessions) the session is only given up.
func (w *worker) replace(ctx context.Context, i int) {
	w.sessions[i] = ""
	for attempt := 0; attempt < 3 && ctx.Err() == nil && w.t.password != ""; attempt++ {
		out := w.t.login(ctx, &w.buf, w.user())
		if out.ok {
			w.sessions[i] = out.refreshToken
			w.stats.relogins++
			return
		}
		time.Sleep(min(max(out.retryAfter, 100*time.Millisecond), 2*time.Second))
	}
	w.stats.lost++
}

// setup is what a scenario needs before the clock starts.
type setup struct {
	sessions []string // refresh tokens
	tokens   []string // access tokens
	took     time.Duration
	logins   int
	seeded   int           // sessions inserted into the database (-seed-sessions)
	seedTook time.Duration // of took
}

// prepare logs in the sessions and fetches the access tokens the scenario
// needs, a few logins at a time (the server bounds concurrent password
// hashes and sheds logins queued past that, with 503 and Retry-After).
func prepare(ctx context.Context, t *target, c settings) (s setup, err error) {
	start := time.Now()
	nSessions, nTokens := 0, 0
	switch c.Scenario {
	case scenarioRefresh:
		nSessions = c.Sessions
	case scenarioIntrospect:
		nTokens = c.Tokens
	case scenarioMixed:
		nSessions, nTokens = c.Sessions, c.Tokens
	}
	if c.SeedSessions > 0 {
		seeded, err := seedSessions(ctx, c)
		if err != nil {
			return s, err
		}
		s.seeded, s.seedTook = len(seeded.tokens), seeded.took
		nSessions = 0 // not logged in
		defer func() {
			if err == nil {
				s.sessions, s.took = seeded.tokens, time.Since(start)
			}
		}()
	}
	// The access tokens come with logins of their own, so that the
	// sessions they name stay live (introspection checks the session).
	n := nSessions + nTokens
	if n == 0 {
		s.took = time.Since(start)
		return s, nil
	}
	// Login k is user k mod users: consecutive logins, in flight together,
	// are different users as long as there are at least as many users as
	// parallel logins.
	users := c.usernames()
	logins := make([]outcome, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(n, 4, c.Concurrency, len(users)) {
		wg.Go(func() {
			var buf bytes.Buffer
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || failed.Load() != nil {
					return
				}
				for attempt := 0; ; attempt++ {
					out := t.login(ctx, &buf, users[i%len(users)])
					if out.ok {
						logins[i] = out
						break
					}
					retryable := out.status == http.StatusServiceUnavailable || out.status == http.StatusTooManyRequests
					if !retryable || attempt == 20 {
						err := fmt.Errorf("setup: login %d failed: %s", i+1, out.errorKey())
						failed.CompareAndSwap(nil, &err)
						return
					}
					time.Sleep(min(max(out.retryAfter, 100*time.Millisecond), 5*time.Second))
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return s, *err
	}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	for i, out := range logins {
		if i < nSessions {
			s.sessions = append(s.sessions, out.refreshToken)
		} else {
			s.tokens = append(s.tokens, out.accessToken)
		}
	}
	s.logins, s.took = n, time.Since(start)
	return s, nil
}

// result is a run's report; it is also the -json output.
type result struct {
	Label       string              `json:"label,omitempty"`
	Scenario    string              `json:"scenario"`
	URL         string              `json:"url"`
	Concurrency int                 `json:"concurrency"`
	Seconds     float64             `json:"seconds"`
	Summary     opResult            `json:"total"`
	Ops         map[string]opResult `json:"ops,omitempty"` // mixed: per request kind
	// ByURL: with several -url instances, the measured requests each got.
	ByURL       map[string]int64 `json:"requests_by_url,omitempty"`
	Errors      map[string]int64 `json:"errors_by_code"`
	ByStatus    map[string]int64 `json:"errors_by_status"`
	Relogins    int64            `json:"relogins"`
	LostSession int64            `json:"sessions_lost"`
	Setup       setupResult      `json:"setup"`
	Usage       usage            `json:"usage"`
	Started     time.Time        `json:"started"`
	// Interrupted: SIGINT or SIGTERM ended the run early; the figures
	// cover it up to then (run.sh stops a background flood this way).
	Interrupted bool `json:"interrupted,omitempty"`
}

type opResult struct {
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"requests_per_second"`
	OKRPS    float64 `json:"ok_per_second"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	MeanMs   float64 `json:"mean_ms"`
}

type setupResult struct {
	Sessions int     `json:"sessions"`
	Tokens   int     `json:"access_tokens"`
	Logins   int     `json:"logins"`
	Seconds  float64 `json:"seconds"`
	// Seeded sessions were inserted into the database (-seed-sessions),
	// in SeedSeconds of Seconds.
	Seeded      int     `json:"seeded_sessions,omitempty"`
	SeedSeconds float64 `json:"seed_seconds,omitempty"`
}

func summarize(h *histogram, requests, ok int64, secs float64) opResult {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := opResult{Requests: requests, OK: ok, Errors: requests - ok}
	if secs > 0 {
		r.RPS, r.OKRPS = float64(requests)/secs, float64(ok)/secs
	}
	if h != nil {
		r.P50ms, r.P90ms, r.P99ms = ms(h.percentile(50)), ms(h.percentile(90)), ms(h.percentile(99))
		r.MaxMs, r.MeanMs = ms(h.maximum()), ms(h.mean())
	}
	return r
}

// runBench prepares the scenario, runs it and reports.
func runBench(ctx context.Context, c settings) (*result, error) {
	t := newTarget(c)
	defer t.close()
	su, err := prepare(ctx, t, c)
	if err != nil {
		return nil, err
	}
	workers := newWorkers(t, c, su)
	var issued atomic.Int64
	claim := func() bool { return c.Requests == 0 || issued.Add(1) <= c.Requests }

	smp, err := startSampler(c.PID, 100*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if c.SignalAfterSetup {
		if err := syscall.Kill(c.PID, syscall.SIGUSR1); err != nil {
			smp.finish()
			return nil, fmt.Errorf("-signal-after-setup: %w", err)
		}
	}
	started := time.Now()
	end := started.Add(c.deadline())
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(ctx, end, claim) })
	}
	wg.Wait()
	elapsed := time.Since(started)
	use := smp.finish()

	total := newStats()
	for _, w := range workers {
		total.merge(w.stats)
	}
	res := &result{
		Label: c.Label, Scenario: c.Scenario, URL: c.URL, Concurrency: c.Concurrency, Seconds: elapsed.Seconds(),
		Errors: total.errors, ByStatus: total.byStatus, Relogins: total.relogins, LostSession: total.lost,
		Setup: setupResult{Sessions: len(su.sessions), Tokens: len(su.tokens), Logins: su.logins, Seconds: su.took.Seconds(),
			Seeded: su.seeded, SeedSeconds: su.seedTook.Seconds()},
		Usage:       use,
		Started:     started.UTC(),
		Interrupted: ctx.Err() != nil,
	}
	res.Summary, res.Ops = summarizeOps(total, elapsed.Seconds(), c.Scenario == scenarioMixed)
	if len(c.URLs) > 1 {
		res.ByURL = map[string]int64{}
		for i, u := range c.URLs {
			res.ByURL[u] = total.byTarget[i]
		}
	}
	return res, nil
}

// newWorkers builds c.Concurrency workers and deals them the prepared
// sessions and the users.
func newWorkers(t *target, c settings, su setup) []*worker {
	users := c.usernames()
	workers := make([]*worker, c.Concurrency)
	for i := range workers {
		w := &worker{
			t: t, scenario: c.Scenario, tokens: su.tokens, stats: newStats(), random: su.seeded > 0,
			rng: rand.New(rand.NewPCG(c.Seed, uint64(i))),
		}
		// Sessions are dealt round-robin: worker i owns i, i+c, i+2c, ...
		// (seeded ones too: each worker then picks uniformly at random
		// within its share, so every session is equally likely and none
		// is ever refreshed by two workers at once).
		for j := i; j < len(su.sessions); j += c.Concurrency {
			w.sessions = append(w.sessions, su.sessions[j])
		}
		// So are users; with fewer users than workers, worker i shares
		// user i mod users.
		for j := i; j < len(users); j += c.Concurrency {
			w.users = append(w.users, users[j])
		}
		if len(w.users) == 0 {
			w.users = []string{users[i%len(users)]}
		}
		workers[i] = w
	}
	return workers
}

// summarizeOps summarizes all requests and, for a mixed scenario or when
// more than one operation ran, each operation on its own.
func summarizeOps(total *stats, secs float64, mixed bool) (opResult, map[string]opResult) {
	all := newHistogram()
	var requests, ok int64
	used := 0
	for o := range numOps {
		if total.hist[o] != nil {
			all.merge(total.hist[o])
		}
		requests += total.requests[o]
		ok += total.ok[o]
		if total.requests[o] > 0 {
			used++
		}
	}
	if !mixed && used <= 1 {
		return summarize(all, requests, ok, secs), nil
	}
	ops := map[string]opResult{}
	for o := range numOps {
		if total.requests[o] > 0 {
			ops[o.String()] = summarize(total.hist[o], total.requests[o], total.ok[o], secs)
		}
	}
	return summarize(all, requests, ok, secs), ops
}

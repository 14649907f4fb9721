package main

// Tests of the real binary: built once per test, run as server processes on
// loopback ports, killed with SIGKILL, restarted, and run side by side on
// one PostgreSQL schema. What in-process tests cannot show: that an
// acknowledged rotation or revocation is durable when the process dies,
// that instances sharing a database agree, and what the process really
// writes to its log.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// processTimeout bounds each step that waits on a process or a request.
const processTimeout = 30 * time.Second

// deployment is a built binary, a config file and the environment its
// processes get: what one operator would run.
type deployment struct {
	t      *testing.T
	bin    string
	dir    string
	config string
	dbURL  string // "" for SQLite under the data directory
	env    []string

	password  string // ada's
	webSecret string // client "web": password, refresh_token; may introspect
	rsSecret  string // client "rs": client_credentials; a resource server
	web, rs   string // their Authorization headers
}

// newDeployment builds keyturn into a temporary directory and writes a
// config with two clients (secrets as sha256: hashes), JSON logs at debug,
// and the database dbURL ("" for SQLite). The master secret comes from
// KEYTURN_SECRET, as instances sharing PostgreSQL need.
func newDeployment(t *testing.T, dbURL string) *deployment {
	t.Helper()
	dir := t.TempDir()
	d := &deployment{
		t: t, dir: dir, bin: filepath.Join(dir, "keyturn"), config: filepath.Join(dir, "keyturn.yaml"), dbURL: dbURL,
		password: "pw-" + randomHex(t), webSecret: "web-" + randomHex(t), rsSecret: "rs-" + randomHex(t),
	}
	d.web, d.rs = servertest.Basic("web", d.webSecret), servertest.Basic("rs", d.rsSecret)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", d.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	yaml := fmt.Sprintf(`issuer: http://127.0.0.1:8080
listen: 127.0.0.1:0
data_dir: %q
cleanup:
  interval: 0s
log:
  format: json
  level: debug
database:
  max_open_conns: 8
`, filepath.Join(dir, "data"))
	if dbURL != "" {
		yaml += fmt.Sprintf("  url: %q\n", dbURL)
	}
	yaml += fmt.Sprintf(`clients:
  - id: web
    secret_hash: %q
    grant_types: [password, refresh_token]
    scopes: [read]
    default_scopes: [read]
    introspect: true
    resources: [http://127.0.0.1:8080]
  - id: rs
    secret_hash: %q
    grant_types: [client_credentials]
    scopes: [read]
    default_scopes: [read]
    introspect: true
    resources: [http://127.0.0.1:8080]
`, clients.SHA256Hash(d.webSecret), clients.SHA256Hash(d.rsSecret))
	if err := os.WriteFile(d.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	// The child sees the test's environment without any KEYTURN_* variable
	// (one would override the config), plus the master secret.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYTURN_") {
			d.env = append(d.env, kv)
		}
	}
	d.env = append(d.env, "KEYTURN_SECRET="+testSecret)
	return d
}

// createUser runs `keyturn users create --password-stdin`.
func (d *deployment) createUser(username, password string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, "users", "create", "--username", username, "--password-stdin", "--config", d.config)
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("users create %s: %v\n%s", username, err, out)
	}
}

// process is one running `keyturn serve`.
type process struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	url    string // http://127.0.0.1:PORT
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// start runs `keyturn serve` and waits until it logs the address it
// listens on. The process is killed when the test ends, if still running.
func (d *deployment) start(name string) *process {
	d.t.Helper()
	cmd := exec.Command(d.bin, "serve", "--config", d.config)
	cmd.Env = d.env
	p := &process{t: d.t, name: name, cmd: cmd, stderr: newSyncBuffer(), exited: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = p.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.stderr.closeWith(fmt.Sprintf("%s exited (%v)", name, p.err))
		close(p.exited)
	}()
	d.t.Cleanup(p.kill)
	p.stderr.waitFor(d.t, name+" listening", func(s string) bool { return listenAddr(s) != "" })
	p.url = "http://" + listenAddr(p.stderr.String())
	return p
}

// listenAddr returns the addr of the JSON log line "listening", or "".
func listenAddr(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && line.Addr != "" {
			return line.Addr
		}
	}
	return ""
}

// kill sends SIGKILL (no shutdown, no flush: a crash) and waits for the exit.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	p.wait()
	if p.err != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.stderr)
	}
}

func (p *process) wait() {
	select {
	case <-p.exited:
	case <-time.After(processTimeout):
		p.t.Errorf("%s did not exit", p.name)
	}
}

// answer is an HTTP response, or err when there was none (the connection
// failed or was cut: whether the server acted on the request is unknown).
type answer struct {
	status int
	body   []byte
	json   map[string]any
	err    error
}

func (a answer) str(key string) string { s, _ := a.json[key].(string); return s }

func (a answer) String() string {
	if a.err != nil {
		return "no answer: " + a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(string(a.body)))
}

// httpClient is a client for one test: bounded, not following redirects,
// with enough idle connections for the concurrent requests.
func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: processTimeout}
}

func post(c *http.Client, base, path, auth string, form url.Values) answer {
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err} // cut mid-body: the answer was not received
	}
	a := answer{status: resp.StatusCode, body: b}
	_ = json.Unmarshal(b, &a.json)
	return a
}

func passwordForm(user, pass string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// login runs the password grant for ada and returns the answer, failing
// unless 200.
func (d *deployment) login(t *testing.T, c *http.Client, p *process) answer {
	t.Helper()
	a := post(c, p.url, server.PathToken, d.web, passwordForm("ada", d.password))
	if a.err != nil || a.status != http.StatusOK || a.str("refresh_token") == "" {
		t.Fatalf("login on %s: %v", p.name, a)
	}
	return a
}

// wantInvalidGrant fails unless a is RFC 6749 §5.2's invalid_grant.
func wantInvalidGrant(t *testing.T, what string, a answer) {
	t.Helper()
	if a.err != nil || a.status != http.StatusBadRequest || a.str("error") != "invalid_grant" {
		t.Errorf("%s: %v, want 400 invalid_grant", what, a)
	}
}

// refreshParts splits ktr2.<family>.<generation>.<mac>.
func refreshParts(t *testing.T, rt string) (family string, gen uint64) {
	t.Helper()
	family, gen, ok := parseRefresh(rt)
	if !ok {
		t.Fatalf("refresh token %q is not ktr2.<family>.<generation>.<mac>", rt)
	}
	return family, gen
}

// parseRefresh is refreshParts for goroutines that may not stop the test.
func parseRefresh(rt string) (family string, gen uint64, ok bool) {
	parts := strings.Split(rt, ".")
	if len(parts) != 4 || parts[0] != "ktr2" {
		return "", 0, false
	}
	gen, err := strconv.ParseUint(parts[2], 10, 64)
	return parts[1], gen, err == nil
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// stormSession is one session of the refresh storm, owned by one goroutine.
type stormSession struct {
	family string
	token  string // the last refresh token received with a 200 (or from login)
	gen    uint64 // its generation
	// lost: the last request got no answer, so the server may have
	// rotated (or revoked) without the client knowing.
	lost bool
	// revokeAt is the round of the storm in which the session is logged
	// out (0: never): some early, some about when the process dies.
	revokeAt int
	revoked  revokeState
}

type revokeState int

const (
	notRevoked revokeState = iota
	revokeAcked
	revokeUnknown // the revocation got no answer
)

// successLog records every 200 to a refresh, by presented token: RFC 9700
// §4.14.2 rotation means one token is answered with a successor once.
type successLog struct {
	mu sync.Mutex
	m  map[string][]string
}

func (l *successLog) add(presented, successor string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[presented] = append(l.m[presented], successor)
}

func (l *successLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for presented, successors := range l.m {
		if len(successors) > 1 {
			f, g := refreshParts(t, presented)
			t.Errorf("session %s generation %d: %d successful refreshes of one token, want at most 1", f, g, len(successors))
		}
	}
}

// TestCrashDuringRefreshStormPostgres: sessions rotate their refresh
// tokens in a storm while the process is SIGKILLed; a new process on the
// same database must agree with what every client was told. A rotation
// acknowledged with 200 is in the database; one whose answer was lost may
// be (the database is then one generation ahead, and the client's token is
// stale: reuse, the session ends, which is right); nothing else. An
// acknowledged logout is never lost.
func TestCrashDuringRefreshStormPostgres(t *testing.T) {
	dbURL := sqlstoretest.PostgresURL(t)
	d := newDeployment(t, dbURL)
	d.createUser("ada", d.password)
	p1 := d.start("first")
	c := httpClient(t)

	const nSessions, nWorkers, killAfter = 20, 4, 300
	sessions := make([]*stormSession, nSessions)
	for i := range sessions {
		rt := d.login(t, c, p1).str("refresh_token")
		family, gen := refreshParts(t, rt)
		s := &stormSession{family: family, token: rt, gen: gen}
		switch i % 7 {
		case 3:
			s.revokeAt = 4
		case 5:
			s.revokeAt = killAfter/nSessions - 1
		}
		sessions[i] = s
	}

	successes := &successLog{m: map[string][]string{}}
	var refreshed atomic.Int64
	enough := make(chan struct{})
	var enoughOnce sync.Once
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for w := range nWorkers {
		workers.Go(func() {
			var mine []*stormSession
			for i := w; i < nSessions; i += nWorkers {
				mine = append(mine, sessions[i])
			}
			for round := 0; ; round++ {
				for _, s := range mine {
					select {
					case <-stop:
						return
					default:
					}
					if s.revoked != notRevoked {
						continue
					}
					if round > 0 && round == s.revokeAt {
						a := post(c, p1.url, server.PathRevoke, d.web, url.Values{"token": {s.token}})
						switch {
						case a.err != nil:
							s.revoked = revokeUnknown
							return // the server is gone
						case a.status == http.StatusOK:
							s.revoked = revokeAcked
						default:
							t.Errorf("revoke during the storm: %v", a)
							return
						}
						continue
					}
					a := post(c, p1.url, server.PathToken, d.web, refreshForm(s.token))
					switch {
					case a.err != nil:
						s.lost = true
						return // the server is gone
					case a.status != http.StatusOK:
						t.Errorf("refresh during the storm (session %s generation %d): %v", s.family, s.gen, a)
						return
					}
					next := a.str("refresh_token")
					family, gen, ok := parseRefresh(next)
					if !ok || family != s.family || gen != s.gen+1 {
						t.Errorf("refresh of session %s generation %d returned session %s generation %d", s.family, s.gen, family, gen)
						return
					}
					successes.add(s.token, next)
					s.token, s.gen = next, gen
					if refreshed.Add(1) == killAfter {
						enoughOnce.Do(func() { close(enough) })
					}
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(processTimeout):
		close(stop)
		workers.Wait()
		t.Fatalf("the storm did not reach %d refreshes (got %d)", killAfter, refreshed.Load())
	}
	p1.kill() // mid-storm: requests are in flight
	close(stop)
	workers.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if strings.Contains(p1.stderr.String(), "panic") {
		t.Fatalf("the first process panicked:\n%s", p1.stderr)
	}
	t.Logf("%d refreshes acknowledged before the kill", refreshed.Load())

	p2 := d.start("restarted")
	store := sqlstoretest.Open(t, dbURL)
	ahead, acked := 0, 0
	for _, s := range sessions {
		f, err := store.GetFamily(t.Context(), s.family)
		if err != nil {
			t.Fatalf("session %s: %v", s.family, err)
		}
		// The database holds what the client was told, or one rotation
		// more whose answer was lost.
		switch {
		case f.Generation == s.gen:
		case f.Generation == s.gen+1 && s.lost:
			ahead++
		default:
			t.Errorf("session %s: database at generation %d, client holds %d (answer lost: %v)", s.family, f.Generation, s.gen, s.lost)
			continue
		}
		switch s.revoked {
		case revokeAcked:
			acked++
			if !f.Revoked() || f.RevokeReason != storage.ReasonLogout {
				t.Errorf("session %s: logout acknowledged with 200, but revoked %v (%q)", s.family, f.Revoked(), f.RevokeReason)
			}
			wantInvalidGrant(t, "refresh of a logged-out session", post(c, p2.url, server.PathToken, d.web, refreshForm(s.token)))
			continue
		case revokeUnknown:
			continue // logged out or not: either is consistent
		}
		if f.Revoked() {
			t.Errorf("session %s revoked (%s) though nothing revoked it", s.family, f.RevokeReason)
			continue
		}
		// Only the current generation's token refreshes.
		a := post(c, p2.url, server.PathToken, d.web, refreshForm(s.token))
		if f.Generation == s.gen+1 {
			// A rotation committed whose answer was lost: the client's token
			// is stale, and presenting it is reuse.
			wantInvalidGrant(t, "refresh with the token whose successor was lost", a)
		} else {
			if a.err != nil || a.status != http.StatusOK {
				t.Errorf("session %s: refresh with the current token after the restart: %v", s.family, a)
				continue
			}
			next := a.str("refresh_token")
			if family, gen := refreshParts(t, next); family != s.family || gen != s.gen+1 {
				t.Errorf("session %s generation %d: refreshed to %s generation %d", s.family, s.gen, family, gen)
			}
			successes.add(s.token, next)
			// The token just rotated away is now reuse.
			wantInvalidGrant(t, "replay of the token rotated after the restart", post(c, p2.url, server.PathToken, d.web, refreshForm(s.token)))
		}
		if f, err = store.GetFamily(t.Context(), s.family); err != nil {
			t.Fatal(err)
		}
		if !f.Revoked() || f.RevokeReason != storage.ReasonReuse {
			t.Errorf("session %s after a stale token: revoked %v (%q), want reuse", s.family, f.Revoked(), f.RevokeReason)
		}
	}
	successes.check(t)
	lost := 0
	for _, s := range sessions {
		if s.lost {
			lost++
		}
	}
	t.Logf("%d refreshes without an answer, %d of them committed (the session one generation ahead of its client); %d acknowledged logouts",
		lost, ahead, acked)
	if acked == 0 {
		t.Error("no logout was acknowledged during the storm: the test proved nothing about revocations")
	}
}

// TestTwoInstancesPostgres: two processes on one PostgreSQL schema with one
// master secret are one authorization server. Concurrent refreshes of one
// token on both have exactly one winner; a token rotated on one instance
// and replayed on the other is reuse, which ends the session on both.
func TestTwoInstancesPostgres(t *testing.T) {
	dbURL := sqlstoretest.PostgresURL(t)
	d := newDeployment(t, dbURL)
	d.createUser("ada", d.password)
	a, b := d.start("A"), d.start("B")
	c := httpClient(t)
	store := sqlstoretest.Open(t, dbURL)

	t.Run("a session moves between instances", func(t *testing.T) {
		rt := d.login(t, c, a).str("refresh_token")
		for i, p := range []*process{b, a, b} {
			r := post(c, p.url, server.PathToken, d.web, refreshForm(rt))
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("refresh %d on %s: %v", i, p.name, r)
			}
			rt = r.str("refresh_token")
		}
		r := post(c, a.url, server.PathIntrospect, d.rs, url.Values{"token": {d.login(t, c, b).str("access_token")}})
		if r.err != nil || r.status != http.StatusOK || r.json["active"] != true {
			t.Fatalf("A introspecting B's access token: %v", r)
		}
	})

	t.Run("concurrent refreshes of one token on both", func(t *testing.T) {
		const perInstance = 10
		for round := range 3 {
			rt := d.login(t, c, a).str("refresh_token")
			family, _ := refreshParts(t, rt)
			answers := make([]answer, 2*perInstance)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range answers {
				p := a
				if i%2 == 1 {
					p = b
				}
				wg.Go(func() {
					<-start
					answers[i] = post(c, p.url, server.PathToken, d.web, refreshForm(rt))
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, r := range answers {
				switch {
				case r.err == nil && r.status == http.StatusOK:
					won++
				case r.err == nil && r.status == http.StatusBadRequest && r.str("error") == "invalid_grant":
				default:
					t.Errorf("round %d, request %d: %v", round, i, r)
				}
			}
			if won != 1 {
				t.Errorf("round %d: %d of %d concurrent refreshes of one token succeeded across both instances, want exactly 1", round, won, len(answers))
			}
			// Every loser presented a token rotated away: reuse.
			f, err := store.GetFamily(t.Context(), family)
			if err != nil {
				t.Fatal(err)
			}
			if f.Generation != 1 || !f.Revoked() || f.RevokeReason != storage.ReasonReuse {
				t.Errorf("round %d: session at generation %d, revoked %v (%q); want generation 1, revoked for reuse", round, f.Generation, f.Revoked(), f.RevokeReason)
			}
		}
	})

	t.Run("rotated on A, replayed on B", func(t *testing.T) {
		rt0 := d.login(t, c, a).str("refresh_token")
		family, _ := refreshParts(t, rt0)
		r := post(c, a.url, server.PathToken, d.web, refreshForm(rt0))
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("refresh on A: %v", r)
		}
		rt1 := r.str("refresh_token")
		wantInvalidGrant(t, "replay of the rotated token on B", post(c, b.url, server.PathToken, d.web, refreshForm(rt0)))
		f, err := store.GetFamily(t.Context(), family)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Revoked() || f.RevokeReason != storage.ReasonReuse {
			t.Fatalf("after the replay on B: revoked %v (%q), want reuse", f.Revoked(), f.RevokeReason)
		}
		wantInvalidGrant(t, "the newest token on A after the replay on B", post(c, a.url, server.PathToken, d.web, refreshForm(rt1)))
		r = post(c, a.url, server.PathIntrospect, d.web, url.Values{"token": {rt1}})
		if r.err != nil || r.status != http.StatusOK || string(r.body) != "{\"active\":false}\n" {
			t.Errorf("A introspecting the newest token of the revoked session: %v", r)
		}
	})

	for _, p := range []*process{a, b} {
		if strings.Contains(p.stderr.String(), `"level":"ERROR"`) {
			t.Errorf("%s logged errors:\n%s", p.name, p.stderr)
		}
	}
}

// TestLogsHoldNoSecretsProcess runs a whole session, and every kind of
// mistake, against the real process and searches everything it wrote to
// stderr: no password, client secret, master secret, Authorization header,
// refresh or access token, nor a token's MAC or signature, may be there.
func TestLogsHoldNoSecretsProcess(t *testing.T) {
	d := newDeployment(t, "")
	d.createUser("ada", d.password)
	p := d.start("keyturn")
	c := httpClient(t)
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	token := func(auth string, form url.Values, wantStatus int) answer {
		t.Helper()
		a := post(c, p.url, server.PathToken, auth, form)
		if a.err != nil || a.status != wantStatus {
			t.Fatalf("token %s: %v, want %d", form.Get("grant_type"), a, wantStatus)
		}
		return a
	}
	wrongPassword, wrongSecret := "wrong-pw-"+randomHex(t), "wrong-secret-"+randomHex(t)
	keep(d.password, d.webSecret, d.rsSecret, wrongPassword, wrongSecret, testSecret, d.web, d.rs)

	// Log in with Basic and with client_secret_post; refresh; reuse.
	login := token(d.web, passwordForm("ada", d.password), 200)
	postForm := passwordForm("ada", d.password)
	postForm.Set("client_id", "web")
	postForm.Set("client_secret", d.webSecret)
	login2 := token("", postForm, 200)
	rt1, at1 := login.str("refresh_token"), login.str("access_token")
	refreshed := token(d.web, refreshForm(rt1), 200)
	rt2, at2 := refreshed.str("refresh_token"), refreshed.str("access_token")
	token(d.web, refreshForm(rt1), 400) // reuse: the session ends, logged at Warn
	token(d.web, refreshForm(rt2), 400)
	cc := token(d.rs, url.Values{"grant_type": {"client_credentials"}}, 200)
	keep(rt1, at1, rt2, at2, login2.str("refresh_token"), login2.str("access_token"), cc.str("access_token"))

	// Introspect and revoke.
	rt3, at3 := login2.str("refresh_token"), login2.str("access_token")
	for _, r := range []answer{
		post(c, p.url, server.PathIntrospect, d.rs, url.Values{"token": {at3}}),
		post(c, p.url, server.PathIntrospect, d.web, url.Values{"token": {rt3}}),
		post(c, p.url, server.PathIntrospect, d.rs, url.Values{"token": {at1}}),
	} {
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("introspect: %v", r)
		}
	}
	if r := post(c, p.url, server.PathRevoke, d.rs, url.Values{"token": {rt3}}); r.status != http.StatusBadRequest {
		t.Fatalf("rs revoking web's token: %v", r) // refused, and logged
	}
	for _, tok := range []string{at3, rt3} {
		if r := post(c, p.url, server.PathRevoke, d.web, url.Values{"token": {tok}}); r.err != nil || r.status != http.StatusOK {
			t.Fatalf("revoke: %v", r)
		}
	}

	// Mistakes: each is logged somehow, none with what was presented.
	token(d.web, passwordForm("ada", wrongPassword), 400)
	token(servertest.Basic("web", wrongSecret), passwordForm("ada", d.password), 401)
	bad := passwordForm("ada", d.password)
	bad.Set("client_id", "web")
	bad.Set("client_secret", wrongSecret)
	token("", bad, 401)
	parts := strings.Split(rt3, ".")
	forged := strings.Join([]string{parts[0], parts[1], parts[2], strings.Repeat("A", 43)}, ".")
	token(d.web, refreshForm(forged), 400)
	fresh := d.login(t, c, p)
	keep(fresh.str("refresh_token"), fresh.str("access_token"))
	token(d.web, refreshForm(fresh.str("refresh_token")+"x"), 400)
	if r := post(c, p.url, server.PathIntrospect, servertest.Basic("rs", wrongSecret), url.Values{"token": {fresh.str("access_token")}}); r.status != http.StatusUnauthorized {
		t.Fatalf("introspect with a wrong secret: %v", r)
	}
	// Credentials and tokens in the URL are refused (and must not be
	// logged with the request line).
	q := url.Values{"refresh_token": {fresh.str("refresh_token")}, "client_secret": {d.webSecret}, "password": {d.password}}
	if r := post(c, p.url, server.PathToken+"?"+q.Encode(), d.web, refreshForm(fresh.str("refresh_token"))); r.status != http.StatusBadRequest {
		t.Fatalf("token with parameters in the URL: %v", r)
	}
	if r := post(c, p.url, "/oauth2/nowhere?"+q.Encode(), d.web, refreshForm(fresh.str("refresh_token"))); r.status != http.StatusNotFound {
		t.Fatalf("unknown path with parameters in the URL: %v", r)
	}

	p.stop()
	logs := p.stderr.String()
	// The log is JSON lines and recorded the events: a test of an empty
	// log would prove nothing.
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("log line is not JSON: %s", sc.Bytes())
		}
	}
	for _, want := range []string{"refresh token reused", "family_id", `"msg":"session revoked"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// A token's secret parts on their own: a refresh token's MAC, an
	// access token's signature; and an Authorization header's base64.
	for _, s := range slices.Clone(secrets) {
		switch parts := strings.Split(s, "."); {
		case strings.HasPrefix(s, "ktr2.") && len(parts) == 4:
			keep(parts[3])
		case len(parts) == 3:
			keep(parts[2])
		case strings.HasPrefix(s, "Basic "):
			keep(strings.TrimPrefix(s, "Basic "))
		}
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("an empty secret in the list: the test is broken")
		}
		if strings.Contains(logs, s) || strings.Contains(logs, url.QueryEscape(s)) {
			t.Errorf("the log contains a secret (%.12s…)", s)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

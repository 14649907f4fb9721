package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
)

// opsConfig is a config with two confidential clients named in ids, each
// with secret "<id>-secret", the password and refresh grants.
func (c *cli) opsConfig(extra string, ids ...string) {
	c.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "issuer: http://127.0.0.1:8080\nlisten: 127.0.0.1:0\ndata_dir: %s/data\nlog:\n  format: json\n%s", c.dir, extra)
	b.WriteString("clients:\n")
	for _, id := range ids {
		d := sha256.Sum256([]byte(id + "-secret"))
		fmt.Fprintf(&b, "  - id: %s\n    secret_hash: sha256:%s\n    grant_types: [password, refresh_token]\n    scopes: [read]\n    default_scopes: [read]\n",
			id, base64.RawURLEncoding.EncodeToString(d[:]))
	}
	c.writeConfig(b.String())
}

// listeningAddr waits for a log line with msg and returns its addr.
func listeningAddr(t *testing.T, stderr *syncBuffer, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\{.*"msg":"` + msg + `".*\}$`)
	line := re.FindString(stderr.waitFor(t, "the "+msg+" log line", re.MatchString))
	var e struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Addr == "" {
		t.Fatalf("log line %q: %v", line, err)
	}
	return e.Addr
}

func login(t *testing.T, addr, client string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {"pw"}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+server.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, client+"-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestServeReloadsClientsOnSIGHUP: a good file changes what clients may
// do; a bad one changes nothing and every problem is logged.
func TestServeReloadsClientsOnSIGHUP(t *testing.T) {
	c := newCLI(t, "")
	c.opsConfig("", "alpha")
	c.want(exitOK, "pw\n", "users", "create", "--username", "ada", "--password-stdin")
	_, stderr, stop := c.start("serve")
	defer stop()
	addr := listeningAddr(t, stderr, "listening")
	if code, body := login(t, addr, "alpha"); code != 200 {
		t.Fatalf("alpha: %d %v", code, body)
	}

	c.opsConfig("", "beta") // alpha removed, beta added
	c.hangup <- syscall.SIGHUP
	stderr.waitFor(t, "the reload", func(s string) bool { return strings.Contains(s, `"msg":"clients reloaded"`) })
	if code, _ := login(t, addr, "beta"); code != 200 {
		t.Fatalf("beta after reload: %d", code)
	}
	if code, body := login(t, addr, "alpha"); code != 401 || body["error"] != "invalid_client" {
		t.Fatalf("removed alpha: %d %v", code, body)
	}

	c.writeConfig("issuer: http://127.0.0.1:8080\nlisten: 127.0.0.1:0\ntypo_key: 1\nclients:\n  - id: gamma\n    grant_types: [implicit]\n")
	c.hangup <- syscall.SIGHUP
	logs := stderr.waitFor(t, "the refusal", func(s string) bool { return strings.Contains(s, "the current clients stay") })
	for _, want := range []string{"typo_key: unknown key", `clients[0].grant_types[0]: unknown grant type`} {
		if !strings.Contains(logs, want) {
			t.Errorf("refused reload does not log %q:\n%s", want, logs)
		}
	}
	if code, _ := login(t, addr, "beta"); code != 200 {
		t.Fatalf("beta after a refused reload: %d", code)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// jwksAlgs returns the algorithms of the keys serve publishes, by count.
func jwksAlgs(t *testing.T, addr string) map[string]int {
	t.Helper()
	resp, err := http.Get("http://" + addr + server.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Alg, Use, Kid string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != 200 {
		t.Fatalf("jwks: %d, %v", resp.StatusCode, err)
	}
	out := map[string]int{}
	for _, k := range set.Keys {
		if k.Use != "sig" || k.Kid == "" {
			t.Errorf("jwks key %+v: want use sig and a kid", k)
		}
		out[k.Alg]++
	}
	return out
}

// TestServeReloadAddsIDTokenKeys: serve signs access tokens with
// keys.algorithm and publishes an RS256 key for ID tokens from the start;
// a client added by SIGHUP that asks for EdDSA ID tokens gets an EdDSA key
// published (and signing) before it is served.
func TestServeReloadAddsIDTokenKeys(t *testing.T) {
	c := newCLI(t, "")
	c.opsConfig("", "alpha")
	_, stderr, stop := c.start("serve")
	defer stop()
	addr := listeningAddr(t, stderr, "listening")
	if got := jwksAlgs(t, addr); got["ES256"] != 1 || got["RS256"] != 1 || len(got) != 2 {
		t.Fatalf("jwks at start: %v, want one ES256 and one RS256 key", got)
	}

	c.opsConfig("", "alpha", "beta")
	b, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	c.writeConfig(string(b) + "    id_token_signed_response_alg: EdDSA\n") // beta's
	c.hangup <- syscall.SIGHUP
	stderr.waitFor(t, "the reload", func(s string) bool { return strings.Contains(s, `"msg":"clients reloaded"`) })
	if got := jwksAlgs(t, addr); got["ES256"] != 1 || got["RS256"] != 1 || got["EdDSA"] != 1 || len(got) != 3 {
		t.Fatalf("jwks after reload: %v, want one ES256, one RS256 and one EdDSA key", got)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// TestServeGracefulShutdown: SIGTERM while a refresh is in flight (its
// body half sent) stops accepting but lets that refresh complete.
func TestServeGracefulShutdown(t *testing.T) {
	c := newCLI(t, "")
	// A generous drain time: on a loaded machine the in-flight refresh
	// must not be cut off by the default's seconds.
	c.opsConfig("shutdown_timeout: 2m\n", "alpha")
	c.want(exitOK, "pw\n", "users", "create", "--username", "ada", "--password-stdin")
	active := make(chan string, 16) // remote addresses of connections serving a request
	shutdown := make(chan struct{}) // closed once Shutdown has closed the listener
	c.onServer = func(s *http.Server) {
		s.ConnState = func(conn net.Conn, st http.ConnState) {
			if st == http.StateActive {
				active <- conn.RemoteAddr().String()
			}
		}
		s.RegisterOnShutdown(func() { close(shutdown) }) // one listener: no admin_listen
	}
	_, stderr, stop := c.start("serve")
	addr := listeningAddr(t, stderr, "listening")
	_, tok := login(t, addr, "alpha")
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("login: %v", tok)
	}

	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		server.PathToken, addr, servertest.Basic("alpha", "alpha-secret"), len(body), body[:10])

	// Wait until the server has read the request's header: the connection
	// is active, so Shutdown waits for it instead of closing it.
	for got := ""; got != conn.LocalAddr().String(); {
		select {
		case got = <-active:
		case <-time.After(10 * time.Second):
			t.Fatal("the refresh never reached the server")
		}
	}

	stopped := make(chan int, 1)
	go func() { stopped <- stop() }() // SIGTERM
	select {
	case <-shutdown: // Shutdown closes the listener before it runs this
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown never began")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting connections while shutting down")
	}
	select {
	case code := <-stopped:
		t.Fatalf("serve exited (%d) with a request in flight", code)
	default:
	}

	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	if resp.StatusCode != 200 || got["refresh_token"] == nil || got["refresh_token"] == rt {
		t.Fatalf("in-flight refresh: %d %v", resp.StatusCode, got)
	}
	if code := <-stopped; code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// TestServeAdminListener: with admin_listen, /metrics, /healthz and /readyz
// move to their own listener.
func TestServeAdminListener(t *testing.T) {
	c := newCLI(t, "")
	c.opsConfig("admin_listen: 127.0.0.1:0\n", "alpha")
	_, stderr, stop := c.start("serve")
	defer stop()
	public := listeningAddr(t, stderr, "listening")
	admin := listeningAddr(t, stderr, "admin listening")
	status := func(addr, path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{server.PathMetrics, server.PathHealth, server.PathReady} {
		if s := status(admin, p); s != 200 {
			t.Errorf("admin %s = %d", p, s)
		}
		if s := status(public, p); s != 404 {
			t.Errorf("public %s = %d, want 404", p, s)
		}
	}
	if s := status(public, server.PathMetadata); s != 200 {
		t.Errorf("public metadata = %d", s)
	}
}

// TestProbe: `keyturn probe` exits 0 against a ready server and 1 when
// nothing answers (the container health check).
func TestProbe(t *testing.T) {
	c := newCLI(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.opsConfig(fmt.Sprintf("admin_listen: 127.0.0.1:%d\n", port), "alpha")
	c.want(exitFailure, "", "probe")
	_, stderr, stop := c.start("serve")
	defer stop()
	listeningAddr(t, stderr, "admin listening")
	if r := c.want(exitOK, "", "probe"); !strings.Contains(r.stdout, "ready") {
		t.Fatalf("probe: %+v", r)
	}
}

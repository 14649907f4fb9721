package server_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// cutProxy forwards TCP to a database and can cut it: close every
// connection and refuse new ones (down), or accept and never answer (hang).
type cutProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	hang  bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{t: t, target: target}
	p.listen("127.0.0.1:0")
	t.Cleanup(func() { p.down() })
	return p
}

func (p *cutProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.hang = ln, ln.Addr().String(), false
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			hang := p.hang
			p.mu.Unlock()
			if !hang {
				go p.forward(c)
			}
		}
	}()
}

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// down closes the listener and every connection: the database is gone.
func (p *cutProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// hanging cuts every connection and then accepts new ones without ever
// answering: a database behind a dead network path.
func (p *cutProxy) hanging() {
	p.down()
	p.listen(p.addr)
	p.mu.Lock()
	p.hang = true
	p.mu.Unlock()
}

// up serves again on the same address.
func (p *cutProxy) up() {
	p.down()
	p.listen(p.addr)
}

// TestDatabaseOutagePostgres cuts the connection to PostgreSQL under a
// running server: token, revoke and introspect answer 503 quickly (not a
// hang, not a 500), readiness says not ready, and the server recovers on
// its own when the database is back.
func TestDatabaseOutagePostgres(t *testing.T) {
	dsn := sqlstoretest.PostgresURL(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	store := sqlstoretest.Open(t, u.String())
	ts := newTestServerOn(t, store, func(o *server.Options) { o.RequestTimeout = time.Second })

	r := ts.login(confA)
	rt, at := r.str("refresh_token"), r.str("access_token")
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(server.PathReady); s != 200 {
		t.Fatalf("readyz = %d before the outage", s)
	}

	for _, cut := range []struct {
		name string
		do   func()
	}{{"refused", proxy.down}, {"hanging", proxy.hanging}} {
		t.Run(cut.name, func(t *testing.T) {
			cut.do()
			for name, c := range map[string]call{
				"password":   {auth: confA, form: pw("ada", userPass)},
				"refresh":    {auth: confA, form: refresh(rt)},
				"introspect": {path: server.PathIntrospect, auth: rsAuth, form: tokenForm(at)},
				"revoke":     {path: server.PathRevoke, auth: confA, form: tokenForm(rt)},
			} {
				start := time.Now()
				r := ts.do(c)
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("%s took %v with the database down", name, took)
				}
				wantError(t, r, 503, "temporarily_unavailable")
				if r.header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", name)
				}
			}
			if s := get(server.PathReady); s != 503 {
				t.Fatalf("readyz = %d with the database down", s)
			}
			if s := get(server.PathHealth); s != 200 {
				t.Fatalf("healthz = %d: the process is alive", s)
			}

			// up returns once the proxy listens again: that is the signal.
			// A check may still draw a pooled connection the cut broke; the
			// pool discards it, so a few checks in a row, not a wait, suffice.
			proxy.up()
			ready := false
			for range 3 {
				if ready = get(server.PathReady) == 200; ready {
					break
				}
			}
			if !ready {
				t.Fatal("not ready after the database came back")
			}
			r := ts.token(confA, refresh(rt))
			if r.status != 200 {
				t.Fatalf("refresh after recovery: %d %s", r.status, r.body)
			}
			rt = r.str("refresh_token")
		})
	}
}

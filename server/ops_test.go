package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func (ts *testServer) get(path string) (int, string) {
	ts.t.Helper()
	resp, err := http.Get(ts.URL + path)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetrics: after a login, a refresh, a reuse and a revocation, /metrics
// exposes every family the operator dashboards need, with bounded labels.
func TestMetrics(t *testing.T) {
	store := sqlstoretest.SQLite(t)
	ts := newTestServerOn(t, store, func(o *server.Options) {
		o.Collectors = []prometheus.Collector{ // as serve hands them in
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewDBStatsCollector(store.DB(), "keyturn"),
		}
	})
	rt1 := ts.login(confA).str("refresh_token")
	rt2 := ts.token(confA, refresh(rt1)).str("refresh_token")
	ts.token(confA, refresh(rt1)) // reuse
	ts.revoke(confA, tokenForm(rt2))
	ts.token(confA, pw("ada", "wrong"))
	status, body := ts.get(server.PathMetrics)
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	for _, want := range []string{
		`keyturn_http_requests_total{endpoint="token",grant_type="password",outcome="ok"} 1`,
		`keyturn_http_requests_total{endpoint="token",grant_type="refresh_token",outcome="invalid_grant"} 1`,
		`keyturn_http_requests_total{endpoint="revoke",grant_type="",outcome="ok"} 1`,
		`keyturn_http_request_duration_seconds_bucket{endpoint="token",grant_type="refresh_token",le="+Inf"} 2`,
		`keyturn_refresh_total{outcome="rotated"} 1`,
		`keyturn_refresh_total{outcome="reuse_detected"} 1`,
		`keyturn_password_logins_total{outcome="ok"} 1`,
		`keyturn_password_logins_total{outcome="invalid_credentials"} 1`,
		`keyturn_signing_key_age_seconds `,
		`keyturn_signing_keys_published 1`,
		`go_sql_open_connections{db_name="keyturn"}`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{`"ada"`, "user-ada", rt1, confASecret} {
		if strings.Contains(body, secret) {
			t.Errorf("metrics contain %q: labels must be bounded and secret-free", secret)
		}
	}
}

// TestAccessLog: one line per request, with the request id echoed and
// carried into the request's other log lines, and no secrets.
func TestAccessLog(t *testing.T) {
	ts := newTestServer(t, sqlite)
	rt1 := ts.login(confA).str("refresh_token")
	ts.token(confA, refresh(rt1))
	req, _ := http.NewRequest(http.MethodPost, ts.URL+server.PathToken, strings.NewReader(refresh(rt1).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", confA)
	req.Header.Set("X-Request-ID", "trace-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-ID") != "trace-42" {
		t.Fatalf("X-Request-ID not echoed: %q", resp.Header.Get("X-Request-ID"))
	}
	var access, reuse []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(ts.logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch e["msg"] {
		case "request":
			access = append(access, e)
		case "refresh token reused; family revoked":
			reuse = append(reuse, e)
		}
	}
	if len(access) != 3 || len(reuse) != 1 {
		t.Fatalf("%d access lines, %d reuse lines:\n%s", len(access), len(reuse), ts.logs)
	}
	last := access[2]
	for k, want := range map[string]any{
		"method": "POST", "path": "/oauth2/token", "status": float64(400), "client_id": "conf-a",
		"grant_type": "refresh_token", "request_id": "trace-42", "error": "invalid_grant",
	} {
		if last[k] != want {
			t.Errorf("access %s = %v, want %v", k, last[k], want)
		}
	}
	if _, ok := last["duration_ms"].(float64); !ok {
		t.Errorf("access line without duration_ms: %v", last)
	}
	if reuse[0]["request_id"] != "trace-42" {
		t.Errorf("the reuse warning does not carry the request id: %v", reuse[0])
	}
	if id, _ := access[0]["request_id"].(string); len(id) < 16 {
		t.Errorf("no request id generated: %v", access[0])
	}
}

// TestSeparateAdmin: with an admin listener, the public handler does not
// serve /metrics, /healthz or /readyz; the admin handler does.
func TestSeparateAdmin(t *testing.T) {
	ts := newTestServerOn(t, openStore(t, sqlite), func(o *server.Options) { o.SeparateAdmin = true })
	for _, p := range []string{server.PathMetrics, server.PathHealth, server.PathReady} {
		if status, _ := ts.get(p); status != 404 {
			t.Errorf("public %s = %d, want 404", p, status)
		}
	}
	admin := httptest.NewServer(ts.srv.AdminHandler())
	defer admin.Close()
	for _, p := range []string{server.PathMetrics, server.PathHealth, server.PathReady} {
		resp, err := http.Get(admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("admin %s = %d", p, resp.StatusCode)
		}
	}
	if resp, err := http.Get(admin.URL + server.PathToken); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("admin listener serves the token endpoint: %d", resp.StatusCode)
		}
	}
}

// TestSetClients: a reload swaps the registry whole. A removed client's
// tokens stop refreshing and introspect inactive; the metadata follows.
func TestSetClients(t *testing.T) {
	ts := newTestServer(t, sqlite)
	_, before := ts.get(server.PathMetadata)
	r := ts.login(confA)
	rt, at := r.str("refresh_token"), r.str("access_token")
	var kept []clients.Spec
	for _, s := range testClients() {
		if s.ID != "conf-a" && s.ID != "public-m" {
			kept = append(kept, s)
		}
	}
	reg, err := clients.New(kept, clients.Defaults{AccessTokenTTL: 15 * time.Minute, RefreshIdleTTL: time.Hour,
		RefreshAbsoluteTTL: 2 * time.Hour, Audience: []string{testIssuer}}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.SetClients(reg)
	wantError(t, ts.token(confA, refresh(rt)), 401, "invalid_client")
	if _, after := ts.get(server.PathMetadata); after == before || strings.Contains(after, `"none"`) {
		t.Errorf("metadata not re-rendered:\n%s", after)
	}
	ts.wantInactive(rsAuth, at)
	if r := ts.login(confBAuth); r.status != 200 {
		t.Fatalf("remaining client: %d %s", r.status, r.body)
	}
}

// TestRequestIDNeverCarriesATokenIntoTheLog: a caller's X-Request-ID is
// kept only if short and plain, so a token put there is not logged.
func TestRequestIDNeverCarriesATokenIntoTheLog(t *testing.T) {
	ts := newTestServer(t, sqlite)
	r := ts.login(confA)
	for _, id := range []string{r.str("refresh_token"), r.str("access_token"), "has space", "semi;colon", strings.Repeat("a", 65)} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+server.PathMetadata, nil)
		req.Header.Set("X-Request-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-ID"); got == id || got == "" {
			t.Errorf("X-Request-ID %.20q kept as %q", id, got)
		}
	}
	for _, secret := range []string{r.str("refresh_token"), r.str("access_token")} {
		if strings.Contains(ts.logs.String(), secret) {
			t.Fatal("a token sent as X-Request-ID reached the log")
		}
	}
}

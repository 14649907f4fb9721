package server_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/keyturn/keyturn/server"
)

// TestRouting: paths match exactly as sent (no cleaning, no redirect, no
// decoding of escapes), an unknown path is a JSON 404, and a known path
// with a method its route does not take is a JSON 405 whose Allow lists the
// route's own methods (RFC 9110 §15.5.6).
func TestRouting(t *testing.T) {
	ts := newTestServer(t, sqlite)
	for _, tc := range []struct {
		method, target string
		status         int
		code           string // the JSON error, "" for none
		allow          string
	}{
		{"GET", server.PathJWKS, 200, "", ""},
		{"HEAD", server.PathMetadata, 200, "", ""},
		{"GET", server.PathHealth, 200, "", ""},
		{"POST", server.PathToken, 400, "invalid_request", ""}, // routed: the endpoint answers (no form)
		{"GET", server.PathToken + "?grant_type=x", 405, "invalid_request", "POST"},
		{"POST", "//oauth2/token", 404, "not_found", ""},
		{"POST", "/oauth2/../oauth2/token", 404, "not_found", ""},
		{"POST", "/oauth2/./token", 404, "not_found", ""},
		{"POST", "/oauth2%2Ftoken", 404, "not_found", ""},
		{"POST", "/oauth2/%74oken", 404, "not_found", ""},
		{"POST", "/oauth2/token/", 404, "not_found", ""},
		{"POST", "/OAUTH2/TOKEN", 404, "not_found", ""},
		{"GET", "/", 404, "not_found", ""},
		{"GET", "/.well-known/jwks%2Ejson", 404, "not_found", ""},
		{"POST", server.PathJWKS, 405, "invalid_request", "GET, HEAD"},
		{"PUT", server.PathMetadata, 405, "invalid_request", "GET, HEAD"},
		{"POST", server.PathMetrics, 405, "invalid_request", "GET"},
		{"HEAD", server.PathMetrics, 405, "invalid_request", "GET"},
		{"GET", server.PathLogin, 405, "invalid_request", "POST"},
		{"GET", server.PathLogoutConfirm, 405, "invalid_request", "POST"},
		{"PUT", server.PathAuthorize, 405, "invalid_request", "GET, POST"},
		{"DELETE", server.PathLogout, 405, "invalid_request", "GET, POST"},
	} {
		w := httptest.NewRecorder()
		ts.srv.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
		if w.Code != tc.status {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.target, w.Code, tc.status, w.Body)
			continue
		}
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.target, got, tc.allow)
		}
		if tc.code == "" {
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error != tc.code {
			t.Errorf("%s %s: body %q, want error %q", tc.method, tc.target, w.Body, tc.code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" && ct != "application/json;charset=UTF-8" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.target, ct)
		}
	}
}

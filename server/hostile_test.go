package server_test

// Hostile requests against the real router: each gets its exact status and
// RFC error code, never a 500 and never a panic (a panic in a handler
// would close the connection and fail ts.do).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// hostile is one hostile request and the answer it must get.
type hostile struct {
	name string
	call call
	// noContentType sends the request without a Content-Type header
	// (ts.do always sets one).
	noContentType bool
	status        int
	code          string // the RFC error code; "" for a success
	location      string // a redirect's Location (the redirect is not followed)
	// inactive: an introspection that must answer exactly {"active":false}.
	inactive bool
	allow    string // the Allow header a 405 must carry
	maxBody  int    // if set, the answer must not be larger (input is not echoed)
}

// manyResources is n distinct resource parameters.
func manyResources(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "&resource=https%%3A%%2F%%2Fapi%d.example.com", i)
	}
	return b.String()
}

// TestHostileRequests runs the table once per database (subtests SQLite
// and Postgres): a value PostgreSQL refuses (a NUL in text) must not
// become a 500 there while SQLite takes it.
func TestHostileRequests(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { hostileRequests(t, b) })
	}
}

func hostileRequests(t *testing.T, b backend) {
	ts := newTestServer(t, b)
	r := ts.login(confA)
	at, rt := r.str("access_token"), r.str("refresh_token")
	jwtHeader, jwtPayload := splitJWT(t, at)
	kid, _ := jwtHeader["kid"].(string)
	if kid == "" {
		t.Fatalf("access token header %v has no kid", jwtHeader)
	}
	foreignAT := newTestServer(t, b).login(confA).str("access_token")

	cc := "grant_type=client_credentials"
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	big := strings.Repeat("x", 70<<10) // over the 64 KiB cap
	v60 := strings.Repeat("a", 60<<10) // under it
	introspect := func(tok string) call {
		return call{path: server.PathIntrospect, auth: rsAuth, form: url.Values{"token": {tok}}}
	}
	tokenCall := func(body string) call { return call{auth: confA, body: body} }

	tests := []hostile{
		// Size.
		{name: "token body over 64 KiB", call: tokenCall(cc + "&pad=" + big), status: 413, code: "invalid_request"},
		{name: "revoke body over 64 KiB", call: call{path: server.PathRevoke, auth: confA, body: "token=" + big}, status: 413, code: "invalid_request"},
		{name: "introspect body over 64 KiB", call: call{path: server.PathIntrospect, auth: rsAuth, body: "token=" + big}, status: 413, code: "invalid_request"},
		// RFC 6749 §3.2: unrecognized parameters are ignored, however large.
		{name: "60 KiB unknown parameter", call: tokenCall(cc + "&pad=" + v60), status: 200},
		{name: "60 KiB scope", call: tokenCall(cc + "&scope=" + v60), status: 400, code: "invalid_scope", maxBody: 256},
		{name: "60 KiB refresh token", call: tokenCall("grant_type=refresh_token&refresh_token=" + v60), status: 400, code: "invalid_grant"},
		{name: "60 KiB password", call: tokenCall("grant_type=password&username=ada&password=" + v60), status: 400, code: "invalid_grant"},
		{name: "60 KiB client_id", call: call{body: cc + "&client_id=" + v60 + "&client_secret=x"}, status: 401, code: "invalid_client"},
		{name: "60 KiB token at introspection", call: introspect(v60), status: 200, inactive: true},
		{name: "60 KiB token at revocation", call: call{path: server.PathRevoke, auth: confA, body: "token=" + v60}, status: 200},

		// Parameter count: net/url parses at most 10,000 parameters.
		{name: "10,000 distinct parameters", call: tokenCall(manyParams(cc, 9_999)), status: 200},
		{name: "10,001 distinct parameters", call: tokenCall(manyParams(cc, 10_000)), status: 400, code: "invalid_request"},
		{name: "10,000 repeats of one parameter", call: tokenCall(cc + strings.Repeat("&x", 9_999)), status: 400, code: "invalid_request"},
		// resource may repeat (RFC 8707 §2): repeats collapse to one
		// audience; more than 8 distinct ones are refused.
		{name: "1,500 repeats of one resource", call: tokenCall(cc + strings.Repeat("&resource=https%3A%2F%2Fapi.example.com", 1_500)), status: 200, maxBody: 2048},
		{name: "9 distinct resources", call: tokenCall(cc + manyResources(9)), status: 400, code: "invalid_target"},

		// Percent-encoding.
		{name: "lone percent in a value", call: tokenCall(cc + "&scope=%"), status: 400, code: "invalid_request"},
		{name: "lone percent in a name", call: tokenCall(cc + "&%=x"), status: 400, code: "invalid_request"},
		{name: "percent zz", call: tokenCall("grant_type=%zz"), status: 400, code: "invalid_request"},
		{name: "double percent", call: tokenCall(cc + "&%%=%%"), status: 400, code: "invalid_request"},
		{name: "truncated escape", call: tokenCall(cc + "&scope=read%2"), status: 400, code: "invalid_request"},
		{name: "escape decodes to invalid UTF-8 value", call: tokenCall(cc + "&scope=%ff%fe"), status: 400, code: "invalid_request"},
		{name: "escape decodes to invalid UTF-8 name", call: tokenCall("%ff%fe=1&" + cc), status: 400, code: "invalid_request"},
		{name: "overlong UTF-8", call: tokenCall(cc + "&scope=%c0%af"), status: 400, code: "invalid_request"},
		{name: "UTF-16 surrogate in UTF-8", call: tokenCall(cc + "&scope=%ed%a0%80"), status: 400, code: "invalid_request"},
		{name: "raw invalid UTF-8 value", call: tokenCall(cc + "&scope=\xff\xfe"), status: 400, code: "invalid_request"},
		{name: "raw invalid UTF-8 name", call: tokenCall("\xc3\x28=1&" + cc), status: 400, code: "invalid_request"},
		// Decoded once, as RFC 6749 Appendix B says: %2570 is the text "%70".
		{name: "double-encoded grant_type", call: tokenCall("grant_type=%2570assword&username=ada&password=x"), status: 400, code: "unsupported_grant_type"},
		{name: "triple-encoded grant_type", call: tokenCall("grant_type=%252563lient_credentials"), status: 400, code: "unsupported_grant_type"},
		{name: "semicolon separator", call: tokenCall(cc + ";scope=read"), status: 400, code: "invalid_request"},

		// NUL and control characters: valid UTF-8, refused by parseForm
		// before any lookup (PostgreSQL cannot store a NUL in text). A NUL
		// nowhere; C0 controls and DEL in every parameter but password and
		// client_secret.
		{name: "NUL in grant_type", call: tokenCall(cc + "%00"), status: 400, code: "invalid_request"},
		{name: "NUL in scope", call: tokenCall(cc + "&scope=read%00"), status: 400, code: "invalid_request"},
		{name: "NUL in username", call: tokenCall("grant_type=password&username=ada%00&password=" + url.QueryEscape(userPass)), status: 400, code: "invalid_request"},
		{name: "NUL alone as username", call: tokenCall("grant_type=password&username=%00&password=x"), status: 400, code: "invalid_request"},
		{name: "NUL in password", call: tokenCall("grant_type=password&username=ada&password=" + url.QueryEscape(userPass) + "%00"), status: 400, code: "invalid_request"},
		{name: "NUL in refresh token", call: tokenCall("grant_type=refresh_token&refresh_token=" + url.QueryEscape(rt) + "%00"), status: 400, code: "invalid_request"},
		{name: "NUL in an unknown parameter", call: tokenCall(cc + "&state=%00"), status: 400, code: "invalid_request"},
		{name: "NUL in resource", call: tokenCall(cc + "&resource=https%3A%2F%2Fapi.example.com%00"), status: 400, code: "invalid_request"},
		{name: "NUL in client_id", call: call{body: cc + "&client_id=conf-a%00&client_secret=" + url.QueryEscape(confASecret)}, status: 400, code: "invalid_request"},
		{name: "NUL in client_secret", call: call{body: cc + "&client_id=conf-a&client_secret=" + url.QueryEscape(confASecret) + "%00"}, status: 400, code: "invalid_request"},
		{name: "NUL token at introspection", call: introspect("\x00"), status: 400, code: "invalid_request"},
		{name: "NUL token at revocation", call: call{path: server.PathRevoke, auth: confA, form: url.Values{"token": {rt + "\x00"}}}, status: 400, code: "invalid_request"},
		{name: "raw NUL in the body", call: tokenCall(cc + "\x00"), status: 400, code: "invalid_request"},
		{name: "SOH in username", call: tokenCall("grant_type=password&username=a%01da&password=x"), status: 400, code: "invalid_request"},
		{name: "US in username", call: tokenCall("grant_type=password&username=ada%1f&password=x"), status: 400, code: "invalid_request"},
		{name: "DEL in username", call: tokenCall("grant_type=password&username=ada%7f&password=x"), status: 400, code: "invalid_request"},
		{name: "tab in scope", call: tokenCall(cc + "&scope=read%09write"), status: 400, code: "invalid_request"},
		{name: "newline in grant_type", call: tokenCall("grant_type=client_credentials%0a"), status: 400, code: "invalid_request"},
		{name: "escape in client_id", call: call{body: cc + "&client_id=conf-a%1b&client_secret=x"}, status: 400, code: "invalid_request"},
		{name: "CR in token_type_hint", call: call{path: server.PathRevoke, auth: confA, form: url.Values{"token": {rt}, "token_type_hint": {"refresh_token\r"}}}, status: 400, code: "invalid_request"},
		{name: "newline in redirect_uri", call: tokenCall(cc + "&redirect_uri=https%3A%2F%2Fa%0d%0aX"), status: 400, code: "invalid_request"},
		{name: "control character in code_verifier", call: tokenCall(cc + "&code_verifier=ab%08c"), status: 400, code: "invalid_request"},
		// A password may hold any other character: it is only hashed.
		{name: "tab and DEL in password", call: tokenCall("grant_type=password&username=ada&password=a%09b%7f"), status: 400, code: "invalid_grant"},
		{name: "tab in client_secret", call: call{body: cc + "&client_id=conf-a&client_secret=a%09b"}, status: 401, code: "invalid_client"},
		// One token, one spelling: base64 that decodes to the same MAC but
		// is not its canonical encoding is not the token (FuzzParseRefreshToken).
		{name: "refresh token MAC with unused bits set", call: tokenCall("grant_type=refresh_token&refresh_token=" + url.QueryEscape(respellMAC(t, rt))), status: 400, code: "invalid_grant"},
		{name: "refresh token MAC with a newline", call: tokenCall("grant_type=refresh_token&refresh_token=" + url.QueryEscape(rt[:len(rt)-10]+"\n"+rt[len(rt)-10:])), status: 400, code: "invalid_request"},

		// Content types: only application/x-www-form-urlencoded (RFC 6749 §3.2).
		{name: "json", call: call{auth: confA, ctype: "application/json", body: `{"grant_type":"client_credentials"}`}, status: 400, code: "invalid_request"},
		{name: "json at revoke", call: call{path: server.PathRevoke, auth: confA, ctype: "application/json", body: `{"token":"x"}`}, status: 400, code: "invalid_request"},
		{name: "json at introspect", call: call{path: server.PathIntrospect, auth: rsAuth, ctype: "application/json", body: `{"token":"x"}`}, status: 400, code: "invalid_request"},
		{name: "multipart", call: multipartCall(t, confA, map[string]string{"grant_type": "client_credentials"}), status: 400, code: "invalid_request"},
		{name: "no content type", call: tokenCall(cc), noContentType: true, status: 400, code: "invalid_request"},
		{name: "text/plain", call: call{auth: confA, ctype: "text/plain", body: cc}, status: 400, code: "invalid_request"},
		{name: "malformed media type", call: call{auth: confA, ctype: "application/x-www-form-urlencoded; ;;=", body: cc}, status: 400, code: "invalid_request"},
		{name: "form media type with suffix", call: call{auth: confA, ctype: "application/x-www-form-urlencoded-x", body: cc}, status: 400, code: "invalid_request"},
		// Media types compare case-insensitively (RFC 9110 §8.3.1).
		{name: "form media type in capitals", call: call{auth: confA, ctype: "APPLICATION/X-WWW-FORM-URLENCODED", body: cc}, status: 200},
		// The charset parameter is ignored: the body is read as the UTF-8
		// RFC 6749 Appendix B prescribes. An ASCII body is the same in
		// both; a real UTF-16 body has no grant_type parameter.
		// RFC 6749 App. B: the form is UTF-8; another declared charset is refused.
		{name: "charset utf-16, ASCII body", call: call{auth: confA, ctype: "application/x-www-form-urlencoded; charset=utf-16", body: cc}, status: 400, code: "invalid_request"},
		{name: "charset UTF-8", call: call{auth: confA, ctype: "application/x-www-form-urlencoded; charset=UTF-8", body: cc}, status: 200},
		{name: "charset utf-16, UTF-16 body", call: call{auth: confA, ctype: "application/x-www-form-urlencoded; charset=utf-16", body: utf16LE(cc)}, status: 400, code: "invalid_request"},

		// Access tokens that are not ours, at introspection: inactive, and
		// nothing about them is said (RFC 7662 §2.2).
		{name: "alg none", call: introspect(joinJWT(map[string]any{"alg": "none", "typ": "at+jwt"}, jwtPayload, "")), status: 200, inactive: true},
		{name: "alg none with our kid", call: introspect(joinJWT(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, jwtPayload, "")), status: 200, inactive: true},
		{name: "alg None with a signature", call: introspect(joinJWT(map[string]any{"alg": "None", "typ": "at+jwt", "kid": kid}, jwtPayload, strings.Split(at, ".")[2])), status: 200, inactive: true},
		{name: "HS256 keyed with our public key", call: introspect(hs256WithPublicKey(t, ts, kid, jwtPayload)), status: 200, inactive: true},
		{name: "unknown kid", call: introspect(signES256(t, "no-such-kid", jwtPayload)), status: 200, inactive: true},
		{name: "our kid, foreign key", call: introspect(signES256(t, kid, jwtPayload)), status: 200, inactive: true},
		{name: "token of another server", call: introspect(foreignAT), status: 200, inactive: true},
		{name: "payload swapped", call: introspect(joinJWT(jwtHeader, base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)), strings.Split(at, ".")[2])), status: 200, inactive: true},
		{name: "JWS JSON serialization", call: introspect(`{"payload":"` + jwtPayload + `","signatures":[]}`), status: 200, inactive: true},
		{name: "alg none at revoke", call: call{path: server.PathRevoke, auth: confA, form: url.Values{"token": {joinJWT(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, jwtPayload, "")}}}, status: 200},

		// Basic credentials (RFC 6749 §2.3.1, RFC 7617).
		{name: "basic invalid base64", call: call{auth: "Basic !!!!", body: cc}, status: 401, code: "invalid_client"},
		{name: "basic truncated base64", call: call{auth: "Basic " + enc("conf-a:x")[:5], body: cc}, status: 401, code: "invalid_client"},
		{name: "basic bad escape in id", call: call{auth: "Basic " + enc("conf%zz:x"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic bad escape in secret", call: call{auth: "Basic " + enc("conf-a:%"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic escape to invalid UTF-8", call: call{auth: "Basic " + enc("conf-a:%ff%fe"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic raw invalid UTF-8", call: call{auth: "Basic " + enc("conf-a:\xff"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic no colon", call: call{auth: "Basic " + enc("conf-a"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic empty id", call: call{auth: "Basic " + enc(":"+url.QueryEscape(confASecret)), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic empty id and secret", call: call{auth: "Basic " + enc(":"), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic nothing", call: call{auth: "Basic ", body: cc}, status: 401, code: "invalid_client"},
		{name: "basic without credentials", call: call{auth: "Basic", body: cc}, status: 401, code: "invalid_client"},
		// Basic credentials follow the rule of client_id and client_secret.
		{name: "basic NUL in id", call: call{auth: basic("conf-a\x00", confASecret), body: cc}, status: 400, code: "invalid_request"},
		{name: "basic NUL alone as id", call: call{auth: basic("\x00", confASecret), body: cc}, status: 400, code: "invalid_request"},
		{name: "basic control character in id", call: call{auth: basic("conf\x7f-a", confASecret), body: cc}, status: 400, code: "invalid_request"},
		{name: "basic raw NUL in id", call: call{auth: "Basic " + enc("conf-a\x00:x"), body: cc}, status: 400, code: "invalid_request"},
		{name: "basic NUL in secret", call: call{auth: basic("conf-a", confASecret+"\x00"), body: cc}, status: 400, code: "invalid_request"},
		{name: "basic NUL id at introspection", call: call{path: server.PathIntrospect, auth: basic("rs\x00", "x"), form: url.Values{"token": {at}}}, status: 400, code: "invalid_request"},
		{name: "basic 16 KiB secret", call: call{auth: basic("conf-a", strings.Repeat("s", 12<<10)), body: cc}, status: 401, code: "invalid_client"},
		{name: "16 KiB Authorization header", call: call{auth: "Basic " + strings.Repeat("A", 16<<10), body: cc}, status: 401, code: "invalid_client"},
		{name: "16 KiB Authorization header of another scheme", call: call{auth: "Bearer " + strings.Repeat("A", 16<<10), body: cc}, status: 401, code: "invalid_client"},
		{name: "basic at introspection, invalid", call: call{path: server.PathIntrospect, auth: "Basic " + enc("cc-only"), form: url.Values{"token": {at}}}, status: 401, code: "invalid_client"},
		{name: "basic at revoke, invalid", call: call{path: server.PathRevoke, auth: "Basic " + enc(":"), form: url.Values{"token": {rt}}}, status: 401, code: "invalid_client"},

		// Methods: the POST endpoints answer 405 with Allow: POST
		// (DESIGN.md decision D8).
		{name: "PUT token", call: call{method: http.MethodPut, auth: confA, body: cc}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "DELETE token", call: call{method: http.MethodDelete, auth: confA}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "PATCH token", call: call{method: http.MethodPatch, auth: confA, body: cc}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "OPTIONS token", call: call{method: http.MethodOptions}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "PUT revoke", call: call{method: http.MethodPut, path: server.PathRevoke, auth: confA, form: url.Values{"token": {rt}}}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "DELETE revoke", call: call{method: http.MethodDelete, path: server.PathRevoke, auth: confA, form: url.Values{"token": {rt}}}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "PATCH revoke", call: call{method: http.MethodPatch, path: server.PathRevoke, auth: confA, form: url.Values{"token": {rt}}}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "PUT introspect", call: call{method: http.MethodPut, path: server.PathIntrospect, auth: rsAuth, form: url.Values{"token": {at}}}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "DELETE introspect", call: call{method: http.MethodDelete, path: server.PathIntrospect, auth: rsAuth}, status: 405, code: "invalid_request", allow: "POST"},
		{name: "PATCH introspect", call: call{method: http.MethodPatch, path: server.PathIntrospect, auth: rsAuth, form: url.Values{"token": {at}}}, status: 405, code: "invalid_request", allow: "POST"},

		// Unknown paths: 404 with a JSON body.
		{name: "below the authorization endpoint", call: call{method: http.MethodGet, path: server.PathAuthorize + "/x?response_type=code"}, status: 404, code: "not_found"},
		{name: "root", call: call{method: http.MethodGet, path: "/"}, status: 404, code: "not_found"},
		{name: "token with a trailing slash", call: call{path: server.PathToken + "/", auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "token below", call: call{path: server.PathToken + "/x", auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "token in capitals", call: call{path: "/OAUTH2/TOKEN", auth: confA, body: cc}, status: 404, code: "not_found"},
		// Paths match exactly as sent: an encoded slash is not a separator,
		// and unclean paths are not redirected (a 301 with an HTML body,
		// which a client following it would turn into a GET).
		{name: "encoded slash", call: call{path: "/oauth2%2Ftoken", auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "dot segments", call: call{path: "/oauth2/../oauth2/token", auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "encoded dot segments", call: call{path: "/oauth2/%2e%2e/x", auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "double slash", call: call{path: "/" + server.PathToken, auth: confA, body: cc}, status: 404, code: "not_found"},
		{name: "openid configuration, POST", call: call{path: "/.well-known/openid-configuration", body: cc}, status: 405, code: "invalid_request"},
		{name: "openid configuration, trailing slash", call: call{method: http.MethodGet, path: server.PathOpenIDConfiguration + "/"}, status: 404, code: "not_found"},
		{name: "unknown path with a huge body", call: call{path: "/nope", body: big}, status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			if tt.noContentType || tt.location != "" {
				r = send(t, ts, tt.call, !tt.noContentType)
			} else {
				r = ts.do(tt.call)
			}
			switch {
			case tt.location != "":
				if r.status != tt.status || r.header.Get("Location") != tt.location {
					t.Fatalf("got %d Location %q, want %d to %q", r.status, r.header.Get("Location"), tt.status, tt.location)
				}
			case tt.inactive:
				if r.status != 200 || string(r.body) != "{\"active\":false}\n" {
					t.Fatalf("got %d %s, want exactly {\"active\":false}", r.status, r.body)
				}
			case tt.code == "":
				if r.status != tt.status {
					t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
				}
				if tt.call.path == "" && r.str("access_token") == "" {
					t.Fatalf("token response without an access token: %s", r.body)
				}
			default:
				wantError(t, r, tt.status, tt.code)
			}
			if tt.maxBody > 0 && len(r.body) > tt.maxBody {
				t.Errorf("answer of %d bytes, want at most %d", len(r.body), tt.maxBody)
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow = %q, want %q", r.header.Get("Allow"), tt.allow)
			}
		})
	}

	// None of it hurt the real session, and none of it was an internal error.
	if r := ts.introspect(rsAuth, at); r.status != 200 || r.json["active"] != true {
		t.Errorf("the real access token after the hostile requests: %d %s", r.status, r.body)
	}
	if r := ts.token(confA, refresh(rt)); r.status != 200 {
		t.Errorf("the real refresh token after the hostile requests: %d %s", r.status, r.body)
	}
	if logs := ts.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("hostile requests logged errors:\n%s", logs)
	}
}

// TestHostileRefreshTokenFromAnotherKey: refresh tokens for a real session,
// minted with another server's MAC key, are refused with invalid_grant, and
// the session is unaffected. The past generation matters most: were its
// forgery taken for reuse, a stranger who knows a session id (the access
// token's sid) could log its owner out.
func TestHostileRefreshTokenFromAnotherKey(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) { hostileRefreshTokenFromAnotherKey(t, b) })
	}
}

func hostileRefreshTokenFromAnotherKey(t *testing.T, b backend) {
	ts := newTestServer(t, b)
	rt0 := ts.login(confA).str("refresh_token")
	r := ts.token(confA, refresh(rt0))
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	rt1, at1 := r.str("refresh_token"), r.str("access_token")
	familyID := strings.Split(rt1, ".")[1]
	f, err := ts.store.GetFamily(t.Context(), familyID)
	if err != nil {
		t.Fatal(err)
	}
	other := servertest.Keys(t, sqlstoretest.SQLite(t), 8, keys.Options{Now: ts.clock.Now})
	for _, gen := range []uint64{0, 1, 2} { // rotated away, current, future
		forged := other.RefreshToken(f, gen)
		if !strings.HasPrefix(forged, "ktr2."+familyID+"."+strconv.FormatUint(gen, 10)+".") || forged == rt0 || forged == rt1 {
			t.Fatalf("forged token %q is not a look-alike of the session's", forged)
		}
		t.Run("generation "+strconv.FormatUint(gen, 10), func(t *testing.T) {
			wantError(t, ts.token(confA, refresh(forged)), 400, "invalid_grant")
			if r := ts.revoke(confA, url.Values{"token": {forged}}); r.status != 200 {
				t.Fatalf("revoke a forged token: %d %s, want 200 (RFC 7009 §2.2)", r.status, r.body)
			}
			if r := ts.introspect(confBAuth, forged); r.status != 200 || string(r.body) != "{\"active\":false}\n" {
				t.Fatalf("introspect a forged token: %d %s", r.status, r.body)
			}
		})
	}
	after, err := ts.store.GetFamily(t.Context(), familyID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revoked() || after.Generation != f.Generation {
		t.Fatalf("forgeries changed the session: revoked %v (%s), generation %d -> %d",
			after.Revoked(), after.RevokeReason, f.Generation, after.Generation)
	}
	if r := ts.introspect(rsAuth, at1); r.json["active"] != true {
		t.Fatalf("the session's access token after forgeries: %d %s", r.status, r.body)
	}
	if r := ts.token(confA, refresh(rt1)); r.status != 200 {
		t.Fatalf("the genuine token after forgeries: %d %s", r.status, r.body)
	}
}

// respellMAC changes the unused low bits of the last character of a refresh
// token's MAC: the same 32 bytes, spelled differently.
func respellMAC(t *testing.T, rt string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, rt[len(rt)-1])
	if i < 0 {
		t.Fatalf("refresh token %q does not end in base64url", rt)
	}
	other := rt[:len(rt)-1] + string(alphabet[i^1])
	mac := func(s string) []byte {
		b, _ := base64.RawURLEncoding.DecodeString(s[strings.LastIndexByte(s, '.')+1:])
		return b
	}
	if !bytes.Equal(mac(rt), mac(other)) || len(mac(rt)) != 32 {
		t.Fatalf("respelling %q did not keep the MAC", rt)
	}
	return other
}

// manyParams returns first followed by n more distinct, empty parameters.
func manyParams(first string, n int) string {
	var b strings.Builder
	b.WriteString(first)
	for i := range n {
		b.WriteString("&p")
		b.WriteString(strconv.FormatInt(int64(i), 36))
	}
	return b.String()
}

// utf16LE encodes an ASCII string as UTF-16LE.
func utf16LE(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

func multipartCall(t *testing.T, auth string, fields map[string]string) call {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return call{auth: auth, ctype: w.FormDataContentType(), body: body.String()}
}

// send sends c, with a form Content-Type only if withContentType, and
// does not follow redirects.
func send(t *testing.T, ts *testServer, c call, withContentType bool) reply {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = server.PathToken
	}
	req, err := http.NewRequest(c.method, ts.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if withContentType {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// splitJWT returns a compact JWS's decoded header and its encoded payload.
func splitJWT(t *testing.T, tok string) (map[string]any, string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h, parts[1]
}

func joinJWT(header map[string]any, payload, signature string) string {
	h, _ := json.Marshal(header)
	return base64.RawURLEncoding.EncodeToString(h) + "." + payload + "." + signature
}

// signES256 signs payload with a new P-256 key under kid: a well-formed
// token that no key of ours verifies.
func signES256(t *testing.T, kid, payload string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256WithPublicKey is the algorithm-confusion attack: an HMAC keyed with
// the published public key, under the real kid.
func hs256WithPublicKey(t *testing.T, ts *testServer, kid, payload string) string {
	t.Helper()
	set := ts.jwks()
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", kid)
	}
	pub, err := keys[0].MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := joinJWT(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, payload, "")
	m := hmac.New(sha256.New, pub)
	m.Write([]byte(strings.TrimSuffix(unsigned, ".")))
	return unsigned + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

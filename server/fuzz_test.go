package server_test

// Fuzz targets for everything that reads attacker-controlled bytes before a
// client has authenticated, through a real server: the token endpoint's
// form handling, and the token parameter of revocation and introspection
// (fuzz_parse_test.go has the refresh-token parser and HTTP Basic decoding). `go test` runs them over their seeds (the
// f.Add calls and testdata/fuzz/<FuzzName>/); `go test -fuzz=FuzzX` explores.
// Each builds its server once, before f.Fuzz, so an iteration costs one
// request.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// fuzzMAC is a syntactically valid MAC (32 bytes, base64url).
var fuzzMAC = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 32))

// fuzzServer is a real server over a fresh store: client "web"
// (confidential, password, refresh_token and authorization_code, may
// introspect), client "svc" (client_credentials only), client "app"
// (public) and user "ada". The fuzz targets run every
// input against one on SQLite and one on PostgreSQL (newFuzzServers).
type fuzzServer struct {
	name  string // the database: SQLite or Postgres
	srv   *server.Server
	store storage.Store
}

const (
	fuzzRedirect  = "https://web.example.com/cb"
	fuzzVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
	fuzzWebSecret = "web:s+c/r%t"
	fuzzSvcSecret = "svc-secret"
	fuzzPassword  = "correct horse"
)

var fuzzBasic = servertest.Basic

// newFuzzServers returns a fuzz server on SQLite and one on PostgreSQL;
// without KEYTURN_TEST_DATABASE_URL the PostgreSQL one has no server, and
// forEachFuzzServer skips it.
func newFuzzServers(f *testing.F) []*fuzzServer {
	f.Helper()
	servers := []*fuzzServer{newFuzzServer(f, "SQLite", sqlstoretest.SQLite(f))}
	if os.Getenv(sqlstoretest.EnvPostgres) == "" {
		return append(servers, &fuzzServer{name: "Postgres"})
	}
	return append(servers, newFuzzServer(f, "Postgres", sqlstoretest.Postgres(f)))
}

// forEachFuzzServer runs fn against each server in a subtest named after
// its database (so CI counts the PostgreSQL runs, and notices skips).
func forEachFuzzServer(t *testing.T, servers []*fuzzServer, fn func(t *testing.T, fs *fuzzServer)) {
	for _, fs := range servers {
		t.Run(fs.name, func(t *testing.T) {
			if fs.srv == nil {
				t.Skip("set " + sqlstoretest.EnvPostgres + " to a PostgreSQL database")
			}
			fn(t, fs)
		})
	}
}

func newFuzzServer(f *testing.F, name string, store storage.Store) *fuzzServer {
	f.Helper()
	clock := servertest.NewClock() // never advanced
	hash := clients.SHA256Hash
	// The fast argon2id parameters keep a correct-password iteration fast.
	servertest.AddUser(f, store, "ada", fuzzPassword, clock.Now())
	srv, _ := servertest.New(f, store, servertest.Setup{
		Issuer: "https://auth.example.com", Now: clock.Now, KeySeed: 9,
		Clients: []clients.Spec{
			{ID: "web", SecretHash: hash(fuzzWebSecret), GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantAuthorizationCode},
				RedirectURIs: []string{fuzzRedirect},
				Scopes:       []string{"read", "write"}, DefaultScopes: []string{"read"}, Introspect: true,
				Audience: []string{"https://api.example.com"}, Resources: []string{"https://api.example.com", "https://auth.example.com"}},
			{ID: "svc", SecretHash: hash(fuzzSvcSecret), GrantTypes: []string{clients.GrantClientCredentials},
				Scopes: []string{"read"}, DefaultScopes: []string{"read"}},
			{ID: "app", Public: true, GrantTypes: []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantAuthorizationCode},
				RedirectURIs: []string{"http://127.0.0.1/cb"}, Scopes: []string{"read"}, DefaultScopes: []string{"read"}},
		},
	})
	return &fuzzServer{name: name, srv: srv, store: store}
}

// code stores an authorization code of ada for client, with the challenge
// of fuzzVerifier, as the authorization endpoint does, and returns it.
func (fs *fuzzServer) code(f *testing.F, client string) string {
	f.Helper()
	now := servertest.Start
	bs := storage.BrowserSession{ID: base64.RawURLEncoding.EncodeToString(tokens.HashSecret(tokens.NewSecret())),
		UserID: "user-ada", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := fs.store.CreateBrowserSession(f.Context(), bs); err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256([]byte(fuzzVerifier))
	redirect := map[string]string{"web": fuzzRedirect, "app": "http://127.0.0.1:8080/cb"}[client]
	code := tokens.NewSecret()
	err := fs.store.CreateCode(f.Context(), storage.AuthCode{
		Hash: tokens.HashSecret(code), ClientID: client, UserID: "user-ada", RedirectURI: redirect,
		CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), Scope: "read", BrowserSessionID: bs.ID,
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Minute),
	})
	if err != nil {
		f.Fatal(err)
	}
	return code
}

// accessTokenID is the jti of an access token this server just issued (its
// payload, unverified: the server signed it a moment ago).
func accessTokenID(f *testing.F, at string) string {
	f.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		f.Fatalf("access token %q: not a JWS", at)
	}
	var c struct {
		ID string `json:"jti"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil || c.ID == "" {
		f.Fatalf("access token %q: no jti", at)
	}
	return c.ID
}

type fuzzReply struct {
	status int
	header http.Header
	body   []byte
}

func (fs *fuzzServer) post(path, ctype, auth, body string) fuzzReply {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	fs.srv.ServeHTTP(rec, req)
	return fuzzReply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// login runs the password grant for ada as web and returns the response.
func (fs *fuzzServer) login(f *testing.F) server.TokenResponse {
	f.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {fuzzPassword}}
	r := fs.post(server.PathToken, "application/x-www-form-urlencoded", fuzzBasic("web", fuzzWebSecret), form.Encode())
	var resp server.TokenResponse
	if r.status != http.StatusOK || json.Unmarshal(r.body, &resp) != nil || resp.RefreshToken == "" {
		f.Fatalf("login: %d %s", r.status, r.body)
	}
	return resp
}

// rfcErrorCodes are the error codes the POST endpoints may answer with:
// RFC 6749 §5.2, RFC 8707 §2 (invalid_target), and those of load shedding
// and throttling (temporarily_unavailable; DESIGN.md decision D9).
var rfcErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_target": true,
	"unsupported_token_type": true, "temporarily_unavailable": true,
}

// checkErrorReply fails unless r is a JSON OAuth error with a known code
// and a status that matches it.
func checkErrorReply(t *testing.T, what string, r fuzzReply) {
	t.Helper()
	var e struct {
		Code        *string `json:"error"`
		Description string  `json:"error_description"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == nil {
		t.Fatalf("%s: %d with body %q, want a JSON error", what, r.status, r.body)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: %d error with Content-Type %q", what, r.status, r.header.Get("Content-Type"))
	}
	if !rfcErrorCodes[*e.Code] {
		t.Fatalf("%s: %d with unknown error code %q", what, r.status, *e.Code)
	}
	switch {
	case *e.Code == "invalid_client" && r.status != http.StatusUnauthorized,
		*e.Code != "invalid_client" && r.status == http.StatusUnauthorized,
		r.status < 400 || r.status > 599:
		t.Fatalf("%s: status %d for %q", what, r.status, *e.Code)
	}
	if strings.ContainsFunc(e.Description, func(c rune) bool { return c == '"' || c == '\\' || c < 0x20 || c > 0x7e }) {
		t.Fatalf("%s: error_description %q outside RFC 6749 §5.2's characters", what, e.Description)
	}
}

func FuzzTokenForm(f *testing.F) {
	servers := newFuzzServers(f)
	web := fuzzBasic("web", fuzzWebSecret)
	svc := fuzzBasic("svc", fuzzSvcSecret)
	const form = "application/x-www-form-urlencoded"
	for _, fs := range servers {
		if fs.srv != nil {
			rt := fs.login(f).RefreshToken
			f.Add(form, web, "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt))
			f.Add(form, web, "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt)+"%00")
			code := url.Values{"grant_type": {"authorization_code"}, "code": {fs.code(f, "web")},
				"code_verifier": {fuzzVerifier}, "redirect_uri": {fuzzRedirect}}
			f.Add(form, web, code.Encode())
			f.Add(form, web, code.Encode()+"&resource=https%3A%2F%2Fevil")
			f.Add(form, web, code.Encode()+"%00")
			code.Set("code", fs.code(f, "app"))
			code.Set("redirect_uri", "http://127.0.0.1:8080/cb")
			f.Add(form, "", code.Encode()+"&client_id=app")
		}
	}
	for _, s := range []struct{ ctype, auth, body string }{
		{form, web, "grant_type=password&username=ada&password=correct+horse"},
		{form, web, "grant_type=password&username=ada&password=correct+horse&scope=read+write&resource=https%3A%2F%2Fapi.example.com"},
		{form, web, "grant_type=password&username=ada&password=nope"},
		{form, web, "grant_type=refresh_token&refresh_token=ktr1.AAAAAAAAAAAAAAAAAAAAAA.0." + fuzzMAC},
		{form, svc, "grant_type=client_credentials&scope=read"},
		{form, svc, "grant_type=client_credentials&scope=admin"},
		{form, svc, "grant_type=client_credentials&resource=https%3A%2F%2Fevil"},
		{form, "", "grant_type=client_credentials&client_id=svc&client_secret=svc-secret"},
		{form, "", "grant_type=password&client_id=app&username=ada&password=correct+horse"},
		{form, web, "grant_type=client_credentials&grant_type=password"},
		{form, web, "grant_type=magic"},
		{form, web, "grant_type=password&username=%zz&password=%"},
		{form, web, "grant_type=password&username=%ff%fe&password=x"},
		{form, web, "\xff=\xfe&grant_type=password"},
		{form, web, "grant_type=password&username=a%00da&password=x"},
		{form, web, "grant_type=password&username=%00&password=x"},
		{form, web, "grant_type=password&username=ada&password=x%00"},
		{form, web, "grant_type=password&username=a%01da&password=x%09y"},
		{form, web, "grant_type=client_credentials&scope=read%7f"},
		{form, fuzzBasic("web\x00", fuzzWebSecret), "grant_type=password&username=ada&password=x"},
		{form, "", "grant_type=password&client_id=app%00&username=ada&password=x"},
		{form + "; charset=utf-16", web, "grant_type=client_credentials"},
		{form + "; charset=", web, "grant_type=client_credentials"},
		{"application/json", web, `{"grant_type":"client_credentials"}`},
		{"multipart/form-data; boundary=x", web, "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\npassword\r\n--x--\r\n"},
		{"", web, "grant_type=client_credentials"},
		{";;;", web, "grant_type=client_credentials"},
		{form, "Basic !!!", "grant_type=client_credentials"},
		{form, "Bearer x", "grant_type=client_credentials"},
		{form, web, "grant_type=client_credentials&client_secret=x"},
		{form, web, "grant_type=client_credentials&client_id=svc"},
		{form, web, "grant_type=password&username=&password="},
		{form, web, "grant_type=refresh_token&refresh_token=&scope=%20%20"},
		{form, web, "&&&==&=&grant_type"},
		{form, web, "grant_type=authorization_code&code=x&code_verifier=" + fuzzVerifier},
		{form, web, "grant_type=authorization_code&code=&code_verifier=&redirect_uri="},
		{form, web, "grant_type=authorization_code&code=x%00&code_verifier=%c3%a9&redirect_uri=%ff"},
		{form, "", "grant_type=authorization_code&code=x&client_id=app&code_verifier=" + fuzzVerifier + "~"},
	} {
		f.Add(s.ctype, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, ctype, auth, body string) {
		forEachFuzzServer(t, servers, func(t *testing.T, fs *fuzzServer) {
			r := fs.post(server.PathToken, ctype, auth, body)
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%d without Cache-Control: no-store", r.status)
			}
			if r.status == http.StatusOK {
				var resp server.TokenResponse
				if err := json.Unmarshal(r.body, &resp); err != nil || resp.AccessToken == "" || resp.TokenType != "Bearer" {
					t.Fatalf("200 with body %q", r.body)
				}
				return
			}
			checkErrorReply(t, "token", r)
		})
	})
}

func FuzzIntrospectRevoke(f *testing.F) {
	servers := newFuzzServers(f)
	web := fuzzBasic("web", fuzzWebSecret)
	// Real tokens: the only ones introspection may call active, each on
	// the server that issued it. The access tokens are identified by jti
	// (a JWS signature has more than one base64 spelling; the claims it
	// signs have one) and the refresh tokens by their exact value.
	issued := map[*fuzzServer]map[string]bool{}
	liveRefresh := map[*fuzzServer]map[string]bool{}
	for _, fs := range servers {
		if fs.srv == nil {
			continue
		}
		first, second := fs.login(f), fs.login(f)
		issued[fs], liveRefresh[fs] = map[string]bool{}, map[string]bool{}
		for _, at := range []string{first.AccessToken, second.AccessToken} {
			issued[fs][accessTokenID(f, at)] = true
		}
		liveRefresh[fs][first.RefreshToken], liveRefresh[fs][second.RefreshToken] = true, true
		// The setup is right: real tokens are active, so "inactive" below
		// is the server's judgement, not a broken caller.
		for _, tok := range []string{first.AccessToken, first.RefreshToken} {
			r := fs.post(server.PathIntrospect, "application/x-www-form-urlencoded", web, url.Values{"token": {tok}}.Encode())
			if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"active":true`)) {
				f.Fatalf("%s: introspect a real token: %d %s", fs.name, r.status, r.body)
			}
		}
		parts := strings.Split(first.RefreshToken, ".")
		at := strings.Split(first.AccessToken, ".")
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
		for _, s := range []string{
			first.AccessToken,
			first.RefreshToken,
			first.RefreshToken + "\x00",
			"ktr1." + parts[1] + ".0." + fuzzMAC,
			"ktr1." + parts[1] + ".1." + parts[3],
			"ktr1." + parts[1] + ".18446744073709551615." + parts[3],
			noneHeader + "." + at[1] + ".",
			at[0] + "." + at[1] + ".",
			at[0] + "." + at[1] + "." + at[1],
			second.AccessToken,
			second.RefreshToken,
		} {
			f.Add(s)
		}
	}
	for _, s := range []string{
		"",
		"x",
		"a.b.c",
		"..",
		"ktr1.",
		`{"alg":"none"}`,
		"\x00",
		"x\x1f",
		"\xff\xfe",
		strings.Repeat("A", 4096),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		forEachFuzzServer(t, servers, func(t *testing.T, fs *fuzzServer) {
			body := url.Values{"token": {token}}.Encode()
			r := fs.post(server.PathIntrospect, "application/x-www-form-urlencoded", web, body)
			switch {
			case r.status == http.StatusOK:
				var got server.Introspection
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatalf("introspect: 200 with body %q", r.body)
				}
				if !got.Active {
					if string(r.body) != "{\"active\":false}\n" {
						t.Fatalf("introspect: inactive answer %q says more than {\"active\":false}", r.body)
					}
					break
				}
				if (got.ID != "" && !issued[fs][got.ID]) || (got.ID == "" && !liveRefresh[fs][token]) {
					t.Fatalf("introspect(%q): active %s, but it is not a token this server issued", token, r.body)
				}
			case token == "":
				checkErrorReply(t, "introspect", r)
			default:
				// Anything else non-200 is a parse refusal (invalid UTF-8,
				// a control character) or load shedding, never 500.
				checkErrorReply(t, "introspect", r)
				if r.status == http.StatusBadRequest && utf8.ValidString(token) && !hasControl(token) {
					t.Fatalf("introspect(%q): %d %s for a well-formed request", token, r.status, r.body)
				}
			}

			r = fs.post(server.PathRevoke, "application/x-www-form-urlencoded", web, body)
			if r.status == http.StatusOK {
				if len(r.body) != 0 {
					t.Fatalf("revoke: 200 with body %q", r.body)
				}
				return
			}
			checkErrorReply(t, "revoke", r)
		})
	})
}

// hasControl reports whether s holds a C0 control character or DEL, which
// parseForm refuses in a token.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f })
}

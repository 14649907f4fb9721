package clients

import (
	"strings"
	"testing"
)

// webA is a confidential web client of the authorization code grant with
// two redirect URIs, one with a query.
func webA() Spec {
	return Spec{
		ID:           "web-a",
		Name:         "Web A",
		SecretHash:   SHA256Hash("web-a-s3cret"),
		GrantTypes:   []string{GrantAuthorizationCode, GrantRefreshToken},
		Scopes:       []string{"read", "write"},
		RedirectURIs: []string{"https://rp.test/cb", "https://rp.test/cb2?tenant=7"},
	}
}

// nativeA is a public native app: loopback, private-use scheme and claimed
// https redirect URIs.
func nativeA() Spec {
	return Spec{
		ID:         "native-a",
		Public:     true,
		GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken},
		Scopes:     []string{"read"},
		RedirectURIs: []string{
			"http://127.0.0.1/cb", "http://[::1]/cb", "com.example.app:/oauth2redirect",
			"https://app.example.com/oauth2redirect",
		},
	}
}

func redirects(s Spec, uris ...string) Spec {
	s.RedirectURIs = uris
	return s
}

func TestValidateCodeGrant(t *testing.T) {
	tests := []struct {
		name  string
		specs []Spec
		want  []string
	}{
		{"web", []Spec{webA()}, nil},
		{"native", []Spec{nativeA()}, nil},
		{"spa", []Spec{redirects(nativeA(), "https://spa.test/cb")}, nil},
		{"code alone", []Spec{with(webA(), func(s *Spec) { s.GrantTypes = []string{GrantAuthorizationCode} })}, nil},
		{"code and client_credentials", []Spec{with(webA(), func(s *Spec) {
			s.GrantTypes = []string{GrantClientCredentials, GrantAuthorizationCode}
		})}, nil},
		{"code and password", []Spec{with(webA(), func(s *Spec) {
			s.GrantTypes = append(s.GrantTypes, GrantPassword)
		})}, nil},
		{"first party", []Spec{with(webA(), func(s *Spec) { s.FirstParty = true })}, nil},
		{"public first party", []Spec{with(nativeA(), func(s *Spec) { s.FirstParty = true })}, nil},

		// RFC 6749 §3.1.2.2: the code grant needs registered redirect URIs.
		{"code without redirect_uris", []Spec{redirects(webA())},
			[]string{"clients[0].redirect_uris: required with the authorization_code grant"}},
		{"code with empty redirect_uris", []Spec{redirects(nativeA(), []string{}...)},
			[]string{"clients[0].redirect_uris: required with the authorization_code grant"}},
		{"redirect_uris without code", []Spec{with(app("web"), func(s *Spec) { s.RedirectURIs = []string{"https://rp.test/cb"} })},
			[]string{"clients[0].redirect_uris: only with the authorization_code grant"}},

		// Either grant that starts a session may come with refresh_token.
		{"refresh with code", []Spec{with(webA(), func(s *Spec) { s.GrantTypes = []string{GrantRefreshToken, GrantAuthorizationCode} })}, nil},
		{"refresh with neither", []Spec{with(webA(), func(s *Spec) {
			s.GrantTypes, s.RedirectURIs = []string{GrantClientCredentials, GrantRefreshToken}, nil
		})}, []string{"clients[0].grant_types: refresh_token requires password or authorization_code"}},
		{"no grant names code", []Spec{with(webA(), func(s *Spec) { s.GrantTypes, s.RedirectURIs = nil, nil })},
			[]string{"clients[0].grant_types: at least one of authorization_code, password, refresh_token, client_credentials is required"}},
		{"unknown grant names code", []Spec{with(webA(), func(s *Spec) { s.GrantTypes = []string{GrantAuthorizationCode, "implicit"} })},
			[]string{`clients[0].grant_types[1]: unknown grant type "implicit" (want one of authorization_code, password`}},
		{"duplicate code grant", []Spec{with(webA(), func(s *Spec) {
			s.GrantTypes = []string{GrantAuthorizationCode, GrantAuthorizationCode}
		})}, []string{"clients[0].grant_types[1]: duplicate of grant_types[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, Validate(tt.specs), tt.want)
		})
	}
}

// TestValidateRedirectURIs: each registered redirect URI is complete and
// exact (RFC 6749 §3.1.2, RFC 9700 §2.1), https unless it is a public
// native app's loopback or private-use redirect (RFC 9700 §2.6, RFC 8252
// §7.1, §7.3, §8.4).
func TestValidateRedirectURIs(t *testing.T) {
	tests := []struct {
		name   string
		public bool
		uri    string
		want   string // "" accepted; else what the error says after the URI
	}{
		{"https", false, "https://rp.test/cb", ""},
		{"https query", false, "https://rp.test/cb2?tenant=7", ""},
		{"https port", false, "https://rp.test:8443/cb", ""},
		{"https no path", false, "https://rp.test", ""},
		{"https percent-encoded", false, "https://rp.test/%63b%20x", ""},
		{"https loopback, confidential", false, "https://127.0.0.1/cb", ""},
		{"https public", true, "https://spa.test/cb", ""},
		{"loopback v4", true, "http://127.0.0.1/cb", ""},
		{"loopback v6", true, "http://[::1]/cb", ""},
		{"loopback localhost", true, "http://localhost/cb", ""},
		{"loopback no path", true, "http://127.0.0.1", ""},
		{"loopback fixed port", true, "http://127.0.0.1:8080/cb", ""},
		{"loopback v6 fixed port", true, "http://[::1]:8080/cb", ""},
		{"private-use", true, "com.example.app:/oauth2redirect", ""},
		{"private-use authority", true, "com.example.app://oauth2redirect", ""},

		{"empty", false, "", "empty"},
		{"relative", false, "/cb", "is not an absolute URI"},
		{"scheme-relative", false, "//rp.test/cb", "is not an absolute URI"},
		{"fragment", false, "https://rp.test/cb#x", "has a fragment"},
		{"empty fragment", false, "https://rp.test/cb#", "has a fragment"},
		{"wildcard host", false, "https://*.rp.test/cb", "has a '*'"},
		{"wildcard path", false, "https://rp.test/*", "has a '*'"},
		{"leading space", false, " https://rp.test/cb", "has whitespace"},
		{"inner space", false, "https://rp.test/c b", "has whitespace"},
		{"trailing newline", false, "https://rp.test/cb\n", "has whitespace"},
		{"tab", false, "https://rp.test/\tcb", "has whitespace"},
		{"NUL", false, "https://rp.test/cb\x00", "has whitespace"},
		{"DEL", false, "https://rp.test/cb\x7f", "has whitespace"},
		{"non-ASCII", false, "https://rp.test/café", "has whitespace"},
		{"non-ASCII host", false, "https://rp.tést/cb", "has whitespace"},
		{"bad escape", false, "https://rp.test/%zz", "is not a URI"},
		{"userinfo", false, "https://user@rp.test/cb", "has user information"},
		{"userinfo lookalike", false, "https://rp.test@evil.example/cb", "has user information"},
		{"userinfo private-use", true, "com.example.app://u:p@x/cb", "has user information"},
		{"upper-case scheme", false, "HTTPS://rp.test/cb", "write the scheme in lower case"},
		{"mixed-case scheme", true, "Com.Example.App:/cb", "write the scheme in lower case"},
		{"https no host", false, "https:///cb", "has no host"},
		{"https opaque", false, "https:rp.test/cb", "has no host"},
		{"https port only", false, "https://:443/cb", "has no host"},
		{"empty port", false, "https://rp.test:/cb", "has an empty port"},
		{"port zero", false, "https://rp.test:0/cb", "has a port outside 1-65535"},
		{"port too big", false, "https://rp.test:65536/cb", "has a port outside 1-65535"},

		// RFC 9700 §2.6: http only for loopback, and that only for
		// public native apps (RFC 8252 §7.3, §8.4).
		{"http confidential", false, "http://rp.test/cb", "is plain http"},
		{"http public", true, "http://rp.test/cb", "is plain http"},
		{"http 127.0.0.2", true, "http://127.0.0.2/cb", "is plain http"},
		{"http loopback suffix", true, "http://127.0.0.1.evil.example/cb", "is plain http"},
		{"http decimal address", true, "http://2130706433/cb", "is plain http"},
		{"http upper-case localhost", true, "http://LOCALHOST/cb", "is plain http"},
		{"http localhost dot", true, "http://localhost./cb", "is plain http"},
		{"http v6 zone", true, "http://[::1%25lo]/cb", "is plain http"},
		{"http v6 long form", true, "http://[0:0:0:0:0:0:0:1]/cb", "is plain http"},
		{"http opaque", true, "http:127.0.0.1/cb", "is plain http"},
		{"loopback confidential", false, "http://127.0.0.1/cb", "a loopback redirect is for a native app"},
		{"loopback v6 confidential", false, "http://[::1]:8080/cb", "a loopback redirect is for a native app"},

		// RFC 8252 §7.1, §8.4: reverse-domain private-use schemes, for
		// public clients only.
		{"private-use confidential", false, "com.example.app:/cb", "a private-use scheme is for a native app"},
		{"private-use without dot", true, "myapp:/cb", "must be a reverse domain name"},
		{"javascript", true, "javascript:alert(1)", "must be a reverse domain name"},
		{"data", true, "data:text/html,x", "must be a reverse domain name"},
		{"file", true, "file:///etc/passwd", "must be a reverse domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := nativeA()
			if !tt.public {
				s = webA()
			}
			s = redirects(s, tt.uri)
			if tt.want == "" {
				wantErrors(t, Validate([]Spec{s}), nil)
				return
			}
			err := Validate([]Spec{s})
			wantErrors(t, err, []string{"clients[0].redirect_uris[0]: "})
			if err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestValidateRedirectURIList(t *testing.T) {
	s := redirects(nativeA(), "https://a.test/cb", "myapp:/x", "https://a.test/cb", "", "https://a.test/cb")
	wantErrors(t, Validate([]Spec{s}), []string{
		"clients[0].redirect_uris[1]: \"myapp:/x\"",
		"clients[0].redirect_uris[2]: duplicate of redirect_uris[0]",
		"clients[0].redirect_uris[3]: empty",
		"clients[0].redirect_uris[4]: duplicate of redirect_uris[0]",
	})
}

// TestValidateName: the name is shown on the consent page, so it is
// printable text of at most MaxNameLen characters.
func TestValidateName(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"unset", "", ""},
		{"words", "Web A", ""},
		{"unicode", "Café Ünïcode 東京 — ok", ""},
		{"markup is text", "<img src=x onerror=alert(1)>", ""},
		{"at most", strings.Repeat("é", MaxNameLen), ""},
		{"too long", strings.Repeat("a", MaxNameLen+1), "101 characters, more than 100"},
		{"NUL", "Web\x00A", "not printable (U+0000)"},
		{"tab", "Web\tA", "not printable (U+0009)"},
		{"newline", "Web A\n", "not printable (U+000A)"},
		{"DEL", "Web\x7fA", "not printable (U+007F)"},
		{"C1", "Web\u0085A", "not printable (U+0085)"},
		{"right-to-left override", "Web \u202eA", "not printable (U+202E)"},
		{"zero-width space", "Web\u200bA", "not printable (U+200B)"},
		{"no-break space", "Web\u00a0A", "not printable (U+00A0)"},
		{"invalid UTF-8", "Web\xffA", "not valid UTF-8"},
		{"blank", "   ", "blank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]Spec{with(webA(), func(s *Spec) { s.Name = tt.value })})
			if tt.want == "" {
				wantErrors(t, err, nil)
				return
			}
			wantErrors(t, err, []string{"clients[0].name: "})
			if err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestResolveBrowserSettings(t *testing.T) {
	web, native := webA(), with(nativeA(), func(s *Spec) { s.FirstParty = true })
	r, err := New([]Spec{web, native, app("pw")}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := r.Get("web-a")
	if w.Name != "Web A" || w.FirstParty || w.Public || !w.AllowsGrant(GrantAuthorizationCode) || !w.AllowsGrant(GrantRefreshToken) ||
		w.AllowsGrant(GrantPassword) || strings.Join(w.RedirectURIs, " ") != "https://rp.test/cb https://rp.test/cb2?tenant=7" {
		t.Errorf("web-a = %+v", w)
	}
	n, _ := r.Get("native-a")
	if n.Name != "native-a" || !n.FirstParty || !n.Public || !n.AllowsGrant(GrantAuthorizationCode) {
		t.Errorf("native-a = %+v: want the id as name, first party, public", n)
	}
	p, _ := r.Get("pw")
	if p.AllowsGrant(GrantAuthorizationCode) || p.RedirectURIs != nil || p.Name != "pw" {
		t.Errorf("pw = %+v", p)
	}
	// The client holds its own copy: the spec's slice may be reused.
	web.RedirectURIs[0] = "https://evil.example/cb"
	if w.MatchRedirect("https://evil.example/cb") || !w.MatchRedirect("https://rp.test/cb") {
		t.Error("the client shares its redirect URIs with the spec")
	}
}

// TestMatchRedirect: a redirect_uri parameter matches a registered URI as
// the same string (RFC 6749 §3.1.2.3, RFC 9700 §2.1), except the port of a
// public client's loopback URI (RFC 8252 §7.3, §8.4).
func TestMatchRedirect(t *testing.T) {
	r, err := New([]Spec{
		webA(), nativeA(),
		redirects(with(nativeA(), func(s *Spec) { s.ID = "native-l" }), "http://localhost/cb", "http://127.0.0.1", "http://[::1]?x=1"),
		redirects(with(nativeA(), func(s *Spec) { s.ID = "native-p" }), "http://127.0.0.1:8080/cb"),
	}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		client, uri string
		want        bool
	}{
		// T-6749-3.1.2.3-a: exact matches only.
		{"web-a", "https://rp.test/cb", true},
		{"web-a", "https://rp.test/cb2?tenant=7", true},
		{"web-a", "https://rp.test/cb/", false},
		{"web-a", "https://rp.test/CB", false},
		{"web-a", "https://RP.test/cb", false},
		{"web-a", "HTTPS://rp.test/cb", false},
		{"web-a", "https://rp.test:443/cb", false},
		{"web-a", "https://rp.test/cb?x=1", false},
		{"web-a", "https://rp.test/cb?", false},
		{"web-a", "https://rp.test/cb2", false},
		{"web-a", "https://rp.test/cb2?tenant=8", false},
		{"web-a", "https://rp.test/cb2?tenant=7&x=1", false},
		{"web-a", "https://rp.test/cb#", false},
		{"web-a", "https://rp.test/cb#x", false},
		{"web-a", "https://rp.test/%63b", false},
		{"web-a", "https://rp.test/cb/../cb", false},
		{"web-a", "https://rp.test/./cb", false},
		{"web-a", "https://rp.test.evil.example/cb", false},
		{"web-a", "https://rp.test@evil.example/cb", false},
		{"web-a", "https://evil.example/?https://rp.test/cb", false},
		{"web-a", "http://rp.test/cb", false},
		{"web-a", "%20https://rp.test/cb", false},
		{"web-a", " https://rp.test/cb", false},
		{"web-a", "https://rp.test/cb ", false},
		{"web-a", "https://rp.test/cb\x00", false},
		{"web-a", "https://attacker.example/.rp.test", false},
		{"web-a", "", false},
		// T-8252-8.4-a: the port is never relaxed for other hosts.
		{"web-a", "https://rp.test:8443/cb", false},

		// T-8252-7.3-a: any port for a public client's loopback URI.
		{"native-a", "http://127.0.0.1/cb", true},
		{"native-a", "http://127.0.0.1:51004/cb", true},
		{"native-a", "http://127.0.0.1:1/cb", true},
		{"native-a", "http://127.0.0.1:65535/cb", true},
		{"native-a", "http://[::1]/cb", true},
		{"native-a", "http://[::1]:61023/cb", true},
		{"native-a", "com.example.app:/oauth2redirect", true},
		{"native-a", "https://app.example.com/oauth2redirect", true},
		// T-8252-8.4-a: everything but the port is exact.
		{"native-a", "http://127.0.0.1:51004/cb/", false},
		{"native-a", "http://127.0.0.1:51004/other", false},
		{"native-a", "https://127.0.0.1:51004/cb", false},
		{"native-a", "http://127.0.0.2:51004/cb", false},
		{"native-a", "http://127.0.0.1:51004/cb?x=1", false},
		{"native-a", "http://localhost:51004/cb", false},
		{"native-a", "http://localhost/cb", false},
		{"native-a", "http://127.0.0.1.evil.example:51004/cb", false},
		{"native-a", "http://2130706433:51004/cb", false},
		{"native-a", "http://[::1]:51004/cb/", false},
		{"native-a", "http://[0:0:0:0:0:0:0:1]:51004/cb", false},
		{"native-a", "http://127.0.0.1:51004@evil.example/cb", false},
		{"native-a", "http://127.0.0.1:51004.evil.example/cb", false},
		{"native-a", "http://127.0.0.1:/cb", false},
		{"native-a", "http://127.0.0.1:0/cb", false},
		{"native-a", "http://127.0.0.1:051004/cb", false},
		{"native-a", "http://127.0.0.1:08080/cb", false},
		{"native-a", "http://127.0.0.1:65536/cb", false},
		{"native-a", "http://127.0.0.1:99999/cb", false},
		{"native-a", "http://127.0.0.1:123456/cb", false},
		{"native-a", "http://127.0.0.1:+80/cb", false},
		{"native-a", "http://127.0.0.1:%380/cb", false},
		{"native-a", "http://127.0.0.1:80:80/cb", false},
		{"native-a", "HTTP://127.0.0.1:51004/cb", false},
		{"native-a", "http://127.0.0.1:51004/cb#", false},
		{"native-a", "com.example.app:/oauth2redirect/", false},
		{"native-a", "com.example.app://oauth2redirect", false},
		{"native-a", "https://app.example.com:8443/oauth2redirect", false},
		// §11 #20: localhost has the same any-port rule, and no other host.
		{"native-l", "http://localhost:51004/cb", true},
		{"native-l", "http://localhost/cb", true},
		{"native-l", "http://127.0.0.1:51004/cb", false},
		{"native-l", "http://LOCALHOST:51004/cb", false},
		// Registered without a path: a port and nothing else.
		{"native-l", "http://127.0.0.1:4000", true},
		{"native-l", "http://127.0.0.1:4000/", false},
		{"native-l", "http://127.0.0.1:4000?x", false},
		// Registered with a query and no path.
		{"native-l", "http://[::1]:4000?x=1", true},
		{"native-l", "http://[::1]:4000?x=2", false},
		// Registered with a port: that port only.
		{"native-p", "http://127.0.0.1:8080/cb", true},
		{"native-p", "http://127.0.0.1:8081/cb", false},
		{"native-p", "http://127.0.0.1/cb", false},
		{"native-p", "http://127.0.0.1:1234:8080/cb", false},
	}
	for _, tt := range tests {
		c, _ := r.Get(tt.client)
		if got := c.MatchRedirect(tt.uri); got != tt.want {
			t.Errorf("%s: MatchRedirect(%q) = %v, want %v", tt.client, tt.uri, got, tt.want)
		}
	}
}

// TestMatchRedirectConfidentialLoopback: the any-port rule is for public
// clients only (RFC 8252 §8.4), even if a confidential client held a
// loopback URI, which Validate refuses.
func TestMatchRedirectConfidentialLoopback(t *testing.T) {
	c := &Client{ID: "web", RedirectURIs: []string{"http://127.0.0.1/cb"}}
	if c.MatchRedirect("http://127.0.0.1:51004/cb") {
		t.Error("a confidential client's loopback URI matched another port")
	}
	if !c.MatchRedirect("http://127.0.0.1/cb") {
		t.Error("the exact URI did not match")
	}
}

// TestValidatePostLogoutRedirectURIs: post-logout redirect URIs obey the
// rules of redirect URIs (RP-Initiated Logout 1.0 §3.1; RFC 9700 §2.6:
// https, http only for a public client's loopback), and only a code-grant
// client has them.
func TestValidatePostLogoutRedirectURIs(t *testing.T) {
	logout := func(s Spec, uris ...string) Spec {
		s.PostLogoutRedirectURIs = uris
		return s
	}
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"https", logout(webA(), "https://rp.test/bye", "https://rp.test/bye?x=1"), nil},
		{"public loopback", logout(nativeA(), "http://127.0.0.1/bye"), nil},
		{"plain http", logout(webA(), "http://rp.test/bye"), []string{"clients[0].post_logout_redirect_uris[0]: \"http://rp.test/bye\" is plain http"}},
		{"confidential loopback", logout(webA(), "http://127.0.0.1/bye"), []string{"clients[0].post_logout_redirect_uris[0]: "}},
		{"fragment", logout(webA(), "https://rp.test/bye#x"), []string{"clients[0].post_logout_redirect_uris[0]: "}},
		{"pattern", logout(webA(), "https://*.rp.test/bye"), []string{"clients[0].post_logout_redirect_uris[0]: "}},
		{"relative", logout(webA(), "/bye"), []string{"clients[0].post_logout_redirect_uris[0]: "}},
		{"duplicate", logout(webA(), "https://rp.test/bye", "https://rp.test/bye"),
			[]string{"clients[0].post_logout_redirect_uris[1]: duplicate of post_logout_redirect_uris[0]"}},
		{"without the code grant", logout(app("pw"), "https://rp.test/bye"),
			[]string{"clients[0].post_logout_redirect_uris: only with the authorization_code grant"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, Validate([]Spec{tt.spec}), tt.want)
		})
	}
}

// TestMatchPostLogoutRedirect: exact strings only, and the client holds its
// own copy of the list.
func TestMatchPostLogoutRedirect(t *testing.T) {
	s := webA()
	s.PostLogoutRedirectURIs = []string{"https://rp.test/bye"}
	r, err := New([]Spec{s}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Get("web-a")
	if !c.MatchPostLogoutRedirect("https://rp.test/bye") {
		t.Error("registered URI refused")
	}
	for _, uri := range []string{"https://rp.test/bye/", "https://rp.test/bye?x=1", "https://RP.test/bye",
		"https://rp.test:443/bye", "https://rp.test/%62ye", "", "https://rp.test/cb"} {
		if c.MatchPostLogoutRedirect(uri) {
			t.Errorf("%q matched", uri)
		}
	}
	s.PostLogoutRedirectURIs[0] = "https://evil.example/"
	if c.MatchPostLogoutRedirect("https://evil.example/") {
		t.Error("the client shares its list with the spec")
	}
}

// TestKnowsScope: the scopes of all clients together.
func TestKnowsScope(t *testing.T) {
	n := nativeA()
	n.Scopes = []string{"openid", "read"}
	r, err := New([]Spec{webA(), n}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"openid": true, "read": true, "write": true, "profile": false, "": false} {
		if r.KnowsScope(s) != want {
			t.Errorf("KnowsScope(%q) = %v", s, !want)
		}
	}
}

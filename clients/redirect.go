package clients

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds what the authorization endpoint and its pages use of a
// client: its redirect URIs, how a request's redirect_uri is matched
// against them, and its name.

// MatchRedirect reports whether uri, a redirect_uri parameter, is one of
// the client's redirect URIs: the same string byte for byte (RFC 6749
// §3.1.2.3, RFC 9700 §2.1: no normalisation, no prefix or pattern), except
// that for a public client a registered loopback URI without a port
// (http://127.0.0.1/..., http://[::1]/..., http://localhost/...) matches
// the same URI with any port (RFC 8252 §7.3, §8.4).
func (c *Client) MatchRedirect(uri string) bool {
	for _, r := range c.RedirectURIs {
		if uri == r || c.Public && loopbackAnyPort(r, uri) {
			return true
		}
	}
	return false
}

// loopbackHosts are the hosts of loopback redirect URIs (RFC 8252 §7.3;
// localhost, which §8.3 does not recommend, is accepted too).
var loopbackHosts = []string{"127.0.0.1", "[::1]", "localhost"}

// loopbackAnyPort reports whether uri is the loopback redirect URI
// registered with a port inserted after its host: "http://" host ":"
// port rest, where registered is "http://" host rest, rest is empty or
// starts with '/' or '?', and port is a decimal in 1..65535 without a
// leading zero.
func loopbackAnyPort(registered, uri string) bool {
	for _, h := range loopbackHosts {
		prefix := "http://" + h
		rest, ok := strings.CutPrefix(registered, prefix)
		if !ok || rest != "" && rest[0] != '/' && rest[0] != '?' {
			continue
		}
		tail, ok := strings.CutPrefix(uri, prefix+":")
		if !ok {
			return false
		}
		n := 0
		for n < len(tail) && n < 5 && tail[n] >= '0' && tail[n] <= '9' {
			n++
		}
		port, err := strconv.Atoi(tail[:n])
		return n > 0 && tail[0] != '0' && err == nil && port <= 65535 && tail[n:] == rest
	}
	return false
}

// MaxNameLen bounds a client's name, in characters: the consent page
// shows it.
const MaxNameLen = 100

// validateBrowser checks what the authorization endpoint and its pages use
// of a client: its name, its redirect URIs and its post-logout redirect
// URIs.
func validateBrowser(add func(string, ...any), at string, s Spec) {
	if msg := checkName(s.Name); msg != "" {
		add("%s.name: %s", at, msg)
	}
	code := slices.Contains(s.GrantTypes, GrantAuthorizationCode)
	switch {
	case code && len(s.RedirectURIs) == 0:
		add("%s.redirect_uris: required with the authorization_code grant (RFC 6749 §3.1.2.2)", at)
	case !code && len(s.RedirectURIs) > 0:
		add("%s.redirect_uris: only with the authorization_code grant", at)
	}
	checkList(add, at, "redirect_uris", s.RedirectURIs, func(v string) string { return checkRedirectURI(v, s.Public) })
	if !code && len(s.PostLogoutRedirectURIs) > 0 {
		add("%s.post_logout_redirect_uris: only with the authorization_code grant", at)
	}
	// The same rules as redirect URIs (RP-Initiated Logout 1.0 §3.1: they
	// SHOULD be https; RFC 9700 §2.6 allows http for loopback only).
	checkList(add, at, "post_logout_redirect_uris", s.PostLogoutRedirectURIs, func(v string) string { return checkRedirectURI(v, s.Public) })
}

// MatchPostLogoutRedirect reports whether uri, a post_logout_redirect_uri
// parameter, is one of the client's post-logout redirect URIs, as the same
// string byte for byte (RP-Initiated Logout 1.0 §3: exact match; no port
// freedom for loopback URIs either).
func (c *Client) MatchPostLogoutRedirect(uri string) bool {
	return slices.Contains(c.PostLogoutRedirectURIs, uri)
}

// checkName says what is wrong with a client's name, or "" when nothing
// is ("" itself means the id). People read it on the consent page, so it
// holds printable characters only: no control or formatting characters,
// which could reorder or hide what the page says of the client.
func checkName(name string) string {
	if !utf8.ValidString(name) {
		return "not valid UTF-8"
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("%q has a character that is not printable (%U): the consent page shows the name", name, r)
		}
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLen {
		return fmt.Sprintf("%d characters, more than %d: the consent page shows the name", n, MaxNameLen)
	}
	if name != "" && strings.TrimSpace(name) == "" {
		return "blank: leave it out to show the id"
	}
	return ""
}

// checkRedirectURI says what is wrong with a redirect URI that a client
// registers, or "" when nothing is. Redirect URIs are compared as exact
// strings (RFC 9700 §2.1), so a registration is the complete URI, written
// as clients send it:
//   - absolute, without a fragment (RFC 6749 §3.1.2), a '*' (no patterns,
//     RFC 9700 §2.1), user information, whitespace, control or non-ASCII
//     characters (RFC 3986 §2.1: percent-encode them), scheme in lower case;
//   - https with a host; or
//   - for a public native app only (RFC 8252 §8.4): http on a loopback
//     host, 127.0.0.1, [::1] or localhost (RFC 8252 §7.3; RFC 9700 §2.6
//     allows http for nothing else), or a private-use scheme that is a
//     reverse domain name, with a '.' (RFC 8252 §7.1, §8.4).
func checkRedirectURI(v string, public bool) string {
	if v == "" {
		return "empty"
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; b <= 0x20 || b >= 0x7f {
			return fmt.Sprintf("%q has whitespace, a control or a non-ASCII character (percent-encode it, RFC 3986 §2.1)", v)
		}
	}
	if strings.Contains(v, "#") {
		return fmt.Sprintf("%q has a fragment (RFC 6749 §3.1.2)", v)
	}
	if strings.Contains(v, "*") {
		return fmt.Sprintf("%q has a '*': redirect URIs are compared as exact strings, never as patterns (RFC 9700 §2.1)", v)
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URI (RFC 3986)", v)
	case u.Scheme == "":
		return fmt.Sprintf("%q is not an absolute URI (RFC 6749 §3.1.2)", v)
	case !strings.HasPrefix(v, u.Scheme+":"):
		return fmt.Sprintf("%q: write the scheme in lower case, as clients send it (RFC 3986 §3.1)", v)
	case u.User != nil:
		return fmt.Sprintf("%q has user information", v)
	case strings.HasSuffix(u.Host, ":"):
		return fmt.Sprintf("%q has an empty port", v)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q has a port outside 1-65535", v)
		}
	}
	native := "is for a native app, which is a public client: set public: true (RFC 8252 §8.4)"
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" {
			return fmt.Sprintf("%q has no host", v)
		}
	case "http":
		if !slices.Contains(loopbackHosts, strings.TrimSuffix(u.Host, ":"+u.Port())) {
			return fmt.Sprintf("%q is plain http: use https; http only for a public native app's loopback redirect on 127.0.0.1, [::1] or localhost (RFC 9700 §2.6, RFC 8252 §7.3)", v)
		}
		if !public {
			return fmt.Sprintf("%q: a loopback redirect %s", v, native)
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Sprintf("%q: a private-use scheme must be a reverse domain name with a '.', such as com.example.app (RFC 8252 §7.1, §8.4)", v)
		}
		if !public {
			return fmt.Sprintf("%q: a private-use scheme %s", v, native)
		}
	}
	return ""
}

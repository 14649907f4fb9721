package server

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyturn/keyturn/clients"
)

// maxFormBytes caps request bodies of the POST endpoints.
const maxFormBytes = 64 << 10

// repeatable lists parameters that may appear more than once: RFC 8707 §2
// lets a client name several resources. Every other parameter must not be
// repeated (RFC 6749 §3.1, §3.2).
var repeatable = map[string]bool{"resource": true}

// freeText names the parameters whose values are secrets chosen by people
// (RFC 6749 §4.3.2 password, §2.3.1 client_secret): any character but NUL.
var freeText = map[string]bool{"password": true, "client_secret": true}

// checkValue refuses a parameter value no legitimate client sends: a NUL
// anywhere (PostgreSQL cannot even compare one with text), and in every
// parameter but a password or client secret a C0 control character or
// DEL. RFC 6749 Appendix A defines client_id, scope, code, state and the
// tokens over printable characters (VSCHAR, NQCHAR) and username without
// CR or LF; we refuse every control character in identifiers, which
// also keeps them out of the database and the logs. Such a request is
// malformed: invalid_request (RFC 6749 §5.2), answered before any lookup.
func checkValue(name, v string) error {
	bad := func(c rune) bool { return c < 0x20 || c == 0x7f }
	if freeText[name] {
		bad = func(c rune) bool { return c == 0 }
	}
	if strings.ContainsFunc(v, bad) {
		return errInvalidRequest("parameter " + sanitizeDescription(name) + " holds a control character")
	}
	return nil
}

// parseForm reads the body of a POST endpoint, once: POST only, an
// application/x-www-form-urlencoded body (RFC 6749 §3.2, RFC 7009 §2.1,
// RFC 7662 §2.1) of bounded size, no parameter in the URL (credentials and
// tokens there leak into logs; RFC 6749 §2.3.1, RFC 9700 §4.3.2), no
// repeated parameter, and no control character where none belongs
// (checkValue). On success r.Form holds the body parameters only.
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, errMethodNotAllowed(http.MethodPost)
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	// RFC 6749 Appendix B: the form is UTF-8; a body declared otherwise
	// would be misread, so it is refused rather than guessed at.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, errInvalidRequest("the body must be UTF-8")
	}
	if r.URL.RawQuery != "" {
		return nil, errInvalidRequest("parameters must be sent in the request body, not the URL")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			e := oauthError(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
			return nil, e
		}
		return nil, errInvalidRequest("malformed form body")
	}
	for name, vs := range r.PostForm {
		if !utf8.ValidString(name) {
			return nil, errInvalidRequest("parameter names must be UTF-8")
		}
		if len(vs) > 1 && !repeatable[name] {
			return nil, errInvalidRequest("parameter " + sanitizeDescription(name) + " is repeated")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, errInvalidRequest("parameter " + sanitizeDescription(name) + " is not UTF-8")
			}
			if err := checkValue(name, v); err != nil {
				return nil, err
			}
		}
	}
	// go-oauth2 reads parameters with r.FormValue, which merges the URL
	// query; the query is empty (checked above), and we make that explicit.
	r.Form = r.PostForm
	return r.PostForm, nil
}

// authenticateClient identifies and authenticates the client of a POST
// request (RFC 6749 §2.3.1): client_secret_basic, client_secret_post, or
// none for public clients. Exactly one method per request (RFC 6749 §2.3).
// Every authentication failure is invalid_client, 401; secret checks are
// throttled by guard (nil: not throttled).
func authenticateClient(r *http.Request, form url.Values, reg *clients.Registry, guard *clientGuard) (*clients.Client, error) {
	bodyID, bodySecret := form.Get("client_id"), form.Get("client_secret")
	_, hasBodySecret := form["client_secret"]
	if auth := r.Header.Get("Authorization"); auth != "" {
		id, secret, err := decodeBasic(auth)
		if err != nil {
			return nil, err
		}
		// The Basic credentials are the client_id and client_secret
		// parameters, form-urlencoded (RFC 6749 §2.3.1): the same rules.
		if err := checkValue("client_id", id); err != nil {
			return nil, err
		}
		if err := checkValue("client_secret", secret); err != nil {
			return nil, err
		}
		if hasBodySecret {
			return nil, errInvalidRequest("use one client authentication method: Basic or client_secret, not both")
		}
		// RFC 6749 §3.2.1: a client_id in the body may accompany Basic
		// credentials, but it must name the same client.
		if _, ok := form["client_id"]; ok && bodyID != id {
			return nil, errInvalidRequest("client_id does not match the authenticated client")
		}
		return guard.authenticate(r, reg, id, secret)
	}
	if bodyID == "" {
		return nil, errInvalidClient("client authentication required")
	}
	if hasBodySecret { // client_secret_post
		return guard.authenticate(r, reg, bodyID, bodySecret)
	}
	// No secret: only a public client may identify itself by client_id alone.
	c, ok := reg.Get(bodyID)
	if !ok || !c.Public {
		return nil, errInvalidClient("client authentication failed")
	}
	return c, nil
}

// authenticate checks a client secret. Too many slow (argon2id) checks at
// once is the server's problem, not the client's: 503, retry shortly.
func authenticate(reg *clients.Registry, id, secret string) (*clients.Client, error) {
	c, err := reg.Authenticate(id, secret)
	switch {
	case errors.Is(err, clients.ErrBusy):
		return nil, errTemporarilyUnavailable("too many client authentications at once; retry shortly", time.Second)
	case errors.Is(err, clients.ErrInvalidClient):
		return nil, errInvalidClient("client authentication failed")
	case err != nil:
		return nil, err // a broken secret hash in the config: server_error
	}
	return c, nil
}

// decodeBasic decodes HTTP Basic client credentials. RFC 6749 §2.3.1: the
// client_id and secret are form-urlencoded (Appendix B) before they are
// joined with ':' and base64-encoded, so both are unescaped here.
func decodeBasic(header string) (id, secret string, err error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errInvalidClient("unsupported authentication scheme")
	}
	r := &http.Request{Header: http.Header{"Authorization": {"Basic " + strings.TrimLeft(rest, " ")}}}
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok {
		return "", "", errInvalidClient("malformed Basic credentials")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", errInvalidClient("malformed Basic credentials")
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", errInvalidClient("malformed Basic credentials")
	}
	if id == "" || !utf8.ValidString(id) || !utf8.ValidString(secret) {
		return "", "", errInvalidClient("malformed Basic credentials")
	}
	return id, secret, nil
}

// scopeList splits an RFC 6749 §3.3 scope parameter into its distinct tokens.
func scopeList(s string) []string {
	fields := strings.Split(s, " ")
	out := fields[:0]
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/keys"
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
	if hasControl(v, freeText[name]) {
		return errInvalidRequest("parameter " + sanitizeDescription(name) + " holds a control character")
	}
	return nil
}

// hasControl reports whether v holds NUL (onlyNUL) or any control
// character. It looks at bytes, not runes: in UTF-8 every byte of a
// multi-byte sequence is 0x80 or above, so a byte below 0x20 or 0x7f is
// always that character itself (every request pays for this scan).
func hasControl(v string, onlyNUL bool) bool {
	if onlyNUL {
		return strings.IndexByte(v, 0) >= 0
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// parseForm reads the body of a POST endpoint, once: POST only, an
// application/x-www-form-urlencoded body (RFC 6749 §3.2, RFC 7009 §2.1,
// RFC 7662 §2.1) of bounded size, no parameter in the URL (credentials and
// tokens there leak into logs; RFC 6749 §2.3.1, RFC 9700 §4.3.2), no
// repeated parameter, and no control character where none belongs
// (checkValue). It returns the body parameters.
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
			e := oauthError(http.StatusRequestEntityTooLarge, codeInvalidRequest, "request body too large")
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
	return r.PostForm, nil
}

// tokenOpEndpoint is what the revocation (RFC 7009) and introspection
// (RFC 7662) endpoints share: both take an authenticated client and a token.
type tokenOpEndpoint struct {
	clients *clientSet
	guard   *clientGuard
	keys    *keys.Keys
	now     func() time.Time
	log     *slog.Logger
}

// tokenOp is a revocation or introspection request (RFC 7009 §2.1, RFC
// 7662 §2.1): an authenticated client and the token it names.
type tokenOp struct {
	client *clients.Client
	token  string
}

// parse reads the form, authenticates the client as the token
// endpoint does, and requires token. token_type_hint is not needed, so
// any hint, known or not, is ignored (RFC 7009 §2.1): a refresh token is
// recognised by its prefix.
func (e *tokenOpEndpoint) parse(w http.ResponseWriter, r *http.Request) (tokenOp, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return tokenOp{}, err
	}
	client, err := authenticateClient(r, form, e.clients.registry(), e.guard)
	if err != nil {
		return tokenOp{}, err
	}
	infoFrom(r.Context()).clientID = client.ID
	token := form.Get("token")
	if token == "" {
		return tokenOp{}, errInvalidRequest("missing token")
	}
	return tokenOp{client: client, token: token}, nil
}

// Why a client authentication failed: the reason label of
// keyturn_client_auth_failures_total and of the log line (a bounded set).
const (
	authMissing      = "missing"              // neither Basic nor client_id
	authMalformed    = "malformed"            // unreadable or contradictory credentials
	authUnknown      = "unknown_client"       // no such client
	authWrongSecret  = "wrong_secret"         // a confidential client's secret did not match
	authNoSecret     = "no_secret"            // a confidential client sent only client_id
	authPublicSecret = "public_client_secret" // a public client sent a secret
	authBusy         = "busy"                 // too many argon2id checks at once (503)
	authThrottled    = "throttled"            // too many failures (429)
	authError        = "error"                // anything else: the server's fault
)

// authenticateClient identifies and authenticates the client of a POST
// request (RFC 6749 §2.3.1): client_secret_basic, client_secret_post, or
// none for public clients. Exactly one method per request (RFC 6749 §2.3).
// Every authentication failure is invalid_client, 401; secret checks are
// throttled by guard (nil: not throttled). A failure is noted
// in the request's info, for its log line and metric (see instrument),
// with the client id only when it names a registered client.
func authenticateClient(r *http.Request, form url.Values, reg *clients.Registry, guard *clientGuard) (*clients.Client, error) {
	c, id, reason, err := identifyClient(r, form, reg, guard)
	if err != nil {
		info := infoFrom(r.Context())
		if reason == "" {
			reason = failureReason(reg, id, err)
		}
		info.authFailure = reason
		if _, known := reg.Get(id); known {
			info.authClient = id
		}
	}
	return c, err
}

// identifyClient is authenticateClient without the bookkeeping: it returns
// the client, or the id the request named and, when it already knows it,
// why the authentication failed.
func identifyClient(r *http.Request, form url.Values, reg *clients.Registry, guard *clientGuard) (c *clients.Client, id, reason string, err error) {
	bodyID, bodySecret := form.Get("client_id"), form.Get("client_secret")
	_, hasBodySecret := form["client_secret"]
	// RFC 9110 §11.6.2 defines one Authorization field, and RFC 6749 §2.3
	// allows one authentication method per request: two fields are two
	// sets of credentials, which a proxy or a log may read otherwise than
	// the first that Header.Get returns.
	if len(r.Header.Values("Authorization")) > 1 {
		return nil, "", authMalformed, errInvalidRequest("use one Authorization header")
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		id, secret, raw, err := decodeBasic(auth)
		if err != nil {
			return nil, "", authMalformed, err
		}
		// The Basic credentials are the client_id and client_secret
		// parameters, form-urlencoded (RFC 6749 §2.3.1): the same rules.
		for _, v := range [][2]string{{"client_id", id}, {"client_secret", secret}, {"client_secret", raw}} {
			if err := checkValue(v[0], v[1]); err != nil {
				return nil, "", authMalformed, err
			}
		}
		if hasBodySecret {
			return nil, id, authMalformed, errInvalidRequest("use one client authentication method: Basic or client_secret, not both")
		}
		// RFC 6749 §3.2.1: a client_id in the body may accompany Basic
		// credentials, but it must name the same client.
		if _, ok := form["client_id"]; ok && bodyID != id {
			return nil, id, authMalformed, errInvalidRequest("client_id does not match the authenticated client")
		}
		// RFC 6749 §2.3.1 and §3.2.1: a public client only identifies
		// itself. Basic with an empty password does exactly that, like
		// client_id in the body; golang.org/x/oauth2 sends it first for a
		// client without a secret. A public client has no secret to send.
		if pc, ok := reg.Get(id); ok && pc.Public {
			if secret != "" {
				return nil, id, authPublicSecret, errInvalidClient("client authentication failed")
			}
			return pc, id, "", nil
		}
		c, err := guard.authenticate(r, reg, id, secret, raw)
		return c, id, "", err
	}
	if bodyID == "" {
		return nil, "", authMissing, errInvalidClient("client authentication required")
	}
	if hasBodySecret { // client_secret_post
		c, err := guard.authenticate(r, reg, bodyID, bodySecret)
		return c, bodyID, "", err
	}
	// No secret: only a public client may identify itself by client_id alone.
	c, ok := reg.Get(bodyID)
	if !ok {
		return nil, bodyID, authUnknown, errInvalidClient("client authentication failed")
	}
	if !c.Public {
		return nil, bodyID, authNoSecret, errInvalidClient("client authentication failed")
	}
	return c, bodyID, "", nil
}

// failureReason names why authenticate refused the client id.
func failureReason(reg *clients.Registry, id string, err error) string {
	oe, ok := asError(err)
	if !ok {
		return authError
	}
	switch oe.status {
	case http.StatusServiceUnavailable:
		return authBusy
	case http.StatusTooManyRequests:
		return authThrottled
	case http.StatusUnauthorized:
		switch c, ok := reg.Get(id); {
		case !ok:
			return authUnknown
		case c.Public:
			return authPublicSecret
		default:
			return authWrongSecret
		}
	}
	return authError
}

// authenticate checks a client secret; alternates are other readings of
// it (see clients.Registry.Authenticate). The wait for a slow (argon2id)
// check is bounded by ctx, the request's; too many checks at once is the
// server's problem, not the client's: 503, retry shortly.
func authenticate(ctx context.Context, reg *clients.Registry, id, secret string, alternates ...string) (*clients.Client, error) {
	c, err := reg.Authenticate(ctx, id, secret, alternates...)
	if err != nil {
		return nil, clientAuthError(err)
	}
	return c, nil
}

// clientAuthError is the answer to a failed client authentication.
func clientAuthError(err error) error {
	switch {
	case errors.Is(err, clients.ErrBusy):
		return errTemporarilyUnavailable("too many client authentications at once; retry shortly", time.Second)
	case errors.Is(err, clients.ErrInvalidClient):
		return errInvalidClient("client authentication failed")
	}
	return err // a throttle refusal (429), the database's, a broken secret hash in the config: server_error
}

// decodeBasic decodes HTTP Basic client credentials. RFC 6749 §2.3.1: the
// client_id and secret are form-urlencoded (Appendix B) before they are
// joined with ':' and base64-encoded, so both are unescaped here. Many
// clients (curl -u, several Python libraries) send the secret without that
// encoding, so raw is the secret as sent, for the caller to try when the
// decoded one fails; a secret that does not unescape at all (a '%' not
// followed by two hex digits) is taken as sent.
func decodeBasic(header string) (id, secret, raw string, err error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", "", errInvalidClient("unsupported authentication scheme")
	}
	r := &http.Request{Header: http.Header{"Authorization": {"Basic " + strings.TrimLeft(rest, " ")}}}
	rawID, raw, ok := r.BasicAuth()
	if !ok {
		return "", "", "", errInvalidClient("malformed Basic credentials")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", "", errInvalidClient("malformed Basic credentials")
	}
	if secret, err = url.QueryUnescape(raw); err != nil || !utf8.ValidString(secret) {
		secret = raw
	}
	if id == "" || !utf8.ValidString(id) || !utf8.ValidString(secret) {
		return "", "", "", errInvalidClient("malformed Basic credentials")
	}
	if !utf8.ValidString(raw) {
		raw = secret
	}
	return id, secret, raw, nil
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

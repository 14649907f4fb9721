package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/storage"
)

// Error is an OAuth 2.0 error response (RFC 6749 §5.2). Handlers return it;
// writeError is the one place that turns it into HTTP.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
	header      http.Header // extra response headers (Allow, Retry-After)
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Status is the HTTP status the error is answered with.
func (e *Error) Status() int { return e.status }

func oauthError(status int, code, description string) *Error {
	return &Error{Code: code, Description: description, status: status}
}

// RFC 6749 §5.2 errors: 400, except invalid_client (401, see writeError).
// The codes are the library's (oauth2lib.go); the statuses are ours.
func errInvalidRequest(desc string) *Error { return oauthError(400, codeInvalidRequest, desc) }
func errInvalidClient(desc string) *Error  { return oauthError(401, codeInvalidClient, desc) }
func errInvalidGrant(desc string) *Error   { return oauthError(400, codeInvalidGrant, desc) }
func errInvalidScope(desc string) *Error   { return oauthError(400, codeInvalidScope, desc) }
func errUnauthorizedClient(desc string) *Error {
	return oauthError(400, codeUnauthorizedClient, desc)
}
func errUnsupportedGrantType(desc string) *Error {
	return oauthError(400, codeUnsupportedGrantType, desc)
}

// errInvalidTarget is RFC 8707 §2's error for a resource the client may not use.
func errInvalidTarget(desc string) *Error { return oauthError(400, "invalid_target", desc) }

// errMethodNotAllowed answers a non-POST request to a POST-only endpoint
// (DESIGN.md decision D8): 405, Allow: POST, JSON invalid_request.
func errMethodNotAllowed(allow string) *Error {
	e := oauthError(http.StatusMethodNotAllowed, codeInvalidRequest, "method not allowed")
	e.header = http.Header{"Allow": {allow}}
	return e
}

// errTemporarilyUnavailable is 503 with Retry-After: overload or a database
// outage. RFC 6749 registers temporarily_unavailable for the authorization
// endpoint only; we use it here too (DESIGN.md decision D9).
func errTemporarilyUnavailable(desc string, retryAfter time.Duration) *Error {
	return withRetryAfter(oauthError(http.StatusServiceUnavailable, codeTemporarilyUnavailable, desc), retryAfter)
}

// asError is err as the OAuth error it is answered with: an *Error, or a
// login or client-authentication throttle's refusal as 429
// (errTooManyAttempts). false: an internal error.
func asError(err error) (*Error, bool) {
	var oe *Error
	if errors.As(err, &oe) {
		return oe, true
	}
	var refused *throttle.Refused
	if errors.As(err, &refused) {
		return errTooManyAttempts(refused.RetryAfter), true
	}
	return nil, false
}

// errTooManyAttempts is 429 with Retry-After (RFC 6585 §4): login throttled.
func errTooManyAttempts(retryAfter time.Duration) *Error {
	return withRetryAfter(oauthError(http.StatusTooManyRequests, codeTemporarilyUnavailable,
		"too many failed attempts; retry later"), retryAfter)
}

// errHashingBusy is the login shed at the door: every hash slot and queue
// place of the hashing budget (Options.Hashes) is taken, or the login's
// request ended while it waited for a slot.
var errHashingBusy = errTemporarilyUnavailable("too many logins at once; retry shortly", time.Second)

// withRetryAfter sets Retry-After to d, rounded up to whole seconds (RFC 9110 §10.2.3).
func withRetryAfter(e *Error, d time.Duration) *Error {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	e.header = http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}
	return e
}

// Protected-resource errors (RFC 6750 §3), for UserInfo (OpenID Connect
// Core §5.3.3): the Bearer challenge in WWW-Authenticate carries the code.

// bearerRealm names the protection space of Keyturn's protected resources.
const bearerRealm = "keyturn"

// errBearer is a protected resource's error with its Bearer challenge;
// code "" is a request with no token at all, answered with the challenge
// alone and no error code (RFC 6750 §3.1) and no body.
func errBearer(status int, code, desc, scope string) *Error {
	challenge := `Bearer realm="` + bearerRealm + `"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	if scope != "" {
		challenge += `, scope="` + scope + `"`
	}
	e := oauthError(status, code, desc)
	e.header = http.Header{}
	e.header.Set("WWW-Authenticate", challenge)
	return e
}

// errNoBearerToken: the request carried no access token (RFC 6750 §3).
func errNoBearerToken() *Error { return errBearer(http.StatusUnauthorized, "", "", "") }

// errInvalidToken: the access token is expired, revoked, malformed or not
// an access token (RFC 6750 §3.1).
func errInvalidToken(desc string) *Error {
	return errBearer(http.StatusUnauthorized, "invalid_token", desc, "")
}

// errInsufficientScope: the token is valid but its scope lacks scope
// (RFC 6750 §3.1).
func errInsufficientScope(scope, desc string) *Error {
	return errBearer(http.StatusForbidden, "insufficient_scope", desc, scope)
}

// asBearerError is e with the Bearer challenge added (RFC 6750 §3: a
// protected resource MAY challenge on any error), for the request errors
// the form parser returns.
func asBearerError(e *Error) *Error {
	b := errBearer(e.status, e.Code, e.Description, "")
	for k, v := range e.header {
		if _, ok := b.header[k]; !ok {
			b.header[k] = v
		}
	}
	return b
}

func errNotFound() *Error { return oauthError(http.StatusNotFound, "not_found", "no such endpoint") }

// writeError writes err as an RFC 6749 §5.2 JSON error. Anything that is not
// an *Error becomes a bare server_error: the cause goes to the log, never to
// the wire.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	oe, isOAuth := asError(err)
	switch {
	case isOAuth:
	case errors.Is(err, storage.ErrUnavailable):
		// The database is down or slow: a retryable 503, not a 500, and
		// quickly (every request has a deadline; see Options.RequestTimeout).
		log.WarnContext(r.Context(), "database unavailable", "path", r.URL.Path, "err", err)
		oe = errTemporarilyUnavailable("the service is temporarily unavailable; retry later", time.Second)
	default:
		log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		oe = &Error{Code: codeServerError, status: http.StatusInternalServerError}
	}
	infoFrom(r.Context()).errorCode = oe.Code
	h := w.Header()
	for k, v := range oe.header {
		h[k] = v
	}
	if oe.status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		// RFC 6749 §5.2: 401 carries a WWW-Authenticate challenge for the
		// scheme the client used; Basic is the only scheme we accept for
		// clients (a protected resource's error brings its Bearer one).
		h.Set("WWW-Authenticate", `Basic realm="keyturn", charset="UTF-8"`)
	}
	if oe.Code == "" { // RFC 6750 §3.1: no token, no error code, the challenge says it all
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(oe.status)
		return
	}
	body := Error{Code: oe.Code, Description: sanitizeDescription(oe.Description)}
	writeJSON(w, oe.status, body)
}

// sanitizeDescription keeps error_description within the characters RFC 6749
// §5.2 allows (%x20-21 / %x23-5B / %x5D-7E): no quote, backslash, control or
// non-ASCII character reaches the wire.
func sanitizeDescription(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// writeJSON writes v as JSON with the no-store headers RFC 6749 §5.1
// requires on token responses; we set them on every OAuth response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writePageError answers err on an HTML page (the authorization endpoint's
// side of writeError): an *Error with its status and description (a
// request that cannot be answered by redirect, 400; a CSRF failure, 403),
// a login throttle's refusal as 429 and the hashing budget's shed as 503,
// both with Retry-After, a database outage as 503, anything else as a bare
// 500 with the cause in the log only.
func writePageError(w http.ResponseWriter, r *http.Request, log *slog.Logger, p *pages, err error) {
	title, hint := "Something went wrong", ""
	oe, isOAuth := asError(err)
	switch {
	case isOAuth && oe.status == http.StatusTooManyRequests:
		title, oe = "Too many attempts", withRetryAfter(oauthError(oe.status, oe.Code,
			"Too many failed sign-in attempts. Wait a little and try again."), retryAfterOf(oe))
	case isOAuth && oe.status == http.StatusServiceUnavailable:
		title, oe = "Busy", withRetryAfter(oauthError(oe.status, oe.Code,
			"The service is busy. Try again in a moment."), retryAfterOf(oe))
	case isOAuth && oe.status == http.StatusForbidden:
		title = "Request refused"
	case isOAuth:
		title, hint = "This request cannot be completed", "Tell the application's developers: its authorization request is invalid."
	case errors.Is(err, storage.ErrUnavailable):
		log.WarnContext(r.Context(), "database unavailable", "path", r.URL.Path, "err", err)
		title, oe = "Busy", errTemporarilyUnavailable("The service is temporarily unavailable. Try again in a moment.", time.Second)
	default:
		log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		oe = oauthError(http.StatusInternalServerError, codeServerError, "The server could not complete the request.")
	}
	infoFrom(r.Context()).errorCode = oe.Code
	for k, v := range oe.header {
		w.Header()[k] = v
	}
	p.errorPage(w, r, oe.status, title, oe.Description, hint)
}

// retryAfterOf is the Retry-After an error carries (one second if none).
func retryAfterOf(e *Error) time.Duration {
	n, err := strconv.Atoi(e.header.Get("Retry-After"))
	if err != nil || n < 1 {
		return time.Second
	}
	return time.Duration(n) * time.Second
}

// authorizationError is err as the error an authorization response
// carries to the client by redirect (RFC 6749 §4.1.2.1): an *Error as it
// is; a database outage or a throttle's refusal as temporarily_unavailable;
// anything else as server_error, the cause logged: a 5xx cannot be sent by
// redirect, so these codes stand in for it.
func authorizationError(r *http.Request, log *slog.Logger, err error) *Error {
	oe, isOAuth := asError(err)
	switch {
	case isOAuth && (oe.status == http.StatusTooManyRequests || oe.status == http.StatusServiceUnavailable):
		oe = oauthError(400, codeTemporarilyUnavailable, "retry later")
	case isOAuth:
	case errors.Is(err, storage.ErrUnavailable):
		log.WarnContext(r.Context(), "database unavailable", "path", r.URL.Path, "err", err)
		oe = oauthError(400, codeTemporarilyUnavailable, "the service is temporarily unavailable; retry later")
	default:
		log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		oe = oauthError(400, codeServerError, "the server could not complete the request")
	}
	infoFrom(r.Context()).errorCode = oe.Code
	return oe
}

package server

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// Cookie names. Over an https issuer they carry the __Host- prefix (the
// browser then insists on Secure, Path=/ and no Domain: the cookie belongs
// to this origin alone); see browserAuth.
const (
	sessionCookie = "keyturn-session"
	csrfCookie    = "keyturn-csrf"
	hostPrefix    = "__Host-"
)

// Form purposes: a CSRF token is good for one kind of form only.
const (
	formLogin   = "login"
	formConsent = "consent"
	formSelect  = "select"
	formLogout  = "logout"
)

// browserAuth is the browser side of the authorization endpoint: the login
// session cookie (its value is a bearer secret; the database holds only
// its SHA-256, which is the session's ID), the pre-login CSRF cookie, and
// the CSRF tokens of the forms (RFC 6749 §10.12).
type browserAuth struct {
	sessions storage.BrowserSessions
	keys     *keys.Keys
	ttl      time.Duration
	now      func() time.Time
	// secure: the issuer is https, so the cookies are __Host- and Secure.
	// Over plain http (local development, the demo) browsers refuse both,
	// so the cookies go without them there.
	secure bool
}

func (b *browserAuth) cookieName(name string) string {
	if b.secure {
		return hostPrefix + name
	}
	return name
}

// setCookie sets a cookie as RFC 6265bis asks of a session cookie: HttpOnly,
// SameSite=Lax (sent on the top-level navigation back from a client, not on
// cross-site subrequests or POSTs), Path=/, no Domain; Secure over https.
// maxAge 0: a browser-session cookie; < 0: delete it.
func (b *browserAuth) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: b.cookieName(name), Value: value, Path: "/",
		Secure: b.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// cookieSecret is the value of cookie name if it is shaped like a
// tokens.NewSecret value; "" otherwise (absent, or made up).
func (b *browserAuth) cookieSecret(r *http.Request, name string) string {
	c, err := r.Cookie(b.cookieName(name))
	if err != nil || !isSecret(c.Value) {
		return ""
	}
	return c.Value
}

// isSecret reports whether s looks like a tokens.NewSecret value: 43
// base64url characters.
func isSecret(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// sessionID is the ID of the browser session whose cookie holds secret.
func sessionID(secret string) string {
	return base64.RawURLEncoding.EncodeToString(tokens.HashSecret(secret))
}

// session returns the browser's live login session, or nil: no cookie, an
// unknown, revoked or expired one. Disabling, deleting or re-passwording
// the user revokes their browser sessions (storage.BrowserSessions), so a
// live session's user is enabled.
func (b *browserAuth) session(ctx context.Context, r *http.Request) (*storage.BrowserSession, error) {
	secret := b.cookieSecret(r, sessionCookie)
	if secret == "" {
		return nil, nil
	}
	s, err := b.sessions.GetBrowserSession(ctx, sessionID(secret))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("browser session: %w", err)
	case !s.Live(b.now()):
		return nil, nil
	}
	return &s, nil
}

// start signs the browser in as userID, whose password was checked against
// passwordHash: a new session under a fresh cookie value (never one the
// browser brought: no session fixation), and the session the browser had
// before, if any, revoked. storage.ErrNotFound: the user was disabled,
// deleted or re-passworded since the check.
func (b *browserAuth) start(ctx context.Context, w http.ResponseWriter, r *http.Request, userID, passwordHash string) (*storage.BrowserSession, error) {
	now := b.now().UTC()
	secret := tokens.NewSecret()
	s := storage.BrowserSession{
		ID: sessionID(secret), UserID: userID, AuthTime: now, CreatedAt: now,
		ExpiresAt: now.Add(b.ttl), PasswordHash: passwordHash,
	}
	if err := b.sessions.CreateBrowserSession(ctx, s); err != nil {
		return nil, fmt.Errorf("browser session: %w", err)
	}
	s.PasswordHash = ""
	if old := b.cookieSecret(r, sessionCookie); old != "" {
		_, err := b.sessions.EndBrowserSession(ctx, sessionID(old), "", now)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("browser session: revoke previous: %w", err)
		}
	}
	b.setCookie(w, sessionCookie, secret, b.ttl)
	return &s, nil
}

// end signs the browser out of session s: the session revoked (a no-op if
// it already is) together with, when clientID is set, the sessions
// (families) s started for clientID, in one transaction
// (storage.BrowserSessions.EndBrowserSession); then the cookie deleted.
// It returns how many families were revoked. On an error nothing changed
// and the cookie stays, so the user can retry.
func (b *browserAuth) end(ctx context.Context, w http.ResponseWriter, s *storage.BrowserSession, clientID string) (int64, error) {
	n, err := b.sessions.EndBrowserSession(ctx, s.ID, clientID, b.now().UTC())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("browser session: end: %w", err)
	}
	b.setCookie(w, sessionCookie, "", -1)
	return n, nil
}

// loginBinding is what the login form's CSRF token is bound to: the
// browser's pre-login cookie, set here if it has none (the form is shown
// before any session exists, so login CSRF needs a binding of its own).
func (b *browserAuth) loginBinding(w http.ResponseWriter, r *http.Request) string {
	v := b.cookieSecret(r, csrfCookie)
	if v == "" {
		v = tokens.NewSecret()
		b.setCookie(w, csrfCookie, v, 0)
	}
	return "pre:" + v
}

// consentBinding binds the consent form to the browser's login session.
func consentBinding(s *storage.BrowserSession) string { return "session:" + s.ID }

// formToken is the CSRF token of a form of purpose given to the browser
// that binding names.
func (b *browserAuth) formToken(purpose, binding string) string {
	return base64.RawURLEncoding.EncodeToString(b.keys.FormToken(purpose, binding))
}

// checkForm reports whether token is the CSRF token of a form of purpose
// given to this browser (binding), compared in constant time. A missing
// binding (no cookie) never matches.
func (b *browserAuth) checkForm(purpose, binding, token string) bool {
	if binding == "" || strings.HasSuffix(binding, ":") {
		return false
	}
	want := b.formToken(purpose, binding)
	return subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

// loginCookieBinding is the login form's binding for a POST: the pre-login
// cookie as sent, "" if there is none (never set here).
func (b *browserAuth) loginCookieBinding(r *http.Request) string {
	v := b.cookieSecret(r, csrfCookie)
	if v == "" {
		return ""
	}
	return "pre:" + v
}

// errForbiddenForm answers a form POST whose CSRF token is missing, malformed
// or not this browser's (RFC 6749 §10.12): 403, and nothing happens.
var errForbiddenForm = oauthError(http.StatusForbidden, "access_denied",
	"This form was not sent from the page Keyturn gave this browser, or it has expired. Go back to the application and start again.")

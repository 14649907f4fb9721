package server

import (
	"errors"
	"net/http"
	"net/netip"

	"github.com/keyturn/keyturn/storage"
)

// loginHandler serves POST /oauth2/authorize/login: the login page's form.
// The password is checked exactly as by the password grant (userAuth: the
// same throttle counters, hashing budget and one answer for every
// failure), then the browser gets a new login session and the flow goes
// on in this same response (consent page, or the code): that is how
// prompt=login and max_age do not ask again, and how a sign-in counts as
// the user's interaction (decision D14). Every redirect goes to the
// client's registered URI, re-checked from the carried request: the form
// names no other target (no open redirector, RFC 9700 §2.1).
type loginHandler struct {
	*authorizeFlow
	users   *userAuth
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
}

// msgBadLogin is the one answer to every failed sign-in: unknown user,
// wrong password, disabled user (no enumeration, like the password grant).
const msgBadLogin = "Invalid username or password."

func (h loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, req, ok := h.formRequest(w, r)
	if !ok {
		return
	}
	// Login CSRF (RFC 6749 §10.12): only this browser's own login form
	// signs it in; without that nothing happens, no cookie is set.
	if !h.browser.checkForm(formLogin, h.browser.loginCookieBinding(r), form.Get("csrf")) {
		h.pageError(w, r, errForbiddenForm)
		return
	}
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" {
		h.showLogin(w, r, req, http.StatusOK, "Enter your username and password.", username)
		return
	}
	ctx := r.Context()
	userID, hash, err := h.users.authenticate(ctx, clientAddr(r, h.trusted), username, password)
	if errors.Is(err, errBadCredentials) {
		h.showLogin(w, r, req, http.StatusOK, msgBadLogin, username)
		return
	}
	if err != nil {
		if _, ok := asError(err); ok { // throttled (429) or hashing busy (503): a page
			h.pageError(w, r, err)
		} else {
			h.redirectError(w, r, req, err)
		}
		return
	}
	s, err := h.browser.start(ctx, w, r, userID, hash)
	if errors.Is(err, storage.ErrNotFound) { // disabled, deleted or re-passworded since the check
		h.showLogin(w, r, req, http.StatusOK, msgBadLogin, username)
		return
	}
	if err != nil {
		h.redirectError(w, r, req, err)
		return
	}
	h.log.InfoContext(ctx, "browser sign-in", "client_id", req.client.ID, "user_id", userID)
	h.proceed(w, r, req, s, true)
}

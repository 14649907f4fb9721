package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
)

// logoutHandler serves the end_session_endpoint (OpenID Connect
// RP-Initiated Logout 1.0), GET and POST on PathLogout (§2), and its
// confirmation form on PathLogoutConfirm. Decision 24: with a valid
// id_token_hint of this browser's session the browser is signed out at
// once (against §2's SHOULD ask, to spare a click); otherwise the user
// confirms on a CSRF-protected form (the MUST of §2; §6: a bare logout
// link would let any site sign people out). Signing out ends the browser
// session and the sessions it started for the hint's client. Only a valid
// hint and a post_logout_redirect_uri registered for its client, exactly,
// lead back to the client (§3); every other end is the signed-out page.
type logoutHandler struct {
	*authorizeFlow
	families storage.Families
}

// logoutRequest is a logout request, its hint verified.
type logoutRequest struct {
	// params are the request's parameters as received; the confirmation
	// form carries them.
	params url.Values
	// hint is the verified id_token_hint; nil if none was sent.
	hint *tokens.IDClaims
	// client is the hint's client (its aud), nil without a hint or when
	// the client is no longer registered.
	client *clients.Client
	// redirect is the post_logout_redirect_uri when it is registered for
	// client, else ""; state is echoed with it (§3).
	redirect, state string
}

func (h logoutHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathLogoutConfirm {
		h.confirm(w, r)
		return
	}
	params, err := authorizeParams(w, r)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	req, s, ok := h.begin(w, r, params)
	if !ok {
		return
	}
	ours, err := h.ofSession(r.Context(), req, s)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	if !ours {
		h.showConfirm(w, r, req, s)
		return
	}
	h.end(w, r, req, s)
}

// begin reads the logout request in params and finds this browser's
// session. When there is nothing more to do it has answered and returns
// ok false: an error page, or, with no session, the signed-out answer
// (§4: not an error, and nothing to confirm).
func (h logoutHandler) begin(w http.ResponseWriter, r *http.Request, params url.Values) (*logoutRequest, *storage.BrowserSession, bool) {
	ctx := r.Context()
	req, err := h.parseLogout(ctx, params)
	if err != nil {
		h.pageError(w, r, err)
		return nil, nil, false
	}
	s, err := h.browser.session(ctx, r)
	switch {
	case err != nil:
		h.pageError(w, r, err)
		return nil, nil, false
	case s == nil:
		h.finish(w, r, req)
		return nil, nil, false
	}
	return req, s, true
}

// end signs the browser out of s and answers.
func (h logoutHandler) end(w http.ResponseWriter, r *http.Request, req *logoutRequest, s *storage.BrowserSession) {
	if err := h.signOut(r.Context(), w, req, s); err != nil {
		h.pageError(w, r, err)
		return
	}
	h.finish(w, r, req)
}

// confirm serves the confirmation form: signed out only with the form's
// CSRF token for this browser's session (RFC 6749 §10.12).
func (h logoutHandler) confirm(w http.ResponseWriter, r *http.Request) {
	form, params, ok := h.readForm(w, r)
	if !ok {
		return
	}
	// No session: signed out meanwhile (another tab, expiry).
	req, s, ok := h.begin(w, r, params)
	if !ok {
		return
	}
	if !h.browser.checkForm(formLogout, consentBinding(s), form.Get("csrf")) {
		h.pageError(w, r, errForbiddenForm)
		return
	}
	h.end(w, r, req, s)
}

// parseLogout reads a logout request (§2). Its error, shown on a page, is
// a malformed request: a parameter repeated or with a control character,
// an id_token_hint this server did not issue (§2: the OP MUST validate
// that it was the issuer; expired hints are accepted), an unknown
// client_id, or a client_id that is not the hint's audience (§2: MUST
// verify). Then no redirect happens (§3) and nobody is signed out.
func (h logoutHandler) parseLogout(ctx context.Context, params url.Values) (*logoutRequest, error) {
	req := &logoutRequest{params: params}
	var hint, clientID, redirect string
	for _, p := range []struct {
		name string
		dst  *string
	}{
		{"id_token_hint", &hint}, {"client_id", &clientID},
		{"post_logout_redirect_uri", &redirect}, {"state", &req.state},
	} {
		v, err := pageParam(params, p.name)
		if err != nil {
			return nil, err
		}
		*p.dst = v
	}
	reg := h.clients.registry()
	if clientID != "" {
		if _, ok := reg.Get(clientID); !ok {
			return nil, errInvalidRequest("The application is not registered here (unknown client_id).")
		}
	}
	if hint == "" {
		return req, nil
	}
	claims, err := h.keys.ParseIDToken(ctx, hint, h.issuer)
	switch {
	case errors.Is(err, tokens.ErrMalformed):
		return nil, errInvalidRequest("The id_token_hint was not issued here.")
	case err != nil:
		return nil, fmt.Errorf("id_token_hint: %w", err)
	case clientID != "" && clientID != claims.Audience:
		return nil, errInvalidRequest("The client_id is not the application the id_token_hint was issued to.")
	}
	req.hint = &claims
	infoFrom(ctx).clientID = claims.Audience
	if c, ok := reg.Get(claims.Audience); ok {
		req.client = c
		if c.MatchPostLogoutRedirect(redirect) {
			req.redirect = redirect
		}
	}
	return req, nil
}

// ofSession reports whether the request's hint belongs to the browser's
// session s: its sid is a session (family) that s started, for the hint's
// user and client. The sid is the test rather than the sub (decision D20
// leaves the choice): it names this browser's sign-in, while the user's
// ID tokens from other browsers or earlier sign-ins share the sub, and
// must not sign this browser out unasked.
func (h logoutHandler) ofSession(ctx context.Context, req *logoutRequest, s *storage.BrowserSession) (bool, error) {
	if req.hint == nil || req.hint.SessionID == "" {
		return false, nil
	}
	f, err := h.families.GetFamily(ctx, req.hint.SessionID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("logout: session of the hint: %w", err)
	}
	return f.BrowserSessionID == s.ID && f.UserID == s.UserID && f.UserID == req.hint.Subject &&
		f.ClientID == req.hint.Audience, nil
}

// signOut ends the browser session s and, with a hint, the sessions
// (refresh-token families) s started for the hint's client (decision D20);
// the user's sessions of other clients, and of other browsers, live on.
// Both end in one transaction (storage.BrowserSessions.EndBrowserSession):
// a logout that fails (the database down) changes nothing and leaves the
// cookie, so a retry still finds the session to end; and a code of s
// redeemed at the same time either commits before (and its session is
// among those revoked) or fails (storage.Codes.RedeemCode; RP-Initiated
// Logout 1.0 §2).
func (h logoutHandler) signOut(ctx context.Context, w http.ResponseWriter, req *logoutRequest, s *storage.BrowserSession) error {
	clientID := ""
	if req.hint != nil {
		clientID = req.hint.Audience
	}
	n, err := h.browser.end(ctx, w, s, clientID)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	h.log.InfoContext(ctx, "browser sign-out", "client_id", clientID, "user_id", s.UserID, "families_revoked", n)
	return nil
}

// finish answers a logout that is done: 303 to the post_logout_redirect_uri
// with the state (§3), only when the hint is valid and the URI registered
// for its client; else the signed-out page.
func (h logoutHandler) finish(w http.ResponseWriter, r *http.Request, req *logoutRequest) {
	if req.redirect == "" {
		h.pages.render(w, r, http.StatusOK, pageData{Kind: pageSignedOut, Title: "Signed out"})
		return
	}
	var kv []string
	if req.state != "" {
		kv = append(kv, "state", req.state)
	}
	hd := w.Header()
	hd.Set("Location", appendQuery(req.redirect, kv...))
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusSeeOther)
}

// showConfirm asks the user of session s to confirm the sign-out.
func (h logoutHandler) showConfirm(w http.ResponseWriter, r *http.Request, req *logoutRequest, s *storage.BrowserSession) {
	d := pageData{
		Kind: pageLogout, Title: "Sign out", Action: h.issuer + PathLogoutConfirm,
		CSRF: h.browser.formToken(formLogout, consentBinding(s)), Request: req.params.Encode(),
	}
	if req.client != nil {
		d.Client = req.client.Name
	}
	if u, err := h.users.GetUser(r.Context(), s.UserID); err == nil {
		d.User = u.Username
	}
	h.pages.render(w, r, http.StatusOK, d)
}

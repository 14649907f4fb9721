package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/storage"
)

// What a request needs from the user before its code is issued.
type consentNeed int

const (
	consentNone  consentNeed = iota // nothing: issue the code
	consentBrief                    // one click: "Continue to <name> at <host>"
	consentFull                     // the consent page
)

// consentNeeded decides whether the user must allow the client (RFC 6749
// §10.2, decision D14): prompt=consent always asks; a first-party client
// needs no consent; a remembered consent covering the scope skips the page
// for a confidential client, and after a sign-in in this same request; a
// public client otherwise gets one click, since its identity cannot be
// assured (RFC 8252 §8.6) and nothing in the request came from the user.
func (f *authorizeFlow) consentNeeded(ctx context.Context, req *authzRequest, s *storage.BrowserSession, interacted bool) (consentNeed, error) {
	c := req.client
	if req.promptConsent {
		return consentFull, nil
	}
	covered := c.FirstParty
	if !covered {
		got, err := f.consents.GetConsent(ctx, s.UserID, c.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("consent: %w", err)
		default:
			covered = got.Covers(req.scope)
		}
	}
	switch {
	case !covered:
		return consentFull, nil
	case !c.Public || interacted:
		return consentNone, nil
	}
	return consentBrief, nil
}

// showConsent shows the consent page (or, brief, the one-click page) for req.
func (f *authorizeFlow) showConsent(w http.ResponseWriter, r *http.Request, req *authzRequest, s *storage.BrowserSession, brief bool) {
	d := pageData{
		Kind: pageConsent, Title: "Allow " + req.client.Name, Action: f.issuer + PathConsent,
		CSRF: f.browser.formToken(formConsent, consentBinding(s)), Request: req.params.Encode(),
		Client: req.client.Name, Host: redirectHost(req.target), Brief: brief,
		Scopes:       scopeLines(req.scope),
		UntilRevoked: req.client.AllowsGrant(clients.GrantRefreshToken),
	}
	if brief {
		d.Title = "Continue to " + req.client.Name
	}
	if u, err := f.users.GetUser(r.Context(), s.UserID); err == nil {
		d.User = u.Username
	}
	f.pages.render(w, r, http.StatusOK, d)
}

// redirectHost is what the consent page names as where the browser goes
// back to: the redirect URI's host (RFC 6749 §10.2), or for a private-use
// scheme (RFC 8252 §7.1) the scheme. Shown as text, never as a link.
func redirectHost(uri string) string {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return uri
	case u.Host != "":
		return u.Hostname()
	}
	return u.Scheme
}

// consentHandler serves POST /oauth2/authorize/consent: Allow remembers
// the consent and issues the code, Deny answers access_denied (RFC 6749
// §4.1.2.1); both 303 to the client. The form is good only for the browser
// session it was shown to (RFC 6749 §10.12).
type consentHandler struct{ *authorizeFlow }

func (h consentHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, req, ok := h.formRequest(w, r)
	if !ok {
		return
	}
	s, ok := h.sessionForm(w, r, req, form, formConsent)
	if !ok {
		return
	}
	if req.err != nil {
		h.redirectError(w, r, req, req.err)
		return
	}
	switch form.Get("action") {
	case "allow":
	case "deny":
		h.redirectError(w, r, req, oauthError(400, "access_denied", "the user denied the request"))
		return
	default:
		h.pageError(w, r, errInvalidRequest("The form is malformed (no action)."))
		return
	}
	if !req.client.FirstParty {
		err := h.consents.GrantConsent(r.Context(), s.UserID, req.client.ID, req.scope, h.now().UTC())
		if err != nil {
			h.redirectError(w, r, req, fmt.Errorf("grant consent: %w", err))
			return
		}
	}
	h.log.InfoContext(r.Context(), "consent given", "client_id", req.client.ID, "user_id", s.UserID,
		"scope", strings.Join(req.scope, " "))
	h.issue(w, r, req, s)
}

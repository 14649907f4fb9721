package server

import (
	"net/http"

	"github.com/keyturn/keyturn/storage"
)

// showSelect shows the account choice of prompt=select_account (OpenID
// Connect Core §3.1.2.1; decision D18): one browser holds one session, so
// the choice is "Continue as <user>" or "Use another account", the login
// page, whose sign-in replaces the session.
func (f *authorizeFlow) showSelect(w http.ResponseWriter, r *http.Request, req *authzRequest, s *storage.BrowserSession) {
	d := pageData{
		Kind: pageSelect, Title: "Choose an account", Action: f.issuer + PathSelectAccount,
		CSRF: f.browser.formToken(formSelect, consentBinding(s)), Request: req.params.Encode(),
		Client: req.client.Name,
	}
	u, err := f.users.GetUser(r.Context(), s.UserID)
	if err != nil {
		f.redirectError(w, r, req, err)
		return
	}
	d.User = u.Username
	f.pages.render(w, r, http.StatusOK, d)
}

// selectHandler serves POST /oauth2/authorize/select, the account choice's
// form: "continue" goes on as the signed-in user, "another" shows the login
// page. The form is good only for the browser session it was shown to
// (RFC 6749 §10.12).
type selectHandler struct{ *authorizeFlow }

func (h selectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, req, ok := h.formRequest(w, r)
	if !ok {
		return
	}
	s, ok := h.sessionForm(w, r, req, form, formSelect)
	if !ok {
		return
	}
	switch form.Get("action") {
	case "continue":
		if req.needsLogin(s, h.now()) { // max_age passed since the page was shown
			h.showLogin(w, r, req, http.StatusOK, "", req.loginHint)
			return
		}
		h.proceed(w, r, req, s, false)
	case "another":
		h.showLogin(w, r, req, http.StatusOK, "", req.loginHint)
	default:
		h.pageError(w, r, errInvalidRequest("The form is malformed (no action)."))
	}
}

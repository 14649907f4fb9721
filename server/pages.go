package server

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
)

// The pages of the authorization endpoint: html/template only (contextual
// escaping of everything a client or user chose), one embedded stylesheet,
// no script and no inline style, readable without JavaScript.
//
//go:embed pages/*.html pages/style.css
var pageFiles embed.FS

var pageTemplates = template.Must(template.ParseFS(pageFiles, "pages/*.html"))

var styleCSS = func() []byte {
	b, err := pageFiles.ReadFile("pages/style.css")
	if err != nil {
		panic(err)
	}
	return b
}()

// Page kinds (the body's data-page attribute, which tests read).
const (
	pageLogin   = "login"
	pageConsent = "consent"
	pageError   = "error"
	// pageSelect is "Continue as <user> / Use another account" (decision D18).
	pageSelect = "select"
	// pageLogout asks to confirm a sign-out; pageSignedOut says it is done
	// (RP-Initiated Logout 1.0 §2, §4; decision D20).
	pageLogout    = "logout"
	pageSignedOut = "signedout"
)

// pageData is what a page shows. Every string is escaped by html/template.
type pageData struct {
	Kind, Title, Product string
	Style, Logo          string // URLs on Keyturn's own origin; Logo "" if none
	Action               string // the form's target, a path on Keyturn
	CSRF, Request        string // hidden fields
	Client, Host, User   string
	Username, Message    string
	Hint                 string
	Scopes               []string
	Brief, UntilRevoked  bool
}

// pages renders the pages with the product's name and logo.
type pages struct {
	issuer  string
	product string
	logo    []byte
	log     *slog.Logger
}

// pageContentSecurityPolicy: nothing but the stylesheet and the logo from
// Keyturn's origin; no framing (RFC 9700 §4.16, decision D21), no base.
// It has no form-action: Chromium applies form-action to the redirect that
// answers a form POST, which would block the redirect to the client.
const pageContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// SetPageHeaders sets the headers every HTML page carries, before
// WriteHeader: never cached (it holds a CSRF token), never framed
// (clickjacking, RFC 6749 §10.13, RFC 9700 §4.16), no referrer (RFC 9700
// §4.2.4), no sniffing.
func SetPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Security-Policy", pageContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// render writes page kind with status. It renders into a buffer first, so
// that a template error becomes a plain 500 rather than half a page.
func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.Product = p.product
	d.Style = p.issuer + PathStyle
	if len(p.logo) > 0 {
		d.Logo = p.issuer + PathLogo
	}
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, d.Kind, d); err != nil {
		p.log.ErrorContext(r.Context(), "render page", "page", d.Kind, "err", err)
		SetPageHeaders(w.Header())
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	SetPageHeaders(w.Header())
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows a problem to the person at the browser: never a redirect
// (RFC 6749 §4.1.2.1: an unverified redirect URI is not followed), and
// nothing in it links anywhere.
func (p *pages) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message, hint string) {
	p.render(w, r, status, pageData{Kind: pageError, Title: title, Message: message, Hint: hint})
}

// serveStyle serves the pages' one stylesheet.
func serveStyle(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(styleCSS)
}

// serveLogo serves the configured logo from Keyturn's origin (decision D22,
// RFC 9700 §4.2.4), with the type its content shows (config accepts only
// PNG, JPEG, GIF and WebP) and nosniff; 404 when there is none.
func (p *pages) serveLogo(w http.ResponseWriter, r *http.Request) {
	if len(p.logo) == 0 {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", http.DetectContentType(p.logo))
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(p.logo)
}

// scopeText is how a scope reads on the consent page; a scope not listed
// here is shown as its token.
var scopeText = map[string]string{
	"openid":         "Confirm who you are",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"read":           "Read your data",
	"write":          "Change your data",
	"offline_access": "Keep access while you are away",
}

func scopeLines(scope []string) []string {
	out := make([]string, 0, len(scope))
	for _, s := range scope {
		if t, ok := scopeText[s]; ok {
			out = append(out, t)
		} else {
			out = append(out, s)
		}
	}
	return out
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/keyturn/keyturn/storage"
)

// userInfoHandler serves the UserInfo endpoint (OpenID Connect Core §5.3):
// a protected resource (RFC 6750) that tells the holder of an access token
// granted openid who the user is, in the claims the token's scope allows.
type userInfoHandler struct {
	access accessChecker
	users  storage.Users
	log    *slog.Logger
}

// Scope values that select claims (Core §5.4); openid itself selects sub.
const (
	scopeProfile = "profile"
	scopeEmail   = "email"
)

// UserClaims are the standard claims (Core §5.1) Keyturn holds about a
// user. A claim that is not set is left out, never null or "" (Core
// §5.3.2), and email_verified goes only with email.
type UserClaims struct {
	Subject           string `json:"sub"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// userClaims are the claims about u that scope (granted scope values)
// allows (Core §5.4): sub always; profile adds name and preferred_username
// (the username); email adds email and email_verified.
func userClaims(u storage.User, scope []string) UserClaims {
	c := UserClaims{Subject: u.ID}
	for _, s := range scope {
		switch s {
		case scopeProfile:
			c.Name, c.PreferredUsername = u.Profile.Name, u.Username
		case scopeEmail:
			if u.Profile.Email != "" {
				verified := u.Profile.EmailVerified
				c.Email, c.EmailVerified = u.Profile.Email, &verified
			}
		}
	}
	return c
}

func (h *userInfoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	claims, err := h.userInfo(w, r)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, claims)
}

func (h *userInfoHandler) userInfo(w http.ResponseWriter, r *http.Request) (UserClaims, error) {
	token, err := bearerToken(w, r)
	if err != nil {
		return UserClaims{}, err
	}
	return h.claims(r.Context(), token)
}

// claims checks the access token as introspection does (one code path:
// accessChecker) and returns what it may learn about its user.
func (h *userInfoHandler) claims(ctx context.Context, token string) (UserClaims, error) {
	a, err := h.access.check(ctx, token, nil)
	switch {
	case errors.Is(err, errInactive):
		return UserClaims{}, errInvalidToken("the access token is invalid, expired or revoked")
	case err != nil:
		return UserClaims{}, fmt.Errorf("userinfo: %w", err)
	}
	scope := scopeList(a.claims.Scope)
	// Core §5.3.1: UserInfo answers tokens of OpenID Connect requests only.
	if !hasScope(a.claims.Scope, "openid") {
		return UserClaims{}, errInsufficientScope("openid", "the access token was not granted openid")
	}
	if a.claims.SessionID == "" { // client_credentials: there is no user
		return UserClaims{}, errInvalidToken("the access token has no user")
	}
	u, err := h.users.GetUser(ctx, a.claims.Subject)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return UserClaims{}, errInvalidToken("the access token is invalid, expired or revoked")
	case err != nil:
		return UserClaims{}, fmt.Errorf("userinfo: %w", err)
	case u.Disabled:
		// Disabling revokes the user's sessions in the same transaction;
		// this holds should the two ever come apart.
		return UserClaims{}, errInvalidToken("the access token is invalid, expired or revoked")
	}
	return userClaims(u, scope), nil
}

// bearerToken returns the request's access token: in the Authorization
// header (RFC 6750 §2.1) on GET and POST, or as access_token in a POST's
// application/x-www-form-urlencoded body (RFC 6750 §2.2; DESIGN.md
// decision D19). Never in the query (RFC 6750 §2.3, RFC 9700 §4.3.2: URLs
// leak into logs and Referer). More than one method is invalid_request
// (RFC 6750 §2); none is the bare challenge (§3.1).
func bearerToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		e := errMethodNotAllowed(http.MethodGet + ", " + http.MethodPost)
		return "", asBearerError(e)
	}
	if r.URL.Query().Has("access_token") {
		return "", asBearerError(errInvalidRequest("the access token must not be sent in the URL"))
	}
	header, err := authorizationBearer(r)
	if err != nil {
		return "", err
	}
	var body string
	if r.Method == http.MethodPost && isForm(r) {
		form, err := parseForm(w, r)
		if err != nil {
			var oe *Error
			if errors.As(err, &oe) {
				return "", asBearerError(oe)
			}
			return "", err
		}
		if _, ok := form["access_token"]; ok {
			if body = form.Get("access_token"); body == "" {
				return "", asBearerError(errInvalidRequest("empty access_token"))
			}
		}
	}
	switch {
	case header != "" && body != "":
		return "", asBearerError(errInvalidRequest("the access token must be sent in one way only"))
	case header != "":
		return header, nil
	case body != "":
		return body, nil
	}
	return "", errNoBearerToken()
}

// isForm reports whether the request's body is declared a form.
func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// authorizationBearer is the token of an "Authorization: Bearer" header
// (the scheme is case-insensitive, RFC 9110 §11.1), "" if there is no
// Authorization header. Another scheme is no bearer credential (the bare
// challenge); a repeated header or a token that is not b64token syntax
// (RFC 6750 §2.1) is invalid_request.
func authorizationBearer(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", asBearerError(errInvalidRequest("repeated Authorization header"))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNoBearerToken()
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return "", asBearerError(errInvalidRequest("malformed Bearer credentials"))
	}
	return token, nil
}

// isB64Token reports whether s is RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

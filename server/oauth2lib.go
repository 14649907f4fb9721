package server

// This file is the only one that imports go-oauth2/oauth2/v4 (DESIGN.md §5).
// Its server.Server parses the token request and dispatches on grant_type;
// it is handed our own oauth2.Manager (libManager) and our own password and
// client handlers, never its stock manager or stores (DESIGN.md §5 lists why).
// Its errors are matched by identity and carry its own status codes, so they
// are translated here, with errors.Is, before anything wraps them.

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-oauth2/oauth2/v4"
	liberrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/models"
	libserver "github.com/go-oauth2/oauth2/v4/server"
)

// tokenLib wraps the library's token-request parser.
type tokenLib struct {
	srv *libserver.Server
}

// newTokenLib wires the library to our grants. The client has already been
// authenticated and its grant type checked when the library sees the
// request; ClientInfoHandler only hands it that client's id.
func newTokenLib(grants map[string]grant, password func(ctx context.Context, username, password string) (string, error)) *tokenLib {
	cfg := &libserver.Config{
		TokenType: "Bearer",
		AllowedGrantTypes: []oauth2.GrantType{
			oauth2.PasswordCredentials, oauth2.Refreshing, oauth2.ClientCredentials,
		},
	}
	srv := libserver.NewServer(cfg, &libManager{grants: grants})
	srv.ClientInfoHandler = func(r *http.Request) (string, string, error) {
		req := tokenRequestFrom(r.Context())
		if req == nil {
			return "", "", errors.New("token lib: request without an authenticated client")
		}
		return req.client.ID, "", nil
	}
	srv.PasswordAuthorizationHandler = func(ctx context.Context, _, username, pw string) (string, error) {
		return password(ctx, username, pw)
	}
	srv.RefreshTokenResolveHandler = libserver.RefreshTokenFormResolveHandler
	return &tokenLib{srv: srv}
}

// issue runs the library over r, whose context carries our tokenRequest,
// and returns our response or a translated error.
func (l *tokenLib) issue(r *http.Request) (*tokenResponse, error) {
	gt, tgr, err := l.srv.ValidationTokenRequest(r)
	if err != nil {
		return nil, fromLib(err)
	}
	ti, err := l.srv.GetAccessToken(r.Context(), gt, tgr)
	if err != nil {
		return nil, fromLib(err)
	}
	issued, ok := ti.(*libToken)
	if !ok {
		return nil, errors.New("token lib: unexpected token type")
	}
	return issued.resp, nil
}

// fromLib translates the library's sentinel errors (matched by identity,
// RFC 6749 §5.2 codes) into ours; our own *Error values pass through.
func fromLib(err error) error {
	var oe *Error
	if errors.As(err, &oe) {
		return err
	}
	switch {
	case errors.Is(err, liberrors.ErrInvalidRequest):
		return errInvalidRequest("a required parameter is missing")
	case errors.Is(err, liberrors.ErrUnsupportedGrantType):
		return errUnsupportedGrantType("unsupported grant_type")
	case errors.Is(err, liberrors.ErrUnauthorizedClient):
		return errUnauthorizedClient("the client may not use this grant type")
	case errors.Is(err, liberrors.ErrInvalidGrant),
		errors.Is(err, liberrors.ErrInvalidRefreshToken),
		errors.Is(err, liberrors.ErrExpiredRefreshToken):
		return errInvalidGrant("the grant is invalid")
	case errors.Is(err, liberrors.ErrInvalidScope):
		return errInvalidScope("invalid scope")
	case errors.Is(err, liberrors.ErrInvalidClient):
		return errInvalidClient("client authentication failed")
	}
	return err // not a client mistake: server_error, cause logged
}

// libToken carries our response through the library's TokenInfo interface.
type libToken struct {
	*models.Token
	resp *tokenResponse
}

// libManager is our oauth2.Manager: it issues tokens through our grants.
// Methods for flows we do not serve refuse.
type libManager struct {
	grants map[string]grant
}

var errLibUnused = errors.New("token lib: not supported")

func (m *libManager) GetClient(context.Context, string) (oauth2.ClientInfo, error) {
	return nil, errLibUnused
}

func (m *libManager) GenerateAuthToken(context.Context, oauth2.ResponseType, *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	return nil, liberrors.ErrUnsupportedResponseType
}

func (m *libManager) GenerateAccessToken(ctx context.Context, gt oauth2.GrantType, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	return m.run(ctx, gt, tgr)
}

func (m *libManager) RefreshAccessToken(ctx context.Context, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	return m.run(ctx, oauth2.Refreshing, tgr)
}

func (m *libManager) run(ctx context.Context, gt oauth2.GrantType, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	req := tokenRequestFrom(ctx)
	g, ok := m.grants[gt.String()]
	if req == nil || !ok {
		return nil, errUnsupportedGrantType("unsupported grant_type")
	}
	req.userID, req.refreshToken = tgr.UserID, tgr.Refresh
	resp, err := g.issue(ctx, req)
	if err != nil {
		return nil, err
	}
	return &libToken{Token: models.NewToken(), resp: resp}, nil
}

func (m *libManager) RemoveAccessToken(context.Context, string) error  { return errLibUnused }
func (m *libManager) RemoveRefreshToken(context.Context, string) error { return errLibUnused }
func (m *libManager) LoadAccessToken(context.Context, string) (oauth2.TokenInfo, error) {
	return nil, errLibUnused
}
func (m *libManager) LoadRefreshToken(context.Context, string) (oauth2.TokenInfo, error) {
	return nil, errLibUnused
}

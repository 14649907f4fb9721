package server

import (
	"context"
	"time"
)

// clientCredentialsGrant is RFC 6749 §4.4: a confidential client acting on
// its own behalf. No refresh token (§4.4.3).
type clientCredentialsGrant struct {
	minter *minter
	now    func() time.Time
}

func (clientCredentialsGrant) required() []string { return nil }

func (g clientCredentialsGrant) issue(ctx context.Context, req *tokenRequest) (*tokenResponse, error) {
	// RFC 6749 §4.4 is for confidential clients only: clients.Validate
	// refuses a public client with this grant.
	c := req.client
	scope, err := grantScope(req.scope, c.AllowsScope, c.DefaultScopes)
	if err != nil {
		return nil, err
	}
	return g.minter.response(ctx, req, c.ID, scope, "", g.now().UTC())
}

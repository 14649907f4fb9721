package server

import (
	"errors"
	"net/http"
	"net/netip"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/throttle"
)

// clientGuard throttles client authentication (RFC 6749 §2.3.1: a client
// secret is a password; §10.10: credential guessing) per (client id,
// source address; see throttle.Throttle.CheckClient). Only registered
// confidential clients whose secret can be guessed (clients.Client.Guessable:
// chosen by a person) are counted (DESIGN.md decision D12); an unknown id
// is refused as before, without a database write, and a generated 256-bit
// secret is beyond any online guessing, so its clients' hot paths (refresh,
// introspection, client_credentials) never touch the throttle.
type clientGuard struct {
	throttle *throttle.Throttle
	trusted  []netip.Prefix
}

func (g *clientGuard) authenticate(r *http.Request, reg *clients.Registry, id, secret string, alternates ...string) (*clients.Client, error) {
	if c, ok := reg.Get(id); g == nil || !ok || c.Public || !c.Guessable {
		return authenticate(r.Context(), reg, id, secret, alternates...)
	}
	var c *clients.Client
	ok, err := g.throttle.CheckClient(r.Context(), id, clientAddr(r, g.trusted), func() (bool, error) {
		var err error
		c, err = reg.Authenticate(r.Context(), id, secret, alternates...)
		if errors.Is(err, clients.ErrInvalidClient) {
			return false, nil // a wrong secret: judged, counted
		}
		return err == nil, err
	})
	if err != nil {
		return nil, clientAuthError(err)
	}
	if !ok {
		return nil, clientAuthError(clients.ErrInvalidClient)
	}
	return c, nil
}

package server

import (
	"sync/atomic"

	"github.com/keyturn/keyturn/clients"
)

// clientSet is the current client registry, swapped whole when admins
// reload the configuration: a request sees either the old registry or the
// new one, never a mix. The metadata document, which lists what the
// clients may do, is rendered with each registry and swapped with it.
type clientSet struct {
	issuer  string
	current atomic.Pointer[registryDoc]
}

// registryDoc is a registry and the metadata documents rendered from it.
type registryDoc struct {
	reg      *clients.Registry
	metadata []byte // RFC 8414
	openID   []byte // OpenID Connect Discovery 1.0
}

func newClientSet(issuer string, reg *clients.Registry) *clientSet {
	c := &clientSet{issuer: issuer}
	c.set(reg)
	return c
}

func (c *clientSet) registry() *clients.Registry { return c.current.Load().reg }

func (c *clientSet) metadata() []byte { return c.current.Load().metadata }

func (c *clientSet) openIDConfiguration() []byte { return c.current.Load().openID }

func (c *clientSet) set(reg *clients.Registry) {
	oauth, openID := renderMetadata(c.issuer, reg)
	c.current.Store(&registryDoc{reg: reg, metadata: oauth, openID: openID})
}

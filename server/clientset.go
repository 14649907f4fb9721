package server

import (
	"sync/atomic"

	"github.com/keyturn/keyturn/clients"
)

// clientSet is the current client registry, swapped whole when admins
// reload the configuration: a request sees either the old registry or the
// new one, never a mix. The metadata document, which lists what the
// clients may do, is rendered with each registry.
type clientSet struct {
	issuer   string
	reg      atomic.Pointer[clients.Registry]
	metadata atomic.Pointer[[]byte]
}

func newClientSet(issuer string, reg *clients.Registry) *clientSet {
	c := &clientSet{issuer: issuer}
	c.set(reg)
	return c
}

func (c *clientSet) registry() *clients.Registry { return c.reg.Load() }

func (c *clientSet) set(reg *clients.Registry) {
	doc := renderMetadata(c.issuer, reg)
	c.metadata.Store(&doc)
	c.reg.Store(reg)
}

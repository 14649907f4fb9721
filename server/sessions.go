package server

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keyturn/keyturn/storage"
)

// sessionCacheSize bounds the sessions one instance remembers: about
// 300 bytes each, so a few MiB.
const sessionCacheSize = 16384

// sessionCache remembers the fields of recently seen sessions that never
// change after login (ID, client, user, scope, salt, MAC key, creation and
// absolute expiry), so that a refresh can check its token in memory and
// spend it with the one conditional UPDATE alone, instead of reading the row
// first (BENCHMARKS.md: the read was a fifth of a refresh's CPU). Nothing
// that changes (generation, idle expiry, revocation) is kept: the UPDATE
// decides those, in the database every instance shares, so an entry is never
// stale, only absent. It helps as far as a session's refreshes come back to
// the instance that last saw it.
type sessionCache struct {
	lru *lru.Cache[string, storage.Family]
}

func newSessionCache(size int) *sessionCache {
	c, err := lru.New[string, storage.Family](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return &sessionCache{lru: c}
}

// put remembers f's fixed fields.
func (c *sessionCache) put(f storage.Family) {
	c.lru.Add(f.ID, storage.Family{
		ID: f.ID, ClientID: f.ClientID, UserID: f.UserID, Scope: f.Scope,
		Salt: f.Salt, KeyID: f.KeyID,
		CreatedAt: f.CreatedAt, AbsoluteExpiresAt: f.AbsoluteExpiresAt,
	})
}

// get returns a session's fixed fields; the others are zero.
func (c *sessionCache) get(id string) (storage.Family, bool) { return c.lru.Get(id) }

// forget drops a session that ended.
func (c *sessionCache) forget(id string) { c.lru.Remove(id) }

// Package sweeper owns the deletion of expired state: sessions, denylisted
// access-token ids, login throttles, known addresses, signing keys,
// authorization codes and browser login sessions past their retention, swept in bounded batches through the Delete* methods of
// the storage roles (Store), once (`keyturn cleanup`) or on a ticker
// (serve). It knows nothing of HTTP and holds no state between sweeps.
package sweeper

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyturn/keyturn/clients"
)

// Options configures what the sweeper deletes.
type Options struct {
	// RevokedRetention is how long a revoked session is kept (for `sessions
	// list` and audit) before it is deleted; sessions past their absolute
	// expiry are deleted at once, since nothing can use them any more.
	RevokedRetention time.Duration
	// ThrottleRetention is how long failed-login counters are kept
	// (default 24h).
	ThrottleRetention time.Duration
	// MaxTokenTTL is the longest access-token lifetime (server.KeysOptions'): a
	// signing key is deleted once superseded or revoked this long ago.
	// Zero means clients.MaxAccessTokenTTL.
	MaxTokenTTL time.Duration
	// KnownAddressRetention is how long an address a user logged in from
	// is remembered (default 30 days, server.LoginOptions.KnownAddressTTL).
	KnownAddressRetention time.Duration
	// BatchSize bounds every DELETE, so no sweep holds long locks.
	BatchSize int
	Now       func() time.Time
}

// CodeRetention is how long an authorization code is kept after it
// expires, used or not: a used code names the session its redemption
// started, so that a replay of it (RFC 6749 §4.1.2) still revokes that
// session when it comes late; one never used is harmless, and kept alike
// so the sweep is one condition.
const CodeRetention = 24 * time.Hour

// Result counts what one sweep deleted.
type Result struct {
	Families, Denials, Throttles, Keys, KnownAddresses int64
	Codes, BrowserSessions                             int64
}

// Sweeper deletes expired state: sessions past their absolute expiry or
// past the revoked retention, denylisted access-token ids past their
// token's exp, stale login throttles, addresses users have not logged in
// from for the known-address retention, and signing keys that can neither
// sign nor verify any more: superseded longer than the longest token
// lifetime ago (no longer published), or revoked as long ago (a revoked
// key's private half is erased when it is revoked; its row orders the
// keys around it until then and shows in `keyturn keys list`),
// authorization codes CodeRetention after their expiry, and browser login
// sessions once expired or revoked. Several instances may sweep at
// once: each batch deletes rows by id, and a row already gone is no error.
// Reuse detection is unaffected: a family is kept for its whole absolute
// lifetime, so a token rotated away long ago still trips revocation.
type Sweeper struct {
	store Store
	opts  Options
	log   *slog.Logger
}

// Store is what the Sweeper deletes through: the Delete* method of
// each storage role (storage.Store has them all).
type Store interface {
	DeleteFamilies(ctx context.Context, expiredBefore, revokedBefore time.Time, limit int) (int64, error)
	DeleteDenials(ctx context.Context, before time.Time, limit int) (int64, error)
	DeleteThrottles(ctx context.Context, before time.Time, limit int) (int64, error)
	DeleteKnownAddresses(ctx context.Context, before time.Time, limit int) (int64, error)
	DeleteSigningKeys(ctx context.Context, supersededBefore, revokedBefore time.Time, limit int) (int64, error)
	DeleteCodes(ctx context.Context, before time.Time, limit int) (int64, error)
	DeleteBrowserSessions(ctx context.Context, before time.Time, limit int) (int64, error)
}

// New returns a Sweeper; zero options get defaults.
func New(store Store, opts Options, log *slog.Logger) *Sweeper {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ThrottleRetention <= 0 {
		opts.ThrottleRetention = 24 * time.Hour
	}
	if opts.MaxTokenTTL <= 0 {
		opts.MaxTokenTTL = clients.MaxAccessTokenTTL
	}
	if opts.KnownAddressRetention <= 0 {
		opts.KnownAddressRetention = 30 * 24 * time.Hour
	}
	return &Sweeper{store: store, opts: opts, log: log}
}

// Sweep deletes, batch by batch, everything past retention at now.
func (c *Sweeper) Sweep(ctx context.Context) (Result, error) {
	now := c.opts.Now().UTC()
	var res Result
	var err error
	if res.Families, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteFamilies(ctx, now, now.Add(-c.opts.RevokedRetention), n)
	}); err != nil {
		return res, fmt.Errorf("cleanup sessions: %w", err)
	}
	if res.Denials, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteDenials(ctx, now, n)
	}); err != nil {
		return res, fmt.Errorf("cleanup denylist: %w", err)
	}
	if res.Throttles, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteThrottles(ctx, now.Add(-c.opts.ThrottleRetention), n)
	}); err != nil {
		return res, fmt.Errorf("cleanup throttles: %w", err)
	}
	if res.KnownAddresses, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteKnownAddresses(ctx, now.Add(-c.opts.KnownAddressRetention), n)
	}); err != nil {
		return res, fmt.Errorf("cleanup known addresses: %w", err)
	}
	keysBefore := now.Add(-c.opts.MaxTokenTTL)
	if res.Keys, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteSigningKeys(ctx, keysBefore, keysBefore, n)
	}); err != nil {
		return res, fmt.Errorf("cleanup signing keys: %w", err)
	}
	if res.Codes, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteCodes(ctx, now.Add(-CodeRetention), n)
	}); err != nil {
		return res, fmt.Errorf("cleanup authorization codes: %w", err)
	}
	if res.BrowserSessions, err = drain(ctx, c.opts.BatchSize, func(n int) (int64, error) {
		return c.store.DeleteBrowserSessions(ctx, now, n)
	}); err != nil {
		return res, fmt.Errorf("cleanup browser sessions: %w", err)
	}
	c.log.InfoContext(ctx, "cleanup", "families_deleted", res.Families, "denials_deleted", res.Denials,
		"throttles_deleted", res.Throttles, "known_addresses_deleted", res.KnownAddresses,
		"signing_keys_deleted", res.Keys, "codes_deleted", res.Codes,
		"browser_sessions_deleted", res.BrowserSessions)
	return res, nil
}

// drain calls del with batch until a batch comes back short.
func drain(ctx context.Context, batch int, del func(int) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := del(batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// Run sweeps every interval until ctx is cancelled. A failed sweep is
// logged and retried at the next tick.
func (c *Sweeper) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
				c.log.ErrorContext(ctx, "cleanup failed", "err", err)
			}
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/tokens"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/keyturn/keyturn/storage/sqlstore"
)

// seedUsername is the user seeded sessions belong to when no -username is
// given; it is created (with a random password nobody knows) if missing.
const seedUsername = "keyturn-bench-seed"

// Seeding inserts seedBatch sessions a transaction (storage's
// CreateFamilies: multi-row INSERTs), seedWriters transactions at once.
// One CreateFamily a session inserted about 5,000 a second on PostgreSQL
// here (50,000 in 9.7 s at 16 at once): a million would take over three
// minutes.
const (
	seedBatch   = 5000
	seedWriters = 4
)

// seedResult is what seeding produced: the current (generation 0) ktr2
// refresh token of every seeded session.
type seedResult struct {
	tokens []string
	took   time.Duration
}

// seedSessions inserts c.SeedSessions live sessions of c.ClientID straight
// into the database of the config c.Config names, through the project's
// own config, storage and key code, so that their tokens are exactly the
// ones the server would have issued: each family is created as the
// password grant creates it and its token minted with keys.RefreshToken
// under the MAC key derived from the config's master secret.
func seedSessions(ctx context.Context, c settings) (seedResult, error) {
	start := time.Now()
	if c.lookupEnv == nil {
		c.lookupEnv = os.LookupEnv
	}
	cfg, err := config.Load(c.Config, c.lookupEnv)
	if err != nil {
		return seedResult{}, fmt.Errorf("-config: %w", err)
	}
	secret, err := masterSecret(cfg)
	if err != nil {
		return seedResult{}, err
	}
	reg, err := clients.New(cfg.Clients, cfg.ClientDefaults(), c.lookupEnv)
	if err != nil {
		return seedResult{}, fmt.Errorf("-config: clients: %w", err)
	}
	cl, ok := reg.Get(c.ClientID)
	switch {
	case !ok:
		return seedResult{}, fmt.Errorf("-seed-sessions: client %q is not in %s", c.ClientID, c.Config)
	case !cl.AllowsGrant(clients.GrantRefreshToken):
		return seedResult{}, fmt.Errorf("-seed-sessions: client %q may not use the refresh_token grant", c.ClientID)
	}
	store, err := sqlstore.Open(ctx, cfg.DatabaseURL(), sqlstore.Options{MaxOpenConns: max(cfg.Database.MaxOpenConns, seedWriters+1)})
	if err != nil {
		return seedResult{}, fmt.Errorf("open database %s: %w", config.RedactURL(cfg.DatabaseURL()), err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return seedResult{}, fmt.Errorf("migrate: %w", err)
	}
	ks, err := keys.New(ctx, store, secret, keys.Options{
		Algorithm: cfg.Keys.Algorithm, RotationDelay: cfg.Keys.RotationDelay, MaxTokenTTL: clients.MaxAccessTokenTTL, // as serve does
	})
	if err != nil {
		return seedResult{}, fmt.Errorf("keys: %w", err)
	}
	userIDs, err := seedUsers(ctx, store, c)
	if err != nil {
		return seedResult{}, err
	}

	scope := strings.Join(cl.DefaultScopes, " ")
	now := time.Now().UTC()
	out := make([]string, c.SeedSessions)
	var next atomic.Int64 // first session of the next batch
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(seedWriters, (len(out)+seedBatch-1)/seedBatch) {
		wg.Go(func() {
			fs := make([]storage.Family, 0, seedBatch)
			for {
				from := int(next.Add(seedBatch) - seedBatch)
				if from >= len(out) || ctx.Err() != nil || failed.Load() != nil {
					return
				}
				fs = fs[:0]
				for i := from; i < min(from+seedBatch, len(out)); i++ {
					// As the password grant creates a session (server/grant_password.go).
					fs = append(fs, storage.Family{
						ID: tokens.NewID(), ClientID: cl.ID, UserID: userIDs[i%len(userIDs)], Scope: scope,
						Salt: tokens.NewSalt(), KeyID: ks.MACKeyID(),
						CreatedAt: now, LastUsedAt: now,
						GrantType: storage.GrantPassword, AuthTime: now,
						IdleExpiresAt:     now.Add(cl.RefreshIdleTTL),
						AbsoluteExpiresAt: now.Add(cl.RefreshAbsoluteTTL),
					})
				}
				if err := store.CreateFamilies(ctx, fs); err != nil {
					err = fmt.Errorf("seed sessions %d to %d: %w", from+1, from+len(fs), err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				for j, f := range fs {
					out[from+j] = ks.RefreshToken(f, f.Generation)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return seedResult{}, *err
	}
	if err := ctx.Err(); err != nil {
		return seedResult{}, err
	}
	return seedResult{tokens: out, took: time.Since(start)}, nil
}

// seedUsers returns the IDs of the users seeded sessions are dealt to, in
// turn: the bench users (-username, -users), which must exist; or, with no
// -username, seedUsername, created if missing.
func seedUsers(ctx context.Context, store storage.Users, c settings) ([]string, error) {
	if c.Username != "" {
		var ids []string
		for _, name := range c.usernames() {
			u, err := store.GetUserByUsername(ctx, name)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("-seed-sessions: user %q does not exist (create the bench users first, or give no -username)", name)
			}
			if err != nil {
				return nil, err
			}
			ids = append(ids, u.ID)
		}
		return ids, nil
	}
	u, err := store.GetUserByUsername(ctx, seedUsername)
	if err == nil {
		return []string{u.ID}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	// Nobody ever logs in as this user: its password is random and
	// forgotten at once.
	hash, err := passhash.Hash(tokens.NewID(), passhash.Default)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	u = storage.User{ID: tokens.NewID(), Username: seedUsername, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := store.CreateUser(ctx, u); err != nil {
		return nil, fmt.Errorf("create user %s: %w", seedUsername, err)
	}
	return []string{u.ID}, nil
}

// masterSecret reads the master secret as `keyturn serve` does:
// KEYTURN_SECRET (config.Load put it in cfg.Secret), else the secret file.
// It never generates one: a new secret would mint tokens the server
// rejects.
func masterSecret(cfg config.Config) ([]byte, error) {
	raw := []byte(cfg.Secret)
	if len(raw) == 0 {
		var err error
		if raw, err = os.ReadFile(cfg.SecretPath()); err != nil {
			return nil, fmt.Errorf("master secret: set KEYTURN_SECRET or secret_file as for the server: %w", err)
		}
	}
	b, err := config.DecodeSecret(raw)
	if err != nil {
		return nil, fmt.Errorf("master secret: %w", err)
	}
	return b, nil
}

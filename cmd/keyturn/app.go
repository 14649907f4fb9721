package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/sqlstore"
)

// env is what every command works with: the process's standard streams and
// environment, handed in by run so that commands never touch os.Stdin,
// os.Getenv and friends, and the --config flag.
type env struct {
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	lookupEnv  func(string) (string, bool)
	configPath string
	hangup     <-chan os.Signal   // SIGHUP: serve reloads the clients
	onServer   func(*http.Server) // nil, or sees each server serve builds
}

// app is a loaded config and the logger built from it.
type app struct {
	cfg config.Config
	log *slog.Logger
}

// load reads and validates the config (file, then environment) and builds
// the one logger every component gets. An invalid config is a usage error;
// each of its problems is printed on its own line.
func (e *env) load() (*app, error) {
	cfg, err := config.Load(e.configPath, e.lookupEnv)
	if err != nil {
		return nil, usageError(err)
	}
	return &app{cfg: cfg, log: newLogger(e.stderr, cfg.Log)}, nil
}

// newLogger builds the process's logger: text or JSON on w. config.Load
// has validated the format and level.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

const sqlitePrefix = "sqlite://"

// sqlitePath returns the database file of a sqlite:// URL.
func sqlitePath(dbURL string) (string, bool) {
	p, ok := strings.CutPrefix(dbURL, sqlitePrefix)
	return p, ok
}

// openStore opens the database and brings its schema up to date. Migrate
// is idempotent, so every command that needs the database calls it rather
// than failing on a missing or outdated schema.
func (a *app) openStore(ctx context.Context) (*sqlstore.Store, error) {
	store, _, err := a.migrate(ctx)
	return store, err
}

// withStore opens (and migrates) the store, runs fn and closes the store.
func (a *app) withStore(ctx context.Context, fn func(ctx context.Context, store storage.Store) error) error {
	store, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(ctx, store)
}

// migrate opens the database (creating SQLite's file, see createPrivate), applies
// the migrations it lacks (sqlstore logs each) and returns their versions.
func (a *app) migrate(ctx context.Context) (*sqlstore.Store, []int, error) {
	dbURL := a.cfg.DatabaseURL()
	redacted := config.RedactURL(dbURL)
	if path, ok := sqlitePath(dbURL); ok {
		if err := createPrivate(path); err != nil {
			return nil, nil, fmt.Errorf("cannot create database: %w", err)
		}
	}
	store, err := sqlstore.Open(ctx, dbURL, sqlstore.Options{MaxOpenConns: a.cfg.Database.MaxOpenConns, Logger: a.log})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open database %s: %s", redacted, oneLine(err.Error()))
	}
	applied, err := store.Migrate(ctx)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("database %s: %s", redacted, oneLine(err.Error()))
	}
	return store, applied, nil
}

// createPrivate creates the SQLite database file, empty, readable by its
// owner only (0600, directory 0700) unless it exists: it holds password
// hashes, and SQLite gives its -wal and -shm files the database's mode.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// oneLine keeps a driver's multi-line message on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// masterSecret returns the master secret from which the signing-key
// encryption key and the refresh-token MAC key are derived: KEYTURN_SECRET
// if set, else the secret file. When generate is true, the database is
// SQLite and the file does not exist, it is created with a new random
// secret: the single-instance default needs no setup. Instances sharing a
// PostgreSQL database must share the secret, so there nothing is generated.
func (a *app) masterSecret(generate bool) ([]byte, error) {
	if a.cfg.Secret != "" {
		b, err := config.DecodeSecret([]byte(a.cfg.Secret))
		if err != nil {
			return nil, usageErrorf("KEYTURN_SECRET: %w", err)
		}
		return b, nil
	}
	path := a.cfg.SecretPath()
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		b, err := config.DecodeSecret(raw)
		if err != nil {
			return nil, usageErrorf("secret file %s: %w", path, err)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cannot read secret file: %w", err)
	}
	_, sqlite := sqlitePath(a.cfg.DatabaseURL())
	switch {
	case !sqlite:
		return nil, usageErrorf("secret file %s does not exist: instances sharing a PostgreSQL database must share one master secret; set KEYTURN_SECRET or secret_file (32+ random bytes, base64)", path)
	case !generate:
		return nil, usageErrorf("secret file %s does not exist: set KEYTURN_SECRET or secret_file, or run `keyturn serve` once to generate it", path)
	}
	b, err := writeNewSecret(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create secret file: %w", err)
	}
	a.log.Info("generated master secret; keep this file safe and back it up with the database", "path", path)
	return b, nil
}

// writeNewSecret writes a new random secret to path (base64, mode 0600),
// creating its directory (0700). It never overwrites an existing file.
func writeNewSecret(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, keys.MinSecretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(b) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, err
	}
	return b, nil
}

// keys loads (on first start: generates) the signing keys. log, if not
// nil, hears when a key is found revoked (serve's, not the keys commands').
func (a *app) keys(ctx context.Context, store storage.SigningKeys, secret []byte, log *slog.Logger) (*keys.Keys, error) {
	k, err := keys.New(ctx, store, secret, keys.Options{
		Algorithm:         a.cfg.Keys.Algorithm,
		IDTokenAlgorithms: idTokenAlgorithms(a.cfg.Clients),
		RotationDelay:     a.cfg.Keys.RotationDelay,
		// A superseded key stays published as long as any access token can
		// live: the longest lifetime a client may be given, so a client
		// reload that lengthens lifetimes cannot outrun it.
		MaxTokenTTL: clients.MaxAccessTokenTTL,
		Log:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load signing keys: %w", err)
	}
	return k, nil
}

// idTokenAlgorithms are the algorithms the clients' ID tokens are signed
// with: RS256 always (OpenID Connect Core §15.1: the default, and what a
// client added by a reload most likely asks for), and each client's
// id_token_signed_response_alg. Each gets a lineage of signing keys.
func idTokenAlgorithms(specs []clients.Spec) []string {
	algs := []string{clients.DefaultIDTokenAlg}
	for _, s := range specs {
		if alg := s.IDTokenSignedResponseAlg; alg != "" && !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
	}
	return algs
}

// randomToken returns n random bytes, base64url without padding: safe in a
// URL, a form value and HTTP Basic credentials without escaping.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/keyturn/keyturn/storage/sqlstore"
)

// HTTP server limits. Token requests are small form posts; nothing the
// server answers is slow or large.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

func (e *env) serveCommand() *cobra.Command {
	var demo bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Long: `Run the authorization server until SIGINT or SIGTERM.

The database schema is migrated on start. Every cleanup.interval, expired
sessions, denylist entries and login throttles are deleted (0: never; run
'keyturn cleanup' from cron instead). With SQLite and no KEYTURN_SECRET,
the master secret is generated into secret_file on first start; with
PostgreSQL it must be given (all instances share it).

--demo adds a client "demo" (in memory, for this run only) and a user "demo"
with a new random password, and prints both with curl commands to try them.
It also adds "demo-app", a public third-party client, and prints an
authorization URL (code flow with PKCE) to open in a browser; its redirect
URI is a page this server serves in demo mode only, which shows the code and
the curl that exchanges it. It refuses a database that has users of its own, and deletes the demo user
(revoking its sessions) when it stops; a serve without --demo deletes a demo
user left behind by a demo that did not stop.`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return e.serve(cmd.Context(), demo) }),
	}
	c.Flags().BoolVar(&demo, "demo", false, "add demo clients and a demo user and print how to use them")
	return c
}

func (e *env) serve(ctx context.Context, demo bool) error {
	a, err := e.load()
	if err != nil {
		return err
	}
	// The one hashing budget of the process: logins and client secret
	// checks share it, and the memory limit and processor reservation
	// follow from its size.
	hashes := passhash.NewLimiter(a.cfg.Login.MaxConcurrentHashes, a.cfg.Login.MaxQueuedHashes)
	memLimit := setProcessLimits(hashes, a.cfg.Login.HashProcessors == config.HashProcessorsShared, e.lookupEnv)
	var creds *demoCredentials
	if demo {
		if creds, err = addDemoClient(&a.cfg); err != nil {
			return err
		}
	}
	// Everything the config and environment can get wrong fails before the
	// database is touched.
	reg, err := clients.NewWithSlowChecks(a.cfg.Clients, a.cfg.ClientDefaults(), e.lookupEnv, clients.SlowChecks{Limiter: hashes})
	if err != nil {
		return usageError(err)
	}
	secret, err := a.masterSecret(true)
	if err != nil {
		return err
	}
	tlsConfig, err := loadTLS(a.cfg.TLS)
	if err != nil {
		return err
	}
	store, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	stopDemo, err := a.demoUser(ctx, store, creds)
	if err != nil {
		return err
	}
	defer stopDemo()
	keys, err := a.keys(ctx, store, secret, a.log)
	if err != nil {
		return err
	}
	handler, err := server.New(a.serverOptions(store, reg, keys, hashes))
	if err != nil {
		return err
	}
	var public http.Handler = handler
	if creds != nil {
		public = withDemoCallback(handler, creds.app)
	}
	listeners, err := e.listen(ctx, a, handler, public, tlsConfig)
	for _, l := range listeners {
		defer l.ln.Close()
	}
	if err != nil {
		return err
	}
	a.log.Info("listening", "addr", listeners[0].ln.Addr().String(), "tls", tlsConfig != nil,
		"issuer", a.cfg.Issuer, "clients", reg.IDs(), "memory_limit_mib", memLimit>>20)
	if len(listeners) > 1 {
		a.log.Info("admin listening", "addr", listeners[1].ln.Addr().String())
	}
	if creds != nil {
		// Before any request is served: the callback page reads it.
		creds.app.bind(listeners[0].ln.Addr(), tlsConfig != nil)
		printDemo(e.stdout, a.cfg.Issuer, creds)
	}
	// The sweeper, the reloader and the key watcher stop with ctx; the
	// store is closed only after they have.
	defer e.startBackground(ctx, a, store, handler, keys, hashes, creds)()
	return a.serveUntilDone(ctx, listeners)
}

// demoUser creates the demo's user (creds non-nil) or removes one a demo
// left behind, and returns what deletes the demo's user when serve stops.
func (a *app) demoUser(ctx context.Context, store storage.Store, creds *demoCredentials) (stop func(), err error) {
	if creds == nil {
		return func() {}, removeLeftoverDemoUser(ctx, store, a.log)
	}
	stop, err = startDemoUser(ctx, store, creds, a.log)
	if err != nil {
		return nil, err
	}
	a.log.Warn("demo mode: client and user \"demo\" exist until this server stops; do not use in production")
	return stop, nil
}

// serverOptions is the server's configuration from the loaded config.
func (a *app) serverOptions(store *sqlstore.Store, reg *clients.Registry, keys *keys.Keys, hashes *passhash.Limiter) server.Options {
	l := a.cfg.Login
	return server.Options{
		Issuer:  a.cfg.Issuer,
		Store:   store,
		Clients: reg,
		Keys:    keys,
		Logger:  a.log,
		Hashes:  hashes,
		Login: server.LoginOptions{
			Options: throttle.Options{
				FreeFailures: l.FreeFailures, BaseDelay: l.BaseDelay, MaxDelay: l.MaxDelay,
				FailureWindow: l.FailureWindow,
				UserFailures:  l.UserFailures, AddressFailures: l.AddressFailures,
				KnownAddressTTL: l.KnownAddressTTL, KnownAddresses: l.KnownAddresses,
			},
			TrustedProxies: l.TrustedPrefixes(),
		},
		Authorize: server.AuthorizeOptions{
			CodeTTL:           a.cfg.Authorize.CodeTTL,
			BrowserSessionTTL: a.cfg.Authorize.BrowserSessionTTL,
			ProductName:       a.cfg.Pages.ProductName,
			Logo:              a.cfg.Pages.Logo,
		},
		RequestTimeout: a.cfg.Database.Timeout,
		Ready:          schemaCurrent(store),
		Collectors:     processCollectors(store.DB()),
		SeparateAdmin:  a.cfg.AdminListen != "",
	}
}

// listen opens the public listener (serving public, which is handler or
// wraps it) and, with admin_listen, the admin one.
// Listening before serving makes a busy port one clear error, and lets the
// log show the actual address (listen: 127.0.0.1:0). The listeners it
// returns are open even with an error, for the caller to close.
func (e *env) listen(ctx context.Context, a *app, handler *server.Server, public http.Handler, tlsConfig *tls.Config) ([]*listener, error) {
	all := []*listener{{addr: a.cfg.Listen, handler: public, tls: tlsConfig}}
	if a.cfg.AdminListen != "" {
		all = append(all, &listener{addr: a.cfg.AdminListen, handler: handler.AdminHandler()})
	}
	var open []*listener
	for _, l := range all {
		if err := l.listen(ctx, a.log); err != nil {
			return open, err
		}
		open = append(open, l)
		if e.onServer != nil {
			e.onServer(l.srv)
		}
	}
	return open, nil
}

// startBackground starts the sweeper (every cleanup.interval; 0: never),
// the clients' reloader and the key watcher, and returns what stops them
// and waits until they have.
func (e *env) startBackground(ctx context.Context, a *app, store storage.Store, handler *server.Server, keys *keys.Keys, hashes *passhash.Limiter, creds *demoCredentials) (stop func()) {
	var background sync.WaitGroup
	bgCtx, cancel := context.WithCancel(ctx)
	if a.cfg.Cleanup.Interval > 0 {
		background.Go(func() { a.cleaner(store).Run(bgCtx, a.cfg.Cleanup.Interval) })
	}
	background.Go(func() { e.reloadClients(bgCtx, a.log, handler, keys, hashes, creds) })
	background.Go(func() { keys.Watch(bgCtx) })
	return func() {
		cancel()
		background.Wait()
	}
}

// serveUntilDone serves on every listener until ctx is done (or one
// fails), then stops accepting and lets in-flight requests finish within
// shutdown_timeout.
func (a *app) serveUntilDone(ctx context.Context, listeners []*listener) error {
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { served <- l.serve() }()
	}
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "deadline", a.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	for _, l := range listeners {
		if err := l.srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	for range listeners {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	a.log.Info("stopped")
	return nil
}

// listener is one HTTP listener of serve: the public one, or the admin one.
type listener struct {
	addr    string
	handler http.Handler
	tls     *tls.Config
	ln      net.Listener
	srv     *http.Server
}

func (l *listener) listen(ctx context.Context, log *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", l.addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err // "bind: address already in use", without the address again
		}
		return fmt.Errorf("cannot listen on %s: %w", l.addr, err)
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         l.tls,
	}
	return nil
}

func (l *listener) serve() error {
	if l.tls != nil {
		return l.srv.ServeTLS(l.ln, "", "") // the certificate is in TLSConfig
	}
	return l.srv.Serve(l.ln)
}

// reloadClients re-reads the configuration on every SIGHUP and swaps in
// its clients. A file with any problem changes nothing: every problem is
// logged and the running clients stay. Only the clients are reloaded
// (with the tokens.* defaults they inherit); other settings need a restart.
// An ID-token algorithm no client used before gets its signing key before
// the clients are swapped in, so no client is served without the key it
// needs.
func (e *env) reloadClients(ctx context.Context, log *slog.Logger, srv *server.Server, ks *keys.Keys, hashes *passhash.Limiter, demo *demoCredentials) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.hangup:
		}
		cfg, err := config.Load(e.configPath, e.lookupEnv)
		var reg *clients.Registry
		if err == nil && demo != nil {
			cfg.Clients = append(cfg.Clients, demo.specs...)
		}
		if err == nil {
			reg, err = clients.NewWithSlowChecks(cfg.Clients, cfg.ClientDefaults(), e.lookupEnv, clients.SlowChecks{Limiter: hashes})
		}
		if err == nil {
			if err = ks.Ensure(ctx, idTokenAlgorithms(cfg.Clients)); err != nil {
				err = fmt.Errorf("ID-token signing keys: %w", err)
			}
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				log.Error("reload refused", "problem", line)
			}
			log.Error("reload refused; the current clients stay")
			continue
		}
		srv.SetClients(reg)
	}
}

// demoCredentials are the demo client's and user's plaintext credentials.
// They exist only in this process (and on stdout, once); the config gets
// the secret's hash and the database the password's. app is the demo's
// third-party client, demo-app.
type demoCredentials struct {
	ClientID, ClientSecret string
	Username, Password     string
	app                    *demoApp
	specs                  []clients.Spec // the demo's clients, re-added on reload
}

const demoName = "demo"

// demoUserID marks the user --demo creates. No ID the users commands make
// (randomToken(16): 22 characters) can equal it, so a user an admin named
// "demo" is never taken for the demo's.
const demoUserID = "keyturn-demo"

// addDemoClient appends the demo's clients, demo and demo-app, to cfg.Clients.
func addDemoClient(cfg *config.Config) (*demoCredentials, error) {
	for _, id := range []string{demoName, demoAppID} {
		if slices.ContainsFunc(cfg.Clients, func(s clients.Spec) bool { return s.ID == id }) {
			return nil, usageErrorf("--demo: the config already has a client %q; remove it or run without --demo", id)
		}
	}
	secret, hash, err := clients.Generate()
	if err != nil {
		return nil, err
	}
	password, err := randomToken(18)
	if err != nil {
		return nil, err
	}
	spec := clients.Spec{
		ID:            demoName,
		SecretHash:    hash,
		GrantTypes:    []string{clients.GrantPassword, clients.GrantRefreshToken, clients.GrantClientCredentials},
		Scopes:        []string{"read", "write"},
		DefaultScopes: []string{"read"},
		Introspect:    true,
		Resources:     cfg.Tokens.Audience, // it may introspect the tokens it gets
	}
	app, err := newDemoApp(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	specs := []clients.Spec{spec, demoAppSpec()}
	cfg.Clients = append(cfg.Clients, specs...)
	return &demoCredentials{ClientID: demoName, ClientSecret: secret, Username: demoName, Password: password, app: app, specs: specs}, nil
}

// startDemoUser creates the demo's user, on a database with no other user:
// a demo must neither sit next to real accounts nor take over a real user
// who happens to be called demo. A demo user left behind by a demo that did
// not stop is replaced. The returned stop deletes the user, which revokes
// its sessions (so its printed password opens nothing once the demo ends);
// if it never runs (a crash), the next serve deletes the user
// (removeLeftoverDemoUser).
func startDemoUser(ctx context.Context, store storage.Users, creds *demoCredentials, log *slog.Logger) (stop func(), err error) {
	users, err := store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo user: %w", err)
	}
	others := 0
	for _, u := range users {
		if u.ID != demoUserID {
			others++
		}
	}
	if others > 0 {
		return nil, usageErrorf("--demo: the database has users (%d); run the demo on a database of its own (another data_dir or database.url)", others)
	}
	hash, err := passhash.Hash(creds.Password, passhash.Default)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if len(users) > 0 { // left by a demo that did not stop
		if err := store.DeleteUser(ctx, creds.Username, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("demo user: %w", err)
		}
	}
	err = store.CreateUser(ctx, storage.User{ID: demoUserID, Username: creds.Username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return nil, fmt.Errorf("demo user: %w", err)
	}
	return func() {
		// The serve context is done by now; the deletion still gets its time.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := store.DeleteUser(dctx, creds.Username, time.Now().UTC()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			log.Error("demo user not deleted; the next serve deletes it", "err", err)
			return
		}
		log.Info("demo user deleted and its sessions revoked")
	}, nil
}

// removeLeftoverDemoUser deletes (and so logs out) the user of a demo that
// did not stop cleanly, before a non-demo serve serves anyone: its password
// was printed, and the demo's promise is that it opens nothing afterwards.
func removeLeftoverDemoUser(ctx context.Context, store storage.Users, log *slog.Logger) error {
	u, err := store.GetUser(ctx, demoUserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	if err := store.DeleteUser(ctx, u.Username, time.Now().UTC()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("demo user: %w", err)
	}
	log.Warn("removed the demo user left by a serve --demo that did not stop, and revoked its sessions")
	return nil
}

// printDemo prints the demo credentials and copy-pasteable curl commands.
// The secret and password are base64url, so they need no escaping in
// -u or in a form value.
func printDemo(w io.Writer, issuer string, c *demoCredentials) {
	base := strings.TrimSuffix(issuer, "/")
	token := base + server.PathToken
	auth := c.ClientID + ":" + c.ClientSecret
	fmt.Fprintf(w, `
Keyturn demo. The client and the user exist until this server stops (the
user is then deleted); the password is new on every start. Both are shown
only here.

  issuer:         %s
  client id:      %s
  client secret:  %s
  username:       %s
  password:       %s

Log in (password grant):
  curl -s -u %s -d grant_type=password -d username=%s -d 'password=%s' %s

Refresh (put the refresh_token from the login in REFRESH_TOKEN):
  curl -s -u %s -d grant_type=refresh_token -d refresh_token=REFRESH_TOKEN %s

Client credentials grant:
  curl -s -u %s -d grant_type=client_credentials %s

Introspect an access token (the demo client may; RFC 7662):
  curl -s -u %s -d token=ACCESS_TOKEN %s%s

Log out (revoke the refresh token and its whole session; RFC 7009):
  curl -s -u %s -d token=REFRESH_TOKEN %s%s

%s
Metadata and signing keys:
  curl -s %s%s
  curl -s %s%s

`, issuer, c.ClientID, c.ClientSecret, c.Username, c.Password,
		auth, c.Username, c.Password, token,
		auth, token,
		auth, token,
		auth, base, server.PathIntrospect,
		auth, base, server.PathRevoke,
		c.app.instructions(c.Username),
		base, server.PathMetadata,
		base, server.PathJWKS)
}

// schemaCurrent is the readiness check: the database answers and its
// schema is the one this binary migrates to.
func schemaCurrent(store *sqlstore.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		current, latest, err := store.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if current != latest {
			return fmt.Errorf("database schema version %d, want %d", current, latest)
		}
		return nil
	}
}

// loadTLS loads the certificate for listening with TLS (nil: plain HTTP,
// for a TLS-terminating proxy in front). TLS 1.2 is the floor (RFC 9325).
func loadTLS(c config.TLS) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, usageErrorf("tls: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/server/throttle"
	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/keyturn/keyturn/storage/sqlstore"
)

// Environment of TestServeForProfile.
const (
	envProfileConfig  = "KEYTURN_BENCH_PROFILE_CONFIG"  // a keyturn config file
	envProfileSeconds = "KEYTURN_BENCH_PROFILE_SECONDS" // how long to serve, at most
	envProfileOut     = "KEYTURN_BENCH_PROFILE_OUT"     // profile files: OUT.cpu.pprof, OUT.allocs-start.pprof, OUT.allocs.pprof
)

// TestServeForProfile is not a test: it is Keyturn's server with pprof, in
// this test binary, for keyturn-bench (another process) to drive while it
// is profiled; Keyturn itself exposes no pprof. run.sh uses it for
// BENCHMARKS.md:
//
//	go test -c -o profserve.test ./cmd/keyturn-bench
//	KEYTURN_BENCH_PROFILE_CONFIG=bench.yaml KEYTURN_BENCH_PROFILE_SECONDS=60 KEYTURN_BENCH_PROFILE_OUT=refresh \
//	  ./profserve.test -test.run '^TestServeForProfile$' & pid=$!
//	keyturn-bench -scenario refresh -c 16 -d 15s -pid $pid -signal-after-setup ...
//	kill $pid; wait $pid
//	go tool pprof -top profserve.test refresh.cpu.pprof
//	go tool pprof -top -sample_index=alloc_space -base refresh.allocs-start.pprof profserve.test refresh.allocs.pprof
//
// The profiles cover the measured run only: SIGUSR1 (keyturn-bench
// -signal-after-setup, once its setup logins are done) starts the CPU
// profile and snapshots the allocation profile; the end (SIGTERM, SIGINT
// or the time limit) stops and writes them. It wires the server from the
// config file as `keyturn serve` does (same store, keys, clients, login
// bounds, request timeout, log and HTTP timeouts; no TLS, admin listener,
// metrics pool collector or client reload, which are off the request
// path). Without the environment it skips.
func TestServeForProfile(t *testing.T) {
	path := os.Getenv(envProfileConfig)
	if path == "" {
		t.Skip("set " + envProfileConfig + ", " + envProfileSeconds + " and " + envProfileOut + " to serve for a profile; see run.sh")
	}
	secs, err := strconv.Atoi(os.Getenv(envProfileSeconds))
	if err != nil || secs < 1 || secs > 900 {
		t.Fatalf("%s: want 1 to 900 seconds", envProfileSeconds)
	}
	out := os.Getenv(envProfileOut)
	if out == "" {
		t.Fatalf("%s: want a file name prefix", envProfileOut)
	}
	ctx, stop := signal.NotifyContext(t.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second)
	defer cancel()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	var cpuFile *os.File // non-nil while profiling
	defer func() {
		if cpuFile == nil {
			t.Errorf("no SIGUSR1 came: no profile written (run keyturn-bench with -signal-after-setup)")
			return
		}
		pprof.StopCPUProfile()
		if err := cpuFile.Close(); err != nil {
			t.Error(err)
		}
		writeAllocs(t, out+".allocs.pprof")
	}()

	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	// The log as keyturn serve writes it (format and level from the config;
	// at info, an access-log line per request), so its cost is profiled too.
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	var log *slog.Logger
	if cfg.Log.Format == "json" {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	} else {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	l := cfg.Login
	// One hashing budget for logins and client checks, and the process
	// settings that follow from it, as serve does.
	hashes := passhash.NewLimiter(l.MaxConcurrentHashes, l.MaxQueuedHashes)
	if l.HashProcessors != config.HashProcessorsShared {
		hashes.SpareProcessor()
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(hashes.MemoryLimit())
	}
	reg, err := clients.NewWithSlowChecks(cfg.Clients, cfg.ClientDefaults(), os.LookupEnv, clients.SlowChecks{Limiter: hashes})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := config.DecodeSecret([]byte(cfg.Secret))
	if err != nil {
		t.Fatalf("KEYTURN_SECRET: %v", err)
	}
	store, err := sqlstore.Open(ctx, cfg.DatabaseURL(), sqlstore.Options{MaxOpenConns: cfg.Database.MaxOpenConns})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := keys.New(ctx, store, secret, keys.Options{
		Algorithm: cfg.Keys.Algorithm, RotationDelay: cfg.Keys.RotationDelay, MaxTokenTTL: clients.MaxAccessTokenTTL, // as serve does
	})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := server.New(server.Options{
		Issuer: cfg.Issuer, Store: store, Clients: reg, Keys: keys, Logger: log, Hashes: hashes,
		Login: server.LoginOptions{
			Options: throttle.Options{
				FreeFailures: l.FreeFailures, BaseDelay: l.BaseDelay, MaxDelay: l.MaxDelay,
				FailureWindow: l.FailureWindow,
			},
			TrustedProxies: l.TrustedPrefixes(),
		},
		RequestTimeout: cfg.Database.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("serving on %s for up to %ds", ln.Addr(), secs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-usr1:
			if cpuFile != nil {
				continue
			}
			writeAllocs(t, out+".allocs-start.pprof")
			f, err := os.Create(out + ".cpu.pprof")
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				t.Fatal(err)
			}
			cpuFile = f
			t.Logf("profiling")
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("serve: %v", err)
	}
}

// writeAllocs writes the allocation profile (cumulative since the start;
// compare two with pprof -base).
func writeAllocs(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

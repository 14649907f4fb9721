package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage/sqlstore/sqlstoretest"
)

// testSecret is a valid KEYTURN_SECRET: base64 of 32 bytes.
const testSecret = "dGhpcnR5LXR3byBieXRlcyBvZiB0ZXN0IHNlY3JldCE="

// cli runs keyturn in-process against a config file and database of its
// own, with an environment that is a map, not the process's.
type cli struct {
	t      *testing.T
	dir    string
	config string            // path of the config file
	env    map[string]string // the environment run sees
	hangup chan os.Signal    // what serve, started by start, takes as SIGHUP
	// onServer, if set before start, sees each HTTP server serve builds.
	onServer func(*http.Server)
}

// forEachDatabase runs fn against a fresh SQLite database and, when
// KEYTURN_TEST_DATABASE_URL is set, a fresh PostgreSQL schema (the
// subtest is named Postgres, so CI notices if it is skipped).
func forEachDatabase(t *testing.T, fn func(t *testing.T, c *cli)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, newCLI(t, "")) })
	t.Run("Postgres", func(t *testing.T) {
		c := newCLI(t, sqlstoretest.PostgresURL(t))
		// Instances sharing PostgreSQL get the secret from outside.
		c.env["KEYTURN_SECRET"] = testSecret
		fn(t, c)
	})
}

// newCLI writes a config file under t.TempDir() with the database dbURL
// ("" for SQLite under the data directory) and JSON logs.
func newCLI(t *testing.T, dbURL string) *cli {
	t.Helper()
	dir := t.TempDir()
	c := &cli{t: t, dir: dir, config: filepath.Join(dir, "keyturn.yaml"), env: map[string]string{}, hangup: make(chan os.Signal, 1)}
	yaml := fmt.Sprintf(`issuer: http://127.0.0.1:8080
listen: 127.0.0.1:0
data_dir: %s
log:
  format: json
`, filepath.Join(dir, "data"))
	if dbURL != "" {
		yaml += fmt.Sprintf("database:\n  url: %q\n", dbURL)
	}
	c.writeConfig(yaml)
	return c
}

func (c *cli) writeConfig(yaml string) {
	c.t.Helper()
	if err := os.WriteFile(c.config, []byte(yaml), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cli) lookupEnv(name string) (string, bool) {
	v, ok := c.env[name]
	return v, ok
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs keyturn with args and --config, stdin as standard input.
func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	// The config flag goes last, or before "--": after it, it would be
	// an argument.
	at := slices.Index(args, "--")
	if at < 0 {
		at = len(args)
	}
	args = slices.Concat(args[:at:at], []string{"--config", c.config}, args[at:])
	code := run(c.t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, c.lookupEnv)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// want fails the test unless the command exited with code.
func (c *cli) want(code int, stdin string, args ...string) result {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != code {
		c.t.Fatalf("keyturn %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// start runs keyturn in the background until the returned stop is called;
// stop returns the exit code. Its output streams are safe to read while it runs.
func (c *cli) start(args ...string) (stdout, stderr *syncBuffer, stop func() int) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(c.t.Context())
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	// The config flag goes last, or before "--": after it, it would be
	// an argument.
	at := slices.Index(args, "--")
	if at < 0 {
		at = len(args)
	}
	args = slices.Concat(args[:at:at], []string{"--config", c.config}, args[at:])
	env := maps.Clone(c.env)
	done := make(chan int, 1)
	go func() {
		done <- runWith(ctx, args, strings.NewReader(""), stdout, stderr, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}, c.hangup, c.onServer)
	}()
	var once sync.Once
	var code int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				c.t.Fatalf("keyturn %s did not stop\nstderr:\n%s", strings.Join(args, " "), stderr)
			}
		})
		return code
	}
	c.t.Cleanup(func() { stop() })
	// Fail fast if it exits on its own before the caller expects it.
	go func() {
		select {
		case code := <-done:
			done <- code
			stdout.closeWith(fmt.Sprintf("exited with %d", code))
			stderr.closeWith(fmt.Sprintf("exited with %d", code))
		case <-ctx.Done():
		}
	}()
	return stdout, stderr, stop
}

// syncBuffer is a goroutine-safe buffer whose readers can wait for text.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // receives after every write (capacity 1)
	closed  string        // why no more writes will come
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	b.notify()
	return n, err
}

func (b *syncBuffer) notify() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *syncBuffer) closeWith(reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = reason
	b.notify()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer's contents satisfy ok, and returns them.
func (b *syncBuffer) waitFor(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		b.mu.Lock()
		s, closed := b.buf.String(), b.closed
		b.mu.Unlock()
		if ok(s) {
			return s
		}
		if closed != "" {
			t.Fatalf("waiting for %s: keyturn %s; output:\n%s", what, closed, s)
		}
		select {
		case <-b.changed:
		case <-deadline:
			t.Fatalf("waiting for %s: timed out; output:\n%s", what, s)
		}
	}
}

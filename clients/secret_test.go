package clients

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyturn/keyturn/storage/passhash"
)

// countingRegistry builds a registry whose argon2id verifications are
// counted.
func countingRegistry(t *testing.T, specs []Spec, vars map[string]string) (*Registry, *atomic.Int64) {
	t.Helper()
	r, err := New(specs, testDefaults(), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	r.slow().verifyHash = func(encoded, secret string) (bool, error) {
		n.Add(1)
		return passhash.Verify(encoded, secret)
	}
	return r, &n
}

func TestAuthenticate(t *testing.T) {
	generated, generatedHash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	specs := []Spec{
		with(app("generated"), func(s *Spec) { s.SecretHash = generatedHash }),
		with(app("env"), func(s *Spec) { s.SecretHash, s.SecretEnv = "", "ENV_SECRET" }),
		with(app("human"), func(s *Spec) { s.SecretHash = fastHash(t, "correct horse") }),
		with(app("spa"), func(s *Spec) { s.SecretHash, s.Public = "", true }),
	}
	r, verifications := countingRegistry(t, specs, map[string]string{"ENV_SECRET": "from the environment"})

	tests := []struct {
		name, id, secret string
		ok               bool
		argon2           int64 // argon2id verifications expected
	}{
		{"generated", "generated", generated, true, 0},
		{"generated wrong", "generated", generated + "x", false, 0},
		{"generated empty", "generated", "", false, 0},
		{"env", "env", "from the environment", true, 0},
		{"env wrong", "env", "from the environment ", false, 0},
		{"argon2id", "human", "correct horse", true, 1},
		{"argon2id wrong", "human", "correct horsE", false, 1},
		{"argon2id empty", "human", "", false, 1},
		{"public", "spa", "", false, 0},
		{"public with secret", "spa", "anything", false, 0},
		{"unknown", "nobody", "correct horse", false, 0},
		{"unknown empty id", "", "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := verifications.Load()
			c, err := r.Authenticate(t.Context(), tt.id, tt.secret)
			switch {
			case tt.ok && (err != nil || c == nil || c.ID != tt.id):
				t.Errorf("Authenticate = %v, %v; want client %q", c, err, tt.id)
			case !tt.ok && (c != nil || err != ErrInvalidClient):
				t.Errorf("Authenticate = %v, %v; want nil, ErrInvalidClient", c, err)
			}
			if n := verifications.Load() - before; n != tt.argon2 {
				t.Errorf("%d argon2id verifications, want %d", n, tt.argon2)
			}
		})
	}
}

func TestAuthenticateCachesArgon2(t *testing.T) {
	r, verifications := countingRegistry(t, []Spec{
		with(app("human"), func(s *Spec) { s.SecretHash = fastHash(t, "correct horse") }),
		with(app("other"), func(s *Spec) { s.SecretHash = fastHash(t, "battery staple") }),
	}, nil)
	steps := []struct {
		id, secret string
		ok         bool
		total      int64 // argon2id verifications so far
	}{
		{"human", "wrong", false, 1},         // failures are not cached...
		{"human", "wrong", false, 2},         // ...so every wrong guess pays
		{"human", "correct horse", true, 3},  // the first success pays
		{"human", "correct horse", true, 3},  // and is cached
		{"human", "correct horse", true, 3},  //
		{"human", "wrong", false, 4},         // a wrong secret still pays
		{"human", "correct horse", true, 4},  // and does not evict the cache
		{"other", "correct horse", false, 5}, // caches are per client
		{"other", "battery staple", true, 6}, //
		{"other", "battery staple", true, 6}, //
		{"human", "correct horse", true, 6},  //
	}
	for i, s := range steps {
		c, err := r.Authenticate(t.Context(), s.id, s.secret)
		if ok := err == nil && c != nil; ok != s.ok {
			t.Errorf("step %d: Authenticate(%q) = %v, %v; want ok %v", i, s.id, c, err, s.ok)
		}
		if n := verifications.Load(); n != s.total {
			t.Errorf("step %d: %d argon2id verifications so far, want %d", i, n, s.total)
		}
	}
}

func TestAuthenticateHashError(t *testing.T) {
	r, err := New([]Spec{with(app("human"), func(s *Spec) { s.SecretHash = fastHash(t, "pw") })}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("broken")
	r.slow().verifyHash = func(string, string) (bool, error) { return false, broken }
	if _, err := r.Authenticate(t.Context(), "human", "pw"); !errors.Is(err, broken) || errors.Is(err, ErrInvalidClient) {
		t.Fatalf("Authenticate = %v, want the verification error, not ErrInvalidClient", err)
	}
}

// TestAuthenticateConcurrent is for the race detector: the argon2id cache
// is written by concurrent requests.
func TestAuthenticateConcurrent(t *testing.T) {
	generated, generatedHash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := countingRegistry(t, []Spec{
		with(app("human"), func(s *Spec) { s.SecretHash = fastHash(t, "correct horse") }),
		with(app("generated"), func(s *Spec) { s.SecretHash = generatedHash }),
	}, nil)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			for range 20 {
				if _, err := r.Authenticate(t.Context(), "human", "correct horse"); err != nil {
					failures.Add(1)
				}
				if _, err := r.Authenticate(t.Context(), "generated", generated); err != nil {
					failures.Add(1)
				}
				if _, err := r.Authenticate(t.Context(), "human", fmt.Sprint("wrong", i)); err == nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d wrong answers under concurrency", n)
	}
}

func TestGenerate(t *testing.T) {
	s1, h1, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	s2, h2, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s2 || h1 == h2 {
		t.Fatal("two generated secrets are equal")
	}
	raw, err := b64url.DecodeString(s1)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q is not 32 bytes of base64url without padding: %v", s1, err)
	}
	d := sha256.Sum256([]byte(s1))
	if want := "sha256:" + b64url.EncodeToString(d[:]); h1 != want {
		t.Fatalf("hash = %q, want %q", h1, want)
	}
	if err := Validate([]Spec{with(app("web"), func(s *Spec) { s.SecretHash = h1 })}); err != nil {
		t.Fatalf("generated hash does not validate: %v", err)
	}
}

func TestHashSecret(t *testing.T) {
	if _, err := HashSecret(""); err == nil {
		t.Fatal("HashSecret(\"\") succeeded")
	}
	h, err := HashSecret("correct horse") // passhash.Default: slow, so once
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$") || strings.Contains(h, "correct horse") {
		t.Fatalf("HashSecret = %q", h)
	}
	r, n := countingRegistry(t, []Spec{with(app("web"), func(s *Spec) { s.SecretHash = h })}, nil)
	if _, err := r.Authenticate(t.Context(), "web", "correct horse"); err != nil {
		t.Fatalf("Authenticate with a HashSecret hash: %v", err)
	}
	if n.Load() != 1 {
		t.Fatalf("%d argon2id verifications, want 1", n.Load())
	}
}

// TestNothingPrintsSecrets renders specs and clients every way a log line
// or an error might, and looks for the secrets and their digests.
func TestNothingPrintsSecrets(t *testing.T) {
	const (
		pasted  = "hunter2-pasted-into-secret-hash"
		human   = "correct horse"
		fromEnv = "secret-from-environment"
	)
	argon := fastHash(t, human)
	generated, generatedHash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	specs := []Spec{
		with(app("generated"), func(s *Spec) { s.SecretHash = generatedHash }),
		with(app("human"), func(s *Spec) { s.SecretHash = argon }),
		with(app("env"), func(s *Spec) { s.SecretHash, s.SecretEnv = "", "ENV_SECRET" }),
	}
	r, _ := countingRegistry(t, specs, map[string]string{"ENV_SECRET": fromEnv})
	if _, err := r.Authenticate(t.Context(), "human", human); err != nil { // fill the cache
		t.Fatal(err)
	}

	forbidden := []string{pasted, human, fromEnv, generated, strings.TrimPrefix(generatedHash, "sha256:"), "argon2id"}
	for _, s := range []string{human, fromEnv, generated} {
		d := sha256.Sum256([]byte(s))
		forbidden = append(forbidden, b64url.EncodeToString(d[:]), fmt.Sprintf("%x", d), fmt.Sprint(d[:4]))
	}

	var values []any
	for _, s := range append(specs, with(app("bad"), func(s *Spec) { s.SecretHash = pasted }),
		with(app("bad-list"), func(s *Spec) { s.SecretHashes = []string{generatedHash, pasted} })) {
		values = append(values, s, &s)
	}
	for _, id := range r.IDs() {
		c, _ := r.Get(id)
		values = append(values, c, *c)
	}
	values = append(values, r)

	for i, v := range values {
		var out strings.Builder
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", v)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
		out.Write(buf.Bytes())
		for _, f := range forbidden {
			if strings.Contains(out.String(), f) {
				t.Errorf("value %d (%T) printed %q:\n%s", i, v, f, out.String())
			}
		}
	}
}

// TestSlowChecksBounded: argon2id secret checks run in bounded slots; a
// check waits for a slot while its context lasts, and past the queue bound
// Authenticate answers ErrBusy at once instead of hashing.
func TestSlowChecksBounded(t *testing.T) {
	var hashes atomic.Int64
	lim := passhash.NewLimiter(2, 1)
	r, err := NewWithSlowChecks([]Spec{with(app("slow"), func(s *Spec) { s.SecretHash = fastHash(t, "chosen secret") })},
		testDefaults(), env(nil), SlowChecks{Limiter: lim, Verify: func(encoded, secret string) (bool, error) {
			hashes.Add(1)
			return passhash.Verify(encoded, secret)
		}})
	if err != nil {
		t.Fatal(err)
	}
	var held []func()
	for range lim.Slots() { // every slot taken (by logins, say)
		leave, err := lim.Admit()
		if err != nil {
			t.Fatal(err)
		}
		release, err := lim.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, func() { release(); leave() })
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Authenticate(cancelled, "slow", "wrong guess"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Authenticate whose request ended waiting = %v, want ErrBusy", err)
	}
	// One check waits for a slot (the queue holds one)...
	waiting := make(chan error, 1)
	go func() {
		_, err := r.Authenticate(t.Context(), "slow", "chosen secret")
		waiting <- err
	}()
	for lim.Admitted() != 3 {
		runtime.Gosched() // until it is queued
	}
	// ...a different one finds the queue full and is refused at once...
	if _, err := r.Authenticate(t.Context(), "slow", "another guess"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Authenticate with the queue full = %v, want ErrBusy", err)
	}
	if hashes.Load() != 0 {
		t.Fatalf("%d hashes with every slot taken", hashes.Load())
	}
	// ...and the waiting one runs once a slot is free.
	held[0]()
	if err := <-waiting; err != nil {
		t.Fatalf("Authenticate that waited for a slot: %v", err)
	}
	if hashes.Load() != 1 || lim.Admitted() != 1 {
		t.Fatalf("%d hashes, %d admitted; want 1, 1 (the slot still held)", hashes.Load(), lim.Admitted())
	}
	held[1]()
}

// TestIdenticalChecksShareOneHash: many concurrent checks of the same
// client with the same right secret (a resource server starting up) run
// one argon2id hash between them, even with one slow slot, and none is
// refused.
func TestIdenticalChecksShareOneHash(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var hashes atomic.Int64
	r, err := NewWithSlowChecks([]Spec{with(app("rs"), func(s *Spec) { s.SecretHash = fastHash(t, "chosen secret") })},
		testDefaults(), env(nil), SlowChecks{Limiter: passhash.NewLimiter(1, 1), Verify: func(encoded, secret string) (bool, error) {
			if hashes.Add(1) == 1 {
				close(started)
				<-release // hold the only slot while the others arrive
			}
			return passhash.Verify(encoded, secret)
		}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := r.Authenticate(t.Context(), "rs", "chosen secret")
			errs <- err
		})
	}
	<-started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Authenticate: %v", err)
		}
	}
	if h := hashes.Load(); h != 1 {
		t.Fatalf("%d argon2id hashes for %d identical checks, want 1", h, n)
	}
}

// TestSharedCheckOutlivesItsFirstRequest: a check that shares the run of
// another request is not refused when that request ends while waiting for
// a slot: it waits on, for as long as its own request lasts.
func TestSharedCheckOutlivesItsFirstRequest(t *testing.T) {
	lim := passhash.NewLimiter(1, 0)
	r, err := NewWithSlowChecks([]Spec{with(app("rs"), func(s *Spec) { s.SecretHash = fastHash(t, "chosen secret") })},
		testDefaults(), env(nil), SlowChecks{Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{}, 4)
	r.slow().joined = func() { joined <- struct{}{} }
	hold, err := lim.Acquire(t.Context()) // the only slot is taken
	if err != nil {
		t.Fatal(err)
	}
	first, cancel := context.WithCancel(t.Context())
	results := make(chan error, 2)
	go func() { _, err := r.Authenticate(first, "rs", "chosen secret"); results <- err }()
	<-joined // the first request runs the check, waiting for the slot
	go func() { _, err := r.Authenticate(t.Context(), "rs", "chosen secret"); results <- err }()
	<-joined // the second shares it
	cancel()
	if err := <-results; !errors.Is(err, ErrBusy) {
		t.Fatalf("the request that ended: %v, want ErrBusy", err)
	}
	select {
	case <-joined: // the second runs the check itself now...
	case err := <-results:
		t.Fatalf("the request sharing the check: %v, want it to wait on", err)
	}
	hold() // ...and gets the slot
	if err := <-results; err != nil {
		t.Fatalf("the request sharing the check: %v, want success", err)
	}
}

// TestAuthenticateRotation: a client with several secrets (secret_hash,
// secret_hashes, secret_env, secret_envs) is authenticated by any of them.
func TestAuthenticateRotation(t *testing.T) {
	r, verifications := countingRegistry(t, []Spec{with(app("web"), func(s *Spec) {
		s.SecretHash = ""
		s.SecretHashes = []string{fastHash(t, "new chosen"), SHA256Hash("old generated")}
		s.SecretEnv, s.SecretEnvs = "ENV_A", []string{"ENV_B"}
	})}, map[string]string{"ENV_A": "env a", "ENV_B": "env b"})
	for _, tt := range []struct {
		secret string
		ok     bool
		argon2 int64
	}{
		{"old generated", true, 0},
		{"env a", true, 0},
		{"env b", true, 0},
		{"new chosen", true, 1},
		{"new chosen", true, 0}, // cached
		{"wrong", false, 1},
		{"", false, 1},
	} {
		before := verifications.Load()
		c, err := r.Authenticate(t.Context(), "web", tt.secret)
		if ok := err == nil && c != nil && c.ID == "web"; ok != tt.ok {
			t.Errorf("Authenticate(%q) = %v, %v; want ok %v", tt.secret, c, err, tt.ok)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidClient) {
			t.Errorf("Authenticate(%q) = %v, want ErrInvalidClient", tt.secret, err)
		}
		if n := verifications.Load() - before; n != tt.argon2 {
			t.Errorf("Authenticate(%q): %d argon2id verifications, want %d", tt.secret, n, tt.argon2)
		}
	}
}

// TestAuthenticateAlternates: another reading of the presented secret (the
// Basic password as sent) is tried when the first fails, and costs no
// extra argon2id hash when it is the same string.
func TestAuthenticateAlternates(t *testing.T) {
	const secret = "a+b/c=" // what `openssl rand -base64` makes
	r, verifications := countingRegistry(t, []Spec{
		with(app("gen"), func(s *Spec) { s.SecretHash = SHA256Hash(secret) }),
		with(app("human"), func(s *Spec) { s.SecretHash = fastHash(t, secret) }),
	}, nil)
	for _, tt := range []struct {
		id, secret string
		alternates []string
		ok         bool
		argon2     int64
	}{
		{"gen", "a b/c=", []string{secret}, true, 0},
		{"gen", "a b/c=", []string{"a b/c="}, false, 0},
		{"human", "a b/c=", []string{secret}, true, 2},
		{"human", "wrong", []string{"wrong"}, false, 1}, // equal: hashed once
		{"human", "wrong", []string{"wrong", "wrong"}, false, 1},
		{"human", "a b/c=", []string{secret}, true, 0}, // the right one is cached now
		{"nobody", "a b/c=", []string{secret}, false, 0},
	} {
		before := verifications.Load()
		c, err := r.Authenticate(t.Context(), tt.id, tt.secret, tt.alternates...)
		if ok := err == nil && c != nil; ok != tt.ok {
			t.Errorf("Authenticate(%q, %q, %q) = %v, %v; want ok %v", tt.id, tt.secret, tt.alternates, c, err, tt.ok)
		}
		if n := verifications.Load() - before; n != tt.argon2 {
			t.Errorf("Authenticate(%q, %q, %q): %d argon2id verifications, want %d", tt.id, tt.secret, tt.alternates, n, tt.argon2)
		}
	}
}

package clients

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
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
	r.verifyHash = func(encoded, secret string) (bool, error) {
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
			c, err := r.Authenticate(tt.id, tt.secret)
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
		c, err := r.Authenticate(s.id, s.secret)
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
	r.verifyHash = func(string, string) (bool, error) { return false, broken }
	if _, err := r.Authenticate("human", "pw"); !errors.Is(err, broken) || errors.Is(err, ErrInvalidClient) {
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
				if _, err := r.Authenticate("human", "correct horse"); err != nil {
					failures.Add(1)
				}
				if _, err := r.Authenticate("generated", generated); err != nil {
					failures.Add(1)
				}
				if _, err := r.Authenticate("human", fmt.Sprint("wrong", i)); err == nil {
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
	if _, err := r.Authenticate("web", "correct horse"); err != nil {
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
	if _, err := r.Authenticate("human", human); err != nil { // fill the cache
		t.Fatal(err)
	}

	forbidden := []string{pasted, human, fromEnv, generated, strings.TrimPrefix(generatedHash, "sha256:"), "argon2id"}
	for _, s := range []string{human, fromEnv, generated} {
		d := sha256.Sum256([]byte(s))
		forbidden = append(forbidden, b64url.EncodeToString(d[:]), fmt.Sprintf("%x", d), fmt.Sprint(d[:4]))
	}

	var values []any
	for _, s := range append(specs, with(app("bad"), func(s *Spec) { s.SecretHash = pasted })) {
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

// TestSlowChecksBounded: argon2id secret checks are bounded; past the
// bound Authenticate answers ErrBusy at once instead of hashing.
func TestSlowChecksBounded(t *testing.T) {
	hash, err := HashSecret("chosen secret")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New([]Spec{with(app("slow"), func(s *Spec) { s.SecretHash = hash })}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for range cap(r.slowSlots) { // every slot taken
		r.slowSlots <- struct{}{}
	}
	if _, err := r.Authenticate("slow", "wrong guess"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Authenticate with every slot taken = %v, want ErrBusy", err)
	}
	<-r.slowSlots
	if _, err := r.Authenticate("slow", "chosen secret"); err != nil {
		t.Fatalf("Authenticate with a free slot: %v", err)
	}
}

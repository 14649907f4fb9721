package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/keyturn/keyturn/storage/passhash"
)

func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noEnv := func(string) (string, bool) { return "", false }

	three := passhash.NewLimiter(3, 0)
	if got := setMemoryLimit(three, noEnv); got != three.MemoryLimit() || debug.SetMemoryLimit(-1) != got {
		t.Errorf("setMemoryLimit(3 slots) = %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
	// An operator's GOMEMLIMIT wins: the runtime applied it at start.
	debug.SetMemoryLimit(1 << 40)
	env := func(k string) (string, bool) { return "1TiB", k == "GOMEMLIMIT" }
	if got := setMemoryLimit(passhash.NewLimiter(2, 0), env); got != 1<<40 || debug.SetMemoryLimit(-1) != 1<<40 {
		t.Errorf("with GOMEMLIMIT set: %d", got)
	}
}

// TestProcessLimitsSpareProcessor: by default serve's hashes bring one Go
// processor on top of the CPUs while they run, and none otherwise; with
// hash_processors: shared a running hash leaves GOMAXPROCS alone.
func TestProcessLimitsSpareProcessor(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noEnv := func(string) (string, bool) { return "", false }
	ctx := context.Background()

	shared := passhash.NewLimiter(4, 0)
	setProcessLimits(shared, true, noEnv)
	release, err := shared.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != passhash.CPUs() {
		t.Fatalf("shared, a hash running: GOMAXPROCS %d, want the CPUs, %d", got, passhash.CPUs())
	}
	release()

	own := passhash.NewLimiter(4, 0)
	if got := setProcessLimits(own, false, noEnv); got != own.MemoryLimit() {
		t.Fatalf("memory limit %d, want %d", got, own.MemoryLimit())
	}
	if got := runtime.GOMAXPROCS(0); got != passhash.CPUs() {
		t.Fatalf("own, no hash running: GOMAXPROCS %d, want the CPUs, %d", got, passhash.CPUs())
	}
	release, err = own.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := runtime.GOMAXPROCS(0), passhash.CPUs()+1; got != want {
		t.Fatalf("own, a hash running: GOMAXPROCS %d, want CPUs + 1 = %d", got, want)
	}
	release()
	if got := runtime.GOMAXPROCS(0); got != passhash.CPUs() {
		t.Fatalf("own, the hash done: GOMAXPROCS %d, want the CPUs, %d", got, passhash.CPUs())
	}
}

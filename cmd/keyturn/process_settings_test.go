package main

import (
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

// TestProcessLimitsReserveProcessors: by default serve gives each hash slot
// a Go processor of its own on top of the CPUs; with hash_processors:
// shared it leaves GOMAXPROCS alone. The reservation is process-wide and
// only grows, so the slot counts here are larger than any other test's
// (their default is one slot per CPU).
func TestProcessLimitsReserveProcessors(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noEnv := func(string) (string, bool) { return "", false }
	own, shared := passhash.CPUs()+8, passhash.CPUs()+16
	setProcessLimits(passhash.NewLimiter(shared, 0), true, noEnv)
	if got := runtime.GOMAXPROCS(0); got >= passhash.CPUs()+shared {
		t.Fatalf("shared: GOMAXPROCS %d, want below CPUs + %d", got, shared)
	}
	lim := passhash.NewLimiter(own, 0)
	if got := setProcessLimits(lim, false, noEnv); got != lim.MemoryLimit() {
		t.Fatalf("memory limit %d, want %d", got, lim.MemoryLimit())
	}
	if got, want := runtime.GOMAXPROCS(0), passhash.CPUs()+own; got != want {
		t.Fatalf("own: GOMAXPROCS %d, want CPUs + %d hash slots = %d", got, own, want)
	}
}

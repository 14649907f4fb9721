package main

import (
	"runtime/debug"
	"testing"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage/passhash"
)

func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noEnv := func(string) (string, bool) { return "", false }

	// Two hash slots of 19 MiB, twice over, plus the base: 124 MiB.
	if passhash.Default.Memory == 19*1024 {
		if got := server.MemoryLimit(2); got != 124<<20 {
			t.Errorf("MemoryLimit(2) = %d MiB, want 124", got>>20)
		}
	}
	if server.MemoryLimit(0) != server.MemoryLimit(passhash.CPUs()) || server.MemoryLimit(3) <= server.MemoryLimit(2) {
		t.Error("MemoryLimit does not follow the hash slots")
	}
	if got := setMemoryLimit(3, noEnv); got != server.MemoryLimit(3) || debug.SetMemoryLimit(-1) != got {
		t.Errorf("setMemoryLimit(3) = %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
	// An operator's GOMEMLIMIT wins: the runtime applied it at start.
	debug.SetMemoryLimit(1 << 40)
	env := func(k string) (string, bool) { return "1TiB", k == "GOMEMLIMIT" }
	if got := setMemoryLimit(2, env); got != 1<<40 || debug.SetMemoryLimit(-1) != 1<<40 {
		t.Errorf("with GOMEMLIMIT set: %d", got)
	}
}

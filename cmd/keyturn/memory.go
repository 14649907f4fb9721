package main

import (
	"runtime/debug"

	"github.com/keyturn/keyturn/server"
)

// setMemoryLimit sets the runtime's soft memory limit to server.MemoryLimit
// unless the operator set GOMEMLIMIT (which the runtime applied at start),
// and returns the limit in force.
func setMemoryLimit(hashSlots int, lookupEnv func(string) (string, bool)) int64 {
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := server.MemoryLimit(hashSlots)
	debug.SetMemoryLimit(limit)
	return limit
}

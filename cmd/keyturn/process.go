package main

import (
	"database/sql"
	"runtime/debug"

	"github.com/keyturn/keyturn/storage/passhash"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// setProcessLimits sets the process-wide runtime settings that follow from
// the one hashing budget, next to each other: the soft memory limit
// (setMemoryLimit) and, unless the processors are shared, one spare Go
// processor while hashes run (passhash.Limiter.SpareProcessor). Only serve
// calls it; no library constructor touches either. It returns the memory
// limit in force.
func setProcessLimits(hashes *passhash.Limiter, sharedProcessors bool, lookupEnv func(string) (string, bool)) int64 {
	if !sharedProcessors {
		hashes.SpareProcessor()
	}
	return setMemoryLimit(hashes, lookupEnv)
}

// setMemoryLimit sets the runtime's soft memory limit to the hashing
// budget's (passhash.Limiter.MemoryLimit) unless the operator set
// GOMEMLIMIT (which the runtime applied at start), and returns the limit in
// force.
func setMemoryLimit(hashes *passhash.Limiter, lookupEnv func(string) (string, bool)) int64 {
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := hashes.MemoryLimit()
	debug.SetMemoryLimit(limit)
	return limit
}

// processCollectors are the process-wide metrics /metrics shows beside the
// server's own: the Go runtime, the process (RSS, CPU, file descriptors)
// and the database pool (go_sql_*: open, in use, idle, waits).
func processCollectors(db *sql.DB) []prometheus.Collector {
	return []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db, "keyturn"),
	}
}

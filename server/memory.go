package server

import "github.com/keyturn/keyturn/storage/passhash"

// baseMemory is the Go memory Keyturn uses apart from password hashes: the
// heap of requests in flight, caches, keys and the runtime (40–60 MiB RSS
// under client_credentials and refresh load, BENCHMARKS.md).
const baseMemory = 48 << 20

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) for a
// server with hashSlots password-hash slots (LoginOptions.MaxConcurrentHashes;
// 0 means the default). Password hashes dominate the heap: each argon2id
// check allocates passhash.Default.Memory, and with the default GOGC the heap
// may grow to twice what is live before the collector runs, so a login
// flood reached 140–160 MiB RSS. The limit holds the heap to what the hash
// slots need twice over (the hashes in progress and the garbage of the ones
// just done), plus the base. It is soft: a heap that must be larger only
// makes the collector run more often.
func MemoryLimit(hashSlots int) int64 {
	if hashSlots <= 0 {
		hashSlots = passhash.CPUs()
	}
	return baseMemory + 2*int64(hashSlots)*int64(passhash.Default.Memory)<<10
}

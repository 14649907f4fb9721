package passhash

import (
	"context"
	"errors"
	"sync/atomic"
)

// Limiter is a process's one budget for argon2id checks: the password
// grant's logins and the client registry's secret checks share its slots,
// so no more hashes run at once than it has slots, whatever mix of them
// arrives. Its size is what the process's soft memory limit
// (MemoryLimit) is computed from; with SpareProcessor, its running hashes
// also bring the process one Go processor more than its CPUs. It is built once per process (by cmd) and safe for
// concurrent use.
//
// A hash is first admitted (Admit: at most slots + queue at once, the rest
// refused at once, before any other work), then takes a slot (Acquire,
// waiting for one while its context lasts).
type Limiter struct {
	slots       chan struct{}
	admitted    atomic.Int64
	maxAdmitted int64 // slots + queue places
	spare       bool  // SpareProcessor
}

// ErrBusy: every slot and queue place is taken, or a caller's context
// ended while it waited for a slot.
var ErrBusy = errors.New("passhash: too many hashes at once")

// NewLimiter returns a limiter running at most slots hashes at once (0
// means CPUs()) and admitting at most queue more to wait for a slot (0
// means 8 per slot).
func NewLimiter(slots, queue int) *Limiter {
	if slots <= 0 {
		slots = CPUs()
	}
	if queue <= 0 {
		queue = 8 * slots
	}
	return &Limiter{slots: make(chan struct{}, slots), maxAdmitted: int64(slots + queue)}
}

// SpareProcessor makes the limiter's running hashes bring the process one
// Go processor more than its CPUs (GOMAXPROCS = CPUs() + 1 while any runs),
// so that other requests find a processor no hash holds. Call it once,
// before the limiter is used; only the process's own budget (serve) does.
func (l *Limiter) SpareProcessor() { l.spare = true }

// Slots is how many hashes run at once.
func (l *Limiter) Slots() int { return cap(l.slots) }

// Admitted is how many hashes are admitted (running or waiting).
func (l *Limiter) Admitted() int { return int(l.admitted.Load()) }

// Admit lets one hash in, or refuses it at once (ErrBusy) when every slot
// and every queue place is taken. leave must be called when the caller is
// done, hashed or not.
func (l *Limiter) Admit() (leave func(), err error) {
	if l.admitted.Add(1) > l.maxAdmitted {
		l.admitted.Add(-1)
		return nil, ErrBusy
	}
	return func() { l.admitted.Add(-1) }, nil
}

// Acquire takes a slot for an admitted hash, waiting for one while ctx
// lasts (then ErrBusy); release gives it back.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		if !l.spare {
			return func() { <-l.slots }, nil
		}
		spareEnter()
		return func() { spareLeave(); <-l.slots }, nil
	case <-ctx.Done():
		return nil, ErrBusy
	}
}

// baseMemory is the Go memory Keyturn uses apart from password hashes: the
// heap of requests in flight, caches, keys and the runtime (40–60 MiB RSS
// under client_credentials and refresh load, BENCHMARKS.md).
const baseMemory = 48 << 20

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) for a
// process hashing within l. Password hashes dominate the heap: each
// argon2id check allocates Default.Memory, and with the default GOGC the
// heap may grow to twice what is live before the collector runs, so a login
// flood reached 140–160 MiB RSS. The limit holds the heap to what the hash
// slots need twice over (the hashes in progress and the garbage of the ones
// just done), plus the base. It is soft: a heap that must be larger only
// makes the collector run more often.
func (l *Limiter) MemoryLimit() int64 {
	return baseMemory + 2*int64(l.Slots())*int64(Default.Memory)<<10
}

package passhash

import (
	"runtime"
	"sync"
)

// startProcs is GOMAXPROCS as the process started.
var startProcs = runtime.GOMAXPROCS(0)

// CPUs is the number of CPUs the process may use as it started
// (GOMAXPROCS at start): the default number of hashes to run at once.
func CPUs() int { return startProcs }

// spare is the process's one spare Go processor: while any hash that asked
// for it runs (a Limiter with SpareProcessor), GOMAXPROCS is CPUs() + 1;
// when none runs, it is CPUs() again.
//
// An argon2id check is tens of milliseconds of CPU, and Go preempts a
// goroutine only after 10 ms. With as many processors as CPUs, a few hashes
// at once hold every processor, and any other request that becomes runnable
// waits for a preemption at each of its steps (BENCHMARKS.md: refresh p99
// 145 ms during a login flood). One processor more than the hashes can
// take lets requests run at once, and the kernel, with its much finer time
// slices, interleaves their thread with the hashing ones. It is added only
// while hashes run, and only one: every processor beyond the CPUs costs
// CPU on its own account (idle processors spin looking for work, and with
// four processors on two CPUs the collector takes one of them for its
// marking), measured at about a fifth of a refresh's CPU when no hash runs
// and a fifth of the logins when logins alone load the machine
// (BENCHMARKS.md).
var spare struct {
	mu      sync.Mutex
	running int // hashes running that asked for the spare processor
}

// spareEnter counts one hash in; the first raises GOMAXPROCS.
func spareEnter() {
	spare.mu.Lock()
	defer spare.mu.Unlock()
	spare.running++
	if spare.running == 1 {
		runtime.GOMAXPROCS(startProcs + 1)
	}
}

// spareLeave counts one hash out; the last lowers GOMAXPROCS again.
func spareLeave() {
	spare.mu.Lock()
	defer spare.mu.Unlock()
	spare.running--
	if spare.running == 0 {
		runtime.GOMAXPROCS(startProcs)
	}
}

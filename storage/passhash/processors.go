package passhash

import (
	"runtime"
	"sync"
)

// startProcs is GOMAXPROCS as the process started, before ReserveProcessors.
var startProcs = runtime.GOMAXPROCS(0)

// CPUs is the number of CPUs the process may use as it started
// (GOMAXPROCS at start): the default number of hashes to run at once.
func CPUs() int { return startProcs }

var reserve struct {
	mu sync.Mutex
	n  int
}

// ReserveProcessors gives up to n concurrent hashes Go processors of their
// own: GOMAXPROCS becomes CPUs() + n (or stays higher, if an earlier call
// asked for more).
//
// An argon2id check is tens of milliseconds of CPU, and Go preempts a
// goroutine only after 10 ms. With as many processors as CPUs, a few
// hashes at once hold every processor, and any other request that becomes
// runnable waits for a preemption at each of its steps (BENCHMARKS.md:
// refresh p99 79 ms during a login flood). With a processor per hash slot
// on top, requests always find a processor, and the kernel, with its much
// finer time slices, interleaves their threads with the hashing ones.
// The price is paid by logins when nothing else runs: more processors than
// CPUs cost hashing throughput (BENCHMARKS.md).
func ReserveProcessors(n int) {
	reserve.mu.Lock()
	defer reserve.mu.Unlock()
	if n <= reserve.n {
		return
	}
	reserve.n = n
	runtime.GOMAXPROCS(startProcs + n)
}

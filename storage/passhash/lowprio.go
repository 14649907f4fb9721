package passhash

import (
	"runtime"
	"sync"
)

// startProcs is GOMAXPROCS as the process started, before VerifyLowPriority
// added processors for its threads.
var startProcs = runtime.GOMAXPROCS(0)

// CPUs is the number of CPUs the process may use as it started
// (GOMAXPROCS at start): the default number of hashes to run at once.
func CPUs() int { return startProcs }

// lowPriority is the pool of low-priority threads: threads is how many
// were started, busy how many callers are in VerifyLowPriority. A caller
// that finds busy > threads starts one more, so there are never more
// threads than callers ever were at once.
var lowPriority struct {
	mu            sync.Mutex
	threads, busy int
	jobs          chan func()
}

func init() { lowPriority.jobs = make(chan func()) }

// VerifyLowPriority is Verify, run on an OS thread whose scheduling
// priority is lowered (nice 10 on Linux; elsewhere an ordinary thread).
//
// An argon2id check is tens of milliseconds of CPU that Go preempts only
// every 10 ms. Run on the request's goroutine, a few of them at once hold
// every processor, and a refresh that became runnable waits behind them for
// a preemption at each of its steps (BENCHMARKS.md: refresh p99 75 ms during
// a login flood). Here the hash runs on a thread of its own that the kernel
// schedules behind every other thread of the process, so hashes take the
// CPU that is left and everything else keeps its latency. Each such thread
// brings a Go processor of its own (GOMAXPROCS grows by one per thread), so
// that a hash never holds a processor the rest of the server needs.
//
// Callers bound how many run at once (hash slots); one thread is started per
// concurrent caller at most, and kept for later calls.
func VerifyLowPriority(encoded, password string) (bool, error) {
	var (
		ok     bool
		err    error
		failed any
	)
	done := make(chan struct{})
	job := func() {
		defer close(done)
		defer func() { failed = recover() }()
		ok, err = Verify(encoded, password)
	}
	p := &lowPriority
	p.mu.Lock()
	p.busy++
	start := p.busy > p.threads
	if start {
		p.threads++
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
	p.mu.Unlock()
	if start {
		go lowPriorityWorker(job)
	} else {
		p.jobs <- job // a thread is idle, or about to be
	}
	<-done
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	if failed != nil {
		panic(failed) // on the caller's goroutine, where a panic is recovered
	}
	return ok, err
}

// lowPriorityWorker runs jobs on a locked thread at low priority, for the
// life of the process. The thread is never unlocked: it could not get its
// priority back, and other goroutines must not run on it.
func lowPriorityWorker(first func()) {
	runtime.LockOSThread()
	lowerThreadPriority()
	first()
	for job := range lowPriority.jobs {
		job()
	}
}

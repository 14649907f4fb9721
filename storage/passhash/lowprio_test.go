package passhash

import (
	"runtime"
	"sync"
	"testing"
)

func TestVerifyLowPriority(t *testing.T) {
	h, err := Hash("correct horse", fast)
	if err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	lowPriority.mu.Lock()
	threads := lowPriority.threads
	lowPriority.mu.Unlock()

	const callers = 4
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range 50 {
				if ok, err := VerifyLowPriority(h, "correct horse"); err != nil || !ok {
					t.Errorf("VerifyLowPriority(right) = %v, %v", ok, err)
				}
				if ok, err := VerifyLowPriority(h, "wrong"); err != nil || ok {
					t.Errorf("VerifyLowPriority(wrong) = %v, %v", ok, err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := VerifyLowPriority("plain", "x"); err != ErrMalformed {
		t.Errorf("VerifyLowPriority(malformed) err = %v, want ErrMalformed", err)
	}

	lowPriority.mu.Lock()
	started, busy := lowPriority.threads-threads, lowPriority.busy
	lowPriority.mu.Unlock()
	if started < 1 || started > callers {
		t.Errorf("%d threads started for %d concurrent callers; want 1..%d", started, callers, callers)
	}
	if busy != 0 {
		t.Errorf("busy = %d after every call returned", busy)
	}
	// Each thread brought a processor of its own.
	if got := runtime.GOMAXPROCS(0); got != procs+started {
		t.Errorf("GOMAXPROCS = %d, want %d + %d threads", got, procs, started)
	}
	if CPUs() != startProcs || CPUs() < 1 {
		t.Errorf("CPUs() = %d", CPUs())
	}
}

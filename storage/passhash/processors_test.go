package passhash

import (
	"context"
	"runtime"
	"testing"
)

func TestSpareProcessorFollowsRunningHashes(t *testing.T) {
	t.Cleanup(func() { runtime.GOMAXPROCS(startProcs) })
	if CPUs() != startProcs || CPUs() < 1 {
		t.Fatalf("CPUs() = %d", CPUs())
	}
	procs := func() int { return runtime.GOMAXPROCS(0) }
	ctx := context.Background()

	l := NewLimiter(3, 0)
	l.SpareProcessor()
	if got := procs(); got != CPUs() {
		t.Fatalf("before any hash: GOMAXPROCS %d, want %d", got, CPUs())
	}
	r1, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := procs(); got != CPUs()+1 {
		t.Fatalf("one hash running: GOMAXPROCS %d, want %d", got, CPUs()+1)
	}
	r2, _ := l.Acquire(ctx)
	r3, _ := l.Acquire(ctx)
	if got := procs(); got != CPUs()+1 {
		t.Fatalf("three hashes running: GOMAXPROCS %d, want %d (one spare, not one per hash)", got, CPUs()+1)
	}
	r1()
	r2()
	if got := procs(); got != CPUs()+1 {
		t.Fatalf("one hash still running: GOMAXPROCS %d, want %d", got, CPUs()+1)
	}
	r3()
	if got := procs(); got != CPUs() {
		t.Fatalf("no hash running: GOMAXPROCS %d, want %d", got, CPUs())
	}

	// A limiter without a spare processor never changes GOMAXPROCS.
	plain := NewLimiter(2, 0)
	r, _ := plain.Acquire(ctx)
	if got := procs(); got != CPUs() {
		t.Fatalf("hash of a plain limiter: GOMAXPROCS %d, want %d", got, CPUs())
	}
	r()
}

// Hashes starting and ending on many goroutines at once leave GOMAXPROCS
// where it started when the last one is done.
func TestSpareProcessorConcurrent(t *testing.T) {
	t.Cleanup(func() { runtime.GOMAXPROCS(startProcs) })
	l := NewLimiter(4, 64)
	l.SpareProcessor()
	done := make(chan struct{})
	for range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				release, err := l.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if got := runtime.GOMAXPROCS(0); got != CPUs()+1 {
					t.Errorf("a hash running: GOMAXPROCS %d, want %d", got, CPUs()+1)
				}
				release()
			}
		}()
	}
	for range 16 {
		<-done
	}
	if got := runtime.GOMAXPROCS(0); got != CPUs() {
		t.Fatalf("all done: GOMAXPROCS %d, want %d", got, CPUs())
	}
}

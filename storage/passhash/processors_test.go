package passhash

import (
	"runtime"
	"testing"
)

func TestReserveProcessors(t *testing.T) {
	t.Cleanup(func() {
		reserve.mu.Lock()
		reserve.n = 0
		reserve.mu.Unlock()
		runtime.GOMAXPROCS(startProcs)
	})
	if CPUs() != startProcs || CPUs() < 1 {
		t.Fatalf("CPUs() = %d", CPUs())
	}
	ReserveProcessors(2)
	if got := runtime.GOMAXPROCS(0); got != CPUs()+2 {
		t.Fatalf("after ReserveProcessors(2): GOMAXPROCS %d, want %d", got, CPUs()+2)
	}
	ReserveProcessors(1) // a smaller reservation keeps the larger
	if got := runtime.GOMAXPROCS(0); got != CPUs()+2 {
		t.Fatalf("after ReserveProcessors(1): GOMAXPROCS %d, want %d", got, CPUs()+2)
	}
	ReserveProcessors(3)
	if got := runtime.GOMAXPROCS(0); got != CPUs()+3 {
		t.Fatalf("after ReserveProcessors(3): GOMAXPROCS %d, want %d", got, CPUs()+3)
	}
}

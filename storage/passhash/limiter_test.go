package passhash

import (
	"context"
	"errors"
	"testing"
)

// TestLimiterShedsLoad: at most slots + queue hashes are admitted, the rest
// are refused at once; of the admitted, at most slots hash at once.
func TestLimiterShedsLoad(t *testing.T) {
	h := NewLimiter(2, 1)
	ctx := t.Context()
	var leaves []func()
	for i := range 3 {
		leave, err := h.Admit()
		if err != nil {
			t.Fatalf("hash %d not admitted: %v", i, err)
		}
		leaves = append(leaves, leave)
	}
	if _, err := h.Admit(); !errors.Is(err, ErrBusy) {
		t.Fatalf("over slots + queue: err = %v, want ErrBusy", err)
	}

	r1, err1 := h.Acquire(ctx)
	r2, err2 := h.Acquire(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// The third admitted hash waits for a slot; a waiter whose context
	// ends is refused.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Acquire(cctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		release, err := h.Acquire(ctx)
		if err == nil {
			release()
		}
		got <- err
	}()
	r1()
	if err := <-got; err != nil {
		t.Fatalf("waiting hash: %v", err)
	}
	r2()

	// A hash that is done makes room for another.
	leaves[0]()
	leave, err := h.Admit()
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	leave()
	for _, l := range leaves[1:] {
		l()
	}
	if n := h.Admitted(); n != 0 {
		t.Fatalf("%d hashes still admitted", n)
	}
}

// TestLimiterDefaults: 0 slots is one per CPU, 0 queue is 8 per slot; the
// memory limit follows the slots.
func TestLimiterDefaults(t *testing.T) {
	l := NewLimiter(0, 0)
	if l.Slots() != CPUs() || l.maxAdmitted != int64(9*CPUs()) {
		t.Fatalf("slots %d, admitted bound %d; want %d, %d", l.Slots(), l.maxAdmitted, CPUs(), 9*CPUs())
	}
	if Default.Memory == 19*1024 {
		if got := NewLimiter(2, 0).MemoryLimit(); got != 124<<20 {
			t.Errorf("MemoryLimit with 2 slots = %d MiB, want 124", got>>20)
		}
	}
	if NewLimiter(3, 0).MemoryLimit() <= NewLimiter(2, 0).MemoryLimit() {
		t.Error("MemoryLimit does not follow the hash slots")
	}
}

package server

import (
	"context"
	"errors"
	"testing"
)

// TestHashSlotsShedLoad: at most slots + queue logins are admitted, the rest
// are shed at once with 503; of the admitted, at most slots hash at once.
func TestHashSlotsShedLoad(t *testing.T) {
	h := newHashSlots(2, 1)
	ctx := t.Context()
	var leaves []func()
	for i := range 3 {
		leave, err := h.admit()
		if err != nil {
			t.Fatalf("login %d not admitted: %v", i, err)
		}
		leaves = append(leaves, leave)
	}
	if _, err := h.admit(); !errors.Is(err, errHashingBusy) {
		t.Fatalf("over slots + queue: err = %v, want 503", err)
	}
	if errHashingBusy.Status() != 503 || errHashingBusy.header.Get("Retry-After") != "1" {
		t.Fatalf("shed answer %d %v", errHashingBusy.Status(), errHashingBusy.header)
	}

	r1, err1 := h.acquire(ctx)
	r2, err2 := h.acquire(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// The third admitted login waits for a slot; a waiter whose request
	// ends is shed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.acquire(cctx); !errors.Is(err, errHashingBusy) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		release, err := h.acquire(ctx)
		if err == nil {
			release()
		}
		got <- err
	}()
	r1()
	if err := <-got; err != nil {
		t.Fatalf("waiting login: %v", err)
	}
	r2()

	// A login that is done makes room for another.
	leaves[0]()
	leave, err := h.admit()
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	leave()
	for _, l := range leaves[1:] {
		l()
	}
	if n := h.admitted.Load(); n != 0 {
		t.Fatalf("%d logins still admitted", n)
	}
}

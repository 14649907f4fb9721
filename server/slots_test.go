package server

import (
	"context"
	"errors"
	"testing"
)

// TestHashSlotsShedLoad: the bound on concurrent hashing holds, a bounded
// number of logins wait, and the rest are shed at once with 503.
func TestHashSlotsShedLoad(t *testing.T) {
	h := newHashSlots(2, 1)
	ctx := t.Context()
	r1, err1 := h.acquire(ctx)
	r2, err2 := h.acquire(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	waited := make(chan error, 1)
	go func() {
		release, err := h.acquire(ctx) // queued: the one waiting place
		if err == nil {
			release()
		}
		waited <- err
	}()
	// Until the waiter is queued, a fourth caller may find the queue empty;
	// once it is, the fourth is shed.
	for h.queued.Load() == 0 {
		select {
		case err := <-waited:
			t.Fatalf("waiter returned early: %v", err)
		default:
		}
	}
	if _, err := h.acquire(ctx); !errors.Is(err, errHashingBusy) {
		t.Fatalf("over the queue: err = %v, want 503", err)
	}
	if errHashingBusy.Status() != 503 || errHashingBusy.header.Get("Retry-After") != "1" {
		t.Fatalf("shed answer %d %v", errHashingBusy.Status(), errHashingBusy.header)
	}
	r1()
	if err := <-waited; err != nil {
		t.Fatalf("queued login: %v", err)
	}
	r2()
	// A waiter whose request is cancelled gives up its place.
	h2 := newHashSlots(1, 1)
	rel, _ := h2.acquire(ctx)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h2.acquire(cctx); !errors.Is(err, errHashingBusy) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if h2.queued.Load() != 0 {
		t.Fatal("cancelled waiter kept its place")
	}
	rel()
}

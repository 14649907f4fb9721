package passhash

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLowerThreadPriority(t *testing.T) {
	nice := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		lowerThreadPriority()
		// The raw getpriority(2) system call answers 20 - nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Error(err)
		}
		nice <- 20 - p
	}()
	if got := <-nice; got != lowPriorityNice {
		t.Errorf("thread nice = %d, want %d", got, lowPriorityNice)
	}
	// The rest of the process keeps its priority.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if 20-p == lowPriorityNice {
		t.Errorf("the test's own thread was lowered too")
	}
}

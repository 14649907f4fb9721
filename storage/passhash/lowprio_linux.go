package passhash

import "golang.org/x/sys/unix"

// lowPriorityNice is the nice value of hashing threads: the kernel gives a
// nice-10 thread about a tenth of the CPU a nice-0 thread gets when both
// want it, and all of it when nothing else does.
const lowPriorityNice = 10

// lowerThreadPriority lowers the calling thread's priority. On Linux,
// setpriority(PRIO_PROCESS, tid) applies to that one thread (setpriority(2),
// NOTES). Raising one's own nice value needs no privilege; a failure leaves
// the thread at normal priority, which is correct, only less kind.
func lowerThreadPriority() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), lowPriorityNice)
}

//go:build !linux

package passhash

// lowerThreadPriority does nothing where per-thread priorities are not
// portable: the hash still runs on its own thread and processor.
func lowerThreadPriority() {}

package server_test

import "github.com/keyturn/keyturn/server"

// withLimits sets the throttle's bars: free failures per (username,
// address), per username, per address (0: the default).
func withLimits(free, user, addr int) func(*server.Options) {
	return func(o *server.Options) {
		if free > 0 {
			o.Login.FreeFailures = free
		}
		if user > 0 {
			o.Login.UserFailures = user
		}
		if addr > 0 {
			o.Login.AddressFailures = addr
		}
	}
}

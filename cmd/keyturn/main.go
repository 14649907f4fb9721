// Command keyturn runs the Keyturn OAuth 2.0 authorization server and
// manages what it keeps: the database schema, users, client secrets and
// signing keys. Run `keyturn --help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP) // serve reloads its clients
	code := runWith(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv, hangup, nil)
	stop()
	os.Exit(code)
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/server/sweeper"
	"github.com/keyturn/keyturn/storage"
)

func (e *env) cleanupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Delete expired sessions, denylist entries, login throttles, signing keys, codes and browser sessions once",
		Long: `Delete what serve's sweeper deletes every cleanup.interval: sessions past
their absolute expiry or revoked longer than cleanup.revoked_retention ago,
denylisted access-token ids past their expiry, stale login throttles, and
signing keys no longer published (superseded or revoked longer than the
longest access-token lifetime ago), authorization codes a day past their
expiry, and browser login sessions once expired or revoked. For running
from cron with cleanup.interval: 0.`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return e.withStore(cmd.Context(), func(ctx context.Context, a *app, store storage.Store) error {
				res, err := a.cleaner(store).Sweep(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "deleted %d sessions, %d denylist entries, %d login throttles, %d signing keys, %d authorization codes, %d browser sessions\n",
					res.Families, res.Denials, res.Throttles, res.Keys, res.Codes, res.BrowserSessions)
				return nil
			})
		}),
	}
}

// cleaner is the sweeper serve runs and cleanup runs once.
func (a *app) cleaner(store sweeper.Store) *sweeper.Sweeper {
	return sweeper.New(store, sweeper.Options{
		RevokedRetention: a.cfg.Cleanup.RevokedRetention,
		// As a.keys: a key is published this long after it last signed.
		MaxTokenTTL: clients.MaxAccessTokenTTL,
		// A throttle is kept while its failures count.
		ThrottleRetention:     max(24*time.Hour, a.cfg.Login.FailureWindow),
		KnownAddressRetention: a.cfg.Login.KnownAddressTTL,
		BatchSize:             a.cfg.Cleanup.BatchSize,
	}, a.log)
}

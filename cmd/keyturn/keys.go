package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/server"
	"github.com/keyturn/keyturn/storage"
)

// The keys commands need the master secret, as serve does, but never
// generate it: a new secret would not open the existing keys.

func (e *env) keysCommand() *cobra.Command {
	return group("keys", "Manage access-token signing keys",
		&cobra.Command{
			Use:   "rotate",
			Short: "Add a signing key: published now, signing after keys.rotation_delay",
			Args:  noArgs,
			RunE: runE(func(cmd *cobra.Command, _ []string) error {
				return e.withKeys(cmd.Context(), func(ctx context.Context, keys *server.Keys) error {
					k, err := keys.Rotate(ctx)
					if err != nil {
						return fmt.Errorf("rotate: %w", err)
					}
					fmt.Fprintf(e.stdout, "new key %s (%s): published now, signs from %s\n",
						k.ID, k.Algorithm, formatTime(k.ActivateAt))
					return nil
				})
			}),
		},
		&cobra.Command{
			Use:   "list",
			Short: "List signing keys and their states",
			Args:  noArgs,
			RunE: runE(func(cmd *cobra.Command, _ []string) error {
				return e.withKeys(cmd.Context(), func(ctx context.Context, keys *server.Keys) error {
					list, err := keys.List(ctx)
					if err != nil {
						return fmt.Errorf("list keys: %w", err)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRES")
					for _, k := range list {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State,
							formatTime(k.CreatedAt), formatTime(k.ActivateAt), formatTime(k.RetireAt))
					}
					return tw.Flush()
				})
			}),
		},
	)
}

// withKeys loads the config, the master secret (never generating it), the
// store and the keys, and runs fn.
func (e *env) withKeys(ctx context.Context, fn func(context.Context, *server.Keys) error) error {
	a, err := e.load()
	if err != nil {
		return err
	}
	secret, err := a.masterSecret(false)
	if err != nil {
		return err
	}
	return a.withStore(ctx, func(ctx context.Context, store storage.Store) error {
		keys, err := a.keys(ctx, store, secret)
		if err != nil {
			return err
		}
		return fn(ctx, keys)
	})
}

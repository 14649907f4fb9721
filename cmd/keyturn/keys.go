package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/server/keys"
	"github.com/keyturn/keyturn/storage"
)

// The keys commands need the master secret, as serve does, but never
// generate it: a new secret would not open the existing keys.

func (e *env) keysCommand() *cobra.Command {
	return group("keys", "Manage access-token signing keys",
		e.keysRotateCommand(), e.keysRevokeCommand(), e.keysListCommand())
}

func (e *env) keysRotateCommand() *cobra.Command {
	var alg string
	c := &cobra.Command{
		Use:   "rotate [--alg ALG]",
		Short: "Add a signing key to every algorithm in use (or to ALG's): published now, signing after keys.rotation_delay",
		Long: `Add a signing key for each algorithm in use: keys.algorithm (access tokens),
RS256 and every client's id_token_signed_response_alg (ID tokens). Each
algorithm's keys rotate on their own; --alg rotates only that one. A new key
is published in the JWKS now and signs after keys.rotation_delay; the key it
replaces stays published until the last token it signed has expired.`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd.Context(), func(ctx context.Context, ks *keys.Keys) error {
				var infos []keys.Info
				if alg != "" {
					if !slices.Contains(ks.Lineages(), alg) {
						return usageErrorf("--alg %s: no keys of that algorithm are in use (in use: %s)", alg, strings.Join(ks.Lineages(), ", "))
					}
					k, err := ks.Rotate(ctx, alg)
					if err != nil {
						return fmt.Errorf("rotate: %w", err)
					}
					infos = append(infos, k)
				} else {
					var err error
					if infos, err = ks.RotateAll(ctx); err != nil {
						return fmt.Errorf("rotate: %w", err)
					}
				}
				for _, k := range infos {
					fmt.Fprintf(e.stdout, "new key %s (%s): published now, signs from %s\n",
						k.ID, k.Algorithm, formatTime(k.ActivateAt))
				}
				return nil
			})
		}),
	}
	c.Flags().StringVar(&alg, "alg", "", "rotate only this algorithm's keys ("+strings.Join(keys.Algorithms(), ", ")+")")
	return c
}

func (e *env) keysRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke [--] KID",
		Short: "Withdraw a signing key at once (a leaked key)",
		Long: `Revoke the signing key KID at once, for a key that leaked: every running
instance stops publishing it in the JWKS, answers introspection of tokens it
signed with {"active":false}, and stops signing with it within a few seconds,
without a restart; its private half is erased from the database. If it was
the signing key, a pending key (from keys rotate) signs from now on, or else
a new key, without keys.rotation_delay. Resource servers that verify tokens
themselves may hold the key in a cached JWKS for up to its max-age (5 minutes).
Sessions are not ended: refresh tokens do not depend on the signing key.
A KID that starts with '-' goes after '--': keyturn keys revoke -- -AbC...`,
		Args: oneKID,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return e.withKeys(cmd.Context(), func(ctx context.Context, ks *keys.Keys) error {
				res, err := ks.Revoke(ctx, args[0])
				if errors.Is(err, storage.ErrNotFound) {
					return usageErrorf("no signing key %q (see keyturn keys list)", args[0])
				}
				if err != nil {
					return fmt.Errorf("revoke: %w", err)
				}
				if res.AlreadyRevoked {
					fmt.Fprintf(e.stdout, "key %s was already revoked at %s\n", res.ID, formatTime(res.RevokedAt))
					return nil
				}
				fmt.Fprintf(e.stdout, "revoked key %s: every instance drops it within seconds\n", res.ID)
				switch {
				case res.NewSigner:
					fmt.Fprintf(e.stdout, "new key %s signs from now on\n", res.SignerID)
				case res.SignerID != "":
					fmt.Fprintf(e.stdout, "pending key %s signs from now on\n", res.SignerID)
				}
				return nil
			})
		}),
	}
}

func (e *env) keysListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List signing keys and their states",
		Args:  noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return e.withKeys(cmd.Context(), func(ctx context.Context, ks *keys.Keys) error {
				list, err := ks.List(ctx)
				if err != nil {
					return fmt.Errorf("list keys: %w", err)
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRES")
				for _, k := range list {
					// A revoked key retired when it was revoked.
					retires := k.RetireAt
					if k.State == "revoked" {
						retires = k.RevokedAt
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State,
						formatTime(k.CreatedAt), formatTime(k.ActivateAt), formatTime(retires))
				}
				return tw.Flush()
			})
		}),
	}
}

// withKeys loads the config, the master secret (never generating it), the
// store and the keys, and runs fn.
func (e *env) withKeys(ctx context.Context, fn func(context.Context, *keys.Keys) error) error {
	a, err := e.load()
	if err != nil {
		return err
	}
	secret, err := a.masterSecret(false)
	if err != nil {
		return err
	}
	return a.withStore(ctx, func(ctx context.Context, store storage.Store) error {
		ks, err := a.keys(ctx, store, secret, nil)
		if err != nil {
			return err
		}
		return fn(ctx, ks)
	})
}

// oneKID accepts exactly one argument, the kid; anything else is a usage
// error (exit 2), as noArgs answers.
func oneKID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("%s takes one KID (got %d arguments); see '%s --help'", cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

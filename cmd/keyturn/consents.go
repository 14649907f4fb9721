package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/storage"
)

// The consents commands show and forget what users allowed third-party
// clients on the consent page (RFC 6749 §10.2). Forgetting a consent also
// ends that client's sessions for the user: the next authorization asks
// again, and nothing the user allowed before keeps working.

func (e *env) consentsCommand() *cobra.Command {
	return group("consents", "List and revoke what users allowed clients on the consent page",
		e.consentsListCommand(), e.consentsRevokeCommand())
}

func (e *env) consentsListCommand() *cobra.Command {
	var f sessionFlags
	c := &cobra.Command{
		Use:   "list --user NAME",
		Short: "List a user's consents: client id, when last granted, scopes",
		Args:  noArgs,
	}
	c.Flags().StringVar(&f.user, "user", "", "the consents of the user `NAME`")
	c.MarkFlagRequired("user")
	c.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := f.checkUser(); err != nil {
			return err
		}
		return e.withStore(cmd.Context(), func(ctx context.Context, _ *app, store storage.Store) error {
			filter, err := f.filter(ctx, store)
			if err != nil {
				return err
			}
			consents, err := store.ListConsents(ctx, filter.UserID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT\tGRANTED\tSCOPES")
			for _, cs := range consents {
				scopes := strings.Join(cs.Scopes, " ")
				if scopes == "" {
					scopes = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", cs.ClientID, formatTime(cs.GrantedAt), scopes)
			}
			return tw.Flush()
		})
	})
	return c
}

func (e *env) consentsRevokeCommand() *cobra.Command {
	var f sessionFlags
	c := &cobra.Command{
		Use:   "revoke --user NAME [--client ID]",
		Short: "Forget a user's consents (to one client, or to all) and end those clients' sessions",
		Long: `Forget what the user allowed the client (every client without --client), and
revoke the user's sessions with it in the same transaction: the client's next
authorization request shows the consent page again. Access tokens already
issued stay valid for offline resource servers until they expire
(tokens.access_token_ttl); introspection reports them inactive at once.`,
		Args: noArgs,
	}
	c.Flags().StringVar(&f.user, "user", "", "the consents of the user `NAME`")
	c.Flags().StringVar(&f.client, "client", "", "only the consent to the client `ID`")
	c.MarkFlagRequired("user")
	c.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := f.checkUser(); err != nil {
			return err
		}
		if cmd.Flags().Changed("client") && f.client == "" {
			return usageErrorf("--client: empty")
		}
		return e.withStore(cmd.Context(), func(ctx context.Context, a *app, store storage.Store) error {
			filter, err := f.filter(ctx, store)
			if err != nil {
				return err
			}
			consents, sessions, err := store.RevokeConsents(ctx, filter.UserID, filter.ClientID, time.Now().UTC())
			if err != nil {
				return err
			}
			a.log.Warn("consents revoked by admin", "user_id", filter.UserID, "client_id", filter.ClientID,
				"consents", consents, "sessions", sessions, "reason", storage.ReasonConsentRevoked)
			fmt.Fprintf(e.stdout, "deleted %d consents and revoked %d sessions\n", consents, sessions)
			return nil
		})
	})
	return c
}

// checkUser checks the flags as check does, and that --user is not empty
// (a required flag may still be given as --user "").
func (f *sessionFlags) checkUser() error {
	if f.user == "" {
		return usageErrorf("--user: empty")
	}
	return f.check()
}

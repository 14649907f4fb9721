package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/storage"
)

// sessionFlags select sessions by user or client (and, for revoke, by id).
type sessionFlags struct {
	family, user, client string
}

func (f *sessionFlags) register(c *cobra.Command, withFamily bool) {
	if withFamily {
		c.Flags().StringVar(&f.family, "family", "", "the session (family) `ID`")
	}
	c.Flags().StringVar(&f.user, "user", "", "the sessions of the user `NAME`")
	c.Flags().StringVar(&f.client, "client", "", "the sessions of the client `ID`")
}

// check refuses a control character in any flag, as checkUsername does:
// no name or id holds one, and PostgreSQL cannot compare a NUL with text,
// so it would be a database error instead of the caller's mistake.
func (f *sessionFlags) check() error {
	for _, v := range []struct{ flag, value string }{{"--family", f.family}, {"--user", f.user}, {"--client", f.client}} {
		if strings.ContainsFunc(v.value, unicode.IsControl) {
			return usageErrorf("%s: control character", v.flag)
		}
	}
	return nil
}

// filter resolves --user to the user's ID. An unknown user is the
// caller's mistake (exit 2).
func (f *sessionFlags) filter(ctx context.Context, store storage.Users) (storage.FamilyFilter, error) {
	filter := storage.FamilyFilter{ClientID: f.client}
	if f.user != "" {
		u, err := store.GetUserByUsername(ctx, f.user)
		if err != nil {
			return filter, userError(f.user, err)
		}
		filter.UserID = u.ID
	}
	return filter, nil
}

func (e *env) sessionsCommand() *cobra.Command {
	return group("sessions", "List and revoke login sessions (refresh-token families)",
		e.sessionsListCommand(), e.sessionsRevokeCommand())
}

func (e *env) sessionsListCommand() *cobra.Command {
	var f sessionFlags
	c := &cobra.Command{
		Use:   "list (--user NAME | --client ID)",
		Short: "List sessions of a user or a client, newest first",
		Long: `List sessions of a user or a client, newest first: the client, the user, the
grant that started the session (password or authorization_code), its times,
its refresh generation and its state (active, expired, or revoked with why).`,
		Args: noArgs,
	}
	f.register(c, false)
	c.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if f.user == "" && f.client == "" {
			return usageErrorf("give --user NAME or --client ID")
		}
		if err := f.check(); err != nil {
			return err
		}
		return e.withStore(cmd.Context(), func(ctx context.Context, a *app, store storage.Store) error {
			filter, err := f.filter(ctx, store)
			if err != nil {
				return err
			}
			fams, err := store.ListFamilies(ctx, filter)
			if err != nil {
				return err
			}
			names := map[string]string{}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FAMILY\tCLIENT\tUSER\tGRANT\tCREATED\tLAST USED\tIDLE EXPIRES\tABSOLUTE EXPIRES\tGENERATION\tSTATE")
			for _, fam := range fams {
				name, ok := names[fam.UserID]
				if !ok {
					name = "(deleted)"
					if u, err := store.GetUser(ctx, fam.UserID); err == nil {
						name = u.Username
					} else if !errors.Is(err, storage.ErrNotFound) {
						return err
					}
					names[fam.UserID] = name
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", fam.ID, fam.ClientID, name, orDash(fam.GrantType),
					formatTime(fam.CreatedAt), formatTime(fam.LastUsedAt), formatTime(fam.IdleExpiresAt),
					formatTime(fam.AbsoluteExpiresAt), fam.Generation, sessionState(fam, now))
			}
			return tw.Flush()
		})
	})
	return c
}

// orDash is s, or "-" for an empty s.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sessionState is active, expired, or revoked with its reason.
func sessionState(f storage.Family, now time.Time) string {
	switch {
	case f.Revoked():
		return "revoked (" + f.RevokeReason + ")"
	case !f.Live(now):
		return "expired"
	}
	return "active"
}

func (e *env) sessionsRevokeCommand() *cobra.Command {
	var f sessionFlags
	c := &cobra.Command{
		Use:   "revoke (--family ID | --user NAME | --client ID)",
		Short: "Revoke one session, every session of a user, or every session of a client",
		Long: `Revoke sessions at once: their refresh tokens stop working, and introspection
reports their access tokens inactive. Resource servers that check access
tokens offline accept them until they expire (tokens.access_token_ttl).
--client revokes every session of a client, e.g. after its secret leaked.`,
		Args: noArgs,
	}
	f.register(c, true)
	c.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		set := 0
		for _, v := range []string{f.family, f.user, f.client} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			return usageErrorf("give exactly one of --family ID, --user NAME or --client ID")
		}
		if err := f.check(); err != nil {
			return err
		}
		return e.withStore(cmd.Context(), func(ctx context.Context, a *app, store storage.Store) error {
			now := time.Now().UTC()
			if f.family != "" {
				err := store.RevokeFamily(ctx, f.family, storage.ReasonAdmin, now)
				if errors.Is(err, storage.ErrNotFound) {
					return usageErrorf("no session %q", f.family)
				}
				if err != nil {
					return err
				}
				a.log.Warn("session revoked by admin", "family_id", f.family, "reason", storage.ReasonAdmin)
				fmt.Fprintf(e.stdout, "revoked session %s\n", f.family)
				return nil
			}
			filter, err := f.filter(ctx, store)
			if err != nil {
				return err
			}
			n, err := store.RevokeFamilies(ctx, filter, storage.ReasonAdmin, now)
			if err != nil {
				return err
			}
			a.log.Warn("sessions revoked by admin", "user_id", filter.UserID, "client_id", filter.ClientID,
				"sessions", n, "reason", storage.ReasonAdmin)
			fmt.Fprintf(e.stdout, "revoked %d sessions\n", n)
			return nil
		})
	})
	return c
}

// withStore loads the config, opens (and migrates) the store, and runs fn.
func (e *env) withStore(ctx context.Context, fn func(ctx context.Context, a *app, store storage.Store) error) error {
	a, err := e.load()
	if err != nil {
		return err
	}
	return a.withStore(ctx, func(ctx context.Context, store storage.Store) error { return fn(ctx, a, store) })
}

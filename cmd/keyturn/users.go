package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/passhash"
)

// The users commands open the database and migrate it first (Migrate is
// idempotent), so they work on a fresh database and never on a stale schema.
//
// Passwords are read from standard input only, never from an argument,
// where they would land in shell history and in every process listing:
//
//	printf '%s\n' "$PASSWORD" | keyturn users create --username ada --password-stdin

func (e *env) usersCommand() *cobra.Command {
	return group("users", "Manage the users who log in with the password grant",
		e.userCommand("create", "Create a user (password from stdin)", true, usersCreate),
		e.usersListCommand(),
		e.userCommand("disable", "Disable a user and revoke their sessions", false, usersSetDisabled(true)),
		e.userCommand("enable", "Enable a disabled user", false, usersSetDisabled(false)),
		e.userCommand("delete", "Delete a user and revoke their sessions", false, usersDelete),
		e.usersSetPasswordCommand(),
	)
}

// userOp is what a users subcommand does to one user, given the store,
// the username and (for the commands that take one) the password hash. It
// returns what to print and, if it revoked the user's sessions, the
// reason they record (logged too).
type userOp func(ctx context.Context, store storage.Users, username, hash string, now time.Time) (msg, revoked string, err error)

// userCommand builds a subcommand that acts on --username, reading a
// password from stdin if withPassword. It opens the store, runs op and
// prints what op reports.
func (e *env) userCommand(name, short string, withPassword bool, op userOp) *cobra.Command {
	var username string
	var passwordStdin bool
	use := name + " --username NAME"
	if withPassword {
		use += " --password-stdin"
	}
	c := &cobra.Command{Use: use, Short: short, Args: noArgs}
	c.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := checkUsername(username); err != nil {
			return err
		}
		var hash string
		if withPassword {
			if !passwordStdin {
				return usageErrorf("--password-stdin is required: the password is read from standard input, never from an argument")
			}
			pw, err := readLine(e.stdin)
			if err != nil {
				return err
			}
			if pw == "" {
				return usageErrorf("empty password on standard input")
			}
			if hash, err = passhash.Hash(pw, passhash.Default); err != nil {
				return err
			}
		}
		return e.withStore(cmd.Context(), func(ctx context.Context, a *app, store storage.Store) error {
			msg, revoked, err := op(ctx, store, username, hash, time.Now().UTC())
			if err != nil {
				return userError(username, err)
			}
			if revoked != "" {
				a.log.Warn("user's sessions revoked", "username", username, "reason", revoked)
			}
			fmt.Fprintln(e.stdout, msg)
			return nil
		})
	})
	c.Flags().StringVar(&username, "username", "", "the user's `NAME`")
	c.MarkFlagRequired("username")
	if withPassword {
		c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	}
	return c
}

// userError turns the store's sentinels into the user's mistake (exit 2).
func userError(username string, err error) error {
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return usageErrorf("user %q already exists", username)
	case errors.Is(err, storage.ErrNotFound):
		return usageErrorf("no user %q", username)
	}
	return err
}

func checkUsername(name string) error {
	switch {
	case name == "":
		return usageErrorf("--username: empty")
	case strings.TrimSpace(name) != name:
		return usageErrorf("--username: leading or trailing space")
	case strings.ContainsFunc(name, unicode.IsControl):
		return usageErrorf("--username: control character")
	}
	return nil
}

// readLine reads the first line of r without its line ending.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// createUser stores a new user with a random ID.
func createUser(ctx context.Context, store storage.Users, username, hash string, now time.Time) error {
	id, err := randomToken(16)
	if err != nil {
		return err
	}
	return store.CreateUser(ctx, storage.User{
		ID: id, Username: username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	})
}

func usersCreate(ctx context.Context, store storage.Users, username, hash string, now time.Time) (string, string, error) {
	if err := createUser(ctx, store, username, hash, now); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("created user %q", username), "", nil
}

func usersSetDisabled(disabled bool) userOp {
	return func(ctx context.Context, store storage.Users, username, _ string, now time.Time) (string, string, error) {
		if err := store.SetUserDisabled(ctx, username, disabled, now); err != nil {
			return "", "", err
		}
		if disabled {
			return fmt.Sprintf("disabled user %q and revoked their sessions", username), storage.ReasonUserDisabled, nil
		}
		return fmt.Sprintf("enabled user %q", username), "", nil
	}
}

func usersDelete(ctx context.Context, store storage.Users, username, _ string, now time.Time) (string, string, error) {
	if err := store.DeleteUser(ctx, username, now); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("deleted user %q and revoked their sessions", username), storage.ReasonUserDeleted, nil
}

// usersSetPasswordCommand is set-password: a new password ends the
// sessions opened with the old one (a leaked password is the usual reason
// to change it), unless --keep-sessions says otherwise.
func (e *env) usersSetPasswordCommand() *cobra.Command {
	var keep bool
	c := e.userCommand("set-password", "Set a user's password (from stdin) and revoke their sessions", true,
		func(ctx context.Context, store storage.Users, username, hash string, now time.Time) (string, string, error) {
			if err := store.SetUserPassword(ctx, username, hash, keep, now); err != nil {
				return "", "", err
			}
			if keep {
				return fmt.Sprintf("set the password of user %q; their sessions were kept", username), "", nil
			}
			return fmt.Sprintf("set the password of user %q and revoked their sessions", username), storage.ReasonPasswordChanged, nil
		})
	c.Flags().BoolVar(&keep, "keep-sessions", false, "keep the user's sessions (refresh tokens) alive")
	return c
}

func (e *env) usersListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return e.withStore(cmd.Context(), func(ctx context.Context, _ *app, store storage.Store) error {
				users, err := store.ListUsers(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tID\tDISABLED\tCREATED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", u.Username, u.ID, u.Disabled, formatTime(u.CreatedAt))
				}
				return tw.Flush()
			})
		}),
	}
}

// formatTime prints t in UTC to the second, or "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

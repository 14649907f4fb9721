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
	"unicode/utf8"

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
		e.usersCreateCommand(),
		e.usersListCommand(),
		e.userCommand("disable", "Disable a user and revoke their sessions", false, usersSetDisabled(true)),
		e.userCommand("enable", "Enable a disabled user", false, usersSetDisabled(false)),
		e.userCommand("delete", "Delete a user and revoke their sessions", false, usersDelete),
		e.usersSetPasswordCommand(),
		e.usersSetProfileCommand(),
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
func createUser(ctx context.Context, store storage.Users, username, hash string, p storage.UserProfile, now time.Time) error {
	id, err := randomToken(16)
	if err != nil {
		return err
	}
	return store.CreateUser(ctx, storage.User{
		ID: id, Username: username, PasswordHash: hash, Profile: p, CreatedAt: now, UpdatedAt: now,
	})
}

// usersCreateCommand is create: a user with a password and, optionally,
// the profile claims OpenID Connect relying parties may ask for.
func (e *env) usersCreateCommand() *cobra.Command {
	var pf profileFlags
	c := e.userCommand("create", "Create a user (password from stdin)", true,
		func(ctx context.Context, store storage.Users, username, hash string, now time.Time) (string, string, error) {
			p, err := pf.apply(storage.UserProfile{})
			if err != nil {
				return "", "", err
			}
			if err := createUser(ctx, store, username, hash, p, now); err != nil {
				return "", "", err
			}
			return fmt.Sprintf("created user %q", username), "", nil
		})
	pf.register(c)
	return c
}

// usersSetProfileCommand is set-profile: only the flags given change, an
// empty value clears. Sessions are kept: UserInfo reads the claims when
// asked, so relying parties see the change at their next call.
func (e *env) usersSetProfileCommand() *cobra.Command {
	var pf profileFlags
	c := e.userCommand("set-profile", "Set a user's OpenID Connect profile claims (name, email)", false,
		func(ctx context.Context, store storage.Users, username, _ string, now time.Time) (string, string, error) {
			if !pf.any() {
				return "", "", usageErrorf("nothing to set: give --name, --email or --email-verified")
			}
			u, err := store.GetUserByUsername(ctx, username)
			if err != nil {
				return "", "", err
			}
			p, err := pf.apply(u.Profile)
			if err != nil {
				return "", "", err
			}
			if err := store.SetUserProfile(ctx, username, p, now); err != nil {
				return "", "", err
			}
			return fmt.Sprintf("set the profile of user %q", username), "", nil
		})
	pf.register(c)
	return c
}

// profileFlags are the profile claims an admin sets (OpenID Connect Core
// §5.1): name, email and email_verified.
type profileFlags struct {
	cmd           *cobra.Command
	name, email   string
	emailVerified bool
}

func (f *profileFlags) register(c *cobra.Command) {
	f.cmd = c
	c.Flags().StringVar(&f.name, "name", "", "the user's full `NAME` (the name claim); empty clears it")
	c.Flags().StringVar(&f.email, "email", "", "the user's e-mail `ADDRESS` (the email claim); empty clears it")
	c.Flags().BoolVar(&f.emailVerified, "email-verified", false, "whether the e-mail address was verified (email_verified)")
}

func (f *profileFlags) changed(name string) bool { return f.cmd.Flags().Changed(name) }

func (f *profileFlags) any() bool {
	return f.changed("name") || f.changed("email") || f.changed("email-verified")
}

// apply returns p with the flags given set and validated. A new e-mail
// address is not verified unless --email-verified says so (a verification
// belongs to the address it was made for), and there is no verified
// nothing.
func (f *profileFlags) apply(p storage.UserProfile) (storage.UserProfile, error) {
	if f.changed("name") {
		if err := checkProfileName(f.name); err != nil {
			return p, err
		}
		p.Name = f.name
	}
	if f.changed("email") {
		if err := checkEmail(f.email); err != nil {
			return p, err
		}
		if f.email != p.Email {
			p.EmailVerified = false
		}
		p.Email = f.email
	}
	if f.changed("email-verified") {
		p.EmailVerified = f.emailVerified
	}
	if p.Email == "" {
		if p.EmailVerified && f.changed("email-verified") {
			return p, usageErrorf("--email-verified: the user has no e-mail address")
		}
		p.EmailVerified = false
	}
	return p, nil
}

// Limits on the profile claims: an e-mail address fits in a forward-path
// (RFC 5321 §4.5.3.1.3, 256 octets less the angle brackets); a name is
// for display.
const (
	maxEmailLen = 254
	maxNameLen  = 200
)

// checkProfileName accepts printable UTF-8 of at most maxNameLen
// characters, or "" (clears).
func checkProfileName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return usageErrorf("--name: not UTF-8")
	case utf8.RuneCountInString(name) > maxNameLen:
		return usageErrorf("--name: longer than %d characters", maxNameLen)
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }):
		return usageErrorf("--name: control or non-printing character")
	case strings.TrimSpace(name) != name:
		return usageErrorf("--name: leading or trailing space")
	}
	return nil
}

// checkEmail is deliberately loose (what mail systems accept varies):
// one '@' with something on both sides, no space or control character,
// at most maxEmailLen bytes of UTF-8; or "" (clears).
func checkEmail(email string) error {
	if email == "" {
		return nil
	}
	local, domain, _ := strings.Cut(email, "@")
	switch {
	case !utf8.ValidString(email):
		return usageErrorf("--email: not UTF-8")
	case len(email) > maxEmailLen:
		return usageErrorf("--email: longer than %d bytes", maxEmailLen)
	case strings.ContainsFunc(email, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return usageErrorf("--email: space or control character")
	case strings.Count(email, "@") != 1 || local == "" || domain == "":
		return usageErrorf("--email: want one '@' between a local part and a domain")
	}
	return nil
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
				// NAME last: it may hold spaces.
				fmt.Fprintln(tw, "USERNAME\tID\tDISABLED\tCREATED\tEMAIL\tEMAIL_VERIFIED\tNAME")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%t\t%s\n", u.Username, u.ID, u.Disabled, formatTime(u.CreatedAt),
						orDash(u.Profile.Email), u.Profile.EmailVerified, orDash(u.Profile.Name))
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

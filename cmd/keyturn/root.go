package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: database unreachable, disk full, …
	exitUsage   = 2 // a usage error, an invalid config or a user mistake
)

// exitError carries the exit code of a command's error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as the user's to fix (exit 2): a bad flag, an
// invalid config, an existing or unknown username, an empty password.
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

func usageErrorf(format string, args ...any) error { return usageError(fmt.Errorf(format, args...)) }

// run is the whole program, minus the process: arguments, standard streams
// and environment come in, the exit code goes out. Tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	return runWith(ctx, args, stdin, stdout, stderr, lookupEnv, nil, nil)
}

// runWith is run with a channel that delivers SIGHUP (reload the clients;
// nil: never) and a hook that sees each HTTP server serve builds before it
// serves (nil: none; tests use it to wait on connection states and shutdown).
func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool), hangup <-chan os.Signal, onServer func(*http.Server)) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: lookupEnv, hangup: hangup, onServer: onServer}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return exitOK
}

// exitCode maps an error to the process exit code. Errors a command
// returns are classified by runE; anything else comes from cobra itself
// (unknown command or flag, missing argument) and is a usage error.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

// printError writes one "keyturn: " line per problem: errors.Join puts
// each joined error on its own line, and config reports every problem at once.
func printError(w io.Writer, err error) {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(w, "keyturn: %s\n", line)
		}
	}
}

// runE adapts a command's function to cobra: an error it does not classify
// itself is a runtime failure (exit 1).
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *exitError
		if err != nil && !errors.As(err, &ee) {
			return &exitError{code: exitFailure, err: err}
		}
		return err
	}
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "keyturn",
		Short: "Keyturn, an OAuth 2.0 authorization server",
		Long: `Keyturn is an OAuth 2.0 authorization server: the authorization code flow
with PKCE (login and consent pages), password, refresh_token and
client_credentials grants, JWT access tokens, rotating refresh tokens.

Configuration comes from --config FILE (default ./keyturn.yaml if present),
then KEYTURN_* environment variables. Without any, keyturn serves from a
SQLite database under ./data.`,
		SilenceErrors: true, // run prints them, one line per problem
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          missingCommand,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVar(&e.configPath, "config", "", "config `FILE` (default ./keyturn.yaml if present, else built-in defaults)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		// A key id is a base64url thumbprint: one in 64 starts with '-',
		// which pflag reads as a flag unless it follows "--".
		var notExist *pflag.NotExistError
		if errors.As(err, &notExist) {
			return usageErrorf("%s; an argument that starts with '-', such as a key id, goes after '--' (see '%s --help')", flagError(err), cmd.CommandPath())
		}
		return usageErrorf("%s (see '%s --help')", flagError(err), cmd.CommandPath())
	})
	root.AddCommand(
		e.serveCommand(),
		e.migrateCommand(),
		e.cleanupCommand(),
		e.usersCommand(),
		e.sessionsCommand(),
		e.consentsCommand(),
		e.clientsCommand(),
		e.configCommand(),
		e.keysCommand(),
		e.probeCommand(),
	)
	return root
}

// flagError is pflag's message without the argument it quotes, which may
// be a password typed where it does not belong: `-pSECRET` and
// `--password-stdin=SECRET` must not print SECRET. pflag's typed errors
// say which flag and what was typed, so nothing is read back from text.
func flagError(err error) string {
	var notExist *pflag.NotExistError
	if errors.As(err, &notExist) && notExist.GetSpecifiedShortnames() != "" {
		return fmt.Sprintf("unknown shorthand flag: %q", []rune(notExist.GetSpecifiedName())[0])
	}
	var invalid *pflag.InvalidValueError
	if errors.As(err, &invalid) {
		return fmt.Sprintf("invalid value for %q flag", flagName(invalid.GetFlag()))
	}
	return err.Error()
}

// flagName names a flag as pflag's own messages do: "-p, --password".
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" && f.ShorthandDeprecated == "" {
		return "-" + f.Shorthand + ", --" + f.Name
	}
	return "--" + f.Name
}

// noArgs rejects positional arguments without echoing them: a password
// typed as one must not be printed back.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments (got %d); see '%s --help'", cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

// group returns a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: missingCommand}
	c.AddCommand(subs...)
	return c
}

// missingCommand answers a group command run without a subcommand: its
// usage on stderr and exit 2 (cobra's default is help and exit 0).
func missingCommand(cmd *cobra.Command, _ []string) error {
	fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
	return usageErrorf("missing command for %q", cmd.CommandPath())
}

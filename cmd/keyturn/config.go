package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/clients"
	"github.com/keyturn/keyturn/config"
)

func (e *env) configCommand() *cobra.Command {
	return group("config", "Check the configuration",
		&cobra.Command{
			Use:   "check",
			Short: "Validate the config file and KEYTURN_* environment, printing every problem",
			Long: `Validate the configuration as serve would: the config file, the KEYTURN_*
environment variables, the clients (including their secret_env variables)
and KEYTURN_SECRET if set. Every problem is printed, one per line; the exit
status is 2 if there is any. The database is not contacted.`,
			Args: noArgs,
			RunE: runE(func(*cobra.Command, []string) error {
				a, err := e.load()
				if err != nil {
					return err
				}
				var errs []error
				if _, err := clients.New(a.cfg.Clients, a.cfg.ClientDefaults(), e.lookupEnv); err != nil {
					errs = append(errs, err)
				}
				if a.cfg.Secret != "" {
					if _, err := a.masterSecret(false); err != nil {
						errs = append(errs, err)
					}
				}
				if err := errors.Join(errs...); err != nil {
					return usageError(err)
				}
				fmt.Fprintf(e.stdout, "ok (%s)\n", e.configSource())
				return nil
			}),
		},
	)
}

// configSource names the configuration config.Load used.
func (e *env) configSource() string {
	if e.configPath != "" {
		return e.configPath
	}
	if _, err := os.Stat(config.DefaultFile); !errors.Is(err, fs.ErrNotExist) {
		return config.DefaultFile
	}
	return "built-in defaults and environment"
}

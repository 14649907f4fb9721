package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (e *env) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date",
		Long: `Apply the database migrations this keyturn has and the database lacks.
Safe to run any number of times; serve and the users and keys commands
migrate too.`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			a, err := e.load()
			if err != nil {
				return err
			}
			store, applied, err := a.migrate(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			if len(applied) == 0 {
				fmt.Fprintln(e.stdout, "schema up to date")
				return nil
			}
			fmt.Fprintf(e.stdout, "applied migrations: %v\n", applied)
			return nil
		}),
	}
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyturn/keyturn/clients"
)

func (e *env) clientsCommand() *cobra.Command {
	return group("clients", "Make client secrets and their secret_hash values",
		&cobra.Command{
			Use:   "generate",
			Short: "Generate a random client secret and its secret_hash",
			Long: `Generate a random 256-bit client secret and print it with its secret_hash.
Put the secret_hash in the client's config entry and give the secret to the
client's developers: it is shown only now and stored nowhere. The secret is
base64url (letters, digits, '-' and '_'): URL-safe, so it survives clients
that send HTTP Basic credentials without form-encoding them. To rotate a
client's secret, list the new secret_hash beside the old in secret_hashes.`,
			Args: noArgs,
			RunE: runE(func(*cobra.Command, []string) error {
				secret, hash, err := clients.Generate()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "secret:      %s\nsecret_hash: %s\n\nThe secret is shown only now: keyturn stores only its hash.\n", secret, hash)
				return nil
			}),
		},
		&cobra.Command{
			Use:   "hash-secret",
			Short: "Print the secret_hash of a secret read from stdin",
			Long: `Read a human-chosen client secret from the first line of standard input and
print its argon2id secret_hash. Prefer 'keyturn clients generate': a random
secret is verified faster and cannot be guessed.

  printf '%s\n' "$SECRET" | keyturn clients hash-secret`,
			Args: noArgs,
			RunE: runE(func(*cobra.Command, []string) error {
				secret, err := readLine(e.stdin)
				if err != nil {
					return err
				}
				if secret == "" {
					return usageErrorf("empty secret on standard input")
				}
				hash, err := clients.HashSecret(secret)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, hash)
				return nil
			}),
		},
	)
}

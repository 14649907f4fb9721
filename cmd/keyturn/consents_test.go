package main

import (
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
)

func TestConsents(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, c *cli) {
		for _, name := range []string{"ada", "bob"} {
			c.want(exitOK, "pw\n", "users", "create", "--username", name, "--password-stdin")
		}
		store := c.store()
		ctx := t.Context()
		now := time.Now().UTC()
		id := func(name string) string {
			u, err := store.GetUserByUsername(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			return u.ID
		}
		for _, g := range []struct {
			user, client string
			scopes       []string
		}{
			{"ada", "app", []string{"read", "write"}}, {"ada", "tool", nil}, {"bob", "app", []string{"read"}},
		} {
			if err := store.GrantConsent(ctx, id(g.user), g.client, g.scopes, now); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []struct{ id, user, client string }{
			{"fam-ada-app", "ada", "app"}, {"fam-ada-tool", "ada", "tool"}, {"fam-bob-app", "bob", "app"},
		} {
			err := store.CreateFamily(ctx, storage.Family{ID: f.id, ClientID: f.client, UserID: id(f.user), Salt: []byte("s"), KeyID: "k",
				GrantType: storage.GrantAuthorizationCode, AuthTime: now, CreatedAt: now, LastUsedAt: now,
				IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(2 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		}
		list := func(user string) string {
			return c.want(exitOK, "", "consents", "list", "--user", user).stdout
		}
		out := list("ada")
		if row := listRow(t, out, "app"); len(row) != 4 || row[1] != now.Format(time.RFC3339) || row[2] != "read" || row[3] != "write" {
			t.Fatalf("row %q in\n%s", row, out)
		}
		if row := listRow(t, out, "tool"); len(row) != 3 || row[2] != "-" {
			t.Fatalf("a consent with no scope: row %q in\n%s", row, out)
		}
		if strings.Count(out, "\n") != 3 {
			t.Fatalf("--user ada lists more than her two consents:\n%s", out)
		}

		// One client: its consent goes, and with it ada's sessions of that
		// client; her other client's and bob's stay.
		r := c.want(exitOK, "", "consents", "revoke", "--user", "ada", "--client", "app")
		if !strings.Contains(r.stdout, "deleted 1 consents and revoked 1 sessions") ||
			!strings.Contains(r.stderr, `"reason":"consent_revoked"`) || !strings.Contains(r.stderr, `"client_id":"app"`) {
			t.Fatalf("revoke --client: %+v", r)
		}
		if out := list("ada"); strings.Contains(out, "app") || !strings.Contains(out, "tool") {
			t.Fatalf("after revoke --client app:\n%s", out)
		}
		wantState := func(fam string, revoked bool) {
			t.Helper()
			f, err := store.GetFamily(ctx, fam)
			if err != nil {
				t.Fatal(err)
			}
			if f.Revoked() != revoked || revoked && f.RevokeReason != storage.ReasonConsentRevoked {
				t.Errorf("%s: revoked %v (%q), want %v", fam, f.Revoked(), f.RevokeReason, revoked)
			}
		}
		wantState("fam-ada-app", true)
		wantState("fam-ada-tool", false)
		wantState("fam-bob-app", false)
		if row := listRow(t, c.want(exitOK, "", "sessions", "list", "--user", "ada").stdout, "fam-ada-app"); row[10] != "(consent_revoked)" {
			t.Errorf("sessions list after consents revoke: %q", row)
		}

		// Every client of the user.
		if r := c.want(exitOK, "", "consents", "revoke", "--user", "ada"); !strings.Contains(r.stdout, "deleted 1 consents and revoked 1 sessions") {
			t.Fatalf("revoke --user: %q", r.stdout)
		}
		wantState("fam-ada-tool", true)
		wantState("fam-bob-app", false)
		if out := list("ada"); strings.Count(out, "\n") != 1 {
			t.Fatalf("after revoking all, list shows:\n%s", out)
		}
		// Nothing left: not an error, nothing to count.
		if r := c.want(exitOK, "", "consents", "revoke", "--user", "ada"); !strings.Contains(r.stdout, "deleted 0 consents and revoked 0 sessions") {
			t.Fatalf("revoke again: %q", r.stdout)
		}
		if row := listRow(t, list("bob"), "app"); row[2] != "read" {
			t.Errorf("bob's consent: %q", row)
		}

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"consents", "list", "--user", "nobody"}, `keyturn: no user "nobody"`},
			{[]string{"consents", "revoke", "--user", "nobody"}, `keyturn: no user "nobody"`},
			{[]string{"consents", "revoke", "--user", "nobody", "--client", "app"}, `keyturn: no user "nobody"`},
			{[]string{"consents", "list"}, `keyturn: required flag(s) "user" not set`},
			{[]string{"consents", "revoke", "--client", "app"}, `keyturn: required flag(s) "user" not set`},
			{[]string{"consents", "list", "--user", ""}, "keyturn: --user: empty"},
			{[]string{"consents", "revoke", "--user", "bob", "--client", ""}, "keyturn: --client: empty"},
			{[]string{"consents", "list", "--user", "bo\x00b"}, "keyturn: --user: control character"},
			{[]string{"consents", "revoke", "--user", "bob", "--client", "a\x00pp"}, "keyturn: --client: control character"},
		} {
			r := c.want(exitUsage, "", tc.args...)
			wantOneLine(t, r.stderr, tc.want)
		}
		// None of the refusals touched bob.
		if row := listRow(t, list("bob"), "app"); row[2] != "read" {
			t.Errorf("bob's consent after the refusals: %q", row)
		}
		wantState("fam-bob-app", false)
	})
}

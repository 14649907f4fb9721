package main

import (
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
)

func TestSessions(t *testing.T) {
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
		for _, f := range []struct{ id, user, client string }{
			{"fam-ada-web", "ada", "web"}, {"fam-ada-app", "ada", "app"}, {"fam-bob-web", "bob", "web"}, {"fam-bob-app", "bob", "app"},
		} {
			err := store.CreateFamily(ctx, storage.Family{ID: f.id, ClientID: f.client, UserID: id(f.user), Salt: []byte("s"), KeyID: "k", GrantType: storage.GrantPassword,
				CreatedAt: now, LastUsedAt: now, AuthTime: now, IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(2 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		}
		list := func(args ...string) string {
			return c.want(exitOK, "", append([]string{"sessions", "list"}, args...)...).stdout
		}
		out := list("--user", "ada")
		if row := listRow(t, out, "fam-ada-web"); len(row) != 9 || row[1] != "web" || row[2] != "ada" || row[8] != "active" {
			t.Fatalf("row %q in\n%s", row, out)
		}
		if strings.Contains(out, "fam-bob") {
			t.Fatalf("--user ada lists bob's sessions:\n%s", out)
		}
		if out := list("--client", "app"); !strings.Contains(out, "fam-ada-app") || !strings.Contains(out, "fam-bob-app") || strings.Contains(out, "-web") {
			t.Fatalf("--client app:\n%s", out)
		}

		r := c.want(exitOK, "", "sessions", "revoke", "--family", "fam-ada-web")
		if !strings.Contains(r.stdout, "revoked session fam-ada-web") || !strings.Contains(r.stderr, `"reason":"admin"`) || !strings.Contains(r.stderr, `"family_id":"fam-ada-web"`) {
			t.Fatalf("revoke --family: %+v", r)
		}
		if row := listRow(t, list("--user", "ada"), "fam-ada-web"); row[8] != "revoked" || row[9] != "(admin)" {
			t.Fatalf("after revoke: %q", row)
		}
		if r := c.want(exitOK, "", "sessions", "revoke", "--client", "app"); !strings.Contains(r.stdout, "revoked 2 sessions") {
			t.Fatalf("revoke --client: %q", r.stdout)
		}
		if r := c.want(exitOK, "", "sessions", "revoke", "--user", "bob"); !strings.Contains(r.stdout, "revoked 1 sessions") {
			t.Fatalf("revoke --user: %q", r.stdout)
		}
		if r := c.want(exitOK, "", "users", "disable", "--username", "ada"); !strings.Contains(r.stderr, `"reason":"user_disabled"`) {
			t.Fatalf("users disable does not log why sessions end: %q", r.stderr)
		}
		for _, fam := range []string{"fam-ada-web", "fam-ada-app", "fam-bob-web", "fam-bob-app"} {
			f, err := store.GetFamily(ctx, fam)
			if err != nil || f.RevokeReason != storage.ReasonAdmin {
				t.Errorf("%s: %+v %v, want revoked by admin", fam, f, err)
			}
		}

		for _, args := range [][]string{
			{"sessions", "list"},
			{"sessions", "revoke"},
			{"sessions", "revoke", "--user", "ada", "--client", "web"},
			{"sessions", "revoke", "--family", "nope"},
			{"sessions", "list", "--user", "nobody"},
		} {
			c.want(exitUsage, "", args...)
		}
	})
}

package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/sweeper"
)

// TestSweepPrunesSigningKeys: a key is deleted once it can neither sign
// nor verify: superseded longer than the longest token lifetime ago, or
// revoked (its private half already erased) as long ago. Pruning never
// changes what is published.
func TestSweepPrunesSigningKeys(t *testing.T) {
	for _, b := range backends {
		t.Run(b.String(), func(t *testing.T) {
			ctx := t.Context()
			store := openStore(t, b)
			clock := newClock()
			const maxTTL = 15 * time.Minute
			keys := adminKeys(t, store, clock) // k0, signing now
			c := sweeper.New(store, sweeper.Options{MaxTokenTTL: maxTTL, BatchSize: 1, Now: clock.Now}, discardLogger())
			sweep := func(want int64) {
				t.Helper()
				res, err := c.Sweep(ctx)
				if err != nil || res != (sweeper.Result{Keys: want}) {
					t.Fatalf("sweep = %+v, %v; want %d keys deleted", res, err, want)
				}
			}
			ids := func() []string {
				t.Helper()
				rows, err := store.ListSigningKeys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, r := range rows {
					out = append(out, r.ID)
				}
				return out
			}
			published := func() string {
				t.Helper()
				set, err := keys.Published(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, k := range set {
					out = append(out, k.KeyID)
				}
				return strings.Join(out, ",")
			}
			k0 := ids()[0]
			k1, err := keys.Rotate(ctx, "ES256") // signs from +1h
			if err != nil {
				t.Fatal(err)
			}
			sweep(0)
			clock.Advance(time.Hour + maxTTL) // k0 superseded exactly maxTTL ago: kept to the boundary
			sweep(0)
			clock.Advance(time.Microsecond)
			before := published()
			sweep(1)
			if got := ids(); len(got) != 1 || got[0] != k1.ID || contains(got, k0) {
				t.Fatalf("keys after pruning k0: %v", got)
			}
			if after := published(); after != before || after != k1.ID {
				t.Fatalf("published %q after pruning, %q before; want %s", after, before, k1.ID)
			}

			clock.Advance(time.Hour)
			res, err := keys.Revoke(ctx, k1.ID)
			if err != nil {
				t.Fatal(err)
			}
			sweep(0) // the revoked row stays while it orders its neighbours, and for `keys list`
			clock.Advance(maxTTL)
			sweep(0)
			clock.Advance(time.Microsecond)
			before = published()
			sweep(1)
			if got := ids(); len(got) != 1 || got[0] != res.SignerID {
				t.Fatalf("keys after pruning the revoked key: %v, want [%s]", got, res.SignerID)
			}
			if after := published(); after != before || after != res.SignerID {
				t.Fatalf("published %q after pruning, %q before; want %s", after, before, res.SignerID)
			}
		})
	}
}

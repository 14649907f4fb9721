package tokens

// FuzzParseRefreshToken: the refresh-token parser reads attacker-controlled
// bytes before a client has authenticated. `go test` runs it over its seeds
// (the f.Add calls and testdata/fuzz/FuzzParseRefreshToken/); `go test
// -fuzz=FuzzParseRefreshToken` explores.

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
)

// fuzzMAC is a syntactically valid MAC: 32 bytes of 0xa5, base64url.
const fuzzMAC = "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU"

func FuzzParseRefreshToken(f *testing.F) {
	for _, s := range []string{
		"",
		"ktr1",
		"ktr1...",
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.0." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.18446744073709551615." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.18446744073709551616." + fuzzMAC, // overflows uint64
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.007." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.-1." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.+1." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC + "=",
		"ktr1.AAAAAAAAAAAAAAAAAAAAA=.1." + fuzzMAC,
		"ktr2.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC,
		"ktr3.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC,
		"KTR2.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC,
		"ktr2.AAAAAAAAAAAAAAAAAAAAAA.01." + fuzzMAC,
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC + ".x",
		"ktr1.\xff\xfe.1." + fuzzMAC,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseRefresh(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseRefresh(%q): error %v, want ErrMalformed", s, err)
			}
			return
		}
		// One token, one spelling: what is accepted re-encodes to itself,
		// so a token cannot be presented in several forms.
		if tok.Version != RefreshV1 && tok.Version != RefreshV2 {
			t.Fatalf("ParseRefresh(%q): version %q", s, tok.Version)
		}
		again := tok.Version + "." + tok.FamilyID + "." + strconv.FormatUint(tok.Generation, 10) + "." +
			base64.RawURLEncoding.EncodeToString(tok.MAC)
		if again != s {
			t.Fatalf("ParseRefresh(%q) accepted a token that re-encodes as %q", s, again)
		}
		if len(tok.MAC) != sha256.Size {
			t.Fatalf("ParseRefresh(%q): MAC of %d bytes", s, len(tok.MAC))
		}
		// Family IDs are NewID()s: 16 bytes, canonical base64url.
		if id, err := base64.RawURLEncoding.DecodeString(tok.FamilyID); err != nil || len(id) != 16 ||
			base64.RawURLEncoding.EncodeToString(id) != tok.FamilyID {
			t.Fatalf("ParseRefresh(%q) accepted family id %q", s, tok.FamilyID)
		}
	})
}

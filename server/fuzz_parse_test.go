package server

// Fuzz targets for the pure parsers of attacker-controlled bytes: the
// refresh-token parser and HTTP Basic decoding. They call unexported
// functions, so they are in package server; fuzz_test.go has the targets
// that go through a real server. `go test` runs them over their seeds (the
// f.Add calls and testdata/fuzz/<FuzzName>/); `go test -fuzz=FuzzX` explores.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
)

// fuzzMAC is a syntactically valid MAC (32 bytes, base64url).
var fuzzMAC = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 32))

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
		"ktr1.AAAAAAAAAAAAAAAAAAAAAA.1." + fuzzMAC + ".x",
		"ktr1.\xff\xfe.1." + fuzzMAC,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseRefreshToken(s)
		if err != nil {
			if !errors.Is(err, errMalformedToken) {
				t.Fatalf("parseRefreshToken(%q): error %v, want errMalformedToken", s, err)
			}
			return
		}
		// One token, one spelling: what is accepted re-encodes to itself,
		// so a token cannot be presented in several forms.
		again := refreshPrefix + "." + tok.FamilyID + "." + strconv.FormatUint(tok.Generation, 10) + "." +
			base64.RawURLEncoding.EncodeToString(tok.MAC)
		if again != s {
			t.Fatalf("parseRefreshToken(%q) accepted a token that re-encodes as %q", s, again)
		}
		if len(tok.MAC) != sha256.Size {
			t.Fatalf("parseRefreshToken(%q): MAC of %d bytes", s, len(tok.MAC))
		}
		// Family IDs are newID()s: 16 bytes, canonical base64url.
		if id, err := base64.RawURLEncoding.DecodeString(tok.FamilyID); err != nil || len(id) != 16 ||
			base64.RawURLEncoding.EncodeToString(id) != tok.FamilyID {
			t.Fatalf("parseRefreshToken(%q) accepted family id %q", s, tok.FamilyID)
		}
	})
}

func FuzzDecodeBasic(f *testing.F) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		"",
		"Basic",
		"Basic ",
		"Basic " + enc("web:secret"),
		"basic   " + enc("web:s%3Ac%2Br%2Ft"),
		"BASIC " + enc("web:"),
		"Basic " + enc(":secret"),
		"Basic " + enc("nocolon"),
		"Basic " + enc("web:%"),
		"Basic " + enc("%zz:secret"),
		"Basic " + enc("w%00b:secret"),
		"Basic " + enc("web:%ff%fe"),
		"Basic " + enc("\xff:\xfe"),
		"Basic !!!",
		"Basic " + enc("web:secret") + "=",
		"Bearer abc",
		"Basic\t" + enc("web:secret"),
		"Digest username=web",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, _, _, err := decodeBasic(header)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.Status() != http.StatusUnauthorized {
				t.Fatalf("decodeBasic(%q): %#v, want *Error invalid_client 401", header, err)
			}
			return
		}
		if id == "" {
			t.Fatalf("decodeBasic(%q) accepted an empty client id", header)
		}
	})
}

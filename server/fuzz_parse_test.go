package server

// The fuzz target for HTTP Basic decoding, a pure parser of
// attacker-controlled bytes (the refresh-token parser's is in package
// tokens). It calls an unexported function, so it is in package server;
// fuzz_test.go has the targets that go through a real server. `go test` runs them over their seeds (the
// f.Add calls and testdata/fuzz/<FuzzName>/); `go test -fuzz=FuzzX` explores.

import (
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
)

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

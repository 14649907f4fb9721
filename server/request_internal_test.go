package server

import (
	"strings"
	"testing"
)

// FuzzHasControl: the byte scan agrees with the definition over runes, on
// any input, valid UTF-8 or not.
func FuzzHasControl(f *testing.F) {
	for _, s := range []string{"", "abc", "a\x00b", "\x7f", "é\x1f", "\xff\x01", "\xe2\x80", "tab\there", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		control := strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f })
		nul := strings.ContainsRune(v, 0)
		if got := hasControl(v, false); got != control {
			t.Errorf("hasControl(%q, false) = %v, want %v", v, got, control)
		}
		if got := hasControl(v, true); got != nul {
			t.Errorf("hasControl(%q, true) = %v, want %v", v, got, nul)
		}
	})
}

package tokens

import "testing"

// TestAccessTokenHash checks at_hash (OpenID Connect Core §3.1.3.6) against
// the vectors of the OpenID Connect Token Hash Algorithm guide (§3): the
// left half of SHA-256 for RS256 and ES256, of SHA-512 for EdDSA.
func TestAccessTokenHash(t *testing.T) {
	const at = "YmJiZTAwYmYtMzgyOC00NzhkLTkyOTItNjJjNDM3MGYzOWIy9sFhvH8K_x8UIHj1osisS57f5DduL"
	for alg, want := range map[string]string{
		"RS256": "xsZZrUssMXjL3FBlzoSh2g",
		"ES256": "xsZZrUssMXjL3FBlzoSh2g",
		"EdDSA": "p2LHG4H-8pYDc0hyVOo3iIHvZJUqe9tbj3jESOuXbkY",
	} {
		if got, err := AccessTokenHash(alg, at); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", alg, got, err, want)
		}
	}
	for _, alg := range []string{"", "none", "HS256", "RS384", "rs256"} {
		if got, err := AccessTokenHash(alg, at); err == nil {
			t.Errorf("%q: %q, want an error", alg, got)
		}
	}
}

package clients

import "testing"

// TestIDTokenAlg (T-OIDC-2-f, T-OIDC-15.1-a): id_token_signed_response_alg
// defaults to RS256 and takes RS256, ES256 or EdDSA exactly as written;
// none, HMAC and anything else are refused at load, each with a message
// saying why.
func TestIDTokenAlg(t *testing.T) {
	alg := func(a string) []Spec {
		return []Spec{with(app("rp"), func(s *Spec) { s.IDTokenSignedResponseAlg = a })}
	}
	for _, tt := range []struct {
		alg  string
		want string // the one error; "" none
	}{
		{"", ""},
		{"RS256", ""},
		{"ES256", ""},
		{"EdDSA", ""},
		{"none", `clients[0].id_token_signed_response_alg: "none" refused: ID tokens must be signed`},
		{"None", `"None" refused: ID tokens must be signed`},
		{"HS256", `clients[0].id_token_signed_response_alg: "HS256" refused: HMAC would sign with the client secret`},
		{"HS384", `"HS384" refused: HMAC`},
		{"hs512", `"hs512" refused: HMAC`},
		{"rs256", `unsupported algorithm "rs256"; want RS256 (the default), ES256 or EdDSA`},
		{"RS512", `unsupported algorithm "RS512"`},
		{"PS256", `unsupported algorithm "PS256"`},
		{"Ed25519", `unsupported algorithm "Ed25519"`},
		{"RS256 ", `unsupported algorithm "RS256 "`},
		{"RS256\x00", `unsupported algorithm "RS256\x00"`},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			wantErrors(t, Validate(alg(tt.alg)), want)
			_, err := New(alg(tt.alg), testDefaults(), env(nil))
			wantErrors(t, err, want)
		})
	}

	// Resolved: the spec's algorithm, else RS256; every client gets one.
	pub := with(app("spa"), func(s *Spec) { s.SecretHash, s.Public = "", true })
	r, err := New([]Spec{app("default"), with(app("es"), func(s *Spec) { s.IDTokenSignedResponseAlg = "ES256" }),
		with(pub, func(s *Spec) { s.IDTokenSignedResponseAlg = "EdDSA" })}, testDefaults(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"default": "RS256", "es": "ES256", "spa": "EdDSA"} {
		if c, _ := r.Get(id); c.IDTokenAlg != want {
			t.Errorf("%s: IDTokenAlg = %q, want %q", id, c.IDTokenAlg, want)
		}
	}
}

package clients

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/keyturn/keyturn/storage/passhash"
)

// Client secrets are verified without a slow hash in the steady state
// (DESIGN.md §4):
//
//   - "sha256:" hashes are for generated secrets with 256 bits of entropy,
//     which no amount of hashing would make harder to guess; the presented
//     secret is hashed with SHA-256 and compared in constant time.
//   - secret_env secrets are hashed with SHA-256 when the registry is
//     built, and only the digest is kept.
//   - argon2id hashes are for human-chosen secrets. The first correct
//     secret pays for argon2id (concurrent requests presenting the same
//     secret share that one hash); its SHA-256 is then cached, so later
//     requests compare digests. A wrong secret always pays for argon2id:
//     failures are never cached, and online guessing stays slow.

const sha256Prefix = "sha256:"

var b64url = base64.RawURLEncoding.Strict()

// HashSecret returns the secret_hash value for a human-chosen secret:
// an argon2id hash with passhash.Default parameters.
func HashSecret(secret string) (string, error) {
	if secret == "" {
		return "", errors.New("hash secret: empty secret")
	}
	h, err := passhash.Hash(secret, passhash.Default)
	if err != nil {
		return "", fmt.Errorf("hash secret: %w", err)
	}
	return h, nil
}

// Generate returns a new random 256-bit secret (base64url without padding,
// from crypto/rand) and its "sha256:" secret_hash.
func Generate() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate secret: %w", err)
	}
	secret = b64url.EncodeToString(b)
	return secret, SHA256Hash(secret), nil
}

// MinGeneratedSecretLen is the shortest secret_env value taken to be
// generated rather than chosen by a person: 32 characters of base64 or hex
// carry at least 128 bits when they come from a generator (`keyturn
// clients generate` makes 43). A shorter one counts as guessable.
const MinGeneratedSecretLen = 32

// SHA256Hash returns the "sha256:" secret_hash of secret: only for secrets
// as random as Generate's (256 bits); a chosen secret needs HashSecret.
func SHA256Hash(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return sha256Prefix + b64url.EncodeToString(d[:])
}

// verifier checks one of a confidential client's secrets. It holds
// digests and hashes, never the secret, and is safe for concurrent use.
type verifier struct {
	// phc is the argon2id hash; empty when digest is fixed.
	phc string
	// digest is SHA-256 of the secret: fixed for sha256 and secret_env
	// secrets, or cached after the first argon2id success (nil until then).
	digest atomic.Pointer[[sha256.Size]byte]
}

func newDigestVerifier(d [sha256.Size]byte) *verifier {
	v := &verifier{}
	v.digest.Store(&d)
	return v
}

// newHashVerifier parses a secret_hash value. Its errors never include the
// value, which may be a plaintext secret in the wrong place.
func newHashVerifier(hash string) (*verifier, error) {
	switch {
	case strings.HasPrefix(hash, sha256Prefix):
		d, err := b64url.DecodeString(hash[len(sha256Prefix):])
		if err != nil || len(d) != sha256.Size {
			return nil, errors.New("malformed sha256 hash: want \"sha256:\" and 43 base64url characters without padding (a 32-byte digest)")
		}
		return newDigestVerifier([sha256.Size]byte(d)), nil
	case passhash.IsHash(hash):
		if err := passhash.Check(hash); err != nil {
			return nil, errors.New("malformed argon2id hash")
		}
		return &verifier{phc: hash}, nil
	case strings.HasPrefix(hash, "$"):
		return nil, errors.New("unsupported hash: want \"sha256:...\" or \"$argon2id$...\"")
	default:
		return nil, errors.New("not a hash; this looks like a plaintext secret, which must never be in the config file: store the output of `keyturn clients hash-secret` instead, or use secret_env")
	}
}

// matchDigest reports, in constant time for each, whether presented is
// the fixed or cached digest of one of vs.
func matchDigest(vs []*verifier, presented [sha256.Size]byte) bool {
	match := 0
	for _, v := range vs {
		if d := v.digest.Load(); d != nil {
			match |= subtle.ConstantTimeCompare(presented[:], d[:])
		}
	}
	return match == 1
}

// slow reports whether v checks an argon2id hash.
func (v *verifier) slow() bool { return v.phc != "" }

// verifySlow reports whether secret, whose SHA-256 is presented, matches
// v's argon2id hash; verifyHash is passhash.Verify. A success is cached as
// the digest, so later requests compare digests.
func (v *verifier) verifySlow(secret string, presented [sha256.Size]byte, verifyHash func(encoded, secret string) (bool, error)) (bool, error) {
	if v.phc == "" {
		return false, nil
	}
	ok, err := verifyHash(v.phc, secret)
	if err != nil || !ok {
		return false, err
	}
	// Only one secret matches the hash, so one cached digest is enough.
	v.digest.Store(&presented)
	return true, nil
}

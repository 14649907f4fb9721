package servertest_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/keyturn/keyturn/server/servertest"
	"github.com/keyturn/keyturn/storage/passhash"
)

// TestBasicFormEncodesThenBase64s: RFC 6749 §2.3.1 form-encodes the id and
// the secret before joining them with ':' (so a ':' in either survives).
func TestBasicFormEncodesThenBase64s(t *testing.T) {
	got := servertest.Basic("a b", "s:c+r/%é")
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("a+b:s%3Ac%2Br%2F%25%C3%A9"))
	if got != want {
		t.Fatalf("Basic = %q, want %q", got, want)
	}
}

func TestClockAdvances(t *testing.T) {
	c := servertest.NewClock()
	if !c.Now().Equal(servertest.Start) {
		t.Fatalf("new clock at %v, want %v", c.Now(), servertest.Start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(servertest.Start); got != 90*time.Second {
		t.Fatalf("advanced by %v, want 90s", got)
	}
}

// TestHashPasswordIsCheapAndVerifies: the fast parameters travel in the
// hash, so passhash.Verify checks it with them.
func TestHashPasswordIsCheapAndVerifies(t *testing.T) {
	h := servertest.HashPassword(t, "correct horse")
	if ok, err := passhash.Verify(h, "correct horse"); err != nil || !ok {
		t.Fatalf("Verify(own hash) = %v, %v", ok, err)
	}
	if ok, _ := passhash.Verify(h, "wrong"); ok {
		t.Fatal("Verify accepted a wrong password")
	}
}

package throttle

import (
	"context"
	"net/netip"
)

// CheckClient throttles client authentication (RFC 6749 §2.3.1: a
// client secret is a password; §10.10: credential guessing) per (client
// id, source address), never per client id alone: an attacker must not be
// able to lock a production backend out. Only registered confidential
// clients whose secret can be guessed (clients.Client.Guessable: chosen by
// a person) are counted (DESIGN.md decision D12); an unknown id is refused
// as before, without a database write, and a generated 256-bit secret is
// beyond any online guessing, so its clients' hot paths (refresh,
// introspection, client_credentials) never touch the throttle.
//
// Unlike a password, the secret is checked first (it is cheap, or its
// argon2id checks are bounded by the process's hashing budget), and what is
// counted before anything is revealed is the answer: a wrong secret gets
// 401 only if it gets one of the free places (a reservation committed at
// once as a failure), else 429; a right one is answered 200 at once, with
// one read and no write, while the counter has no failure and its pending
// attempts, were they all to fail, stay under the bar; otherwise it takes
// a place like a login (waiting for those in flight, 429 while held back)
// and resets the counter. So a burst of guesses learns no more answers
// than there are free places. While the pair is held back, an attempt is
// refused before its secret is checked, so it costs no hash. A guessable
// client's requests pay two reads each (held back? then clean?).
//
// check runs the secret check; it reports a wrong secret as false with a
// nil error, and any error (busy, a broken hash) as nothing judged: that
// error is returned and nothing is counted. The result is check's, or a
// *Refused, or the database's error.
func (t *Throttle) CheckClient(ctx context.Context, clientID string, addr netip.Addr, check func() (bool, error)) (bool, error) {
	ctr := t.clientCounter(clientID, addressKey(addr))
	// Held back, the answer is 429 whatever the secret: refuse before the
	// check, so that one address cannot spend the hashing budget logins
	// share (argon2id) without limit, as a held-back login hashes nothing.
	if wait, err := t.heldBack(ctx, ctr); err != nil || wait > 0 {
		if err != nil {
			return false, err
		}
		return false, refused(wait)
	}
	ok, err := check()
	if err != nil {
		return false, err // busy, a broken hash: nothing was judged
	}
	if ok {
		if clean, err := t.clean(ctx, ctr); err != nil || clean {
			return err == nil, err
		}
	}
	at, err := t.reserve(ctx, []counter{ctr})
	if err != nil {
		return false, err // a wrong secret's answer is not revealed
	}
	if err := at.resolve(ctx, !ok); err != nil {
		return false, err
	}
	return ok, nil
}

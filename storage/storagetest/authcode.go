package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// The cases of the authorization code flow's storage: families' grant
// type and auth time, codes, browser sessions, consents, and what user
// changes do to them.
var authCodeTests = []struct {
	name string
	fn   func(*testing.T, storage.Store)
}{
	{"FamilyGrantTypeAndAuthTime", testFamilyGrantTypeAndAuthTime},
	{"CreateFamilyRefusesIncomplete", testCreateFamilyRefusesIncomplete},
	{"CodeRoundTrip", testCodeRoundTrip},
	{"RedeemCodeOnce", testRedeemCodeOnce},
	{"RedeemCodeExpired", testRedeemCodeExpired},
	{"RedeemCodeUnknown", testRedeemCodeUnknown},
	{"RedeemCodeFailedFamilyKeepsCodeUnused", testRedeemCodeFailedFamily},
	{"RedeemCodeOtherUserOrClient", testRedeemCodeOtherUserOrClient},
	{"ConcurrentRedeemCodeOneWins", testConcurrentRedeemCode},
	{"RedeemCodeBrowserSessionEnded", testRedeemCodeBrowserSessionEnded},
	{"ConcurrentRedeemCodeAndLogout", testConcurrentRedeemCodeAndLogout},
	{"DeleteCodes", testDeleteCodes},
	{"BrowserSessionRoundTrip", testBrowserSessionRoundTrip},
	{"CreateBrowserSessionNeedsEnabledUser", testCreateBrowserSessionNeedsEnabledUser},
	{"EndBrowserSession", testEndBrowserSession},
	{"EndBrowserSessionRevokesItsClientsFamilies", testEndBrowserSessionFamilies},
	{"DeleteBrowserSessions", testDeleteBrowserSessions},
	{"Consent", testConsent},
	{"ConcurrentGrantConsentUnion", testConcurrentGrantConsent},
	{"ConsentCovers", testConsentCovers},
	{"RevokeConsents", testRevokeConsents},
	{"UserChangesEndBrowserLogins", testUserChangesEndBrowserLogins},
	{"SetUserPasswordKeepSessionsKeepsBrowserLogins", testKeepSessionsKeepsBrowserLogins},
	{"NULBytesRefused", testNULBytes},
}

// codeTTL is the codes' lifetime in these cases.
const codeTTL = time.Minute

// authCode returns an unused code for userID and clientID issued at base,
// in the browser session "bs-"+userID (which createCode creates).
func authCode(hash string, userID, clientID string) storage.AuthCode {
	return storage.AuthCode{
		Hash:             []byte(hash),
		ClientID:         clientID,
		UserID:           userID,
		RedirectURI:      "https://app.example/cb?x=1",
		CodeChallenge:    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Scope:            "openid profile",
		Resources:        []string{"https://api.example/", "https://other.example/"},
		Nonce:            "n-0S6_WzA2Mj",
		BrowserSessionID: "bs-" + userID,
		AuthTime:         base.Add(-time.Hour),
		CreatedAt:        base,
		ExpiresAt:        base.Add(codeTTL),
	}
}

// codeFamily is the session a redemption of c at now starts.
func codeFamily(id string, c storage.AuthCode, now time.Time) storage.Family {
	f := family(id, c.UserID, c.ClientID)
	f.GrantType = storage.GrantAuthorizationCode
	f.BrowserSessionID = c.BrowserSessionID
	f.AuthTime = c.AuthTime
	f.Scope = c.Scope
	f.CreatedAt, f.LastUsedAt = now, now
	return f
}

// createCode stores c, creating its user and its browser session (live
// until base+12h) first if they do not exist.
func createCode(t *testing.T, s storage.Store, c storage.AuthCode) {
	t.Helper()
	if _, err := s.GetUser(t.Context(), c.UserID); errors.Is(err, storage.ErrNotFound) {
		createUser(t, s, user(c.UserID, "name-"+c.UserID))
	}
	if _, err := s.GetBrowserSession(t.Context(), c.BrowserSessionID); errors.Is(err, storage.ErrNotFound) {
		createBrowserSession(t, s, browserSession(c.BrowserSessionID, c.UserID))
	}
	if err := s.CreateCode(t.Context(), c); err != nil {
		t.Fatalf("CreateCode(%s): %v", c.Hash, err)
	}
}

func getCode(t *testing.T, s storage.Store, hash []byte) storage.AuthCode {
	t.Helper()
	c, err := s.GetCode(t.Context(), hash)
	if err != nil {
		t.Fatalf("GetCode(%s): %v", hash, err)
	}
	return c
}

func checkCode(t *testing.T, got, want storage.AuthCode) {
	t.Helper()
	if !bytes.Equal(got.Hash, want.Hash) || got.ClientID != want.ClientID || got.UserID != want.UserID ||
		got.RedirectURI != want.RedirectURI || got.CodeChallenge != want.CodeChallenge || got.Scope != want.Scope ||
		!slices.Equal(got.Resources, want.Resources) || got.Nonce != want.Nonce ||
		got.BrowserSessionID != want.BrowserSessionID || got.FamilyID != want.FamilyID {
		t.Errorf("code = %+v\nwant   %+v", got, want)
	}
	checkTime(t, "AuthTime", got.AuthTime, want.AuthTime)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "UsedAt", got.UsedAt, want.UsedAt)
}

// wantNoFamily fails if the family id exists.
func wantNoFamily(t *testing.T, s storage.Store, id string) {
	t.Helper()
	if _, err := s.GetFamily(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("family %s exists (%v), want none", id, err)
	}
}

// wantUnused fails if the code is not stored unused.
func wantUnused(t *testing.T, s storage.Store, hash []byte) {
	t.Helper()
	if c := getCode(t, s, hash); c.Used() || c.FamilyID != "" {
		t.Errorf("code %s: UsedAt %v FamilyID %q, want unused", hash, c.UsedAt, c.FamilyID)
	}
}

// testFamilyGrantTypeAndAuthTime: the grant and the sign-in time come back
// from every read of a family.
func testFamilyGrantTypeAndAuthTime(t *testing.T, s storage.Store) {
	ctx := t.Context()
	f := family("fam-code", "user-1", "app")
	f.GrantType = storage.GrantAuthorizationCode
	f.AuthTime = time.Date(2024, 12, 31, 18, 30, 0, 5000, time.FixedZone("X", -3600))
	createFamily(t, s, f)
	checkFamily(t, getFamily(t, s, f.ID), f)
	pw := family("fam-pw", "user-1", "app")
	createFamily(t, s, pw)

	list, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "user-1"})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListFamilies = %v, %v", list, err)
	}
	for _, got := range list {
		if got.ID == f.ID {
			checkFamily(t, got, f)
		} else {
			checkFamily(t, got, pw)
		}
	}
	now := base.Add(time.Hour)
	r, err := s.RotateFamily(ctx, f.ID, 0, now, now.Add(idleTTL))
	if err != nil {
		t.Fatal(err)
	}
	if r.GrantType != storage.GrantAuthorizationCode || !r.AuthTime.Equal(f.AuthTime) {
		t.Errorf("rotated: GrantType %q AuthTime %v, want %q %v", r.GrantType, r.AuthTime, f.GrantType, f.AuthTime)
	}
	chk, err := s.CheckAccess(ctx, "", f.ID)
	if err != nil || chk.Family.GrantType != storage.GrantAuthorizationCode || !chk.Family.AuthTime.Equal(f.AuthTime) {
		t.Errorf("CheckAccess family = %+v, %v", chk.Family, err)
	}
}

// testCreateFamilyRefusesIncomplete: a session must say which grant
// started it and when its user signed in.
func testCreateFamilyRefusesIncomplete(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-1", "ada"))
	for name, change := range map[string]func(*storage.Family){
		"no grant type":      func(f *storage.Family) { f.GrantType = "" },
		"unknown grant type": func(f *storage.Family) { f.GrantType = "client_credentials" },
		"no auth time":       func(f *storage.Family) { f.AuthTime = time.Time{} },
	} {
		f := family("fam-"+name, "user-1", "app")
		change(&f)
		if err := s.CreateFamily(t.Context(), f); err == nil {
			t.Errorf("CreateFamily(%s): no error", name)
		}
		if err := s.CreateFamilies(t.Context(), []storage.Family{f}); err == nil {
			t.Errorf("CreateFamilies(%s): no error", name)
		}
		wantNoFamily(t, s, f.ID)
	}
}

func testCodeRoundTrip(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := authCode("hash-\x00\xff-1", "user-1", "app") // a hash is bytes
	c.CreatedAt = time.Date(2025, 1, 1, 9, 0, 0, 123456000, time.FixedZone("X", 7200))
	createCode(t, s, c)
	checkCode(t, getCode(t, s, c.Hash), c)

	bare := authCode("hash-2", "user-1", "app")
	bare.Resources, bare.Nonce, bare.RedirectURI = nil, "", ""
	createCode(t, s, bare)
	checkCode(t, getCode(t, s, bare.Hash), bare)

	dup := authCode("hash-2", "user-1", "other")
	wantErr(t, "CreateCode duplicate", s.CreateCode(ctx, dup), storage.ErrAlreadyExists)
	checkCode(t, getCode(t, s, bare.Hash), bare)
	_, err := s.GetCode(ctx, []byte("nope"))
	wantErr(t, "GetCode unknown", err, storage.ErrNotFound)
}

// testRedeemCodeOnce: a code starts one session; presented again it
// names that session (RFC 6749 §4.1.2: the caller revokes it).
func testRedeemCodeOnce(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := authCode("code-1", "user-1", "app")
	createCode(t, s, c)
	now := base.Add(codeTTL - time.Microsecond) // the last instant it is valid
	f := codeFamily("fam-1", c, now)
	got, err := s.RedeemCode(ctx, c.Hash, f, now)
	if err != nil {
		t.Fatalf("RedeemCode: %v", err)
	}
	want := c
	want.UsedAt, want.FamilyID = now, f.ID
	checkCode(t, got, want)
	checkCode(t, getCode(t, s, c.Hash), want)
	checkFamily(t, getFamily(t, s, f.ID), f)

	for i, at := range []time.Time{now, base.Add(time.Hour)} { // again; after expiry too
		again := codeFamily("fam-again-"+strconv.Itoa(i), c, at)
		got, err := s.RedeemCode(ctx, c.Hash, again, at)
		wantErr(t, "RedeemCode again", err, storage.ErrCodeUsed)
		checkCode(t, got, want) // FamilyID: the session to revoke
		wantNoFamily(t, s, again.ID)
	}
	checkCode(t, getCode(t, s, c.Hash), want)
}

// testRedeemCodeExpired: at ExpiresAt the code is expired.
func testRedeemCodeExpired(t *testing.T, s storage.Store) {
	c := authCode("code-1", "user-1", "app")
	createCode(t, s, c)
	for _, now := range []time.Time{c.ExpiresAt, c.ExpiresAt.Add(time.Hour)} {
		f := codeFamily("fam-1", c, now)
		_, err := s.RedeemCode(t.Context(), c.Hash, f, now)
		wantErr(t, "RedeemCode expired", err, storage.ErrCodeExpired)
		wantNoFamily(t, s, f.ID)
		wantUnused(t, s, c.Hash)
	}
}

func testRedeemCodeUnknown(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-1", "ada"))
	c := authCode("code-1", "user-1", "app")
	f := codeFamily("fam-1", c, base)
	_, err := s.RedeemCode(t.Context(), c.Hash, f, base)
	wantErr(t, "RedeemCode unknown", err, storage.ErrNotFound)
	wantNoFamily(t, s, f.ID)
}

// testRedeemCodeFailedFamily: when the session cannot be created (its
// user disabled, its ID taken, its password changed) nothing changes:
// the code stays unused.
func testRedeemCodeFailedFamily(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-d", "dis"))
	createBrowserSession(t, s, browserSession("bs-user-d", "user-d")) // the disable revokes it
	if err := s.SetUserDisabled(ctx, "dis", true, base); err != nil {
		t.Fatal(err)
	}
	disabled := authCode("code-d", "user-d", "app")
	createCode(t, s, disabled) // issued after the disable (racing it)
	f := codeFamily("fam-d", disabled, base)
	_, err := s.RedeemCode(ctx, disabled.Hash, f, base)
	wantErr(t, "RedeemCode for a disabled user", err, storage.ErrNotFound)
	wantNoFamily(t, s, f.ID)
	wantUnused(t, s, disabled.Hash)

	c := authCode("code-1", "user-1", "app")
	createCode(t, s, c)
	createFamily(t, s, family("taken", "user-1", "app"))
	_, err = s.RedeemCode(ctx, c.Hash, codeFamily("taken", c, base), base)
	wantErr(t, "RedeemCode into a taken family ID", err, storage.ErrAlreadyExists)
	wantUnused(t, s, c.Hash)

	stale := codeFamily("fam-stale", c, base)
	stale.PasswordHash = "not-the-hash"
	_, err = s.RedeemCode(ctx, c.Hash, stale, base)
	wantErr(t, "RedeemCode with a stale password hash", err, storage.ErrNotFound)
	wantNoFamily(t, s, stale.ID)
	wantUnused(t, s, c.Hash)

	// And the code still works.
	if _, err := s.RedeemCode(ctx, c.Hash, codeFamily("fam-1", c, base), base); err != nil {
		t.Fatalf("RedeemCode after the failures: %v", err)
	}
}

// testRedeemCodeOtherUserOrClient: a code starts a session only for the
// user and client it was issued to.
func testRedeemCodeOtherUserOrClient(t *testing.T, s storage.Store) {
	c := authCode("code-1", "user-1", "app")
	createCode(t, s, c)
	createUser(t, s, user("user-2", "bob"))
	for name, f := range map[string]storage.Family{
		"other user":   codeFamily("fam-u", authCode("x", "user-2", "app"), base),
		"other client": codeFamily("fam-c", authCode("x", "user-1", "evil"), base),
	} {
		if _, err := s.RedeemCode(t.Context(), c.Hash, f, base); err == nil {
			t.Errorf("RedeemCode for %s: no error", name)
		}
		wantNoFamily(t, s, f.ID)
		wantUnused(t, s, c.Hash)
	}
}

// testConcurrentRedeemCode: of many redemptions of one code at once,
// exactly one starts a session; the others learn which.
func testConcurrentRedeemCode(t *testing.T, s storage.Store) {
	c := authCode("code-1", "user-1", "app")
	createCode(t, s, c)
	const n = 16
	got := make([]storage.AuthCode, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.RedeemCode(t.Context(), c.Hash, codeFamily("fam-"+strconv.Itoa(i), c, base), base)
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != "" {
				t.Errorf("redemptions %s and fam-%d both won", winner, i)
			}
			winner = "fam-" + strconv.Itoa(i)
		case !errors.Is(err, storage.ErrCodeUsed):
			t.Errorf("redemption %d: %v, want ErrCodeUsed", i, err)
		}
	}
	if winner == "" {
		t.Fatal("no redemption won")
	}
	for i, err := range errs {
		if err != nil && got[i].FamilyID != winner {
			t.Errorf("redemption %d: FamilyID %q, want the winner %s", i, got[i].FamilyID, winner)
		}
	}
	fams, err := s.ListFamilies(t.Context(), storage.FamilyFilter{ClientID: "app"})
	if err != nil || len(fams) != 1 || fams[0].ID != winner {
		t.Errorf("families = %v, %v; want only %s", ids(fams), err, winner)
	}
}

// testRedeemCodeBrowserSessionEnded: a code of a browser session that is
// signed out, expired, gone or another user's starts no session and stays
// unused (RP-Initiated Logout 1.0 §2); a used code is still told as used
// and an expired one as expired.
func testRedeemCodeBrowserSessionEnded(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	createUser(t, s, user("user-2", "bob"))
	revoked := browserSession("bs-revoked", "user-1")
	createBrowserSession(t, s, revoked)
	if _, err := s.EndBrowserSession(ctx, revoked.ID, "", base); err != nil {
		t.Fatal(err)
	}
	expiring := browserSession("bs-expiring", "user-1")
	expiring.ExpiresAt = base.Add(10 * time.Second) // before the code's expiry
	createBrowserSession(t, s, expiring)
	createBrowserSession(t, s, browserSession("bs-bob", "user-2"))

	for _, tc := range []struct {
		name, bs string
		now      time.Time
	}{
		{"revoked", revoked.ID, base},
		{"expired", expiring.ID, expiring.ExpiresAt},
		{"unknown", "bs-nope", base},
		{"another user's", "bs-bob", base},
	} {
		c := authCode("code-"+tc.name, "user-1", "app")
		c.BrowserSessionID = tc.bs
		if err := s.CreateCode(ctx, c); err != nil { // as it was, or as a forged row would be
			t.Fatal(err)
		}
		f := codeFamily("fam-"+tc.name, c, tc.now)
		_, err := s.RedeemCode(ctx, c.Hash, f, tc.now)
		wantErr(t, "RedeemCode("+tc.name+" browser session)", err, storage.ErrBrowserSessionEnded)
		wantNoFamily(t, s, f.ID)
		wantUnused(t, s, c.Hash)
	}

	// Precedence: used, then expired, then the browser session.
	c := authCode("code-used", "user-1", "app")
	c.BrowserSessionID = expiring.ID
	createCode(t, s, c)
	if _, err := s.RedeemCode(ctx, c.Hash, codeFamily("fam-used", c, base), base); err != nil {
		t.Fatalf("RedeemCode while the browser session is live: %v", err)
	}
	now := expiring.ExpiresAt
	got, err := s.RedeemCode(ctx, c.Hash, codeFamily("fam-replay", c, now), now)
	wantErr(t, "RedeemCode(used, browser session ended)", err, storage.ErrCodeUsed)
	if got.FamilyID != "fam-used" {
		t.Errorf("replay: FamilyID %q, want fam-used", got.FamilyID)
	}
	old := authCode("code-old", "user-1", "app")
	old.BrowserSessionID = revoked.ID
	if err := s.CreateCode(ctx, old); err != nil {
		t.Fatal(err)
	}
	_, err = s.RedeemCode(ctx, old.Hash, codeFamily("fam-old", old, old.ExpiresAt), old.ExpiresAt)
	wantErr(t, "RedeemCode(expired, browser session ended)", err, storage.ErrCodeExpired)
	wantNoFamily(t, s, "fam-old")
}

// testConcurrentRedeemCodeAndLogout: codes of one browser session redeemed
// while that browser signs out (EndBrowserSession with the client, as the
// logout endpoint does) never leave a live family of it: each redemption
// is wholly before the sign-out, and its family revoked by it, or fails
// with ErrBrowserSessionEnded.
func testConcurrentRedeemCodeAndLogout(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	const rounds, n = 8, 16 // n goroutines a round: half redeem, half sign out
	for r := range rounds {
		bs := "bs-" + strconv.Itoa(r)
		createBrowserSession(t, s, browserSession(bs, "user-1"))
		codes := make([]storage.AuthCode, n/2)
		for i := range codes {
			codes[i] = authCode(fmt.Sprintf("code-%d-%d", r, i), "user-1", "app")
			codes[i].BrowserSessionID = bs
			createCode(t, s, codes[i])
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n / 2 {
			wg.Go(func() {
				<-start
				c := codes[i]
				_, err := s.RedeemCode(ctx, c.Hash, codeFamily(fmt.Sprintf("fam-%d-%d", r, i), c, base), base)
				if err != nil && !errors.Is(err, storage.ErrBrowserSessionEnded) {
					t.Errorf("RedeemCode %d/%d: %v, want nil or ErrBrowserSessionEnded", r, i, err)
				}
			})
			wg.Go(func() {
				<-start
				if _, err := s.EndBrowserSession(ctx, bs, "app", base); err != nil {
					t.Errorf("EndBrowserSession: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if getBrowserSession(t, s, bs).Live(base) {
			t.Fatalf("round %d: browser session live after the revocations", r)
		}
		fams, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "user-1", BrowserSessionID: bs})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if !f.Revoked() {
				t.Errorf("round %d: family %s of the signed-out browser session is live", r, f.ID)
			}
		}
	}
}

func testDeleteCodes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cutoff := base.Add(time.Hour)
	for i, exp := range []time.Time{base, base.Add(time.Minute), cutoff.Add(-time.Microsecond), cutoff, cutoff.Add(time.Minute)} {
		c := authCode("code-"+strconv.Itoa(i), "user-1", "app")
		c.ExpiresAt = exp
		createCode(t, s, c)
	}
	// Used or not: a used one goes too.
	if _, err := s.RedeemCode(ctx, []byte("code-0"), codeFamily("fam", authCode("code-0", "user-1", "app"), base), base.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	deleteInBatches(t, "DeleteCodes", 0, 2, 1, func(limit int) (int64, error) {
		return s.DeleteCodes(ctx, cutoff, limit)
	})
	for i, want := range []bool{false, false, false, true, true} {
		if _, err := s.GetCode(ctx, []byte("code-"+strconv.Itoa(i))); (err == nil) != want {
			t.Errorf("code-%d kept = %v, want %v", i, err == nil, want)
		}
	}
}

// browserSession returns a live browser session of userID signed in at base.
func browserSession(id, userID string) storage.BrowserSession {
	return storage.BrowserSession{
		ID: id, UserID: userID,
		AuthTime: base, CreatedAt: base, ExpiresAt: base.Add(12 * time.Hour),
	}
}

func createBrowserSession(t *testing.T, s storage.Store, b storage.BrowserSession) {
	t.Helper()
	if _, err := s.GetUser(t.Context(), b.UserID); errors.Is(err, storage.ErrNotFound) {
		createUser(t, s, user(b.UserID, "name-"+b.UserID))
	}
	if err := s.CreateBrowserSession(t.Context(), b); err != nil {
		t.Fatalf("CreateBrowserSession(%s): %v", b.ID, err)
	}
}

func getBrowserSession(t *testing.T, s storage.Store, id string) storage.BrowserSession {
	t.Helper()
	b, err := s.GetBrowserSession(t.Context(), id)
	if err != nil {
		t.Fatalf("GetBrowserSession(%s): %v", id, err)
	}
	return b
}

func checkBrowserSession(t *testing.T, got, want storage.BrowserSession) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.PasswordHash != "" {
		t.Errorf("browser session = %+v\nwant              %+v", got, want)
	}
	checkTime(t, "AuthTime", got.AuthTime, want.AuthTime)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
}

func testBrowserSessionRoundTrip(t *testing.T, s storage.Store) {
	ctx := t.Context()
	b := browserSession("bs-1", "user-1")
	b.AuthTime = time.Date(2025, 1, 1, 1, 2, 3, 4000, time.FixedZone("X", 3600))
	createBrowserSession(t, s, b)
	checkBrowserSession(t, getBrowserSession(t, s, b.ID), b)
	if !b.Live(base) || b.Live(b.ExpiresAt) {
		t.Error("Live: want live before ExpiresAt and not at it")
	}
	wantErr(t, "CreateBrowserSession duplicate", s.CreateBrowserSession(ctx, browserSession("bs-1", "user-1")), storage.ErrAlreadyExists)
	_, err := s.GetBrowserSession(ctx, "nope")
	wantErr(t, "GetBrowserSession unknown", err, storage.ErrNotFound)
}

// testCreateBrowserSessionNeedsEnabledUser: as a family, a sign-in racing
// a disable or a password change does not outlive it.
func testCreateBrowserSessionNeedsEnabledUser(t *testing.T, s storage.Store) {
	ctx := t.Context()
	wantErr(t, "CreateBrowserSession(unknown user)", s.CreateBrowserSession(ctx, browserSession("bs-1", "nobody")), storage.ErrNotFound)
	u := user("user-d", "dis")
	createUser(t, s, u)
	if err := s.SetUserDisabled(ctx, "dis", true, base); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateBrowserSession(disabled user)", s.CreateBrowserSession(ctx, browserSession("bs-2", "user-d")), storage.ErrNotFound)
	if err := s.SetUserDisabled(ctx, "dis", false, base); err != nil {
		t.Fatal(err)
	}
	stale := browserSession("bs-3", "user-d")
	stale.PasswordHash = "old-hash"
	wantErr(t, "CreateBrowserSession(old password)", s.CreateBrowserSession(ctx, stale), storage.ErrNotFound)
	for _, id := range []string{"bs-1", "bs-2", "bs-3"} {
		if _, err := s.GetBrowserSession(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("browser session %s was created: %v", id, err)
		}
	}
	current := browserSession("bs-4", "user-d")
	current.PasswordHash = u.PasswordHash
	createBrowserSession(t, s, current)
	checkBrowserSession(t, getBrowserSession(t, s, "bs-4"), current)
}

func testEndBrowserSession(t *testing.T, s storage.Store) {
	ctx := t.Context()
	b := browserSession("bs-1", "user-1")
	createBrowserSession(t, s, b)
	now := base.Add(time.Minute)
	if n, err := s.EndBrowserSession(ctx, b.ID, "", now); err != nil || n != 0 {
		t.Fatalf("EndBrowserSession = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.EndBrowserSession(ctx, b.ID, "", now.Add(time.Minute)); err != nil {
		t.Fatalf("EndBrowserSession again: %v", err)
	}
	got := getBrowserSession(t, s, b.ID)
	checkTime(t, "RevokedAt", got.RevokedAt, now) // the first revocation
	if got.Live(now) {
		t.Error("revoked browser session is live")
	}
	_, err := s.EndBrowserSession(ctx, "nope", "", now)
	wantErr(t, "EndBrowserSession unknown", err, storage.ErrNotFound)
}

// testEndBrowserSessionFamilies: ending a browser session with a client
// revokes exactly the live families that session started for that client
// (RP-Initiated Logout 1.0 §2, DESIGN.md §11): not its other clients',
// not other browser sessions', not the user's password-grant ones. Ending
// it again revokes what is live of them by then (a retry finishes the
// job) and keeps the first revocation time; an unknown session changes
// nothing.
func testEndBrowserSessionFamilies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createBrowserSession(t, s, browserSession("bs-1", "user-1"))
	createBrowserSession(t, s, browserSession("bs-2", "user-1"))
	createBrowserSession(t, s, browserSession("bs-3", "user-2"))
	mk := func(id, userID, clientID, bs string) {
		f := family(id, userID, clientID)
		f.GrantType = storage.GrantAuthorizationCode
		f.BrowserSessionID = bs
		createFamily(t, s, f)
	}
	mk("a-app-bs1", "user-1", "app", "bs-1")
	mk("a-app-bs1-b", "user-1", "app", "bs-1")
	mk("a-other-bs1", "user-1", "other", "bs-1")
	mk("a-app-bs2", "user-1", "app", "bs-2")
	createFamily(t, s, family("a-app-pw", "user-1", "app"))
	mk("b-app-bs3", "user-2", "app", "bs-3")
	// A family naming bs-1 but of another user: not one bs-1 started.
	mk("b-app-bs1", "user-2", "app", "bs-1")
	expired := family("a-app-bs1-expired", "user-1", "app")
	expired.GrantType, expired.BrowserSessionID = storage.GrantAuthorizationCode, "bs-1"
	expired.IdleExpiresAt = base.Add(time.Minute)
	createFamily(t, s, expired)

	now := base.Add(time.Hour)
	n, err := s.EndBrowserSession(ctx, "bs-1", "app", now)
	if err != nil || n != 2 {
		t.Fatalf("EndBrowserSession(bs-1, app) = %d, %v; want 2, nil", n, err)
	}
	checkTime(t, "RevokedAt", getBrowserSession(t, s, "bs-1").RevokedAt, now)
	for _, id := range []string{"a-app-bs1", "a-app-bs1-b"} {
		if f := getFamily(t, s, id); !f.RevokedAt.Equal(now) || f.RevokeReason != storage.ReasonLogout {
			t.Errorf("%s: RevokedAt %v reason %q, want revoked at %v for %q", id, f.RevokedAt, f.RevokeReason, now, storage.ReasonLogout)
		}
	}
	live := []string{"a-other-bs1", "a-app-bs2", "a-app-pw", "b-app-bs3", "b-app-bs1"}
	for _, id := range append(live, "a-app-bs1-expired") {
		if f := getFamily(t, s, id); f.Revoked() {
			t.Errorf("%s was revoked", id)
		}
	}
	for _, id := range []string{"bs-2", "bs-3"} {
		if !getBrowserSession(t, s, id).Live(now) {
			t.Errorf("browser session %s was ended", id)
		}
	}

	// Already ended: the session keeps its first time, and the client's
	// families of it live by now are revoked (a retry after a partial
	// logout, or another client's hint).
	later := now.Add(time.Minute)
	n, err = s.EndBrowserSession(ctx, "bs-1", "other", later)
	if err != nil || n != 1 {
		t.Fatalf("EndBrowserSession(bs-1 ended, other) = %d, %v; want 1, nil", n, err)
	}
	checkTime(t, "RevokedAt", getBrowserSession(t, s, "bs-1").RevokedAt, now)
	if f := getFamily(t, s, "a-other-bs1"); !f.RevokedAt.Equal(later) {
		t.Errorf("a-other-bs1: RevokedAt %v, want %v", f.RevokedAt, later)
	}
	n, err = s.EndBrowserSession(ctx, "bs-1", "app", later)
	if err != nil || n != 0 {
		t.Errorf("EndBrowserSession(bs-1, app) again = %d, %v; want 0, nil", n, err)
	}
	if f := getFamily(t, s, "a-app-bs1"); !f.RevokedAt.Equal(now) {
		t.Errorf("a-app-bs1: RevokedAt %v, want the first revocation %v", f.RevokedAt, now)
	}

	_, err = s.EndBrowserSession(ctx, "bs-9", "app", later)
	wantErr(t, "EndBrowserSession(unknown, app)", err, storage.ErrNotFound)
	for _, id := range live[1:] {
		if f := getFamily(t, s, id); f.Revoked() {
			t.Errorf("%s was revoked", id)
		}
	}
}

func testDeleteBrowserSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cutoff := base.Add(24 * time.Hour)
	// Expired before the cutoff (3), revoked before it (1), neither (3).
	for i, exp := range []time.Time{base, cutoff.Add(-time.Hour), cutoff.Add(-time.Microsecond), cutoff, cutoff.Add(time.Hour)} {
		b := browserSession("bs-"+strconv.Itoa(i), "user-1")
		b.ExpiresAt = exp
		createBrowserSession(t, s, b)
	}
	revoke := func(id string, at time.Time) {
		b := browserSession(id, "user-1")
		b.ExpiresAt = cutoff.Add(time.Hour)
		createBrowserSession(t, s, b)
		if _, err := s.EndBrowserSession(ctx, id, "", at); err != nil {
			t.Fatal(err)
		}
	}
	revoke("revoked-old", cutoff.Add(-time.Minute))
	revoke("revoked-new", cutoff)
	deleteInBatches(t, "DeleteBrowserSessions", 0, 2, 2, func(limit int) (int64, error) {
		return s.DeleteBrowserSessions(ctx, cutoff, limit)
	})
	for id, want := range map[string]bool{"bs-0": false, "bs-1": false, "bs-2": false, "revoked-old": false,
		"bs-3": true, "bs-4": true, "revoked-new": true} {
		if _, err := s.GetBrowserSession(ctx, id); (err == nil) != want {
			t.Errorf("%s kept = %v, want %v", id, err == nil, want)
		}
	}
}

func getConsent(t *testing.T, s storage.Store, userID, clientID string) storage.Consent {
	t.Helper()
	c, err := s.GetConsent(t.Context(), userID, clientID)
	if err != nil {
		t.Fatalf("GetConsent(%s, %s): %v", userID, clientID, err)
	}
	return c
}

func checkConsent(t *testing.T, got storage.Consent, userID, clientID string, scopes []string, grantedAt time.Time) {
	t.Helper()
	if got.UserID != userID || got.ClientID != clientID || !slices.Equal(got.Scopes, scopes) {
		t.Errorf("consent = %+v, want %s %s %q", got, userID, clientID, scopes)
	}
	checkTime(t, "GrantedAt", got.GrantedAt, grantedAt)
}

func grant(t *testing.T, s storage.Store, userID, clientID string, now time.Time, scopes ...string) {
	t.Helper()
	if err := s.GrantConsent(t.Context(), userID, clientID, scopes, now); err != nil {
		t.Fatalf("GrantConsent(%s, %s, %q): %v", userID, clientID, scopes, err)
	}
}

// testConsent: a consent is the union of the scopes granted, the latest
// grant's time, per user and client.
func testConsent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, err := s.GetConsent(ctx, "user-1", "app")
	wantErr(t, "GetConsent before any grant", err, storage.ErrNotFound)

	grant(t, s, "user-1", "bare", base) // consent to the client, no scope
	checkConsent(t, getConsent(t, s, "user-1", "bare"), "user-1", "bare", nil, base)

	grant(t, s, "user-1", "app", base, "profile", "openid", "profile")
	checkConsent(t, getConsent(t, s, "user-1", "app"), "user-1", "app", []string{"openid", "profile"}, base)
	later := base.Add(time.Hour)
	grant(t, s, "user-1", "app", later, "email", "openid")
	checkConsent(t, getConsent(t, s, "user-1", "app"), "user-1", "app", []string{"email", "openid", "profile"}, later)
	grant(t, s, "user-1", "app", base.Add(time.Minute), "Zeta", "email", "openid") // an older grant does not move GrantedAt back
	checkConsent(t, getConsent(t, s, "user-1", "app"), "user-1", "app", []string{"Zeta", "email", "openid", "profile"}, later)

	grant(t, s, "user-2", "app", base, "other")
	grant(t, s, "user-1", "B-app", base, "x")
	list, err := s.ListConsents(ctx, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, c := range list {
		clients = append(clients, c.ClientID)
	}
	if want := []string{"B-app", "app", "bare"}; !slices.Equal(clients, want) { // by code point
		t.Errorf("ListConsents clients = %q, want %q", clients, want)
	}
	if none, err := s.ListConsents(ctx, "nobody"); err != nil || len(none) != 0 {
		t.Errorf("ListConsents(nobody) = %v, %v", none, err)
	}
}

// testConcurrentGrantConsent: grants at once never lose a scope.
func testConcurrentGrantConsent(t *testing.T, s storage.Store) {
	const n = 16
	start := make(chan struct{})
	var wg sync.WaitGroup
	want := []string{"common"}
	for i := range n {
		scope := fmt.Sprintf("s%02d", i)
		want = append(want, scope)
		wg.Go(func() {
			<-start
			if err := s.GrantConsent(t.Context(), "user-1", "app", []string{scope, "common"}, base.Add(time.Duration(i)*time.Second)); err != nil {
				t.Errorf("GrantConsent %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(want)
	checkConsent(t, getConsent(t, s, "user-1", "app"), "user-1", "app", want, base.Add((n-1)*time.Second))
}

func testConsentCovers(t *testing.T, s storage.Store) {
	grant(t, s, "user-1", "app", base, "openid", "profile")
	c := getConsent(t, s, "user-1", "app")
	for _, tc := range []struct {
		scope []string
		want  bool
	}{
		{nil, true},
		{[]string{"openid"}, true},
		{[]string{"profile", "openid"}, true},
		{[]string{"openid", "email"}, false}, // wider: ask again
		{[]string{"Openid"}, false},
	} {
		if got := c.Covers(tc.scope); got != tc.want {
			t.Errorf("Covers(%q) = %v, want %v", tc.scope, got, tc.want)
		}
	}
}

// testRevokeConsents: revoking a consent ends that client's sessions for
// that user, and only those.
func testRevokeConsents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	createUser(t, s, user("user-2", "bob"))
	for _, f := range []storage.Family{
		family("ada-a", "user-1", "app-a"), family("ada-b", "user-1", "app-b"),
		family("bob-a", "user-2", "app-a"), family("ada-c", "user-1", "app-c"),
	} {
		createFamily(t, s, f)
	}
	grant(t, s, "user-1", "app-a", base, "openid")
	grant(t, s, "user-1", "app-b", base, "openid")
	grant(t, s, "user-1", "app-c", base)
	grant(t, s, "user-2", "app-a", base, "openid")
	if _, _, err := s.RevokeConsents(ctx, "", "app-a", base); err == nil {
		t.Error("RevokeConsents(no user): no error")
	}

	now := base.Add(time.Hour)
	consents, sessions, err := s.RevokeConsents(ctx, "user-1", "app-a", now)
	if err != nil || consents != 1 || sessions != 1 {
		t.Fatalf("RevokeConsents(ada, app-a) = %d, %d, %v; want 1, 1", consents, sessions, err)
	}
	if f := getFamily(t, s, "ada-a"); !f.RevokedAt.Equal(now) || f.RevokeReason != storage.ReasonConsentRevoked {
		t.Errorf("ada-a: RevokedAt %v reason %q", f.RevokedAt, f.RevokeReason)
	}
	for _, id := range []string{"ada-b", "bob-a", "ada-c"} {
		if getFamily(t, s, id).Revoked() {
			t.Errorf("%s revoked", id)
		}
	}
	_, err = s.GetConsent(ctx, "user-1", "app-a")
	wantErr(t, "GetConsent after revoke", err, storage.ErrNotFound)
	getConsent(t, s, "user-2", "app-a")

	consents, sessions, err = s.RevokeConsents(ctx, "user-1", "", now)
	if err != nil || consents != 2 || sessions != 2 {
		t.Fatalf("RevokeConsents(ada, all) = %d, %d, %v; want 2, 2", consents, sessions, err)
	}
	if list, err := s.ListConsents(ctx, "user-1"); err != nil || len(list) != 0 {
		t.Errorf("ListConsents after revoking all = %v, %v", list, err)
	}
	if getFamily(t, s, "bob-a").Revoked() {
		t.Error("bob-a revoked")
	}
	if c, n, err := s.RevokeConsents(ctx, "user-1", "", now); err != nil || c != 0 || n != 0 {
		t.Errorf("RevokeConsents again = %d, %d, %v; want 0, 0", c, n, err)
	}
}

// browserLogins creates, for ada (user-1) and bob (user-2), a browser
// session each, and for ada an unused code, a used one (with its
// session), an expired browser session and a revoked one.
func browserLogins(t *testing.T, s storage.Store) {
	t.Helper()
	createUser(t, s, user("user-1", "ada"))
	createUser(t, s, user("user-2", "bob"))
	createBrowserSession(t, s, browserSession("ada-bs", "user-1"))
	createBrowserSession(t, s, browserSession("bob-bs", "user-2"))
	expired := browserSession("ada-expired", "user-1")
	expired.ExpiresAt = base.Add(time.Minute)
	createBrowserSession(t, s, expired)
	createBrowserSession(t, s, browserSession("ada-revoked", "user-1"))
	if _, err := s.EndBrowserSession(t.Context(), "ada-revoked", "", base); err != nil {
		t.Fatal(err)
	}
	adaCode := func(hash string) storage.AuthCode {
		c := authCode(hash, "user-1", "app")
		c.BrowserSessionID = "ada-bs"
		return c
	}
	createCode(t, s, adaCode("ada-unused"))
	bob := authCode("bob-unused", "user-2", "app")
	bob.BrowserSessionID = "bob-bs"
	createCode(t, s, bob)
	used := adaCode("ada-used")
	createCode(t, s, used)
	if _, err := s.RedeemCode(t.Context(), used.Hash, codeFamily("ada-fam", used, base), base); err != nil {
		t.Fatal(err)
	}
	grant(t, s, "user-1", "app", base, "openid")
	grant(t, s, "user-2", "app", base, "openid")
}

// checkBrowserLoginsEnded checks that a change to ada at now revoked her
// live browser session and deleted her unused code, and nothing else.
func checkBrowserLoginsEnded(t *testing.T, s storage.Store, what string, now time.Time) {
	t.Helper()
	ctx := t.Context()
	checkTime(t, what+": ada-bs RevokedAt", getBrowserSession(t, s, "ada-bs").RevokedAt, now)
	checkTime(t, what+": ada-revoked RevokedAt", getBrowserSession(t, s, "ada-revoked").RevokedAt, base)
	checkTime(t, what+": ada-expired RevokedAt", getBrowserSession(t, s, "ada-expired").RevokedAt, time.Time{})
	checkTime(t, what+": bob-bs RevokedAt", getBrowserSession(t, s, "bob-bs").RevokedAt, time.Time{})
	if _, err := s.GetCode(ctx, []byte("ada-unused")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s: ada's unused code kept (%v)", what, err)
	}
	if c := getCode(t, s, []byte("ada-used")); c.FamilyID != "ada-fam" { // a replay still names its session
		t.Errorf("%s: ada's used code = %+v", what, c)
	}
	wantUnused(t, s, []byte("bob-unused"))
	// Her codes cannot start a session any more.
	late := authCode("ada-unused", "user-1", "app")
	late.BrowserSessionID = "ada-bs"
	_, err := s.RedeemCode(ctx, late.Hash, codeFamily("late", late, now), now)
	wantErr(t, what+": RedeemCode", err, storage.ErrNotFound)
}

func testUserChangesEndBrowserLogins(t *testing.T, s storage.Store) {
	now := base.Add(2 * time.Minute)
	for what, change := range map[string]func(storage.Store) error{
		"disable": func(s storage.Store) error { return s.SetUserDisabled(t.Context(), "ada", true, now) },
		"set password": func(s storage.Store) error {
			return s.SetUserPassword(t.Context(), "ada", "$argon2id$new", false, now)
		},
		"delete": func(s storage.Store) error { return s.DeleteUser(t.Context(), "ada", now) },
	} {
		t.Run(what, func(t *testing.T) {
			// Each change on a store of its own: the suite's store is
			// shared, so clear it by hand.
			clearAuthState(t, s)
			browserLogins(t, s)
			if err := change(s); err != nil {
				t.Fatal(err)
			}
			checkBrowserLoginsEnded(t, s, what, now)
			_, err := s.GetConsent(t.Context(), "user-1", "app")
			if what == "delete" {
				wantErr(t, "GetConsent after delete", err, storage.ErrNotFound)
			} else if err != nil {
				t.Errorf("%s deleted ada's consent: %v", what, err)
			}
			getConsent(t, s, "user-2", "app")
		})
	}
}

// clearAuthState removes what browserLogins creates, so that it can run
// again on the same store.
func clearAuthState(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	for _, name := range []string{"ada", "bob"} {
		if err := s.DeleteUser(ctx, name, base); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
	}
	far := base.Add(1000 * time.Hour)
	for _, del := range []func(int) (int64, error){
		func(n int) (int64, error) { return s.DeleteCodes(ctx, far, n) },
		func(n int) (int64, error) { return s.DeleteBrowserSessions(ctx, far, n) },
		func(n int) (int64, error) { return s.DeleteFamilies(ctx, far, far, n) },
	} {
		if _, err := del(1000); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"user-1", "user-2"} {
		if _, _, err := s.RevokeConsents(ctx, u, "", base); err != nil {
			t.Fatal(err)
		}
	}
}

// testKeepSessionsKeepsBrowserLogins: a password set keeping sessions
// keeps browser sessions and codes too.
func testKeepSessionsKeepsBrowserLogins(t *testing.T, s storage.Store) {
	browserLogins(t, s)
	now := base.Add(2 * time.Minute)
	if err := s.SetUserPassword(t.Context(), "ada", "$argon2id$new", true, now); err != nil {
		t.Fatal(err)
	}
	if b := getBrowserSession(t, s, "ada-bs"); !b.Live(now) {
		t.Errorf("ada-bs revoked at %v", b.RevokedAt)
	}
	wantUnused(t, s, []byte("ada-unused"))
	// Enabling a user revokes nothing either.
	if err := s.SetUserDisabled(t.Context(), "ada", false, now); err != nil {
		t.Fatal(err)
	}
	if b := getBrowserSession(t, s, "ada-bs"); !b.Live(now) {
		t.Errorf("ada-bs revoked at %v by enabling", b.RevokedAt)
	}
	wantUnused(t, s, []byte("ada-unused"))
}

// testNULBytes: a NUL byte in any string argument (which PostgreSQL cannot
// store in text) is an error on every store, never a panic, and stores
// nothing.
func testNULBytes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	createBrowserSession(t, s, browserSession("bs", "user-1"))
	createCode(t, s, authCode("code", "user-1", "app"))
	const nul = "x\x00y"

	codeWith := func(set func(*storage.AuthCode)) storage.AuthCode {
		c := authCode("nul-code", "user-1", "app")
		set(&c)
		return c
	}
	codeCases := map[string]storage.AuthCode{
		"ClientID":         codeWith(func(c *storage.AuthCode) { c.ClientID = nul }),
		"UserID":           codeWith(func(c *storage.AuthCode) { c.UserID = nul }),
		"RedirectURI":      codeWith(func(c *storage.AuthCode) { c.RedirectURI = nul }),
		"CodeChallenge":    codeWith(func(c *storage.AuthCode) { c.CodeChallenge = nul }),
		"Scope":            codeWith(func(c *storage.AuthCode) { c.Scope = nul }),
		"Resources":        codeWith(func(c *storage.AuthCode) { c.Resources = []string{"https://a/", nul} }),
		"Nonce":            codeWith(func(c *storage.AuthCode) { c.Nonce = nul }),
		"BrowserSessionID": codeWith(func(c *storage.AuthCode) { c.BrowserSessionID = nul }),
		"FamilyID":         codeWith(func(c *storage.AuthCode) { c.FamilyID = nul }),
	}
	for field, c := range codeCases {
		if err := s.CreateCode(ctx, c); err == nil {
			t.Errorf("CreateCode(NUL in %s): no error", field)
		}
		if _, err := s.GetCode(ctx, c.Hash); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("CreateCode(NUL in %s) stored it: %v", field, err)
		}
	}

	famWith := func(set func(*storage.Family)) storage.Family {
		f := codeFamily("nul-fam", authCode("code", "user-1", "app"), base)
		set(&f)
		return f
	}
	famCases := map[string]storage.Family{
		"ID":           famWith(func(f *storage.Family) { f.ID = nul }),
		"ClientID":     famWith(func(f *storage.Family) { f.ClientID = nul }),
		"UserID":       famWith(func(f *storage.Family) { f.UserID = nul }),
		"Scope":        famWith(func(f *storage.Family) { f.Scope = nul }),
		"KeyID":        famWith(func(f *storage.Family) { f.KeyID = nul }),
		"GrantType":    famWith(func(f *storage.Family) { f.GrantType = nul }),
		"PasswordHash": famWith(func(f *storage.Family) { f.PasswordHash = nul }),
	}
	for field, f := range famCases {
		if _, err := s.RedeemCode(ctx, []byte("code"), f, base); err == nil {
			t.Errorf("RedeemCode(NUL in family %s): no error", field)
		}
		if err := s.CreateFamily(ctx, f); err == nil {
			t.Errorf("CreateFamily(NUL in %s): no error", field)
		}
	}
	wantUnused(t, s, []byte("code"))
	if fams, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "user-1"}); err != nil || len(fams) != 0 {
		t.Errorf("families with a NUL were stored: %v, %v", ids(fams), err)
	}

	for field, b := range map[string]storage.BrowserSession{
		"ID":           browserSession(nul, "user-1"),
		"UserID":       browserSession("nul-bs", nul),
		"PasswordHash": {ID: "nul-bs", UserID: "user-1", PasswordHash: nul, ExpiresAt: base.Add(time.Hour)},
	} {
		if err := s.CreateBrowserSession(ctx, b); err == nil {
			t.Errorf("CreateBrowserSession(NUL in %s): no error", field)
		}
	}
	if _, err := s.GetBrowserSession(ctx, nul); err == nil {
		t.Error("GetBrowserSession(NUL): no error")
	}
	if _, err := s.GetBrowserSession(ctx, "nul-bs"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a browser session with a NUL was stored: %v", err)
	}
	if _, err := s.EndBrowserSession(ctx, "bs"+nul, "", base); err == nil {
		t.Error("EndBrowserSession(NUL): no error")
	}
	createBrowserSession(t, s, browserSession("bs-nul-client", "user-1"))
	if _, err := s.EndBrowserSession(ctx, "bs-nul-client", "app"+nul, base); err == nil {
		t.Error("EndBrowserSession(client with NUL): no error")
	}
	if !getBrowserSession(t, s, "bs-nul-client").RevokedAt.IsZero() {
		t.Error("EndBrowserSession(client with NUL) ended the browser session")
	}

	for name, args := range map[string][3]any{
		"user":   {nul, "app", []string{"openid"}},
		"client": {"user-1", nul, []string{"openid"}},
		"scope":  {"user-1", "app", []string{"openid", nul}},
	} {
		if err := s.GrantConsent(ctx, args[0].(string), args[1].(string), args[2].([]string), base); err == nil {
			t.Errorf("GrantConsent(NUL in %s): no error", name)
		}
	}
	if _, err := s.GetConsent(ctx, "user-1", "app"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a consent with a NUL was stored: %v", err)
	}
	for name, call := range map[string]func() error{
		"GetConsent user":       func() error { _, err := s.GetConsent(ctx, nul, "app"); return err },
		"GetConsent client":     func() error { _, err := s.GetConsent(ctx, "user-1", nul); return err },
		"ListConsents":          func() error { _, err := s.ListConsents(ctx, nul); return err },
		"RevokeConsents user":   func() error { _, _, err := s.RevokeConsents(ctx, nul, "app", base); return err },
		"RevokeConsents client": func() error { _, _, err := s.RevokeConsents(ctx, "user-1", nul, base); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s(NUL): no error", name)
		}
	}
}

package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// The cases of OpenID Connect's storage: users' profile claims, and the
// browser login session a session was started in (RP-initiated logout).
var openIDTests = []struct {
	name string
	fn   func(*testing.T, storage.Store)
}{
	{"UserProfileRoundTrip", testUserProfileRoundTrip},
	{"SetUserProfile", testSetUserProfile},
	{"FamilyBrowserSessionID", testFamilyBrowserSessionID},
	{"FamilyFilterBrowserSessionID", testFamilyFilterBrowserSessionID},
	{"OpenIDNULBytesRefused", testOpenIDNULBytes},
}

// ada returns user-1, ada, with a full profile.
func ada() storage.User {
	u := user("user-1", "ada")
	u.Profile = storage.UserProfile{Name: "Ada Lovelace ✓", Email: "ada@example.com", EmailVerified: true}
	return u
}

// testUserProfileRoundTrip: every read of a user returns the profile it
// was created with; a user created without one has none.
func testUserProfileRoundTrip(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a := ada()
	createUser(t, s, a)
	b := user("user-2", "bob")
	createUser(t, s, b)
	// Email without verification, and a name alone.
	c := user("user-3", "cy")
	c.Profile = storage.UserProfile{Email: "cy@example.org"}
	createUser(t, s, c)
	d := user("user-4", "di")
	d.Profile = storage.UserProfile{Name: "Di"}
	createUser(t, s, d)

	for _, want := range []storage.User{a, b, c, d} {
		got, err := s.GetUser(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkUser(t, got, want)
		checkUser(t, getUser(t, s, want.Username), want)
	}
	list, err := s.ListUsers(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("ListUsers = %v, %v", list, err)
	}
	for i, want := range []storage.User{a, b, c, d} {
		checkUser(t, list[i], want)
	}
}

// testSetUserProfile: the profile is replaced as a whole (an empty field
// clears it), UpdatedAt moves, nothing else about the user or their
// sessions changes, and an unknown username is ErrNotFound.
func testSetUserProfile(t *testing.T, s storage.Store) {
	ctx := t.Context()
	a := ada()
	createUser(t, s, a)
	other := user("user-2", "bob")
	other.Profile = storage.UserProfile{Name: "Bob"}
	createUser(t, s, other)
	f := family("fam-ada", a.ID, "app")
	createFamily(t, s, f)

	now := base.Add(time.Hour)
	p := storage.UserProfile{Name: "Augusta Ada King", Email: "countess@example.com"}
	if err := s.SetUserProfile(ctx, "ada", p, now); err != nil {
		t.Fatalf("SetUserProfile: %v", err)
	}
	a.Profile, a.UpdatedAt = p, now
	checkUser(t, getUser(t, s, "ada"), a)
	checkUser(t, getUser(t, s, "bob"), other)
	checkFamily(t, getFamily(t, s, f.ID), f) // still live

	later := now.Add(time.Hour)
	if err := s.SetUserProfile(ctx, "ada", storage.UserProfile{}, later); err != nil {
		t.Fatalf("SetUserProfile(clear): %v", err)
	}
	a.Profile, a.UpdatedAt = storage.UserProfile{}, later
	checkUser(t, getUser(t, s, "ada"), a)

	err := s.SetUserProfile(ctx, "nobody", p, later)
	wantErr(t, "SetUserProfile(unknown)", err, storage.ErrNotFound)
	err = s.SetUserProfile(ctx, "user-2", p, later) // an ID is not a username
	wantErr(t, "SetUserProfile(ID)", err, storage.ErrNotFound)
	checkUser(t, getUser(t, s, "bob"), other)
}

// testFamilyBrowserSessionID: every way of creating a family stores its
// browser login session and every read returns it; a session not started
// in a browser has none.
func testFamilyBrowserSessionID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := authCode("code-1", "user-1", "app")
	c.BrowserSessionID = "bs-ümlaut-1"
	createCode(t, s, c)
	redeemed := codeFamily("fam-redeemed", c, base)
	if _, err := s.RedeemCode(ctx, c.Hash, redeemed, base); err != nil {
		t.Fatalf("RedeemCode: %v", err)
	}
	created := codeFamily("fam-created", c, base)
	created.BrowserSessionID = "bs-2"
	createFamily(t, s, created)
	batch := codeFamily("fam-batch", c, base)
	batch.BrowserSessionID = "bs-3"
	if err := s.CreateFamilies(ctx, []storage.Family{batch}); err != nil {
		t.Fatalf("CreateFamilies: %v", err)
	}
	pw := family("fam-pw", "user-1", "app")
	createFamily(t, s, pw)

	all := []storage.Family{redeemed, created, batch, pw}
	for _, want := range all {
		checkFamily(t, getFamily(t, s, want.ID), want)
		chk, err := s.CheckAccess(ctx, "jti", want.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkFamily(t, chk.Family, want)
	}
	list, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "user-1"})
	if err != nil || len(list) != len(all) {
		t.Fatalf("ListFamilies = %v, %v", ids(list), err)
	}
	for _, got := range list {
		i := slices.IndexFunc(all, func(f storage.Family) bool { return f.ID == got.ID })
		checkFamily(t, got, all[i])
	}
	now := base.Add(time.Minute)
	r, err := s.RotateFamily(ctx, redeemed.ID, 0, now, now.Add(idleTTL))
	if err != nil || r.BrowserSessionID != c.BrowserSessionID {
		t.Errorf("RotateFamily: BrowserSessionID %q, %v; want %q", r.BrowserSessionID, err, c.BrowserSessionID)
	}
	// The stale answer carries the family too.
	r, err = s.RotateFamily(ctx, redeemed.ID, 0, now, now.Add(idleTTL))
	wantErr(t, "RotateFamily(stale)", err, storage.ErrStaleGeneration)
	if r.BrowserSessionID != c.BrowserSessionID {
		t.Errorf("RotateFamily(stale): BrowserSessionID %q, want %q", r.BrowserSessionID, c.BrowserSessionID)
	}
}

// testFamilyFilterBrowserSessionID: ListFamilies and RevokeFamilies select
// by browser login session, alone or with user and client, and revoke
// nothing else (RP-initiated logout ends exactly what one browser
// started for one client).
func testFamilyFilterBrowserSessionID(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mk := func(id, userID, clientID, bs string) storage.Family {
		f := family(id, userID, clientID)
		f.GrantType = storage.GrantAuthorizationCode
		f.BrowserSessionID = bs
		createFamily(t, s, f)
		return f
	}
	mk("a-app-bs1", "user-1", "app", "bs-1")
	mk("a-app-bs1-b", "user-1", "app", "bs-1")
	mk("a-other-bs1", "user-1", "other", "bs-1")
	mk("a-app-bs2", "user-1", "app", "bs-2")
	createFamily(t, s, family("a-app-pw", "user-1", "app"))
	mk("b-app-bs3", "user-2", "app", "bs-3")

	list := func(f storage.FamilyFilter) []string {
		t.Helper()
		got, err := s.ListFamilies(ctx, f)
		if err != nil {
			t.Fatalf("ListFamilies(%+v): %v", f, err)
		}
		out := ids(got)
		slices.Sort(out)
		return out
	}
	if got, want := list(storage.FamilyFilter{BrowserSessionID: "bs-1"}), []string{"a-app-bs1", "a-app-bs1-b", "a-other-bs1"}; !equalStrings(got, want) {
		t.Errorf("ListFamilies(bs-1) = %v, want %v", got, want)
	}
	if got := list(storage.FamilyFilter{BrowserSessionID: "bs-9"}); len(got) != 0 {
		t.Errorf("ListFamilies(unknown browser session) = %v", got)
	}

	now := base.Add(time.Hour)
	n, err := s.RevokeFamilies(ctx, storage.FamilyFilter{UserID: "user-1", ClientID: "app", BrowserSessionID: "bs-1"}, storage.ReasonLogout, now)
	if err != nil || n != 2 {
		t.Fatalf("RevokeFamilies = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"a-app-bs1", "a-app-bs1-b"} {
		if f := getFamily(t, s, id); !f.RevokedAt.Equal(now) || f.RevokeReason != storage.ReasonLogout {
			t.Errorf("%s: RevokedAt %v reason %q, want revoked at %v", id, f.RevokedAt, f.RevokeReason, now)
		}
	}
	for _, id := range []string{"a-other-bs1", "a-app-bs2", "a-app-pw", "b-app-bs3"} {
		if f := getFamily(t, s, id); f.Revoked() {
			t.Errorf("%s was revoked", id)
		}
	}
	n, err = s.RevokeFamilies(ctx, storage.FamilyFilter{BrowserSessionID: "bs-3"}, storage.ReasonLogout, now)
	if err != nil || n != 1 {
		t.Errorf("RevokeFamilies(bs-3 alone) = %d, %v; want 1", n, err)
	}
}

// testOpenIDNULBytes: a NUL byte in a profile claim, a family's browser
// session or a filter is an error on every store and stores nothing.
func testOpenIDNULBytes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const nul = "x\x00y"
	for field, set := range map[string]func(*storage.User){
		"Name":  func(u *storage.User) { u.Profile.Name = nul },
		"Email": func(u *storage.User) { u.Profile.Email = nul },
	} {
		u := ada()
		set(&u)
		if err := s.CreateUser(ctx, u); err == nil {
			t.Errorf("CreateUser(NUL in %s): no error", field)
		}
		if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("CreateUser(NUL in %s) stored it: %v", field, err)
		}
	}
	a := ada()
	createUser(t, s, a)
	for field, p := range map[string]storage.UserProfile{
		"Name":  {Name: nul},
		"Email": {Email: nul, EmailVerified: true},
	} {
		if err := s.SetUserProfile(ctx, "ada", p, base.Add(time.Hour)); err == nil {
			t.Errorf("SetUserProfile(NUL in %s): no error", field)
		}
	}
	if err := s.SetUserProfile(ctx, "ada"+nul, storage.UserProfile{}, base.Add(time.Hour)); err == nil {
		t.Error("SetUserProfile(NUL in username): no error")
	}
	checkUser(t, getUser(t, s, "ada"), a)

	c := authCode("code", a.ID, "app")
	createCode(t, s, c)
	f := codeFamily("nul-fam", c, base)
	f.BrowserSessionID = nul
	if _, err := s.RedeemCode(ctx, c.Hash, f, base); err == nil {
		t.Error("RedeemCode(NUL in BrowserSessionID): no error")
	}
	if err := s.CreateFamily(ctx, f); err == nil {
		t.Error("CreateFamily(NUL in BrowserSessionID): no error")
	}
	if err := s.CreateFamilies(ctx, []storage.Family{f}); err == nil {
		t.Error("CreateFamilies(NUL in BrowserSessionID): no error")
	}
	wantUnused(t, s, c.Hash)
	wantNoFamily(t, s, f.ID)

	live := codeFamily("live", c, base)
	createFamily(t, s, live)
	for name, filter := range map[string]storage.FamilyFilter{
		"UserID":           {UserID: nul},
		"ClientID":         {ClientID: nul},
		"BrowserSessionID": {UserID: a.ID, BrowserSessionID: nul},
	} {
		if _, err := s.ListFamilies(ctx, filter); err == nil {
			t.Errorf("ListFamilies(NUL in %s): no error", name)
		}
		if _, err := s.RevokeFamilies(ctx, filter, storage.ReasonLogout, base); err == nil {
			t.Errorf("RevokeFamilies(NUL in %s): no error", name)
		}
	}
	checkFamily(t, getFamily(t, s, live.ID), live)
}

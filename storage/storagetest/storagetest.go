// Package storagetest is the conformance suite for storage.Store: every
// implementation runs the same cases (DESIGN.md §6). It uses only the
// storage package, fixed times (never time.Now) and no sleeps.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyturn/keyturn/storage"
)

// Run runs every case as a subtest. open must return an empty, migrated
// store and register its Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"FamilyRoundTrip", testFamilyRoundTrip},
		{"FamilyTimesUTCMicroseconds", testFamilyTimes},
		{"CreateFamilyDuplicate", testCreateFamilyDuplicate},
		{"GetFamilyNotFound", testGetFamilyNotFound},
		{"CreateFamilyNeedsEnabledUser", testCreateFamilyNeedsEnabledUser},
		{"CreateFamilyNeedsCurrentPassword", testCreateFamilyNeedsCurrentPassword},
		{"CreateFamilies", testCreateFamilies},
		{"CreateFamiliesAllOrNone", testCreateFamiliesAllOrNone},
		{"RotateFamily", testRotate},
		{"RotateStaleGeneration", testRotateStale},
		{"RotateRevoked", testRotateRevoked},
		{"RotateExpiredIdle", testRotateExpiredIdle},
		{"RotateExpiredAbsolute", testRotateExpiredAbsolute},
		{"RotateUnknown", testRotateUnknown},
		{"ConcurrentRotateOneWins", testConcurrentRotate},
		{"RotateThousandTimes", testRotateMany},
		{"RevokeFamily", testRevokeFamily},
		{"RevokeFamilies", testRevokeFamilies},
		{"ListFamilies", testListFamilies},
		{"DeleteFamilies", testDeleteFamilies},
		{"UserRoundTrip", testUserRoundTrip},
		{"CreateUserDuplicate", testCreateUserDuplicate},
		{"GetUserNotFound", testGetUserNotFound},
		{"ListUsers", testListUsers},
		{"SetUserDisabled", testSetUserDisabled},
		{"SetUserPassword", testSetUserPassword},
		{"SetUserPasswordKeepSessions", testSetUserPasswordKeepSessions},
		{"DeleteUser", testDeleteUser},
		{"UnknownUsername", testUnknownUsername},
		{"DenyAccessToken", testDenyAccessToken},
		{"DeleteDenials", testDeleteDenials},
		{"CheckAccess", testCheckAccess},
		{"SigningKeys", testSigningKeys},
		{"RevokeSigningKey", testRevokeSigningKey},
		{"ActivateSigningKey", testActivateSigningKey},
		{"DeleteSigningKeys", testDeleteSigningKeys},
		{"DeleteSigningKeysPerAlgorithm", testDeleteSigningKeysPerAlgorithm},
		{"ReserveAttempt", testReserveAttempt},
		{"ReserveAttemptWindow", testReserveAttemptWindow},
		{"ReserveAttemptOrphan", testReserveAttemptOrphan},
		{"ReserveAttemptLiveNotOrphan", testReserveAttemptLiveNotOrphan},
		{"ReserveAttemptExtremeDelay", testReserveAttemptExtremeDelay},
		{"ReserveAttemptsAllOrNone", testReserveAllOrNone},
		{"ConcurrentReserveExactlyLimit", testConcurrentReserve},
		{"ConcurrentResolveFailures", testConcurrentResolve},
		{"DeleteThrottles", testDeleteThrottles},
		{"KnownAddresses", testKnownAddresses},
		{"DeleteKnownAddresses", testDeleteKnownAddresses},
		{"Ping", testPing},
	}
	tests = append(tests, authCodeTests...)
	tests = append(tests, openIDTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// base is the suite's fixed "now".
var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	idleTTL     = 24 * time.Hour
	absoluteTTL = 30 * 24 * time.Hour
)

// family returns a live, never rotated family created at base.
func family(id, userID, clientID string) storage.Family {
	return storage.Family{
		ID:                id,
		ClientID:          clientID,
		UserID:            userID,
		Scope:             "openid profile",
		Generation:        0,
		Salt:              []byte{0x00, 0x01, 0xfe, 0xff, 'k', 't'},
		KeyID:             "mac-1",
		CreatedAt:         base,
		LastUsedAt:        base,
		IdleExpiresAt:     base.Add(idleTTL),
		AbsoluteExpiresAt: base.Add(absoluteTTL),
		GrantType:         storage.GrantPassword,
		AuthTime:          base,
	}
}

// createFamily creates f, and its user first if that does not exist yet
// (named after its ID): a family needs an enabled user.
func createFamily(t *testing.T, s storage.Store, f storage.Family) {
	t.Helper()
	if _, err := s.GetUser(t.Context(), f.UserID); errors.Is(err, storage.ErrNotFound) {
		createUser(t, s, user(f.UserID, "name-"+f.UserID))
	}
	if err := s.CreateFamily(t.Context(), f); err != nil {
		t.Fatalf("CreateFamily(%s): %v", f.ID, err)
	}
}

func getFamily(t *testing.T, s storage.Store, id string) storage.Family {
	t.Helper()
	f, err := s.GetFamily(t.Context(), id)
	if err != nil {
		t.Fatalf("GetFamily(%s): %v", id, err)
	}
	return f
}

// checkTime reports a time that is not Equal to want or not in UTC.
func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", field, got, want)
	}
	if want.IsZero() != got.IsZero() {
		t.Errorf("%s: IsZero = %v, want %v", field, got.IsZero(), want.IsZero())
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", field, got.Location())
	}
}

// checkFamily compares every field of a family.
func checkFamily(t *testing.T, got, want storage.Family) {
	t.Helper()
	if got.ID != want.ID || got.ClientID != want.ClientID || got.UserID != want.UserID ||
		got.Scope != want.Scope || got.Generation != want.Generation || got.KeyID != want.KeyID ||
		got.RevokeReason != want.RevokeReason || got.GrantType != want.GrantType ||
		got.BrowserSessionID != want.BrowserSessionID || got.PasswordHash != "" {
		t.Errorf("family = %+v\nwant     %+v", got, want)
	}
	if !bytes.Equal(got.Salt, want.Salt) {
		t.Errorf("Salt = %x, want %x", got.Salt, want.Salt)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "LastUsedAt", got.LastUsedAt, want.LastUsedAt)
	checkTime(t, "IdleExpiresAt", got.IdleExpiresAt, want.IdleExpiresAt)
	checkTime(t, "AbsoluteExpiresAt", got.AbsoluteExpiresAt, want.AbsoluteExpiresAt)
	checkTime(t, "RotatedAt", got.RotatedAt, want.RotatedAt)
	checkTime(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
	checkTime(t, "AuthTime", got.AuthTime, want.AuthTime)
}

func wantErr(t *testing.T, op string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", op, err, want)
	}
}

func testFamilyRoundTrip(t *testing.T, s storage.Store) {
	fresh := family("fam-fresh", "user-1", "app")
	createFamily(t, s, fresh)
	checkFamily(t, getFamily(t, s, fresh.ID), fresh)

	// Every field set, including the nullable times and a large generation.
	full := family("fam-full", "user-2", "other-app")
	full.Generation = 1 << 40
	full.Salt = bytes.Repeat([]byte{0xa5}, 32)
	full.LastUsedAt = base.Add(time.Hour)
	full.RotatedAt = base.Add(time.Hour)
	full.RevokedAt = base.Add(2 * time.Hour)
	full.RevokeReason = storage.ReasonAdmin
	createFamily(t, s, full)
	checkFamily(t, getFamily(t, s, full.ID), full)
}

func testFamilyTimes(t *testing.T, s storage.Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	// Microsecond precision, in a non-UTC zone.
	at := time.Date(2025, 3, 4, 10, 20, 30, 123456000, zone)
	f := family("fam-zone", "user-1", "app")
	f.CreatedAt = at
	f.LastUsedAt = at.Add(time.Microsecond)
	f.IdleExpiresAt = at.Add(idleTTL)
	f.AbsoluteExpiresAt = at.Add(absoluteTTL)
	f.RotatedAt = at.Add(2 * time.Microsecond)
	createFamily(t, s, f)
	checkFamily(t, getFamily(t, s, f.ID), f) // checkTime demands UTC

	// Below a microsecond, the store keeps microseconds.
	sub := family("fam-nanos", "user-1", "app")
	sub.CreatedAt = time.Date(2025, 3, 4, 10, 20, 30, 123456789, zone)
	createFamily(t, s, sub)
	got := getFamily(t, s, sub.ID).CreatedAt
	if d := got.Sub(sub.CreatedAt); d <= -time.Microsecond || d >= time.Microsecond || got.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v from %v: want it at microsecond precision", got, sub.CreatedAt)
	}
	if got.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.Location())
	}

	// Rotation times come back in UTC too.
	now := time.Date(2025, 3, 4, 12, 0, 0, 7000, zone)
	r, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
	if err != nil {
		t.Fatal(err)
	}
	checkTime(t, "RotatedAt", r.RotatedAt, now)
	checkTime(t, "IdleExpiresAt", r.IdleExpiresAt, now.Add(idleTTL))
}

// testCreateFamilyNeedsEnabledUser: no session starts for a user that is
// gone or disabled, so a login racing a disable cannot outlive it.
func testCreateFamilyNeedsEnabledUser(t *testing.T, s storage.Store) {
	wantErr(t, "CreateFamily(unknown user)", s.CreateFamily(t.Context(), family("f1", "nobody", "c")), storage.ErrNotFound)
	createUser(t, s, user("user-d", "dis"))
	if err := s.SetUserDisabled(t.Context(), "dis", true, base); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateFamily(disabled user)", s.CreateFamily(t.Context(), family("f2", "user-d", "c")), storage.ErrNotFound)
	for _, id := range []string{"f1", "f2"} {
		if _, err := s.GetFamily(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("family %s was created: %v", id, err)
		}
	}
	if err := s.SetUserDisabled(t.Context(), "dis", false, base); err != nil {
		t.Fatal(err)
	}
	createFamily(t, s, family("f3", "user-d", "c"))
}

// testCreateFamilyNeedsCurrentPassword: a login checked against a password
// that has changed since starts no session, so a login racing a password
// change (which ends the user's sessions) cannot outlive it.
func testCreateFamilyNeedsCurrentPassword(t *testing.T, s storage.Store) {
	u := user("user-p", "pat")
	createUser(t, s, u)
	if err := s.SetUserPassword(t.Context(), "pat", "new-hash", false, base); err != nil {
		t.Fatal(err)
	}
	stale := family("f1", "user-p", "c")
	stale.PasswordHash = u.PasswordHash
	wantErr(t, "CreateFamily(old password)", s.CreateFamily(t.Context(), stale), storage.ErrNotFound)
	if _, err := s.GetFamily(t.Context(), "f1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("family f1 was created: %v", err)
	}
	current := family("f2", "user-p", "c")
	current.PasswordHash = "new-hash"
	createFamily(t, s, current)
	if f, err := s.GetFamily(t.Context(), "f2"); err != nil || f.PasswordHash != "" {
		t.Errorf("GetFamily(f2) = %+v, %v; want it without the password hash", f, err)
	}
}

// testCreateFamilies: a bulk load of more rows than one multi-row INSERT
// holds, over two users, reads back as CreateFamily would have stored it.
func testCreateFamilies(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-a", "ann"))
	createUser(t, s, user("user-b", "bob"))
	if err := s.CreateFamilies(t.Context(), nil); err != nil {
		t.Fatalf("CreateFamilies(none): %v", err)
	}
	const n = 1201
	fs := make([]storage.Family, n)
	for i := range fs {
		fs[i] = family("bulk-"+strconv.Itoa(i), []string{"user-a", "user-b"}[i%2], "app")
		fs[i].Salt = []byte{byte(i), byte(i >> 8)}
	}
	if err := s.CreateFamilies(t.Context(), fs); err != nil {
		t.Fatalf("CreateFamilies(%d): %v", n, err)
	}
	for _, i := range []int{0, 1, 999, 1000, n - 1} {
		checkFamily(t, getFamily(t, s, fs[i].ID), fs[i])
	}
	all, err := s.ListFamilies(t.Context(), storage.FamilyFilter{ClientID: "app"})
	if err != nil || len(all) != n {
		t.Fatalf("ListFamilies = %d families, %v; want %d", len(all), err, n)
	}
	ofA, err := s.ListFamilies(t.Context(), storage.FamilyFilter{UserID: "user-a"})
	if err != nil || len(ofA) != (n+1)/2 {
		t.Fatalf("ListFamilies(user-a) = %d families, %v; want %d", len(ofA), err, (n+1)/2)
	}
}

// testCreateFamiliesAllOrNone: one bad family (unknown or disabled user,
// a taken or repeated ID, a password to check) fails the whole load and
// leaves nothing behind.
func testCreateFamiliesAllOrNone(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-a", "ann"))
	createUser(t, s, user("user-d", "dis"))
	if err := s.SetUserDisabled(t.Context(), "dis", true, base); err != nil {
		t.Fatal(err)
	}
	createFamily(t, s, family("taken", "user-a", "app"))
	batch := func(last storage.Family) []storage.Family {
		fs := []storage.Family{}
		for i := range 1100 { // past one INSERT's rows
			fs = append(fs, family("new-"+strconv.Itoa(i), "user-a", "app"))
		}
		return append(fs, last)
	}
	withHash := family("hashed", "user-a", "app")
	withHash.PasswordHash = "some-hash"
	for _, tc := range []struct {
		name string
		last storage.Family
		want error // nil: any error
	}{
		{"unknown user", family("last", "nobody", "app"), storage.ErrNotFound},
		{"disabled user", family("last", "user-d", "app"), storage.ErrNotFound},
		{"taken ID", family("taken", "user-a", "app"), storage.ErrAlreadyExists},
		{"repeated ID", family("new-7", "user-a", "app"), storage.ErrAlreadyExists},
		{"password hash", withHash, nil},
	} {
		err := s.CreateFamilies(t.Context(), batch(tc.last))
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		for _, id := range []string{"new-0", "new-1099", "last", "hashed"} {
			if _, err := s.GetFamily(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: family %s was created: %v", tc.name, id, err)
			}
		}
	}
	all, err := s.ListFamilies(t.Context(), storage.FamilyFilter{ClientID: "app"})
	if err != nil || len(all) != 1 {
		t.Fatalf("ListFamilies = %d families, %v; want only the one created before", len(all), err)
	}
}

func testCreateFamilyDuplicate(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	other := family("fam-1", "user-2", "other-app")
	createUser(t, s, user("user-2", "other"))
	wantErr(t, "CreateFamily duplicate", s.CreateFamily(t.Context(), other), storage.ErrAlreadyExists)
	checkFamily(t, getFamily(t, s, f.ID), f)
}

func testGetFamilyNotFound(t *testing.T, s storage.Store) {
	_, err := s.GetFamily(t.Context(), "nope")
	wantErr(t, "GetFamily", err, storage.ErrNotFound)
}

func testRotate(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	now := base.Add(time.Hour)
	idle := now.Add(idleTTL)
	got, err := s.RotateFamily(t.Context(), f.ID, 0, now, idle)
	if err != nil {
		t.Fatalf("RotateFamily: %v", err)
	}
	want := f
	want.Generation = 1
	want.RotatedAt = now
	want.LastUsedAt = now
	want.IdleExpiresAt = idle
	checkFamily(t, got, want) // AbsoluteExpiresAt unchanged
	checkFamily(t, getFamily(t, s, f.ID), want)

	// And on from the new generation.
	now2 := now.Add(time.Hour)
	got, err = s.RotateFamily(t.Context(), f.ID, 1, now2, now2.Add(idleTTL))
	if err != nil {
		t.Fatalf("second RotateFamily: %v", err)
	}
	if got.Generation != 2 || !got.RotatedAt.Equal(now2) || !got.AbsoluteExpiresAt.Equal(f.AbsoluteExpiresAt) {
		t.Errorf("second rotation = %+v", got)
	}
}

func testRotateStale(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	now := base.Add(time.Hour)
	if _, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL)); err != nil {
		t.Fatal(err)
	}
	before := getFamily(t, s, f.ID)

	for _, gen := range []uint64{0, 2, 1 << 63, 1<<64 - 1} { // older, newer, out of range
		later := now.Add(time.Minute)
		got, err := s.RotateFamily(t.Context(), f.ID, gen, later, later.Add(idleTTL))
		wantErr(t, fmt.Sprintf("RotateFamily(gen %d)", gen), err, storage.ErrStaleGeneration)
		checkFamily(t, got, before) // the current family, for the grace window
		checkFamily(t, getFamily(t, s, f.ID), before)
	}
}

func testRotateRevoked(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	if err := s.RevokeFamily(t.Context(), f.ID, storage.ReasonLogout, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	before := getFamily(t, s, f.ID)
	now := base.Add(time.Hour)
	_, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
	wantErr(t, "RotateFamily(revoked)", err, storage.ErrFamilyRevoked)
	checkFamily(t, getFamily(t, s, f.ID), before)

	// Revoked wins over expired and stale.
	late := f.AbsoluteExpiresAt.Add(time.Hour)
	_, err = s.RotateFamily(t.Context(), f.ID, 7, late, late.Add(idleTTL))
	wantErr(t, "RotateFamily(revoked, expired, stale)", err, storage.ErrFamilyRevoked)
}

func testRotateExpiredIdle(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	before := getFamily(t, s, f.ID)
	for _, now := range []time.Time{f.IdleExpiresAt, f.IdleExpiresAt.Add(time.Microsecond), f.IdleExpiresAt.Add(time.Hour)} {
		_, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
		wantErr(t, "RotateFamily(idle expired at "+now.String()+")", err, storage.ErrFamilyExpired)
		// Expired wins over stale.
		_, err = s.RotateFamily(t.Context(), f.ID, 3, now, now.Add(idleTTL))
		wantErr(t, "RotateFamily(idle expired, stale)", err, storage.ErrFamilyExpired)
	}
	checkFamily(t, getFamily(t, s, f.ID), before)

	// A microsecond before idle expiry it is still live.
	now := f.IdleExpiresAt.Add(-time.Microsecond)
	if _, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL)); err != nil {
		t.Errorf("RotateFamily just before idle expiry: %v", err)
	}
}

func testRotateExpiredAbsolute(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	f.IdleExpiresAt = f.AbsoluteExpiresAt.Add(time.Hour) // only absolute expiry matters
	createFamily(t, s, f)
	before := getFamily(t, s, f.ID)
	for _, now := range []time.Time{f.AbsoluteExpiresAt, f.AbsoluteExpiresAt.Add(time.Minute)} {
		_, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
		wantErr(t, "RotateFamily(absolute expired at "+now.String()+")", err, storage.ErrFamilyExpired)
	}
	checkFamily(t, getFamily(t, s, f.ID), before)

	now := f.AbsoluteExpiresAt.Add(-time.Microsecond)
	got, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
	if err != nil {
		t.Fatalf("RotateFamily just before absolute expiry: %v", err)
	}
	checkTime(t, "AbsoluteExpiresAt", got.AbsoluteExpiresAt, f.AbsoluteExpiresAt)
}

func testRotateUnknown(t *testing.T, s storage.Store) {
	_, err := s.RotateFamily(t.Context(), "nope", 0, base, base.Add(idleTTL))
	wantErr(t, "RotateFamily(unknown)", err, storage.ErrNotFound)
	// An id no family can have (a NUL byte, not UTF-8) is unknown too, on
	// PostgreSQL as well, which cannot hold either in text.
	for _, id := range []string{"nope\x00", "nope\xff"} {
		_, err = s.RotateFamily(t.Context(), id, 0, base, base.Add(idleTTL))
		wantErr(t, fmt.Sprintf("RotateFamily(%q)", id), err, storage.ErrNotFound)
		_, err = s.GetFamily(t.Context(), id)
		wantErr(t, fmt.Sprintf("GetFamily(%q)", id), err, storage.ErrNotFound)
		err = s.RevokeFamily(t.Context(), id, storage.ReasonLogout, base)
		wantErr(t, fmt.Sprintf("RevokeFamily(%q)", id), err, storage.ErrNotFound)
	}
}

// testConcurrentRotate is why PostgreSQL runs in CI: of N callers rotating
// from the same generation, exactly one wins.
func testConcurrentRotate(t *testing.T, s storage.Store) {
	const n = 20
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	now := base.Add(time.Hour)

	type result struct {
		f   storage.Family
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got, err := s.RotateFamily(t.Context(), f.ID, 0, now, now.Add(idleTTL))
			results[i] = result{got, err}
		})
	}
	close(start)
	wg.Wait()

	wins := 0
	for i, r := range results {
		switch {
		case r.err == nil:
			wins++
			if r.f.Generation != 1 {
				t.Errorf("caller %d won with generation %d", i, r.f.Generation)
			}
		case errors.Is(r.err, storage.ErrStaleGeneration):
			if r.f.Generation != 1 {
				t.Errorf("caller %d: stale with current generation %d, want 1", i, r.f.Generation)
			}
		default:
			t.Errorf("caller %d: %v", i, r.err)
		}
	}
	if wins != 1 {
		t.Errorf("%d callers won, want exactly 1", wins)
	}
	if g := getFamily(t, s, f.ID).Generation; g != 1 {
		t.Errorf("final generation = %d, want 1", g)
	}
}

// testRotateMany checks that a family is one row however often it rotates.
func testRotateMany(t *testing.T, s storage.Store) {
	const n = 1000
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	now := base
	for gen := uint64(0); gen < n; gen++ {
		now = now.Add(time.Second)
		if _, err := s.RotateFamily(t.Context(), f.ID, gen, now, now.Add(idleTTL)); err != nil {
			t.Fatalf("rotation %d: %v", gen, err)
		}
	}
	fams, err := s.ListFamilies(t.Context(), storage.FamilyFilter{UserID: f.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 || fams[0].Generation != n {
		t.Fatalf("after %d rotations: %d families, %+v", n, len(fams), fams)
	}
	checkTime(t, "RotatedAt", fams[0].RotatedAt, now)
	checkTime(t, "AbsoluteExpiresAt", fams[0].AbsoluteExpiresAt, f.AbsoluteExpiresAt)
}

func testRevokeFamily(t *testing.T, s storage.Store) {
	f := family("fam-1", "user-1", "app")
	createFamily(t, s, f)
	first := base.Add(time.Hour)
	if err := s.RevokeFamily(t.Context(), f.ID, storage.ReasonLogout, first); err != nil {
		t.Fatalf("RevokeFamily: %v", err)
	}
	want := f
	want.RevokedAt = first
	want.RevokeReason = storage.ReasonLogout
	checkFamily(t, getFamily(t, s, f.ID), want)

	// Again: a no-op keeping the first reason and time.
	if err := s.RevokeFamily(t.Context(), f.ID, storage.ReasonReuse, first.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeFamily: %v", err)
	}
	checkFamily(t, getFamily(t, s, f.ID), want)

	// An expired family can still be revoked.
	old := family("fam-old", "user-1", "app")
	createFamily(t, s, old)
	late := old.AbsoluteExpiresAt.Add(time.Hour)
	if err := s.RevokeFamily(t.Context(), old.ID, storage.ReasonAdmin, late); err != nil {
		t.Fatalf("RevokeFamily(expired): %v", err)
	}
	if got := getFamily(t, s, old.ID); !got.RevokedAt.Equal(late) || got.RevokeReason != storage.ReasonAdmin {
		t.Errorf("expired family after revoke = %+v", got)
	}

	wantErr(t, "RevokeFamily(unknown)", s.RevokeFamily(t.Context(), "nope", storage.ReasonLogout, first), storage.ErrNotFound)
}

func testRevokeFamilies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := base.Add(time.Hour)
	earlier := base.Add(time.Minute)
	createFamily(t, s, family("u1-a", "user-1", "app-a"))
	createFamily(t, s, family("u1-b", "user-1", "app-b"))
	createFamily(t, s, family("u2-a", "user-2", "app-a"))
	createFamily(t, s, family("u3-b", "user-3", "app-b"))
	revoked := family("u1-a-revoked", "user-1", "app-a")
	revoked.RevokedAt = earlier
	revoked.RevokeReason = storage.ReasonLogout
	createFamily(t, s, revoked)
	expired := family("u1-a-expired", "user-1", "app-a")
	expired.IdleExpiresAt = now // idle expiry == now: not live
	createFamily(t, s, expired)

	// Empty filter: refused, nothing revoked.
	if n, err := s.RevokeFamilies(ctx, storage.FamilyFilter{}, storage.ReasonAdmin, now); err == nil {
		t.Errorf("RevokeFamilies(empty filter) = %d, nil; want an error", n)
	}
	if f := getFamily(t, s, "u3-b"); f.Revoked() {
		t.Fatal("empty filter revoked a family")
	}

	// By user: only the live ones count.
	n, err := s.RevokeFamilies(ctx, storage.FamilyFilter{UserID: "user-1"}, storage.ReasonAdmin, now)
	if err != nil || n != 2 {
		t.Fatalf("RevokeFamilies(user-1) = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"u1-a", "u1-b"} {
		if f := getFamily(t, s, id); !f.RevokedAt.Equal(now) || f.RevokeReason != storage.ReasonAdmin {
			t.Errorf("%s: RevokedAt %v reason %q", id, f.RevokedAt, f.RevokeReason)
		}
	}
	if f := getFamily(t, s, revoked.ID); !f.RevokedAt.Equal(earlier) || f.RevokeReason != storage.ReasonLogout {
		t.Errorf("already revoked family changed: %+v", f)
	}
	if f := getFamily(t, s, expired.ID); f.Revoked() {
		t.Errorf("expired family revoked: %+v", f)
	}
	for _, id := range []string{"u2-a", "u3-b"} {
		if getFamily(t, s, id).Revoked() {
			t.Errorf("%s of another user revoked", id)
		}
	}

	// By client.
	n, err = s.RevokeFamilies(ctx, storage.FamilyFilter{ClientID: "app-a"}, storage.ReasonAdmin, now)
	if err != nil || n != 1 {
		t.Fatalf("RevokeFamilies(app-a) = %d, %v; want 1", n, err)
	}
	if !getFamily(t, s, "u2-a").Revoked() || getFamily(t, s, "u3-b").Revoked() {
		t.Error("RevokeFamilies(app-a) revoked the wrong families")
	}

	// Both fields: the intersection.
	createFamily(t, s, family("u3-a", "user-3", "app-a"))
	n, err = s.RevokeFamilies(ctx, storage.FamilyFilter{UserID: "user-3", ClientID: "app-a"}, storage.ReasonAdmin, now)
	if err != nil || n != 1 {
		t.Fatalf("RevokeFamilies(user-3, app-a) = %d, %v; want 1", n, err)
	}
	if getFamily(t, s, "u3-b").Revoked() {
		t.Error("RevokeFamilies(user-3, app-a) revoked user-3's app-b family")
	}

	// Nothing left to revoke.
	n, err = s.RevokeFamilies(ctx, storage.FamilyFilter{UserID: "user-1"}, storage.ReasonAdmin, now)
	if err != nil || n != 0 {
		t.Errorf("RevokeFamilies(user-1) again = %d, %v; want 0", n, err)
	}
}

func ids(fams []storage.Family) []string {
	out := make([]string, len(fams))
	for i, f := range fams {
		out[i] = f.ID
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testListFamilies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	add := func(id, user, client string, created time.Duration) {
		f := family(id, user, client)
		f.CreatedAt = base.Add(created)
		createFamily(t, s, f)
	}
	add("f1", "user-1", "app-a", 1*time.Hour)
	add("f2", "user-1", "app-b", 3*time.Hour)
	add("f3", "user-2", "app-a", 2*time.Hour)
	add("f4", "user-1", "app-a", 4*time.Hour)

	tests := []struct {
		filter storage.FamilyFilter
		want   []string
	}{
		{storage.FamilyFilter{}, []string{"f4", "f2", "f3", "f1"}},
		{storage.FamilyFilter{UserID: "user-1"}, []string{"f4", "f2", "f1"}},
		{storage.FamilyFilter{ClientID: "app-a"}, []string{"f4", "f3", "f1"}},
		{storage.FamilyFilter{UserID: "user-1", ClientID: "app-a"}, []string{"f4", "f1"}},
		{storage.FamilyFilter{UserID: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		got, err := s.ListFamilies(ctx, tt.filter)
		if err != nil {
			t.Fatalf("ListFamilies(%+v): %v", tt.filter, err)
		}
		if !equalStrings(ids(got), tt.want) {
			t.Errorf("ListFamilies(%+v) = %v, want %v", tt.filter, ids(got), tt.want)
		}
	}

	// Listed families are whole.
	got, err := s.ListFamilies(ctx, storage.FamilyFilter{UserID: "user-2"})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListFamilies(user-2) = %v, %v", got, err)
	}
	want := family("f3", "user-2", "app-a")
	want.CreatedAt = base.Add(2 * time.Hour)
	checkFamily(t, got[0], want)
}

func testDeleteFamilies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	expiredBefore := base.Add(40 * 24 * time.Hour)
	revokedBefore := base.Add(2 * time.Hour)
	add := func(id string, absolute time.Time, revoked time.Time) {
		f := family(id, "user-1", "app")
		f.AbsoluteExpiresAt = absolute
		f.IdleExpiresAt = absolute
		f.RevokedAt = revoked
		if !revoked.IsZero() {
			f.RevokeReason = storage.ReasonLogout
		}
		createFamily(t, s, f)
	}
	add("expired", expiredBefore.Add(-time.Microsecond), time.Time{})
	add("revoked", base.Add(60*24*time.Hour), revokedBefore.Add(-time.Hour))
	add("expired-and-revoked", base.Add(time.Hour), base)
	add("live", base.Add(60*24*time.Hour), time.Time{})
	add("expires-at-cutoff", expiredBefore, time.Time{})               // not before: kept
	add("revoked-at-cutoff", base.Add(60*24*time.Hour), revokedBefore) // not before: kept
	add("revoked-recently", base.Add(60*24*time.Hour), revokedBefore.Add(time.Hour))

	if _, err := s.DeleteFamilies(ctx, expiredBefore, revokedBefore, 0); err == nil {
		t.Error("DeleteFamilies(limit 0): no error")
	}
	var total int64
	for _, limit := range []int{2, 2} {
		n, err := s.DeleteFamilies(ctx, expiredBefore, revokedBefore, limit)
		if err != nil {
			t.Fatal(err)
		}
		if int(n) > limit {
			t.Fatalf("DeleteFamilies(limit %d) = %d", limit, n)
		}
		total += n
	}
	if total != 3 {
		t.Errorf("deleted %d families, want 3", total)
	}
	if n, err := s.DeleteFamilies(ctx, expiredBefore, revokedBefore, 100); err != nil || n != 0 {
		t.Errorf("DeleteFamilies once done = %d, %v; want 0", n, err)
	}
	got, err := s.ListFamilies(ctx, storage.FamilyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, f := range got {
		left[f.ID] = true
	}
	for _, id := range []string{"live", "expires-at-cutoff", "revoked-at-cutoff", "revoked-recently"} {
		if !left[id] {
			t.Errorf("%s was deleted", id)
		}
	}
	if len(got) != 4 {
		t.Errorf("left %v, want 4 families", ids(got))
	}
}

func user(id, username string) storage.User {
	return storage.User{
		ID:           id,
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		CreatedAt:    base,
		UpdatedAt:    base,
	}
}

func createUser(t *testing.T, s storage.Store, u storage.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.Username, err)
	}
}

func checkUser(t *testing.T, got, want storage.User) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || got.PasswordHash != want.PasswordHash ||
		got.Disabled != want.Disabled || got.Profile != want.Profile {
		t.Errorf("user = %+v\nwant   %+v", got, want)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func getUser(t *testing.T, s storage.Store, username string) storage.User {
	t.Helper()
	u, err := s.GetUserByUsername(t.Context(), username)
	if err != nil {
		t.Fatalf("GetUserByUsername(%s): %v", username, err)
	}
	return u
}

func testUserRoundTrip(t *testing.T, s storage.Store) {
	zone := time.FixedZone("UTC-7", -7*3600)
	u := user("user-1", "ada")
	u.CreatedAt = time.Date(2024, 12, 31, 17, 0, 0, 1000, zone)
	u.UpdatedAt = u.CreatedAt.Add(time.Hour)
	createUser(t, s, u)
	got, err := s.GetUser(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkUser(t, got, u)
	checkUser(t, getUser(t, s, "ada"), u)

	d := user("user-2", "dis")
	d.Disabled = true
	createUser(t, s, d)
	checkUser(t, getUser(t, s, "dis"), d)
}

func testCreateUserDuplicate(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-1", "ada"))
	wantErr(t, "CreateUser(same username)", s.CreateUser(t.Context(), user("user-2", "ada")), storage.ErrAlreadyExists)
	wantErr(t, "CreateUser(same ID)", s.CreateUser(t.Context(), user("user-1", "bob")), storage.ErrAlreadyExists)
	if _, err := s.GetUser(t.Context(), "user-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("duplicate was stored: %v", err)
	}
}

func testGetUserNotFound(t *testing.T, s storage.Store) {
	createUser(t, s, user("user-1", "ada"))
	_, err := s.GetUser(t.Context(), "ada") // a username is not an ID
	wantErr(t, "GetUser", err, storage.ErrNotFound)
	_, err = s.GetUserByUsername(t.Context(), "user-1")
	wantErr(t, "GetUserByUsername", err, storage.ErrNotFound)
	_, err = s.GetUserByUsername(t.Context(), "Ada")
	wantErr(t, "GetUserByUsername(other case)", err, storage.ErrNotFound)
}

func testListUsers(t *testing.T, s storage.Store) {
	got, err := s.ListUsers(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("ListUsers(empty) = %v, %v", got, err)
	}
	// By code point, on every database: upper case before lower case.
	for i, name := range []string{"carol", "bob", "Zed", "alice", "bobby"} {
		createUser(t, s, user(fmt.Sprintf("user-%d", i), name))
	}
	got, err = s.ListUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range got {
		names = append(names, u.Username)
	}
	if want := []string{"Zed", "alice", "bob", "bobby", "carol"}; !equalStrings(names, want) {
		t.Errorf("ListUsers = %v, want %v", names, want)
	}
}

// createAdaSessions creates ada (user-1) with two live sessions (live-a,
// live-b) and a logged-out one, and bob (user-2) with one (bobs); it
// returns ada.
func createAdaSessions(t *testing.T, s storage.Store) storage.User {
	t.Helper()
	u := user("user-1", "ada")
	createUser(t, s, u)
	createUser(t, s, user("user-2", "bob"))
	createFamily(t, s, family("live-a", "user-1", "app-a"))
	createFamily(t, s, family("live-b", "user-1", "app-b"))
	loggedOut := family("logged-out", "user-1", "app-a")
	loggedOut.RevokedAt = base.Add(time.Minute)
	loggedOut.RevokeReason = storage.ReasonLogout
	createFamily(t, s, loggedOut)
	createFamily(t, s, family("bobs", "user-2", "app-a"))
	return u
}

// checkAdaSessionsEnded checks that what (a SetUser* call at now) revoked
// ada's live sessions from createAdaSessions for reason, and nothing else:
// the logged-out session keeps its reason, bob's stays live.
func checkAdaSessionsEnded(t *testing.T, s storage.Store, what string, now time.Time, reason string) {
	t.Helper()
	for _, id := range []string{"live-a", "live-b"} {
		if f := getFamily(t, s, id); !f.RevokedAt.Equal(now) || f.RevokeReason != reason {
			t.Errorf("%s after %s: RevokedAt %v reason %q, want %v %q", id, what, f.RevokedAt, f.RevokeReason, now, reason)
		}
	}
	if f := getFamily(t, s, "logged-out"); f.RevokeReason != storage.ReasonLogout {
		t.Errorf("logged-out family reason after %s = %q, want %q", what, f.RevokeReason, storage.ReasonLogout)
	}
	if getFamily(t, s, "bobs").Revoked() {
		t.Errorf("%s for ada revoked bob's family", what)
	}
	_, err := s.RotateFamily(t.Context(), "live-a", 0, now, now.Add(idleTTL))
	wantErr(t, "RotateFamily after "+what, err, storage.ErrFamilyRevoked)
}

func testSetUserDisabled(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := createAdaSessions(t, s)

	now := base.Add(time.Hour)
	if err := s.SetUserDisabled(ctx, "ada", true, now); err != nil {
		t.Fatalf("SetUserDisabled(true): %v", err)
	}
	want := u
	want.Disabled = true
	want.UpdatedAt = now
	checkUser(t, getUser(t, s, "ada"), want)
	checkAdaSessionsEnded(t, s, "disable", now, storage.ReasonUserDisabled)

	// Enabling does not bring sessions back.
	later := now.Add(time.Hour)
	if err := s.SetUserDisabled(ctx, "ada", false, later); err != nil {
		t.Fatalf("SetUserDisabled(false): %v", err)
	}
	want.Disabled = false
	want.UpdatedAt = later
	checkUser(t, getUser(t, s, "ada"), want)
	if f := getFamily(t, s, "live-a"); !f.Revoked() || f.RevokeReason != storage.ReasonUserDisabled {
		t.Errorf("live-a after enable = %+v", f)
	}
}

func testSetUserPassword(t *testing.T, s storage.Store) {
	u := createAdaSessions(t, s)
	now := base.Add(time.Hour)
	setAdaPassword(t, s, u, false, now)
	// The old password's sessions end with it, in the same transaction.
	checkAdaSessionsEnded(t, s, "set password", now, storage.ReasonPasswordChanged)
}

// setAdaPassword sets the password of u (ada) at now, keeping her sessions
// or not, and checks that it changed the hash and UpdatedAt, and only those.
func setAdaPassword(t *testing.T, s storage.Store, u storage.User, keepSessions bool, now time.Time) {
	t.Helper()
	if err := s.SetUserPassword(t.Context(), "ada", "$argon2id$new", keepSessions, now); err != nil {
		t.Fatalf("SetUserPassword(keepSessions %v): %v", keepSessions, err)
	}
	want := u
	want.PasswordHash = "$argon2id$new"
	want.UpdatedAt = now
	checkUser(t, getUser(t, s, "ada"), want)
}

// testSetUserPasswordKeepSessions: with keepSessions, only the hash changes.
func testSetUserPasswordKeepSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := user("user-1", "ada")
	createUser(t, s, u)
	createFamily(t, s, family("fam-1", "user-1", "app"))
	now := base.Add(time.Hour)
	setAdaPassword(t, s, u, true, now)
	if f := getFamily(t, s, "fam-1"); f.Revoked() {
		t.Errorf("fam-1 revoked (%s) though the sessions were to be kept", f.RevokeReason)
	}
	if _, err := s.RotateFamily(ctx, "fam-1", 0, now, now.Add(idleTTL)); err != nil {
		t.Errorf("RotateFamily after set password, sessions kept: %v", err)
	}
}

func testDeleteUser(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	createUser(t, s, user("user-2", "bob"))
	createFamily(t, s, family("ada-1", "user-1", "app-a"))
	createFamily(t, s, family("ada-2", "user-1", "app-b"))
	createFamily(t, s, family("bob-1", "user-2", "app-a"))

	now := base.Add(time.Hour)
	if err := s.DeleteUser(ctx, "ada", now); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err := s.GetUserByUsername(ctx, "ada")
	wantErr(t, "GetUserByUsername(deleted)", err, storage.ErrNotFound)
	_, err = s.GetUser(ctx, "user-1")
	wantErr(t, "GetUser(deleted)", err, storage.ErrNotFound)
	for _, id := range []string{"ada-1", "ada-2"} {
		if f := getFamily(t, s, id); !f.RevokedAt.Equal(now) || f.RevokeReason != storage.ReasonUserDeleted {
			t.Errorf("%s after delete: RevokedAt %v reason %q", id, f.RevokedAt, f.RevokeReason)
		}
	}
	if getFamily(t, s, "bob-1").Revoked() {
		t.Error("deleting ada revoked bob's family")
	}
	wantErr(t, "DeleteUser again", s.DeleteUser(ctx, "ada", now), storage.ErrNotFound)

	// The username is free again.
	createUser(t, s, user("user-3", "ada"))
}

func testUnknownUsername(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createUser(t, s, user("user-1", "ada"))
	wantErr(t, "SetUserDisabled(true)", s.SetUserDisabled(ctx, "nobody", true, base), storage.ErrNotFound)
	wantErr(t, "SetUserDisabled(false)", s.SetUserDisabled(ctx, "nobody", false, base), storage.ErrNotFound)
	wantErr(t, "SetUserPassword", s.SetUserPassword(ctx, "nobody", "x", false, base), storage.ErrNotFound)
	wantErr(t, "SetUserPassword(keep sessions)", s.SetUserPassword(ctx, "nobody", "x", true, base), storage.ErrNotFound)
	wantErr(t, "DeleteUser", s.DeleteUser(ctx, "nobody", base), storage.ErrNotFound)
	wantErr(t, "DeleteUser(by ID)", s.DeleteUser(ctx, "user-1", base), storage.ErrNotFound)
	checkUser(t, getUser(t, s, "ada"), user("user-1", "ada"))
}

func testDenyAccessToken(t *testing.T, s storage.Store) {
	ctx := t.Context()
	exp := base.Add(15 * time.Minute)
	if err := s.DenyAccessToken(ctx, "jti-1", exp); err != nil {
		t.Fatalf("DenyAccessToken: %v", err)
	}
	if err := s.DenyAccessToken(ctx, "jti-1", exp.Add(time.Hour)); err != nil {
		t.Fatalf("DenyAccessToken twice: %v", err)
	}
	for jti, want := range map[string]bool{"jti-1": true, "jti-2": false, "": false} {
		got, err := s.CheckAccess(ctx, jti, "")
		if err != nil || got.Denied != want {
			t.Errorf("CheckAccess(%q).Denied = %v, %v; want %v", jti, got.Denied, err, want)
		}
	}
}

func testCheckAccess(t *testing.T, s storage.Store) {
	ctx := t.Context()
	full := family("fam-full", "user-1", "app")
	full.Generation = 7
	full.RotatedAt = base.Add(time.Minute)
	full.LastUsedAt = base.Add(time.Minute)
	createFamily(t, s, full)
	revoked := family("fam-revoked", "user-2", "app")
	createFamily(t, s, revoked)
	if err := s.RevokeFamily(ctx, revoked.ID, storage.ReasonLogout, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	revoked.RevokedAt, revoked.RevokeReason = base.Add(time.Hour), storage.ReasonLogout
	orphan := family("fam-orphan", "user-3", "app")
	createFamily(t, s, orphan)
	if err := s.DeleteUser(ctx, "name-user-3", base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	orphan.RevokedAt, orphan.RevokeReason = base.Add(2*time.Hour), storage.ReasonUserDeleted
	if err := s.DenyAccessToken(ctx, "jti-denied", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		jti, familyID string
		denied        bool
		family        storage.Family // zero: none
		username      string
	}{
		{"jti-denied", "", true, storage.Family{}, ""},
		{"jti-other", "", false, storage.Family{}, ""},
		{"", "", false, storage.Family{}, ""},
		{"jti-denied", full.ID, true, full, "name-user-1"},
		{"jti-other", full.ID, false, full, "name-user-1"},
		{"", full.ID, false, full, "name-user-1"},
		{"", revoked.ID, false, revoked, "name-user-2"},
		{"jti-other", orphan.ID, false, orphan, ""}, // the user is gone
		{"jti-denied", "fam-unknown", true, storage.Family{}, ""},
		{"", "fam-unknown", false, storage.Family{}, ""},
	} {
		got, err := s.CheckAccess(ctx, tc.jti, tc.familyID)
		if err != nil {
			t.Fatalf("CheckAccess(%q, %q): %v", tc.jti, tc.familyID, err)
		}
		if got.Denied != tc.denied || got.Username != tc.username {
			t.Errorf("CheckAccess(%q, %q) = denied %v, username %q; want %v, %q",
				tc.jti, tc.familyID, got.Denied, got.Username, tc.denied, tc.username)
		}
		if tc.family.ID == "" {
			if got.Family.ID != "" {
				t.Errorf("CheckAccess(%q, %q): family %q, want none", tc.jti, tc.familyID, got.Family.ID)
			}
			continue
		}
		checkFamily(t, got.Family, tc.family)
	}
}

func testDeleteDenials(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cutoff := base.Add(time.Hour)
	for jti, exp := range map[string]time.Time{
		"old-1":     base,
		"old-2":     base.Add(30 * time.Minute),
		"old-3":     cutoff.Add(-time.Microsecond),
		"at-cutoff": cutoff,
		"current":   cutoff.Add(time.Hour),
	} {
		if err := s.DenyAccessToken(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	deleteInBatches(t, "DeleteDenials", 0, 2, 1, func(limit int) (int64, error) {
		return s.DeleteDenials(ctx, cutoff, limit)
	})
	for jti, want := range map[string]bool{"old-1": false, "old-2": false, "old-3": false, "at-cutoff": true, "current": true} {
		if got, err := s.CheckAccess(ctx, jti, ""); err != nil || got.Denied != want {
			t.Errorf("CheckAccess(%s).Denied = %v, %v; want %v", jti, got.Denied, err, want)
		}
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+1", 3600)
	key := func(id string, activate time.Duration) storage.SigningKey {
		return storage.SigningKey{
			ID:               id,
			Algorithm:        "ES256",
			PublicJWK:        []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `"}`),
			PrivateEncrypted: []byte{0x00, 0xff, 0x10, byte(len(id))},
			CreatedAt:        base.In(zone),
			ActivateAt:       base.Add(activate).In(zone),
		}
	}
	keys := []storage.SigningKey{key("k-late", 2*time.Hour), key("k-b", time.Hour), key("k-a", time.Hour), key("k-first", 0)}
	for _, k := range keys {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
		}
	}
	wantErr(t, "CreateSigningKey(duplicate)", s.CreateSigningKey(ctx, key("k-a", 5*time.Hour)), storage.ErrAlreadyExists)

	list := func() []storage.SigningKey {
		t.Helper()
		got, err := s.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := list()
	want := []storage.SigningKey{keys[3], keys[2], keys[1], keys[0]} // ActivateAt, then ID
	if len(got) != len(want) {
		t.Fatalf("ListSigningKeys = %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Algorithm != w.Algorithm || !bytes.Equal(g.PublicJWK, w.PublicJWK) || !bytes.Equal(g.PrivateEncrypted, w.PrivateEncrypted) {
			t.Errorf("key %d = %+v, want %+v", i, g, w)
		}
		checkTime(t, "CreatedAt", g.CreatedAt, w.CreatedAt)
		checkTime(t, "ActivateAt", g.ActivateAt, w.ActivateAt)
		checkTime(t, "RevokedAt", g.RevokedAt, time.Time{})
	}

}

// signingKey is a stored key of id that activates activate after base.
func signingKey(id string, activate time.Duration) storage.SigningKey {
	return storage.SigningKey{
		ID:               id,
		Algorithm:        "ES256",
		PublicJWK:        []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `"}`),
		PrivateEncrypted: []byte{0x00, 0xff, 0x10, byte(len(id))},
		CreatedAt:        base,
		ActivateAt:       base.Add(activate),
	}
}

func createSigningKeys(t *testing.T, s storage.Store, keys ...storage.SigningKey) {
	t.Helper()
	for _, k := range keys {
		if err := s.CreateSigningKey(t.Context(), k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
		}
	}
}

// signingKeysByID lists the stored keys by ID.
func signingKeysByID(t *testing.T, s storage.Store) map[string]storage.SigningKey {
	t.Helper()
	list, err := s.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]storage.SigningKey, len(list))
	for _, k := range list {
		out[k.ID] = k
	}
	return out
}

// testRevokeSigningKey: a revoked key keeps its row, loses its private
// half, and shows in the cheap revocation summary; a second revocation
// keeps the first time.
func testRevokeSigningKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createSigningKeys(t, s, signingKey("k-1", 0), signingKey("k-2", time.Hour), signingKey("k-3", 2*time.Hour))
	summary := func() storage.KeyRevocations {
		t.Helper()
		r, err := s.SigningKeyRevocations(ctx)
		if err != nil {
			t.Fatalf("SigningKeyRevocations: %v", err)
		}
		return r
	}
	if r := summary(); r.Count != 0 || !r.Latest.IsZero() {
		t.Errorf("no revocation: summary = %+v, want zero", r)
	}
	for id, k := range signingKeysByID(t, s) {
		if k.Revoked() {
			t.Errorf("%s revoked before any revocation", id)
		}
	}

	zone := time.FixedZone("UTC+1", 3600)
	at := base.Add(90 * time.Minute)
	if err := s.RevokeSigningKey(ctx, "k-2", at.In(zone)); err != nil {
		t.Fatalf("RevokeSigningKey: %v", err)
	}
	keys := signingKeysByID(t, s)
	if len(keys) != 3 {
		t.Fatalf("%d keys after revocation, want 3 (the row is kept)", len(keys))
	}
	k2 := keys["k-2"]
	checkTime(t, "RevokedAt", k2.RevokedAt, at)
	if len(k2.PrivateEncrypted) != 0 {
		t.Errorf("revoked key still holds its private half: %x", k2.PrivateEncrypted)
	}
	if !bytes.Equal(k2.PublicJWK, signingKey("k-2", 0).PublicJWK) || !k2.ActivateAt.Equal(base.Add(time.Hour)) {
		t.Errorf("revocation changed the public half or the activation: %+v", k2)
	}
	if k1 := keys["k-1"]; k1.Revoked() || len(k1.PrivateEncrypted) == 0 {
		t.Errorf("revoking k-2 touched k-1: %+v", k1)
	}
	r := summary()
	if r.Count != 1 {
		t.Errorf("summary count = %d, want 1", r.Count)
	}
	checkTime(t, "Latest", r.Latest, at)

	// Again, later: a no-op keeping the first time.
	if err := s.RevokeSigningKey(ctx, "k-2", at.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeSigningKey again: %v", err)
	}
	checkTime(t, "RevokedAt after second revocation", signingKeysByID(t, s)["k-2"].RevokedAt, at)
	if r2 := summary(); r2 != r {
		t.Errorf("second revocation changed the summary: %+v, want %+v", r2, r)
	}

	// Another revocation changes the summary, even at an earlier time.
	earlier := base.Add(time.Minute)
	if err := s.RevokeSigningKey(ctx, "k-3", earlier); err != nil {
		t.Fatal(err)
	}
	r = summary()
	if r.Count != 2 {
		t.Errorf("summary count = %d, want 2", r.Count)
	}
	checkTime(t, "Latest", r.Latest, at)

	wantErr(t, "RevokeSigningKey(unknown)", s.RevokeSigningKey(ctx, "k-none", at), storage.ErrNotFound)
}

// testActivateSigningKey: a pending key can be made to sign earlier; a
// revoked or unknown one cannot.
func testActivateSigningKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	createSigningKeys(t, s, signingKey("k-1", 0), signingKey("k-2", time.Hour), signingKey("k-3", 2*time.Hour))
	now := base.Add(10 * time.Minute)
	if err := s.ActivateSigningKey(ctx, "k-3", now); err != nil {
		t.Fatalf("ActivateSigningKey: %v", err)
	}
	keys := signingKeysByID(t, s)
	checkTime(t, "k-3 ActivateAt", keys["k-3"].ActivateAt, now)
	checkTime(t, "k-2 ActivateAt", keys["k-2"].ActivateAt, base.Add(time.Hour))
	list, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, k := range list {
		order = append(order, k.ID)
	}
	if w := []string{"k-1", "k-3", "k-2"}; !equalStrings(order, w) {
		t.Errorf("order after activation = %v, want %v", order, w)
	}

	if err := s.RevokeSigningKey(ctx, "k-2", now); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "ActivateSigningKey(revoked)", s.ActivateSigningKey(ctx, "k-2", now), storage.ErrNotFound)
	checkTime(t, "revoked k-2 ActivateAt", signingKeysByID(t, s)["k-2"].ActivateAt, base.Add(time.Hour))
	wantErr(t, "ActivateSigningKey(unknown)", s.ActivateSigningKey(ctx, "k-none", now), storage.ErrNotFound)
}

// testDeleteSigningKeys: keys are deleted once revoked before the cutoff,
// or once a later key that really signed activated before the other
// cutoff; a key revoked before it activated supersedes nothing, and a tie
// in ActivateAt retires neither key.
func testDeleteSigningKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	revoke := func(id string, at time.Time) {
		t.Helper()
		if err := s.RevokeSigningKey(ctx, id, at); err != nil {
			t.Fatalf("RevokeSigningKey(%s): %v", id, err)
		}
	}
	supersededBefore, revokedBefore := base.Add(4*time.Hour), base.Add(time.Hour)
	createSigningKeys(t, s,
		signingKey("old", 0),                     // superseded by mid at +1h: deleted
		signingKey("mid", time.Hour),             // superseded by cur at +5h, after the cutoff: kept
		signingKey("never-signed", 2*time.Hour),  // revoked at +90m, before it activated: supersedes nothing
		signingKey("rev-old", 6*time.Hour),       // revoked at +30m: deleted
		signingKey("rev-at-cutoff", 7*time.Hour), // revoked at +1h: kept
		signingKey("cur", 5*time.Hour),
		signingKey("tie", 5*time.Hour), // same ActivateAt as cur: neither supersedes the other
	)
	revoke("never-signed", base.Add(90*time.Minute))
	revoke("rev-old", base.Add(30*time.Minute))
	revoke("rev-at-cutoff", revokedBefore)

	deleteInBatches(t, "DeleteSigningKeys", 0, 1, 1, func(limit int) (int64, error) {
		return s.DeleteSigningKeys(ctx, supersededBefore, revokedBefore, limit)
	})
	var left []string
	list, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range list {
		left = append(left, k.ID)
	}
	if w := []string{"mid", "never-signed", "cur", "tie", "rev-at-cutoff"}; !equalStrings(left, w) {
		t.Errorf("left %v, want %v", left, w)
	}
	// Once cur has activated before the cutoff, mid and never-signed go
	// (never-signed is older than cur), and cur and tie stay.
	n, err := s.DeleteSigningKeys(ctx, base.Add(5*time.Hour+time.Microsecond), revokedBefore, 10)
	if err != nil || n != 2 {
		t.Fatalf("DeleteSigningKeys(after cur) = %d, %v; want 2", n, err)
	}
	if r, err := s.SigningKeyRevocations(ctx); err != nil || r.Count != 1 {
		t.Errorf("SigningKeyRevocations after deletes = %+v, %v; want 1 (rev-at-cutoff)", r, err)
	}
}

// testDeleteSigningKeysPerAlgorithm: a key is superseded only by a later
// key of its own algorithm. The RS256 key activated first, then ES256
// keys rotated twice: the old ES256 key goes, the RS256 key (no later
// RS256 key) and the newest ES256 key stay; once an RS256 key has
// activated too, the old RS256 key goes.
func testDeleteSigningKeysPerAlgorithm(t *testing.T, s storage.Store) {
	ctx := t.Context()
	withAlg := func(k storage.SigningKey, alg string) storage.SigningKey { k.Algorithm = alg; return k }
	createSigningKeys(t, s,
		withAlg(signingKey("rs-old", 0), "RS256"),
		signingKey("es-old", time.Hour),
		signingKey("es-cur", 2*time.Hour),
		withAlg(signingKey("ed-cur", 30*time.Minute), "EdDSA"),
		withAlg(signingKey("rs-next", 5*time.Hour), "RS256"),
	)
	left := func() []string {
		t.Helper()
		list, err := s.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range list {
			ids = append(ids, k.ID)
		}
		return ids
	}
	n, err := s.DeleteSigningKeys(ctx, base.Add(3*time.Hour), base, 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSigningKeys(+3h) = %d, %v; want 1 (es-old)", n, err)
	}
	if got, want := left(), []string{"rs-old", "ed-cur", "es-cur", "rs-next"}; !equalStrings(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	n, err = s.DeleteSigningKeys(ctx, base.Add(6*time.Hour), base, 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSigningKeys(+6h) = %d, %v; want 1 (rs-old)", n, err)
	}
	if got, want := left(), []string{"ed-cur", "es-cur", "rs-next"}; !equalStrings(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

var testRule = storage.ThrottleRule{Free: 3, BaseDelay: time.Second, MaxDelay: 4 * time.Second, Window: time.Hour, Orphan: time.Minute}

// reserve calls ReserveAttempts on one key and checks whether it reserved.
func reserve(t *testing.T, s storage.Store, key string, rule storage.ThrottleRule, now time.Time, want bool) storage.Throttle {
	t.Helper()
	res, err := s.ReserveAttempts(t.Context(), []storage.Reservation{{Key: key, Rule: rule}}, now)
	if err != nil {
		t.Fatalf("ReserveAttempts(%s): %v", key, err)
	}
	if len(res.States) != 1 || (res.Refused < 0) != want {
		t.Fatalf("ReserveAttempts(%s) at %s = %+v, want reserved %v", key, now.Sub(base), res, want)
	}
	return res.States[0]
}

func resolve(t *testing.T, s storage.Store, key string, o storage.AttemptOutcome, rule storage.ThrottleRule, now time.Time) {
	t.Helper()
	if err := s.ResolveAttempts(t.Context(), []storage.Resolution{{Key: key, Outcome: o, Rule: rule}}, now); err != nil {
		t.Fatalf("ResolveAttempt(%s, %d): %v", key, o, err)
	}
}

func wantThrottle(t *testing.T, s storage.Store, key string, failures, pending int) storage.Throttle {
	t.Helper()
	th, err := s.GetThrottle(t.Context(), key)
	if err != nil || th.Key != key || th.Failures != failures || th.Pending != pending {
		t.Fatalf("GetThrottle(%s) = %+v, %v; want failures %d pending %d", key, th, err, failures, pending)
	}
	return th
}

func testReserveAttempt(t *testing.T, s storage.Store) {
	_, err := s.GetThrottle(t.Context(), "k")
	wantErr(t, "GetThrottle(none)", err, storage.ErrNotFound)
	now := base
	for i := 1; i <= 3; i++ {
		if th := reserve(t, s, "k", testRule, now, true); th.Pending != i || th.Failures != 0 {
			t.Fatalf("reservation %d: %+v", i, th)
		}
	}
	checkTime(t, "PendingSince", wantThrottle(t, s, "k", 0, 3).PendingSince, now)
	reserve(t, s, "k", testRule, now, false) // failures + pending reach Free
	reserve(t, s, "other", testRule, now, true)
	resolve(t, s, "k", storage.AttemptRefunded, testRule, now)
	wantThrottle(t, s, "k", 0, 2)
	reserve(t, s, "k", testRule, now, true)
	for range 3 {
		resolve(t, s, "k", storage.AttemptFailed, testRule, now)
	}
	checkTime(t, "LastFailureAt", wantThrottle(t, s, "k", 3, 0).LastFailureAt, now)
	// Past the free failures: one at a time, once the delay has passed.
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		reserve(t, s, "k", testRule, now.Add(d-time.Microsecond), false)
		now = now.Add(d)
		reserve(t, s, "k", testRule, now, true)
		reserve(t, s, "k", testRule, now, false) // one pending: no second
		resolve(t, s, "k", storage.AttemptFailed, testRule, now)
	}
	wantThrottle(t, s, "k", 7, 0)
	// A refunded attempt past the free failures leaves the delay as it was.
	now = now.Add(4 * time.Second)
	reserve(t, s, "k", testRule, now, true)
	resolve(t, s, "k", storage.AttemptAllowed, testRule, now)
	wantThrottle(t, s, "k", 7, 0)
	reserve(t, s, "k", testRule, now, true)
	// Several keys resolved in one call, each its own way.
	if err := s.ResolveAttempts(t.Context(), []storage.Resolution{
		{Key: "k", Outcome: storage.AttemptSucceeded, Rule: testRule},
		{Key: "other", Outcome: storage.AttemptFailed, Rule: testRule},
	}, now); err != nil {
		t.Fatal(err)
	}
	wantThrottle(t, s, "k", 0, 0)
	wantThrottle(t, s, "other", 1, 0)
	if err := s.ResolveAttempts(t.Context(), []storage.Resolution{{Key: "k", Outcome: 0}}, now); err == nil {
		t.Error("ResolveAttempts(outcome 0): no error")
	}
	for range 3 {
		reserve(t, s, "k", testRule, now, true)
	}
}

// testReserveAllOrNone: several keys are reserved together or not at all.
func testReserveAllOrNone(t *testing.T, s storage.Store) {
	one := testRule
	one.Free = 1
	keys := []storage.Reservation{{Key: "a", Rule: testRule}, {Key: "b", Rule: one}, {Key: "c", Rule: testRule}}
	res, err := s.ReserveAttempts(t.Context(), keys, base)
	if err != nil || res.Refused != -1 || len(res.States) != 3 || res.States[1].Pending != 1 {
		t.Fatalf("first = %+v, %v; want all reserved", res, err)
	}
	res, err = s.ReserveAttempts(t.Context(), keys, base) // b has no free place left
	if err != nil || res.Refused != 1 || len(res.States) != 2 || res.States[1].Key != "b" || res.States[1].Pending != 1 {
		t.Fatalf("second = %+v, %v; want b refused", res, err)
	}
	wantThrottle(t, s, "a", 0, 1) // the second reservation on a was undone
	wantThrottle(t, s, "b", 0, 1)
	wantThrottle(t, s, "c", 0, 1) // never reached
}

// testReserveAttemptWindow: failures older than the window are forgotten,
// by a reservation and by a failure.
func testReserveAttemptWindow(t *testing.T, s storage.Store) {
	for range 3 {
		reserve(t, s, "k", testRule, base, true)
		resolve(t, s, "k", storage.AttemptFailed, testRule, base)
	}
	reserve(t, s, "k", testRule, base.Add(testRule.Window-time.Microsecond), true) // past the delay
	resolve(t, s, "k", storage.AttemptRefunded, testRule, base)
	later := base.Add(testRule.Window + time.Microsecond)
	reserve(t, s, "k", testRule, later, true)
	reserve(t, s, "k", testRule, later, true) // 3 old failures would refuse this one
	resolve(t, s, "k", storage.AttemptFailed, testRule, later)
	wantThrottle(t, s, "k", 1, 1)
	for range 3 {
		reserve(t, s, "j", testRule, base, true)
		resolve(t, s, "j", storage.AttemptFailed, testRule, base)
	}
	resolve(t, s, "j", storage.AttemptFailed, testRule, later) // an unreserved failure
	wantThrottle(t, s, "j", 1, 0)
}

// testReserveAttemptOrphan: a reservation never resolved (its instance
// crashed) counts as a failure once older than the orphan timeout, and
// resolving it late takes no other attempt's reservation.
func testReserveAttemptOrphan(t *testing.T, s storage.Store) {
	for range 3 {
		reserve(t, s, "k", testRule, base, true)
	}
	reserve(t, s, "k", testRule, base.Add(testRule.Orphan), false)
	wantThrottle(t, s, "k", 0, 3)
	late := base.Add(testRule.Orphan + time.Microsecond)
	reserve(t, s, "k", testRule, late, false) // three failures at late: the delay runs
	checkTime(t, "LastFailureAt", wantThrottle(t, s, "k", 3, 0).LastFailureAt, late)
	resolve(t, s, "k", storage.AttemptRefunded, testRule, late)
	wantThrottle(t, s, "k", 3, 0)
	reserve(t, s, "k", testRule, late.Add(time.Second), true)
	wantThrottle(t, s, "k", 3, 1)
}

// testReserveAttemptLiveNotOrphan: attempts that keep resolving are alive,
// however long the key has had some pending: a refusal after the orphan
// time, counted from when the pending began, must not turn the attempts
// still in flight into failures. Only a pending count that has seen no
// resolution for Orphan is taken as left by a crashed instance.
func testReserveAttemptLiveNotOrphan(t *testing.T, s storage.Store) {
	for range testRule.Free {
		reserve(t, s, "k", testRule, base, true)
	}
	mid := base.Add(testRule.Orphan - time.Second)
	resolve(t, s, "k", storage.AttemptRefunded, testRule, mid) // one resolves...
	reserve(t, s, "k", testRule, mid, true)                    // ...and another takes its place
	late := base.Add(testRule.Orphan + time.Second)
	reserve(t, s, "k", testRule, late, false) // waits for those in flight
	wantThrottle(t, s, "k", 0, testRule.Free)
	// Quiet for Orphan after the last resolution: now they are orphans.
	reserve(t, s, "k", testRule, mid.Add(testRule.Orphan+time.Second), false)
	wantThrottle(t, s, "k", testRule.Free, 0)
}

// testReserveAttemptExtremeDelay: a long base delay and many failures
// neither overflow nor wrap: the delay stays at the cap.
func testReserveAttemptExtremeDelay(t *testing.T, s storage.Store) {
	rule := storage.ThrottleRule{Free: 1, BaseDelay: time.Hour, MaxDelay: 100 * 365 * 24 * time.Hour,
		Window: 200 * 365 * 24 * time.Hour, Orphan: time.Minute}
	if d := rule.Delay(1000); d != rule.MaxDelay {
		t.Errorf("Delay(1000) = %s, want %s", d, rule.MaxDelay)
	}
	huge := storage.ThrottleRule{Free: 5, BaseDelay: time.Hour, MaxDelay: time.Duration(1<<63 - 1)}
	for f := range 2000 {
		if d := huge.Delay(f); d < 0 || (f >= 5 && d < time.Hour) {
			t.Fatalf("Delay(%d) = %s with the largest MaxDelay", f, d)
		}
	}
	const failures = 100
	for range failures {
		resolve(t, s, "k", storage.AttemptFailed, rule, base)
	}
	reserve(t, s, "k", rule, base.Add(rule.MaxDelay-time.Microsecond), false)
	reserve(t, s, "k", rule, base.Add(time.Hour), false)
	reserve(t, s, "k", rule, base.Add(rule.MaxDelay), true)
	wantThrottle(t, s, "k", failures, 1)
}

// testConcurrentReserve: of N callers reserving one key at once, exactly
// the free number succeed.
func testConcurrentReserve(t *testing.T, s storage.Store) {
	const n, limit = 24, 5
	rule := testRule
	rule.Free = limit
	var wg sync.WaitGroup
	got := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var res storage.ReserveResult
			res, errs[i] = s.ReserveAttempts(t.Context(), []storage.Reservation{{Key: "k", Rule: rule}}, base)
			got[i] = errs[i] == nil && res.Refused < 0
		})
	}
	wg.Wait()
	ok := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		if got[i] {
			ok++
		}
	}
	if ok != limit {
		t.Errorf("%d of %d concurrent reservations succeeded, want exactly %d", ok, n, limit)
	}
	wantThrottle(t, s, "k", 0, limit)
}

// testConcurrentResolve: failures resolved at once all count.
func testConcurrentResolve(t *testing.T, s storage.Store) {
	const n = 20
	rule := testRule
	rule.Free = 100
	for range n {
		reserve(t, s, "k", rule, base, true)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.ResolveAttempts(t.Context(), []storage.Resolution{{Key: "k", Outcome: storage.AttemptFailed, Rule: rule}}, base)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	wantThrottle(t, s, "k", n, 0)
}

func testDeleteThrottles(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cutoff := base.Add(time.Hour)
	rule := testRule
	rule.Window = 10 * time.Hour
	for key, at := range map[string]time.Time{
		"old-1":     base,
		"old-2":     base.Add(time.Minute),
		"old-3":     cutoff.Add(-time.Microsecond),
		"at-cutoff": cutoff,
		"recent":    cutoff.Add(time.Minute),
	} {
		resolve(t, s, key, storage.AttemptFailed, rule, at)
	}
	// Pending since the cutoff: kept, though it never failed.
	reserve(t, s, "pending", rule, cutoff, true)
	deleteInBatches(t, "DeleteThrottles", -1, 2, 1, func(limit int) (int64, error) {
		return s.DeleteThrottles(ctx, cutoff, limit)
	})
	for key, want := range map[string]bool{"old-1": false, "old-2": false, "old-3": false, "at-cutoff": true, "recent": true, "pending": true} {
		_, err := s.GetThrottle(ctx, key)
		if got := err == nil; got != want || (err != nil && !errors.Is(err, storage.ErrNotFound)) {
			t.Errorf("GetThrottle(%s) err = %v; want kept = %v", key, err, want)
		}
	}
}

func testKnownAddresses(t *testing.T, s storage.Store) {
	ctx := t.Context()
	known := func(user, addr string, since time.Time, want bool) {
		t.Helper()
		seen, err := s.AddressLastSeen(ctx, user, addr)
		if got := !seen.IsZero() && !seen.Before(since); err != nil || got != want {
			t.Errorf("AddressLastSeen(%s, %s) = %s, %v; want seen since %s: %v", user, addr, seen, err, since.Sub(base), want)
		}
	}
	remember := func(user, addr string, at time.Time) {
		t.Helper()
		if err := s.RememberAddress(ctx, user, addr, at, 2); err != nil {
			t.Fatalf("RememberAddress: %v", err)
		}
	}
	if err := s.RememberAddress(ctx, "u1", "a1", base, 0); err == nil {
		t.Error("RememberAddress(keep 0): no error")
	}
	known("u1", "a1", base, false)
	remember("u1", "a1", base)
	remember("u1", "a2", base.Add(time.Minute))
	known("u1", "a1", base, true)
	known("u1", "a1", base.Add(time.Microsecond), false) // seen before since
	known("u2", "a1", base, false)                       // per user
	remember("u2", "a1", base)
	remember("u1", "a1", base.Add(2*time.Minute)) // seen again: moves up
	remember("u1", "a1", base)                    // an older sighting does not move it back
	remember("u1", "a3", base.Add(3*time.Minute)) // a2 is now the oldest of three: dropped
	known("u1", "a1", base.Add(2*time.Minute), true)
	known("u1", "a2", base, false)
	known("u1", "a3", base, true)
	known("u2", "a1", base, true) // another user's addresses are not pruned
}

// deleteInBatches checks the limit of a Delete* method, del: limit bad is
// refused, a call with limit first deletes first rows, and one with limit
// 10 the rest, rest rows (fewer than 10).
func deleteInBatches(t *testing.T, name string, bad, first int, rest int64, del func(limit int) (int64, error)) {
	t.Helper()
	if _, err := del(bad); err == nil {
		t.Errorf("%s(limit %d): no error", name, bad)
	}
	if n, err := del(first); err != nil || n != int64(first) {
		t.Fatalf("%s(limit %d) = %d, %v; want %d", name, first, n, err, first)
	}
	if n, err := del(10); err != nil || n != rest {
		t.Fatalf("%s(limit 10) = %d, %v; want %d", name, n, err, rest)
	}
}

func testDeleteKnownAddresses(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cutoff := base.Add(time.Hour)
	for i, at := range []time.Time{base, base.Add(time.Minute), cutoff.Add(-time.Microsecond), cutoff, cutoff.Add(time.Minute)} {
		if err := s.RememberAddress(ctx, "u"+strconv.Itoa(i), "a", at, 10); err != nil {
			t.Fatal(err)
		}
	}
	deleteInBatches(t, "DeleteKnownAddresses", 0, 2, 1, func(limit int) (int64, error) {
		return s.DeleteKnownAddresses(ctx, cutoff, limit)
	})
	for i, want := range []bool{false, false, false, true, true} {
		if seen, err := s.AddressLastSeen(ctx, "u"+strconv.Itoa(i), "a"); err != nil || seen.IsZero() == want {
			t.Errorf("AddressLastSeen(u%d) = %s, %v; want kept %v", i, seen, err, want)
		}
	}
}

func testPing(t *testing.T, s storage.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

package recommend

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
)

// randomUser is a user of a random history (some ids unknown to snap),
// consumed items and shown slates, with an open session's mode evidence
// accounting for part of them.
func randomUser(snap *catalog.Snapshot, r *rand.Rand, u int) UserState {
	n := snap.Len()
	st := UserState{UserID: fmt.Sprint("u", u), Stats: Stats{Clicks: 20, NovelClicks: 4, FamiliarClicks: 16}, Session: Session{ID: "s", Start: 1, Last: 2}}
	for k := range r.IntN(201) {
		id := snap.Item(int32(r.IntN(n))).ID
		if r.IntN(50) == 0 {
			id = fmt.Sprint("unknown-", k)
		}
		st.History = append(st.History, Consumed{ItemID: id, TS: int64(1000 - k)})
	}
	for range r.IntN(300) {
		st.Consumed.Add(snap.Hash(int32(r.IntN(n))))
	}
	for s := range r.IntN(6) {
		ids := make([]string, 1+r.IntN(10))
		for k := range ids {
			ids[k] = snap.Item(int32(r.IntN(n))).ID
		}
		if r.IntN(10) == 0 {
			ids[0] = "unknown"
		}
		st.Session.Shown = append(st.Session.Shown, ShownRecord(fmt.Sprint("r", s), ids)...)
	}
	if r.IntN(2) == 0 {
		st.Stats.ModeSession = "s"
		st.Stats.ModeAccounted = r.IntN(len(st.Session.Shown) + 1)
	}
	return st
}

// TestViewCacheDecidesAsFresh: an engine with the view cache decides
// exactly as one without, for users who return with the same history and
// with a history that feedback changed, and across a catalog swap.
func TestViewCacheDecidesAsFresh(t *testing.T) {
	snaps := []*catalog.Snapshot{sampleSnapshot(t, 2000), learnedSnapshot(t, 2000, 20)}
	cached, fresh := NewEngine(Config{Views: 64}), NewEngine(Config{Views: -1})
	if cached.views == nil || fresh.views != nil {
		t.Fatal("Views: want a cache only when positive")
	}
	m := DefaultModel()
	r := rand.New(rand.NewPCG(1, 2))
	users := make([]UserState, 100) // more than the cache holds: evictions too (each user is asked twice in a row: hits)
	for u := range users {
		users[u] = randomUser(snaps[0], r, u)
	}
	rc, rf := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	for round := range 6 {
		snap := snaps[round/3] // the catalog changes after round 2
		for u := range users {
			st := &users[u]
			var a, b Decision
			for range 2 { // the second from the cache
				var err error
				if a, err = cached.Decide(Request{K: 10, Now: 5}, st, snap, m, rc); err != nil {
					t.Fatal(err)
				}
				if b, err = fresh.Decide(Request{K: 10, Now: 5}, st, snap, m, rf); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(a, b) {
					t.Fatalf("round %d, user %d: cached view decides\n%+v\nfresh\n%+v", round, u, a, b)
				}
			}
			if len(a.Items) > 0 && r.IntN(3) == 0 {
				// An engagement changes the history.
				st.Session.Shown = append(st.Session.Shown, ShownRecord("q", []string{a.Items[0].ItemID})...)
				Observe(st, snap, Feedback{UserID: st.UserID, SessionID: "s", ItemID: a.Items[0].ItemID, Type: Click, TS: int64(2000 + round)}, 0, m.ModeModel())
			}
		}
	}
}

// TestResolvedEvidenceMatchesLookups: the mode evidence a decision reads
// from the shown ids resolved once equals the evidence from looking each id
// up where it is read.
func TestResolvedEvidenceMatchesLookups(t *testing.T) {
	for _, snap := range []*catalog.Snapshot{sampleSnapshot(t, 2000), learnedSnapshot(t, 2000, 20)} {
		r := rand.New(rand.NewPCG(5, 6))
		mm := intent.DefaultModeModel()
		for u := range 200 {
			st := randomUser(snap, r, u)
			seen := SeenOf(snap, st.History)
			shown := resolveShown(nil, snap, st.Session.Shown)
			_, got := modeObservations(&st, snap, seen, shown, mm)
			var want intent.ModeChain
			from := 0
			if st.Stats.ModeSession == "s" {
				want, from = sessionChain(&st.Stats, mm), st.Stats.ModeAccounted
			}
			want = evidenceFrom(want, mm, st.Session.Shown, from, func(j int) (float64, bool, bool) {
				return lookupShown(snap, seen, &st.Consumed, st.Session.Shown[j])
			})
			if got != want {
				t.Fatalf("user %d: resolved evidence %v, looked up %v", u, got, want)
			}
		}
	}
}

// TestViewCacheShared: concurrent decisions share cached views and only
// read them (run under -race), and decide as an engine without the cache.
func TestViewCacheShared(t *testing.T) {
	snap := learnedSnapshot(t, 2000, 20)
	cached, fresh := NewEngine(Config{}), NewEngine(Config{Views: -1})
	m := DefaultModel()
	r := rand.New(rand.NewPCG(7, 8))
	users := make([]UserState, 10)
	want := make([]Decision, len(users))
	for u := range users {
		users[u] = randomUser(snap, r, u)
		d, err := fresh.Decide(Request{K: 10, Now: 5, Deterministic: true}, &users[u], snap, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[u] = d
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for k := range 50 {
				u := (g + k) % len(users)
				d, err := cached.Decide(Request{K: 10, Now: 5, Deterministic: true}, &users[u], snap, m, nil)
				if err == nil && !reflect.DeepEqual(d, want[u]) {
					err = fmt.Errorf("user %d: shared view decides %+v, want %+v", u, d, want[u])
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

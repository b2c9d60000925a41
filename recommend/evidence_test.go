package recommend

import (
	"math"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
)

// splitByNovelty returns n items fully novel and n fully familiar to a
// user with history hist (none of them in it).
func splitByNovelty(t *testing.T, snap *catalog.Snapshot, hist []Consumed, n int) (novel, familiar []string) {
	t.Helper()
	seen := SeenOf(snap, hist)
	inHist := map[string]bool{}
	for _, h := range hist {
		inHist[h.ItemID] = true
	}
	for i := int32(0); i < int32(snap.Len()) && (len(novel) < n || len(familiar) < n); i++ {
		id := snap.Item(i).ID
		if inHist[id] {
			continue
		}
		switch v, _ := seen.Novelty(snap, i); {
		case v == 1 && len(novel) < n:
			novel = append(novel, id)
		case v == 0 && len(familiar) < n:
			familiar = append(familiar, id)
		}
	}
	if len(novel) < n || len(familiar) < n {
		t.Fatalf("fixture: %d novel and %d familiar items", len(novel), len(familiar))
	}
	return novel, familiar
}

func TestImplicitSkipsFromTheCascade(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	hist := historyIn(snap, 30, "action", "comedy", "drama")
	nov, fam := splitByNovelty(t, snap, hist, 6)
	mm := intent.DefaultModeModel()
	// Every slate below holds two novel and two familiar items: mean ½.
	slate1 := []string{fam[0], fam[1], nov[0], nov[1]}
	slate2 := []string{nov[2], fam[2], nov[3], fam[3]}
	slate3 := []string{fam[4], nov[4], fam[5], nov[5]}
	// Marks with and without a request id (older records) delimit alike.
	shown := append(append(ShownRecord("r1", slate1), ShownRecord("", slate2)...), ShownRecord("r3", slate3)...)
	click := func(id string, ts int64) Feedback {
		return Feedback{UserID: "u", SessionID: "s", ItemID: id, Type: Click, TS: ts}
	}
	skip := func(id string, ts int64) Feedback {
		return Feedback{UserID: "u", SessionID: "s", ItemID: id, Type: Skip, TS: ts}
	}
	// Evidence of one examined item at relative novelty ±½.
	cn, cf := mm.ClickEvidence(0.5, 0.5), mm.ClickEvidence(-0.5, 0.5)
	sf := mm.SkipEvidence(-0.5, 0.5)
	// A slate no event reached: examined to a depth the cascade sums over.
	noClick := func(novs ...float64) float64 {
		return mm.SlateEvidence(novs, make([]bool, len(novs)))
	}
	tests := []struct {
		name     string
		events   []Feedback
		want     float64 // the session's evidence once the events are applied
		accounts int     // Shown entries accounted
		pending  float64 // what a decision adds for the slates no event reached
	}{
		{
			name:     "a click in slate 1: the two familiar items above it were skipped",
			events:   []Feedback{click(nov[0], 10)},
			want:     2*sf + cn,
			accounts: 4,
			pending:  noClick(1, 0, 1, 0) + noClick(0, 1, 0, 1),
		},
		{
			name:     "explicit skips are not counted twice",
			events:   []Feedback{skip(fam[0], 10), skip(fam[1], 11), click(nov[0], 12)},
			want:     2*sf + cn,
			accounts: 4,
			pending:  noClick(1, 0, 1, 0) + noClick(0, 1, 0, 1),
		},
		{
			name:   "a click in slate 3: slate 2 had none and counts as a slate without a click",
			events: []Feedback{click(fam[0], 10), click(fam[4], 20)},
			want:   cf + noClick(1, 0, 1, 0) + cf,
			// Slate 1's two items below its click are never counted.
			accounts: 12,
		},
		{
			name:     "an item found elsewhere tells nothing",
			events:   []Feedback{click(hist[0].ItemID, 10)},
			want:     0,
			accounts: 0,
			pending:  noClick(0, 0, 1, 1) + noClick(1, 0, 1, 0) + noClick(0, 1, 0, 1),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := UserState{UserID: "u", History: append([]Consumed(nil), hist...), Session: Session{ID: "s", Shown: shown}}
			for _, fb := range tc.events {
				Observe(&st, snap, fb, 0, intent.ModeModel{})
			}
			// A session that keeps its mode: the chain's evidence is the
			// slates' sum.
			if got := sessionChain(&st.Stats, mm).Evidence(); math.Abs(got-tc.want) > 1e-9 || st.Stats.ModeAccounted != tc.accounts || st.Stats.ModeSession != "s" {
				t.Fatalf("evidence %v over %d entries of %q, want %v over %d", got, st.Stats.ModeAccounted, st.Stats.ModeSession, tc.want, tc.accounts)
			}
			var v view
			v.build(snap, st.History, DefaultConfig().TasteDecay)
			_, chain := modeObservations(&st, snap, &v.seen, resolveShown(nil, snap, st.Session.Shown), mm)
			if ev := chain.Evidence(); math.Abs(ev-(tc.want+tc.pending)) > 1e-9 {
				t.Fatalf("decision-time evidence %v, want %v + %v pending", ev, tc.want, tc.pending)
			}
		})
	}
}

func TestSessionEvidenceFoldsIntoTheUserPosterior(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	hist := historyIn(snap, 30, "action", "comedy", "drama")
	nov, fam := splitByNovelty(t, snap, hist, 4)
	st := UserState{UserID: "u", History: hist}
	m := DefaultModel()
	prior := m.Intent.Prior.UserPropensity(intent.Observations{})
	// Three exploring sessions: the novel item of each mixed slate clicked.
	for s, sid := range []string{"a", "b", "c"} {
		st.Session = Session{ID: sid, Shown: ShownRecord("r", []string{fam[s], nov[s], fam[s+1], nov[s+1]})}
		Observe(&st, snap, Feedback{UserID: "u", SessionID: sid, ItemID: nov[s], Type: Click, TS: int64(1000 * (s + 1))}, 0, intent.ModeModel{})
	}
	// The third session is still open in Stats; a decision in a fourth
	// folds it in memory, and its own evidence starts from nothing.
	st.Session = Session{ID: "d"}
	in := NewEngine(DefaultConfig()).Intent(snap, &st, m, 5000)
	if in.UserPropensity <= prior+0.15 {
		t.Fatalf("user propensity %v after three exploring sessions, prior %v", in.UserPropensity, prior)
	}
	if math.Abs(in.SessionPropensity-in.UserPropensity) > 1e-12 {
		t.Fatalf("a session without evidence starts at the user propensity: %v vs %v", in.SessionPropensity, in.UserPropensity)
	}
}

// TestColdUserIsNotANoveltySeeker: to a user without history everything is
// novel, so clicks on such a slate say nothing about the mode.
func TestColdUserIsNotANoveltySeeker(t *testing.T) {
	snap := sampleSnapshot(t, 500)
	m := DefaultModel()
	e := NewEngine(DefaultConfig())
	st := UserState{UserID: "cold"}
	prior := m.Intent.Prior.UserPropensity(intent.Observations{})
	for s, sid := range []string{"a", "b", "c", "d"} {
		st.Session = Session{ID: sid}
		d, err := e.Decide(Request{K: 10, Now: int64(1000 * (s + 1)), Deterministic: true}, &st, snap, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(d.Items))
		for i, it := range d.Items {
			ids[i] = it.ItemID
		}
		st.Session.Shown = ShownRecord("r", ids)
		// Clicks on the first two items: novel to a user who has seen
		// nothing (the first is; the second may already share a
		// category with it).
		Observe(&st, snap, Feedback{UserID: "cold", SessionID: sid, ItemID: ids[0], Type: Click, TS: int64(1000*(s+1) + 1)}, 0, intent.ModeModel{})
	}
	st.Session = Session{ID: "e"}
	in := e.Intent(snap, &st, m, 10000)
	if in.UserPropensity > prior+0.1 {
		t.Fatalf("a cold user clicking all-novel slates reads as a novelty seeker: %v (prior %v)", in.UserPropensity, prior)
	}
}

// A click whose event has not been accounted yet (it is on its way) leaves
// its slate out of a decision's evidence: against today's history, which
// already holds the clicked item, the click would read as one on a
// familiar item.
func TestUnaccountedClickLeavesItsSlateOut(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	hist := historyIn(snap, 30, "action", "comedy", "drama")
	nov, fam := splitByNovelty(t, snap, hist, 4)
	mm := intent.DefaultModeModel()
	slate1 := []string{fam[0], nov[0], fam[1], nov[1]}
	slate2 := []string{nov[2], fam[2], nov[3], fam[3]}
	st := UserState{UserID: "u", History: hist, Session: Session{ID: "s", Shown: append(ShownRecord("r1", slate1), ShownRecord("r2", slate2)...)}}
	i, _ := snap.Index(nov[0])
	st.Consumed.Add(snap.Hash(i))
	var v view
	v.build(snap, st.History, DefaultConfig().TasteDecay)
	_, chain := modeObservations(&st, snap, &v.seen, resolveShown(nil, snap, st.Session.Shown), mm)
	want := mm.SlateEvidence([]float64{1, 0, 1, 0}, make([]bool, 4))
	if ev := chain.Evidence(); math.Abs(ev-want) > 1e-9 {
		t.Fatalf("evidence %v, want slate 2's alone %v", ev, want)
	}
}

func TestShownRequest(t *testing.T) {
	shown := append(append(ShownRecord("r1", []string{"a", "b"}), ShownRecord("", []string{"c"})...),
		ShownRecord("r3", []string{"b", "d"})...)
	tests := []struct{ item, want string }{
		{"a", "r1"},
		{"b", "r3"}, // the latest slate that showed it
		{"c", ""},   // an older record without a request id
		{"d", "r3"},
		{"x", ""}, // never shown
	}
	for _, tc := range tests {
		if got := ShownRequest(shown, tc.item); got != tc.want {
			t.Errorf("ShownRequest(%q) = %q, want %q", tc.item, got, tc.want)
		}
	}
	// The oldest slate's mark may have been trimmed from the list.
	if got := ShownRequest([]string{"e", "f"}, "e"); got != "" {
		t.Errorf("without a mark: %q", got)
	}
}

package recommend

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/topk"
)

func TestPools(t *testing.T) {
	e := NewEngine(DefaultConfig())
	for _, tc := range []struct {
		name  string
		k     int
		level intent.Level
		cold  bool
		want  Pools
	}{
		{"level 0", 10, intent.DefaultLevels[0], false, Pools{Familiar: 90, Novel: 0, Popular: 10}},
		{"level 4", 10, intent.DefaultLevels[4], false, Pools{Familiar: 27, Novel: 63, Popular: 10}},
		{"cold user", 10, intent.DefaultLevels[4], true, Pools{Popular: 100}},
		{"large slate", 50, intent.DefaultLevels[2], false, Pools{Familiar: 126, Novel: 54, Popular: 20}},
	} {
		if got := e.Pools(tc.k, tc.level, tc.cold); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestPoolsAreWhatDecideServes checks that a decision's slate comes from
// pools of the sizes Pools reports: at the top level a user with history
// is served novel candidates in about the novel share, at level 0 none.
// The slate is not hedged: hedging sets the novel share from the session's
// belief instead (TestNovelSeatsFollowTheBelief).
func TestPoolsAreWhatDecideServes(t *testing.T) {
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(2000, 7))
	if err != nil {
		t.Fatal(err)
	}
	st := UserState{UserID: "u"}
	for _, i := range snap.PopularIn(0)[:20] {
		st.History = append(st.History, Consumed{ItemID: snap.Item(i).ID})
	}
	cfg := DefaultConfig()
	cfg.Hedge = 0
	e := NewEngine(cfg)
	for _, z := range []int{0, 4} {
		m := DefaultModel()
		// A policy that always picks level z: all mass on one level.
		for j := range m.Intent.B {
			m.Intent.B[j] = -1e3
		}
		m.Intent.B[z] = 0
		d, err := e.Decide(Request{K: 40}, &st, snap, m, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		novel := 0
		for _, it := range d.Items {
			if it.Novelty >= 0.5 {
				novel++
			}
		}
		p := e.Pools(40, m.Intent.Levels[z], false)
		if z == 0 && novel > p.Popular {
			t.Errorf("level 0: %d of 40 items novel, more than the %d popular candidates could bring", novel, p.Popular)
		}
		if z == 4 && novel < 40*p.Novel/(p.Familiar+p.Novel+p.Popular)/2 {
			t.Errorf("level 4: only %d of 40 items novel with %+v", novel, p)
		}
	}
}

// TestSelectTopMatchesTopk: the written-out selection reorders exactly as
// topk.Select does, so the pools keep their order (and replay its results).
func TestSelectTopMatchesTopk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name    string
		n, want int
		levels  int // distinct scores: few make many ties
	}{
		{"empty", 0, 3, 10},
		{"n above length", 5, 9, 10},
		{"one", 100, 1, 1000},
		{"ties", 500, 40, 3},
		{"distinct", 1200, 54, 1 << 20},
		{"all but one", 64, 63, 50},
		// The familiar pool's shape (about 720 probed, 180 wanted), and
		// more.
		{"many ties", 300, 100, 2},
		{"one score", 400, 150, 1},
		{"familiar pool", 722, 180, 1 << 20},
		{"familiar pool, ties", 722, 180, 40},
		{"large", 5000, 900, 1 << 20},
		{"large, last", 5000, 4999, 1 << 20},
	} {
		for trial := range 20 {
			s := make([]scoredItem, tc.n)
			for i := range s {
				s[i] = scoredItem{int32(rng.IntN(10 * (tc.n + 1))), float32(rng.IntN(tc.levels))}
			}
			switch trial {
			case 1: // best first
				slices.SortFunc(s, scoredItem.compare)
			case 2: // worst first
				slices.SortFunc(s, scoredItem.compare)
				slices.Reverse(s)
			}
			want := slices.Clone(s)
			topk.Select(want, tc.want, scoredItem.before)
			selectTop(s, tc.want)
			if !slices.Equal(s, want) {
				t.Errorf("%s, trial %d: order differs from topk.Select", tc.name, trial)
			}
		}
	}
}

// TestMarksClearAcrossWraps: every reset empties both sets, including the
// resets where the one-byte generation wraps.
func TestMarksClearAcrossWraps(t *testing.T) {
	var m marks
	for r := 0; r < 1000; r++ {
		m.reset(8)
		for i := int32(0); i < 8; i++ {
			if m.has(i) || m.isClean(i) {
				t.Fatalf("reset %d: item %d still marked", r, i)
			}
		}
		m.set(int32(r % 8))
		m.setClean(int32((r + 1) % 8))
		m.setClean(int32((r + 2) % 8))
		m.set(int32((r + 2) % 8)) // taking a clean item
		if !m.has(int32(r%8)) || !m.isClean(int32((r+1)%8)) || m.isClean(int32((r+2)%8)) || !m.has(int32((r+2)%8)) {
			t.Fatalf("reset %d: marks do not hold", r)
		}
	}
}

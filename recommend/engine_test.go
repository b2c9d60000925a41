package recommend

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
)

func sampleSnapshot(t testing.TB, n int) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(n, 7))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// historyIn returns n consumed items whose categories all lie in cats.
func historyIn(snap *catalog.Snapshot, n int, cats ...string) []Consumed {
	var h []Consumed
	for i := int32(0); int(i) < snap.Len() && len(h) < n; i++ {
		ok := true
		for _, c := range snap.Item(i).Categories {
			ok = ok && slices.Contains(cats, c)
		}
		if ok {
			h = append(h, Consumed{ItemID: snap.Item(i).ID, TS: int64(1000 + len(h))})
		}
	}
	return h
}

func session(clicks, novel int64, ewma float64) Session {
	// As Observe records it: each novel click has nov = 1, the others 0.
	return Session{ID: "s", Start: 1, Last: 2, Clicks: clicks, NovelClicks: novel, NovelEWMA: ewma}
}

// clickedState is a user with hist whose session so far has novel clicks
// on items more novel than the rest of their slate and familiar clicks on
// items less so, as Observe accounts them under the default mode model.
func clickedState(hist []Consumed, novel, familiar int64) UserState {
	mm := intent.DefaultModeModel()
	ewma := 0.0
	if novel+familiar > 0 {
		ewma = float64(novel) / float64(novel+familiar)
	}
	return UserState{UserID: "u", History: hist,
		Stats: Stats{Clicks: 40, NovelClicks: 5, FamiliarClicks: 35, ModeSession: "s",
			ModeEvidence: float64(novel)*mm.ClickEvidence(0.5, 0.5) + float64(familiar)*mm.ClickEvidence(-0.5, 0.5)},
		Session: session(novel+familiar, novel, ewma)}
}

func meanNovelty(d Decision) float64 {
	s := 0.0
	for _, it := range d.Items {
		s += it.Novelty
	}
	return s / float64(len(d.Items))
}

func TestNoveltySeekingSessionGetsMoreNovelSlate(t *testing.T) {
	snap := sampleSnapshot(t, 3000)
	e := NewEngine(Config{})
	m := DefaultModel()
	hist := historyIn(snap, 40, "action", "comedy", "drama")
	if len(hist) < 20 {
		t.Fatalf("fixture has only %d history items", len(hist))
	}
	// Six clicks, each on an item more novel (or less) than the rest of
	// its slate.
	seeking, familiar := clickedState(hist, 6, 0), clickedState(hist, 0, 6)

	var novS, novF, levS, levF float64
	const runs = 200
	for seed := uint64(0); seed < runs; seed++ {
		ds, err := e.Decide(Request{K: 10, Now: 3}, &seeking, snap, m, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		df, err := e.Decide(Request{K: 10, Now: 3}, &familiar, snap, m, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		novS += meanNovelty(ds)
		novF += meanNovelty(df)
		levS += float64(ds.Intent.Level)
		levF += float64(df.Intent.Level)
		if ds.Intent.SessionPropensity <= df.Intent.SessionPropensity {
			t.Fatalf("session propensity %v (seeking) <= %v (familiar)", ds.Intent.SessionPropensity, df.Intent.SessionPropensity)
		}
	}
	novS, novF, levS, levF = novS/runs, novF/runs, levS/runs, levF/runs
	t.Logf("mean slate novelty: seeking %.3f, familiar %.3f; mean level %.2f vs %.2f", novS, novF, levS, levF)
	if novS < novF+0.3 {
		t.Fatalf("novelty-seeking slates novelty %.3f not clearly above familiar-seeking %.3f", novS, novF)
	}
	if levS <= levF+1 {
		t.Fatalf("mean level %.2f (seeking) not clearly above %.2f (familiar)", levS, levF)
	}
}

func TestDecideExcludesAndNeverDuplicates(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	e := NewEngine(Config{})
	m := DefaultModel()
	hist := historyIn(snap, 30, "action", "comedy")
	st := UserState{History: hist, Session: session(2, 1, 0.5)}
	// Exclude the deterministic top slate, mark the next one as shown.
	first, err := e.Decide(Request{K: 10, Deterministic: true}, &st, snap, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var exclude []string
	for _, it := range first.Items {
		exclude = append(exclude, it.ItemID)
	}
	second, err := e.Decide(Request{K: 10, Deterministic: true, Exclude: exclude}, &st, snap, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range second.Items {
		st.Session.Shown = append(st.Session.Shown, it.ItemID)
	}
	banned := map[string]string{}
	for _, h := range hist {
		banned[h.ItemID] = "history"
	}
	for _, id := range exclude {
		banned[id] = "exclude"
	}
	for _, id := range st.Session.Shown {
		banned[id] = "shown"
	}
	for seed := uint64(0); seed < 50; seed++ {
		d, err := e.Decide(Request{K: 20, Exclude: exclude}, &st, snap, m, rand.New(rand.NewPCG(seed, 9)))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Items) != 20 {
			t.Fatalf("got %d items, want 20", len(d.Items))
		}
		got := map[string]bool{}
		for pos, it := range d.Items {
			if why, ok := banned[it.ItemID]; ok {
				t.Fatalf("item %s served although in %s", it.ItemID, why)
			}
			if got[it.ItemID] {
				t.Fatalf("item %s served twice", it.ItemID)
			}
			got[it.ItemID] = true
			if it.Position != pos || !(it.Propensity > 0 && it.Propensity <= 1) {
				t.Fatalf("bad item %+v at %d", it, pos)
			}
		}
	}
}

func TestColdUserGetsPopularDiverseSlate(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	e := NewEngine(Config{})
	d, err := e.Decide(Request{K: 10, Deterministic: true}, &UserState{}, snap, DefaultModel(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Items) != 10 {
		t.Fatalf("got %d items", len(d.Items))
	}
	cats := map[string]bool{}
	rank := map[int32]int{}
	for r, i := range snap.Popular() {
		rank[i] = r
	}
	for _, it := range d.Items {
		for _, c := range snap.Item(it.Item).Categories {
			cats[c] = true
		}
		if rank[it.Item] >= 200 {
			t.Errorf("cold slate item %s has popularity rank %d", it.ItemID, rank[it.Item])
		}
	}
	if len(cats) < 6 {
		t.Errorf("cold slate spans %d categories, want a diverse slate", len(cats))
	}
	if d.Intent.UserPropensity != 0.25 {
		t.Errorf("cold user propensity %v, want the prior mean 0.25", d.Intent.UserPropensity)
	}
}

func TestDecideValidatesK(t *testing.T) {
	snap := sampleSnapshot(t, 100)
	e := NewEngine(Config{})
	for _, k := range []int{0, -1, MaxK + 1} {
		if _, err := e.Decide(Request{K: k, Deterministic: true}, &UserState{}, snap, DefaultModel(), nil); err == nil {
			t.Errorf("k=%d accepted", k)
		}
	}
	// A catalog smaller than k yields what there is.
	small, _ := catalog.Build(1, 8, catalog.Sample(5, 1))
	d, err := e.Decide(Request{K: 10, Deterministic: true}, &UserState{}, small, DefaultModel(), nil)
	if err != nil || len(d.Items) != 5 {
		t.Fatalf("got %d items, err %v; want all 5", len(d.Items), err)
	}
}

func TestObserveUpdatesStateAndNovelty(t *testing.T) {
	items := []catalog.Item{
		{ID: "a1", Categories: []string{"action"}},
		{ID: "a2", Categories: []string{"action"}},
		{ID: "d1", Categories: []string{"documentary"}},
		{ID: "ad", Categories: []string{"action", "documentary", "music"}},
	}
	snap, err := catalog.Build(1, 8, items)
	if err != nil {
		t.Fatal(err)
	}
	var st UserState
	steps := []struct {
		fb         Feedback
		novelty    float64
		surprising bool
		newSession bool
	}{
		{Feedback{ItemID: "a1", Type: Click, TS: 1000}, 1, true, true},
		{Feedback{ItemID: "a2", Type: Click, TS: 2000}, 0, false, false},
		{Feedback{ItemID: "ad", Type: Rating, Value: 5, TS: 3000}, 2.0 / 3, false, false},
		{Feedback{ItemID: "d1", Type: Skip, TS: 4000}, 0, false, false},
		{Feedback{ItemID: "d1", Type: Click, TS: 4000 + SessionGap.Milliseconds() + 1}, 0, false, true},
	}
	for i, s := range steps {
		obs := Observe(&st, snap, s.fb, 3, intent.ModeModel{})
		if abs(obs.Novelty-s.novelty) > 1e-12 || obs.Surprising != s.surprising || obs.NewSession != s.newSession {
			t.Fatalf("step %d: got %+v, want novelty %v surprising %v new session %v", i, obs, s.novelty, s.surprising, s.newSession)
		}
	}
	if st.Stats.Clicks != 4 || st.Stats.NovelClicks != 1 || st.Stats.FamiliarClicks != 3 || st.Stats.Skips != 1 || st.Stats.Sessions != 2 {
		t.Fatalf("stats %+v", st.Stats)
	}
	if len(st.History) != 3 || st.History[0].ItemID != "d1" || st.History[2].ItemID != "a2" {
		t.Fatalf("history %+v, want newest first capped at 3", st.History)
	}
	if st.Session.Clicks != 1 || st.Session.CategoryClicks["documentary"] != 1 {
		t.Fatalf("session %+v", st.Session)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func sampleItems(n int) []catalog.Item { return catalog.Sample(n, 7) }

func buildSnapshot(items []catalog.Item) (*catalog.Snapshot, error) {
	return catalog.Build(1, catalog.DefaultDim, items)
}

func TestSelectTop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(300)
		s := make([]scoredItem, n)
		for i := range s {
			s[i] = scoredItem{int32(i), float32(rng.IntN(50))} // many ties
		}
		want := slices.Clone(s)
		slices.SortFunc(want, func(a, b scoredItem) int {
			if a.before(b) {
				return -1
			}
			if b.before(a) {
				return 1
			}
			return 0
		})
		k := 1 + rng.IntN(n)
		selectTop(s, k)
		got := slices.Clone(s[:k])
		slices.SortFunc(got, func(a, b scoredItem) int { return int(a.item - b.item) })
		exp := slices.Clone(want[:k])
		slices.SortFunc(exp, func(a, b scoredItem) int { return int(a.item - b.item) })
		if !slices.Equal(got, exp) {
			t.Fatalf("n=%d k=%d: top set differs", n, k)
		}
	}
}

// TestPickBestAsksOnlyWhatItNeeds checks pickBest against filtering
// everything first: the same top set, with the consumed filter probed for
// fewer items than there are.
func TestPickBestAsksOnlyWhatItNeeds(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name          string
		n, consumedOf int // consumedOf: every consumedOf-th item consumed (0 none)
	}{
		{"nothing consumed", 10, 0},
		{"half consumed", 10, 2},
		{"most consumed", 30, 1},
		{"more wanted than exist", 3000, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Filter
			for i := 0; tc.consumedOf > 0 && i < snap.Len(); i += tc.consumedOf {
				f.Add(snap.Hash(int32(i)))
			}
			var taken marks
			taken.reset(snap.Len())
			ex := exclusion{snap: snap, taken: &taken, consumed: &f}
			s := make([]scoredItem, snap.Len())
			for i := range s {
				s[i] = scoredItem{int32(i), rng.Float32()}
			}
			var want []scoredItem
			for _, c := range s {
				if !f.Has(snap.Hash(c.item)) {
					want = append(want, c)
				}
			}
			slices.SortFunc(want, func(a, b scoredItem) int { return cmp.Compare(b.sim, a.sim) })
			want = want[:min(tc.n, len(want))]
			got := slices.Clone(pickBest(s, tc.n, &ex))
			slices.SortFunc(got, func(a, b scoredItem) int { return cmp.Compare(b.sim, a.sim) })
			if !slices.Equal(got, want) {
				t.Fatalf("got %d items, want %d; sets differ", len(got), len(want))
			}
			asked := 0
			for i := range snap.Len() {
				if taken.has(int32(i)) || taken.isClean(int32(i)) {
					asked++
				}
			}
			if tc.consumedOf != 1 && tc.n < snap.Len()/10 && asked > snap.Len()/10 {
				t.Errorf("probed the filter for %d of %d items to pick %d", asked, snap.Len(), tc.n)
			}
		})
	}
}

// Exploration control: with IntentEpsilon every level keeps probability
// ε/K at least, the logged probability is the one the level was drawn with,
// and the reported session propensity stays the policy's own.
func TestIntentEpsilon(t *testing.T) {
	snap := sampleSnapshot(t, 3000)
	m := DefaultModel()
	hist := historyIn(snap, 40, "action", "comedy", "drama")
	familiar := UserState{UserID: "u", History: hist, Stats: Stats{Clicks: 40, NovelClicks: 0, FamiliarClicks: 40}, Session: session(6, 0, 0)}
	const runs = 2000
	for _, tc := range []struct {
		eps        float64
		minTopRate float64 // observed share of the most novel level at least
	}{
		{0, 0},
		{0.2, 0.2 / 5 * 0.7},
		{1, 1.0 / 5 * 0.7},
	} {
		e := NewEngine(Config{IntentEpsilon: tc.eps})
		own := e.Intent(snap, &familiar, m, 3)
		K := len(own.Probabilities)
		counts := make([]int, K)
		rng := rand.New(rand.NewPCG(1, 2))
		for range runs {
			d, err := e.Decide(Request{K: 10, Now: 3}, &familiar, snap, m, rng)
			if err != nil {
				t.Fatal(err)
			}
			z := d.Intent.Level
			counts[z]++
			want := (1-tc.eps)*own.Probabilities[z] + tc.eps/float64(K)
			if diff := d.Intent.Probability - want; diff > 1e-12 || diff < -1e-12 {
				t.Fatalf("ε=%v: logged probability %v of level %d, want the mixed %v", tc.eps, d.Intent.Probability, z, want)
			}
			if d.Intent.SessionPropensity != own.SessionPropensity {
				t.Fatalf("ε=%v: session propensity %v, want the policy's %v", tc.eps, d.Intent.SessionPropensity, own.SessionPropensity)
			}
		}
		top := float64(counts[K-1]) / runs
		t.Logf("ε=%v: level counts %v (policy's own top-level probability %.4f)", tc.eps, counts, own.Probabilities[K-1])
		if top < tc.minTopRate {
			t.Errorf("ε=%v: top level drawn %.3f of the time, want at least %.3f", tc.eps, top, tc.minTopRate)
		}
	}
	if e := NewEngine(Config{IntentEpsilon: 2}); e.cfg.IntentEpsilon != 0 {
		t.Errorf("ε=2 accepted as %v", e.cfg.IntentEpsilon)
	}
}

// Greedy serving mixes each slate position with the ranker's argmax: the
// item propensities stay exact (a greedy share of the slates' top items
// is the argmax's), while the level is drawn from π_H as before.
func TestGreedySlatesKeepTheLevelSampled(t *testing.T) {
	snap := sampleSnapshot(t, 3000)
	m := DefaultModel()
	hist := historyIn(snap, 40, "action", "comedy", "drama")
	st := UserState{UserID: "u", History: hist, Stats: Stats{Clicks: 40, FamiliarClicks: 40}, Session: session(6, 0, 0)}
	const runs, greedy = 2000, 0.7
	e := NewEngine(Config{Greedy: greedy})
	own := e.Intent(snap, &st, m, 3)
	top := map[string]int{}
	rng := rand.New(rand.NewPCG(7, 8))
	for range runs {
		d, err := e.Decide(Request{K: 10, Now: 3}, &st, snap, m, rng)
		if err != nil {
			t.Fatal(err)
		}
		if want := own.Probabilities[d.Intent.Level]; math.Abs(d.Intent.Probability-want) > 1e-12 {
			t.Fatalf("level %d logged with probability %v, want π_H's %v", d.Intent.Level, d.Intent.Probability, want)
		}
		for _, it := range d.Items {
			if !(it.Propensity > 0 && it.Propensity <= 1) {
				t.Fatalf("item propensity %v outside (0, 1]", it.Propensity)
			}
		}
		if d.Intent.Level == own.Level && d.Items[0].Propensity >= greedy {
			top[d.Items[0].ItemID]++
		}
	}
	if len(top) == 0 {
		t.Fatal("no slate's top item carries the greedy share in its propensity")
	}
	if e := NewEngine(Config{Greedy: 1}); e.cfg.Greedy != 0 {
		t.Errorf("Greedy 1 accepted as %v (it would leave no draws)", e.cfg.Greedy)
	}
}

// TestNovelSeatsFollowTheBelief: the hedge gives novel items the session
// belief's share of the slate (Sainte-Laguë, as ranker.Knobs describes),
// whatever the level's own novel share; the level only shapes which items
// fill the seats.
func TestNovelSeatsFollowTheBelief(t *testing.T) {
	snap := sampleSnapshot(t, 3000)
	e := NewEngine(DefaultConfig())
	hist := historyIn(snap, 40, "action", "comedy", "drama")
	seeking, unsure, familiar := clickedState(hist, 3, 0), clickedState(hist, 1, 1), clickedState(hist, 0, 6)
	// seats is the proportional allocation's novel seats of k for share p.
	seats := func(p float64, k int) int {
		var n [2]int
		for range k {
			if p/float64(2*n[0]+1) > (1-p)/float64(2*n[1]+1) {
				n[0]++
			} else {
				n[1]++
			}
		}
		return n[0]
	}
	for _, tc := range []struct {
		name string
		st   *UserState
	}{{"seeking", &seeking}, {"unsure", &unsure}, {"familiar", &familiar}} {
		var got []int
		for _, lvl := range []intent.Level{{Lambda: 0.7}, {Lambda: 0.7, NovelShare: 0.7}} {
			m := DefaultModel()
			m.Intent = intent.NewPolicy([]intent.Level{lvl}, m.Intent.Kappa)
			d, err := e.Decide(Request{K: 10, Now: 3, Deterministic: true}, tc.st, snap, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			novel := 0
			for _, it := range d.Items {
				if it.Novel {
					novel++
				}
			}
			w := d.Intent.State[intent.FSessNovelPreference]
			if want := seats(w, 10); novel != want {
				t.Errorf("%s, level novel share %v: %d novel items, want %d (the belief's share %.2f)", tc.name, lvl.NovelShare, novel, want, w)
			}
			got = append(got, novel)
		}
		t.Logf("%s: novel items %v", tc.name, got)
	}
}

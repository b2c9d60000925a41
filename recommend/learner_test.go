package recommend

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
)

// cascadeClick is the click model of the tests: the user scans the slate
// top-down, clicks the first item they like with probability 0.6 and stops
// there, and abandons the scan after each item with probability 0.3, so
// what a slate puts first matters.
func cascadeClick(d *Decision, likes func(Scored) bool, rng *rand.Rand) (string, bool) {
	for _, it := range d.Items {
		if likes(it) && rng.Float64() < 0.6 {
			return it.ItemID, true
		}
		if rng.Float64() < 0.3 {
			break
		}
	}
	return "", false
}

// trainPopulation runs the engine and a learner on-policy against users
// with a fixed familiar history who like only what `likes` accepts, and
// returns the learner.
func trainPopulation(t *testing.T, snap *catalog.Snapshot, likes func(Scored) bool, steps int, seed uint64) *Learner {
	t.Helper()
	e := NewEngine(Config{})
	lc := DefaultLearnerConfig()
	lc.Hedge = 0 // as the engine serves
	l := NewLearner(lc, DefaultModel())
	rng := rand.New(rand.NewPCG(seed, 1))
	hist := historyIn(snap, 30, "action", "comedy", "drama")
	for step := 0; step < steps; step++ {
		st := UserState{UserID: "u", History: hist}
		d, err := e.Decide(Request{K: 10, Now: 1}, &st, snap, l.Model(), rng)
		if err != nil {
			t.Fatal(err)
		}
		s := d.Logged("r", "u", "s", int64(step))
		l.SeedEmbeddings(snap, &s)
		var clicked []int
		if id, ok := cascadeClick(&d, likes, rng); ok {
			if _, err := l.Click(&s, id); err != nil {
				t.Fatal(err)
			}
			for _, it := range d.Items {
				if it.ItemID == id {
					clicked = append(clicked, it.Position)
				}
			}
		}
		var ids []string
		for _, it := range d.Items {
			ids = append(ids, it.ItemID)
		}
		if _, err := l.Decision(&s, l.Reward(&s, clicked, Diversity(snap, ids)), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func expectedLevel(m *Model, snap *catalog.Snapshot, hist []Consumed) float64 {
	st := UserState{History: hist}
	x := m.Intent.Prior.State(nil, Observations(snap, &st, intent.ModeModel{}, 1))
	return intent.SessionPropensity(m.Intent.Distribution(nil, x))
}

func TestLearnerDrivesHighLevelTowardWhatUsersClick(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	hist := historyIn(snap, 30, "action", "comedy", "drama")
	prior := expectedLevel(DefaultModel(), snap, hist)
	novel := trainPopulation(t, snap, func(it Scored) bool { return it.Novelty == 1 }, 1000, 1)
	familiar := trainPopulation(t, snap, func(it Scored) bool { return it.Novelty == 0 }, 1000, 2)
	en, ef := expectedLevel(novel.Model(), snap, hist), expectedLevel(familiar.Model(), snap, hist)
	t.Logf("E[z]/(K-1): prior %.3f, novelty-clicking population %.3f, familiar-clicking %.3f", prior, en, ef)
	for _, l := range []*Learner{novel, familiar} {
		st := UserState{History: hist}
		x := l.Model().Intent.Prior.State(nil, Observations(snap, &st, intent.ModeModel{}, 1))
		t.Logf("π_H = %.3f", l.Model().Intent.Distribution(nil, x))
	}
	if en < 0.9 {
		t.Errorf("novelty-clicking users moved the high level from %.3f only to %.3f", prior, en)
	}
	if ef > 0.1 {
		t.Errorf("familiar-clicking users moved the high level from %.3f to %.3f, want lower", prior, ef)
	}
}

func TestClickMovesRankerTowardClickedItems(t *testing.T) {
	snap := sampleSnapshot(t, 1000)
	e := NewEngine(Config{})
	l := NewLearner(DefaultLearnerConfig(), DefaultModel())
	hist := historyIn(snap, 30, "action", "comedy")
	st := UserState{History: hist}
	rng := rand.New(rand.NewPCG(3, 3))
	theta0 := l.Model().Ranker.Theta
	// Users always click the most popular item of the slate.
	clicks := map[string]int{}
	shown := map[string]bool{}
	for step := 0; step < 300; step++ {
		d, err := e.Decide(Request{K: 10}, &st, snap, l.Model(), rng)
		if err != nil {
			t.Fatal(err)
		}
		best := d.Items[0]
		for _, it := range d.Items {
			if it.Features[ranker.FPopularity] > best.Features[ranker.FPopularity] {
				best = it
			}
		}
		clicks[best.ItemID]++
		for _, it := range d.Items {
			shown[it.ItemID] = true
		}
		s := d.Logged("r", "u", "s", 0)
		l.SeedEmbeddings(snap, &s)
		if _, err := l.Click(&s, best.ItemID); err != nil {
			t.Fatal(err)
		}
	}
	theta := l.Model().Ranker.Theta
	var top string
	for id, n := range clicks {
		if top == "" || n > clicks[top] || (n == clicks[top] && id < top) {
			top = id
		}
	}
	var clickedBias, otherBias float64
	var nc, no int
	for id := range shown {
		if clicks[id] > 0 {
			clickedBias += float64(l.Model().ItemBias[id])
			nc++
		} else {
			otherBias += float64(l.Model().ItemBias[id])
			no++
		}
	}
	clickedBias, otherBias = clickedBias/float64(nc), otherBias/float64(no)
	t.Logf("θ %v -> %v; most clicked item bias %v; mean bias clicked %.3f, shown but never clicked %.3f",
		theta0, theta, l.Model().ItemBias[top], clickedBias, otherBias)
	if theta[ranker.FPopularity] <= theta0[ranker.FPopularity] {
		t.Errorf("θ_pop %v did not rise from %v although users click the most popular item", theta[ranker.FPopularity], theta0[ranker.FPopularity])
	}
	if l.Model().ItemBias[top] <= 0 || clickedBias <= otherBias {
		t.Errorf("biases did not move toward clicked items: top %v, clicked %v, others %v", l.Model().ItemBias[top], clickedBias, otherBias)
	}
	for id, v := range l.Model().ItemEmb {
		if n := math.Sqrt(float64(catalog.Dot(v, v))); math.Abs(n-1) > 1e-4 {
			t.Fatalf("learned embedding of %s has norm %v", id, n)
		}
	}
	if _, err := l.Click(&LoggedSlate{Items: []LoggedItem{{ItemID: "a"}}}, "b"); !errors.Is(err, ErrNotInSlate) {
		t.Fatalf("click outside the slate: %v", err)
	}
}

// TestClickComparesWithinIntent: a click moves the clicked item up against
// the items it competed with for its seat — those at or below its position
// and, in a hedged slate, only those of its intent — and leaves the rest
// alone. Slate: A (familiar), B (novel), C (familiar), D (novel).
func TestClickComparesWithinIntent(t *testing.T) {
	items := []LoggedItem{
		{ItemID: "A", Position: 0}, {ItemID: "B", Position: 1, Novel: true, Novelty: 0.8},
		{ItemID: "C", Position: 2}, {ItemID: "D", Position: 3, Novel: true, Novelty: 0.6},
	}
	for _, tc := range []struct {
		name            string
		hedge           float64
		click           string
		up, down, still string
	}{
		{"hedged, familiar on top", 2, "A", "A", "C", "BD"},
		{"hedged, novel", 2, "B", "B", "D", "AC"},
		{"hedged, last of its intent", 2, "C", "", "", "ABCD"},
		{"unhedged, on top", 0, "A", "A", "BCD", ""},
		{"unhedged, below others", 0, "C", "C", "D", "AB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultLearnerConfig()
			cfg.Hedge = tc.hedge
			l := NewLearner(cfg, DefaultModel())
			s := &LoggedSlate{Items: slices.Clone(items)}
			for i := range s.Items {
				s.Items[i].Propensity = 0.1
				s.Items[i].Features[ranker.FPopularity] = float64(i) / 4
			}
			if _, err := l.Click(s, tc.click); err != nil {
				t.Fatal(err)
			}
			for _, it := range s.Items {
				b := l.Model().ItemBias[it.ItemID]
				switch id := it.ItemID; {
				case strings.Contains(tc.up, id) && !(b > 0):
					t.Errorf("%s: bias %v, want up", id, b)
				case strings.Contains(tc.down, id) && !(b < 0):
					t.Errorf("%s: bias %v, want down", id, b)
				case strings.Contains(tc.still, id) && b != 0:
					t.Errorf("%s: bias %v, want unchanged", id, b)
				}
			}
		})
	}
}

func TestRewardAndDiversity(t *testing.T) {
	items := []catalog.Item{
		{ID: "a", Categories: []string{"x"}},
		{ID: "b", Categories: []string{"x"}},
		{ID: "c", Categories: []string{"y"}},
		{ID: "d", Categories: []string{"x", "y"}},
	}
	snap, _ := catalog.Build(1, 4, items)
	tests := []struct {
		ids  []string
		want float64
	}{
		{[]string{"a", "b"}, 0},
		{[]string{"a", "c"}, 1},
		{[]string{"a", "d"}, 0.5},
		{[]string{"a", "b", "c"}, 1 - 1.0/3},
		{[]string{"a"}, 0},
	}
	for _, tc := range tests {
		if got := Diversity(snap, tc.ids); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Diversity(%v) = %v, want %v", tc.ids, got, tc.want)
		}
	}
	l := NewLearner(LearnerConfig{Reward: RewardWeights{Novelty: 3, Diversity: 0.5}}, DefaultModel())
	s := &LoggedSlate{Items: []LoggedItem{{ItemID: "a", Position: 0, Novelty: 1}, {ItemID: "b", Position: 1, Novelty: 0.5}, {ItemID: "c", Position: 2}}}
	// (1 + 3·1) + (1 + 3·0.5) + 0.5·0.8
	if got := l.Reward(s, []int{0, 1}, 0.8); math.Abs(got-6.9) > 1e-12 {
		t.Fatalf("reward %v, want 6.9", got)
	}
}

func TestModelCodec(t *testing.T) {
	m := DefaultModel()
	m.Version = "default-7"
	m.ItemBias = map[string]float32{"a": 0.5, "b": -0.25}
	m.ItemEmb = map[string][]float32{"a": {0.6, 0.8}, "b": {1, 0}}
	meta := SnapshotMeta{Variant: "default", CreatedMS: 42, Updates: 9, FeedbackTS: []int64{1, 2}}
	b, err := EncodeModel(m, meta)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeModel(m, meta)
	if string(again) != string(b) {
		t.Fatal("encoding is not deterministic")
	}
	got, gotMeta, err := DecodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != m.Version || got.ItemBias["b"] != -0.25 || got.ItemEmb["a"][1] != 0.8 || got.Ranker != m.Ranker ||
		got.Intent.T[9] != m.Intent.T[9] || gotMeta.Updates != 9 || len(gotMeta.FeedbackTS) != 2 {
		t.Fatalf("round trip lost data: %+v %+v", got, gotMeta)
	}
	// A fitted critic travels with the snapshot; a snapshot without one
	// (above, and every snapshot written before the critic existed)
	// decodes with Q nil and serves.
	fitted := DefaultModel()
	fitted.Version = "default-8"
	x := make([]float64, intent.Dim)
	x[intent.FSessNovelPreference] = 0.9
	fitted.Intent.Update(x, 4, 0.2, 3, intent.Step{LR: 0.01, BaselineLR: 0.01, Clip: 5})
	fb, err := EncodeModel(fitted, meta)
	if err != nil {
		t.Fatal(err)
	}
	gotF, _, err := DecodeModel(fb)
	if err != nil {
		t.Fatal(err)
	}
	if got.Intent.Q != nil || !slices.Equal(gotF.Intent.Q, fitted.Intent.Q) || !slices.Equal(gotF.Intent.QP, fitted.Intent.QP) ||
		gotF.Intent.Value(x, 4) != fitted.Intent.Value(x, 4) || gotF.Intent.Value(x, 4) == 0 {
		t.Fatalf("critic did not round-trip: %v vs %v", gotF.Intent.Q, fitted.Intent.Q)
	}
	corrupt := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"flipped payload byte", corrupt(func(x []byte) []byte { x[40] ^= 1; return x }), ErrSnapshotCorrupt},
		{"truncated", b[:len(b)-10], ErrSnapshotCorrupt},
		{"empty", nil, ErrSnapshotCorrupt},
		{"other magic", corrupt(func(x []byte) []byte { x[0] = 'X'; return x }), ErrSnapshotCorrupt},
		{"newer schema", corrupt(func(x []byte) []byte { x[5] = 99; return x }), ErrSnapshotSchema},
	}
	for _, tc := range tests {
		if _, _, err := DecodeModel(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := DefaultModel()
	bad.ItemBias = map[string]float32{"x": float32(math.NaN())}
	if _, err := EncodeModel(bad, SnapshotMeta{}); err == nil {
		t.Error("encoded a model with a NaN bias")
	}
}

// TestLearnerFitsTheModeModel feeds the learner slates whose clicks follow
// a planted mode model and checks that, with ModeRefit set, the model it
// hands out carries a fit near the planted contrast and continuation
// rates (as the model that reads the evidence, or without ModeBelief as the
// worth only), publishes the fitted prior only with ModePrior, and that
// with ModeRefit at 0 the model keeps the default.
func TestLearnerFitsTheModeModel(t *testing.T) {
	planted := intent.ModeModel{Base: -1, Shift: -1, Contrast: 2, Examine: 0.8, ExamineClick: 0.5}
	feed := func(l *Learner) {
		rng := rand.New(rand.NewPCG(3, 4))
		for u := range 800 {
			rho := rng.Float64()
			for s := range 3 {
				explore := rng.Float64() < rho
				for k := range 3 {
					ls := LoggedSlate{UserID: "u" + strconv.Itoa(u), SessionID: "s" + strconv.Itoa(s), TS: int64(k)}
					var clicked []int
					mean := 0.0
					nov := make([]float64, 10)
					for p := range nov {
						if rng.Float64() < 0.4 {
							nov[p] = 1
						}
						mean += nov[p] / 10
					}
					for p := range nov {
						ls.Items = append(ls.Items, LoggedItem{ItemID: "i", Position: p, Novelty: nov[p]})
					}
					for p := range nov {
						z := planted.Base + (planted.Shift-planted.Contrast)*(nov[p]-mean)
						if explore {
							z = planted.Base + (planted.Shift+planted.Contrast)*(nov[p]-mean)
						}
						next := planted.Examine
						if rng.Float64() < 1/(1+math.Exp(-z)) {
							clicked = append(clicked, p)
							next = planted.ExamineClick
						}
						if rng.Float64() >= next {
							break
						}
					}
					l.ObserveSlate(&ls, clicked)
				}
			}
		}
	}
	cfg := DefaultLearnerConfig()
	cfg.ModeRefit = 0
	off := NewLearner(cfg, DefaultModel())
	feed(off)
	if got := off.Model().Intent.Mode.OrDefault(); got != intent.DefaultModeModel() {
		t.Fatalf("fitted without ModeRefit: %+v", got)
	}
	cfg.ModeRefit, cfg.ModeWindow = 2000, 200_000
	for _, set := range []struct{ belief, prior bool }{{true, false}, {false, false}, {true, true}} {
		belief := set.belief
		cfg.ModeBelief, cfg.ModePrior = set.belief, set.prior
		start := DefaultModel()
		// A worth that a fit under the other setting left in the model
		// must not outlive the first fit that reads the evidence.
		start.Intent.Worth = intent.ModeModel{Base: -1, Shift: -1, Contrast: 0.2, Examine: 0.7, ExamineClick: 0.5}
		on := NewLearner(cfg, start)
		feed(on)
		m := on.Snapshot("v").Intent
		fit, read := m.Worth, intent.DefaultModeModel()
		if belief {
			fit, read = m.Mode, m.Mode
			if m.Worth != m.Mode {
				t.Errorf("ModeBelief: worth %+v; want the fit, as in Mode %+v", m.Worth, m.Mode)
			}
		} else if m.Mode.OrDefault() != read {
			t.Errorf("without ModeBelief the evidence model changed: %+v", m.Mode)
		}
		if published := m.Prior != intent.DefaultPrior; published != set.prior {
			t.Errorf("ModePrior %v: prior %+v", set.prior, m.Prior)
		}
		t.Logf("ModeBelief %v: fitted %+v, prior %+v", belief, fit, m.Prior)
		if math.Abs(fit.Contrast-planted.Contrast) > 0.4 || math.Abs(fit.Examine-planted.Examine) > 0.05 ||
			math.Abs(fit.ExamineClick-planted.ExamineClick) > 0.08 {
			t.Fatalf("ModeBelief %v: fitted %+v, planted %+v", belief, fit, planted)
		}
		if got := on.Model().ModeModel(); got != read {
			t.Errorf("ModeBelief %v: evidence read with %+v, want %+v", belief, got, read)
		}
		if got := on.Model().WorthModel(); got != fit {
			t.Errorf("ModeBelief %v: worth weighed with %+v, want the fit %+v", belief, got, fit)
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClickScoresAsServed: a hedged slate was ranked without the levels'
// novelty weight β, so the learner must score it without β too (a β the
// serving left out would skew the importance weight of every novel item by
// e^(β·nov/τ)); an unhedged slate with it.
func TestClickScoresAsServed(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	st := UserState{UserID: "u", History: historyIn(snap, 30, "action", "comedy", "drama")}
	noBeta := DefaultModel()
	for i := range noBeta.Intent.Levels {
		noBeta.Intent.Levels[i].Beta = 0
	}
	for _, tc := range []struct {
		name  string
		hedge float64
	}{{"hedged", DefaultConfig().Hedge}, {"unhedged", 0}} {
		cfg := DefaultConfig()
		cfg.Hedge = tc.hedge
		lc := DefaultLearnerConfig()
		lc.Hedge = tc.hedge
		withBeta := DefaultModel()
		// A slate served at the top level, where β is largest, and a
		// click on its most novel item.
		d, err := NewEngine(cfg).Decide(Request{K: 10, Now: 1}, &st, snap, withBeta, rand.New(rand.NewPCG(3, 3)))
		if err != nil {
			t.Fatal(err)
		}
		s := d.Logged("r", "u", "s", 1)
		s.Level = len(withBeta.Intent.Levels) - 1
		a := 0
		for i, it := range s.Items {
			if it.Novelty > s.Items[a].Novelty {
				a = i
			}
		}
		if s.Items[a].Novelty == 0 {
			t.Fatal("the slate has no novel item")
		}
		var theta [2][ranker.NumFeatures]float64
		for j, m := range []*Model{withBeta, noBeta} {
			l := NewLearner(lc, m)
			l.SeedEmbeddings(snap, &s)
			if _, err := l.Click(&s, s.Items[a].ItemID); err != nil {
				t.Fatal(err)
			}
			theta[j] = l.Model().Ranker.Theta
		}
		if same := theta[0] == theta[1]; same != (tc.hedge > 0) {
			t.Errorf("%s: the levels' β changes the update: %v, want %v (θ %v and %v)", tc.name, !same, tc.hedge == 0, theta[0], theta[1])
		}
	}
}

// clickSlate is a served slate of 10 with a taste vector, its items'
// embeddings seeded, for Click's benchmark and allocation test.
func clickSlate(tb testing.TB) (*Learner, *LoggedSlate) {
	snap := sampleSnapshot(tb, 2000)
	l := NewLearner(DefaultLearnerConfig(), DefaultModel())
	st := UserState{UserID: "u", History: historyIn(snap, 30, "action", "comedy", "drama")}
	d, err := NewEngine(Config{}).Decide(Request{K: 10, Now: 1}, &st, snap, l.Model(), rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		tb.Fatal(err)
	}
	s := d.Logged("r", "u", "s", 1)
	if len(s.Taste) == 0 || len(s.Items) != 10 {
		tb.Fatalf("slate of %d items, taste of %d", len(s.Items), len(s.Taste))
	}
	l.SeedEmbeddings(snap, &s)
	return l, &s
}

// TestClickDoesNotAllocate: once the slate's items have learned
// parameters, a click allocates nothing (the trainer applies one per click
// event).
func TestClickDoesNotAllocate(t *testing.T) {
	l, s := clickSlate(t)
	id := s.Items[3].ItemID
	if _, err := l.Click(s, id); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = l.Click(s, id) }); n != 0 {
		t.Errorf("Click allocates %v times", n)
	}
}

// BenchmarkLearnerClick is the low level's update for one click on a slate
// of 10.
//
//	go test -run - -bench LearnerClick -benchmem ./recommend
func BenchmarkLearnerClick(b *testing.B) {
	l, s := clickSlate(b)
	id := s.Items[3].ItemID
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Click(s, id); err != nil {
			b.Fatal(err)
		}
	}
}

// TestModeRefitInterval: the first fits come sooner (the default model
// serves until then), doubling to ModeRefit.
func TestModeRefitInterval(t *testing.T) {
	for _, tc := range []struct{ every, fits, want int }{
		{10_000, 0, 1_250},
		{10_000, 1, 2_500},
		{10_000, 2, 5_000},
		{10_000, 3, 10_000},
		{10_000, 40, 10_000},
		{4, 0, 1},
		{1, 0, 1},
	} {
		if got := modeRefitInterval(tc.every, tc.fits); got != tc.want {
			t.Errorf("modeRefitInterval(%d, %d) = %d, want %d", tc.every, tc.fits, got, tc.want)
		}
	}
}

// TestModelNovelWorth: where the fit leaves the belief to the prior model
// (ModeBelief off), the decisions take only its verdict on whether novelty
// pays; where it reads the belief, its NovelWorth in full.
func TestModelNovelWorth(t *testing.T) {
	weak := intent.ModeModel{Base: -1.1, Shift: -0.9, Contrast: 0.7, Examine: 0.78, ExamineClick: 0.53}
	costly := intent.ModeModel{Base: -0.3, Shift: -1.9, Contrast: 2.7, Examine: 0.75, ExamineClick: 0.52}
	noisy := intent.ModeModel{Base: -1.1, Shift: -0.8, Contrast: 1.1, Examine: 0.78, ExamineClick: 0.53, NoveltySE: 0.2}
	with := func(mode, worth intent.ModeModel) *Model {
		m := DefaultModel()
		m.Intent.Mode, m.Intent.Worth = mode, worth
		return m
	}
	const q = 0.4
	for _, tc := range []struct {
		name  string
		model *Model
		want  float64
	}{
		{"no fit: the belief", DefaultModel(), q},
		{"worth fitted, novelty pays: the belief, not the fit's rates", with(intent.DefaultModeModel(), costly), q},
		{"worth fitted, explorers gain nothing: no seats", with(intent.DefaultModeModel(), weak), 0},
		{"worth fitted, explorers' gain within noise: no seats", with(intent.DefaultModeModel(), noisy), 0},
		{"the fit reads the belief: its NovelWorth", with(costly, intent.ModeModel{}), costly.NovelWorth(q)},
	} {
		if got := tc.model.NovelWorth(q); got != tc.want {
			t.Errorf("%s: NovelWorth(%v) = %v, want %v", tc.name, q, got, tc.want)
		}
	}
	if c := costly.NovelWorth(q); !(c > 0 && c < q) {
		t.Fatalf("the costly fit's NovelWorth(%v) = %v: the case does not test what it says", q, c)
	}
}

// TestDecisionTakesTheFitsVerdict: the decision's input and the hedge's
// novel share (State[FSessNovelPreference]) follow Model.NovelWorth, so a
// fitted verdict that novelty does not pay leaves a session's belief as it
// is and gives novel items no seats.
func TestDecisionTakesTheFitsVerdict(t *testing.T) {
	snap := sampleSnapshot(t, 2000)
	st := UserState{UserID: "u", History: historyIn(snap, 30, "action", "comedy", "drama")}
	e := NewEngine(DefaultConfig())
	unfitted := e.Intent(snap, &st, DefaultModel(), 5000)
	weak := DefaultModel()
	weak.Intent.Worth = intent.ModeModel{Base: -1.1, Shift: -0.9, Contrast: 0.7, Examine: 0.78, ExamineClick: 0.53}
	fitted := e.Intent(snap, &st, weak, 5000)
	if fitted.SessionPropensity != unfitted.SessionPropensity || fitted.UserPropensity != unfitted.UserPropensity {
		t.Errorf("the worth changed the belief: %v, %v against %v, %v",
			fitted.SessionPropensity, fitted.UserPropensity, unfitted.SessionPropensity, unfitted.UserPropensity)
	}
	if got := unfitted.State[intent.FSessNovelPreference]; got != unfitted.SessionPropensity || got == 0 {
		t.Errorf("unfitted: novel worth %v, want the belief %v (> 0)", got, unfitted.SessionPropensity)
	}
	if got := fitted.State[intent.FSessNovelPreference]; got != 0 {
		t.Errorf("novelty does not pay: novel worth %v, want 0", got)
	}
}

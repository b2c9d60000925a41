package policy

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

func snapshot(t *testing.T) *catalog.Snapshot {
	t.Helper()
	s, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(500, 2))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// user returns a user whose history is n items of category cat.
func user(snap *catalog.Snapshot, cat string, n int) *recommend.UserState {
	st := &recommend.UserState{UserID: "u", Session: recommend.Session{ID: "s1"}}
	c, _ := snap.CategoryIndex(cat)
	for _, i := range snap.PopularIn(c)[:n] {
		st.History = append(st.History, recommend.Consumed{ItemID: snap.Item(i).ID, TS: 1})
	}
	return st
}

func model(t *testing.T, p Policy) *recommend.Model {
	t.Helper()
	m, ok := p.(interface{ Model() *recommend.Model })
	if !ok {
		t.Fatalf("%s does not expose its model", p.Name())
	}
	return m.Model()
}

func TestEveryNameBuildsAndDecides(t *testing.T) {
	snap := snapshot(t)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			p, err := New(name, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if p.Name() != name {
				t.Fatalf("name %q", p.Name())
			}
			rng := rand.New(rand.NewPCG(1, 2))
			st := user(snap, "drama", 10)
			for step := range 5 {
				d, err := p.Recommend(st, snap, 8, int64(1000+step), rng)
				if err != nil {
					t.Fatal(err)
				}
				if len(d.Items) != 8 {
					t.Fatalf("slate of %d", len(d.Items))
				}
				for _, it := range d.Items {
					st.Session.Shown = append(st.Session.Shown, it.ItemID)
				}
				p.Learn(snap, &d, []string{d.Items[0].ItemID, "not-shown"}, step == 4)
			}
			if got, want := ModelsIntent(p), name == HRL; got != want {
				t.Fatalf("ModelsIntent = %v", got)
			}
			if name == KNN {
				return // a reference outside the engine: no model
			}
			if k := model(t, p).Intent.K(); (name == HRL) != (k > 1) {
				t.Fatalf("%d levels", k)
			}
		})
	}
	if _, err := New("best", DefaultConfig()); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown name: %v", err)
	}
}

func TestPopularServesMostPopularUnconsumed(t *testing.T) {
	snap := snapshot(t)
	p, _ := New(Popular, DefaultConfig())
	st := user(snap, "drama", 5)
	d, err := p.Recommend(st, snap, 5, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, i := range snap.Popular() {
		id := snap.Item(i).ID
		if !slices.ContainsFunc(st.History, func(c recommend.Consumed) bool { return c.ItemID == id }) {
			want = append(want, id)
		}
		if len(want) == 5 {
			break
		}
	}
	var got []string
	for _, it := range d.Items {
		got = append(got, it.ItemID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("popular served %v, want %v", got, want)
	}
}

func TestLearningRules(t *testing.T) {
	snap := snapshot(t)
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name          string
		ranker, level bool
	}{
		{Popular, false, false}, {Relevance, true, false}, {MMR, false, false}, {Flat, true, false}, {HRL, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := New(tc.name, cfg)
			before := model(t, p)
			theta, intentT, intentB := before.Ranker.Theta, slices.Clone(before.Intent.T), slices.Clone(before.Intent.B)
			rng := rand.New(rand.NewPCG(3, 4))
			st := user(snap, "comedy", 10)
			for step := range 6 {
				d, err := p.Recommend(st, snap, 10, int64(step), rng)
				if err != nil {
					t.Fatal(err)
				}
				// A click on the top item: it has rivals below it (the last
				// item has none, so its click moves nothing).
				p.Learn(snap, &d, []string{d.Items[0].ItemID}, step == 5)
			}
			after := model(t, p)
			if changed := after.Ranker.Theta != theta; changed != tc.ranker {
				t.Errorf("ranker changed = %v", changed)
			}
			if changed := !slices.Equal(after.Intent.T, intentT) || !slices.Equal(after.Intent.B, intentB); changed != tc.level {
				t.Errorf("high level changed = %v", changed)
			}
		})
	}
}

// TestHRLBootstrapsWithinSession checks the credit assignment: a decision is
// held until the next decision of its session (whose state bootstraps its
// return), and closed with no successor at the session's end.
func TestHRLBootstrapsWithinSession(t *testing.T) {
	snap := snapshot(t)
	p, _ := New(HRL, DefaultConfig())
	ep := p.(*enginePolicy)
	rng := rand.New(rand.NewPCG(5, 6))
	st := user(snap, "action", 10)
	d1, _ := p.Recommend(st, snap, 5, 1, rng)
	p.Learn(snap, &d1, nil, false)
	if ep.pending == nil || ep.l.Updates() != 0 {
		t.Fatalf("decision not held for its successor (updates %d)", ep.l.Updates())
	}
	d2, _ := p.Recommend(st, snap, 5, 2, rng)
	if ep.pending != nil || ep.l.Updates() != 1 {
		t.Fatalf("successor did not close the decision (updates %d)", ep.l.Updates())
	}
	p.Learn(snap, &d2, nil, true)
	if ep.pending != nil || ep.l.Updates() != 2 {
		t.Fatalf("session end did not close the decision (updates %d)", ep.l.Updates())
	}
	// A decision of another user's session is closed without bootstrap
	// before the new one.
	d3, _ := p.Recommend(st, snap, 5, 3, rng)
	p.Learn(snap, &d3, nil, false)
	other := user(snap, "drama", 3)
	other.UserID = "v"
	if _, err := p.Recommend(other, snap, 5, 4, rng); err != nil || ep.pending != nil || ep.l.Updates() != 3 {
		t.Fatalf("pending decision of another session: %v, updates %d", err, ep.l.Updates())
	}
}

func TestPoliciesAreIndependentAndDeterministic(t *testing.T) {
	snap := snapshot(t)
	decide := func() []recommend.Decision {
		p, _ := New(HRL, DefaultConfig())
		rng := rand.New(rand.NewPCG(9, 9))
		st := user(snap, "horror", 6)
		var out []recommend.Decision
		for step := range 4 {
			d, err := p.Recommend(st, snap, 6, int64(step), rng)
			if err != nil {
				t.Fatal(err)
			}
			p.Learn(snap, &d, []string{d.Items[1].ItemID}, false)
			out = append(out, d)
		}
		return out
	}
	if a, b := decide(), decide(); !reflect.DeepEqual(a, b) {
		t.Fatal("two fresh policies with one seed decided differently")
	}
	cfg := DefaultConfig()
	cfg.Model = recommend.DefaultModel()
	p, _ := New(Relevance, cfg)
	p.Learn(snap, &recommend.Decision{}, []string{"x"}, true) // empty decision: nothing to learn
	if !reflect.DeepEqual(cfg.Model, recommend.DefaultModel()) {
		t.Fatal("New changed the configured starting model")
	}
}

// Deterministic serves the HRL by argmax, as a request with
// "deterministic": true is served: the random stream does not matter.
func TestDeterministicHRLIgnoresTheRandomStream(t *testing.T) {
	snap := snapshot(t)
	slate := func(seed uint64, det bool) []string {
		cfg := DefaultConfig()
		cfg.Deterministic = det
		p, err := New(HRL, cfg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Recommend(user(snap, "drama", 10), snap, 8, 1000, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range d.Items {
			ids = append(ids, it.ItemID)
		}
		return ids
	}
	if a, b := slate(1, true), slate(2, true); !slices.Equal(a, b) {
		t.Fatalf("deterministic slates differ by seed: %v vs %v", a, b)
	}
	same := true
	for seed := uint64(2); seed < 6; seed++ {
		same = same && slices.Equal(slate(1, false), slate(seed, false))
	}
	if same {
		t.Fatal("sampled slates never differ by seed: the test cannot tell the modes apart")
	}
}

// TestServeFrom: a policy told to serve another model decides with it (a
// single level: every decision takes it with probability 1) and still
// learns on its own, until told to serve its own again.
func TestServeFrom(t *testing.T) {
	snap := snapshot(t)
	p, err := New(HRL, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ep := p.(*enginePolicy)
	single := fixedModel(recommend.DefaultModel(), recommend.DefaultModel().Intent.Levels[0])
	rng := rand.New(rand.NewPCG(1, 2))
	for _, serve := range []*recommend.Model{single, nil} {
		ep.ServeFrom(serve)
		d, err := p.Recommend(user(snap, "drama", 10), snap, 8, 1000, rng)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Intent.Probability == 1; got != (serve != nil) {
			t.Errorf("serving %v: level %d with probability %v", serve != nil, d.Intent.Level, d.Intent.Probability)
		}
		if model(t, p).Intent.K() < 2 {
			t.Fatal("the working model was replaced")
		}
	}
}

package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// liked is a user who likes the category "a" fully and "b" not at all, so
// that an item's appeal is exact.
func liked(b Behaviour) *User {
	return NewUser("u", true, 1, b, 1, map[string]float64{"a": 1, "b": 0})
}

func TestBrowseCascade(t *testing.T) {
	a := func(id string) Item { return Item{ID: id, Categories: []string{"a"}} }
	bItem := func(id string) Item { return Item{ID: id, Categories: []string{"b"}} }
	certain := DefaultBehaviour()
	certain.ClickRate, certain.Continue = 1, 1
	for _, tc := range []struct {
		name    string
		tweak   func(*Behaviour)
		slate   []Item
		explore bool
		want    []int
	}{
		{"stops at the first click", func(b *Behaviour) { b.ContinueClick = 0 }, []Item{a("1"), a("2"), a("3")}, true, []int{0}},
		{"goes on after a click", func(b *Behaviour) { b.ContinueClick, b.MaxClicks = 1, 5 }, []Item{a("1"), a("2"), a("3")}, true, []int{0, 1, 2}},
		{"at most max-clicks", func(b *Behaviour) { b.ContinueClick, b.MaxClicks = 1, 2 }, []Item{a("1"), a("2"), a("3")}, true, []int{0, 1}},
		// Exploiting with no clicks yet, an item of a category the user
		// does not like has no appeal at all.
		{"stops at an unclicked item", func(b *Behaviour) { b.Continue, b.ContinueClick = 0, 1 }, []Item{bItem("1"), a("2")}, false, nil},
		{"looks past an unclicked item", func(b *Behaviour) { b.ContinueClick = 0 }, []Item{bItem("1"), a("2")}, false, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := certain
			tc.tweak(&b)
			u := liked(b)
			got := u.Browse(rand.New(rand.NewPCG(1, 2)), tc.slate, tc.explore)
			if !slices.Equal(got, tc.want) {
				t.Errorf("clicked %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAppeal checks the user's preferences by mode: exploring, an unseen
// novel item over one shown before, and both over a familiar one;
// exploiting, the reverse.
func TestAppeal(t *testing.T) {
	u := liked(DefaultBehaviour())
	clicked := Item{ID: "c", Categories: []string{"a"}}
	u.Record([]Item{clicked, {ID: "seen", Categories: []string{"x"}}}, []int{0})
	u.tastes["x"] = 1
	u.tastes["y"] = 1
	familiar := Item{ID: "f", Categories: []string{"a"}}
	seen := Item{ID: "seen", Categories: []string{"x"}}
	unseen := Item{ID: "new", Categories: []string{"y"}}
	for _, tc := range []struct {
		name          string
		better, worse Item
		explore       bool
	}{
		{"explorer: unseen novel over seen novel", unseen, seen, true},
		{"explorer: seen novel over familiar", seen, familiar, true},
		{"exploiter: familiar over novel", familiar, unseen, false},
	} {
		if hi, lo := u.Appeal(tc.better, tc.explore), u.Appeal(tc.worse, tc.explore); !(hi > lo) {
			t.Errorf("%s: appeal %.3f, not above %.3f", tc.name, hi, lo)
		}
	}
	for _, tc := range []struct {
		it    Item
		novel bool
	}{{clicked, false}, {familiar, false}, {seen, true}, {unseen, true}, {Item{ID: "mix", Categories: []string{"y", "a"}}, false}} {
		if got := u.Novel(tc.it); got != tc.novel {
			t.Errorf("Novel(%v) = %v, want %v", tc.it, got, tc.novel)
		}
	}
}

// TestUsersDeterministic: the same seed gives the same population, another
// seed other tastes.
func TestUsersDeterministic(t *testing.T) {
	p := Population{Explorers: 2, Loyalists: 2, ExplorerRho: 0.8, LoyalistRho: 0.1, Seed: 7, RunID: "r", Behaviour: DefaultBehaviour()}
	tastes := func(p Population) []float64 {
		var out []float64
		for _, u := range p.Users() {
			for _, c := range []string{"drama", "comedy", "war"} {
				out = append(out, u.Taste(c))
			}
		}
		return out
	}
	a, b := tastes(p), tastes(p)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different tastes")
	}
	p.Seed = 8
	if slices.Equal(a, tastes(p)) {
		t.Error("another seed, same tastes")
	}
	us := p.Users()
	if !us[0].Explorer || us[2].Explorer || us[0].Rho != 0.8 || us[3].Rho != 0.1 {
		t.Errorf("population: %+v %+v", us[0], us[2])
	}
}

func TestAUC(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pos, neg []float64
		want     float64
	}{
		{"separated", []float64{0.9, 0.8}, []float64{0.1, 0.2}, 1},
		{"reversed", []float64{0.1}, []float64{0.5, 0.6}, 0},
		{"tied", []float64{0.5, 0.5}, []float64{0.5}, 0.5},
		{"mixed", []float64{0.3, 0.7}, []float64{0.5}, 0.5},
		{"empty", nil, []float64{0.5}, math.NaN()},
	} {
		got := AUC(tc.pos, tc.neg)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: AUC %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"http://127.0.0.1:8080", true},
		{"127.0.0.1:8080,http://localhost:8081/", true},
		{"http://[::1]:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://example.com", false},
		{"", false},
	} {
		if _, err := loopback(tc.in); (err == nil) != tc.ok {
			t.Errorf("loopback(%q): err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// TestMovieLensTastes reads ml-latest-small when it is there: every user
// gets tastes in [0, 1] with a favourite genre at 1.
func TestMovieLensTastes(t *testing.T) {
	ml, err := loadMovieLens("../../../shared/datasets/ml-latest-small")
	if err != nil {
		t.Skipf("no MovieLens data: %v", err)
	}
	if len(ml.genres) < 1000 || len(ml.raters) < 100 {
		t.Fatalf("%d movies, %d raters", len(ml.genres), len(ml.raters))
	}
	tastes := ml.tastes(1)
	for i := range 5 {
		top := 0.0
		for g, v := range tastes(i) {
			if !(v >= 0 && v <= 1) {
				t.Errorf("user %d: taste %s = %v", i, g, v)
			}
			top = max(top, v)
		}
		if top != 1 {
			t.Errorf("user %d: top taste %v, want 1", i, top)
		}
	}
	if _, err := loadMovieLens(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty directory: %v, want os.ErrNotExist", err)
	}
}

// TestGroupFlaggedClicks checks the share of exploiting sessions' clicks
// that went to items the service flagged novel: counted per click, over
// exploiting sessions only, and per population.
func TestGroupFlaggedClicks(t *testing.T) {
	recs := []SlateRecord{
		{User: 0, Explorer: false, Shown: 10, Clicks: 2, ClicksFlagged: 1},
		{User: 0, Explorer: false, Shown: 10, Clicks: 2, ClicksFlagged: 0},
		{User: 0, Explorer: false, Explore: true, Shown: 10, Clicks: 3, ClicksFlagged: 3},
		{User: 1, Explorer: true, Shown: 10, Clicks: 1, ClicksFlagged: 1},
		{User: 1, Explorer: true, Shown: 10, Clicks: 0},
	}
	for _, tc := range []struct {
		explorers bool
		want      float64
	}{
		{false, 0.25}, // 1 of the 4 clicks in exploiting sessions; the exploring one is not counted
		{true, 1},
	} {
		if got := group(recs, tc.explorers).FlaggedClicksExploit; math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("explorers %v: flagged share %v, want %v", tc.explorers, got, tc.want)
		}
	}
}

// TestGroupExploitBySlate checks the exploiting sessions' propensity by
// slate index: averaged over sessions, exploring sessions left out.
func TestGroupExploitBySlate(t *testing.T) {
	recs := []SlateRecord{
		{User: 0, Session: 0, Slate: 0, SessionPropensity: 0.2},
		{User: 0, Session: 0, Slate: 1, SessionPropensity: 0.1},
		{User: 0, Session: 1, Slate: 0, SessionPropensity: 0.4},
		{User: 0, Session: 2, Slate: 0, Explore: true, SessionPropensity: 0.9},
	}
	got := group(recs, false).ExploitBySlate
	want := []float64{0.3, 0.1}
	if len(got) != len(want) {
		t.Fatalf("by slate %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("slate %d: %v, want %v", i, got[i], want[i])
		}
	}
	if s := bySlateText(got); s != "0.30 0.10" {
		t.Errorf("text %q", s)
	}
}

package replay

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// The synthetic service: six items; the logging ranker draws slates of 3
// by Plackett–Luce over fixed scores, logging each position's conditional
// propensity as the ranker does; a user clicks each shown item i with
// probability clickProb[i], whatever its position.
var (
	synthScores = []float64{2.0, 1.5, 1.0, 0.5, 0.0, -0.5}
	clickProb   = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}
)

func synthItems() []catalog.Item {
	cats := []string{"a", "b", "c"}
	items := make([]catalog.Item, len(synthScores))
	for i := range items {
		items[i] = catalog.Item{ID: fmt.Sprintf("i%d", i), Categories: []string{cats[i%3]}, Popularity: float64(10 - i)}
	}
	return items
}

func softmax(scores []float64, used []bool) []float64 {
	p := make([]float64, len(scores))
	total := 0.0
	for i, s := range scores {
		if !used[i] {
			p[i] = math.Exp(s)
			total += p[i]
		}
	}
	for i := range p {
		p[i] /= total
	}
	return p
}

// synthLog logs users×perUser impressions and their feedback.
func synthLog(seed uint64, users, perUser int) *EventLog {
	rng := rand.New(rand.NewPCG(seed, 5))
	l := &EventLog{}
	n := 0
	for u := 0; u < users; u++ {
		ts := int64(1_000_000 + u*1000)
		for j := 0; j < perUser; j++ {
			n++
			ts += 60_000
			im := events.Impression{
				Schema: 1, EventID: fmt.Sprintf("e%d", n), RequestID: fmt.Sprintf("r%d", n),
				UserID: fmt.Sprintf("u%d", u), SessionID: fmt.Sprintf("s%d", u), Variant: "default", TS: ts,
			}
			used := make([]bool, len(synthScores))
			for pos := 0; pos < 3; pos++ {
				p := softmax(synthScores, used)
				x, acc, a := rng.Float64(), 0.0, -1
				for i := range p {
					if used[i] {
						continue
					}
					acc += p[i]
					a = i
					if x < acc {
						break
					}
				}
				used[a] = true
				im.Items = append(im.Items, events.ImpressionItem{ItemID: fmt.Sprintf("i%d", a), Position: pos, Propensity: p[a]})
			}
			l.Impressions = append(l.Impressions, im)
			for k, it := range im.Items {
				a := int(it.ItemID[1] - '0')
				fb := events.Feedback{Schema: 1, EventID: fmt.Sprintf("f%d-%d", n, k), RequestID: im.RequestID,
					UserID: im.UserID, SessionID: im.SessionID, ItemID: it.ItemID, Type: recommend.View, TS: ts + 1000}
				if rng.Float64() < clickProb[a] {
					fb.Type = recommend.Click
				}
				l.Feedback = append(l.Feedback, fb)
			}
		}
	}
	return l
}

// fixedTopPolicy puts an item drawn from dist first (ignoring the user),
// then the others in order: a target whose value is known exactly.
type fixedTopPolicy struct{ dist []float64 }

func (p *fixedTopPolicy) Name() string { return "fixed-top" }

func (p *fixedTopPolicy) Recommend(_ *recommend.UserState, snap *catalog.Snapshot, k int, _ int64, rng *rand.Rand) (recommend.Decision, error) {
	x, acc, top := rng.Float64(), 0.0, len(p.dist)-1
	for i, q := range p.dist {
		acc += q
		if x < acc {
			top = i
			break
		}
	}
	var d recommend.Decision
	add := func(i int) {
		id := fmt.Sprintf("i%d", i)
		idx, _ := snap.Index(id)
		d.Items = append(d.Items, recommend.Scored{Item: idx, ItemID: id, Position: len(d.Items), Propensity: p.dist[i]})
	}
	add(top)
	for i := 0; i < len(p.dist) && len(d.Items) < k; i++ {
		if i != top {
			add(i)
		}
	}
	return d, nil
}

func (p *fixedTopPolicy) Learn(*catalog.Snapshot, *recommend.Decision, []string, bool) {}

func TestOffPolicyRecoversTrueValue(t *testing.T) {
	l := synthLog(1, 300, 15)
	mu := softmax(synthScores, make([]bool, len(synthScores)))
	loggedTruth := 0.0
	for i := range mu {
		loggedTruth += mu[i] * clickProb[i]
	}
	for _, tc := range []struct {
		name  string
		dist  []float64
		draws int
	}{
		{"stochastic target", []float64{0.05, 0.05, 0.1, 0.2, 0.3, 0.3}, 5},
		{"deterministic target", []float64{0, 0, 0, 0, 0, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := 0.0
			for i, p := range tc.dist {
				truth += p * clickProb[i]
			}
			res, err := OffPolicy(context.Background(), l, synthItems(), &fixedTopPolicy{dist: tc.dist}, OPEConfig{Draws: tc.draws, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("true %.4f (logging %.4f); logged %.4f IPS %.4f±%.4f SNIPS %.4f±%.4f DR %.4f±%.4f; match %.3f ESS %.0f",
				truth, loggedTruth, res.Logged.Value, res.IPS.Value, res.IPS.HalfWidth(), res.SNIPS.Value, res.SNIPS.HalfWidth(),
				res.DR.Value, res.DR.HalfWidth(), res.Match, res.ESS)
			if res.Evaluated != 4500 || res.Skipped != 0 || !res.Complete || res.Clicks == 0 {
				t.Fatalf("%+v", res)
			}
			if !res.Logged.Covers(loggedTruth) {
				t.Errorf("logged value [%v, %v] misses %v", res.Logged.Lo, res.Logged.Hi, loggedTruth)
			}
			for name, e := range map[string]struct{ lo, hi float64 }{
				"IPS": {res.IPS.Lo, res.IPS.Hi}, "SNIPS": {res.SNIPS.Lo, res.SNIPS.Hi}, "DR": {res.DR.Lo, res.DR.Hi},
			} {
				if truth < e.lo || truth > e.hi {
					t.Errorf("%s interval [%v, %v] misses the true value %v", name, e.lo, e.hi, truth)
				}
			}
		})
	}
}

// The context a target sees is the service's: the session's earlier slates
// are shown items, and history holds earlier clicks.
type contextProbe struct {
	fixedTopPolicy
	shown, history []int
}

func (p *contextProbe) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	p.shown = append(p.shown, len(st.Session.Shown))
	p.history = append(p.history, len(st.History))
	return p.fixedTopPolicy.Recommend(st, snap, k, now, rng)
}

func TestOffPolicyContext(t *testing.T) {
	l := synthLog(2, 1, 3)
	p := &contextProbe{fixedTopPolicy: fixedTopPolicy{dist: []float64{1, 0, 0, 0, 0, 0}}}
	if _, err := OffPolicy(context.Background(), l, synthItems(), p, OPEConfig{Draws: 1}); err != nil {
		t.Fatal(err)
	}
	// Each earlier slate: its SlateMark and three items.
	if fmt.Sprint(p.shown) != "[0 4 8]" {
		t.Errorf("shown entries per impression %v, want [0 4 8]", p.shown)
	}
	clicks := 0
	for i, f := range l.Feedback {
		if i/3 == 2 {
			break
		}
		if f.Type == recommend.Click {
			clicks++
		}
	}
	if p.history[0] != 0 || p.history[2] != clicks {
		t.Errorf("history lengths %v, want 0 first and %d (clicks on the first two slates) last", p.history, clicks)
	}
}

func TestOffPolicyErrors(t *testing.T) {
	if _, err := OffPolicy(context.Background(), &EventLog{}, synthItems(), &fixedTopPolicy{}, OPEConfig{}); err == nil {
		t.Error("empty log accepted")
	}
	l := synthLog(3, 2, 2)
	for i := range l.Impressions {
		l.Impressions[i].Items[0].Propensity = 0
	}
	if _, err := OffPolicy(context.Background(), l, synthItems(), &fixedTopPolicy{dist: []float64{1}}, OPEConfig{}); err == nil {
		t.Error("log without valid propensities accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OffPolicy(ctx, synthLog(4, 2, 2), synthItems(), &fixedTopPolicy{dist: []float64{1}}, OPEConfig{}); err == nil {
		t.Error("cancelled evaluation returned no error")
	}
}

func TestReadEventLog(t *testing.T) {
	lines := []string{
		`{"schema":1,"event_id":"e1","request_id":"r1","user_id":"u1","session_id":"s1","variant":"default","model_version":"prior","intent":{"user_propensity":0.2,"session_propensity":0.5,"level":2,"probability":0.4},"items":[{"item_id":"i1","position":0,"score":1,"propensity":0.5,"novel":false,"novelty":0},{"item_id":"i2","position":1,"score":0.5,"propensity":0.4,"novel":true,"novelty":1}],"ts":1000}`,
		`{"schema":1,"event_id":"f1","request_id":"r1","user_id":"u1","session_id":"s1","item_id":"i1","type":"click","ts":1500}`,
		`{"schema":1,"event_id":"f1","request_id":"r1","user_id":"u1","session_id":"s1","item_id":"i1","type":"click","ts":1500}`,
		``,
		`{"schema":1,"event_id":"f2","request_id":"r1","user_id":"u1","session_id":"s1","item_id":"i2","type":"skip","ts":1600}`,
		`{not json`,
		`{"foo":1}`,
		`{"schema":1,"event_id":"e2","request_id":"r2","user_id":"u1","items":[{"item_id":"i1","position":0,"propensity":1}],"ts":1,"surprise":true}`,
		`{"schema":1,"event_id":"f3","user_id":"u2","item_id":"zz","type":"rating","value":4,"ts":900}`,
	}
	path := filepath.Join(t.TempDir(), "log.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := LoadEventLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Impressions) != 1 || len(l.Feedback) != 3 || l.Duplicates != 1 || l.Skipped != 3 || l.Lines != 8 {
		t.Fatalf("impressions %d feedback %d duplicates %d skipped %d lines %d", len(l.Impressions), len(l.Feedback), l.Duplicates, l.Skipped, l.Lines)
	}
	if l.FirstError == nil || !strings.Contains(l.FirstError.Error(), "log.jsonl:6") {
		t.Fatalf("first error %v, want one naming line 6", l.FirstError)
	}
	s, err := l.Stream([]catalog.Item{{ID: "i1", Categories: []string{"x"}}, {ID: "i2", Categories: []string{"y"}}, {ID: "i1", Categories: []string{"z"}}}, "log")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Items) != 3 || s.Items[0].Categories[0] != "z" || s.Items[2].ID != "zz" {
		t.Fatalf("catalog %+v: want i1 (later duplicate wins), i2 and the log's zz", s.Items)
	}
	var got []string
	for _, e := range s.Events {
		got = append(got, fmt.Sprintf("%s/%s/%s/%s@%d", s.Users[e.User], s.Items[e.Item].ID, e.Type, e.Session, e.TS))
	}
	if want := "[u2/zz/rating/@900 u1/i1/click/s1@1500 u1/i2/skip/s1@1600]"; fmt.Sprint(got) != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	res, err := Run(context.Background(), s, &popularPolicy{}, Config{Catalog: CatalogStatic})
	if err != nil {
		t.Fatal(err)
	}
	if res.TestPoints != 2 { // the rating 4 and the click; not the skip
		t.Fatalf("%d test points, want 2", res.TestPoints)
	}

	if _, err := LoadEventLog(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	_ = os.WriteFile(bad, []byte("{not json\n"), 0o644)
	if _, err := LoadEventLog(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") {
		t.Errorf("log without valid events: %v", err)
	}
	if _, err := (&EventLog{}).Stream(nil, "x"); err == nil {
		t.Error("stream without feedback accepted")
	}
}

func TestReadCatalogJSON(t *testing.T) {
	for _, body := range []string{
		`{"items":[{"id":"a","categories":["x"]},{"id":"b","categories":["y"],"popularity":3}]}`,
		`[{"id":"a","categories":["x"]},{"id":"b","categories":["y"],"popularity":3}]`,
	} {
		items, err := ReadCatalogJSON(strings.NewReader(body))
		if err != nil || len(items) != 2 || items[1].Popularity != 3 {
			t.Fatalf("%s: %v %+v", body, err, items)
		}
	}
	for _, body := range []string{`{"items":[]}`, `[{"id":""}]`, `nope`, `[{"id":"a","popularity":-1}]`} {
		if _, err := ReadCatalogJSON(strings.NewReader(body)); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	path := filepath.Join(t.TempDir(), "items.json")
	_ = os.WriteFile(path, []byte(`[{"id":"a","categories":["x"]}]`), 0o644)
	if items, err := LoadCatalog(path); err != nil || len(items) != 1 {
		t.Fatalf("LoadCatalog: %v %v", items, err)
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("missing catalog accepted")
	}
}

// Two targets scored on the same held-out impressions: the paired lift
// recovers the known difference of their values.
func TestOffPolicyHoldoutAndPairedLift(t *testing.T) {
	l := synthLog(5, 300, 10)
	ts := make([]int64, len(l.Impressions))
	for i, im := range l.Impressions {
		ts[i] = im.TS
	}
	slices.Sort(ts)
	from := ts[len(ts)/2]
	held := 0
	for _, x := range ts {
		if x >= from {
			held++
		}
	}
	better := &fixedTopPolicy{dist: []float64{0, 0, 0, 0.2, 0.3, 0.5}}
	worse := &fixedTopPolicy{dist: []float64{0.5, 0.3, 0.2, 0, 0, 0}}
	value := func(d []float64) float64 {
		v := 0.0
		for i, p := range d {
			v += p * clickProb[i]
		}
		return v
	}
	cfg := OPEConfig{Draws: 20, Seed: 7, From: from}
	rb, err := OffPolicy(context.Background(), l, synthItems(), better, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := OffPolicy(context.Background(), l, synthItems(), worse, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Evaluated != held || rb.Skipped != len(ts)-held {
		t.Fatalf("evaluated %d, skipped %d; want the %d impressions from the holdout and %d skipped", rb.Evaluated, rb.Skipped, held, len(ts)-held)
	}
	lift, err := PairedLift(rb, rw)
	if err != nil {
		t.Fatal(err)
	}
	truth := value(better.dist) - value(worse.dist)
	t.Logf("true lift %.4f; paired %.4f [%.4f, %.4f] p %.2g; separate half-widths %.4f and %.4f",
		truth, lift.Diff.Value, lift.Diff.Lo, lift.Diff.Hi, lift.P, rb.DR.HalfWidth(), rw.DR.HalfWidth())
	if !lift.Diff.Covers(truth) || lift.P > 1e-3 || lift.Relative <= 0 {
		t.Errorf("lift %+v does not recover the true difference %v", lift, truth)
	}
	if self, err := PairedLift(rb, rb); err != nil || self.Diff.Value != 0 || self.P != 1 {
		t.Errorf("a target against itself: %+v, %v; want 0 and p = 1", self, err)
	}
	all, err := OffPolicy(context.Background(), l, synthItems(), worse, OPEConfig{Draws: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PairedLift(rb, all); err == nil {
		t.Error("targets scored on different impressions were compared")
	}
	if _, err := OffPolicy(context.Background(), l, synthItems(), worse, OPEConfig{From: ts[len(ts)-1] + 1}); err == nil {
		t.Error("a holdout after the last impression was accepted")
	}
}

package sim

import (
	"context"
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

var (
	smallOnce sync.Once
	smallSnap *catalog.Snapshot
	smallErr  error
)

// smallConfig is a population small enough for -race: 40 users, up to four
// sessions of up to six slates, a 600-item catalog built once.
func smallConfig(t *testing.T) Config {
	t.Helper()
	smallOnce.Do(func() {
		smallSnap, smallErr = catalog.Build(1, catalog.DefaultDim, catalog.Sample(600, 1))
	})
	if smallErr != nil {
		t.Fatal(smallErr)
	}
	cfg := DefaultConfig()
	cfg.Users, cfg.Sessions, cfg.Steps = 40, 4, 6
	cfg.Catalog = smallSnap
	return cfg
}

func run1(t *testing.T, cfg Config, name string, seed uint64) Result {
	t.Helper()
	p, err := NewPolicy(name, cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), cfg, p, seed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunIsDeterministic(t *testing.T) {
	cfg := smallConfig(t)
	a, b := run1(t, cfg, policy.HRL, 7), run1(t, cfg, policy.HRL, 7)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different results:\n%+v\n%+v", a, b)
	}
	c := run1(t, cfg, policy.HRL, 8)
	if reflect.DeepEqual(a.Engagement, c.Engagement) && a.Clicks == c.Clicks && a.Impressions == c.Impressions {
		t.Fatalf("seeds 7 and 8 gave the same run: %+v", c)
	}
}

func TestEveryPolicyRuns(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users, cfg.Sessions = 15, 3
	for _, name := range append(policy.Names(), Oracle, Random) {
		t.Run(name, func(t *testing.T) {
			r := run1(t, cfg, name, 1)
			if r.Policy != name || r.Users != cfg.Users {
				t.Fatalf("result names %q with %d users", r.Policy, r.Users)
			}
			if r.Decisions == 0 || r.Impressions != r.Decisions*int64(cfg.K) {
				t.Fatalf("%d decisions, %d impressions of k=%d", r.Decisions, r.Impressions, cfg.K)
			}
			if r.Sessions < int64(cfg.Users) || r.SessionsPerUser > float64(cfg.Sessions) {
				t.Fatalf("%d sessions for %d users", r.Sessions, cfg.Users)
			}
			for name, v := range map[string]float64{"ctr": r.CTR, "return": r.ReturnRate, "novelty": r.Novelty, "ild": r.ILD, "novel share": r.NovelClickShare} {
				if v < 0 || v > 1 {
					t.Errorf("%s = %v outside [0,1]", name, v)
				}
			}
			sum := 0.0
			for _, e := range r.Engagement {
				sum += e
			}
			if math.Abs(sum-r.ClicksPerUser) > 1e-9 || len(r.Engagement) != cfg.Sessions {
				t.Errorf("engagement %v does not add up to %v clicks per user", r.Engagement, r.ClicksPerUser)
			}
			if r.Active[0] != 1 {
				t.Errorf("everyone has a first session, got %v", r.Active[0])
			}
			if r.IntentModeled != (name == policy.HRL) {
				t.Errorf("intent modeled = %v", r.IntentModeled)
			}
		})
	}
}

// TestOracleBeatsRandom is the simulator's sanity check: knowing each
// session's true mode must pay in clicks, or the modes do not matter.
func TestOracleBeatsRandom(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users, cfg.Sessions, cfg.Steps = 120, 5, 8
	var oracle, random float64
	for seed := uint64(1); seed <= 2; seed++ {
		oracle += run1(t, cfg, Oracle, seed).ClicksPerUser
		random += run1(t, cfg, Random, seed).ClicksPerUser
	}
	t.Logf("clicks per user: oracle %.2f, random %.2f", oracle/2, random/2)
	if oracle < 1.2*random {
		t.Fatalf("oracle %.2f clicks per user, random %.2f: the mode does not matter", oracle/2, random/2)
	}
}

func TestMeanCI(t *testing.T) {
	// mean 3, s = √2.5, t_{0.975,4} = 2.7764451, half width t·s/√5.
	s := MeanCI([]float64{1, 2, 3, 4, 5}, 0.95)
	want := 2.7764451051977987 * math.Sqrt(2.5) / math.Sqrt(5)
	if s.N != 5 || s.Mean != 3 || math.Abs(s.HalfWidth-want) > 1e-9 || math.Abs(s.Lo-(3-want)) > 1e-9 || math.Abs(s.Hi-(3+want)) > 1e-9 {
		t.Fatalf("got %+v, want 3 ± %v", s, want)
	}
	// Two runs: t_{0.975,1} = 12.7062047.
	s = MeanCI([]float64{10, 12}, 0.95)
	if want := 12.706204736174705 * math.Sqrt(2) / math.Sqrt(2); math.Abs(s.HalfWidth-want) > 1e-9 || s.Mean != 11 {
		t.Fatalf("got %+v, want 11 ± %v", s, want)
	}
	if s := MeanCI([]float64{4}, 0.95); s.Mean != 4 || s.HalfWidth != 0 || s.Lo != 4 || s.Hi != 4 {
		t.Fatalf("one run: %+v", s)
	}
	if s := MeanCI(nil, 0.95); s.N != 0 {
		t.Fatalf("no runs: %+v", s)
	}
}

func TestAUC(t *testing.T) {
	tests := []struct {
		scores []float64
		labels []bool
		want   float64
	}{
		// Pairs (pos, neg): (0.35,0.1) (0.35,0.4)✗ (0.8,0.1) (0.8,0.4): 3/4.
		{[]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75},
		{[]float64{1, 2, 3}, []bool{false, true, true}, 1},
		{[]float64{1, 2, 3}, []bool{true, false, false}, 0},
		// A tie counts half: (0.5,0.5) ½ + (0.9,0.5) 1, over 2 pairs.
		{[]float64{0.5, 0.5, 0.9}, []bool{true, false, true}, 0.75},
		{[]float64{0.3, 0.3, 0.3, 0.3}, []bool{true, false, true, false}, 0.5},
	}
	for _, tc := range tests {
		if got := AUC(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("AUC(%v, %v) = %v, want %v", tc.scores, tc.labels, got, tc.want)
		}
	}
	if !math.IsNaN(AUC([]float64{1, 2}, []bool{true, true})) {
		t.Error("AUC without negatives is not NaN")
	}
}

func TestPearson(t *testing.T) {
	// x = 1..4, y = 2,4,5,9: cov = 2*... computed by hand: x̄=2.5, ȳ=5,
	// Σdx·dy = (−1.5)(−3)+(−.5)(−1)+(.5)(0)+(1.5)(4) = 11,
	// Σdx² = 5, Σdy² = 9+1+0+16 = 26, r = 11/√130.
	got := Pearson([]float64{1, 2, 3, 4}, []float64{2, 4, 5, 9})
	if want := 11 / math.Sqrt(130); math.Abs(got-want) > 1e-12 {
		t.Fatalf("r = %v, want %v", got, want)
	}
	if got := Pearson([]float64{1, 2, 3}, []float64{3, 2, 1}); math.Abs(got+1) > 1e-12 {
		t.Fatalf("r = %v, want -1", got)
	}
	if !math.IsNaN(Pearson([]float64{1}, []float64{1})) {
		t.Fatal("one point has no correlation")
	}
}

func TestCompareAggregatesAndIsDeterministic(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users, cfg.Sessions = 20, 3
	names := []string{policy.Popular, policy.HRL}
	seeds := []uint64{1, 2, 3}
	calls, last := 0, 0
	cfg.Workers = 1
	a, err := Compare(context.Background(), cfg, names, seeds, func(done, total int) {
		calls++
		if done != last+1 || total != len(names)*len(seeds)*cfg.Sessions {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Complete || len(a.Runs) != 6 || calls != 6*cfg.Sessions || len(a.Policies) != 2 {
		t.Fatalf("complete %v, %d runs, %d progress calls, %d policies", a.Complete, len(a.Runs), calls, len(a.Policies))
	}
	cfg.Workers = 3
	b, err := Compare(context.Background(), cfg, names, seeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Runs, b.Runs) {
		t.Fatal("results depend on the number of workers")
	}
	hrl := a.Policies[1]
	var xs []float64
	for _, r := range a.Runs {
		if r.Policy == policy.HRL {
			xs = append(xs, r.ClicksPerUser)
		}
	}
	if hrl.Policy != policy.HRL || hrl.Runs != 3 || hrl.Metrics[MClicksPerUser] != MeanCI(xs, 0.95) {
		t.Fatalf("hrl summary %+v from %v", hrl.Metrics[MClicksPerUser], xs)
	}
	if _, ok := a.Policies[0].Metrics[MSessionAUC]; ok {
		t.Fatal("popular reports an intent AUC")
	}
	if _, ok := hrl.Metrics[MSessionAUC]; !ok || len(hrl.Engagement) != cfg.Sessions {
		t.Fatalf("hrl metrics %v, engagement %v", hrl.Metrics, hrl.Engagement)
	}
	if _, err := Compare(context.Background(), cfg, []string{"nope"}, seeds, nil); err == nil {
		t.Fatal("unknown policy accepted")
	}
}

func TestCompareCancelKeepsFinishedRuns(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users, cfg.Sessions, cfg.Workers = 20, 3, 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Compare(ctx, cfg, []string{policy.Relevance, policy.HRL}, []uint64{1, 2}, func(done, total int) {
		if done == cfg.Sessions { // the first run's last round
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rep.Complete || len(rep.Runs) != 1 || rep.Runs[0].Policy != policy.Relevance || rep.Runs[0].Seed != 1 {
		t.Fatalf("complete %v, runs %+v", rep.Complete, rep.Runs)
	}
	if want := run1(t, cfg, policy.Relevance, 1); !reflect.DeepEqual(rep.Runs[0], want) {
		t.Fatal("the finished run differs from an uninterrupted one")
	}
	if len(rep.Policies) != 2 || rep.Policies[0].Runs != 1 || rep.Policies[1].Runs != 0 {
		t.Fatalf("policies %+v", rep.Policies)
	}
	// A cancelled Run stops with the context's error.
	p, _ := NewPolicy(policy.HRL, cfg.Policy)
	if _, err := Run(ctx, cfg, p, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a cancelled context: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"users":   func(c *Config) { c.Users = 0 },
		"k":       func(c *Config) { c.K = 0 },
		"items":   func(c *Config) { c.Items = 3 },
		"beta":    func(c *Config) { c.RhoA = 0 },
		"prob":    func(c *Config) { c.LeaveAfterClick = 1.5 },
		"nan":     func(c *Config) { c.ExploitToExplore = math.NaN() },
		"scale":   func(c *Config) { c.ReturnScale = 0 },
		"history": func(c *Config) { c.InitialHistory = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}

// counter is an Observer that counts.
type counter struct{ shown, items, clicks, skips int }

func (c *counter) Shown(_, _ string, _ int64, d *recommend.Decision) {
	c.shown++
	c.items += len(d.Items)
}
func (c *counter) Reacted(_, _, _, typ string, _ int64) {
	if typ == recommend.Click {
		c.clicks++
	} else {
		c.skips++
	}
}

// An observer sees every decision and click, and watching does not change
// the run.
func TestRunObserved(t *testing.T) {
	cfg := smallConfig(t)
	p, err := NewPolicy(policy.HRL, cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	got, err := RunObserved(context.Background(), cfg, p, 7, &c)
	if err != nil {
		t.Fatal(err)
	}
	if want := run1(t, cfg, policy.HRL, 7); !reflect.DeepEqual(got, want) {
		t.Fatalf("observed run differs:\n%+v\n%+v", got, want)
	}
	if int64(c.shown) != got.Decisions || int64(c.items) != got.Impressions || int64(c.clicks) != got.Clicks || c.skips == 0 {
		t.Errorf("observed %+v; run had %d decisions, %d impressions, %d clicks", c, got.Decisions, got.Impressions, got.Clicks)
	}
}

// A clicks-only client sends no skip events: the service sees clicks and
// must infer the rest from what it showed.
func TestClicksOnlyClientSendsNoSkips(t *testing.T) {
	cfg := smallConfig(t)
	cfg.SkipEvents = false
	p, err := NewPolicy(policy.HRL, cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	got, err := RunObserved(context.Background(), cfg, p, 7, &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.skips != 0 || c.clicks == 0 || int64(c.clicks) != got.Clicks {
		t.Errorf("clicks-only run reported %d skips and %d clicks (run: %d clicks)", c.skips, c.clicks, got.Clicks)
	}
}

// Hidden item quality and user×item factors change who clicks what, the
// same way for every policy of a seed.
func TestCollaborativeStructureChangesClicks(t *testing.T) {
	cfg := smallConfig(t)
	base := run1(t, cfg, policy.MMR, 3)
	cfg.QualityWeight, cfg.LatentWeight = 1, 1.5
	withStructure := run1(t, cfg, policy.MMR, 3)
	if reflect.DeepEqual(base.Clicks, withStructure.Clicks) && base.CTR == withStructure.CTR {
		t.Fatalf("hidden quality and factors changed nothing: %+v", withStructure)
	}
	if again := run1(t, cfg, policy.MMR, 3); !reflect.DeepEqual(again, withStructure) {
		t.Fatal("a run with hidden structure is not deterministic")
	}
}

// TestOracleBounds checks the bounds of the intent scores: an oracle that
// reads past sessions' modes without error ranks first slates better than
// chance and its ρ_u estimate correlates with ρ_u, and both are reported
// only for a policy that models intent.
func TestOracleBounds(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users, cfg.Sessions = 200, 5
	r := run1(t, cfg, "hrl", 1)
	t.Logf("AUC first %.3f (bound %.3f), corr %.3f (bound %.3f)", r.SessionAUCFirst, r.SessionAUCFirstBound, r.UserCorrelation, r.UserCorrelationBound)
	if !(r.SessionAUCFirstBound > 0.55 && r.SessionAUCFirstBound < 1) {
		t.Errorf("AUC first bound %v, want in (0.55, 1)", r.SessionAUCFirstBound)
	}
	if !(r.UserCorrelationBound > 0.3 && r.UserCorrelationBound < 1) {
		t.Errorf("correlation bound %v, want in (0.3, 1)", r.UserCorrelationBound)
	}
	mmr := run1(t, cfg, "mmr", 1)
	m := mmr.Metrics()
	if _, ok := m[MAUCFirstBound]; ok {
		t.Error("mmr reports an intent bound")
	}
}

package experiment

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

const twoWay = `
name: novelty-weights
salt: s1
variants:
  - {name: control, share: 0.5, reward: {w_nov: 0, w_div: 0}}
  - {name: nov3, share: 0.5, reward: {w_nov: 3, w_div: 0.1}}
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(twoWay))
	if err != nil {
		t.Fatal(err)
	}
	if c.Control != "control" || len(c.Variants) != 2 || c.Variants[1].Reward.Novelty != 3 || c.Variants[1].Reward.Diversity != 0.1 {
		t.Fatalf("parsed %+v", c)
	}
	if _, err := c.Variant("nope"); !errors.Is(err, ErrNoVariant) {
		t.Fatalf("unknown variant: %v", err)
	}
}

func TestParseBaselineArm(t *testing.T) {
	tests := []struct {
		policy   string
		baseline bool
	}{{"", false}, {"hrl", false}, {"mmr", true}, {"popular", true}}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			c, err := Parse([]byte("name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.5, policy: '" + tc.policy + "'}\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Variants[1].Baseline(); got != tc.baseline || c.Variants[1].Policy != tc.policy {
				t.Fatalf("policy %q: Baseline() = %v, want %v", c.Variants[1].Policy, got, tc.baseline)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, field string
	}{
		{"shares below 1", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.4}\n", "variants"},
		{"shares above 1", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.7}\n  - {name: b, share: 0.4}\n", "variants"},
		{"duplicate names", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: a, share: 0.5}\n", "variants[1].name"},
		{"NaN weight", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 1, reward: {w_nov: .nan}}\n", "variants[0].reward"},
		{"infinite weight", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 1, reward: {w_div: .inf}}\n", "variants[0].reward"},
		{"negative share", "name: e\nsalt: s\nvariants:\n  - {name: a, share: -0.5}\n  - {name: b, share: 1.5}\n", "variants[0].share"},
		{"bad name", "name: e\nsalt: s\nvariants:\n  - {name: 'a b', share: 1}\n", "variants[0].name"},
		{"no variants", "name: e\nsalt: s\n", "variants"},
		{"no salt", "name: e\nvariants:\n  - {name: a, share: 1}\n", "salt"},
		{"no name", "salt: s\nvariants:\n  - {name: a, share: 1}\n", "name"},
		{"unknown policy", "name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.5, policy: knn}\n", "variants[1].policy"},
		{"unknown control", "name: e\nsalt: s\ncontrol: z\nvariants:\n  - {name: a, share: 1}\n", "control"},
		{"unknown field", "name: e\nsalt: s\nsalts: x\nvariants:\n  - {name: a, share: 1}\n", ""},
		{"not YAML", "name: [", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			var ve *ValidationError
			if tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field) {
				t.Fatalf("error %v, want one naming %q", err, tc.field)
			}
		})
	}
}

func TestAssignIsStableAndMatchesShares(t *testing.T) {
	c, err := Parse([]byte("name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.3}\n  - {name: c, share: 0.2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100000
	counts := map[string]int{}
	first := make([]string, n)
	for i := 0; i < n; i++ {
		v := c.Assign(fmt.Sprint("user-", i))
		counts[v.Name]++
		first[i] = v.Name
	}
	for _, v := range c.Variants {
		got := float64(counts[v.Name]) / n
		if math.Abs(got-v.Share) > 0.01 {
			t.Errorf("variant %s got %.4f of users, share %.2f", v.Name, got, v.Share)
		}
	}
	// Same answer every time (and in every process: it depends only on inputs).
	for i := 0; i < n; i += 997 {
		if got := c.Assign(fmt.Sprint("user-", i)).Name; got != first[i] {
			t.Fatalf("user-%d moved from %s to %s", i, first[i], got)
		}
	}
	if b := Bucket("s", "user-1"); b != Bucket("s", "user-1") || b < 0 || b >= 1 {
		t.Fatalf("bucket %v", b)
	}
	// A new salt reshuffles: the share of users who change variant is close
	// to 1 − Σ share² = 0.62 for independent assignments.
	c2 := *c
	c2.Salt = "s2"
	moved := 0
	for i := 0; i < n; i++ {
		if c2.Assign(fmt.Sprint("user-", i)).Name != first[i] {
			moved++
		}
	}
	if frac := float64(moved) / n; math.Abs(frac-0.62) > 0.01 {
		t.Errorf("a new salt moved %.3f of users, want about 0.62", frac)
	}
}

// simulate draws per-variant aggregates for users with the given CTR and
// sessions per user (Poisson-ish), as the trainer would count them. Users
// differ in activity (log-normal): active users had longer histories before
// the experiment (the CUPED covariate), and return and click more in it.
func simulate(rng *rand.Rand, users int, ctr float64, sessionsMean float64) Aggregates {
	var a Aggregates
	for u := 0; u < users; u++ {
		a.Users++
		act := math.Exp(0.6*rng.NormFloat64() - 0.18) // mean 1
		pre := math.Round(20 * act * (0.8 + 0.4*rng.Float64()))
		a.PreSum += pre
		a.PreSumSq += pre * pre
		var userClicks, userImps, userClicked, userNovel float64
		s := 1
		for rng.Float64() < 1-1/(sessionsMean*math.Sqrt(act)) { // active users return more
			s++
		}
		a.Sessions += int64(s)
		a.SessionsSumSq += float64(s * s)
		if s > 1 {
			a.ReturningUsers++
		}
		for i := 0; i < 3*s; i++ {
			a.Impressions++
			userImps++
			ild := 0.5 + 0.2*rng.NormFloat64()
			a.ILDSum += ild
			a.ILDSumSq += ild * ild
			if rng.Float64() < math.Min(1, ctr*act) {
				a.ClickedImpressions++
				a.Clicks++
				userClicks++
				userClicked++
				if rng.Float64() < 0.3 {
					a.NovelClicks++
					userNovel++
				}
			}
		}
		a.UserClicksSumSq += userClicks * userClicks
		a.PreClicksSum += pre * userClicks
		a.UserImpressionsSumSq += userImps * userImps
		a.UserClickedSumSq += userClicked * userClicked
		a.UserClickedImpressionsSum += userClicked * userImps
		a.UserNovelSumSq += userNovel * userNovel
		a.UserNovelClicksSum += userNovel * userClicks
	}
	return a
}

func pOf(r Report, variant, metric string) float64 {
	for _, v := range r.Variants {
		if v.Name != variant {
			continue
		}
		for _, m := range v.Metrics {
			if m.Name == metric && m.PValue != nil {
				return *m.PValue
			}
		}
	}
	return math.NaN()
}

func TestAAFalsePositiveRate(t *testing.T) {
	c, _ := Parse([]byte(twoWay))
	const runs = 400
	fp := map[string]int{}
	metrics := []string{"ctr", "novel_click_rate", "mean_ild", "return_rate", "sessions_per_user", "clicks_per_user", "clicks_per_user_cuped"}
	for seed := uint64(0); seed < runs; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		r := BuildReport(c, map[string]Aggregates{
			"control": simulate(rng, 500, 0.1, 2),
			"nov3":    simulate(rng, 500, 0.1, 2),
		})
		for _, m := range metrics {
			if pOf(r, "nov3", m) < 0.05 {
				fp[m]++
			}
		}
		if r.SRM.Mismatch {
			t.Fatalf("seed %d: SRM alarm on an even split", seed)
		}
	}
	for _, m := range metrics {
		rate := float64(fp[m]) / runs
		t.Logf("A/A false-positive rate of %s: %.3f", m, rate)
		if rate < 0.02 || rate > 0.09 {
			t.Errorf("A/A false-positive rate of %s is %.3f, want near 0.05", m, rate)
		}
	}
}

func TestABDetectsKnownEffect(t *testing.T) {
	c, _ := Parse([]byte(twoWay))
	rng := rand.New(rand.NewPCG(1, 1))
	r := BuildReport(c, map[string]Aggregates{
		"control": simulate(rng, 5000, 0.10, 2),
		"nov3":    simulate(rng, 5000, 0.12, 2.4),
	})
	for _, m := range []string{"ctr", "sessions_per_user", "return_rate"} {
		if p := pOf(r, "nov3", m); !(p < 0.01) {
			t.Errorf("%s: p = %v for a real effect", m, p)
		}
	}
	var lift float64
	for _, m := range r.Variants[1].Metrics {
		if m.Name == "ctr" {
			lift = *m.Lift
		}
	}
	if math.Abs(lift-0.2) > 0.08 {
		t.Errorf("CTR lift %.3f, want about +0.20", lift)
	}
	if len(r.Notes) != 0 {
		t.Errorf("unexpected notes %v", r.Notes)
	}
}

func TestSRMAndMultipleComparisons(t *testing.T) {
	c, _ := Parse([]byte(twoWay))
	if r := BuildReport(c, map[string]Aggregates{"control": {Users: 10000}, "nov3": {Users: 9000}}); !r.SRM.Mismatch || len(r.Notes) == 0 {
		t.Errorf("10000 vs 9000 users on a 50/50 split: %+v", r.SRM)
	}
	if r := BuildReport(c, map[string]Aggregates{"control": {Users: 10000}, "nov3": {Users: 10050}}); r.SRM.Mismatch {
		t.Errorf("10000 vs 10050 flagged: %+v", r.SRM)
	}
	three, _ := Parse([]byte("name: e\nsalt: s\nvariants:\n  - {name: a, share: 0.34}\n  - {name: b, share: 0.33}\n  - {name: c, share: 0.33}\n"))
	rng := rand.New(rand.NewPCG(2, 2))
	r := BuildReport(three, map[string]Aggregates{"a": simulate(rng, 300, 0.1, 2), "b": simulate(rng, 300, 0.1, 2), "c": simulate(rng, 300, 0.1, 2)})
	if len(r.Notes) == 0 {
		t.Fatal("no multiple-comparison note with two treatments")
	}
	for _, m := range r.Variants[1].Metrics {
		if m.PValue != nil && (m.PAdjusted == nil || *m.PAdjusted < *m.PValue) {
			t.Errorf("%s: adjusted p %v below p %v", m.Name, m.PAdjusted, *m.PValue)
		}
	}
}

func TestIntervalsOnHandComputedExamples(t *testing.T) {
	// Wilson interval of 50/100: 0.4038 .. 0.5962.
	m := proportion("p", 50, 100)
	if math.Abs(m.Low-0.4038) > 1e-4 || math.Abs(m.High-0.5962) > 1e-4 || m.Value != 0.5 {
		t.Errorf("Wilson 50/100 = %+v", m)
	}
	// Mean of {1,2,3,4}: 2.5, sd 1.291, t(3)=3.182 → ±2.054.
	mu := mean("m", 10, 30, 4)
	if math.Abs(mu.Value-2.5) > 1e-12 || math.Abs(mu.High-mu.Value-2.0542) > 1e-3 {
		t.Errorf("mean interval %+v", mu)
	}
	// Identical samples: p = 1.
	if p := Welch(10, 30, 4, 10, 30, 4); math.Abs(p-1) > 1e-12 {
		t.Errorf("Welch of identical samples p = %v", p)
	}
	if p := TwoProportion(10, 100, 10, 100); math.Abs(p-1) > 1e-12 {
		t.Errorf("two-proportion of identical samples p = %v", p)
	}
	// 60/100 vs 40/100: z = 2.828, p = 0.00468.
	if p := TwoProportion(60, 100, 40, 100); math.Abs(p-0.00468) > 1e-4 {
		t.Errorf("two-proportion p = %v, want 0.00468", p)
	}
}

func metricOf(r Report, variant, metric string) Metric {
	for _, v := range r.Variants {
		if v.Name == variant {
			for _, m := range v.Metrics {
				if m.Name == metric {
					return m
				}
			}
		}
	}
	return Metric{}
}

// CUPED keeps the lift and narrows the interval: users' pre-period activity
// explains much of their clicks.
func TestCUPEDNarrowsTheInterval(t *testing.T) {
	c, _ := Parse([]byte(twoWay))
	rng := rand.New(rand.NewPCG(3, 3))
	r := BuildReport(c, map[string]Aggregates{
		"control": simulate(rng, 3000, 0.30, 4),
		"nov3":    simulate(rng, 3000, 0.32, 4),
	})
	plain, adj := metricOf(r, "nov3", "clicks_per_user"), metricOf(r, "nov3", "clicks_per_user_cuped")
	pc, ac := metricOf(r, "control", "clicks_per_user"), metricOf(r, "control", "clicks_per_user_cuped")
	t.Logf("clicks per user: plain %.3f±%.3f vs %.3f (lift %+.3f, p %.3g); CUPED %.3f±%.3f vs %.3f (lift %+.3f, p %.3g)",
		plain.Value, (plain.High-plain.Low)/2, pc.Value, *plain.Lift, *plain.PValue,
		adj.Value, (adj.High-adj.Low)/2, ac.Value, *adj.Lift, *adj.PValue)
	if w, wa := plain.High-plain.Low, adj.High-adj.Low; !(wa < 0.85*w) { // 0.80 on this seed
		t.Errorf("CUPED interval width %.4f not clearly below the plain %.4f", wa, w)
	}
	if math.Abs(*adj.Lift-*plain.Lift) > 0.05 {
		t.Errorf("CUPED lift %.3f far from the plain %.3f", *adj.Lift, *plain.Lift)
	}
}

// The report's CUPED from sufficient statistics equals the regression done
// on the users themselves.
func TestCUPEDMatchesPerUserComputation(t *testing.T) {
	c, _ := Parse([]byte(twoWay))
	users := map[string][][2]float64{ // (X, Y) per user
		"control": {{0, 1}, {3, 2}, {10, 6}, {5, 2}, {1, 0}},
		"nov3":    {{2, 3}, {8, 7}, {4, 3}, {0, 1}},
	}
	aggs := map[string]Aggregates{}
	var all [][2]float64
	for v, us := range users {
		var a Aggregates
		for _, u := range us {
			a.Users++
			a.Clicks += int64(u[1])
			a.PreSum += u[0]
			a.PreSumSq += u[0] * u[0]
			a.UserClicksSumSq += u[1] * u[1]
			a.PreClicksSum += u[0] * u[1]
		}
		aggs[v] = a
		all = append(all, us...)
	}
	xs, ys := make([]float64, len(all)), make([]float64, len(all))
	for i, u := range all {
		xs[i], ys[i] = u[0], u[1]
	}
	theta := stat.Covariance(xs, ys, nil) / stat.Variance(xs, nil)
	meanX := stat.Mean(xs, nil)
	r := BuildReport(c, aggs)
	for v, us := range users {
		adj := make([]float64, len(us))
		for i, u := range us {
			adj[i] = u[1] - theta*(u[0]-meanX)
		}
		m, sd := stat.MeanStdDev(adj, nil)
		got := metricOf(r, v, "clicks_per_user_cuped")
		half := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(us) - 1)}.Quantile(0.975) * sd / math.Sqrt(float64(len(us)))
		if math.Abs(got.Value-m) > 1e-12 || math.Abs((got.High-got.Low)/2-half) > 1e-9 {
			t.Errorf("%s: CUPED %.6f ± %.6f, per-user computation %.6f ± %.6f", v, got.Value, (got.High-got.Low)/2, m, half)
		}
	}
}

// Ratio metrics: the delta method over users where the per-user sums are
// kept, the binomial where they are not or where users show no spread.
func TestRatioMetricFallbacks(t *testing.T) {
	// Two users, 2 and 4 impressions, 1 and 3 clicked: R = 4/6.
	a := Aggregates{Users: 2, Impressions: 6, ClickedImpressions: 4,
		UserImpressionsSumSq: 4 + 16, UserClickedSumSq: 1 + 9, UserClickedImpressionsSum: 2 + 12}
	m := ratioMetric("ctr", 4, 6, a.ctrStats)
	// Per user A = (1,3), B = (2,4): Var A = 2, Var B = 2, Cov = 2;
	// Var R = (2 − 2·(2/3)·2 + (4/9)·2)/(2·3²) = (2/9)/18.
	half := z95 * math.Sqrt(2.0/9/18)
	if math.Abs(m.Value-4.0/6) > 1e-12 || math.Abs(m.High-m.Value-half) > 1e-12 {
		t.Errorf("delta method: %+v, want 0.6667 ± %.4f", m, half)
	}
	w := proportion("ctr", 4, 6)
	for name, agg := range map[string]Aggregates{
		"no per-user sums": {Users: 2, Impressions: 6, ClickedImpressions: 4},
		// Every user clicked every impression: no spread.
		"no spread": {Users: 2, Impressions: 6, ClickedImpressions: 6, UserImpressionsSumSq: 20, UserClickedSumSq: 20, UserClickedImpressionsSum: 20},
	} {
		k := agg.ClickedImpressions
		got := ratioMetric("ctr", k, 6, agg.ctrStats)
		if want := proportion("ctr", k, 6); got != want {
			t.Errorf("%s: %+v, want the Wilson interval %+v", name, got, want)
		}
	}
	if w.Low == w.High {
		t.Fatalf("Wilson interval of 4/6 is a point: %+v", w)
	}
	if p := ratioTest(a.ctrStats, Aggregates{Users: 2, Impressions: 6, ClickedImpressions: 4}.ctrStats, 4, 6, 4, 6); p != 1 {
		t.Errorf("fallback test of equal proportions p = %v", p)
	}
}

// TestAggregatesPlusSumsEveryField sets every field of two aggregates to
// distinct values and checks Plus adds each, so a field added later without
// being summed fails here.
func TestAggregatesPlusSumsEveryField(t *testing.T) {
	var a, b Aggregates
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		switch va.Field(i).Kind() {
		case reflect.Int64:
			va.Field(i).SetInt(int64(i + 1))
			vb.Field(i).SetInt(int64(100 * (i + 1)))
		case reflect.Float64:
			va.Field(i).SetFloat(float64(i) + 0.5)
			vb.Field(i).SetFloat(float64(100*i) + 0.25)
		default:
			t.Fatalf("field %s of kind %s: Plus does not know how to sum it", va.Type().Field(i).Name, va.Field(i).Kind())
		}
	}
	sum := reflect.ValueOf(a.Plus(b))
	for i := range sum.NumField() {
		name := sum.Type().Field(i).Name
		switch sum.Field(i).Kind() {
		case reflect.Int64:
			if got, want := sum.Field(i).Int(), va.Field(i).Int()+vb.Field(i).Int(); got != want {
				t.Errorf("%s: %d, want %d", name, got, want)
			}
		case reflect.Float64:
			if got, want := sum.Field(i).Float(), va.Field(i).Float()+vb.Field(i).Float(); got != want {
				t.Errorf("%s: %g, want %g", name, got, want)
			}
		}
	}
}

// TestExamplesParse keeps the shipped experiments files valid.
func TestExamplesParse(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := Load(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

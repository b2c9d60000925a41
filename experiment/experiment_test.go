package experiment

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
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
// sessions per user (Poisson-ish), as the trainer would count them.
func simulate(rng *rand.Rand, users int, ctr float64, sessionsMean float64) Aggregates {
	var a Aggregates
	for u := 0; u < users; u++ {
		a.Users++
		s := 1
		for rng.Float64() < 1-1/sessionsMean {
			s++
		}
		a.Sessions += int64(s)
		a.SessionsSumSq += float64(s * s)
		if s > 1 {
			a.ReturningUsers++
		}
		for i := 0; i < 3*s; i++ {
			a.Impressions++
			ild := 0.5 + 0.2*rng.NormFloat64()
			a.ILDSum += ild
			a.ILDSumSq += ild * ild
			if rng.Float64() < ctr {
				a.ClickedImpressions++
				a.Clicks++
				if rng.Float64() < 0.3 {
					a.NovelClicks++
				}
			}
		}
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
	metrics := []string{"ctr", "novel_click_rate", "mean_ild", "return_rate", "sessions_per_user"}
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

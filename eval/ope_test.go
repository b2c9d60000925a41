package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// Three logged decisions whose estimates are worked out by hand: weights
// π/μ are 1/0.5 = 2, 0.5/0.25 = 2 and 0.1/0.2 = 0.5.
var handSamples = []Sample{
	{Reward: 1, Propensity: 0.5, Target: 1, Predicted: 0.5, TargetPredicted: 0.6},
	{Reward: 0, Propensity: 0.25, Target: 0.5, Predicted: 0.2, TargetPredicted: 0.3},
	{Reward: 1, Propensity: 0.2, Target: 0.1, Predicted: 0.8, TargetPredicted: 0.4},
}

func TestEstimatorsHandComputed(t *testing.T) {
	ips, err := IPS(handSamples, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// terms 2·1, 2·0, 0.5·1.
	near(t, "IPS", ips.Value, 2.5/3)
	wantH := 4.302652729749464 * math.Sqrt(((2-2.5/3)*(2-2.5/3)+(2.5/3)*(2.5/3)+(0.5-2.5/3)*(0.5-2.5/3))/2) / math.Sqrt(3)
	if math.Abs(ips.HalfWidth()-wantH) > 1e-6 {
		t.Errorf("IPS half-width %v, want %v", ips.HalfWidth(), wantH)
	}

	sn, err := SNIPS(handSamples, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := 2.5 / 4.5
	near(t, "SNIPS", sn.Value, v)
	// Delta method: terms w(r−V) = 2(1−V), 2(0−V), 0.5(1−V); mean w = 1.5.
	ss := math.Pow(2*(1-v), 2) + math.Pow(2*v, 2) + math.Pow(0.5*(1-v), 2)
	se := math.Sqrt(ss/2/3) / 1.5
	if math.Abs(sn.HalfWidth()-4.302652729749464*se) > 1e-6 {
		t.Errorf("SNIPS half-width %v, want %v", sn.HalfWidth(), 4.302652729749464*se)
	}

	dr, err := DR(handSamples, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// terms 0.6+2(1−0.5) = 1.6, 0.3+2(0−0.2) = −0.1, 0.4+0.5(1−0.8) = 0.5.
	near(t, "DR", dr.Value, 2.0/3)

	near(t, "ESS", EffectiveSampleSize(handSamples, Options{}), 4.5*4.5/8.25)
}

func TestClipping(t *testing.T) {
	clip := Options{Clip: 1} // weights become 1, 1, 0.5
	ips, err := IPS(handSamples, clip)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "clipped IPS", ips.Value, 0.5)
	sn, err := SNIPS(handSamples, clip)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "clipped SNIPS", sn.Value, 1.5/2.5)
	dr, err := DR(handSamples, clip)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "clipped DR", dr.Value, (1.1+0.1+0.5)/3)
	loose, _ := IPS(handSamples, Options{Clip: 100})
	plain, _ := IPS(handSamples, Options{})
	if loose != plain {
		t.Errorf("a cap above every weight changed IPS: %+v vs %+v", loose, plain)
	}
}

func TestEstimatorErrors(t *testing.T) {
	for _, f := range []func([]Sample, Options) (Estimate, error){IPS, SNIPS, DR} {
		if _, err := f(nil, Options{}); !errors.Is(err, ErrNoSamples) {
			t.Errorf("no samples: %v", err)
		}
		for _, bad := range []Sample{
			{Reward: 1, Propensity: 0, Target: 1},
			{Reward: 1, Propensity: 1.5, Target: 1},
			{Reward: 1, Propensity: math.NaN(), Target: 1},
			{Reward: 1, Propensity: 0.5, Target: -0.1},
		} {
			if _, err := f([]Sample{bad}, Options{}); !errors.Is(err, ErrPropensity) {
				t.Errorf("%+v: %v, want ErrPropensity", bad, err)
			}
		}
		if _, err := f([]Sample{{Reward: math.Inf(1), Propensity: 0.5, Target: 1}}, Options{}); err == nil {
			t.Error("infinite reward accepted")
		}
	}
	if _, err := SNIPS([]Sample{{Reward: 1, Propensity: 0.5, Target: 0}}, Options{}); !errors.Is(err, ErrNoOverlap) {
		t.Errorf("no overlap: %v", err)
	}
	if _, err := DR([]Sample{{Reward: 1, Propensity: 0.5, Target: 1, Predicted: math.NaN()}}, Options{}); err == nil {
		t.Error("NaN prediction accepted")
	}
}

func TestMeanReward(t *testing.T) {
	m := NewMeanReward[string](0)
	if m.Predict("x") != 0 {
		t.Fatal("empty model predicts non-zero")
	}
	m.Add("a", 1)
	m.Add("a", 0)
	m.Add("b", 1)
	near(t, "global", m.Global(), 2.0/3)
	near(t, "per key", m.Predict("a"), 0.5)
	near(t, "unseen key falls back to global", m.Predict("c"), 2.0/3)
	m.Prior = 1
	near(t, "shrunk", m.Predict("a"), (1+2.0/3)/3)
	var zero MeanReward[int]
	zero.Add(1, 2)
	near(t, "zero value usable", zero.Predict(1), 2)
}

// bandit is a contextual bandit with three contexts and four actions whose
// rewards are Bernoulli(q[c][a]). The logging policy is ε-greedy (ε = 0.4)
// on a mediocre action per context, with known propensities; the target is
// ε-greedy (ε = 0.2) on a different action, so its value differs clearly
// from the logging policy's.
type bandit struct {
	pc     []float64
	q      [][]float64
	logG   []int
	logEps float64
	tgtG   []int
	tgtEps float64
}

var testBandit = bandit{
	pc:     []float64{0.5, 0.3, 0.2},
	q:      [][]float64{{0.1, 0.5, 0.2, 0.7}, {0.6, 0.2, 0.3, 0.1}, {0.3, 0.3, 0.9, 0.2}},
	logG:   []int{1, 1, 0},
	logEps: 0.4,
	tgtG:   []int{3, 0, 2},
	tgtEps: 0.2,
}

func epsGreedy(g, a, nA int, eps float64) float64 {
	p := eps / float64(nA)
	if a == g {
		p += 1 - eps
	}
	return p
}

func (b *bandit) mu(c, a int) float64 { return epsGreedy(b.logG[c], a, len(b.q[c]), b.logEps) }
func (b *bandit) pi(c, a int) float64 { return epsGreedy(b.tgtG[c], a, len(b.q[c]), b.tgtEps) }

// trueValue is the target's exact expected reward Σ_c p(c) Σ_a π(a|c) q(c,a).
func (b *bandit) trueValue() float64 {
	v := 0.0
	for c, p := range b.pc {
		for a := range b.q[c] {
			v += p * b.pi(c, a) * b.q[c][a]
		}
	}
	return v
}

func draw(rng *rand.Rand, probs func(int) float64, n int) int {
	u, acc := rng.Float64(), 0.0
	for i := 0; i < n; i++ {
		acc += probs(i)
		if u < acc {
			return i
		}
	}
	return n - 1
}

// logs draws n logged decisions and turns them into samples; with draws > 0
// the target probability is the share of that many draws from π instead of
// π itself, as replay's off-policy evaluation does for engine policies.
func (b *bandit) logs(seed uint64, n, draws int) []Sample {
	rng := rand.New(rand.NewPCG(seed, 99))
	type rec struct {
		c, a int
		r    float64
	}
	recs := make([]rec, n)
	model := NewMeanReward[[2]int](0)
	for i := range recs {
		c := draw(rng, func(c int) float64 { return b.pc[c] }, len(b.pc))
		a := draw(rng, func(a int) float64 { return b.mu(c, a) }, len(b.q[c]))
		r := 0.0
		if rng.Float64() < b.q[c][a] {
			r = 1
		}
		recs[i] = rec{c, a, r}
		model.Add([2]int{c, a}, r)
	}
	out := make([]Sample, n)
	for i, x := range recs {
		s := Sample{Reward: x.r, Propensity: b.mu(x.c, x.a), Predicted: model.Predict([2]int{x.c, x.a})}
		if draws > 0 {
			hits := 0
			for range draws {
				a := draw(rng, func(a int) float64 { return b.pi(x.c, a) }, len(b.q[x.c]))
				if a == x.a {
					hits++
				}
				s.TargetPredicted += model.Predict([2]int{x.c, a}) / float64(draws)
			}
			s.Target = float64(hits) / float64(draws)
		} else {
			s.Target = b.pi(x.c, x.a)
			for a := range b.q[x.c] {
				s.TargetPredicted += b.pi(x.c, a) * model.Predict([2]int{x.c, a})
			}
		}
		out[i] = s
	}
	return out
}

var estimators = []struct {
	name string
	f    func([]Sample, Options) (Estimate, error)
}{{"IPS", IPS}, {"SNIPS", SNIPS}, {"DR", DR}}

func TestEstimatorsRecoverTrueValue(t *testing.T) {
	b := testBandit
	truth := b.trueValue()
	logged := 0.0
	for c, p := range b.pc {
		for a := range b.q[c] {
			logged += p * b.mu(c, a) * b.q[c][a]
		}
	}
	t.Logf("true target value %.4f (logging policy %.4f)", truth, logged)
	samples := b.logs(1, 5000, 0)
	for _, e := range estimators {
		est, err := e.f(samples, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-5s %.4f [%.4f, %.4f]", e.name, est.Value, est.Lo, est.Hi)
		if !est.Covers(truth) {
			t.Errorf("%s interval [%v, %v] misses the true value %v", e.name, est.Lo, est.Hi, truth)
		}
		if est.Covers(logged) {
			t.Errorf("%s interval [%v, %v] cannot tell the target from the logging policy (%v)", e.name, est.Lo, est.Hi, logged)
		}
	}
}

// Over many seeds each 95% interval must cover the true value about 95% of
// the time; ≥ 85% leaves room for the binomial noise of 50 trials (and for
// SNIPS's delta method and DR's in-sample reward model, which are
// approximations). The same holds when the target probability is the share
// of a few Monte Carlo draws, as in replay.OffPolicy.
func TestEstimatorCoverageRate(t *testing.T) {
	b := testBandit
	truth := b.trueValue()
	const seeds = 50
	for _, draws := range []int{0, 5} {
		covered := make([]int, len(estimators))
		for seed := uint64(0); seed < seeds; seed++ {
			samples := b.logs(100+seed, 2000, draws)
			for j, e := range estimators {
				est, err := e.f(samples, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if est.Covers(truth) {
					covered[j]++
				}
			}
		}
		for j, e := range estimators {
			rate := float64(covered[j]) / seeds
			t.Logf("draws=%d %-5s coverage %.2f", draws, e.name, rate)
			if rate < 0.85 {
				t.Errorf("draws=%d: %s covers the true value in %.0f%% of %d seeds, want ≥ 85%%", draws, e.name, 100*rate, seeds)
			}
		}
	}
}

package intent

import (
	"math"
	"testing"
)

func TestUserPropensity(t *testing.T) {
	explorer, exploiter := RhoPosterior{}, RhoPosterior{}
	for range 8 {
		explorer.Fold(SessionEvidenceCap)
		exploiter.Fold(-SessionEvidenceCap)
	}
	tests := []struct {
		name   string
		rho    RhoPosterior
		lo, hi float64
	}{
		{"no evidence is the prior mean", RhoPosterior{}, 0.25, 0.25},
		{"eight exploring sessions", explorer, 0.6, 0.95},
		{"eight exploiting sessions", exploiter, 0.01, 0.15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DefaultPrior.UserPropensity(Observations{Rho: tc.rho})
			if got < tc.lo-1e-12 || got > tc.hi+1e-12 {
				t.Fatalf("got %v, want in [%v, %v]", got, tc.lo, tc.hi)
			}
		})
	}
}

func TestStateFallsBackToUserLevelWithoutSessionClicks(t *testing.T) {
	o := Observations{NovelClicks: 8, FamiliarClicks: 2}
	o.Rho.Fold(3)
	x := DefaultPrior.State(nil, o)
	m := DefaultPrior.UserPropensity(o)
	if x[FSessRecentNovelty] != m || x[FSessNovelRate] != m {
		t.Fatalf("session features %v, %v; want the user propensity %v", x[FSessRecentNovelty], x[FSessNovelRate], m)
	}
	o.SessionClicks, o.SessionNovelEWMA = 3, 0.1
	x = DefaultPrior.State(x, o)
	if x[FSessRecentNovelty] != 0.1 {
		t.Fatalf("recent novelty %v, want 0.1", x[FSessRecentNovelty])
	}
	for i, v := range x {
		if v < 0 || v > 1 {
			t.Errorf("%s = %v outside [0,1]", FeatureNames[i], v)
		}
	}
}

func TestPriorPolicyFollowsSessionNovelty(t *testing.T) {
	p := NewPolicy(DefaultLevels, DefaultKappa)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// The prior stays at the lowest level until the session's evidence
	// is strong, so the propensity must not fall and must end far above
	// where it started.
	prev, first := -1.0, 0.0
	for i, ewma := range []float64{0, 0.25, 0.5, 0.75, 1} {
		// Five clicks on items this much more novel than their slates.
		ev := 5 * DefaultModeModel().ClickEvidence(ewma-0.5, 0.5)
		x := p.Prior.State(nil, Observations{SessionClicks: 5, SessionNovelEWMA: ewma, SessionNovelClicks: 5 * ewma, SessionEvidence: ev})
		probs := p.Distribution(nil, x)
		sum := 0.0
		for _, q := range probs {
			sum += q
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Fatalf("distribution sums to %v", sum)
		}
		sp := SessionPropensity(probs)
		if sp < prev {
			t.Fatalf("session propensity %v at novelty %v falls below %v", sp, ewma, prev)
		}
		if i == 0 {
			first = sp
		}
		prev = sp
	}
	if prev < first+0.5 {
		t.Fatalf("session propensity rises only from %v to %v", first, prev)
	}
}

func TestUpdateMovesTowardRewardedLevel(t *testing.T) {
	p := NewPolicy(DefaultLevels, DefaultKappa)
	x := p.Prior.State(nil, Observations{SessionClicks: 2, SessionNovelEWMA: 0.2})
	before := p.Distribution(nil, x)[4]
	for i := 0; i < 200; i++ {
		probs := p.Distribution(nil, x)
		for z := range probs {
			ret := 0.0
			if z == 4 {
				ret = 1
			}
			p.Update(x, z, probs[z], ret, Step{LR: 0.05, BaselineLR: 0.05, Clip: 5})
		}
	}
	after := p.Distribution(nil, x)[4]
	if after <= before+0.2 {
		t.Fatalf("π(top level) went from %v to %v; want a clear rise", before, after)
	}
	if math.Abs(p.Baseline(x)-0.2) > 0.15 {
		t.Errorf("baseline %v; want near the mean return 0.2", p.Baseline(x))
	}
}

func TestValidateRejectsBrokenPolicies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Policy)
	}{
		{"no levels", func(p *Policy) { p.Levels = nil }},
		{"short T", func(p *Policy) { p.T = p.T[1:] }},
		{"short Q", func(p *Policy) { p.Q = make([]float64, 3) }},
		{"NaN critic", func(p *Policy) {
			p.Update(make([]float64, Dim), 0, 0.5, 1, Step{LR: 0.01, BaselineLR: 0.01, Clip: 5})
			p.QP[0] = math.NaN()
		}},
		{"zero kappa", func(p *Policy) { p.Kappa = 0 }},
		{"short b", func(p *Policy) { p.B = p.B[1:] }},
		{"short V", func(p *Policy) { p.V = p.V[1:] }},
		{"NaN weight", func(p *Policy) { p.T[3] = math.NaN() }},
		{"bad prior", func(p *Policy) { p.Prior.Alpha = 0 }},
		{"bad share", func(p *Policy) { p.Levels[1].NovelShare = 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPolicy(DefaultLevels, DefaultKappa)
			tc.mutate(p)
			if p.Validate() == nil {
				t.Fatal("Validate accepted a broken policy")
			}
		})
	}
}

func TestEntropy(t *testing.T) {
	tests := []struct {
		counts []float64
		want   float64
	}{
		{nil, 0},
		{[]float64{0, 0, 0}, 0},
		{[]float64{5, 0, 0, 0}, 0},
		{[]float64{1, 1, 1, 1}, 1},
		{[]float64{1, 1, 0, 0}, 0.5},
	}
	for _, tc := range tests {
		if got := Entropy(tc.counts); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Entropy(%v) = %v, want %v", tc.counts, got, tc.want)
		}
	}
}

func TestSample(t *testing.T) {
	probs := []float64{0.2, 0.5, 0.3}
	for _, tc := range []struct {
		u    float64
		want int
	}{{0, 0}, {0.19, 0}, {0.2, 1}, {0.69, 1}, {0.7, 2}, {0.9999, 2}} {
		if got := Sample(probs, tc.u); got != tc.want {
			t.Errorf("Sample(%v) = %d, want %d", tc.u, got, tc.want)
		}
	}
}

func TestNovelPreferenceFollowsEvidence(t *testing.T) {
	const m = 0.3
	mm := DefaultModeModel()
	if got := NovelPreference(Observations{}, m); math.Abs(got-m) > 1e-12 {
		t.Errorf("no evidence: %v, want the user-level %v", got, m)
	}
	// Two sessions without a single click: one passed over the novel
	// items of mixed slates, the other over the familiar ones.
	skipNovel := NovelPreference(Observations{SessionEvidence: 6 * mm.SkipEvidence(0.5, 0.5)}, m)
	skipFamiliar := NovelPreference(Observations{SessionEvidence: 6 * mm.SkipEvidence(-0.5, 0.5)}, m)
	if !(skipNovel < m && skipFamiliar > m) {
		t.Errorf("skipping novel items: %v, skipping familiar ones: %v; want below and above %v", skipNovel, skipFamiliar, m)
	}
	// Clicking novel items and skipping familiar ones is the strongest sign.
	o := Observations{SessionEvidence: 2*mm.ClickEvidence(0.5, 0.5) + 4*mm.SkipEvidence(-0.5, 0.5)}
	if seeking := NovelPreference(o, m); seeking < 0.8 {
		t.Errorf("novelty-seeking session: %v, want ≥ 0.8", seeking)
	}
	x := DefaultPrior.State(nil, o)
	if x[FSessNovelPreference] < 0.8 || x[FSessNovelPreference] > 1 {
		t.Errorf("state feature %v", x[FSessNovelPreference])
	}
}

func TestTargetStaysNearTheLevels(t *testing.T) {
	p := NewPolicy(DefaultLevels, DefaultKappa)
	x := p.Prior.State(nil, Observations{SessionClicks: 5, SessionNovelEWMA: 1, SessionEvidence: 3})
	raw0 := p.rawTarget(x)
	// Reward only the top level, many times: the target may pass the top
	// level by one level's width, not run off to certainty.
	for range 5000 {
		ret := 0.0
		probs := p.Distribution(nil, x)
		z := Argmax(probs)
		if z == p.K()-1 {
			ret = 1
		}
		p.Update(x, z, probs[z], ret, Step{LR: 0.05, BaselineLR: 0.05, Clip: 5})
		p.Update(x, p.K()-1, probs[p.K()-1], 1, Step{LR: 0.05, BaselineLR: 0.05, Clip: 5})
	}
	if tg := p.Target(x); tg > 1.25+1e-12 {
		t.Errorf("target %v beyond one level past the top", tg)
	}
	if raw := p.rawTarget(x); raw > max(raw0, 1.5) {
		t.Errorf("raw target ran off to %v", raw)
	}
	if probs := p.Distribution(nil, x); probs[p.K()-1] < 0.7 {
		t.Errorf("top level has π = %v after rewarding only it", probs[p.K()-1])
	}
}

func TestHistoryLengthInvertsActivity(t *testing.T) {
	for _, n := range []int{0, 1, 7, 50, 199, 200, 5000} {
		st := Prior{}.State(nil, Observations{HistoryLen: n})
		want := float64(min(n, ActivityCap))
		if got := HistoryLength(st); got != want {
			t.Errorf("history %d: HistoryLength = %v, want %v", n, got, want)
		}
	}
	if HistoryLength([]float64{1}) != 0 {
		t.Error("a state of another dimension gave a length")
	}
}

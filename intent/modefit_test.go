package intent

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// plantSessions logs sessions of users whose ρ_u ~ Beta(a, b) under the
// planted click model: each session draws its mode from ρ_u, and each slate
// of ten items, each novel with a probability drawn from shares (a policy
// varies the novel share by slate), is scanned top-down by a
// cascade that goes on past an item with probability planted.Examine, or
// ExamineClick after a click.
func plantSessions(l *ModeLog, planted ModeModel, a, b float64, shares []float64, users int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for u := range users {
		rho := betaSample(rng, a, b)
		uid := "u" + strconv.Itoa(u)
		for s := range 1 + rng.IntN(6) {
			explore := rng.Float64() < rho
			sid := "s" + strconv.Itoa(s)
			for range 1 + rng.IntN(4) {
				nov := make([]float64, 10)
				clicked := make([]bool, 10)
				share := shares[rng.IntN(len(shares))]
				for k := range nov {
					if rng.Float64() < share {
						nov[k] = 0.6 + 0.4*rng.Float64()
					} else {
						nov[k] = 0.3 * rng.Float64()
					}
				}
				c := 0.0
				for _, v := range nov {
					c += v / 10
				}
				for k := range nov {
					e, x := planted.logits(nov[k]-c, 1-c)
					z := x
					if explore {
						z = e
					}
					clicked[k] = rng.Float64() < sigmoid(z)
					next := planted.Examine
					if clicked[k] {
						next = planted.ExamineClick
					}
					if rng.Float64() >= next {
						break
					}
				}
				l.Add(uid, sid, 0, nov, clicked)
				// The mode's chain.
				if explore {
					explore = rng.Float64() >= planted.ToExploit
				} else {
					explore = rng.Float64() < planted.ToExplore
				}
			}
		}
	}
}

// betaSample draws from Beta(a, b) as a ratio of gamma variates (integer
// shapes suffice here).
func betaSample(rng *rand.Rand, a, b float64) float64 {
	g := func(k float64) float64 {
		s := 0.0
		for range int(k) {
			s -= math.Log(1 - rng.Float64())
		}
		return s
	}
	x, y := g(a), g(b)
	return x / (x + y)
}

func TestModeFitRecoversPlantedRates(t *testing.T) {
	tests := []struct {
		name    string
		planted ModeModel
		a, b    float64
		// priorTol is how close the prior's mean must come. Where the
		// mode barely matters, sessions barely tell the modes apart and
		// ρ_u's distribution is not identified: the marginal likelihood
		// is flat along it (to 3·10⁻⁴ nats per session here), and
		// nothing served depends on it much. Where it is identified, EM
		// still creeps along the ridge between the prior's mean and
		// Shift (a prior leaning to explore and a shift leaning against
		// novelty explain the clicks almost as well), hence 0.08; so
		// does Routine, a per-mode intercept where slates' familiarity
		// hardly varies.
		priorTol float64
		// shares are the slates' novel shares (nil: 0.4 throughout).
		shares []float64
		// noRoutine fits without Routine (ModeLog.FitRoutine false, the
		// learner's default): it must stay exactly 0.
		noRoutine bool
	}{
		{"strong mode, novelty costs everyone", ModeModel{Base: -1, Shift: -1, Contrast: 2, Examine: 0.8, ExamineClick: 0.5}, 2, 3, 0.06, nil, false},
		{"weak mode", ModeModel{Base: -1.5, Shift: -1.5, Contrast: 0.5, Examine: 0.8, ExamineClick: 0.5}, 2, 3, math.Inf(1), nil, false},
		{"symmetric, mostly exploring", ModeModel{Base: 0, Shift: 0, Contrast: 1.5, Examine: 0.6, ExamineClick: 0.9}, 3, 1, 0.08, nil, false},
		{"modes switch within sessions", ModeModel{Base: -1, Shift: -1, Contrast: 2, ToExploit: 0.2, ToExplore: 0.1, Examine: 0.8, ExamineClick: 0.5}, 2, 3, 0.08, nil, false},
		{"explorers shun familiar slates", ModeModel{Base: -1, Shift: -1, Contrast: 1.5, Routine: 1.2, Examine: 0.8, ExamineClick: 0.5}, 2, 3, 0.08, []float64{0, 0.2, 0.4, 0.6}, false},
		{"routine not fitted", ModeModel{Base: -1, Shift: -1, Contrast: 2, Examine: 0.8, ExamineClick: 0.5}, 2, 3, 0.06, []float64{0, 0.2, 0.4, 0.6}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each fit is seconds of work, and independent
			l := NewModeLog(1 << 20)
			l.FitRoutine, l.FitSwitch = !tc.noRoutine, true
			shares := tc.shares
			if shares == nil {
				shares = []float64{0.4}
			}
			plantSessions(l, tc.planted, tc.a, tc.b, shares, 1200, 11)
			start := DefaultModeModel()
			m, p, st, ok := l.Fit(start, DefaultPrior, 120)
			if !ok {
				t.Fatalf("no fit on %+v", st)
			}
			t.Logf("fitted %+v prior %+v (mean %.3f) from %+v", m, p, p.Alpha/(p.Alpha+p.Beta), st)
			mean := p.Alpha / (p.Alpha + p.Beta)
			plantedMean := tc.a / (tc.a + tc.b)
			checks := []struct {
				name      string
				got, want float64
				tol       float64
			}{
				{"contrast", m.Contrast, tc.planted.Contrast, 0.25},
				{"continuation after a skip", m.Examine, tc.planted.Examine, 0.03},
				{"continuation after a click", m.ExamineClick, tc.planted.ExamineClick, 0.05},
				// The population's slope: what every user does with
				// novelty on average, identified whatever the mode.
				{"mean slope", m.Shift + (2*mean-1)*m.Contrast, tc.planted.Shift + (2*plantedMean-1)*tc.planted.Contrast, 0.15},
			}
			if !math.IsInf(tc.priorTol, 1) {
				checks = append(checks, []struct {
					name      string
					got, want float64
					tol       float64
				}{
					{"prior mean", mean, plantedMean, tc.priorTol},
					{"shift", m.Shift, tc.planted.Shift, 0.3},
					// A per-mode intercept: along the same ridge.
					{"routine", m.Routine, tc.planted.Routine, 0.25},
					{"switch to exploiting", m.ToExploit, tc.planted.ToExploit, 0.05},
					{"switch to exploring", m.ToExplore, tc.planted.ToExplore, 0.05},
				}...)
			}
			for _, c := range checks {
				if math.Abs(c.got-c.want) > c.tol {
					t.Errorf("%s: fitted %.3f, planted %.3f", c.name, c.got, c.want)
				}
			}
			if tc.noRoutine && m.Routine != 0 {
				t.Errorf("routine %v fitted, want it held at 0", m.Routine)
			}
			if err := m.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestModeFitNeedsEnoughData(t *testing.T) {
	l := NewModeLog(1 << 20)
	plantSessions(l, DefaultModeModel(), 2, 3, []float64{0.4}, 20, 3)
	m, p, _, ok := l.Fit(DefaultModeModel(), DefaultPrior, 10)
	if ok || m != DefaultModeModel() || p != DefaultPrior {
		t.Fatalf("fit moved on a small window: %+v %+v", m, p)
	}
}

func TestModeLogKeepsItsBudget(t *testing.T) {
	l := NewModeLog(5000)
	plantSessions(l, DefaultModeModel(), 2, 3, []float64{0.4}, 2000, 5)
	if l.items > 5000 || l.items < 2500 {
		t.Fatalf("window holds %d items, budget 5000", l.items)
	}
	n := 0
	for _, s := range l.sessions {
		n += len(s.obs)
	}
	if n != l.items {
		t.Fatalf("counted %d items, sessions hold %d", l.items, n)
	}
	for key, i := range l.open {
		if s := l.sessions[i]; key != s.user+"\x00"+s.id {
			t.Fatalf("key %q points at session %q/%q", key, s.user, s.id)
		}
	}
}

func TestModeLogSplitsIdleSessions(t *testing.T) {
	l := NewModeLog(100)
	slate := func(ts int64) { l.Add("u", "", ts, []float64{0, 1}, []bool{false, true}) }
	slate(0)
	slate(IdleGap / 2)
	slate(IdleGap/2 + IdleGap + 1)
	if len(l.sessions) != 2 {
		t.Fatalf("%d sessions, want 2", len(l.sessions))
	}
}

// BenchmarkModeFit is one refit of the trainer's default window (50,000
// shown items) with its default warm-started iterations (4).
func BenchmarkModeFit(b *testing.B) {
	l := NewModeLog(50_000)
	plantSessions(l, ModeModel{Base: -1, Shift: -1, Contrast: 2, Examine: 0.8, ExamineClick: 0.5}, 2, 3, []float64{0.4}, 3000, 1)
	b.ReportMetric(float64(l.items), "items")
	for b.Loop() {
		l.Fit(DefaultModeModel(), DefaultPrior, 4)
	}
}

// TestModeFitStaysBounded checks that a window the two-mode model cannot
// describe (clicks that follow novelty two-thousand-fold whatever the
// mode) gives a bounded model, not one that reads every click as proof.
func TestModeFitStaysBounded(t *testing.T) {
	l := NewModeLog(1 << 20)
	plantSessions(l, ModeModel{Base: -3, Shift: 8, Contrast: 1, Examine: 0.8, ExamineClick: 0.5}, 2, 3, []float64{0.4}, 400, 9)
	m, _, _, ok := l.Fit(DefaultModeModel(), DefaultPrior, 40)
	if !ok {
		t.Fatal("no fit")
	}
	if math.Abs(m.Shift) > fitBound || m.Contrast > fitBound || m.Base < -2*fitBound || m.Base > fitBound {
		t.Fatalf("fitted %+v beyond the bounds ±%d", m, fitBound)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestModeFitTestsNovelty checks the fit's verdict on whether novelty pays
// (NoveltyPays, by NoveltySE) on planted sessions where the answer is
// plain, over several samples: explorers who favour novel items, and
// explorers to whom novel items are worth less than familiar ones (a weak
// mode in which novelty costs everyone). Explorers indifferent to novelty
// are left out on purpose: there the fits' taste for novelty lands 0.1 to
// 0.7 above zero (the prior's mean read low, along the ridge of
// TestModeFitRecoversPlantedRates) and the verdict goes either way.
func TestModeFitTestsNovelty(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted ModeModel
		pays    bool
	}{
		{"explorers favour novel items", ModeModel{Base: -1.2, Shift: -1, Contrast: 2, Examine: 0.8, ExamineClick: 0.5}, true},
		{"novelty costs explorers too", ModeModel{Base: -1.2, Shift: -1.5, Contrast: 0.5, Examine: 0.8, ExamineClick: 0.5}, false},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", tc.name, seed), func(t *testing.T) {
				t.Parallel()
				l := NewModeLog(1 << 20)
				plantSessions(l, tc.planted, 2, 3, []float64{0.2, 0.4}, 600, seed)
				m, _, st, ok := l.Fit(DefaultModeModel(), DefaultPrior, 40)
				if !ok {
					t.Fatalf("no fit on %+v", st)
				}
				if !(m.NoveltySE > 0) || m.Validate() != nil {
					t.Fatalf("standard error %v of %+v", m.NoveltySE, m)
				}
				if got := m.NoveltyPays(); got != tc.pays {
					t.Errorf("NoveltyPays %v (taste for novelty %.3f ± %.3f), want %v",
						got, m.Shift+m.Contrast, m.NoveltySE, tc.pays)
				}
			})
		}
	}
}

// TestModeFitHoldsSwitchesWithoutFitSwitch: without FitSwitch a fit keeps
// a session in its mode (switch rates 0) even where the planted sessions
// switch, and still recovers the click model's contrast.
func TestModeFitHoldsSwitchesWithoutFitSwitch(t *testing.T) {
	planted := ModeModel{Base: -1, Shift: -1, Contrast: 2, ToExploit: 0.2, ToExplore: 0.1, Examine: 0.8, ExamineClick: 0.5}
	l := NewModeLog(1 << 20)
	plantSessions(l, planted, 2, 3, []float64{0.4}, 600, 5)
	m, _, st, ok := l.Fit(DefaultModeModel(), DefaultPrior, 40)
	if !ok {
		t.Fatalf("no fit on %+v", st)
	}
	if m.ToExploit != 0 || m.ToExplore != 0 {
		t.Errorf("switch rates %v, %v fitted without FitSwitch", m.ToExploit, m.ToExplore)
	}
	if m.Contrast < 1 || m.Validate() != nil {
		t.Errorf("fitted %+v", m)
	}
}

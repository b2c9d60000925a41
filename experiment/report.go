package experiment

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Aggregates are one variant's sufficient statistics, maintained by the
// trainer from the event stream, from which every metric of the report and
// its interval follow without keeping raw events.
type Aggregates struct {
	// Users saw at least one impression; ReturningUsers had a second session.
	Users, ReturningUsers int64
	Impressions           int64
	// ClickedImpressions had at least one click; Clicks counts all clicks.
	ClickedImpressions, Clicks, NovelClicks int64
	// ILDSum and ILDSumSq sum the slates' intra-list diversity and its
	// square over ILDN slates (those whose items the catalog knew).
	ILDSum, ILDSumSq float64
	ILDN             int64
	// Sessions sums sessions per user; SessionsSumSq their squares.
	Sessions      int64
	SessionsSumSq float64
	// CUPED (Deng et al., 2013) of clicks per user. Per user, Y is the
	// user's clicks in the experiment and X the pre-period covariate, the
	// user's history length at first exposure (intent.HistoryLength of the
	// logged state); the sums run over users: ΣX, ΣX², ΣY² and ΣXY (ΣY is
	// Clicks).
	PreSum, PreSumSq, UserClicksSumSq, PreClicksSum float64
	// Per-user sums for the ratio metrics' variance. Users are the unit of
	// randomisation and their impressions are not independent (an active
	// user clicks many of theirs), so the CTR's and the novel-click rate's
	// intervals and tests use the delta method over users (Deng et al.,
	// 2018) rather than a binomial over impressions, which is too
	// confident. Per user N = impressions, C = clicked impressions, K =
	// clicks (ΣK² is UserClicksSumSq), V = novel clicks; the sums of N², C²,
	// CN, V² and VK. Aggregates without them (all zero) fall back to the
	// binomial.
	UserImpressionsSumSq, UserClickedSumSq, UserClickedImpressionsSum float64
	UserNovelSumSq, UserNovelClicksSum                                float64
}

// Plus returns the field-by-field sum of a and b: the aggregates of two
// disjoint sets of users (every field is a sum over users or their slates),
// such as the partitions of a variant's partitioned trainer.
func (a Aggregates) Plus(b Aggregates) Aggregates {
	return Aggregates{
		Users: a.Users + b.Users, ReturningUsers: a.ReturningUsers + b.ReturningUsers,
		Impressions:        a.Impressions + b.Impressions,
		ClickedImpressions: a.ClickedImpressions + b.ClickedImpressions, Clicks: a.Clicks + b.Clicks,
		NovelClicks: a.NovelClicks + b.NovelClicks,
		ILDSum:      a.ILDSum + b.ILDSum, ILDSumSq: a.ILDSumSq + b.ILDSumSq, ILDN: a.ILDN + b.ILDN,
		Sessions: a.Sessions + b.Sessions, SessionsSumSq: a.SessionsSumSq + b.SessionsSumSq,
		PreSum: a.PreSum + b.PreSum, PreSumSq: a.PreSumSq + b.PreSumSq,
		UserClicksSumSq: a.UserClicksSumSq + b.UserClicksSumSq, PreClicksSum: a.PreClicksSum + b.PreClicksSum,
		UserImpressionsSumSq:      a.UserImpressionsSumSq + b.UserImpressionsSumSq,
		UserClickedSumSq:          a.UserClickedSumSq + b.UserClickedSumSq,
		UserClickedImpressionsSum: a.UserClickedImpressionsSum + b.UserClickedImpressionsSum,
		UserNovelSumSq:            a.UserNovelSumSq + b.UserNovelSumSq,
		UserNovelClicksSum:        a.UserNovelClicksSum + b.UserNovelClicksSum,
	}
}

// ratioStats are a ratio metric's value and the delta-method variance of
// it, from per-user sums of numerator A and denominator B: R = ΣA/ΣB,
// Var(R) ≈ (Var(A) − 2R·Cov(A,B) + R²·Var(B)) / (n·B̄²). ok is false when
// the per-user sums are missing.
func ratioStats(sumA, sumB, sumA2, sumB2, sumAB float64, n int64) (r, v float64, ok bool) {
	if n < 2 || sumB == 0 || sumB2 == 0 {
		return 0, 0, false
	}
	nn := float64(n)
	r = sumA / sumB
	va := (sumA2 - sumA*sumA/nn) / (nn - 1)
	vb := (sumB2 - sumB*sumB/nn) / (nn - 1)
	cov := (sumAB - sumA*sumB/nn) / (nn - 1)
	mb := sumB / nn
	v = math.Max(0, (va-2*r*cov+r*r*vb)/(nn*mb*mb))
	return r, v, true
}

func (a Aggregates) ctrStats() (r, v float64, ok bool) {
	return ratioStats(float64(a.ClickedImpressions), float64(a.Impressions), a.UserClickedSumSq, a.UserImpressionsSumSq, a.UserClickedImpressionsSum, a.Users)
}

func (a Aggregates) novelStats() (r, v float64, ok bool) {
	return ratioStats(float64(a.NovelClicks), float64(a.Clicks), a.UserNovelSumSq, a.UserClicksSumSq, a.UserNovelClicksSum, a.Users)
}

func (a Aggregates) ildN() int64 {
	if a.ILDN > 0 {
		return a.ILDN
	}
	return a.Impressions
}

// Metric is one row of a variant's report.
type Metric struct {
	Name string `json:"name"`
	// Kind is "count", "proportion" or "mean": it decides the interval and test.
	Kind  string  `json:"kind"`
	Value float64 `json:"value"`
	Low   float64 `json:"ci_low"`
	High  float64 `json:"ci_high"`
	N     float64 `json:"n"`
	// Lift is (variant − control)/control, with the p-value of the
	// difference (two-proportion z test or Welch's t test); absent for
	// control and counts.
	Lift   *float64 `json:"lift,omitempty"`
	PValue *float64 `json:"p_value,omitempty"`
	// PAdjusted is the Bonferroni-adjusted p-value when several variants
	// are compared with control.
	PAdjusted *float64 `json:"p_adjusted,omitempty"`
}

// VariantReport is one variant's metrics.
type VariantReport struct {
	Name    string   `json:"name"`
	Share   float64  `json:"share"`
	Control bool     `json:"control"`
	Metrics []Metric `json:"metrics"`
}

// SRM is the sample-ratio-mismatch check: users per variant against the
// configured shares, chi-square with K−1 degrees of freedom.
type SRM struct {
	ChiSquare float64 `json:"chi_square"`
	PValue    float64 `json:"p_value"`
	// Mismatch is set below p = 0.001, the usual alarm threshold: the
	// assignment or the logging is broken and no lift should be trusted.
	Mismatch bool `json:"mismatch"`
}

// Report is the experiment's analysis.
type Report struct {
	Experiment string          `json:"experiment"`
	Control    string          `json:"control"`
	Variants   []VariantReport `json:"variants"`
	SRM        SRM             `json:"srm"`
	Notes      []string        `json:"notes,omitempty"`
}

const z95 = 1.959963984540054

// BuildReport computes the report from per-variant aggregates; a variant
// without aggregates counts as empty.
func BuildReport(cfg *Config, aggs map[string]Aggregates) Report {
	r := Report{Experiment: cfg.Name, Control: cfg.Control}
	ctrl := aggs[cfg.Control]
	cu := newCUPED(cfg, aggs)
	treatments := len(cfg.Variants) - 1
	for _, v := range cfg.Variants {
		a := aggs[v.Name]
		vr := VariantReport{Name: v.Name, Share: v.Share, Control: v.Name == cfg.Control}
		vr.Metrics = []Metric{
			count("users", a.Users),
			count("impressions", a.Impressions),
			count("clicks", a.Clicks),
			ratioMetric("ctr", a.ClickedImpressions, a.Impressions, a.ctrStats),
			ratioMetric("novel_click_rate", a.NovelClicks, a.Clicks, a.novelStats),
			mean("mean_ild", a.ILDSum, a.ILDSumSq, float64(a.ildN())),
			proportion("return_rate", a.ReturningUsers, a.Users),
			mean("sessions_per_user", float64(a.Sessions), a.SessionsSumSq, float64(a.Users)),
			mean("clicks_per_user", float64(a.Clicks), a.UserClicksSumSq, float64(a.Users)),
			cu.metric(a),
		}
		if !vr.Control {
			compare(vr.Metrics, ctrl, a, treatments, cu)
		}
		r.Variants = append(r.Variants, vr)
	}
	r.SRM = srm(cfg, aggs)
	if r.SRM.Mismatch {
		r.Notes = append(r.Notes, fmt.Sprintf("sample ratio mismatch (chi-square p = %.2g): users are not split as configured; do not trust the lifts until the cause is found", r.SRM.PValue))
	}
	if treatments > 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d variants are compared with control on %d metrics each: p_adjusted applies Bonferroni (×%d); at α = 0.05 call a difference only when p_adjusted < 0.05", treatments, comparedMetrics, treatments))
	}
	return r
}

func count(name string, n int64) Metric {
	x := float64(n)
	half := z95 * math.Sqrt(x) // Poisson
	return Metric{Name: name, Kind: "count", Value: x, Low: math.Max(0, x-half), High: x + half, N: x}
}

// ratioMetric is a proportion of events pooled over users (k/n): with the
// per-user sums, a delta-method interval over users clipped to [0,1];
// without them, or when the users show no spread at all (every user at 0 or
// at 1, where the delta method's interval collapses to a point), the Wilson
// interval of proportion.
func ratioMetric(name string, k, n int64, stats func() (float64, float64, bool)) Metric {
	r, v, ok := stats()
	if !ok || v == 0 {
		return proportion(name, k, n)
	}
	half := z95 * math.Sqrt(v)
	return Metric{Name: name, Kind: "proportion", Value: r, Low: math.Max(0, r-half), High: math.Min(1, r+half), N: float64(n)}
}

// ratioTest is the two-sided p-value of the difference of two ratio
// metrics by the delta method over users, or the pooled two-proportion z
// test when either side lacks per-user sums or neither shows any spread.
func ratioTest(a, c func() (float64, float64, bool), k1, n1, k2, n2 int64) float64 {
	r1, v1, ok1 := a()
	r2, v2, ok2 := c()
	se := math.Sqrt(v1 + v2)
	if !ok1 || !ok2 || se == 0 {
		return TwoProportion(k1, n1, k2, n2)
	}
	return 2 * distuv.UnitNormal.Survival(math.Abs(r1-r2)/se)
}

// proportion is k/n with a Wilson score interval, which stays inside [0,1]
// and behaves for small n.
func proportion(name string, k, n int64) Metric {
	m := Metric{Name: name, Kind: "proportion", N: float64(n)}
	if n == 0 {
		return m
	}
	p := float64(k) / float64(n)
	nn := float64(n)
	den := 1 + z95*z95/nn
	center := (p + z95*z95/(2*nn)) / den
	half := z95 * math.Sqrt(p*(1-p)/nn+z95*z95/(4*nn*nn)) / den
	m.Value, m.Low, m.High = p, math.Max(0, center-half), math.Min(1, center+half)
	if k == 0 {
		m.Low = 0 // exact: rounding leaves ~1e-18
	}
	if k == n {
		m.High = 1
	}
	return m
}

// mean is sum/n with a t interval from the sum of squares.
func mean(name string, sum, sumSq, n float64) Metric {
	if n == 0 {
		return Metric{Name: name, Kind: "mean"}
	}
	return meanVar(name, sum/n, variance(sum, sumSq, n), n)
}

// meanVar is a mean mu of n observations with sample variance v, with its t
// interval.
func meanVar(name string, mu, v, n float64) Metric {
	m := Metric{Name: name, Kind: "mean", N: n}
	if n == 0 {
		return m
	}
	m.Value, m.Low, m.High = mu, mu, mu
	if n > 1 {
		se := math.Sqrt(v / n)
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
		m.Low, m.High = mu-t*se, mu+t*se
	}
	return m
}

// comparedMetrics is how many metrics per variant get a p-value.
const comparedMetrics = 7

// cuped adjusts clicks per user by the pre-period covariate:
// Ŷ = Ȳ − θ(X̄ − X̄_all), with θ = Cov(X,Y)/Var(X) pooled over all variants.
// X is measured before exposure, so the adjustment leaves the difference
// between variants unbiased and removes the share ρ² of Y's variance that X
// explains: a narrower interval, the same lift.
type cuped struct{ theta, meanX float64 }

func newCUPED(cfg *Config, aggs map[string]Aggregates) cuped {
	var n, sx, sy, sxx, sxy float64
	for _, v := range cfg.Variants {
		a := aggs[v.Name]
		n += float64(a.Users)
		sx += a.PreSum
		sy += float64(a.Clicks)
		sxx += a.PreSumSq
		sxy += a.PreClicksSum
	}
	if n < 2 {
		return cuped{}
	}
	c := cuped{meanX: sx / n}
	if vx := sxx - sx*sx/n; vx > 0 {
		c.theta = (sxy - sx*sy/n) / vx
	}
	return c
}

// stats are a variant's adjusted mean and the sample variance of Y − θX.
func (c cuped) stats(a Aggregates) (mu, v, n float64) {
	n = float64(a.Users)
	if n == 0 {
		return 0, 0, 0
	}
	y, x := float64(a.Clicks), a.PreSum
	mu = y/n - c.theta*(x/n-c.meanX)
	if n > 1 {
		vy := variance(y, a.UserClicksSumSq, n)
		vx := variance(x, a.PreSumSq, n)
		cov := (a.PreClicksSum - x*y/n) / (n - 1)
		v = math.Max(0, vy-2*c.theta*cov+c.theta*c.theta*vx)
	}
	return mu, v, n
}

func (c cuped) metric(a Aggregates) Metric {
	mu, v, n := c.stats(a)
	return meanVar("clicks_per_user_cuped", mu, v, n)
}

func variance(sum, sumSq, n float64) float64 {
	if n < 2 {
		return 0
	}
	return math.Max(0, (sumSq-sum*sum/n)/(n-1))
}

// compare fills lift and p-value of each non-count metric against control.
func compare(ms []Metric, c, a Aggregates, treatments int, cu cuped) {
	for i := range ms {
		m := &ms[i]
		var cv, p float64
		switch m.Name {
		case "ctr":
			cv, p = ratio(c.ClickedImpressions, c.Impressions), ratioTest(a.ctrStats, c.ctrStats, a.ClickedImpressions, a.Impressions, c.ClickedImpressions, c.Impressions)
		case "novel_click_rate":
			cv, p = ratio(c.NovelClicks, c.Clicks), ratioTest(a.novelStats, c.novelStats, a.NovelClicks, a.Clicks, c.NovelClicks, c.Clicks)
		case "return_rate":
			cv, p = ratio(c.ReturningUsers, c.Users), TwoProportion(a.ReturningUsers, a.Users, c.ReturningUsers, c.Users)
		case "mean_ild":
			cv = safeDiv(c.ILDSum, float64(c.ildN()))
			p = Welch(a.ILDSum, a.ILDSumSq, float64(a.ildN()), c.ILDSum, c.ILDSumSq, float64(c.ildN()))
		case "sessions_per_user":
			cv = safeDiv(float64(c.Sessions), float64(c.Users))
			p = Welch(float64(a.Sessions), a.SessionsSumSq, float64(a.Users), float64(c.Sessions), c.SessionsSumSq, float64(c.Users))
		case "clicks_per_user":
			cv = safeDiv(float64(c.Clicks), float64(c.Users))
			p = Welch(float64(a.Clicks), a.UserClicksSumSq, float64(a.Users), float64(c.Clicks), c.UserClicksSumSq, float64(c.Users))
		case "clicks_per_user_cuped":
			m1, v1, n1 := cu.stats(a)
			m2, v2, n2 := cu.stats(c)
			cv, p = m2, welch(m1, v1, n1, m2, v2, n2)
		default:
			continue
		}
		if cv != 0 && !math.IsNaN(p) {
			lift := (m.Value - cv) / cv
			m.Lift = &lift
		}
		if !math.IsNaN(p) {
			m.PValue = &p
			if treatments > 1 {
				adj := math.Min(1, p*float64(treatments))
				m.PAdjusted = &adj
			}
		}
	}
}

func ratio(k, n int64) float64 { return safeDiv(float64(k), float64(n)) }

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// TwoProportion is the two-sided p-value of the pooled two-proportion z test
// of k1/n1 against k2/n2 (NaN when it is undefined).
func TwoProportion(k1, n1, k2, n2 int64) float64 {
	if n1 == 0 || n2 == 0 {
		return math.NaN()
	}
	p1, p2 := float64(k1)/float64(n1), float64(k2)/float64(n2)
	pool := float64(k1+k2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		if p1 == p2 {
			return 1
		}
		return 0
	}
	z := (p1 - p2) / se
	return 2 * distuv.UnitNormal.Survival(math.Abs(z))
}

// Welch is the two-sided p-value of Welch's t test from each sample's sum,
// sum of squares and size, with Welch–Satterthwaite degrees of freedom.
func Welch(sum1, sumSq1, n1, sum2, sumSq2, n2 float64) float64 {
	if n1 < 2 || n2 < 2 {
		return math.NaN()
	}
	return welch(sum1/n1, variance(sum1, sumSq1, n1), n1, sum2/n2, variance(sum2, sumSq2, n2), n2)
}

// welch is Welch's test from each sample's mean, sample variance and size.
func welch(m1, var1, n1, m2, var2, n2 float64) float64 {
	if n1 < 2 || n2 < 2 {
		return math.NaN()
	}
	v1, v2 := var1/n1, var2/n2
	diff := m1 - m2
	if v1+v2 == 0 {
		if diff == 0 {
			return 1
		}
		return 0
	}
	t := diff / math.Sqrt(v1+v2)
	df := (v1 + v2) * (v1 + v2) / (v1*v1/(n1-1) + v2*v2/(n2-1))
	return 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(t))
}

func srm(cfg *Config, aggs map[string]Aggregates) SRM {
	var total float64
	for _, v := range cfg.Variants {
		total += float64(aggs[v.Name].Users)
	}
	var chi float64
	k := 0
	for _, v := range cfg.Variants {
		if v.Share == 0 {
			continue
		}
		k++
		exp := total * v.Share
		d := float64(aggs[v.Name].Users) - exp
		chi += d * d / exp
	}
	if total == 0 || k < 2 {
		return SRM{PValue: 1}
	}
	p := distuv.ChiSquared{K: float64(k - 1)}.Survival(chi)
	return SRM{ChiSquare: chi, PValue: p, Mismatch: p < 0.001}
}

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
	treatments := len(cfg.Variants) - 1
	for _, v := range cfg.Variants {
		a := aggs[v.Name]
		vr := VariantReport{Name: v.Name, Share: v.Share, Control: v.Name == cfg.Control}
		vr.Metrics = []Metric{
			count("users", a.Users),
			count("impressions", a.Impressions),
			count("clicks", a.Clicks),
			proportion("ctr", a.ClickedImpressions, a.Impressions),
			proportion("novel_click_rate", a.NovelClicks, a.Clicks),
			mean("mean_ild", a.ILDSum, a.ILDSumSq, float64(a.ildN())),
			proportion("return_rate", a.ReturningUsers, a.Users),
			mean("sessions_per_user", float64(a.Sessions), a.SessionsSumSq, float64(a.Users)),
		}
		if !vr.Control {
			compare(vr.Metrics, ctrl, a, treatments)
		}
		r.Variants = append(r.Variants, vr)
	}
	r.SRM = srm(cfg, aggs)
	if r.SRM.Mismatch {
		r.Notes = append(r.Notes, fmt.Sprintf("sample ratio mismatch (chi-square p = %.2g): users are not split as configured; do not trust the lifts until the cause is found", r.SRM.PValue))
	}
	if treatments > 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d variants are compared with control on %d metrics each: p_adjusted applies Bonferroni (×%d); at α = 0.05 call a difference only when p_adjusted < 0.05", treatments, 5, treatments))
	}
	return r
}

func count(name string, n int64) Metric {
	x := float64(n)
	half := z95 * math.Sqrt(x) // Poisson
	return Metric{Name: name, Kind: "count", Value: x, Low: math.Max(0, x-half), High: x + half, N: x}
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
	m := Metric{Name: name, Kind: "mean", N: n}
	if n == 0 {
		return m
	}
	mu := sum / n
	m.Value, m.Low, m.High = mu, mu, mu
	if n > 1 {
		se := math.Sqrt(variance(sum, sumSq, n) / n)
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
		m.Low, m.High = mu-t*se, mu+t*se
	}
	return m
}

func variance(sum, sumSq, n float64) float64 {
	if n < 2 {
		return 0
	}
	return math.Max(0, (sumSq-sum*sum/n)/(n-1))
}

// compare fills lift and p-value of each non-count metric against control.
func compare(ms []Metric, c, a Aggregates, treatments int) {
	for i := range ms {
		m := &ms[i]
		var cv, p float64
		switch m.Name {
		case "ctr":
			cv, p = ratio(c.ClickedImpressions, c.Impressions), TwoProportion(a.ClickedImpressions, a.Impressions, c.ClickedImpressions, c.Impressions)
		case "novel_click_rate":
			cv, p = ratio(c.NovelClicks, c.Clicks), TwoProportion(a.NovelClicks, a.Clicks, c.NovelClicks, c.Clicks)
		case "return_rate":
			cv, p = ratio(c.ReturningUsers, c.Users), TwoProportion(a.ReturningUsers, a.Users, c.ReturningUsers, c.Users)
		case "mean_ild":
			cv = safeDiv(c.ILDSum, float64(c.ildN()))
			p = Welch(a.ILDSum, a.ILDSumSq, float64(a.ildN()), c.ILDSum, c.ILDSumSq, float64(c.ildN()))
		case "sessions_per_user":
			cv = safeDiv(float64(c.Sessions), float64(c.Users))
			p = Welch(float64(a.Sessions), a.SessionsSumSq, float64(a.Users), float64(c.Sessions), c.SessionsSumSq, float64(c.Users))
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
	v1, v2 := variance(sum1, sumSq1, n1)/n1, variance(sum2, sumSq2, n2)/n2
	diff := sum1/n1 - sum2/n2
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

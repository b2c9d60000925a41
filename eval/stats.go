package eval

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Confidence is the coverage of every interval this package reports.
const Confidence = 0.95

// Estimate is a point estimate with its 95% confidence interval [Lo, Hi]
// and the number of observations behind it, so that a report can say how
// sure a number is and not only what it is. With fewer than two
// observations the interval is degenerate (Lo = Hi = Value): there is no
// spread to estimate.
type Estimate struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	N     int     `json:"n"`
}

// HalfWidth is half the interval's width, the "±" of a report.
func (e Estimate) HalfWidth() float64 { return (e.Hi - e.Lo) / 2 }

// Covers reports whether x lies in the interval.
func (e Estimate) Covers(x float64) bool { return e.Lo <= x && x <= e.Hi }

// TQuantile is the two-sided 95% critical value of Student's t with n−1
// degrees of freedom (1.96 in the limit), used for intervals of means of n
// observations; small samples get wider intervals, as they should. For
// n < 2 it returns 0.
func TQuantile(n int) float64 {
	if n < 2 {
		return 0
	}
	if n > 100000 { // indistinguishable from the normal, and saves the quantile search
		return distuv.UnitNormal.Quantile(1 - (1-Confidence)/2)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(1 - (1-Confidence)/2)
}

// MeanCI is the mean of xs with its t-interval, mean ± t·s/√n.
func MeanCI(xs []float64) Estimate {
	n := len(xs)
	if n == 0 {
		return Estimate{}
	}
	if n == 1 {
		return Estimate{Value: xs[0], Lo: xs[0], Hi: xs[0], N: 1}
	}
	m, sd := stat.MeanStdDev(xs, nil)
	return interval(m, sd, n)
}

// Paired is the mean difference a[i] − b[i] of two measurements of the same
// units, with its t-interval and the two-sided p-value of the paired t-test
// of "no difference". Pairing removes the variation the units share, which
// is most of it when two policies are scored on one log. The p-value is 1
// when there is no spread to test (fewer than two pairs, or all differences
// equal to zero).
func Paired(a, b []float64) (Estimate, float64, error) {
	if len(a) != len(b) {
		return Estimate{}, 0, fmt.Errorf("eval: paired samples of different lengths %d and %d", len(a), len(b))
	}
	if len(a) == 0 {
		return Estimate{}, 0, ErrNoSamples
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	e := MeanCI(d)
	if e.N < 2 {
		return e, 1, nil
	}
	_, sd := stat.MeanStdDev(d, nil)
	if !(sd > 0) {
		if e.Value == 0 {
			return e, 1, nil
		}
		return e, 0, nil
	}
	t := e.Value / (sd / math.Sqrt(float64(e.N)))
	return e, 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(e.N - 1)}.Survival(math.Abs(t)), nil
}

func interval(mean, sd float64, n int) Estimate {
	if n < 2 || math.IsNaN(sd) {
		return Estimate{Value: mean, Lo: mean, Hi: mean, N: n}
	}
	h := TQuantile(n) * sd / math.Sqrt(float64(n))
	return Estimate{Value: mean, Lo: mean - h, Hi: mean + h, N: n}
}

// Running accumulates a mean and variance in one pass (Welford's method,
// numerically stable) for streams too long to keep, such as per-event
// metrics of a replay. The zero value is ready to use.
type Running struct {
	n    int
	mean float64
	m2   float64
}

// Add adds one observation.
func (r *Running) Add(x float64) {
	r.n++
	d := x - r.mean
	r.mean += d / float64(r.n)
	r.m2 += d * (x - r.mean)
}

// N is the number of observations.
func (r *Running) N() int { return r.n }

// Mean is the mean so far (0 with no observations).
func (r *Running) Mean() float64 { return r.mean }

// StdDev is the sample standard deviation (0 with fewer than two
// observations).
func (r *Running) StdDev() float64 {
	if r.n < 2 {
		return 0
	}
	return math.Sqrt(r.m2 / float64(r.n-1))
}

// Estimate is the mean with its t-interval.
func (r *Running) Estimate() Estimate {
	if r.n == 0 {
		return Estimate{}
	}
	return interval(r.mean, r.StdDev(), r.n)
}

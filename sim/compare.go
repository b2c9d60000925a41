package sim

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Summary is a metric's mean over runs (seeds) with its 95% confidence
// interval from the t-distribution; Lo = Hi = Mean when there is a single
// run.
type Summary struct {
	Mean      float64 `json:"mean"`
	HalfWidth float64 `json:"half_width"`
	Lo        float64 `json:"lo"`
	Hi        float64 `json:"hi"`
	N         int     `json:"n"`
}

// MeanCI summarises xs as mean ± t_{(1+level)/2, n−1}·s/√n, the
// confidence interval of the mean at level (e.g. 0.95) for a small number
// of independent runs.
func MeanCI(xs []float64, level float64) Summary {
	n := len(xs)
	if n == 0 {
		return Summary{}
	}
	mean, sd := stat.MeanStdDev(xs, nil)
	s := Summary{Mean: mean, Lo: mean, Hi: mean, N: n}
	if n < 2 || math.IsNaN(sd) {
		return s
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile((1 + level) / 2)
	s.HalfWidth = t * sd / math.Sqrt(float64(n))
	s.Lo, s.Hi = mean-s.HalfWidth, mean+s.HalfWidth
	return s
}

// Metric names, in the order of reports.
const (
	MClicksPerUser   = "clicks_per_user"
	MCTR             = "ctr"
	MReturnRate      = "return_rate"
	MSessionsPerUser = "sessions_per_user"
	MNovelty         = "novelty"
	MSelfInformation = "self_information"
	MILD             = "ild"
	MTopicsPerUser   = "topics_per_user"
	MNovelClickShare = "novel_click_share"
	MSessionAUC      = "session_auc"
	MSessionAUCFirst = "session_auc_first"
	MSessionAUCLater = "session_auc_later"
	MUserCorrelation = "user_correlation"
	// MAUCFirstBound and MCorrelationBound are the oracle bounds of
	// MSessionAUCFirst and MUserCorrelation (Result's fields say how).
	MAUCFirstBound    = "session_auc_first_bound"
	MCorrelationBound = "user_correlation_bound"
	MCalibration      = "session_calibration"
	MExploreCTR       = "explore_ctr"
	MExploitCTR       = "exploit_ctr"
	MExploreNovel     = "explore_novel"
	MExploitNovel     = "exploit_novel"
)

// MetricNames lists the metrics of a report in order.
var MetricNames = []string{
	MClicksPerUser, MCTR, MReturnRate, MSessionsPerUser, MNovelty, MSelfInformation,
	MILD, MTopicsPerUser, MNovelClickShare, MSessionAUC, MSessionAUCFirst, MSessionAUCLater, MUserCorrelation,
	MCalibration, MAUCFirstBound, MCorrelationBound, MExploreCTR, MExploitCTR, MExploreNovel, MExploitNovel,
}

// Metrics returns the result's metrics by name; the intent scores only for
// policies that model intent.
func (r *Result) Metrics() map[string]float64 {
	m := map[string]float64{
		MClicksPerUser: r.ClicksPerUser, MCTR: r.CTR, MReturnRate: r.ReturnRate,
		MSessionsPerUser: r.SessionsPerUser, MNovelty: r.Novelty, MSelfInformation: r.SelfInformation,
		MILD: r.ILD, MTopicsPerUser: r.TopicsPerUser, MNovelClickShare: r.NovelClickShare,
		MExploreCTR: r.ExploreCTR, MExploitCTR: r.ExploitCTR, MExploreNovel: r.ExploreNovel, MExploitNovel: r.ExploitNovel,
	}
	if r.IntentModeled {
		m[MSessionAUC] = r.SessionAUC
		m[MSessionAUCFirst] = r.SessionAUCFirst
		m[MSessionAUCLater] = r.SessionAUCLater
		m[MUserCorrelation] = r.UserCorrelation
		m[MCalibration] = r.SessionCalibration
		m[MAUCFirstBound] = r.SessionAUCFirstBound
		m[MCorrelationBound] = r.UserCorrelationBound
	}
	return m
}

// PolicyReport aggregates one policy's runs over seeds.
type PolicyReport struct {
	Policy string `json:"policy"`
	Runs   int    `json:"runs"`
	// Metrics holds a Summary per metric name (see MetricNames).
	Metrics map[string]Summary `json:"metrics"`
	// Engagement summarises clicks per user by session index.
	Engagement []Summary `json:"engagement"`
}

// Report is the outcome of Compare.
type Report struct {
	Config Config   `json:"config"`
	Seeds  []uint64 `json:"seeds"`
	// Complete is false when Compare was cancelled; the report then
	// covers the runs that finished.
	Complete bool           `json:"complete"`
	Policies []PolicyReport `json:"policies"`
	Runs     []Result       `json:"runs"`
}

// Compare runs every policy of names against the population of every seed
// (each run with a fresh policy from cfg.NewPolicy, default NewPolicy), at most cfg.Workers runs at
// a time, and aggregates each policy's metrics over seeds with 95%
// confidence intervals. Runs are independent and collected in order, so the
// report does not depend on the parallelism. progress, if not nil, is
// called with rounds of sessions done and the total (serialised).
//
// Cancelling ctx stops the runs in progress and returns the report of those
// that finished (whole runs only) together with ctx's error.
func Compare(ctx context.Context, cfg Config, names []string, seeds []uint64, progress func(done, total int)) (Report, error) {
	rep := Report{Config: cfg, Seeds: seeds}
	if len(names) == 0 || len(seeds) == 0 {
		return rep, errors.New("sim: no policies or seeds")
	}
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	newPolicy := cfg.NewPolicy
	if newPolicy == nil {
		newPolicy = NewPolicy
	}
	for _, n := range names { // fail fast on a bad name
		if _, err := newPolicy(n, cfg.Policy); err != nil {
			return rep, err
		}
	}
	snap, err := cfg.snapshot()
	if err != nil {
		return rep, err
	}
	cfg.Catalog = snap

	type job struct {
		name string
		seed uint64
	}
	// Seed-major order: if the comparison is stopped early, every policy
	// has had the same seeds.
	var jobs []job
	for _, s := range seeds {
		for _, n := range names {
			jobs = append(jobs, job{n, s})
		}
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(jobs))

	results := make([]*Result, len(jobs))
	errs := make([]error, len(jobs))
	total := len(jobs) * cfg.Sessions
	var mu sync.Mutex
	done := 0
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				p, err := newPolicy(jobs[j].name, cfg.Policy)
				if err == nil {
					var res Result
					res, err = run(ctx, cfg, p, jobs[j].seed, tick, nil)
					if err == nil {
						results[j] = &res
					}
				}
				errs[j] = err
			}
		}()
	}
feed:
	for j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	for j, r := range results {
		if r != nil {
			rep.Runs = append(rep.Runs, *r)
		} else if errs[j] != nil && !errors.Is(errs[j], ctx.Err()) {
			return rep, errs[j]
		}
	}
	rep.Policies = Aggregate(names, rep.Runs)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.Complete = true
	return rep, nil
}

// Aggregate summarises runs per policy, in the order of names.
func Aggregate(names []string, runs []Result) []PolicyReport {
	var out []PolicyReport
	for _, name := range names {
		pr := PolicyReport{Policy: name, Metrics: map[string]Summary{}}
		vals := map[string][]float64{}
		var eng [][]float64
		for i := range runs {
			r := &runs[i]
			if r.Policy != name {
				continue
			}
			pr.Runs++
			for k, v := range r.Metrics() {
				vals[k] = append(vals[k], v)
			}
			for s, e := range r.Engagement {
				for s >= len(eng) {
					eng = append(eng, nil)
				}
				eng[s] = append(eng[s], e)
			}
		}
		for k, xs := range vals {
			pr.Metrics[k] = MeanCI(xs, 0.95)
		}
		for _, xs := range eng {
			pr.Engagement = append(pr.Engagement, MeanCI(xs, 0.95))
		}
		out = append(out, pr)
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/eval"
	"github.com/novarec/novarec/internal/envflag"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/replay"
)

// policyFactory builds a fresh, untrained policy by name with the run's
// reward weights. The subcommands take it as a parameter so that wiring
// (policy.New) stays in main and the commands can be tested with stand-ins.
type policyFactory func(name string, w recommend.RewardWeights) (replay.Policy, error)

// Defaults of the offline subcommands.
const (
	defaultReplayData     = "../shared/datasets/ml-latest-small"
	defaultReplayPolicies = "popular,knn,relevance,mmr,flat,hrl"
	// defaultLogCatalogItems is the embedded recsvc's generated catalog
	// (catalog.Sample(3000, 1)), the catalog of a log it wrote.
	defaultLogCatalogItems = 3000
)

// replayReport is the JSON written by -json.
type replayReport struct {
	Stream    string                  `json:"stream"`
	Events    int                     `json:"events"`
	Users     int                     `json:"users"`
	Items     int                     `json:"items"`
	K         int                     `json:"k"`
	Catalog   string                  `json:"catalog"`
	AllEvents bool                    `json:"all_events"`
	Seed      uint64                  `json:"seed"`
	Reward    recommend.RewardWeights `json:"reward"`
	Results   []*replay.Result        `json:"results"`
	// Interrupted is true when Ctrl-C stopped the run: Results then hold
	// the policies that finished and, marked incomplete, the one running.
	Interrupted bool `json:"interrupted,omitempty"`
}

// replayMain is `trainer replay`: the prequential replay of DESIGN.md §6.
// It loads MovieLens (-data, any layout movielens.LoadDir knows) or the
// service's own event log (-log), replays every event in time order through
// each policy (test, then learn), and prints HR@k, NDCG@k, slate novelty,
// ILD and coverage with 95% intervals, and the time it took; -json and
// -png write the results and a chart of the metrics over the stream. A
// progress bar goes to stderr. Ctrl-C (ctx) stops the running policy and
// reports and saves what finished, returning an error that wraps
// context.Canceled.
func replayMain(ctx context.Context, args []string, stdout io.Writer, newPolicy policyFactory) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stdout)
	data := fs.String("data", defaultReplayData, "MovieLens directory: ml-latest(-small) CSV, ML-1M ratings.dat/movies.dat or ML-100K u.data/u.item")
	logPaths := fs.String("log", "", "replay the service's event log instead: JSON-lines files of rec.impressions and rec.feedback events, comma-separated")
	catPath := fs.String("catalog", "", "with -log: the catalog, a MovieLens directory or a JSON file of items (PUT /v1/items body or array); default the embedded recsvc's generated catalog")
	policies := fs.String("policies", defaultReplayPolicies, "comma-separated policies to replay, one after another; NAME/N learns NAME with N partitioned trainer replicas (users split as Kafka partitions split them, merged as the replicas merge)")
	mergeEvery := fs.Int("merge-every", defaultMergeEvery, "with NAME/N policies: the commit interval, in events (slates and clicks) of the stream, whatever N: every this many events each replica merges what it learned into the shared model, which is served")
	k := fs.Int("k", 10, "slate size; HR@k and NDCG@k are reported")
	mode := fs.String("catalog-mode", "", "recommendable items: seen (items seen so far, popularity so far; default for MovieLens), all (every item, popularity so far) or static (every item, given popularity; default for -log)")
	allEvents := fs.Bool("all-events", false, "test on every consumption (every rating) instead of engaged events only (clicks, ratings ≥ 3.5)")
	refresh := fs.Int("refresh", 0, "events between catalog rebuilds (0 = max(1000, events/100))")
	buckets := fs.Int("buckets", 10, "slices of the stream for the metrics over time")
	limit := fs.Int("limit", 0, "replay only the first N events (quick trials; 0 = all)")
	seed := fs.Uint64("seed", 1, "seed of the policies' random draws")
	wNov := fs.Float64("w-nov", recommend.DefaultRewardWeights.Novelty, "reward weight of surprising clicks (w_nov) for the learning policies")
	wDiv := fs.Float64("w-div", recommend.DefaultRewardWeights.Diversity, "reward weight of slate diversity (w_div) for the learning policies")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	pngPath := fs.String("png", "", "write a chart of the metrics over the stream per policy to this file (.png or .svg)")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("replay: unexpected arguments %q", fs.Args())
	}
	names := envflag.List(*policies)
	switch {
	case len(names) == 0:
		return errors.New("replay: -policies is empty")
	case *k < 1 || *k > recommend.MaxK:
		return fmt.Errorf("replay: -k %d out of range 1..%d", *k, recommend.MaxK)
	case *buckets < 1 || *refresh < 0 || *limit < 0 || *mergeEvery < 1:
		return errors.New("replay: -buckets and -merge-every must be positive, -refresh and -limit not negative")
	case newPolicy == nil:
		return errors.New("replay: no policy constructor")
	}
	reward := recommend.RewardWeights{Novelty: *wNov, Diversity: *wDiv}
	// Build every policy first, so a bad name fails before a long replay.
	pols := make([]replay.Policy, len(names))
	for i, n := range names {
		p, err := replicated(n, *mergeEvery, func(base string) (replay.Policy, error) { return newPolicy(base, reward) })
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		pols[i] = p
	}

	var (
		stream *replay.Stream
		err    error
	)
	cfg := replay.Config{K: *k, AllEvents: *allEvents, RefreshEvery: *refresh, Buckets: *buckets, Seed: *seed}
	if *logPaths != "" {
		stream, err = loadLogStream(*logPaths, *catPath, stdout)
		cfg.Catalog = replay.CatalogStatic
	} else {
		stream, err = loadMovieLensStream(*data)
	}
	if err != nil {
		return err
	}
	if *mode != "" {
		if cfg.Catalog, err = replay.ParseCatalogMode(*mode); err != nil {
			return err
		}
	}
	stream = stream.Head(*limit)
	engaged := 0
	for i := range stream.Events {
		if stream.Events[i].Engaged() {
			engaged++
		}
	}
	fmt.Fprintf(stdout, "replay of %s: %d events (%d engaged), %d users, %d items; k=%d, catalog %s, test points: %s\n",
		stream.Name, stream.Len(), engaged, len(stream.Users), len(stream.Items), *k, cfg.Catalog, testPointsLabel(*allEvents))

	rep := replayReport{
		Stream: stream.Name, Events: stream.Len(), Users: len(stream.Users), Items: len(stream.Items),
		K: *k, Catalog: cfg.Catalog.String(), AllEvents: *allEvents, Seed: *seed, Reward: reward,
	}
	var runErr error
	for i, p := range pols {
		var bar *progressbar.ProgressBar
		c := cfg
		if *progress {
			bar = newBar(stream.Len(), fmt.Sprintf("%-10s [%d/%d]", p.Name(), i+1, len(pols)), "events")
			c.Progress = func(done, _ int) { _ = bar.Set(done) }
		}
		res, err := replay.Run(ctx, stream, p, c)
		if bar != nil {
			_ = bar.Exit()
			fmt.Fprintln(os.Stderr)
		}
		if res != nil {
			rep.Results = append(rep.Results, res)
		}
		if err != nil {
			runErr = err
			rep.Interrupted = errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
			break
		}
	}
	if len(rep.Results) > 0 {
		if err := writeReplayTable(stdout, rep.Results); err != nil {
			return err
		}
	}
	if err := saveReplayOutputs(stdout, rep, *jsonPath, *pngPath); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr != nil {
		if rep.Interrupted {
			fmt.Fprintln(stdout, "interrupted: the table and files hold the policies that finished (and the partial one, marked *)")
		}
		return runErr
	}
	return nil
}

func testPointsLabel(all bool) string {
	if all {
		return "every consumption"
	}
	return "engaged events (clicks, ratings ≥ 3.5)"
}

// loadMovieLensStream loads -data with an error that says what to do when
// the directory is missing.
func loadMovieLensStream(dir string) (*replay.Stream, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("replay: MovieLens data not found at %s (%w); pass -data DIR with a MovieLens directory (ml-latest-small: ratings.csv and movies.csv; see ../shared/datasets/README.md) or -log PATH for the service's event log", dir, err)
	}
	return replay.LoadMovieLens(dir)
}

// loadLogStream loads the event logs and the catalog they refer to.
func loadLogStream(paths, catPath string, stdout io.Writer) (*replay.Stream, error) {
	l, items, err := loadLogAndCatalog(paths, catPath, stdout)
	if err != nil {
		return nil, err
	}
	s, err := l.Stream(items, "log:"+paths)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func loadLogAndCatalog(paths, catPath string, stdout io.Writer) (*replay.EventLog, []catalog.Item, error) {
	l, err := replay.LoadEventLog(envflag.List(paths)...)
	if err != nil {
		return nil, nil, err
	}
	if l.Skipped > 0 {
		fmt.Fprintf(stdout, "skipped %d of %d lines that are not valid events (first: %v)\n", l.Skipped, l.Lines, l.FirstError)
	}
	if l.Duplicates > 0 {
		fmt.Fprintf(stdout, "dropped %d duplicate events (same event_id)\n", l.Duplicates)
	}
	if catPath == "" {
		return l, catalog.Sample(defaultLogCatalogItems, 1), nil
	}
	items, err := replay.LoadCatalog(catPath)
	if err != nil {
		return nil, nil, err
	}
	return l, items, nil
}

// offPolicy runs replay.OffPolicy with a progress bar on stderr labelled
// label when progress is set.
func offPolicy(ctx context.Context, l *replay.EventLog, items []catalog.Item, p replay.Policy, cfg replay.OPEConfig, label string, progress bool) (*replay.OPEResult, error) {
	if !progress {
		return replay.OffPolicy(ctx, l, items, p, cfg)
	}
	bar := newBar(len(l.Impressions), label, "impressions")
	cfg.Progress = func(done, total int) {
		bar.ChangeMax(total)
		_ = bar.Set(done)
	}
	res, err := replay.OffPolicy(ctx, l, items, p, cfg)
	_ = bar.Exit()
	fmt.Fprintln(os.Stderr)
	return res, err
}

func newBar(total int, desc, unit string) *progressbar.ProgressBar {
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)
}

func pm(e eval.Estimate, digits int) string {
	return fmt.Sprintf("%.*f ±%.*f", digits, e.Value, digits, e.HalfWidth())
}

// writeReplayTable prints one row per policy, then the cost and its
// projection to larger streams.
func writeReplayTable(w io.Writer, results []*replay.Result) error {
	k := results[0].K
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\tHR@%d\tNDCG@%d\tnovelty (bits)\tILD\tILD (emb)\tcoverage\ttest points\tevents/s\ttime\t1M events\t20M events\t\n", k, k)
	for _, r := range results {
		name := r.Policy
		if !r.Complete {
			name += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%d\t%.0f\t%s\t%s\t%s\t\n", name,
			pm(r.HR, 4), pm(r.NDCG, 4), pm(r.Novelty, 2), pm(r.ILD, 3), pm(r.ILDEmbedding, 3), r.Coverage,
			r.TestPoints, r.EventsPerSecond, roundDur(time.Duration(r.Seconds*float64(time.Second))),
			roundDur(r.Projected(1_000_000)), roundDur(r.Projected(20_000_000)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("replay: write table: %w", err)
	}
	fmt.Fprintln(w, "± is the 95% interval over test points; 1M/20M events: wall time projected at this run's per-event cost (larger catalogs cost more per event)")
	return nil
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func saveReplayOutputs(stdout io.Writer, rep replayReport, jsonPath, pngPath string) error {
	if jsonPath != "" {
		if err := writeJSONFile(jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", jsonPath)
	}
	if pngPath != "" && len(rep.Results) > 0 {
		if err := replay.SaveChart(pngPath, rep.Results); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", pngPath)
	}
	return nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// opeReport is the JSON written by `trainer ope -json`.
type opeReport struct {
	Log         string                  `json:"log"`
	Impressions int                     `json:"impressions"`
	Feedback    int                     `json:"feedback"`
	Draws       int                     `json:"draws"`
	Clip        float64                 `json:"clip,omitempty"`
	Reward      recommend.RewardWeights `json:"reward"`
	Results     []*replay.OPEResult     `json:"results"`
	Interrupted bool                    `json:"interrupted,omitempty"`
}

// opeMain is `trainer ope`: off-policy evaluation of candidate policies on
// the service's own logged impressions and feedback (-log), printing the
// logging policy's value and each candidate's IPS, SNIPS and DR estimates
// with 95% intervals (see replay.OffPolicy for what is estimated: the
// expected reward of the top slot). Ctrl-C stops it and reports what
// finished.
func opeMain(ctx context.Context, args []string, stdout io.Writer, newPolicy policyFactory) error {
	fs := flag.NewFlagSet("ope", flag.ContinueOnError)
	fs.SetOutput(stdout)
	logPaths := fs.String("log", "", "the service's event log: JSON-lines files of rec.impressions and rec.feedback events, comma-separated (required)")
	catPath := fs.String("catalog", "", "the catalog, a MovieLens directory or a JSON file of items; default the embedded recsvc's generated catalog")
	pol := fs.String("policy", "hrl", "candidate policy (several, comma-separated, are evaluated one after another)")
	draws := fs.Int("draws", 10, "slates drawn from the candidate per impression to estimate its probability of the logged top item (1 suffices for deterministic policies)")
	seed := fs.Uint64("seed", 1, "seed of the candidate's draws")
	clip := fs.Float64("clip", 0, "cap on importance weights (0 = none)")
	variant := fs.String("variant", "", "evaluate on impressions of this variant only (default all)")
	wNov := fs.Float64("w-nov", recommend.DefaultRewardWeights.Novelty, "a click on the top item earns 1 + w_nov·novelty (0 = clicks)")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ope: unexpected arguments %q", fs.Args())
	}
	names := envflag.List(*pol)
	switch {
	case *logPaths == "":
		return errors.New("ope: -log is required: the JSON-lines event log (rec.impressions and rec.feedback) to evaluate on")
	case len(names) == 0:
		return errors.New("ope: -policy is empty")
	case *draws < 1 || *clip < 0:
		return errors.New("ope: -draws must be positive and -clip not negative")
	case newPolicy == nil:
		return errors.New("ope: no policy constructor")
	}
	reward := recommend.RewardWeights{Novelty: *wNov, Diversity: recommend.DefaultRewardWeights.Diversity}
	pols := make([]replay.Policy, len(names))
	for i, n := range names {
		p, err := newPolicy(n, reward)
		if err != nil {
			return fmt.Errorf("ope: %w", err)
		}
		pols[i] = p
	}
	l, items, err := loadLogAndCatalog(*logPaths, *catPath, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "off-policy evaluation on %s: %d impressions, %d feedback events; estimand: expected reward of the top slot (click = 1 + %.3g·novelty)\n",
		*logPaths, len(l.Impressions), len(l.Feedback), *wNov)
	rep := opeReport{Log: *logPaths, Impressions: len(l.Impressions), Feedback: len(l.Feedback), Draws: *draws, Clip: *clip, Reward: reward}
	var runErr error
	for i, p := range pols {
		cfg := replay.OPEConfig{Draws: *draws, Seed: *seed, Reward: reward, Clip: *clip, Variant: *variant}
		res, err := offPolicy(ctx, l, items, p, cfg, fmt.Sprintf("%-10s [%d/%d]", p.Name(), i+1, len(pols)), *progress)
		if res != nil {
			rep.Results = append(rep.Results, res)
		}
		if err != nil {
			runErr = err
			rep.Interrupted = errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
			break
		}
	}
	if len(rep.Results) > 0 {
		if err := writeOPETable(stdout, rep.Results); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		if err := writeJSONFile(*jsonPath, rep); err != nil {
			return errors.Join(runErr, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", *jsonPath)
	}
	return runErr
}

func writeOPETable(w io.Writer, results []*replay.OPEResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\tlogging policy\tIPS\tSNIPS\tDR\tmatch\tESS\timpressions\ttop clicks\t\n")
	for _, r := range results {
		name := r.Policy
		if !r.Complete {
			name += "*"
		}
		snips := pm(r.SNIPS, 4)
		if r.SNIPSError != "" {
			snips = "n/a (no overlap)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3f\t%.0f\t%d\t%d\t\n", name, pm(r.Logged, 4), pm(r.IPS, 4), snips, pm(r.DR, 4),
			r.Match, r.ESS, r.Evaluated, r.Clicks)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("ope: write table: %w", err)
	}
	fmt.Fprintln(w, "± is the 95% interval; match: the candidate's mean probability of the logged top item; ESS: effective sample size of the importance weights")
	return nil
}

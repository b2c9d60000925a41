package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/replay"
	"github.com/novarec/novarec/sim"
)

// simulateMain is `trainer simulate`: it runs the offline policies against
// the user simulator (package sim) over several seeds, with online learning,
// and reports long-term engagement, novelty, diversity and — for the HRL —
// how well the intent is inferred, as a terminal table with 95% confidence
// intervals, optionally JSON (-json) and a PNG chart of engagement by
// session (-png). It shows a progress bar on stderr; Ctrl-C stops it and
// reports the runs that finished.
func simulateMain(ctx context.Context, args []string, stdout io.Writer) error {
	def := sim.DefaultConfig()
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stdout)
	users := fs.Int("users", def.Users, "simulated users per run")
	sessions := fs.Int("sessions", def.Sessions, "cap on sessions per user")
	steps := fs.Int("steps", def.Steps, "cap on slates per session")
	k := fs.Int("k", def.K, "slate size")
	items := fs.Int("items", def.Items, "items in the generated catalog")
	nSeeds := fs.Int("seeds", 5, "number of seeds (1..N); the confidence intervals are over seeds")
	firstSeed := fs.Uint64("seed", 1, "first seed")
	policies := fs.String("policies", strings.Join(policy.Names(), ","),
		"comma-separated policies: "+strings.Join(policy.Names(), ", ")+", and the references "+sim.Oracle+", "+sim.Random+
			"; NAME/N runs a learning policy as N partitioned trainer replicas (users split as Kafka partitions split them, merged as the replicas merge)")
	mergeEvery := fs.Int("merge-every", defaultMergeEvery, "with NAME/N policies: the commit interval, in events (slates and clicks) of the stream, whatever N: every this many events each replica merges what it learned into the shared model, which is served")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	pngPath := fs.String("png", "", "write a chart of clicks per user by session index to this PNG file")
	logPath := fs.String("log", "", "also write the first policy's run on the first seed as the service's event log (JSON lines of rec.impressions and rec.feedback) to this file, for ope and ab-offline")
	variant := fs.String("log-variant", "default", "variant named in the -log events")
	wNov := fs.Float64("w-nov", def.Policy.Learner.Reward.Novelty, "reward weight of surprising clicks (w_nov)")
	wDiv := fs.Float64("w-div", def.Policy.Learner.Reward.Diversity, "reward weight of slate diversity (w_div)")
	rankerLR := fs.Float64("ranker-lr", def.Policy.Learner.RankerLR, "step size of the ranker's θ (0 freezes θ; item biases and embeddings still learn)")
	intentLR := fs.Float64("intent-lr", def.Policy.Learner.IntentLR, "step size of the high-level policy")
	modeRoutine := fs.Bool("mode-routine", def.Policy.Learner.ModeRoutine, "fit the mode model's routine too (as served; false: it stays 0)")
	modeBelief := fs.Bool("mode-belief", def.Policy.Learner.ModeBelief, "read the beliefs with the fitted mode model (trainer -mode-belief; false: the fit only decides whether novelty pays)")
	modePrior := fs.Bool("mode-prior", def.Policy.Learner.ModePrior, "read the user propensities with the fitted population prior too (trainer -mode-prior)")
	modeSwitch := fs.Bool("mode-switch", def.Policy.Learner.ModeSwitch, "fit the mode's switch rates within a session (trainer -mode-switch; false: a session keeps its mode)")
	modeRefit := fs.Int("mode-refit", def.Policy.Learner.ModeRefit, "fit the mode model and the population prior to the run's sessions every N slates, the first at N/8, N/4, N/2 (trainer -mode-refit; 0 = off)")
	epsilon := fs.Float64("intent-epsilon", def.Policy.Engine.IntentEpsilon, "exploration floor of the intent level (recsvc -intent-epsilon)")
	hedge := fs.Float64("hedge", def.Policy.Engine.Hedge, "hedging of the HRL's slates between intents (recsvc -hedge; 0 = off)")
	greedy := fs.Float64("greedy", def.Policy.Engine.Greedy, "share of the HRL's sampled slate positions that take the ranker's argmax, with exact propensities (recsvc -greedy; 0 = sample all)")
	det := fs.Bool("deterministic", false, "the HRL takes argmax decisions, as recsvc serves requests with \"deterministic\": true")
	modeWeight := fs.Float64("mode-weight", def.ModeWeight, "simulator: how strongly the session mode (explore/exploit) drives clicks")
	quality := fs.Float64("quality-weight", def.QualityWeight, "simulator: weight of the items' hidden quality in the click model")
	latent := fs.Float64("latent-weight", def.LatentWeight, "simulator: weight of hidden user×item factors (co-consumption no category describes)")
	skips := fs.Bool("skip-events", def.SkipEvents, "simulator: the client sends skip events (false: clicks only; the service infers skips)")
	workers := fs.Int("workers", 0, "parallel runs (0 = GOMAXPROCS); results do not depend on it")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate: unexpected arguments %q", fs.Args())
	}
	if *nSeeds < 1 {
		return errors.New("simulate: -seeds must be at least 1")
	}
	var names []string
	for _, n := range strings.Split(*policies, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	cfg := def
	cfg.Users, cfg.Sessions, cfg.Steps, cfg.K, cfg.Items = *users, *sessions, *steps, *k, *items
	cfg.Policy.Learner.Reward.Novelty, cfg.Policy.Learner.Reward.Diversity = *wNov, *wDiv
	cfg.Policy.Learner.RankerLR, cfg.Policy.Learner.IntentLR = *rankerLR, *intentLR
	cfg.Policy.Learner.ModeRefit = *modeRefit
	cfg.Policy.Learner.ModeRoutine = *modeRoutine
	cfg.Policy.Learner.ModeBelief, cfg.Policy.Learner.ModePrior, cfg.Policy.Learner.ModeSwitch = *modeBelief, *modePrior, *modeSwitch
	cfg.Policy.Engine.IntentEpsilon, cfg.Policy.Engine.Hedge = *epsilon, *hedge
	cfg.Policy.Engine.Greedy = *greedy
	cfg.Policy.Deterministic = *det
	cfg.ModeWeight = *modeWeight
	cfg.QualityWeight, cfg.LatentWeight, cfg.SkipEvents = *quality, *latent, *skips
	cfg.Workers = *workers
	if *mergeEvery < 1 {
		return errors.New("simulate: -merge-every must be positive")
	}
	cfg.NewPolicy = func(name string, pc policy.Config) (policy.Policy, error) {
		return replicated(name, *mergeEvery, func(n string) (policy.Policy, error) { return sim.NewPolicy(n, pc) })
	}
	seeds := make([]uint64, *nSeeds)
	for i := range seeds {
		seeds[i] = *firstSeed + uint64(i)
	}

	// Ctrl-C (or SIGTERM) stops the comparison; a second one kills.
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var bar *progressbar.ProgressBar
	onProgress := func(done, total int) {}
	if *progress {
		// Redraw often on a terminal, seldom into a log file.
		throttle := 5 * time.Second
		if term.IsTerminal(int(os.Stderr.Fd())) {
			throttle = 100 * time.Millisecond
		}
		onProgress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetDescription(fmt.Sprintf("simulating %d policies × %d seeds", len(names), len(seeds))),
					progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetElapsedTime(true),
					progressbar.OptionThrottle(throttle),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }),
				)
			}
			_ = bar.Set(done)
		}
	}
	start := time.Now()
	rep, err := sim.Compare(sctx, cfg, names, seeds, onProgress)
	elapsed := time.Since(start)
	interrupted := err != nil && sctx.Err() != nil && errors.Is(err, sctx.Err())
	if err != nil && !interrupted {
		return err
	}
	stop()
	if interrupted {
		if bar != nil {
			_ = bar.Exit()
			fmt.Fprintln(os.Stderr)
		}
		fmt.Fprintf(stdout, "interrupted: %d of %d runs finished; reporting those\n", len(rep.Runs), len(names)*len(seeds))
	}
	fmt.Fprintf(stdout, "%d users, ≤%d sessions of ≤%d slates of %d, %d items; w_nov=%g w_div=%g; seeds %d..%d; %s\n",
		cfg.Users, cfg.Sessions, cfg.Steps, cfg.K, cfg.Items, *wNov, *wDiv, seeds[0], seeds[len(seeds)-1], elapsed.Round(100*time.Millisecond))
	if err := writeTable(stdout, rep); err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := writeReportJSON(*jsonPath, rep, elapsed); err != nil {
			return err
		}
	}
	if *pngPath != "" {
		if err := writeEngagementPNG(*pngPath, rep); err != nil {
			return err
		}
	}
	if *logPath != "" && !interrupted {
		if err := writeSimLog(ctx, *logPath, cfg, names[0], seeds[0], *variant, stdout); err != nil {
			return err
		}
	}
	return nil
}

// writeSimLog re-runs one policy on one seed (runs are deterministic, so it
// is the run in the table) and writes what its users were shown and did as
// the service's event log.
func writeSimLog(ctx context.Context, path string, cfg sim.Config, name string, seed uint64, variant string, stdout io.Writer) error {
	newPolicy := cfg.NewPolicy
	if newPolicy == nil {
		newPolicy = sim.NewPolicy
	}
	p, err := newPolicy(name, cfg.Policy)
	if err != nil {
		return err
	}
	rec := &replay.Recorder{Variant: variant, Model: "sim-" + name}
	if _, err := sim.RunObserved(ctx, cfg, p, seed, rec); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rec.Log.WriteJSONLines(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d impressions and %d feedback events of %s on seed %d\n", path, len(rec.Log.Impressions), len(rec.Log.Feedback), name, seed)
	return nil
}

// tableColumns are the metrics of the terminal table with their headers and
// formats.
var tableColumns = []struct{ metric, header, format string }{
	{sim.MClicksPerUser, "clicks/user", "%.2f"},
	{sim.MCTR, "CTR", "%.4f"},
	{sim.MReturnRate, "return", "%.3f"},
	{sim.MSessionsPerUser, "sessions/user", "%.2f"},
	{sim.MNovelty, "novelty", "%.3f"},
	{sim.MSelfInformation, "self-info", "%.2f"},
	{sim.MILD, "ILD", "%.3f"},
	{sim.MTopicsPerUser, "topics/user", "%.2f"},
	{sim.MNovelClickShare, "novel clicks", "%.3f"},
	{sim.MSessionAUC, "intent AUC", "%.3f"},
	{sim.MSessionAUCFirst, "AUC 1st", "%.3f"},
	{sim.MSessionAUCLater, "AUC later", "%.3f"},
	{sim.MUserCorrelation, "corr(ρ)", "%.3f"},
	{sim.MCalibration, "ECE", "%.3f"},
	{sim.MAUCFirstBound, "AUC 1st bound", "%.3f"},
	{sim.MCorrelationBound, "corr bound", "%.3f"},
	{sim.MExploreCTR, "CTR explore", "%.4f"},
	{sim.MExploitCTR, "CTR exploit", "%.4f"},
	{sim.MExploreNovel, "novel explore", "%.3f"},
	{sim.MExploitNovel, "novel exploit", "%.3f"},
}

// writeTable prints one row per policy, each metric as mean ± 95% CI
// half-width over seeds.
func writeTable(w io.Writer, rep sim.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "policy\truns\t")
	for _, c := range tableColumns {
		fmt.Fprintf(tw, "%s\t", c.header)
	}
	fmt.Fprintln(tw)
	for _, p := range rep.Policies {
		fmt.Fprintf(tw, "%s\t%d\t", p.Policy, p.Runs)
		for _, c := range tableColumns {
			s, ok := p.Metrics[c.metric]
			switch {
			case !ok:
				fmt.Fprint(tw, "–\t")
			case s.N > 1:
				fmt.Fprintf(tw, c.format+" ± "+c.format+"\t", s.Mean, s.HalfWidth)
			default:
				fmt.Fprintf(tw, c.format+"\t", s.Mean)
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func writeReportJSON(path string, rep sim.Report, elapsed time.Duration) error {
	out := struct {
		sim.Report
		ElapsedSeconds float64 `json:"elapsed_seconds"`
	}{rep, elapsed.Seconds()}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeEngagementPNG charts clicks per user in the s-th session, per
// policy, with 95% intervals over seeds: the long-term view in which
// retention and per-session engagement compound.
func writeEngagementPNG(path string, rep sim.Report) error {
	p := plot.New()
	p.Title.Text = "Engagement by session (simulator)"
	p.X.Label.Text = "session index"
	p.Y.Label.Text = "clicks per user (churned users count 0)"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for i, pr := range rep.Policies {
		if len(pr.Engagement) == 0 {
			continue
		}
		pts := make(plotter.XYs, len(pr.Engagement))
		errs := make(plotter.YErrors, len(pr.Engagement))
		for s, e := range pr.Engagement {
			pts[s].X, pts[s].Y = float64(s+1), e.Mean
			errs[s].Low, errs[s].High = e.HalfWidth, e.HalfWidth
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = plotutil.Color(i)
		p.Add(line, points, bars)
		p.Legend.Add(pr.Policy, line, points)
	}
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

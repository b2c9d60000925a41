package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/backend"
	"github.com/novarec/novarec/internal/envflag"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/replay"
	"github.com/novarec/novarec/trainer"
)

// Where ab-offline takes each variant's model from.
const (
	modelsTrained = "trained" // trained here on the log's earlier part
	modelsRedis   = "redis"   // the live snapshots model:VARIANT
)

// abVariant is one variant's offline A/B outcome.
type abVariant struct {
	Name   string                  `json:"name"`
	Reward recommend.RewardWeights `json:"reward"`
	// Model is the evaluated model's version (where it came from is the
	// report's Models).
	Model string `json:"model"`
	// Trained counts what training on the log applied (trained models).
	Trained *trainer.Counters `json:"trained,omitempty"`
	Result  *replay.OPEResult `json:"result"`
	Lift    *replay.Lift      `json:"lift,omitempty"`
}

// abOfflineReport is ab-offline's JSON output.
type abOfflineReport struct {
	Experiment  string      `json:"experiment"`
	Control     string      `json:"control"`
	Log         string      `json:"log"`
	Models      string      `json:"models"`
	From        time.Time   `json:"evaluated_from"`
	Train       int         `json:"train_impressions"`
	Holdout     int         `json:"holdout_impressions"`
	NoveltyW    float64     `json:"estimand_w_nov"`
	Variants    []abVariant `json:"variants"`
	Interrupted bool        `json:"interrupted,omitempty"`
}

// abOfflineMain judges an experiment's variants before (or while) they get
// traffic: each variant's policy — the HRL with the model trained under its
// reward weights — is scored by off-policy evaluation on logged
// impressions, and compared with control's on the same impressions.
//
//	trainer ab-offline -experiments FILE -log impressions.jsonl,feedback.jsonl
//
// With -models trained (the default), each variant's model is trained here,
// by the trainer's own Core, on the earlier part of the log (all variants'
// impressions: the logged propensities correct for whoever served them) and
// evaluated on the later part (-holdout), so a weighting that has never
// served can be judged. With -models redis, the live snapshots are
// evaluated on the same held-out part; they may have learned from it.
func abOfflineMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ab-offline", flag.ContinueOnError)
	fs.SetOutput(stdout)
	file := fs.String("experiments", envflag.String("NOVAREC_EXPERIMENTS", ""), "the experiments file (env NOVAREC_EXPERIMENTS; required)")
	logPaths := fs.String("log", "", "the service's event log: JSON-lines files of rec.impressions and rec.feedback events, comma-separated (required)")
	catPath := fs.String("catalog", "", "the catalog, a MovieLens directory or a JSON file of items; default the embedded recsvc's generated catalog")
	models := fs.String("models", modelsTrained, "where each variant's model comes from: trained (on the log before the holdout) or redis (the live model:VARIANT snapshots)")
	holdout := fs.Float64("holdout", 0.5, "share of the log's impressions, the latest ones, evaluated on (in (0,1])")
	redisAddr := fs.String("redis", envflag.String("REDIS_ADDR", ""), "Redis address(es), for -models redis (env REDIS_ADDR)")
	redisConn := backend.RedisFlags(fs)
	prefix := fs.String("prefix", envflag.String("NOVAREC_PREFIX", "nr:"), "Redis key prefix (env NOVAREC_PREFIX)")
	draws := fs.Int("draws", 10, "slates drawn per impression to estimate each variant's probability of the logged top item")
	seed := fs.Uint64("seed", 1, "seed of the draws (the same for every variant, so their draws are paired)")
	clip := fs.Float64("clip", 0, "cap on importance weights (0 = none)")
	wNov := fs.Float64("w-nov", 0, "estimand: a click on the top item is worth 1 + w_nov·novelty for every variant (0 = clicks), one yardstick for all")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	progress := fs.Bool("progress", true, "show a progress bar on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *file == "":
		return errors.New("-experiments (or NOVAREC_EXPERIMENTS) is required: the variants to compare")
	case *logPaths == "":
		return errors.New("-log is required: the JSON-lines event log (rec.impressions and rec.feedback) to evaluate on")
	case *models != modelsTrained && *models != modelsRedis:
		return fmt.Errorf("-models must be %s or %s, not %q", modelsTrained, modelsRedis, *models)
	case *models == modelsRedis && *redisAddr == "":
		return errors.New("-models redis needs REDIS_ADDR (or -redis)")
	case !(*holdout > 0 && *holdout <= 1):
		return fmt.Errorf("-holdout must be in (0,1], not %v", *holdout)
	case *models == modelsTrained && *holdout == 1:
		return errors.New("-holdout 1 leaves nothing to train on; use -models redis to evaluate live snapshots on the whole log")
	case *draws < 1 || *clip < 0 || math.IsNaN(*wNov) || math.IsInf(*wNov, 0):
		return errors.New("-draws must be positive, -clip not negative and -w-nov finite")
	}
	exp, err := experiment.Load(*file)
	if err != nil {
		return err
	}
	l, items, err := loadLogAndCatalog(*logPaths, *catPath, stdout)
	if err != nil {
		return err
	}
	if len(l.Impressions) == 0 {
		return fmt.Errorf("%s has no impressions to evaluate on", *logPaths)
	}
	from := holdoutStart(l.Impressions, *holdout)
	var train []events.Impression
	var trainFB []events.Feedback
	for _, im := range l.Impressions {
		if im.TS < from {
			train = append(train, im)
		}
	}
	for _, f := range l.Feedback {
		if f.TS < from {
			trainFB = append(trainFB, f)
		}
	}
	rep := abOfflineReport{
		Experiment: exp.Name, Control: exp.Control, Log: *logPaths, Models: *models,
		From: time.UnixMilli(from).UTC(), Train: len(train), Holdout: len(l.Impressions) - len(train), NoveltyW: *wNov,
	}
	fmt.Fprintf(stdout, "offline A/B of %s on %s: %d impressions, %d feedback events; models: %s; evaluated on the last %d impressions (from %s); estimand: top-slot reward, click = 1 + %.3g·novelty\n",
		exp.Name, *logPaths, len(l.Impressions), len(l.Feedback), *models, rep.Holdout, rep.From.Format(time.RFC3339), *wNov)

	var store *features.Store
	if *models == modelsRedis {
		opts, err := redisConn.Options(envflag.List(*redisAddr))
		if err != nil {
			return err
		}
		rdb := redis.NewUniversalClient(opts)
		defer rdb.Close()
		store = features.NewStore(rdb, features.Options{Prefix: *prefix})
	}
	snap, err := l.Catalog(items)
	if err != nil {
		return err
	}
	cat := staticCatalog{snap}

	// Control first, so the others' lifts can be computed as they finish.
	vs := slices.Clone(exp.Variants)
	slices.SortStableFunc(vs, func(a, b experiment.Variant) int {
		switch {
		case a.Name == exp.Control && b.Name != exp.Control:
			return -1
		case b.Name == exp.Control && a.Name != exp.Control:
			return 1
		}
		return 0
	})
	var runErr error
	for i, v := range vs {
		out := abVariant{Name: v.Name, Reward: v.Reward}
		var m *recommend.Model
		if store != nil {
			m, err = liveModel(ctx, store, v.Name)
		} else {
			m, out.Trained, err = trainedModel(ctx, v, cat, train, trainFB)
		}
		if err != nil {
			runErr = fmt.Errorf("variant %s: %w", v.Name, err)
			break
		}
		out.Model = m.Version
		pcfg := policy.DefaultConfig()
		pcfg.Learner.Reward = v.Reward
		pcfg.Model = m
		p, err := policy.New(policy.HRL, pcfg)
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.Name, err)
		}
		ocfg := replay.OPEConfig{
			Draws: *draws, Seed: *seed, Clip: *clip, From: from,
			Reward: recommend.RewardWeights{Novelty: *wNov},
		}
		res, err := offPolicy(ctx, l, items, p, ocfg, fmt.Sprintf("%-10s [%d/%d]", v.Name, i+1, len(vs)), *progress)
		if err != nil {
			runErr = fmt.Errorf("variant %s: %w", v.Name, err)
			break
		}
		res.Policy = v.Name
		out.Result = res
		if i > 0 { // vs[0] is control (Validate requires it among the variants)
			lift, err := replay.PairedLift(res, rep.Variants[0].Result)
			if err != nil {
				return err
			}
			out.Lift = &lift
		}
		rep.Variants = append(rep.Variants, out)
	}
	rep.Interrupted = runErr != nil && (errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded))
	if len(rep.Variants) > 0 {
		if err := writeABOfflineTable(stdout, &rep); err != nil {
			return errors.Join(runErr, err)
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

// liveModel is a variant's current snapshot from Redis.
func liveModel(ctx context.Context, store *features.Store, variant string) (*recommend.Model, error) {
	b, err := store.GetModel(ctx, variant)
	if err != nil {
		return nil, err
	}
	m, _, err := recommend.DecodeModel(b)
	return m, err
}

// trainedModel trains a variant's model on the log's training part with the
// variant's reward weights, as its trainer would have.
func trainedModel(ctx context.Context, v experiment.Variant, cat trainer.Snapshots, imps []events.Impression, fbs []events.Feedback) (*recommend.Model, *trainer.Counters, error) {
	cfg := trainer.DefaultConfig()
	cfg.Variant = v.Name
	cfg.Learner.Reward = v.Reward
	m, c, err := trainer.TrainOnLog(ctx, cfg, nil, cat, imps, fbs)
	if err != nil {
		return nil, nil, err
	}
	return m, &c, nil
}

// holdoutStart is the time stamp from which the latest share of impressions
// begins: the evaluation part of the log.
func holdoutStart(imps []events.Impression, share float64) int64 {
	ts := make([]int64, len(imps))
	for i := range imps {
		ts[i] = imps[i].TS
	}
	slices.Sort(ts)
	k := int(math.Floor(float64(len(ts)) * (1 - share)))
	return ts[min(k, len(ts)-1)]
}

// staticCatalog serves one catalog snapshot to trainer.TrainOnLog.
type staticCatalog struct{ s *catalog.Snapshot }

func (c staticCatalog) Current() *catalog.Snapshot { return c.s }

// writeABOfflineTable prints one row per variant: its estimates and its
// paired lift over control.
func writeABOfflineTable(w io.Writer, rep *abOfflineReport) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tw_nov\tw_div\tmodel\tDR\tIPS\tSNIPS\tlogged\tmatch\tESS\tlift vs control (DR, paired)\tp\t")
	for _, v := range rep.Variants {
		r := v.Result
		snips := pm(r.SNIPS, 4)
		if r.SNIPSError != "" {
			snips = "–"
		}
		lift, p := "–", "–"
		if v.Lift != nil {
			lift = fmt.Sprintf("%+.4f [%+.4f, %+.4f] (%+.1f%%)", v.Lift.Diff.Value, v.Lift.Diff.Lo, v.Lift.Diff.Hi, 100*v.Lift.Relative)
			p = fmt.Sprintf("%.3g", v.Lift.P)
		}
		fmt.Fprintf(tw, "%s\t%.3g\t%.3g\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.0f\t%s\t%s\t\n",
			v.Name, v.Reward.Novelty, v.Reward.Diversity, v.Model, pm(r.DR, 4), pm(r.IPS, 4), snips, pm(r.Logged, 4), r.Match, r.ESS, lift, p)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Variants) > 2 {
		fmt.Fprintf(w, "note: %d variants are compared with control; for a family-wise 5%% level compare each p with %.3g (Bonferroni)\n",
			len(rep.Variants)-1, 0.05/float64(len(rep.Variants)-1))
	}
	fmt.Fprintln(w, "± is the 95% interval over evaluated impressions; match is each variant's mean probability of the logged top item; a small ESS means the logs say little about that variant")
	return nil
}

// Command trainer runs novarec's learning loop against real Redis and Kafka:
// it consumes rec.impressions and rec.feedback, updates both levels of one
// variant's policy (trainer.Trainer), publishes model snapshots to Redis
// model:VARIANT that recsvc hot-swaps, and checkpoints its state before
// every offset commit so a crash loses nothing and applies nothing twice.
// By default it also runs the feature updater (rec.feedback → Redis user
// state).
//
//	REDIS_ADDR=127.0.0.1:6379 KAFKA_BROKERS=kafka1:9092 trainer -variant default
//
// There is no embedded mode: `go run ./cmd/recsvc` with no servers runs the
// trainer in-process instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
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

// config is everything the trainer reads from flags and environment.
type config struct {
	redisAddrs  []string
	kafka       []string
	prefix      string
	variant     string
	window      time.Duration
	publish     time.Duration
	publishN    int
	commit      time.Duration
	commitN     int
	session     time.Duration
	reward      recommend.RewardWeights
	modeRefit   int
	modeBelief  bool
	modePrior   bool
	modeSwitch  bool
	modeRoutine bool
	hedge       float64
	metricsAddr string
	updater     bool
	partitioned bool
	collabRefit time.Duration
	// redisConn and kafkaConn are the connection settings of
	// internal/backend (credentials, TLS, Sentinel, SASL). Pointers, so
	// that printing a config shows addresses rather than passwords.
	redisConn *backend.Redis
	kafkaConn *backend.Kafka
	// partitions and replication are those of the topics the trainer creates.
	partitions, replication int
	// warnings are logged once the logger exists.
	warnings    []string
	logLevel    slog.Level
	experiments string
}

func parseConfig(args []string) (config, error) {
	var c config
	d := trainer.DefaultConfig()
	fs := flag.NewFlagSet("trainer", flag.ContinueOnError)
	fs.Usage = func() { usage(fs.Output(), fs) }
	redisAddr := fs.String("redis", envflag.String("REDIS_ADDR", ""), "Redis address(es), comma-separated for Cluster/Sentinel (env REDIS_ADDR; required)")
	brokers := fs.String("kafka", envflag.String("KAFKA_BROKERS", ""), "Kafka bootstrap brokers, comma-separated (env KAFKA_BROKERS; required)")
	fs.StringVar(&c.prefix, "prefix", envflag.String("NOVAREC_PREFIX", "nr:"), "Redis key prefix, the same as recsvc's (env NOVAREC_PREFIX)")
	fs.StringVar(&c.experiments, "experiments", envflag.String("NOVAREC_EXPERIMENTS", ""), "A/B experiments file: run one learner per variant with its reward weights, instead of -variant/-w-nov/-w-div (env NOVAREC_EXPERIMENTS)")
	fs.StringVar(&c.variant, "variant", envflag.String("NOVAREC_VARIANT", d.Variant), "variant whose model this trainer learns and publishes (env NOVAREC_VARIANT)")
	fs.DurationVar(&c.window, "window", d.Window, "attribution window: feedback counts for an impression this long after it (event time)")
	fs.DurationVar(&c.publish, "publish-every", d.PublishEvery, "publish a model snapshot at least this often while learning")
	fs.IntVar(&c.publishN, "publish-updates", d.PublishUpdates, "publish a model snapshot after this many updates")
	fs.DurationVar(&c.commit, "commit-interval", d.CommitInterval, "checkpoint the trainer state and commit offsets this often (bounds redelivery after a crash)")
	fs.IntVar(&c.commitN, "commit-every", d.CommitEvery, "also commit after this many events (0 = by time only); replicas (-partitioned) merge their updates at commits and should commit every few hundred events (docs/trainer-scale.md#model-quality-with-replicas)")
	fs.BoolVar(&c.partitioned, "partitioned", envflag.Bool("NOVAREC_TRAINER_PARTITIONED", false), "run as one of several replicas of each variant's learner: state per partition, model updates summed into one shared model (every replica of a variant must set it; docs/trainer-scale.md#scaling-out) (env NOVAREC_TRAINER_PARTITIONED)")
	fs.DurationVar(&c.session, "session-timeout", d.SessionTimeout, "consumer-group session timeout: how long a restarted trainer waits for a crashed one's partitions")
	fs.Float64Var(&c.reward.Novelty, "w-nov", d.Learner.Reward.Novelty, "reward weight w_nov of surprising clicks (3 = the ×4 boost of Chen et al. 2021)")
	fs.Float64Var(&c.reward.Diversity, "w-div", d.Learner.Reward.Diversity, "reward weight w_div of slate diversity")
	fs.IntVar(&c.modeRefit, "mode-refit", envflag.Int("NOVAREC_MODE_REFIT", d.Learner.ModeRefit), "fit the mode model to the latest sessions every N decisions, after first fits at N/8, N/4 and N/2, and publish it with the model: novel items get no seats where it says they do not pay (0 = off; docs/design.md#high-level-intent) (env NOVAREC_MODE_REFIT)")
	fs.BoolVar(&c.modeBelief, "mode-belief", envflag.Bool("NOVAREC_MODE_BELIEF", d.Learner.ModeBelief), "publish the fitted mode model as the one that reads the session and user propensities; false: the fit only decides whether novelty pays at all (docs/design.md#high-level-intent) (env NOVAREC_MODE_BELIEF)")
	fs.BoolVar(&c.modePrior, "mode-prior", envflag.Bool("NOVAREC_MODE_PRIOR", d.Learner.ModePrior), "publish the fitted population prior of the user propensity too; off, the prior stays Beta(1, 3): fitted priors misread traffic through the HTTP API (docs/evaluation-http.md#an-independent-http-client) (env NOVAREC_MODE_PRIOR)")
	fs.BoolVar(&c.modeRoutine, "mode-routine", envflag.Bool("NOVAREC_MODE_ROUTINE", d.Learner.ModeRoutine), "fit the mode model's routine too: how much less an exploring session clicks a familiar slate, what an all-familiar slate says of the mode (docs/design.md#high-level-intent) (env NOVAREC_MODE_ROUTINE)")
	fs.BoolVar(&c.modeSwitch, "mode-switch", envflag.Bool("NOVAREC_MODE_SWITCH", d.Learner.ModeSwitch), "fit the mode's switch rates within a session; false: a session keeps its mode, which read an independent client's loyal users better through the HTTP API, whose sessions never switch (docs/evaluation-http.md#an-independent-http-client) (env NOVAREC_MODE_SWITCH)")
	fs.Float64Var(&c.hedge, "hedge", envflag.Float("NOVAREC_HEDGE", d.Learner.Hedge), "the hedging recsvc serves with (its -hedge; env NOVAREC_HEDGE, shared): the learner scores logged slates as they were served, and a hedged slate's scores leave out the levels' novelty weight β (0 = not hedged)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", envflag.String("NOVAREC_METRICS_ADDR", ":9091"), "serve /metrics and /healthz on this address (env NOVAREC_METRICS_ADDR; empty = off)")
	fs.BoolVar(&c.updater, "feature-updater", true, "also run the feature updater (rec.feedback → Redis user state, group novarec-feature-updater); turn off when recsvc runs it")
	fs.DurationVar(&c.collabRefit, "collab-refit", envflag.Duration("NOVAREC_COLLAB_REFIT", 30*time.Second), "run the collaborative learner (group novarec-collab: item co-occurrence from every engagement and stored history) and publish its model this often; 0 = off, when another trainer runs it (env NOVAREC_COLLAB_REFIT)")
	redisConn, kafkaConn := backend.RedisFlags(fs), backend.KafkaFlags(fs)
	level := fs.String("log-level", envflag.String("NOVAREC_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env NOVAREC_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("-log-level: %w", err)
	}
	c.redisAddrs, c.kafka = envflag.List(*redisAddr), envflag.List(*brokers)
	switch {
	case len(c.kafka) == 0:
		return c, errors.New("KAFKA_BROKERS (or -kafka) is required: the standalone trainer has no embedded mode; for a one-process trial run `go run ./cmd/recsvc`, which runs the trainer in-process")
	case len(c.redisAddrs) == 0:
		return c, errors.New("REDIS_ADDR (or -redis) is required: the standalone trainer has no embedded mode; for a one-process trial run `go run ./cmd/recsvc`, which runs the trainer in-process")
	case c.variant == "":
		return c, errors.New("-variant must not be empty")
	case c.window <= 0 || c.publish <= 0 || c.commit <= 0 || c.publishN <= 0 || c.session <= 0:
		return c, errors.New("-window, -publish-every, -publish-updates, -commit-interval and -session-timeout must be positive")
	case c.commitN < 0:
		return c, errors.New("-commit-every must be 0 (by time only) or positive")
	case !(c.hedge >= 0) || math.IsInf(c.hedge, 0):
		return c, fmt.Errorf("-hedge must be 0 (not hedged) or positive, not %v", c.hedge)
	}
	checked, err := backend.Check(redisConn, kafkaConn, c.redisAddrs)
	if err != nil {
		return c, err
	}
	c.partitions, c.replication, c.warnings = checked.Partitions, checked.Replication, checked.Warnings
	c.redisConn, c.kafkaConn = redisConn, kafkaConn
	return c, nil
}

// subcommand is one of the trainer's commands besides the default (learn).
type subcommand struct {
	run func(ctx context.Context, args []string, stdout io.Writer) error
	// what says in one line what it does, for `trainer help`.
	what string
}

// subcommands by name.
var subcommands = map[string]subcommand{
	"ab-report":  {abReportMain, "print the running experiment's A/B report from the trainers' aggregates in Redis"},
	"ab-offline": {abOfflineMain, "judge an experiment's variants offline: each variant's model, by off-policy evaluation on logged impressions"},
	"simulate":   {simulateMain, "run the policies against simulated users: engagement, novelty, diversity, intent inference"},
	"replay": {func(ctx context.Context, args []string, out io.Writer) error {
		return replayMain(ctx, args, out, newOfflinePolicy)
	}, "replay MovieLens or the service's event log through the policies in time order"},
	"ope": {func(ctx context.Context, args []string, out io.Writer) error {
		return opeMain(ctx, args, out, newOfflinePolicy)
	}, "off-policy evaluation (IPS, SNIPS, DR) of policies on the service's logged impressions and feedback"},
	"rebuild": {rebuildMain, "rebuild Redis after it lost its data: the catalog from rec.catalog, user state from rec.feedback"},
}

// usage prints how to call the trainer: the subcommands, then the flags of
// the default command.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage:
  trainer [flags]                learn: consume rec.impressions and rec.feedback, publish models
  trainer <command> [flags]      run a command (trainer <command> -h for its flags)
  trainer help [command]         this text, or a command's flags

Commands:
`)
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, subcommands[n].what)
	}
	fmt.Fprintln(w, "\nFlags of learn:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// newOfflinePolicy builds a named offline policy with the given reward
// weights, on the same engine and learner as serving.
func newOfflinePolicy(name string, w recommend.RewardWeights) (replay.Policy, error) {
	cfg := policy.DefaultConfig()
	cfg.Learner.Reward = w
	return policy.New(name, cfg)
}

func main() {
	if len(os.Args) > 1 {
		name := os.Args[1]
		args := os.Args[2:]
		if name == "help" {
			if len(args) == 0 {
				_, err := parseConfig([]string{"-h"})
				if !errors.Is(err, flag.ErrHelp) {
					fmt.Fprintln(os.Stderr, "trainer help:", err)
				}
				return
			}
			name, args = args[0], []string{"-h"}
			if _, ok := subcommands[name]; !ok {
				fmt.Fprintf(os.Stderr, "trainer help: no command %q (trainer help lists them)\n", name)
				os.Exit(2)
			}
		}
		if sub, ok := subcommands[name]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			err := sub.run(ctx, args, os.Stdout)
			stop()
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "trainer %s: %v\n", name, err)
				os.Exit(1)
			}
			return
		}
	}
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trainer:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	slog.SetDefault(log)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("trainer stopped", "err", err)
		os.Exit(1)
	}
}

// run wires everything, learns until ctx ends, then shuts down in order:
// the trainer (final publish, checkpoint and commit) and the feature
// updater stop, the dead-letter producer flushes, the metrics server closes.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	redisOpts, err := cfg.redisConn.Options(cfg.redisAddrs)
	if err != nil {
		return err
	}
	kafkaSec, err := cfg.kafkaConn.Security()
	if err != nil {
		return err
	}
	redisOpts.PoolSize = 16
	rdb := redis.NewUniversalClient(redisOpts)
	defer rdb.Close()
	store := features.NewStore(rdb, features.Options{Prefix: cfg.prefix})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var metricsSrv *http.Server
	if cfg.metricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("metrics listening", "addr", ln.Addr().String())
	}

	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = events.EnsureTopics(tctx, cfg.kafka, kafkaSec, cfg.partitions, cfg.replication, events.TopicImpressions, events.TopicFeedback, events.TopicDeadLetter, events.TopicCatalog)
	cancel()
	switch {
	case events.IsAuthFailure(err):
		// Retrying cannot fix credentials or certificates.
		if metricsSrv != nil {
			_ = metricsSrv.Close()
		}
		return fmt.Errorf("kafka: %w", err)
	case err != nil:
		log.Warn("could not ensure topics; assuming they exist", "err", err)
	}

	cat := features.NewCatalogCache(store, catalog.DefaultDim, log, reg)
	if err := cat.Refresh(ctx); err != nil {
		log.Warn("initial catalog load failed; will retry (events wait until there is a catalog)", "err", err)
	}
	if cat.Current() == nil {
		log.Warn("the catalog is empty; events wait until items are added (PUT /v1/items on recsvc)")
	}
	producer := events.NewProducer(cfg.kafka, events.ProducerOptions{Security: kafkaSec, Registerer: reg, Logger: log, Buffer: 1000})

	// Background loops share bg; the trainer runs under ctx itself and
	// ends the process when it fails.
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { cat.Run(bg) })
	if cfg.updater {
		consumer, err := events.NewConsumer(events.ConsumerOptions{
			Brokers: cfg.kafka, Security: kafkaSec, GroupID: "novarec-feature-updater", Topics: []string{events.TopicFeedback},
			DeadLetter: producer, Registerer: reg, Logger: log,
		})
		if err != nil {
			stopBG()
			wg.Wait()
			return fmt.Errorf("feature updater: %w", err)
		}
		// The served models, followed as recsvc follows them: each
		// event's variant's fitted mode model reads it.
		models := features.NewModelSet(store, recommend.DefaultModel(), log, reg)
		wg.Go(func() { models.Run(bg) })
		up := &trainer.FeatureUpdater{Store: store, Catalog: cat, Models: models}
		wg.Go(func() {
			if err := consumer.Run(bg, up.Handle); err != nil {
				log.Error("feature updater stopped", "err", err)
			}
			_ = consumer.Close()
		})
	}

	if cfg.collabRefit > 0 {
		cl, err := trainer.NewCollabLearner(store, collab.DefaultConfig(), cfg.collabRefit, log, reg)
		if err != nil {
			stopBG()
			wg.Wait()
			return err
		}
		opts := events.ConsumerOptions{Brokers: cfg.kafka, Security: kafkaSec, DeadLetter: producer, Registerer: reg, Logger: log}
		wg.Go(func() {
			if err := trainer.RunCollab(bg, cl, opts); err != nil && bg.Err() == nil {
				log.Error("collaborative learner stopped", "err", err)
			}
		})
	}

	tcfg := trainer.DefaultConfig()
	tcfg.Variant = cfg.variant
	tcfg.Brokers, tcfg.Security = cfg.kafka, kafkaSec
	tcfg.Window = cfg.window
	tcfg.PublishEvery = cfg.publish
	tcfg.PublishUpdates = cfg.publishN
	tcfg.CommitInterval = cfg.commit
	tcfg.CommitEvery = cfg.commitN
	tcfg.SessionTimeout = cfg.session
	tcfg.Partitioned = cfg.partitioned
	tcfg.Learner.Reward = cfg.reward
	tcfg.Learner.ModeRefit = cfg.modeRefit
	tcfg.Learner.ModeBelief, tcfg.Learner.ModePrior, tcfg.Learner.ModeSwitch = cfg.modeBelief, cfg.modePrior, cfg.modeSwitch
	tcfg.Learner.ModeRoutine = cfg.modeRoutine
	tcfg.Learner.Hedge = cfg.hedge
	tcfgs := []trainer.Config{tcfg}
	if cfg.experiments != "" {
		exp, err := experiment.Load(cfg.experiments)
		if err != nil {
			stopBG()
			wg.Wait()
			return err
		}
		tcfgs = tcfgs[:0]
		for _, v := range exp.Variants {
			c := tcfg
			c.Variant, c.Experiment, c.Learner.Reward = v.Name, exp.Name, v.Reward
			tcfgs = append(tcfgs, c)
		}
	}
	// One learner per variant, each its own consumer group on this goroutine
	// or a sibling; the first failure stops them all.
	tctx, stopTrainers := context.WithCancel(ctx)
	errs := make([]error, len(tcfgs))
	var twg sync.WaitGroup
	for i, tc := range tcfgs {
		log.Info("trainer starting", "variant", tc.Variant, "experiment", tc.Experiment, "brokers", cfg.kafka, "redis", cfg.redisAddrs,
			"prefix", cfg.prefix, "feature_updater", cfg.updater, "w_nov", tc.Learner.Reward.Novelty, "w_div", tc.Learner.Reward.Diversity)
		twg.Go(func() {
			errs[i] = trainer.Run(tctx, tc, trainer.Deps{Store: store, Catalog: cat, DeadLetter: producer, Registerer: reg, Logger: log})
			if errs[i] != nil {
				stopTrainers()
			}
		})
	}
	twg.Wait()
	stopTrainers()
	runErr := errors.Join(errs...)

	stopBG()
	wg.Wait()
	sctx, cancelS := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelS()
	if err := producer.Close(sctx); err != nil {
		log.Warn("dead-letter flush incomplete", "err", err)
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(sctx)
	}
	return runErr
}

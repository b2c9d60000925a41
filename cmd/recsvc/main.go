// Command recsvc serves novarec's recommendations over HTTP.
//
// With REDIS_ADDR and KAFKA_BROKERS unset it starts the whole system in one
// process on embedded, loopback-only servers (a Redis-protocol server and a
// Kafka-protocol cluster) with a generated sample catalog, so that
//
//	go run ./cmd/recsvc
//
// answers recommendations at once. Set the variables to use real servers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/backend"
	"github.com/novarec/novarec/internal/envflag"
	"github.com/novarec/novarec/movielens"
	"github.com/novarec/novarec/playground"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/trainer"
)

// config is everything recsvc reads from flags and environment.
type config struct {
	addr        string
	redisAddrs  []string
	kafka       []string
	prefix      string
	sampleItems int
	sampleUsers int
	movielens   string
	ratings     bool
	updater     string
	trainer     string
	collabRefit time.Duration
	modeFit     modeFit
	// redisConn and kafkaConn are the connection settings of
	// internal/backend (credentials, TLS, Sentinel, SASL; nil = none); they
	// apply to real servers only, never to the embedded ones. Pointers,
	// so that printing a config shows addresses rather than passwords.
	redisConn *backend.Redis
	kafkaConn *backend.Kafka
	// partitions and replication are those of the topics recsvc creates.
	partitions, replication int
	// maxInflight bounds concurrently served data-plane requests (0 = no bound).
	maxInflight int
	// intentEpsilon is the engine's exploration floor (recommend.Config.IntentEpsilon).
	intentEpsilon float64
	// hedge is the slate's hedging between intents (recommend.Config.Hedge).
	hedge float64
	// greedy is the share of sampled slate positions that take the
	// ranker's argmax (recommend.Config.Greedy).
	greedy float64
	// warnings are logged once the logger exists.
	warnings    []string
	logLevel    slog.Level
	drain       time.Duration
	debugAddr   string
	experiments string
	adminToken  string
	// apiKeys is the keys file, insecureOpen serves real servers without
	// one, rateLimits are the per-key buckets and keysPoll how often the
	// file is looked at (cmd/recsvc/keys.go).
	apiKeys      string
	insecureOpen bool
	rateLimits   apikey.Limits
	keysPoll     time.Duration
	// playground serves the playground page at /.
	playground bool
	// eventBuffer is the producer's buffer (0 = events' default, 10000);
	// tests shrink it to reach the bound quickly.
	eventBuffer int
	// durability and client limits: see durability.go.
	spoolDir          string
	spoolMaxBytes     int64
	ackTimeout        time.Duration
	bodyTimeout       time.Duration
	maxConnsPerClient int
	redisBudget       time.Duration
	// redisBatch sends user-state reads through go-redis's auto-pipeliner,
	// waiting redisBatchDelay for more (features.Store.BatchLoads).
	redisBatch      bool
	redisBatchDelay time.Duration
	// redisIOTimeout overrides go-redis's read and write timeouts (0 = its
	// default, 3s); fault tests make it long so that a request that waited
	// on a hung Redis instead of its budget could not go unnoticed.
	redisIOTimeout time.Duration
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("recsvc", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", envflag.String("NOVAREC_ADDR", ":8080"), "HTTP listen address (env NOVAREC_ADDR)")
	redisAddr := fs.String("redis", envflag.String("REDIS_ADDR", ""), "Redis address(es), comma-separated for Cluster/Sentinel (env REDIS_ADDR; empty = embedded)")
	brokers := fs.String("kafka", envflag.String("KAFKA_BROKERS", ""), "Kafka bootstrap brokers, comma-separated (env KAFKA_BROKERS; empty = embedded)")
	fs.StringVar(&c.prefix, "prefix", envflag.String("NOVAREC_PREFIX", "nr:"), "Redis key prefix (env NOVAREC_PREFIX)")
	c.sampleItems = envflag.Int("NOVAREC_SAMPLE_ITEMS", -1)
	fs.Var(autoInt{&c.sampleItems}, "sample-items", "generate this many sample items when the catalog is empty: a `count`, or auto = 3000 in embedded mode, else 0 (env NOVAREC_SAMPLE_ITEMS) (default auto)")
	fs.IntVar(&c.sampleUsers, "sample-users", envflag.Int("NOVAREC_SAMPLE_USERS", 0), "with a generated catalog, also generate this many users (user-0, user-1, ...) with click histories (env NOVAREC_SAMPLE_USERS)")
	fs.StringVar(&c.movielens, "movielens", envflag.String("NOVAREC_MOVIELENS", ""), "import a MovieLens directory (movies.csv, movies.dat or u.item) into the catalog at start (env NOVAREC_MOVIELENS)")
	fs.BoolVar(&c.ratings, "movielens-ratings", true, "with -movielens, also import the ratings as user histories")
	fs.StringVar(&c.updater, "feature-updater", envflag.String("NOVAREC_FEATURE_UPDATER", "auto"), "run the feature updater (rec.feedback → Redis user state) in this process: on, off, or auto = on in embedded mode; in production cmd/trainer runs it (env NOVAREC_FEATURE_UPDATER)")
	fs.StringVar(&c.trainer, "trainer", envflag.String("NOVAREC_TRAINER", "auto"), "run the trainer (one learner per variant) in this process: on, off, or auto = on in embedded mode (env NOVAREC_TRAINER)")
	dl := trainer.DefaultConfig().Learner
	fs.IntVar(&c.modeFit.refit, "mode-refit", envflag.Int("NOVAREC_MODE_REFIT", dl.ModeRefit), "with the trainer in this process, refit the mode model every N decisions (the first at N/8, N/4, N/2), as trainer -mode-refit; 0 = off (env NOVAREC_MODE_REFIT)")
	fs.BoolVar(&c.modeFit.belief, "mode-belief", envflag.Bool("NOVAREC_MODE_BELIEF", dl.ModeBelief), "with the trainer in this process, read the session and user propensities with the fitted mode model, as trainer -mode-belief; false: the fit only decides whether novelty pays (env NOVAREC_MODE_BELIEF)")
	fs.BoolVar(&c.modeFit.prior, "mode-prior", envflag.Bool("NOVAREC_MODE_PRIOR", dl.ModePrior), "with the trainer in this process, publish the fitted population prior too, as trainer -mode-prior (env NOVAREC_MODE_PRIOR)")
	fs.BoolVar(&c.modeFit.routine, "mode-routine", envflag.Bool("NOVAREC_MODE_ROUTINE", dl.ModeRoutine), "with the trainer in this process, fit the mode model's routine (how much less an exploring session clicks a familiar slate), as trainer -mode-routine (env NOVAREC_MODE_ROUTINE)")
	fs.BoolVar(&c.modeFit.switches, "mode-switch", envflag.Bool("NOVAREC_MODE_SWITCH", dl.ModeSwitch), "with the trainer in this process, fit the mode's switch rates within a session (false: a session keeps its mode), as trainer -mode-switch (env NOVAREC_MODE_SWITCH)")
	fs.DurationVar(&c.collabRefit, "collab-refit", envflag.Duration("NOVAREC_COLLAB_REFIT", 30*time.Second), "with the trainer in this process, also run the collaborative learner and publish its item model this often; 0 = off (env NOVAREC_COLLAB_REFIT)")
	redisConn, kafkaConn := backend.RedisFlags(fs), backend.KafkaFlags(fs)
	fs.IntVar(&c.maxInflight, "max-inflight", envflag.Int("NOVAREC_MAX_INFLIGHT", api.DefaultMaxInflight), "most /v1/recommend and /v1/feedback requests served at once; more are answered 503 at once (env NOVAREC_MAX_INFLIGHT; 0 = no bound)")
	fs.Float64Var(&c.intentEpsilon, "intent-epsilon", envflag.Float("NOVAREC_INTENT_EPSILON", 0), "exploration floor of the intent level: sample from (1−ε)·π + ε/K so every level is served now and then (env NOVAREC_INTENT_EPSILON; 0..1, default 0)")
	fs.Float64Var(&c.greedy, "greedy", envflag.Float("NOVAREC_GREEDY", recommend.DefaultConfig().Greedy), "share of a sampled slate's positions that take the ranker's argmax instead of a draw (the level is still sampled); the logged propensities are the mixture's, so they stay exact (env NOVAREC_GREEDY; 0 = sample every decision, below 1)")
	fs.Float64Var(&c.hedge, "hedge", envflag.Float("NOVAREC_HEDGE", recommend.DefaultConfig().Hedge), "hedge every slate between the session's intents: about P(explore)·k positions go to novel items, interleaved from the top; the score bonus of the favoured intent's items (env NOVAREC_HEDGE; 0 = off)")
	level := fs.String("log-level", envflag.String("NOVAREC_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env NOVAREC_LOG_LEVEL)")
	fs.StringVar(&c.debugAddr, "debug-addr", envflag.String("NOVAREC_DEBUG_ADDR", ""), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (env NOVAREC_DEBUG_ADDR; empty = off)")
	fs.StringVar(&c.experiments, "experiments", envflag.String("NOVAREC_EXPERIMENTS", ""), "A/B experiments file (YAML); reload with POST /v1/admin/experiments/reload (env NOVAREC_EXPERIMENTS)")
	checkKeys := c.keyFlags(fs)
	fs.BoolVar(&c.playground, "playground", envflag.Bool("NOVAREC_PLAYGROUND", true), "serve the playground page at / (env NOVAREC_PLAYGROUND)")
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "how long shutdown waits for in-flight requests and the event flush")
	durabilityFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for name, v := range map[string]string{"-trainer": c.trainer, "-feature-updater": c.updater} {
		if v != "on" && v != "off" && v != "auto" {
			return c, fmt.Errorf("%s must be on, off or auto, not %q", name, v)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("-log-level: %w", err)
	}
	if err := checkKeys(); err != nil {
		return c, err
	}
	c.redisAddrs, c.kafka = envflag.List(*redisAddr), envflag.List(*brokers)
	if !(c.intentEpsilon >= 0 && c.intentEpsilon <= 1) {
		return c, fmt.Errorf("-intent-epsilon must be in [0,1], not %v", c.intentEpsilon)
	}
	if !(c.greedy >= 0 && c.greedy < 1) {
		return c, fmt.Errorf("-greedy must be in [0,1), not %v", c.greedy)
	}
	if !(c.hedge >= 0) || math.IsInf(c.hedge, 0) {
		return c, fmt.Errorf("-hedge must be 0 (off) or positive, not %v", c.hedge)
	}
	if c.maxInflight < 0 {
		return c, fmt.Errorf("-max-inflight must be 0 (no bound) or positive, not %d", c.maxInflight)
	}
	if err := c.checkDurability(); err != nil {
		return c, err
	}
	checked, err := backend.Check(redisConn, kafkaConn, c.redisAddrs)
	if err != nil {
		return c, err
	}
	c.partitions, c.replication, c.warnings = checked.Partitions, checked.Replication, checked.Warnings
	c.redisConn, c.kafkaConn = redisConn, kafkaConn
	return c, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "recsvc:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	slog.SetDefault(log)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("recsvc stopped", "err", err)
		os.Exit(1)
	}
}

// running tells tests where a started recsvc listens.
type running struct {
	addr    string
	brokers []string
	redis   []string
}

// run starts everything, serves until ctx ends, then shuts down in order:
// stop accepting and drain HTTP, stop the background loops, flush the
// producer, close the embedded servers. started, if set, is called once
// the server accepts connections.
func run(ctx context.Context, cfg config, log *slog.Logger, started func(running)) error {
	embedded := len(cfg.redisAddrs) == 0 || len(cfg.kafka) == 0
	reg := prometheus.NewRegistry()
	keys, err := openKeys(cfg, reg, log)
	if err != nil {
		return err
	}
	if len(cfg.redisAddrs) == 0 {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		cfg.redisAddrs = []string{mr.Addr()}
		cfg.redisConn = nil
		log.Warn("embedded mode: in-process Redis-protocol server (data is lost at exit); set REDIS_ADDR=host:port to use a real Redis", "addr", mr.Addr())
	}
	var kafkaSec events.Security
	if cfg.kafkaConn != nil && len(cfg.kafka) > 0 {
		var err error
		if kafkaSec, err = cfg.kafkaConn.Security(); err != nil {
			return err
		}
	}
	if len(cfg.kafka) == 0 {
		k, err := events.StartEmbedded(3)
		if err != nil {
			return fmt.Errorf("start embedded kafka: %w", err)
		}
		defer k.Close()
		cfg.kafka = k.Brokers()
		log.Warn("embedded mode: in-process Kafka-protocol cluster; set KAFKA_BROKERS=host:port,... to use a real cluster", "brokers", cfg.kafka)
	} else {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := events.EnsureTopics(tctx, cfg.kafka, kafkaSec, cfg.partitions, cfg.replication, events.TopicImpressions, events.TopicFeedback, events.TopicDeadLetter, events.TopicCatalog)
		cancel()
		switch {
		case events.IsAuthFailure(err):
			// Retrying cannot fix credentials or certificates; running on
			// would only drop every event.
			return fmt.Errorf("kafka: %w", err)
		case err != nil:
			log.Warn("could not ensure topics; assuming they exist", "err", err)
		}
	}

	redisOpts := &redis.UniversalOptions{Addrs: cfg.redisAddrs}
	if cfg.redisConn != nil {
		var err error
		if redisOpts, err = cfg.redisConn.Options(cfg.redisAddrs); err != nil {
			return err
		}
	}
	// ContextTimeoutEnabled makes go-redis honour the request's deadline (the
	// 100ms store budget) on the wire; without it a hung Redis holds every
	// request for the 3s read timeout (TestFaultRedisServerHangsAndCrashes).
	redisOpts.PoolSize, redisOpts.MinIdleConns, redisOpts.ContextTimeoutEnabled = 64, 8, true
	if cfg.redisIOTimeout > 0 {
		redisOpts.ReadTimeout, redisOpts.WriteTimeout = cfg.redisIOTimeout, cfg.redisIOTimeout
	}
	rdb := redis.NewUniversalClient(redisOpts)
	defer rdb.Close()
	store := features.NewStore(rdb, features.Options{Prefix: cfg.prefix})
	if cfg.redisBatch {
		opts := redis.DefaultAutoPipelineOptions()
		opts.MaxFlushDelay = cfg.redisBatchDelay
		if err := store.BatchLoads(opts); err != nil {
			return err
		}
		defer func() { // before the client's Close (deferred above)
			if err := store.Close(); err != nil {
				log.Warn("stop batching Redis reads", "err", err)
			}
		}()
	}

	producer := events.NewProducer(cfg.kafka, events.ProducerOptions{Buffer: cfg.eventBuffer, Security: kafkaSec, Registerer: reg, Logger: log})
	producerOpen := true
	defer func() {
		if producerOpen { // an early return, before anything needed flushing
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = producer.Close(ctx)
		}
	}()
	cat := features.NewCatalogCache(store, catalog.DefaultDim, log, reg)
	keeper := features.NewCatalogKeeper(store, events.NewCatalogLog(producer, cfg.kafka, kafkaSec), servingVersion(cat), log, reg)
	if err := keeper.Sync(ctx); err != nil {
		log.Warn("could not compare the catalog in Redis with the catalog log; will retry", "err", err)
	}
	if err := seedCatalog(ctx, store, keeper, cfg, embedded, log); err != nil {
		return err
	}
	if err := cat.Refresh(ctx); err != nil {
		log.Warn("initial catalog load failed; will retry", "err", err)
	}
	models := features.NewModelSet(store, recommend.DefaultModel(), log, reg)
	var exps api.Experiments
	if cfg.experiments != "" {
		f, err := experiment.OpenFile(cfg.experiments)
		if err != nil {
			return err
		}
		exps = f
		for _, v := range f.Current().Variants {
			models.Ensure(ctx, v.Name)
		}
		log.Info("experiment running", "experiment", f.Current().Name, "variants", len(f.Current().Variants))
	} else {
		models.Ensure(ctx, api.DefaultVariant)
	}

	durable, err := newDurable(cfg, embedded, producer, reg, log)
	if err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.Background())
	var waits []func()
	goRun := func(f func(context.Context)) {
		done := make(chan struct{})
		go func() { defer close(done); f(bg) }()
		waits = append(waits, func() { <-done })
	}
	goRun(cat.Run)
	goRun(keeper.Run)
	goRun(models.Run)
	if cfg.updater == "on" || (cfg.updater == "auto" && embedded) {
		consumer, err := events.NewConsumer(events.ConsumerOptions{
			Brokers: cfg.kafka, Security: kafkaSec, GroupID: "novarec-feature-updater", Topics: []string{events.TopicFeedback},
			DeadLetter: producer, Registerer: reg, Logger: log,
		})
		if err != nil {
			stopBG()
			return fmt.Errorf("feature updater: %w", err)
		}
		up := &trainer.FeatureUpdater{Store: store, Catalog: cat, Models: models}
		goRun(func(ctx context.Context) {
			if err := consumer.Run(ctx, up.Handle); err != nil {
				log.Error("feature updater stopped", "err", err)
			}
			consumer.Close()
		})
	}

	shown := features.NewShownWriter(store, log)
	goRun(shown.Run)
	if cfg.collabRefit > 0 && (cfg.trainer == "on" || (cfg.trainer == "auto" && embedded)) {
		cl, err := trainer.NewCollabLearner(store, collab.DefaultConfig(), cfg.collabRefit, log, reg)
		if err != nil {
			stopBG()
			return err
		}
		opts := events.ConsumerOptions{Brokers: cfg.kafka, Security: kafkaSec, DeadLetter: producer, Registerer: reg, Logger: log}
		goRun(func(ctx context.Context) {
			if err := trainer.RunCollab(ctx, cl, opts); err != nil && ctx.Err() == nil {
				log.Error("collaborative learner stopped", "err", err)
			}
		})
	}
	if cfg.trainer == "on" || (cfg.trainer == "auto" && embedded) {
		for _, tc := range trainerConfigs(cfg.kafka, kafkaSec, exps, cfg.modeFit, cfg.hedge) {
			goRun(func(ctx context.Context) {
				deps := trainer.Deps{Store: store, Catalog: cat, DeadLetter: producer, Registerer: reg, Logger: log}
				if err := trainer.Run(ctx, tc, deps); err != nil {
					log.Error("trainer stopped", "variant", tc.Variant, "err", err)
				}
			})
		}
	}
	apiCfg := api.Config{
		Store: catalogStore{store, keeper}, Shown: shown, Events: producer, Feedback: durable, Catalog: cat, Models: models,
		Experiments: exps, Reports: store, Keys: keys,
		Engine: newEngine(cfg.intentEpsilon, cfg.hedge, cfg.greedy), Registry: reg, Logger: log,
		MaxInflight: cfg.maxInflight, BodyTimeout: cfg.bodyTimeout, StoreTimeout: cfg.redisBudget,
		Checks: []api.Check{kafkaCheck(producer, durable)},
	}
	if cfg.playground {
		apiCfg.Playground = playground.Handler()
	}
	srv := api.New(apiCfg)
	goRun(func(ctx context.Context) { srv.Run(ctx, time.Second) })
	goRun(watchKeys(keys, cfg))

	if cfg.debugAddr != "" {
		// pprof registers on http.DefaultServeMux; it is served only here,
		// never on the public listener.
		go func() { log.Info("debug server", "err", http.ListenAndServe(cfg.debugAddr, nil)) }()
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		stopBG()
		return fmt.Errorf("listen: %w", err)
	}
	hs := srv.HTTPServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(srv.LimitListener(ln, cfg.maxConnsPerClient)) }()
	if started != nil {
		started(running{addr: ln.Addr().String(), brokers: cfg.kafka, redis: cfg.redisAddrs})
	}
	items := 0
	if s := cat.Current(); s != nil {
		items = s.Len()
	}
	port := ln.Addr().(*net.TCPAddr).Port
	attrs := []any{"addr", ln.Addr().String(), "embedded", embedded, "items", items,
		"try", fmt.Sprintf(`curl -s -XPOST localhost:%d/v1/recommend -H 'Content-Type: application/json' -d '{"user_id":"alice"}'`, port)}
	if cfg.playground {
		attrs = append(attrs, "playground", fmt.Sprintf("http://localhost:%d/", port))
	}
	log.Info("recsvc serving", attrs...)

	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight requests")
	case err := <-serveErr:
		stopBG()
		return fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http drain incomplete", "err", err)
	}
	stopBG()
	for _, w := range waits {
		w()
	}
	if err := durable.Close(sctx); err != nil {
		log.Warn("feedback spool not delivered", "err", err)
	}
	producerOpen = false
	if err := producer.Close(sctx); err != nil {
		log.Warn("event flush incomplete", "err", err)
	}
	st := producer.Stats()
	log.Info("recsvc stopped", "events_published", st.Published, "events_dropped", st.Dropped)
	return nil
}

// newEngine is the serving engine: the defaults that replay and the
// simulator evaluate (recommend.DefaultConfig; a zero Config would serve
// without the popular pool's share), with the operator's exploration floor,
// hedging and greedy share.
func newEngine(intentEpsilon, hedge, greedy float64) *recommend.Engine {
	ec := recommend.DefaultConfig()
	ec.IntentEpsilon, ec.Hedge, ec.Greedy = intentEpsilon, hedge, greedy
	return recommend.NewEngine(ec)
}

// modeFit is how the in-process trainers fit the mode model
// (recommend.LearnerConfig's ModeRefit, ModeBelief, ModePrior, ModeSwitch
// and ModeRoutine).
type modeFit struct {
	refit                            int
	belief, prior, switches, routine bool
}

// trainerConfigs returns one trainer configuration per variant: the
// experiment's variants with their reward weights, or the default variant.
// Their learners score slates with the hedging this process serves with.
func trainerConfigs(brokers []string, sec events.Security, exps api.Experiments, fit modeFit, hedge float64) []trainer.Config {
	base := trainer.DefaultConfig()
	base.Brokers, base.Security = brokers, sec
	base.Learner.ModeRefit, base.Learner.ModeBelief, base.Learner.ModePrior = fit.refit, fit.belief, fit.prior
	base.Learner.ModeSwitch, base.Learner.ModeRoutine = fit.switches, fit.routine
	base.Learner.Hedge = hedge
	if exps == nil || exps.Current() == nil {
		return []trainer.Config{base}
	}
	var out []trainer.Config
	for _, v := range exps.Current().Variants {
		tc := base
		tc.Variant, tc.Experiment = v.Name, exps.Current().Name
		tc.Learner.Reward = v.Reward
		out = append(out, tc)
	}
	return out
}

// seedCatalog fills an empty catalog: from MovieLens when asked, else with
// the generated sample in embedded mode. Items go through keeper (the
// catalog log, then Redis); generated and imported user histories are not
// events, so `trainer rebuild` cannot restore them.
func seedCatalog(ctx context.Context, store *features.Store, keeper *features.CatalogKeeper, cfg config, embedded bool, log *slog.Logger) error {
	if cfg.movielens != "" {
		return importMovieLens(ctx, store, keeper, cfg.movielens, cfg.ratings, log)
	}
	n, err := store.ItemCount(ctx)
	if err != nil {
		return fmt.Errorf("count catalog items: %w", err)
	}
	if cfg.sampleItems < 0 && embedded {
		cfg.sampleItems = 3000
	}
	if n > 0 || cfg.sampleItems <= 0 {
		return nil
	}
	items := catalog.Sample(cfg.sampleItems, 1)
	if _, err := keeper.PutItems(ctx, items); err != nil {
		return fmt.Errorf("load sample catalog: %w", err)
	}
	log.Info("loaded the built-in sample catalog", "items", cfg.sampleItems, "categories", len(catalog.SampleCategories))
	if cfg.sampleUsers <= 0 {
		return nil
	}
	snap, err := catalog.Build(0, catalog.DefaultDim, items)
	if err != nil {
		return err
	}
	start := time.Now()
	for u := 0; u < cfg.sampleUsers; u++ {
		if err := store.Save(ctx, sampleUser(snap, u)); err != nil {
			return fmt.Errorf("sample user: %w", err)
		}
	}
	log.Info("generated sample users", "users", cfg.sampleUsers, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// sampleUser gives user-N a history of 10–100 clicks concentrated on two to
// four favourite categories, applied with recommend.Observe like real
// feedback, so generated users have realistic statistics.
func sampleUser(snap *catalog.Snapshot, n int) recommend.UserState {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	st := recommend.UserState{UserID: "user-" + strconv.Itoa(n)}
	var favs []int32
	for len(favs) < 2+rng.IntN(3) {
		favs = append(favs, int32(rng.IntN(snap.NumCategories())))
	}
	ts := time.Now().Add(-30 * 24 * time.Hour).UnixMilli()
	for i, clicks := 0, 10+rng.IntN(91); i < clicks; i++ {
		var item int32
		if rng.Float64() < 0.85 {
			list := snap.PopularIn(favs[rng.IntN(len(favs))])
			item = list[min(int(rng.ExpFloat64()*float64(len(list))/8), len(list)-1)]
		} else {
			item = int32(rng.IntN(snap.Len()))
		}
		ts += int64(rng.IntN(3_600_000))
		recommend.Observe(&st, snap, recommend.Feedback{UserID: st.UserID, ItemID: snap.Item(item).ID, Type: recommend.Click, TS: ts}, 0, intent.ModeModel{})
	}
	st.Session = recommend.Session{}
	return st
}

// importMovieLens loads movies as items and, optionally, ratings as user
// history, computing each user's state with the same recommend.Observe the
// feature updater uses.
func importMovieLens(ctx context.Context, store *features.Store, keeper *features.CatalogKeeper, dir string, ratings bool, log *slog.Logger) error {
	start := time.Now()
	ds, err := movielens.LoadDir(dir)
	if err != nil {
		return fmt.Errorf("movielens: %w", err)
	}
	if _, err := keeper.PutItems(ctx, ds.Items); err != nil {
		return fmt.Errorf("movielens items: %w", err)
	}
	users := 0
	if ratings && len(ds.Ratings) > 0 {
		snap, err := catalog.Build(0, catalog.DefaultDim, ds.Items)
		if err != nil {
			return fmt.Errorf("movielens: %w", err)
		}
		states := map[string]*recommend.UserState{}
		for _, r := range ds.Ratings {
			st := states[r.UserID]
			if st == nil {
				st = &recommend.UserState{UserID: r.UserID}
				states[r.UserID] = st
			}
			recommend.Observe(st, snap, recommend.Feedback{UserID: r.UserID, ItemID: r.ItemID, Type: recommend.Rating, Value: r.Value, TS: r.TS}, 0, intent.ModeModel{})
		}
		for _, st := range states {
			st.Session = recommend.Session{} // imported history is not a live session
			if err := store.Save(ctx, *st); err != nil {
				return fmt.Errorf("movielens user %s: %w", st.UserID, err)
			}
		}
		users = len(states)
	}
	log.Info("imported MovieLens", "dir", dir, "items", len(ds.Items), "ratings", len(ds.Ratings), "users", users, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

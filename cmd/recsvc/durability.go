package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/envflag"
)

// defaultRedisBatch is -redis-batch's default: batched reads cost recsvc and
// Redis less CPU per request (docs/benchmarks-history.md#concurrent-reads-in-one-pipeline-issue-13-sixth-pass).
const defaultRedisBatch = true

// durabilityFlags registers the flags of durable feedback, client limits
// and the Redis budget (docs/operations-durability.md).
func durabilityFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.spoolDir, "spool-dir", envflag.String("NOVAREC_SPOOL_DIR", ""),
		"directory of the feedback spool: feedback Kafka does not acknowledge within -feedback-ack-timeout is fsync'd here, answered 202 and delivered when Kafka is back, also after a restart (env NOVAREC_SPOOL_DIR; empty = no spool: such feedback is answered 503)")
	fs.Int64Var(&c.spoolMaxBytes, "spool-max-bytes", int64(envflag.Int("NOVAREC_SPOOL_MAX_BYTES", 256<<20)),
		"bound of the feedback spool on disk; beyond it feedback is answered 503 (env NOVAREC_SPOOL_MAX_BYTES)")
	fs.DurationVar(&c.ackTimeout, "feedback-ack-timeout", envflag.Duration("NOVAREC_FEEDBACK_ACK_TIMEOUT", 2*time.Second),
		"how long feedback waits for Kafka's acknowledgement (all in-sync replicas) before it is spooled instead (env NOVAREC_FEEDBACK_ACK_TIMEOUT)")
	fs.DurationVar(&c.bodyTimeout, "body-timeout", envflag.Duration("NOVAREC_BODY_TIMEOUT", api.DefaultBodyTimeout),
		"how long a client may take to send a request body, plus 1s per MiB announced; slower ones get 408 (env NOVAREC_BODY_TIMEOUT)")
	fs.IntVar(&c.maxConnsPerClient, "max-conns-per-client", envflag.Int("NOVAREC_MAX_CONNS_PER_CLIENT", 0),
		"most connections one client IP may hold open; more are closed at once (env NOVAREC_MAX_CONNS_PER_CLIENT; 0 = no bound; leave 0 behind a proxy that hides client addresses)")
	fs.DurationVar(&c.redisBudget, "redis-budget", envflag.Duration("NOVAREC_REDIS_BUDGET", 100*time.Millisecond),
		"time a request may spend on each Redis round trip; past it, recommend answers degraded (env NOVAREC_REDIS_BUDGET)")
	fs.BoolVar(&c.redisBatch, "redis-batch", envflag.Bool("NOVAREC_REDIS_BATCH", defaultRedisBatch),
		"send concurrent requests' user-state reads to Redis in shared pipelines (go-redis auto-pipelining); each request still waits at most -redis-budget (env NOVAREC_REDIS_BATCH)")
	fs.DurationVar(&c.redisBatchDelay, "redis-batch-delay", envflag.Duration("NOVAREC_REDIS_BATCH_DELAY", 0),
		"with -redis-batch, how long a batch waits for more reads before it is sent; 0 = send as soon as the previous batch is back (env NOVAREC_REDIS_BATCH_DELAY)")
}

func (c *config) checkDurability() error {
	switch {
	case c.spoolMaxBytes < 64<<10:
		return fmt.Errorf("-spool-max-bytes must be at least 64 KiB, not %d", c.spoolMaxBytes)
	case c.ackTimeout <= 0 || c.bodyTimeout <= 0 || c.redisBudget <= 0:
		return errors.New("-feedback-ack-timeout, -body-timeout and -redis-budget must be positive")
	case c.redisBatchDelay < 0 || c.redisBatchDelay >= c.redisBudget:
		return fmt.Errorf("-redis-batch-delay must be at least 0 and below -redis-budget, not %v", c.redisBatchDelay)
	case c.maxConnsPerClient < 0:
		return fmt.Errorf("-max-conns-per-client must be 0 (no bound) or positive, not %d", c.maxConnsPerClient)
	}
	return nil
}

// newDurable opens the spool (if configured) and returns the feedback path.
func newDurable(cfg config, embedded bool, p *events.Producer, reg prometheus.Registerer, log *slog.Logger) (*events.Durable, error) {
	var spool *events.Spool
	switch {
	case cfg.spoolDir != "":
		var err error
		if spool, err = events.OpenSpool(cfg.spoolDir, events.SpoolOptions{MaxBytes: cfg.spoolMaxBytes, Logger: log}); err != nil {
			return nil, err
		}
		log.Info("feedback spool open", "dir", cfg.spoolDir, "max_bytes", cfg.spoolMaxBytes, "undelivered", spool.Stats().Records)
	case !embedded:
		log.Info("no feedback spool (-spool-dir): feedback is answered 503 while Kafka does not acknowledge it")
	}
	return events.NewDurable(p, events.DurableOptions{Spool: spool, AckTimeout: cfg.ackTimeout, Registerer: reg, Logger: log}), nil
}

// kafkaCheck reports Kafka on /readyz: a shared dependency, so its failure
// marks the replica degraded, not unready (api/ready.go).
func kafkaCheck(p *events.Producer, d *events.Durable) api.Check {
	return api.Check{Name: "kafka", Shared: true, Probe: func(ctx context.Context) error {
		err := p.Ping(ctx)
		st, spooling := d.SpoolStats()
		switch {
		case err != nil && !spooling && st.MaxBytes == 0:
			return fmt.Errorf("unreachable (%v); feedback is refused: no spool", err)
		case err != nil:
			return fmt.Errorf("unreachable (%v); feedback is spooled: %d events, %d%% of the spool", err, st.Records, 100*st.Bytes/max(st.MaxBytes, 1))
		case spooling:
			return fmt.Errorf("reachable; delivering %d spooled events", st.Records)
		}
		return nil
	}}
}

// catalogStore is the api.Store of recsvc: the Redis store, with catalog
// upserts going to the catalog log first (features.CatalogKeeper).
type catalogStore struct {
	*features.Store
	keeper *features.CatalogKeeper
}

func (s catalogStore) PutItems(ctx context.Context, items []catalog.Item) (uint64, error) {
	return s.keeper.PutItems(ctx, items)
}

// servingVersion returns the version of the catalog cat serves (0 = none).
func servingVersion(cat *features.CatalogCache) func() uint64 {
	return func() uint64 {
		if s := cat.Current(); s != nil {
			return s.Version
		}
		return 0
	}
}

// autoInt is an int flag whose negative value means "decided at start"
// and prints as auto, so that -h shows the true default.
type autoInt struct{ v *int }

func (a autoInt) String() string {
	if a.v == nil || *a.v < 0 {
		return "auto"
	}
	return strconv.Itoa(*a.v)
}

func (a autoInt) Set(s string) error {
	if s == "auto" {
		*a.v = -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count or auto, not %q", s)
	}
	*a.v = n
	return nil
}

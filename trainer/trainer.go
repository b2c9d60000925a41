package trainer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/recommend"
)

// Store is what the trainer keeps in Redis: model snapshots and its
// incremental state (and reads: the whole checkpoint older builds wrote).
// *features.Store satisfies it; GetModel, LoadState and LoadCheckpoint must
// wrap features.ErrNotFound when there is nothing stored.
type Store interface {
	PutModel(ctx context.Context, variant string, data []byte) error
	GetModel(ctx context.Context, variant string) ([]byte, error)
	ClaimState(ctx context.Context, name, token string) error
	CommitState(ctx context.Context, name string, d *features.StateDelta) error
	LoadState(ctx context.Context, name string, hashes ...string) (*features.StateImage, error)
	LoadCheckpoint(ctx context.Context, name string) ([]byte, error)
	// Partitioned state (Config.Partitioned).
	ClaimPart(ctx context.Context, name, part string) (int64, error)
	LoadPart(ctx context.Context, name, part string, hashes ...string) (*features.StateImage, error)
	CommitParts(ctx context.Context, name string, parts []features.PartDelta, shared string, merge features.Merge) error
	PutAggregates(ctx context.Context, exp, variant string, a experiment.Aggregates) error
	PutPartAggregates(ctx context.Context, exp, variant string, parts map[string]features.PartAggregates) error
}

// Deps are the trainer's collaborators.
type Deps struct {
	// Store holds snapshots and checkpoints. Required.
	Store Store
	// Catalog serves the catalog snapshot events are interpreted against
	// (features.CatalogCache). Required; while it returns nil, messages
	// are retried.
	Catalog Snapshots
	// DeadLetter receives undecodable messages. When nil, Run creates a
	// producer of its own on Config.Brokers and closes it on return.
	DeadLetter *events.Producer
	// Start is the model to learn from when there is no checkpoint
	// (default recommend.DefaultModel()).
	Start *recommend.Model
	// Registerer receives the trainer's and its consumer's metrics.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Stats is a view of a running trainer, safe to take from any goroutine.
type Stats struct {
	Counters
	// Watermark is the largest event time seen (Unix ms).
	Watermark int64
	// Updates counts learner updates since the first start.
	Updates int64
	// ModelVersion is N of the last published snapshot VARIANT-N (for a
	// partitioned replica, of the shared model as of its last commit,
	// which snapshots publish on the variant's cadence).
	ModelVersion uint64
	// Publishes and Checkpoints count successful writes by this process
	// (a checkpoint is a commit of the incremental state).
	Publishes, Checkpoints int64
	// CheckpointBytes and SnapshotBytes are the sizes of the last ones
	// (for a checkpoint: its head plus the records it wrote or deleted);
	// CheckpointRecords counts the records of the last checkpoint.
	CheckpointBytes, SnapshotBytes int
	CheckpointRecords              int
	// CheckpointBytesTotal and SnapshotBytesTotal sum them over this
	// process's checkpoints and snapshots: what it wrote to Redis.
	CheckpointBytesTotal, SnapshotBytesTotal int64
	// Slates, Waiting, Decisions and DedupIDs are what the Core holds.
	Slates, Waiting, Decisions, DedupIDs int
}

// Trainer runs the learning loop of one variant: an events.Consumer in
// group novarec-trainer-VARIANT reads rec.impressions and rec.feedback,
// decodes each message (undecodable ones go to rec.deadletter) and feeds a
// Core; snapshots are published to model:VARIANT every PublishEvery or
// PublishUpdates updates; and before every offset commit the Core's changes
// since the last commit are stored in Redis (Core.StateDelta), so committed
// offsets never run ahead of persisted state (at-least-once delivery, made
// exactly-once in effect by the Core's event-id de-duplication).
//
// Goroutines: Run executes everything on the caller's goroutine (the
// consumer's fetch-handle-commit loop, with learning, publishing and
// checkpointing inside it), so the Learner is only ever touched there.
// kafka-go starts its group goroutines, which Run stops before returning.
// Stats may be called from any goroutine.
//
// Stopping: cancel Run's context. The consumer stops fetching, then makes
// its final commit: BeforeCommit publishes any unpublished updates and
// writes a final checkpoint, the offsets are committed, the consumer leaves
// the group, and Run returns nil.
//
// Run exactly one Trainer per variant, unless Config.Partitioned makes
// them replicas that share the partitions and one model (replica.go).
// Otherwise several members of one group would each learn from part of the
// partitions; so a Trainer claims the variant's
// state when it starts; one whose state another Trainer has claimed since
// finds out at its next commit, which Redis refuses, and Run returns
// ErrTakenOver without committing (its uncommitted events go to the new
// owner), so a second process started by mistake replaces the first
// instead of corrupting the state.
type Trainer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics

	running atomic.Bool

	// mu guards core against Stats readers; the core is only changed on
	// Run's goroutine.
	mu   sync.Mutex
	core *Core

	// Run's goroutine only.
	runCtx        context.Context
	dropLegacy    bool               // restored from a whole checkpoint: delete it after the first commit
	owner         string             // the token this trainer claimed the state with
	stop          context.CancelFunc // ends Run when another trainer took the state over
	takenOver     bool
	lastPublish   time.Time
	publishFailed bool
	publishTook   time.Duration

	// rep is the partitioned trainer's state (Config.Partitioned; set on
	// Run's goroutine under mu); lost is set when a commit found one of
	// its partitions claimed by another replica, and fatal when Run must
	// stop with an error.
	rep   *replica
	lost  bool
	fatal error

	publishes, checkpoints atomic.Int64
	ckptBytes, snapBytes   atomic.Int64
	ckptTotal, snapTotal   atomic.Int64
	ckptRecords            atomic.Int64
}

// New validates cfg and deps. It does not contact Redis or Kafka; Run does.
func New(cfg Config, deps Deps) (*Trainer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("trainer: no Kafka brokers")
	case deps.Store == nil:
		return nil, errors.New("trainer: no store")
	case deps.Catalog == nil:
		return nil, errors.New("trainer: no catalog")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Start == nil {
		deps.Start = recommend.DefaultModel()
	}
	if err := deps.Start.Validate(); err != nil {
		return nil, fmt.Errorf("trainer: starting model: %w", err)
	}
	log := deps.Logger.With("component", "trainer", "variant", cfg.Variant)
	return &Trainer{cfg: cfg, deps: deps, log: log, m: newMetrics(cfg.Variant, deps.Registerer, log)}, nil
}

// ErrTakenOver is Run's error when another trainer claimed the variant's
// state (features.ErrStateOwner at a commit).
var ErrTakenOver = errors.New("trainer: another trainer took over this variant's state")

// Run is New followed by (*Trainer).Run.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	t, err := New(cfg, deps)
	if err != nil {
		return err
	}
	return t.Run(ctx)
}

// Run restores the last checkpoint (or starts from Deps.Start), then
// consumes until ctx is cancelled, and returns nil after the final
// checkpoint and commit. Transient Redis errors at start are retried until
// ctx ends; a corrupt or incompatible checkpoint is an error (it is never
// silently discarded: delete the key to start over). A Trainer runs once.
func (t *Trainer) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("trainer: Run called twice")
	}
	ctx, t.stop = context.WithCancel(ctx)
	defer t.stop()
	if t.cfg.Partitioned {
		return t.runReplica(ctx)
	}
	core, err := t.restore(ctx)
	if err != nil {
		return err
	}
	if core == nil {
		return nil // ctx ended during start-up
	}
	t.mu.Lock()
	t.core = core
	t.mu.Unlock()
	t.m.synced = core.Counters()
	t.m.version.Set(float64(core.Version()))
	t.m.syncGauges(core)
	t.runCtx = ctx
	t.lastPublish = time.Now()

	dl, closeDL := t.deadLetter()
	defer closeDL(ctx)
	consumer, err := t.newConsumer(dl)
	if err != nil {
		return err
	}
	t.log.Info("trainer consuming", "group", t.cfg.GroupID, "model_version", core.Version(),
		"updates", core.Updates(), "counters", core.Counters(), "window", t.cfg.Window.String(),
		"w_nov", t.cfg.Learner.Reward.Novelty, "w_div", t.cfg.Learner.Reward.Diversity)
	runErr := consumer.Run(ctx, t.handle)
	if err := consumer.Close(); err != nil {
		t.log.Warn("trainer: consumer close", "err", err)
	}
	st := t.Stats()
	t.log.Info("trainer stopped", "model_version", st.ModelVersion, "updates", st.Updates, "counters", st.Counters)
	if t.takenOver {
		return ErrTakenOver
	}
	if runErr != nil {
		return fmt.Errorf("trainer: %w", runErr)
	}
	return nil
}

// deadLetter returns Deps.DeadLetter, or a producer of the trainer's own
// and the function that closes it.
func (t *Trainer) deadLetter() (*events.Producer, func(context.Context)) {
	if t.deps.DeadLetter != nil {
		return t.deps.DeadLetter, func(context.Context) {}
	}
	dl := events.NewProducer(t.cfg.Brokers, events.ProducerOptions{Security: t.cfg.Security, Registerer: t.deps.Registerer, Logger: t.deps.Logger, Buffer: 1000})
	return dl, func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := dl.Close(cctx); err != nil {
			t.log.Warn("trainer: dead-letter producer close", "err", err)
		}
	}
}

// commitEvery is the consumer's message count between commits.
func (t *Trainer) commitEvery() int {
	if t.cfg.CommitEvery > 0 {
		return t.cfg.CommitEvery
	}
	return 1 << 30
}

// newConsumer prepares the trainer's group consumer.
func (t *Trainer) newConsumer(dl *events.Producer) (*events.Consumer, error) {
	var assigned func(context.Context, map[string][]int)
	if t.cfg.Partitioned {
		assigned = t.assigned // replicas commit before every rebalance
	}
	consumer, err := events.NewConsumer(events.ConsumerOptions{
		Brokers: t.cfg.Brokers, GroupID: t.cfg.GroupID, Security: t.cfg.Security,
		Topics:     []string{events.TopicImpressions, events.TopicFeedback},
		DeadLetter: dl,
		// Commits (and so checkpoints) by time unless CommitEvery asks
		// for more: each writes the head and scans the model's items,
		// worth doing for an interval's events, not for every few hundred,
		// except where replicas must merge that often.
		CommitEvery:       t.commitEvery(),
		CommitInterval:    t.cfg.CommitInterval,
		SessionTimeout:    t.cfg.SessionTimeout,
		HeartbeatInterval: t.cfg.HeartbeatInterval,
		BeforeCommit:      t.beforeCommit,
		Assigned:          assigned,
		Registerer:        t.deps.Registerer,
		Logger:            t.deps.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	return consumer, nil
}

// restore loads the checkpoint and the version of the last published
// snapshot, retrying transient errors. It returns nil, nil if ctx ends.
func (t *Trainer) restore(ctx context.Context) (*Core, error) {
	name := CheckpointName(t.cfg.Variant)
	for attempt := 0; ; attempt++ {
		core, err := t.load(ctx, name)
		if err == nil {
			return core, nil
		}
		if errors.Is(err, ErrCheckpointCorrupt) || errors.Is(err, ErrCheckpointSchema) || errors.Is(err, ErrCheckpointVariant) {
			return nil, fmt.Errorf("%w (refusing to start: to start this variant's learning over, delete the Redis keys <prefix>state:{%s}:* and <prefix>trainer:ckpt:%s)", err, name, name)
		}
		t.log.Warn("trainer: cannot load state; retrying", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(min(100*time.Millisecond<<min(attempt, 7), 10*time.Second)):
		}
	}
}

func (t *Trainer) load(ctx context.Context, name string) (*Core, error) {
	lctx, cancel := context.WithTimeout(ctx, t.cfg.CheckpointTimeout)
	defer cancel()
	core, err := t.loadState(lctx, name)
	if err != nil {
		return nil, err
	}
	// A snapshot may have been published after the checkpoint was
	// written; numbering continues after it so versions stay unique.
	b, err := t.deps.Store.GetModel(lctx, t.cfg.Variant)
	switch {
	case errors.Is(err, features.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if m, _, err := recommend.DecodeModel(b); err != nil {
			t.log.Warn("trainer: stored snapshot does not decode; numbering from the checkpoint", "err", err)
		} else if n, ok := parseVersion(t.cfg.Variant, m.Version); ok && n > core.Version() {
			t.log.Info("trainer: a snapshot newer than the checkpoint is stored; continuing its numbering", "stored", m.Version)
			core.RaiseVersion(n)
			core.sincePublish = max(core.sincePublish, 1) // republish under a new number
		}
	}
	return core, nil
}

// loadState restores the incremental state; without one, the whole
// checkpoint of an older build (migrated by the first commit, which writes
// every record and deletes it); without either, the starting model.
func (t *Trainer) loadState(ctx context.Context, name string) (*Core, error) {
	// Claim first: what an earlier owner committed before is loaded, what
	// it would commit after is refused.
	var token [16]byte
	_, _ = rand.Read(token[:]) // never fails
	t.owner = hex.EncodeToString(token[:])
	if err := t.deps.Store.ClaimState(ctx, name, t.owner); err != nil {
		return nil, err
	}
	img, err := t.deps.Store.LoadState(ctx, name, StateHashes...)
	switch {
	case err == nil:
		core, err := RestoreState(t.cfg, img, t.deps.Catalog)
		if err != nil {
			return nil, err
		}
		slates, waiting, _, ids := core.Buffered()
		t.log.Info("trainer: restored state", "head_bytes", len(img.Head), "slates", slates, "waiting", waiting,
			"event_ids", ids, "watermark", core.Watermark(), "model_version", core.Version())
		return core, nil
	case !errors.Is(err, features.ErrNotFound):
		return nil, err
	}
	var core *Core
	data, err := t.deps.Store.LoadCheckpoint(ctx, name)
	switch {
	case errors.Is(err, features.ErrNotFound):
		if core, err = NewCore(t.cfg, t.deps.Start, t.deps.Catalog); err != nil {
			return nil, err
		}
		t.log.Info("trainer: no state; starting from the initial model", "model", t.deps.Start.Version)
	case err != nil:
		return nil, err
	default:
		if core, err = DecodeCheckpoint(t.cfg, data, t.deps.Catalog); err != nil {
			return nil, err
		}
		t.dropLegacy = true
		t.log.Info("trainer: restored a whole checkpoint; the first commit migrates it to incremental state",
			"bytes", len(data), "watermark", core.Watermark(), "model_version", core.Version())
	}
	core.TrackChanges()
	return core, nil
}

// parseVersion reads N from "VARIANT-N".
func parseVersion(variant, v string) (uint64, bool) {
	rest, ok := strings.CutPrefix(v, variant+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

// handle is the consumer's Handler: decode, learn, maybe publish.
func (t *Trainer) handle(ctx context.Context, m kafka.Message) error {
	var imp events.Impression
	var fb events.Feedback
	var err error
	switch m.Topic {
	case events.TopicImpressions:
		imp, err = events.DecodeImpression(m.Value)
	case events.TopicFeedback:
		fb, err = events.DecodeFeedback(m.Value)
	default:
		err = events.Poison(fmt.Errorf("trainer: message from unexpected topic %q", m.Topic))
	}
	if err != nil {
		return err // poison: dead-lettered
	}
	if t.deps.Catalog.Current() == nil {
		return ErrNoCatalog
	}
	core := t.core
	if t.rep != nil {
		if core, err = t.partCore(ctx, m.Partition); err != nil {
			return err
		}
	}
	t.mu.Lock()
	if m.Topic == events.TopicImpressions {
		core.Impression(imp)
	} else {
		core.Feedback(fb)
	}
	t.mu.Unlock()
	if t.rep != nil {
		// Snapshots are published after commits (commitReplica).
		t.m.syncCounters(t.rep.counters())
		t.m.drainRewards(core)
		return nil
	}
	t.m.sync(t.core)
	if now := time.Now(); t.publishDue(now) {
		t.publish(ctx, now)
	}
	return nil
}

// maxPublishRate is the shortest gap between snapshots (unless PublishEvery
// is shorter still): under heavy traffic PublishUpdates is reached many
// times a second, and every snapshot is downloaded and decoded by every
// recsvc replica.
const maxPublishRate = 250 * time.Millisecond

// publishDue says whether a snapshot should be published now.
func (t *Trainer) publishDue(now time.Time) bool {
	n := t.core.SincePublish()
	if n == 0 {
		return false
	}
	since := now.Sub(t.lastPublish)
	if since < max(10*t.publishTook, min(t.cfg.PublishEvery, maxPublishRate)) {
		return false // publishing takes at most ~10% of the time
	}
	return since >= t.cfg.PublishEvery || (n >= int64(t.cfg.PublishUpdates) && !t.publishFailed)
}

// publish encodes the working model as the next snapshot and stores it. A
// failure is logged and retried after PublishEvery; learning goes on.
func (t *Trainer) publish(ctx context.Context, now time.Time) {
	t.lastPublish = now
	t.mu.Lock()
	m, meta, n := t.core.Snapshot(now.UnixMilli())
	data, err := recommend.EncodeModel(m, meta)
	t.mu.Unlock()
	if err != nil {
		// The model failed its own validation (a non-finite parameter):
		// nothing to retry; serving keeps the last good snapshot.
		t.publishFailed = true
		t.log.Error("trainer: snapshot does not encode; not published", "version", m.Version, "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = t.deps.Store.PutModel(pctx, t.cfg.Variant, data)
	cancel()
	took := time.Since(now)
	t.publishTook = took
	if err != nil {
		t.publishFailed = true
		t.log.Warn("trainer: publishing snapshot failed; will retry", "version", m.Version, "err", err)
		return
	}
	t.publishFailed = false
	t.mu.Lock()
	t.core.Published(n)
	t.mu.Unlock()
	t.publishes.Add(1)
	t.snapBytes.Store(int64(len(data)))
	t.snapTotal.Add(int64(len(data)))
	t.m.version.Set(float64(n))
	t.m.snapBytes.Set(float64(len(data)))
	t.m.syncGauges(t.core)
	t.m.publishSecs.Observe(took.Seconds())
	t.log.Debug("trainer: published snapshot", "version", m.Version, "bytes", len(data), "updates", meta.Updates,
		"feedback_ts", len(meta.FeedbackTS), "took", took.String())
}

// beforeCommit is the consumer's BeforeCommit: publish if due (always on
// the final call, so a stopped trainer leaves nothing unpublished), then
// checkpoint if anything changed. Its error vetoes the offset commit.
func (t *Trainer) beforeCommit(ctx context.Context) error {
	if t.takenOver {
		return ErrTakenOver
	}
	if t.rep != nil {
		return t.commitReplica(ctx)
	}
	now := time.Now()
	final := t.runCtx.Err() != nil
	if (final && t.core.SincePublish() > 0) || t.publishDue(now) {
		t.publish(ctx, now)
	}
	t.m.syncGauges(t.core)
	// An idle trainer commits too (its head, a few KB): that is how it
	// learns within a commit interval that another one claimed the state.
	start := time.Now()
	t.mu.Lock()
	d, err := t.core.StateDelta()
	records := t.core.Changes()
	t.mu.Unlock()
	if err != nil {
		return err
	}
	name := CheckpointName(t.cfg.Variant)
	d.Owner = t.owner
	if t.dropLegacy {
		d.DropCheckpoint = name
	}
	cctx, cancel := context.WithTimeout(ctx, t.cfg.CheckpointTimeout)
	defer cancel()
	if err := t.deps.Store.CommitState(cctx, name, d); err != nil {
		if errors.Is(err, features.ErrStateOwner) {
			t.log.Error("trainer: another trainer claimed this variant's state; stopping without committing", "err", err)
			t.takenOver = true
			t.stop()
			return ErrTakenOver
		}
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	t.core.Committed()
	t.dropLegacy = false
	size := d.Bytes()
	// The A/B aggregates follow the checkpoint that holds them, so a crash
	// never leaves the report ahead of what a restart would recount.
	if err := t.deps.Store.PutAggregates(cctx, t.cfg.Experiment, t.cfg.Variant, t.core.Aggregates()); err != nil {
		t.log.Warn("trainer: storing A/B aggregates failed; retried at the next commit", "err", err)
	}
	t.checkpoints.Add(1)
	t.ckptBytes.Store(int64(size))
	t.ckptTotal.Add(int64(size))
	t.ckptRecords.Store(int64(records))
	t.m.ckptSecs.Observe(time.Since(start).Seconds())
	t.m.ckptBytes.Set(float64(size))
	return nil
}

// Stats returns the trainer's current totals (zero before Run has
// restored its state).
func (t *Trainer) Stats() Stats {
	st := Stats{
		Publishes: t.publishes.Load(), Checkpoints: t.checkpoints.Load(),
		CheckpointBytes: int(t.ckptBytes.Load()), SnapshotBytes: int(t.snapBytes.Load()),
		CheckpointRecords:    int(t.ckptRecords.Load()),
		CheckpointBytesTotal: t.ckptTotal.Load(), SnapshotBytesTotal: t.snapTotal.Load(),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rep != nil {
		t.rep.stats(&st)
		return st
	}
	if t.core == nil {
		return st
	}
	st.Counters = t.core.Counters()
	st.Watermark = t.core.Watermark()
	st.Updates = t.core.Updates()
	st.ModelVersion = t.core.Version()
	st.Slates, st.Waiting, st.Decisions, st.DedupIDs = t.core.Buffered()
	return st
}

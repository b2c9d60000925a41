package trainer

import (
	"errors"
	"fmt"
	"time"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// DefaultVariant is the variant every impression belongs to until A/B
// experiments assign others (api.Variant); an impression or feedback event
// with an empty variant counts as this one.
const DefaultVariant = "default"

// Config configures a Trainer (and its Core, which reads only the learning
// and buffering fields). Start from DefaultConfig: zero durations and limits
// take the defaults noted, but a zero Learner is taken literally only if
// some field is set (an all-zero LearnerConfig means "default").
type Config struct {
	// Variant names the model this trainer learns and publishes
	// (model:VARIANT). One trainer runs per variant; it learns only from
	// impressions of its variant.
	Variant string
	// Experiment names the A/B experiment whose aggregates this trainer
	// maintains for its variant (default "default", when none runs).
	Experiment string
	// Learner sets the learning rates and the reward weights (w_nov, w_div)
	// of the variant.
	Learner recommend.LearnerConfig
	// AllVariants learns from every variant's impressions, not only
	// Variant's. Live trainers keep variants apart; TrainOnLog sets it to
	// train a candidate weighting on a whole log, where the logged
	// propensities already correct for whichever policy served each
	// impression.
	AllVariants bool

	// Window is the attribution window (default 30m, event time): feedback
	// is credited to an impression only within Window of it, and
	// impressions, feedback waiting for its impression and event ids for
	// de-duplication are kept this long after the watermark passes them.
	Window time.Duration
	// SessionGap ends a session (and closes its open high-level decision
	// with no successor) after this much event time without activity
	// (default recommend.SessionGap).
	SessionGap time.Duration
	// DecisionGrace delays closing a decision after its successor
	// impression until the feedback watermark is this far past the
	// successor's time (default 5s), so clicks that reach the trainer after
	// the next impression (the topics are consumed independently) still
	// count in the decision's reward.
	DecisionGrace time.Duration
	// Bounds on memory (and checkpoint size). MaxSlates impressions are
	// kept for attribution (default 100,000), MaxWaiting feedback events
	// wait for their impression (default 50,000), MaxDedup event ids are
	// remembered (default 500,000). Past a bound the oldest entry goes
	// first (a forgotten impression's decision is closed; forgotten
	// feedback counts as unattributed; a forgotten id is counted in
	// Counters.DedupEvicted).
	MaxSlates, MaxWaiting, MaxDedup int
	// FreshnessSample bounds how many feedback times a snapshot carries in
	// SnapshotMeta.FeedbackTS (default 2000); beyond it they are a
	// uniform sample.
	FreshnessSample int

	// Brokers are the Kafka bootstrap addresses. Required by Run.
	Brokers []string
	// Security is how Run's consumer and dead-letter producer authenticate
	// to the brokers (zero value: plaintext, no authentication).
	Security events.Security
	// GroupID is the consumer group (default "novarec-trainer-VARIANT").
	GroupID string
	// PublishEvery and PublishUpdates: a snapshot is published when there
	// are new updates and PublishEvery (default 2s) has passed since the
	// last one, or PublishUpdates (default 500) updates have accumulated,
	// but at most every 250ms (or PublishEvery, if shorter) and never more
	// often than ten times the last publish's duration, so that heavy
	// traffic does not flood recsvc replicas with snapshots and publishing
	// a large model cannot starve learning. Partitioned replicas publish
	// at most one snapshot per PublishEvery between them (claimed in a
	// commit: publish.go), whatever their number; PublishUpdates does not
	// apply to them.
	PublishEvery   time.Duration
	PublishUpdates int
	// CommitInterval is how often the state is checkpointed and the offsets
	// it covers are committed (default 5s). It bounds how much is
	// redelivered after a crash; a checkpoint writes what changed since
	// the last one.
	CommitInterval time.Duration
	// CommitEvery, when positive, also commits after that many events
	// (0, the default: by time only). Replicas do not need it for model
	// quality: their merge weights the high level's steps by each
	// replica's share, and two replicas committing as often as one
	// trainer learn within noise of it
	// (docs/trainer-scale.md#model-quality-with-replicas). A commit costs
	// a Redis transaction and the records it writes, so one trainer has
	// no reason to commit more often than its interval.
	CommitEvery int
	// CheckpointTimeout bounds one checkpoint write (default 30s).
	CheckpointTimeout time.Duration
	// Partitioned makes the trainer one of several replicas of its variant
	// sharing the consumer group: its join state is kept per Kafka
	// partition, claimed by whichever replica is assigned the partition,
	// and the replicas' model updates are merged into one shared model
	// that they publish on the variant's cadence (replica.go, publish.go,
	// docs/trainer-scale.md#scaling-out). The topics must have equal
	// partition counts (partition N of both carries the same users).
	// Off, one trainer owns the variant's whole state.
	Partitioned bool
	// SessionTimeout is the consumer group's session timeout (default
	// 10s): after a crash, a restarted trainer waits this long for the
	// dead member's partitions.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the consumer heartbeats (default a
	// third of SessionTimeout, at most 3s): a replica hears of another's
	// join, and hands over partitions, at its next heartbeat.
	HeartbeatInterval time.Duration
}

// DefaultConfig returns the defaults for variant "default".
//
// The learner's defaults are the simulator's (recommend.DefaultLearnerConfig),
// so what is measured there is what serves: the mode model is fitted every
// 10,000 decisions after a warm-up of fits at 1,250, 2,500 and 5,000 (a
// fit of the 50,000-item window costs about 27 ms, intent BenchmarkModeFit
// -cpu 1: 3 µs a decision), without routine; the fit reads the sessions'
// evidence and decides whether novel items pay at all
// (recommend.Model.NovelWorth), and the population prior stays the
// default. Without a fit the default model gives novel items a sixth to
// a quarter of the seats where novelty never pays, which cost 1.6 clicks
// per user against MMR in the simulator where the mode barely matters
// (docs/evaluation-intent.md).
func DefaultConfig() Config {
	l := recommend.DefaultLearnerConfig()
	return Config{
		Variant:           DefaultVariant,
		Learner:           l,
		Window:            30 * time.Minute,
		SessionGap:        recommend.SessionGap,
		DecisionGrace:     5 * time.Second,
		MaxSlates:         100_000,
		MaxWaiting:        50_000,
		MaxDedup:          500_000,
		FreshnessSample:   2000,
		PublishEvery:      2 * time.Second,
		PublishUpdates:    500,
		CommitInterval:    5 * time.Second,
		CheckpointTimeout: 30 * time.Second,
		SessionTimeout:    10 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Variant == "" {
		c.Variant = d.Variant
	}
	if c.Experiment == "" {
		c.Experiment = DefaultVariant
	}
	if c.Learner == (recommend.LearnerConfig{}) {
		c.Learner = d.Learner
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.SessionGap <= 0 {
		c.SessionGap = d.SessionGap
	}
	if c.DecisionGrace <= 0 {
		c.DecisionGrace = d.DecisionGrace
	}
	if c.MaxSlates <= 0 {
		c.MaxSlates = d.MaxSlates
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = d.MaxWaiting
	}
	if c.MaxDedup <= 0 {
		c.MaxDedup = d.MaxDedup
	}
	if c.FreshnessSample <= 0 {
		c.FreshnessSample = d.FreshnessSample
	}
	if c.GroupID == "" {
		c.GroupID = "novarec-trainer-" + c.Variant
	}
	if c.PublishEvery <= 0 {
		c.PublishEvery = d.PublishEvery
	}
	if c.PublishUpdates <= 0 {
		c.PublishUpdates = d.PublishUpdates
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = d.CommitInterval
	}
	if c.CommitEvery < 0 {
		c.CommitEvery = 0
	}
	if c.CheckpointTimeout <= 0 {
		c.CheckpointTimeout = d.CheckpointTimeout
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	return c
}

// validate rejects settings that cannot work.
func (c Config) validate() error {
	w := c.Learner.Reward
	switch {
	case !finite(w.Novelty) || !finite(w.Diversity):
		return fmt.Errorf("trainer: reward weights must be finite, got w_nov=%v w_div=%v", w.Novelty, w.Diversity)
	case c.Learner.Clip <= 0:
		return errors.New("trainer: learner clip must be positive")
	}
	return nil
}

// CheckpointName is the features.Store checkpoint name of a variant's
// trainer state.
func CheckpointName(variant string) string { return "trainer:" + variant }

package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// ErrPoison marks a message that can never be handled, however often it is
// retried: undecodable bytes, an event that fails validation, a reference
// that cannot exist. A Handler returns an error wrapping ErrPoison (see
// Poison; *DecodeError matches it too) to have the Consumer move the message
// to the dead-letter topic and go on, instead of retrying it and stalling
// its partition forever.
var ErrPoison = errors.New("events: poison message")

// ErrConsumerClosed is returned by Run after Close has been called.
var ErrConsumerClosed = errors.New("events: consumer closed")

// Poison wraps reason so that it matches ErrPoison under errors.Is while
// keeping reason's text and identity (errors.Is/As still find reason).
func Poison(reason error) error {
	if reason == nil {
		return ErrPoison
	}
	if errors.Is(reason, ErrPoison) {
		return reason
	}
	return fmt.Errorf("%w: %w", ErrPoison, reason)
}

// Handler processes one message. Return nil when the message has been fully
// applied (its offset may then be committed), an error wrapping ErrPoison
// when it can never be applied (it goes to the dead-letter topic), or any
// other error when it might succeed later (a dependency is down): the
// Consumer then retries the same message with backoff and does not move
// past it. The context is cancelled when Run is stopping; a handler should
// return promptly then (its message will be delivered again later).
// Handlers run on Run's goroutine, one message at a time, and must not panic.
type Handler func(ctx context.Context, m kafka.Message) error

// ConsumerOptions configures NewConsumer. Zero values take the defaults noted.
type ConsumerOptions struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// GroupID names the consumer group: members of one group share the
	// topics' partitions, and the group's committed offsets are where a
	// restarted member resumes. Required.
	GroupID string
	// Topics to consume (kafka-go ReaderConfig.GroupTopics). Required.
	Topics []string
	// DeadLetter writes poison messages, synchronously, to DeadLetterTopic
	// (default rec.deadletter). When nil, poison messages are logged at
	// error level and skipped. Close the consumer before this producer.
	DeadLetter      *Producer
	DeadLetterTopic string
	// Offsets of handled messages are committed (synchronously, explicitly)
	// after every CommitEvery messages (default 500) or CommitInterval
	// (default 1s), whichever comes first, and when Run returns. Larger
	// values mean fewer commit round trips and more redelivery after a crash.
	CommitEvery    int
	CommitInterval time.Duration
	// StartOffset is where a group with no committed offset for a partition
	// starts: kafka.FirstOffset (default, so no logged event is skipped) or
	// kafka.LastOffset.
	StartOffset int64
	// RetryBackoff is the first pause before retrying a message whose
	// handler failed (default 100ms); it doubles per failure up to
	// MaxRetryBackoff (default 10s). The same backoff applies to failing
	// fetches and dead-letter writes.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// MaxWait is how long one fetch of an idle partition waits on the
	// broker (default 3s). It does not delay new messages: a fetch returns
	// as soon as one arrives (MinBytes 1). kafka-go gives the broker MaxWait
	// less a round-trip allowance (1s, or a quarter of MaxWait below 1s)
	// and cuts the connection at MaxWait; at 500ms that left the broker
	// 125ms of slack, so an idle consumer on a busy broker (the embedded
	// one, serving every group of the process) logged read timeouts every
	// few seconds.
	MaxWait time.Duration
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed process) before handing its partitions to
	// the others, and how long a rebalance waits for members to rejoin
	// (default kafka-go's 30s). Heartbeats go out every third of it (at
	// most every 3s) unless HeartbeatInterval says otherwise. Shorter means
	// faster take-over after a crash.
	SessionTimeout time.Duration
	// HeartbeatInterval, when set, is how often the member heartbeats:
	// also how soon it hears of a rebalance another member's join started
	// (the group waits for it to rejoin). 0 = a third of SessionTimeout, at
	// most 3s.
	HeartbeatInterval time.Duration
	// BeforeCommit, when set, is called on Run's goroutine at every commit
	// point: before each commit of marked offsets, and also every
	// CommitInterval while nothing new is marked (so an idle consumer still
	// gets a periodic call, e.g. to publish or persist derived state). If it
	// returns an error the commit is skipped and logged, and the marks are
	// kept for the next commit point. This is how a handler that keeps state
	// in memory makes offsets durable only after that state is: persist it
	// here, and a crash redelivers everything the persisted state lacks.
	// On Run's final commit ctx is no longer cancelled (Run is returning
	// because it was), so BeforeCommit must bound its own work.
	BeforeCommit func(ctx context.Context) error
	// Assigned, when set, makes the consumer commit before every
	// rebalance (generations.go): at the end of each generation of the
	// group it calls BeforeCommit and commits its offsets while the
	// partitions are still its own — no other member receives them until
	// it has rejoined — so a rebalance drops no work. Assigned is called
	// on Run's goroutine at the start of each generation, before its first
	// message, with the partitions of each topic this member now holds.
	Assigned func(ctx context.Context, partitions map[string][]int)
	// Security authenticates to and encrypts traffic with the brokers
	// (zero value: plaintext, no authentication).
	Security Security
	// Registerer, when set, receives novarec_events_consumed_total{topic},
	// novarec_events_deadlettered_total{topic} and novarec_events_consumer_lag.
	Registerer prometheus.Registerer
	// Logger receives retries, dead letters and commit failures
	// (default slog.Default()).
	Logger *slog.Logger
}

func (o *ConsumerOptions) defaults() {
	if o.DeadLetterTopic == "" {
		o.DeadLetterTopic = TopicDeadLetter
	}
	if o.CommitEvery <= 0 {
		o.CommitEvery = 500
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.StartOffset != kafka.LastOffset {
		o.StartOffset = kafka.FirstOffset
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = 10 * time.Second
	}
	if o.MaxRetryBackoff < o.RetryBackoff {
		o.MaxRetryBackoff = o.RetryBackoff
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ConsumerStats are running totals since NewConsumer, for tests and status
// pages.
type ConsumerStats struct {
	// Consumed counts messages done with: handled, or dead-lettered.
	Consumed uint64
	// DeadLettered counts poison messages (written to the dead-letter topic,
	// or skipped when there is no dead-letter producer).
	DeadLettered uint64
	// Retries counts failed handler calls that were retried.
	Retries uint64
	// Commits counts successful offset commits.
	Commits uint64
}

// Consumer reads topics as a member of a consumer group and hands each
// message to a Handler, committing offsets only for messages the handler has
// finished with, so that delivery is at least once: after a crash or a
// rebalance, messages handled but not yet committed are delivered again, and
// handlers must be idempotent (event_id identifies duplicates).
//
// Within a partition, messages are handled strictly in order and a message
// is never skipped: a failing handler is retried until it succeeds, says the
// message is poison, or Run is stopped.
//
// Goroutines: the Consumer starts none itself. Run executes the fetch,
// handle and commit loop on the caller's goroutine and returns when its
// context is cancelled or Close is called. kafka-go's Reader starts the
// group's background goroutines (heartbeat, partition fetchers, commits) on
// the first fetch; Close stops them and leaves the group.
type Consumer struct {
	opts ConsumerOptions
	log  *slog.Logger
	r    *kafka.Reader // nil with Assigned (generations.go)
	rcfg kafka.ReaderConfig

	// stopCtx is cancelled by Close to stop a running Run.
	stopCtx context.Context
	stop    context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running bool
	runWG   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	consumed, deadLettered, retries, commits atomic.Uint64

	mConsumed *prometheus.CounterVec
	mDead     *prometheus.CounterVec
	mLag      prometheus.Gauge
}

// NewConsumer validates opts and prepares a group reader. It does not
// contact the brokers; the group is joined on Run's first fetch.
func NewConsumer(opts ConsumerOptions) (*Consumer, error) {
	switch {
	case len(opts.Brokers) == 0:
		return nil, errors.New("events: NewConsumer: no brokers")
	case opts.GroupID == "":
		return nil, errors.New("events: NewConsumer: GroupID required")
	case len(opts.Topics) == 0:
		return nil, errors.New("events: NewConsumer: no topics")
	}
	opts.defaults()
	log := opts.Logger.With("component", "events.consumer", "group", opts.GroupID)
	cfg := kafka.ReaderConfig{
		Brokers:     opts.Brokers,
		GroupID:     opts.GroupID,
		GroupTopics: opts.Topics,
		Dialer:      opts.Security.dialer(10 * time.Second),
		MinBytes:    1,
		MaxBytes:    10 << 20,
		MaxWait:     opts.MaxWait,
		// 0 = CommitMessages commits synchronously, so Run knows which
		// offsets are durable; batching is done by Run instead.
		CommitInterval:        0,
		StartOffset:           opts.StartOffset,
		JoinGroupBackoff:      time.Second,
		SessionTimeout:        opts.SessionTimeout,
		RebalanceTimeout:      opts.SessionTimeout,
		WatchPartitionChanges: true,
		GroupBalancers:        balancers,
		Logger:                kafkaLogger{log: log, level: slog.LevelDebug, what: "kafka-go reader"},
		ErrorLogger:           kafkaLogger{log: log, level: slog.LevelWarn, what: "kafka-go reader"},
	}
	if opts.SessionTimeout > 0 {
		cfg.HeartbeatInterval = min(opts.SessionTimeout/3, 3*time.Second)
	}
	if opts.HeartbeatInterval > 0 {
		cfg.HeartbeatInterval = opts.HeartbeatInterval
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("events: NewConsumer: %w", err)
	}
	var r *kafka.Reader
	if opts.Assigned == nil {
		r = kafka.NewReader(cfg) // joins the group at once
	}
	c := &Consumer{
		opts: opts,
		log:  log,
		r:    r,
		rcfg: cfg,
		mConsumed: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_consumed_total",
			Help: "Messages handled (or dead-lettered) by consumers, by topic.",
		}, []string{"topic"})),
		mDead: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_deadlettered_total",
			Help: "Poison messages moved to the dead-letter topic, by source topic.",
		}, []string{"topic"})),
		mLag: registerGauge(opts.Registerer, log, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_events_consumer_lag",
			Help: "Messages behind the high watermark: as last reported by the reader (the partition fetched most recently), or with an Assigned hook summed over the member's partitions.",
		})),
	}
	c.stopCtx, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Stats returns running totals; see ConsumerStats.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Consumed:     c.consumed.Load(),
		DeadLettered: c.deadLettered.Load(),
		Retries:      c.retries.Load(),
		Commits:      c.commits.Load(),
	}
}

// Run fetches messages and hands them to h until ctx is cancelled or Close
// is called, then commits the offsets of the messages h finished with and
// returns nil. Only one Run may be active at a time (a second call returns
// an error); after Run returns it may be called again.
//
// For each message, h's result decides:
//   - nil: the message is marked for commit;
//   - an error wrapping ErrPoison: a DeadLetter (see types.go) with the
//     error's text as reason is written synchronously to the dead-letter
//     topic (retried until it succeeds), then the message is marked;
//   - any other error: h is called again for the same message after capped
//     exponential backoff, until it succeeds or Run stops.
//
// Marked offsets are committed every CommitEvery messages or CommitInterval
// and on return, each time after BeforeCommit (if set) has agreed. A message
// is never marked before h has returned for it.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("events: Run: nil handler")
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrConsumerClosed
	case c.running:
		c.mu.Unlock()
		return errors.New("events: Run: already running")
	}
	c.running = true
	c.runWG.Add(1)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
		c.runWG.Done()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.stopCtx, cancel)()

	if c.r == nil {
		return c.runGenerations(ctx, h)
	}
	st := &runState{marks: make(map[topicPartition]kafka.Message)}
	defer func() {
		// ctx is done; commit with a context of our own.
		st.final = true
		c.commit(context.WithoutCancel(ctx), st)
	}()

	// tick is a context that expires every CommitInterval: fetches use it so
	// an idle consumer still commits and updates its lag gauge, and one
	// context per interval (rather than per fetch) keeps fetches cheap.
	newTick := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, c.opts.CommitInterval)
	}
	tick, tickCancel := newTick()
	defer func() { tickCancel() }()
	periodic := func() {
		tickCancel()
		c.commit(ctx, st)
		c.mLag.Set(float64(c.r.Stats().Lag))
		tick, tickCancel = newTick()
	}

	fetchFailures := 0
	for ctx.Err() == nil {
		m, err := c.r.FetchMessage(tick)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case tick.Err() != nil:
				periodic()
				continue
			case errors.Is(err, io.EOF):
				// The reader was closed under us; only Close does that,
				// and it cancels ctx first.
				return nil
			}
			c.log.Warn("events: fetch failed; retrying", "attempt", fetchFailures+1, "err", err)
			if !sleepCtx(ctx, backoff(fetchFailures, c.opts.RetryBackoff, c.opts.MaxRetryBackoff)) {
				return nil
			}
			fetchFailures++
			continue
		}
		fetchFailures = 0
		if ctx.Err() != nil {
			// Fetched in the same instant as the cancellation: leave it
			// uncommitted for the next member.
			return nil
		}
		if !c.handle(ctx, h, m, st) {
			return nil
		}
		st.mark(m)
		switch {
		case ctx.Err() != nil:
			return nil // the deferred final commit covers m
		case tick.Err() != nil:
			periodic()
		case st.n >= c.opts.CommitEvery:
			c.commit(ctx, st)
		}
	}
	return nil
}

// handle runs h on m until it is done with m, returning false if ctx ended
// first (m then stays uncommitted and will be delivered again).
func (c *Consumer) handle(ctx context.Context, h Handler, m kafka.Message, st *runState) bool {
	for attempt := 0; ; attempt++ {
		err := h(ctx, m)
		if err == nil {
			c.consumed.Add(1)
			c.mConsumed.WithLabelValues(m.Topic).Inc()
			return true
		}
		if errors.Is(err, ErrPoison) {
			if !c.deadLetter(ctx, m, err) {
				return false
			}
			c.consumed.Add(1)
			c.deadLettered.Add(1)
			c.mConsumed.WithLabelValues(m.Topic).Inc()
			c.mDead.WithLabelValues(m.Topic).Inc()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.retries.Add(1)
		lvl := slog.LevelDebug
		if attempt == 0 || attempt%10 == 9 {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "events: handler failed; retrying the same message",
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempt", attempt+1, "err", err)
		// Earlier messages are done; do not let a long retry hold back
		// their commit.
		if st.n > 0 && time.Since(st.lastCommit) >= c.opts.CommitInterval {
			c.commit(ctx, st)
		}
		if !sleepCtx(ctx, backoff(attempt, c.opts.RetryBackoff, c.opts.MaxRetryBackoff)) {
			return false
		}
	}
}

// deadLetter writes m with reason to the dead-letter topic, retrying until it
// is written or ctx ends (false). Without a dead-letter producer it logs and
// reports success, so the poison message is skipped.
func (c *Consumer) deadLetter(ctx context.Context, m kafka.Message, reason error) bool {
	dl := DeadLetter{
		Schema:    SchemaVersion,
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       string(m.Key),
		Reason:    reason.Error(),
		Value:     string(m.Value),
		TS:        time.Now().UnixMilli(),
	}
	if c.opts.DeadLetter == nil {
		c.log.Error("events: poison message skipped (no dead-letter producer)",
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", dl.Reason)
		return true
	}
	body, err := json.Marshal(dl)
	if err != nil { // cannot happen: strings and integers only
		c.log.Error("events: cannot encode dead letter; skipping", "err", err)
		return true
	}
	for attempt := 0; ; attempt++ {
		err := c.opts.DeadLetter.Produce(ctx, c.opts.DeadLetterTopic, string(m.Key), body)
		if err == nil {
			c.log.Warn("events: poison message dead-lettered",
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", dl.Reason)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn("events: dead-letter write failed; retrying", "attempt", attempt+1, "err", err)
		if !sleepCtx(ctx, backoff(attempt, c.opts.RetryBackoff, c.opts.MaxRetryBackoff)) {
			return false
		}
	}
}

// commit commits the marked offsets. On failure the marks are kept for the
// next attempt (offsets only move forward, so committing later is safe).
// BeforeCommit runs first, even with nothing marked; its error vetoes the
// commit.
func (c *Consumer) commit(ctx context.Context, st *runState) {
	if c.opts.BeforeCommit != nil {
		if err := c.opts.BeforeCommit(ctx); err != nil {
			st.lastCommit = time.Now()
			if st.n > 0 {
				c.log.Warn("events: before-commit hook failed; offsets not committed, will retry", "messages", st.n, "final", st.final, "err", err)
			} else {
				c.log.Warn("events: before-commit hook failed", "final", st.final, "err", err)
			}
			return
		}
	}
	if st.n == 0 {
		st.lastCommit = time.Now()
		return
	}
	msgs := make([]kafka.Message, 0, len(st.marks))
	for _, m := range st.marks {
		msgs = append(msgs, m)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var err error
	if st.gen != nil {
		err = commitGeneration(st.gen, msgs)
	} else {
		err = c.r.CommitMessages(cctx, msgs...)
	}
	cancel()
	st.lastCommit = time.Now()
	if err != nil {
		switch {
		case !st.final && ctx.Err() != nil:
			// Run is stopping; its final commit retries these marks.
			c.log.Debug("events: offset commit interrupted by shutdown", "messages", st.n, "err", err)
		case !st.final:
			c.log.Warn("events: offset commit failed; will retry", "messages", st.n, "err", err)
		default:
			c.log.Warn("events: final offset commit failed; handled messages will be redelivered", "messages", st.n, "err", err)
		}
		return
	}
	c.commits.Add(1)
	clear(st.marks)
	st.n = 0
}

// Close stops a running Run (which commits what it handled), then closes the
// reader, leaving the consumer group so that its partitions are reassigned
// at once rather than after the session timeout. Safe to call more than once.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.stop()
		c.runWG.Wait()
		if c.r == nil {
			return // generations.go: the group was closed by Run
		}
		// kafka-go's Reader.Close can block indefinitely while its group
		// rebalances (segmentio/kafka-go#1248), which would hold a
		// graceful stop hostage. Offsets are committed by now, so after
		// readerCloseTimeout the reader is abandoned: its goroutine ends
		// with the process, and the broker drops the member after the
		// session timeout instead of at once.
		done := make(chan error, 1)
		go func() { done <- c.r.Close() }()
		select {
		case err := <-done:
			if err != nil {
				c.closeErr = fmt.Errorf("events: consumer close: %w", err)
			}
		case <-time.After(readerCloseTimeout):
			c.closeErr = fmt.Errorf("events: consumer close: reader still closing after %v; abandoned (the group drops the member after its session timeout)", readerCloseTimeout)
			c.log.Warn("consumer close timed out; abandoning the reader", "after", readerCloseTimeout.String())
		}
	})
	return c.closeErr
}

// readerCloseTimeout bounds how long Close waits for the kafka-go reader.
const readerCloseTimeout = 10 * time.Second

type topicPartition struct {
	topic     string
	partition int
}

// runState is Run's bookkeeping: the last handled message per partition
// (committing it commits everything before it) and how many are uncommitted.
type runState struct {
	marks      map[topicPartition]kafka.Message
	n          int
	lastCommit time.Time
	final      bool // Run is returning: this is the last commit
	// gen is the group generation offsets are committed in (Assigned);
	// nil: through the Reader.
	gen *kafka.Generation
}

func (st *runState) mark(m kafka.Message) {
	// Keep only what CommitMessages needs; the value may be large.
	st.marks[topicPartition{m.Topic, m.Partition}] = kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	st.n++
}

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

// ErrProducerClosed is returned by Produce after Close has been called.
var ErrProducerClosed = errors.New("events: producer closed")

// ProducerOptions configures NewProducer. Zero values take the defaults noted.
type ProducerOptions struct {
	// Buffer is the capacity of the in-memory queue between Publish and the
	// broker (default 10000). It bounds the memory an outage can cost: once
	// it is full, Publish drops new events instead of blocking requests.
	Buffer int
	// BatchSize is the most events written in one request (default 500).
	BatchSize int
	// BatchTimeout is the longest an event waits in the queue for its batch
	// to fill before it is written anyway (default 50ms). It trades a little
	// latency for far fewer requests.
	BatchTimeout time.Duration
	// WriteTimeout bounds one network write or read to a broker (default 10s).
	WriteTimeout time.Duration
	// RequiredAcks is kafka.RequireOne or kafka.RequireAll (default
	// RequireAll, so that an acknowledged event survives a broker loss).
	// RequireNone is not allowed: without acknowledgements the producer
	// could not tell a failed write from a good one.
	RequiredAcks kafka.RequiredAcks
	// RetryBackoff is the first pause after a failed write (default 100ms);
	// it doubles per consecutive failure up to MaxRetryBackoff (default 5s).
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// Security authenticates to and encrypts traffic with the brokers
	// (zero value: plaintext, no authentication).
	Security Security
	// Registerer, when set, receives novarec_events_published_total{topic},
	// novarec_events_dropped_total{topic},
	// novarec_events_failed_writes_total{topic} and novarec_events_buffered.
	Registerer prometheus.Registerer
	// Logger receives write failures, recoveries and drop summaries
	// (default slog.Default()).
	Logger *slog.Logger
}

func (o *ProducerOptions) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = 10000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 50 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.RequiredAcks != kafka.RequireOne {
		o.RequiredAcks = kafka.RequireAll
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = 5 * time.Second
	}
	if o.MaxRetryBackoff < o.RetryBackoff {
		o.MaxRetryBackoff = o.RetryBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ProducerStats are running totals since NewProducer, for tests and status
// pages (Prometheus has the same numbers per topic).
type ProducerStats struct {
	// Published counts events the broker acknowledged (Publish and Produce).
	Published uint64
	// Dropped counts events accepted by nobody: rejected by a full buffer or
	// a closed producer, not encodable, refused by the broker as permanently
	// invalid (e.g. too large), or still unwritten when Close's deadline hit.
	Dropped uint64
	// Failed counts events in write attempts that failed and were retried;
	// one event can be counted several times during an outage.
	Failed uint64
	// Buffered is the number of events accepted but neither acknowledged
	// nor dropped yet: queued plus the batch being written.
	Buffered int
}

// Producer publishes events to Kafka without ever making the caller wait: a
// recommendation request must not slow down, let alone fail, because the
// event log is slow or down. Publish puts the event in a bounded queue and
// returns; one background goroutine turns the queue into batches and writes
// them. When a write fails the goroutine retries the same batch with capped
// backoff, so events already accepted are delivered once the broker is back;
// meanwhile new events fill the queue and, once it is full, are dropped and
// counted. Delivery is at least once: a retried write may duplicate events,
// which consumers absorb by event_id.
//
// Events are keyed (by user id, DESIGN.md §5) and hashed to a partition with
// kafka.Hash, so the events of one user stay in order on one partition.
//
// Events of one user written in one batch go to one partition in one
// produce request, which succeeds or fails as a whole, and failed events are
// retried before any later batch is written, so retries keep per-user order.
//
// Goroutines: NewProducer starts exactly one goroutine (run), owned by the
// Producer; Close stops it (after flushing, bounded by Close's context) and
// waits for it. Publish runs on its caller's goroutine and only appends to
// the queue under its mutex; it wakes run when the queue becomes non-empty
// or holds a full batch, not per event (see queue). Everything else run
// touches (the batch, the timer, the drop-log state) is run's alone. kafka-go's Writer and Transport start their own goroutines
// (per partition, per connection); Close closes the Writer, which waits for
// its in-flight writes (if Close's context ends first, Close returns and a
// helper goroutine finishes that wait within the write timeouts), and closes
// the Transport's idle connections.
type Producer struct {
	opts      ProducerOptions
	brokers   []string
	log       *slog.Logger
	w         *kafka.Writer
	transport *kafka.Transport

	queue *queue

	// closed is set by Close, before it closes the queue (whose own flag,
	// under its mutex, is what guarantees nothing is queued after the
	// final drain); this one lets ProduceMessages refuse without the lock.
	closed atomic.Bool

	stop chan struct{} // closed by Close: flush and exit
	done chan struct{} // closed by run on exit
	// abortCtx bounds every write; abort cancels it when Close's context
	// ends, so run gives up on what is left instead of retrying forever.
	abortCtx  context.Context
	abort     context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	// Drop summaries are logged by run (never by Publish, which must stay
	// cheap under overload) at most once per dropLogEvery.
	lastDropLog   time.Time
	lastDropCount uint64

	// pending counts accepted events not yet acknowledged or dropped:
	// Publish adds before its put (and takes back if the put fails), run
	// subtracts once an event is written or given up. So Buffered never
	// under-counts, even while run holds an event between queue and write.
	pending   atomic.Int64
	bufGauge  *bufferedGauge
	published atomic.Uint64
	dropped   atomic.Uint64
	failed    atomic.Uint64

	mPublished *prometheus.CounterVec
	mDropped   *prometheus.CounterVec
	mFailed    *prometheus.CounterVec
}

// NewProducer returns a running Producer writing to the cluster reachable at
// brokers (host:port bootstrap addresses). It does not contact the brokers;
// write errors surface in logs, metrics and Stats, never to Publish callers.
// The topics must exist (see EnsureTopics): writes to a missing topic are
// retried, not dropped.
func NewProducer(brokers []string, opts ProducerOptions) *Producer {
	opts.defaults()
	log := opts.Logger.With("component", "events.producer")
	transport := &kafka.Transport{
		DialTimeout: min(5*time.Second, opts.WriteTimeout),
		ClientID:    "novarec",
		SASL:        opts.Security.SASL,
		TLS:         opts.Security.TLS,
	}
	p := &Producer{
		opts:      opts,
		brokers:   brokers,
		log:       log,
		transport: transport,
		w: &kafka.Writer{
			Addr:     kafka.TCP(brokers...),
			Balancer: &kafka.Hash{},
			// A couple of quick retries inside kafka-go smooth over a
			// leader move; anything longer is our retry loop's job, which
			// keeps retrying instead of giving up after a few attempts.
			MaxAttempts:     3,
			WriteBackoffMin: 10 * time.Millisecond,
			WriteBackoffMax: 100 * time.Millisecond,
			BatchSize:       opts.BatchSize,
			// run already batched the events; kafka-go must send each
			// per-partition batch at once rather than linger again. A
			// batch is filled under a lock that its timer also takes, so
			// even this tiny timeout cannot split one WriteMessages call's
			// events for a partition; it only removes the wait after it.
			BatchTimeout: time.Microsecond,
			ReadTimeout:  opts.WriteTimeout,
			WriteTimeout: opts.WriteTimeout,
			RequiredAcks: opts.RequiredAcks,
			Async:        false,
			Transport:    transport,
			ErrorLogger:  kafkaLogger{log: log, level: slog.LevelDebug, what: "kafka-go writer"},
		},
		queue: newQueue(opts.Buffer, opts.BatchSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		mPublished: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_published_total",
			Help: "Events acknowledged by Kafka, by topic.",
		}, []string{"topic"})),
		mDropped: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_dropped_total",
			Help: "Events lost before Kafka acknowledged them (buffer full, producer closed, unencodable, permanently rejected, or unflushed at shutdown), by topic.",
		}, []string{"topic"})),
		mFailed: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_failed_writes_total",
			Help: "Events in Kafka writes that failed and will be retried, by topic (counted per attempt).",
		}, []string{"topic"})),
	}
	if len(brokers) == 0 {
		log.Error("events: producer has no brokers; every event will be buffered, then dropped")
	}
	if opts.Registerer != nil {
		p.bufGauge = registerBufferedGauge(opts.Registerer, log)
		p.bufGauge.add(p)
	}
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	go p.run()
	return p
}

// Publish queues one event for asynchronous delivery and reports whether it
// was accepted. It never blocks: when the buffer is full or the producer is
// closed, the event is dropped, counted, and Publish returns false. The
// Producer takes ownership of value; the caller must not modify it afterwards.
func (p *Producer) Publish(topic, key string, value []byte) bool {
	if topic == "" {
		p.drop("", 1)
		return false
	}
	if p.closed.Load() {
		p.drop(topic, 1)
		return false
	}
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	p.pending.Add(1)
	if p.queue.put(kafka.Message{Topic: topic, Key: k, Value: value}) != putOK {
		p.pending.Add(-1)
		p.drop(topic, 1)
		return false
	}
	return true
}

// PublishJSON marshals v and publishes it like Publish. A value that cannot
// be marshalled is a programming error: it is logged, counted as dropped and
// reported as false.
func (p *Producer) PublishJSON(topic, key string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		p.log.Error("events: cannot encode event", "topic", topic, "err", err)
		p.drop(topic, 1)
		return false
	}
	return p.Publish(topic, key, b)
}

// Produce writes one event synchronously and returns once the broker has
// acknowledged it (or ctx ended, or the write failed). It is for the few
// writes that must be known to be durable before the caller moves on, such
// as a dead letter that must be written before the poison message's offset
// is committed. It does not go through the queue, so it is not ordered with
// respect to earlier Publish calls. It makes a single attempt (with kafka-go's
// short internal retries); retrying further is up to the caller.
func (p *Producer) Produce(ctx context.Context, topic, key string, value []byte) error {
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	return p.ProduceMessages(ctx, kafka.Message{Topic: topic, Key: k, Value: value})
}

// ProduceMessages is Produce for several messages at once (each names its
// topic): it returns nil once the broker has acknowledged all of them, or
// the first error otherwise, in which case some may have been written and
// a retry duplicates them.
func (p *Producer) ProduceMessages(ctx context.Context, msgs ...kafka.Message) error {
	if p.closed.Load() {
		return ErrProducerClosed
	}
	for _, m := range msgs {
		if m.Topic == "" {
			return errors.New("events: Produce: empty topic")
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	err := p.w.WriteMessages(ctx, msgs...)
	if err == nil {
		p.countAcked(msgs)
		return nil
	}
	var wes kafka.WriteErrors
	if errors.As(err, &wes) {
		var ok []kafka.Message
		err = nil
		for i, e := range wes {
			switch {
			case e == nil:
				ok = append(ok, msgs[i])
			case err == nil:
				err = e
			}
		}
		p.countAcked(ok)
		if err == nil {
			return nil
		}
	}
	if errors.Is(err, io.ErrClosedPipe) {
		return ErrProducerClosed
	}
	p.failed.Add(uint64(len(msgs)))
	forEachTopic(msgs, func(topic string, n int) { p.mFailed.WithLabelValues(topic).Add(float64(n)) })
	return fmt.Errorf("events: produce to %s: %w", msgs[0].Topic, p.opts.Security.explain(err))
}

// Ping connects to the brokers in turn until one answers an ApiVersions
// request, for readiness reports: nil means Kafka answers. It opens a new
// connection each time, since the producer's own may be cached answers
// (kafka-go keeps metadata for seconds).
func (p *Producer) Ping(ctx context.Context) error {
	var errs []error
	for _, b := range p.brokers {
		conn, err := p.opts.Security.dialer(p.opts.WriteTimeout).DialContext(ctx, "tcp", b)
		if err == nil {
			if dl, ok := ctx.Deadline(); ok {
				_ = conn.SetDeadline(dl)
			}
			_, err = conn.ApiVersions()
			_ = conn.Close()
			if err == nil {
				return nil
			}
		}
		errs = append(errs, p.opts.Security.explain(err))
	}
	if len(errs) == 0 {
		return errors.New("events: no brokers")
	}
	return errors.Join(errs...)
}

// Stats returns running totals; see ProducerStats.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{
		Published: p.published.Load(),
		Dropped:   p.dropped.Load(),
		Failed:    p.failed.Load(),
		Buffered:  p.buffered(),
	}
}

func (p *Producer) buffered() int { return int(max(p.pending.Load(), 0)) }

// Close stops accepting events, writes everything already queued, closes the
// connection to Kafka and waits for the background goroutine. ctx bounds the
// flush: if it ends first, events still unwritten are counted as dropped and
// Close returns an error wrapping ctx.Err(). Close is safe to call more than
// once; later calls return the first call's result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.closed.Store(true)
	// A Publish that saw closed == false may still be about to put; once
	// the queue is closed under its mutex, no put succeeds, so run's final
	// drain sees every accepted event.
	p.queue.close()
	close(p.stop)
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		before := p.dropped.Load()
		p.abort()
		<-p.done // run honours abortCtx promptly
		err = fmt.Errorf("events: producer close: %d events not flushed: %w", p.dropped.Load()-before, ctx.Err())
	}
	p.abort()
	// Writer.Close waits for kafka-go's in-flight batches; bound it by ctx
	// too (the goroutine finishes on its own within the write timeouts).
	wc := make(chan error, 1)
	go func() { wc <- p.w.Close() }()
	select {
	case werr := <-wc:
		if werr != nil && err == nil {
			err = fmt.Errorf("events: producer close: %w", werr)
		}
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("events: producer close: %w", ctx.Err())
		}
	}
	p.transport.CloseIdleConnections()
	if p.bufGauge != nil {
		p.bufGauge.remove(p)
	}
	return err
}

// run is the producer's only goroutine: it batches the queue and writes the
// batches in order, retrying failed writes. It returns when Close has closed
// stop and the queue is drained, or when abortCtx is cancelled.
//
// It sleeps until the queue becomes non-empty, then lets a batch fill for
// up to BatchTimeout (less if BatchSize events arrive or Close is called),
// takes at most BatchSize events and writes them. Events left over leave a
// wake token (see queue.take), so the next round starts at once.
func (p *Producer) run() {
	defer close(p.done)
	batch := make([]kafka.Message, 0, p.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-p.queue.wake:
		case <-p.stop:
			p.drain(batch)
			return
		}
		if n := p.queue.queued(); n == 0 {
			continue // a stale token: what it announced was taken already
		} else if n < p.opts.BatchSize {
			timer.Reset(p.opts.BatchTimeout)
			select {
			case <-timer.C:
			case <-p.queue.full:
			case <-p.stop: // write what there is; the next round drains the rest
			}
			timer.Stop()
		}
		batch = p.queue.take(batch[:0], p.opts.BatchSize)
		if !p.write(batch) {
			p.dropQueued()
			return
		}
		clear(batch) // let the written values go before the next batch
		p.logDrops()
	}
}

const dropLogEvery = 10 * time.Second

// logDrops logs how many events were dropped since the last summary, at most
// once per dropLogEvery. Only run calls it.
func (p *Producer) logDrops() {
	n := p.dropped.Load()
	if n == p.lastDropCount || time.Since(p.lastDropLog) < dropLogEvery {
		return
	}
	p.log.Warn("events: events dropped", "since_last_report", n-p.lastDropCount, "total", n,
		"buffered", p.buffered(), "buffer", p.opts.Buffer)
	p.lastDropCount, p.lastDropLog = n, time.Now()
}

// drain writes whatever is left in the queue after Close, batch by batch.
// The queue is closed by then, so it only shrinks.
func (p *Producer) drain(batch []kafka.Message) {
	for {
		batch = p.queue.take(batch[:0], p.opts.BatchSize)
		if len(batch) == 0 {
			return
		}
		if !p.write(batch) {
			p.dropQueued()
			return
		}
	}
}

// dropQueued counts everything still queued as dropped; used when Close's
// deadline has passed.
func (p *Producer) dropQueued() {
	for {
		ms := p.queue.take(nil, p.opts.BatchSize)
		if len(ms) == 0 {
			return
		}
		p.pending.Add(-int64(len(ms)))
		forEachTopic(ms, func(topic string, n int) { p.drop(topic, n) })
	}
}

// write delivers batch, retrying failed events with capped backoff until
// they are acknowledged or abortCtx ends. It returns false on abort (the
// unwritten events are then counted as dropped). Only the events that failed
// are retried, so a partly successful write is not duplicated wholesale.
func (p *Producer) write(batch []kafka.Message) bool {
	pending := batch
	failures := 0
	var firstFailure time.Time
	for len(pending) > 0 {
		err := p.w.WriteMessages(p.abortCtx, pending...)
		if err == nil {
			p.countPublished(pending)
			break
		}
		if p.abortCtx.Err() != nil {
			p.dropAll(pending, "close deadline passed")
			return false
		}

		var retry []kafka.Message
		var wes kafka.WriteErrors
		var tooLarge kafka.MessageTooLargeError
		switch {
		case errors.As(err, &tooLarge):
			// Checked before anything is sent: drop the one message and
			// send the rest straight away.
			p.dropAll([]kafka.Message{tooLarge.Message}, "message too large")
			pending = tooLarge.Remaining
			continue
		case errors.As(err, &wes) && len(wes) == len(pending):
			var ok []kafka.Message
			for i, e := range wes {
				switch {
				case e == nil:
					ok = append(ok, pending[i])
				case permanent(e):
					p.log.Error("events: broker rejected event permanently; dropping it",
						"topic", pending[i].Topic, "err", e)
					p.dropAll(pending[i:i+1], "")
				default:
					retry = append(retry, pending[i])
				}
			}
			p.countPublished(ok)
		default:
			// Nothing was sent (metadata or connection failure).
			retry = pending
		}
		if len(retry) == 0 {
			break
		}
		for _, m := range retry {
			p.mFailed.WithLabelValues(m.Topic).Inc()
		}
		p.failed.Add(uint64(len(retry)))
		if failures == 0 {
			firstFailure = time.Now()
			p.log.Warn("events: kafka write failed; retrying (new events queue up to the buffer size, then are dropped)",
				"events", len(retry), "err", p.opts.Security.explain(err))
		} else {
			p.log.Debug("events: kafka write failed again", "attempt", failures+1, "events", len(retry), "err", err)
		}
		pending = retry
		p.logDrops()
		if !sleepCtx(p.abortCtx, backoff(failures, p.opts.RetryBackoff, p.opts.MaxRetryBackoff)) {
			p.dropAll(pending, "close deadline passed")
			return false
		}
		failures++
	}
	if failures > 0 {
		p.log.Info("events: kafka writes recovered", "after", time.Since(firstFailure).Round(time.Millisecond),
			"failed_attempts", failures, "dropped_so_far", p.dropped.Load())
	}
	return true
}

// permanent reports whether a per-message write error will never succeed on
// retry, so the event is dropped rather than blocking the queue behind it.
// Everything else (network errors, leader moves, missing topics, even
// authorization failures an operator can fix) is retried.
func permanent(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) ||
		errors.Is(err, kafka.InvalidTopic) ||
		errors.Is(err, kafka.InvalidMessageSize) ||
		errors.Is(err, kafka.RecordListTooLarge) ||
		errors.Is(err, kafka.InvalidRecord)
}

// countPublished counts queued events the broker acknowledged.
func (p *Producer) countPublished(ms []kafka.Message) {
	p.pending.Add(-int64(len(ms)))
	p.countAcked(ms)
}

// countAcked counts acknowledged events (queued or produced directly).
func (p *Producer) countAcked(ms []kafka.Message) {
	if len(ms) == 0 {
		return
	}
	p.published.Add(uint64(len(ms)))
	forEachTopic(ms, func(topic string, n int) { p.mPublished.WithLabelValues(topic).Add(float64(n)) })
}

// dropAll gives up on accepted events (they leave pending).
func (p *Producer) dropAll(ms []kafka.Message, why string) {
	if why != "" && len(ms) > 0 {
		p.log.Warn("events: dropping unwritten events", "events", len(ms), "reason", why)
	}
	p.pending.Add(-int64(len(ms)))
	forEachTopic(ms, func(topic string, n int) { p.drop(topic, n) })
}

func (p *Producer) drop(topic string, n int) {
	p.dropped.Add(uint64(n))
	p.mDropped.WithLabelValues(topic).Add(float64(n))
}

// forEachTopic calls fn once per run of consecutive messages with the same
// topic; batches are mostly single-topic, so this avoids a map.
func forEachTopic(ms []kafka.Message, fn func(topic string, n int)) {
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].Topic == ms[i].Topic {
			j++
		}
		fn(ms[i].Topic, j-i)
		i = j
	}
}

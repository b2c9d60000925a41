package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// ErrUnavailable is returned by Durable.Write when Kafka did not acknowledge
// an event in time and there is no spool to keep it.
var ErrUnavailable = errors.New("events: kafka unavailable and no spool")

// failFast is how long a Durable without a spool refuses writes at once after
// Kafka failed to acknowledge one; then the next write tries Kafka again.
const failFast = time.Second

// DurableOptions configures NewDurable. Zero values take the defaults noted.
type DurableOptions struct {
	// Spool keeps events Kafka cannot take right now (nil: such events are
	// refused). The Durable delivers it and closes it in Close.
	Spool *Spool
	// AckTimeout bounds the wait for Kafka's acknowledgement (from all
	// in-sync replicas, the producer's RequireAll) of one Write before the
	// event goes to the spool instead (default 2s).
	AckTimeout time.Duration
	// DeliverBatch is the most spooled events sent in one write (default 500).
	DeliverBatch int
	// RetryBackoff is the first pause after a failed delivery of spooled
	// events (default 200ms); it doubles up to MaxRetryBackoff (default 5s).
	RetryBackoff, MaxRetryBackoff time.Duration
	// Registerer, when set, receives novarec_events_durable_writes_total,
	// novarec_events_durable_refused_total and the spool gauges.
	Registerer prometheus.Registerer
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Durable writes events that must not be lost once acknowledged, such as
// feedback a client was told was accepted. Write returns nil only when the
// event is durable: acknowledged by Kafka, or (when Kafka does not answer
// within AckTimeout, or while earlier events still wait in the spool) on
// disk in the Spool, from which a background goroutine delivers it as soon
// as Kafka takes writes again, oldest first. While the spool holds events,
// new ones go behind them, so one client's events keep their order.
// Events may reach Kafka twice (a write that timed out but succeeded, a
// crash before a delivery was committed); every event carries an event_id
// by which consumers drop duplicates.
//
// Goroutines: with a spool, NewDurable starts one (deliver), which Close
// stops after a last delivery attempt bounded by Close's context.
type Durable struct {
	p     *Producer
	spool *Spool
	opts  DurableOptions
	log   *slog.Logger

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// failFastUntil (Unix ns): without a spool, Writes until then are
	// refused without trying Kafka, which just failed.
	failFastUntil atomic.Int64
	// ctx bounds deliveries; Close cancels it when its own context ends.
	ctx    context.Context
	cancel context.CancelFunc

	writes  *prometheus.CounterVec
	refused *prometheus.CounterVec
}

// NewDurable returns a Durable writing through p (which must outlive it:
// close the Durable first).
func NewDurable(p *Producer, opts DurableOptions) *Durable {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 2 * time.Second
	}
	if opts.DeliverBatch <= 0 {
		opts.DeliverBatch = 500
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	if opts.MaxRetryBackoff < opts.RetryBackoff {
		opts.MaxRetryBackoff = max(5*time.Second, opts.RetryBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "events.durable")
	d := &Durable{
		p: p, spool: opts.Spool, opts: opts, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		writes: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_durable_writes_total",
			Help: "Events made durable before they were acknowledged to a client, by topic and where: kafka (acknowledged by the brokers) or spool (fsync'd to the local spool, delivered later).",
		}, []string{"topic", "via"})),
		refused: registerCounterVec(opts.Registerer, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_durable_refused_total",
			Help: "Events that could not be made durable and were refused (the client got 503), by topic and reason: kafka_unavailable (no spool), spool_full, spool_error.",
		}, []string{"topic", "reason"})),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if d.spool == nil {
		close(d.done)
		return d
	}
	if opts.Registerer != nil {
		registerSpoolGauges(opts.Registerer, log, d.spool)
	}
	go d.deliver()
	return d
}

// Write makes one event durable; see Durable. An error means it is not,
// and the caller must not acknowledge it: ErrUnavailable, ErrSpoolFull, a
// spool I/O error, or ctx's error.
func (d *Durable) Write(ctx context.Context, topic, key string, value []byte) error {
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	m := kafka.Message{Topic: topic, Key: k, Value: value}
	if d.spool == nil && time.Now().UnixNano() < d.failFastUntil.Load() {
		// Kafka just failed to acknowledge: refuse at once rather than hold
		// every request for AckTimeout while it is down.
		d.refused.WithLabelValues(topic, "kafka_unavailable").Inc()
		return ErrUnavailable
	}
	if d.spool == nil || !d.spool.Pending() {
		actx, cancel := context.WithTimeout(ctx, d.opts.AckTimeout)
		err := d.p.ProduceMessages(actx, m)
		cancel()
		if err == nil {
			d.writes.WithLabelValues(topic, "kafka").Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.spool == nil {
			d.failFastUntil.Store(time.Now().Add(failFast).UnixNano())
			d.refused.WithLabelValues(topic, "kafka_unavailable").Inc()
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		d.log.Debug("kafka did not acknowledge an event; spooling it", "topic", topic, "err", err)
	}
	if err := d.spool.Append(ctx, m); err != nil {
		reason := "spool_error"
		if errors.Is(err, ErrSpoolFull) {
			reason = "spool_full"
		}
		d.refused.WithLabelValues(topic, reason).Inc()
		return err
	}
	d.writes.WithLabelValues(topic, "spool").Inc()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// Spooling reports whether events wait in the spool for Kafka.
func (d *Durable) Spooling() bool { return d.spool != nil && d.spool.Pending() }

// SpoolStats returns the spool's totals (zero without a spool) and whether
// events wait in it.
func (d *Durable) SpoolStats() (SpoolStats, bool) {
	if d.spool == nil {
		return SpoolStats{}, false
	}
	return d.spool.Stats(), d.spool.Pending()
}

// deliver is the goroutine that empties the spool into Kafka, woken by
// Write and every second.
func (d *Durable) deliver() {
	defer close(d.done)
	failures := 0
	var failingSince time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-d.wake:
		case <-tick.C:
		case <-d.stop:
			stopping = true
		}
		for d.spool.Pending() && d.ctx.Err() == nil {
			if err := d.deliverBatch(); err != nil {
				if failures == 0 {
					failingSince = time.Now()
					d.log.Warn("kafka does not take the spooled events yet; retrying", "spooled", d.spool.Stats().Records, "err", err)
				}
				failures++
				if stopping {
					break
				}
				t := time.NewTimer(backoff(failures-1, d.opts.RetryBackoff, d.opts.MaxRetryBackoff))
				select {
				case <-t.C:
				case <-d.stop:
					t.Stop()
					stopping = true // one more attempt, then give up
				}
				continue
			}
			if failures > 0 {
				d.log.Info("kafka takes writes again; delivering the spool", "after", time.Since(failingSince).Round(time.Millisecond), "spooled", d.spool.Stats().Records)
				failures = 0
			}
			if !d.spool.Pending() {
				d.log.Info("spool delivered")
			}
		}
		if stopping {
			return
		}
	}
}

// deliverBatch writes the oldest spooled events to Kafka and commits them.
func (d *Durable) deliverBatch() error {
	msgs, pos, err := d.spool.Peek(d.opts.DeliverBatch)
	if err != nil || len(msgs) == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.p.opts.WriteTimeout)
	defer cancel()
	if err := d.p.ProduceMessages(ctx, msgs...); err != nil {
		return err
	}
	return d.spool.Commit(pos)
}

// Close makes one last attempt to deliver the spool, bounded by ctx and
// given up at the first failure (what is left is delivered after the next
// start), then closes the spool. Call it after the last Write. It returns
// an error saying how many events remain spooled.
func (d *Durable) Close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		if d.spool == nil {
			return
		}
		stop := context.AfterFunc(ctx, d.cancel)
		close(d.stop)
		<-d.done
		stop()
		d.cancel()
		st := d.spool.Stats()
		_ = d.spool.Close()
		if st.Records > 0 {
			err = fmt.Errorf("events: %d events remain in the spool; they are delivered after the next start", st.Records)
		}
	})
	return err
}

// registerSpoolGauges exports a spool's totals.
func registerSpoolGauges(reg prometheus.Registerer, log *slog.Logger, s *Spool) {
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "novarec_spool_events", Help: "Events in the local spool not yet delivered to Kafka."},
			func() float64 { return float64(s.Stats().Records) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "novarec_spool_bytes", Help: "Bytes of the local spool's files."},
			func() float64 { return float64(s.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "novarec_spool_max_bytes", Help: "The spool's bound (-spool-max-bytes); at it, feedback is refused with 503."},
			func() float64 { return float64(s.Stats().MaxBytes) }),
	} {
		if err := reg.Register(g); err != nil {
			log.Warn("events: metric not registered", "err", err)
		}
	}
}

package trainer

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the trainer's Prometheus series, all with a constant variant
// label so that one process can run a trainer per variant on one registry.
// Consumption rate and lag per topic come from events.Consumer's metrics.
type metrics struct {
	events      *prometheus.CounterVec
	reward      prometheus.Histogram
	updates     *prometheus.CounterVec
	version     prometheus.Gauge
	snapBytes   prometheus.Gauge
	publishSecs prometheus.Histogram
	ckptSecs    prometheus.Histogram
	ckptBytes   prometheus.Gauge
	watermark   prometheus.Gauge
	buffered    *prometheus.GaugeVec

	// Resolved children, so the per-event path does no label lookups.
	impApplied, impDup, impIgnored                   prometheus.Counter
	fbApplied, fbDup, fbUnattributed, fbIgnored      prometheus.Counter
	updLow, updHigh                                  prometheus.Counter
	bufSlates, bufWaiting, bufDecisions, bufDedupIDs prometheus.Gauge

	synced Counters // counters already added to the series
}

func newMetrics(variant string, reg prometheus.Registerer, log *slog.Logger) *metrics {
	labels := prometheus.Labels{"variant": variant}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_trainer_events_total", ConstLabels: labels,
			Help: "Events the trainer handled, by topic and outcome (applied, duplicate, unattributed, ignored); feedback waiting for its impression is counted when resolved.",
		}, []string{"topic", "outcome"}),
		reward: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_trainer_reward", ConstLabels: labels,
			Help:    "Reward r_t of each high-level decision learned from (clicks·(1 + w_nov·surprise) + w_div·diversity).",
			Buckets: []float64{0, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16},
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_trainer_updates_total", ConstLabels: labels,
			Help: "Learner updates, by level: low (ranker, one per attributed click) and high (intent, one per closed decision).",
		}, []string{"level"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_trainer_model_version", ConstLabels: labels,
			Help: "Number N of the last published model snapshot VARIANT-N.",
		}),
		snapBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_trainer_snapshot_bytes", ConstLabels: labels,
			Help: "Size of the last published model snapshot.",
		}),
		publishSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_trainer_publish_seconds", ConstLabels: labels,
			Help:    "Time to encode a model snapshot and store and announce it in Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10),
		}),
		ckptSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_trainer_checkpoint_seconds", ConstLabels: labels,
			Help:    "Time to encode the trainer state and write it to Redis (before each offset commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10),
		}),
		ckptBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_trainer_checkpoint_bytes", ConstLabels: labels,
			Help: "Size of the last commit of the trainer state (head plus changed records).",
		}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_trainer_watermark_seconds", ConstLabels: labels,
			Help: "Event-time watermark: the largest event time seen (Unix seconds).",
		}),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "novarec_trainer_buffered", ConstLabels: labels,
			Help: "What the trainer holds in memory, by kind: slates (impressions kept for attribution), waiting_feedback, decisions (open or closing), dedup_ids.",
		}, []string{"kind"}),
	}
	m.events = register(reg, log, m.events)
	m.reward = register(reg, log, m.reward)
	m.updates = register(reg, log, m.updates)
	m.version = register(reg, log, m.version)
	m.snapBytes = register(reg, log, m.snapBytes)
	m.publishSecs = register(reg, log, m.publishSecs)
	m.ckptSecs = register(reg, log, m.ckptSecs)
	m.ckptBytes = register(reg, log, m.ckptBytes)
	m.watermark = register(reg, log, m.watermark)
	m.buffered = register(reg, log, m.buffered)

	const imp, fb = "rec.impressions", "rec.feedback"
	m.impApplied = m.events.WithLabelValues(imp, "applied")
	m.impDup = m.events.WithLabelValues(imp, "duplicate")
	m.impIgnored = m.events.WithLabelValues(imp, "ignored")
	m.fbApplied = m.events.WithLabelValues(fb, "applied")
	m.fbDup = m.events.WithLabelValues(fb, "duplicate")
	m.fbUnattributed = m.events.WithLabelValues(fb, "unattributed")
	m.fbIgnored = m.events.WithLabelValues(fb, "ignored")
	m.updLow = m.updates.WithLabelValues("low")
	m.updHigh = m.updates.WithLabelValues("high")
	m.bufSlates = m.buffered.WithLabelValues("slates")
	m.bufWaiting = m.buffered.WithLabelValues("waiting_feedback")
	m.bufDecisions = m.buffered.WithLabelValues("decisions")
	m.bufDedupIDs = m.buffered.WithLabelValues("dedup_ids")
	return m
}

// register registers c with reg (when reg is not nil) and returns the
// collector to use: c, or the identical one already registered (a second
// trainer of the same variant in one process then shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		log.Warn("trainer: metric not registered", "err", err)
	}
	return c
}

// sync adds the counters' growth since the last call to the series. The
// counters start from a checkpoint's values after a restart; only growth
// is added, so the series count what this process did.
func (m *metrics) sync(c *Core) {
	m.syncCounters(c.counters)
	m.drainRewards(c)
}

// syncCounters adds the growth of the counters now since the last call to
// the series.
func (m *metrics) syncCounters(now Counters) {
	d := func(a, b int64) float64 { return float64(a - b) }
	s := &m.synced
	if now != *s {
		add := func(ctr prometheus.Counter, v float64) {
			if v > 0 {
				ctr.Add(v)
			}
		}
		add(m.impApplied, d(now.Impressions, s.Impressions))
		add(m.impDup, d(now.ImpressionDuplicates, s.ImpressionDuplicates))
		add(m.impIgnored, d(now.ImpressionsIgnored, s.ImpressionsIgnored))
		add(m.fbApplied, d(now.Clicks, s.Clicks))
		add(m.fbDup, d(now.FeedbackDuplicates, s.FeedbackDuplicates))
		add(m.fbUnattributed, d(now.FeedbackUnattributed, s.FeedbackUnattributed))
		add(m.fbIgnored, d(now.FeedbackIgnored, s.FeedbackIgnored))
		add(m.updLow, d(now.Clicks, s.Clicks))
		add(m.updHigh, d(now.Decisions, s.Decisions))
		*s = now
	}
}

// drainRewards observes the rewards of the decisions c closed.
func (m *metrics) drainRewards(c *Core) {
	for _, r := range c.DrainRewards() {
		m.reward.Observe(r)
	}
}

// syncGauges refreshes the state gauges (cheap, but done per commit point
// rather than per event).
func (m *metrics) syncGauges(c *Core) {
	slates, waiting, decisions, ids := c.Buffered()
	m.bufSlates.Set(float64(slates))
	m.bufWaiting.Set(float64(waiting))
	m.bufDecisions.Set(float64(decisions))
	m.bufDedupIDs.Set(float64(ids))
	m.watermark.Set(float64(c.Watermark()) / 1000)
}

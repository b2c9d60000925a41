package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/recommend"
)

// ModelCache serves the current model of one variant and hot-swaps a new
// snapshot atomically when the trainer publishes one, without a restart and
// without a failed request: readers load a pointer, the swap stores one. A
// snapshot that does not decode or validate is rejected and the previous
// model keeps serving.
type ModelCache struct {
	store   *Store
	variant string
	log     *slog.Logger
	cur     atomic.Pointer[servedModel]
	// Poll is how often Run re-reads the snapshot without a notification.
	Poll time.Duration
	now  func() time.Time

	swaps     prometheus.Counter
	rejected  *prometheus.CounterVec
	freshness prometheus.Histogram
	info      *prometheus.GaugeVec
}

// servedModel pairs a model with the feedback times it first includes, which
// are observed as freshness on the first request that uses it.
type servedModel struct {
	m          *recommend.Model
	feedbackTS []int64
	used       atomic.Bool
}

// NewModelCache starts serving fallback (the prior model) until a snapshot
// is loaded by Refresh or Run.
func NewModelCache(store *Store, variant string, fallback *recommend.Model, log *slog.Logger, reg prometheus.Registerer) *ModelCache {
	if log == nil {
		log = slog.Default()
	}
	c := &ModelCache{
		store: store, variant: variant, log: log, Poll: 30 * time.Second, now: time.Now,
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_model_swaps_total", Help: "Model snapshots swapped in.", ConstLabels: prometheus.Labels{"variant": variant},
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_model_rejected_total", Help: "Model snapshots rejected (the previous model kept serving), by reason.",
			ConstLabels: prometheus.Labels{"variant": variant},
		}, []string{"reason"}),
		freshness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_model_freshness_seconds", Help: "Seconds from a feedback event to the first response served by a model that includes it.",
			ConstLabels: prometheus.Labels{"variant": variant}, Buckets: []float64{.25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300},
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "novarec_model_info", Help: "1 for the model version being served.", ConstLabels: prometheus.Labels{"variant": variant},
		}, []string{"version"}),
	}
	if reg != nil {
		reg.MustRegister(c.swaps, c.rejected, c.freshness, c.info)
	}
	c.cur.Store(&servedModel{m: fallback})
	c.info.WithLabelValues(fallback.Version).Set(1)
	return c
}

// Current returns the model to serve. The first call after a swap records
// the freshness of the feedback the new model includes.
func (c *ModelCache) Current() *recommend.Model {
	s := c.cur.Load()
	if !s.used.Load() && s.used.CompareAndSwap(false, true) {
		now := c.now().UnixMilli()
		for _, ts := range s.feedbackTS {
			c.freshness.Observe(float64(max(now-ts, 0)) / 1000)
		}
	}
	return s.m
}

// Refresh loads the variant's snapshot and swaps it in if its version is new.
func (c *ModelCache) Refresh(ctx context.Context) error {
	b, err := c.store.GetModel(ctx, c.variant)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing published yet: keep serving what we have
	}
	if err != nil {
		return fmt.Errorf("load model %s: %w", c.variant, err)
	}
	m, meta, err := recommend.DecodeModel(b)
	if err != nil {
		reason := "corrupt"
		if errors.Is(err, recommend.ErrSnapshotSchema) {
			reason = "schema"
		}
		c.rejected.WithLabelValues(reason).Inc()
		c.log.Error("model snapshot rejected; the previous model keeps serving", "variant", c.variant, "bytes", len(b), "err", err)
		return fmt.Errorf("model %s: %w", c.variant, err)
	}
	old := c.cur.Load()
	if old.m.Version == m.Version {
		return nil
	}
	c.cur.Store(&servedModel{m: m, feedbackTS: meta.FeedbackTS})
	c.swaps.Inc()
	c.info.Reset()
	c.info.WithLabelValues(m.Version).Set(1)
	c.log.Info("model swapped in", "variant", c.variant, "version", m.Version, "previous", old.m.Version,
		"bytes", len(b), "age", c.now().Sub(time.UnixMilli(meta.CreatedMS)).Round(time.Millisecond).String())
	return nil
}

// Run follows published snapshots until ctx ends; the caller owns the goroutine.
func (c *ModelCache) Run(ctx context.Context) {
	updates, err := c.store.Subscribe(ctx, ModelUpdates)
	if err != nil {
		c.log.Warn("model updates subscription failed; polling only", "err", err)
	}
	poll := time.NewTicker(c.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			if v != c.variant && v != Resync {
				continue
			}
		case <-poll.C:
		}
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("model refresh failed", "variant", c.variant, "err", err)
		}
	}
}

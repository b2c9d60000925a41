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
	now     func() time.Time

	m *modelMetrics
}

// modelMetrics are shared by the caches of all variants, labelled by variant.
type modelMetrics struct {
	swaps     *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	freshness *prometheus.HistogramVec
	info      *prometheus.GaugeVec
}

func newModelMetrics() *modelMetrics {
	return &modelMetrics{
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_model_swaps_total", Help: "Model snapshots swapped in, by variant.",
		}, []string{"variant"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_model_rejected_total", Help: "Model snapshots rejected (the previous model kept serving), by variant and reason.",
		}, []string{"variant", "reason"}),
		freshness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "novarec_model_freshness_seconds", Help: "Seconds from a feedback event to the first response served by a model that includes it.",
			Buckets: []float64{.25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"variant"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "novarec_model_info", Help: "1 for the model version being served, by variant.",
		}, []string{"variant", "version"}),
	}
}

// register adds the metrics to reg, reusing ones already registered there
// (several caches, or a ModelSet and a cache, share one registry).
func (m *modelMetrics) register(reg prometheus.Registerer) *modelMetrics {
	if reg == nil {
		return m
	}
	out := *m
	reuse := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
		}
		return c
	}
	out.swaps = reuse(m.swaps).(*prometheus.CounterVec)
	out.rejected = reuse(m.rejected).(*prometheus.CounterVec)
	out.freshness = reuse(m.freshness).(*prometheus.HistogramVec)
	out.info = reuse(m.info).(*prometheus.GaugeVec)
	return &out
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
	c := &ModelCache{store: store, variant: variant, log: log, now: time.Now}
	c.shareMetrics(reg)
	c.cur.Store(&servedModel{m: fallback})
	c.m.info.WithLabelValues(variant, fallback.Version).Set(1)
	return c
}

func (c *ModelCache) shareMetrics(reg prometheus.Registerer) {
	c.m = newModelMetrics().register(reg)
}

// Current returns the model to serve. The first call after a swap records
// the freshness of the feedback the new model includes.
func (c *ModelCache) Current() *recommend.Model {
	s := c.cur.Load()
	if !s.used.Load() && s.used.CompareAndSwap(false, true) {
		now := c.now().UnixMilli()
		for _, ts := range s.feedbackTS {
			c.m.freshness.WithLabelValues(c.variant).Observe(float64(max(now-ts, 0)) / 1000)
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
		c.m.rejected.WithLabelValues(c.variant, reason).Inc()
		c.log.Error("model snapshot rejected; the previous model keeps serving", "variant", c.variant, "bytes", len(b), "err", err)
		return fmt.Errorf("model %s: %w", c.variant, err)
	}
	old := c.cur.Load()
	if old.m.Version == m.Version {
		return nil
	}
	c.cur.Store(&servedModel{m: m, feedbackTS: meta.FeedbackTS})
	c.m.swaps.WithLabelValues(c.variant).Inc()
	c.m.info.DeleteLabelValues(c.variant, old.m.Version)
	c.m.info.WithLabelValues(c.variant, m.Version).Set(1)
	c.log.Debug("model swapped in", "variant", c.variant, "version", m.Version, "previous", old.m.Version,
		"bytes", len(b), "age", c.now().Sub(time.UnixMilli(meta.CreatedMS)).Round(time.Millisecond).String())
	return nil
}

// ModelSet serves one ModelCache per A/B variant. The set of variants can
// change at run time (an experiments file reload); each cache is created on
// first use, starting from the prior model until its variant's snapshot is
// loaded.
type ModelSet struct {
	store    *Store
	fallback *recommend.Model
	log      *slog.Logger
	reg      prometheus.Registerer
	caches   atomic.Pointer[map[string]*ModelCache]
	mu       chan struct{} // serialises additions; readers never wait
}

// NewModelSet serves fallback for every variant until its snapshot loads.
func NewModelSet(store *Store, fallback *recommend.Model, log *slog.Logger, reg prometheus.Registerer) *ModelSet {
	if log == nil {
		log = slog.Default()
	}
	s := &ModelSet{store: store, fallback: fallback, log: log, reg: reg, mu: make(chan struct{}, 1)}
	s.caches.Store(&map[string]*ModelCache{})
	return s
}

// Current returns the model serving variant.
func (s *ModelSet) Current(variant string) *recommend.Model {
	if c, ok := (*s.caches.Load())[variant]; ok {
		return c.Current()
	}
	return s.Ensure(context.Background(), variant).Current()
}

// Ensure returns variant's cache, creating and loading it if needed.
func (s *ModelSet) Ensure(ctx context.Context, variant string) *ModelCache {
	if c, ok := (*s.caches.Load())[variant]; ok {
		return c
	}
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	old := *s.caches.Load()
	if c, ok := old[variant]; ok {
		return c
	}
	c := NewModelCache(s.store, variant, s.fallback, s.log, s.reg)
	next := make(map[string]*ModelCache, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[variant] = c
	s.caches.Store(&next)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Refresh(rctx); err != nil {
		s.log.Warn("initial model load failed; serving the prior model", "variant", variant, "err", err)
	}
	return c
}

// Run follows published snapshots of every variant until ctx ends; the
// caller owns the goroutine.
func (s *ModelSet) Run(ctx context.Context) {
	s.store.follow(ctx, ModelUpdates, 30*time.Second, s.log, func(variant string, _ <-chan string) {
		for name, c := range *s.caches.Load() {
			if variant != Resync && name != variant {
				continue
			}
			if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("model refresh failed", "variant", name, "err", err)
			}
		}
	})
}

package features

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
)

// CatalogCache keeps an immutable in-memory catalog snapshot for scoring and
// replaces it atomically when the catalog or the collaborative model in
// Redis changes: the catalog's items with the latest collab.Model folded in
// (catalog.Snapshot.WithLearned), so every process — recsvc replicas, the
// feature updater, the trainer — measures novelty against the same topics.
// Readers call Current on every request and never wait for a rebuild.
type CatalogCache struct {
	store *Store
	dim   int
	log   *slog.Logger
	cur   atomic.Pointer[catalog.Snapshot]
	// mu serialises rebuilds so a burst of notifications builds once, and
	// guards base, folded and refused.
	mu sync.Mutex
	// base is the catalog without a learned model; folded the version of
	// the model folded into cur (0: none) and refused the last version
	// rejected, not fetched again. The model itself is not kept: the
	// snapshot holds what serving needs, and a new catalog re-reads the
	// model from Redis, which halves the memory a large model costs.
	base            *catalog.Snapshot
	folded, refused uint64

	// Debounce is how long Run waits after a notification for more before
	// rebuilding, so a bulk import of many batches rebuilds a few times,
	// not once per batch.
	Debounce time.Duration
	// Poll is how often Run re-checks the version without a notification,
	// a safety net for lost pub/sub messages.
	Poll time.Duration

	items, version, learnedVersion prometheus.Gauge
	rejected                       prometheus.Counter
	builds                         prometheus.Histogram
}

// NewCatalogCache returns an empty cache; call Refresh to load and Run to follow changes.
func NewCatalogCache(store *Store, dim int, log *slog.Logger, reg prometheus.Registerer) *CatalogCache {
	if log == nil {
		log = slog.Default()
	}
	c := &CatalogCache{
		store: store, dim: dim, log: log, Debounce: 100 * time.Millisecond, Poll: 30 * time.Second,
		items: prometheus.NewGauge(prometheus.GaugeOpts{Name: "novarec_catalog_items", Help: "Items in the serving catalog snapshot."}),
		learnedVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_collab_model_version", Help: "Version of the collaborative model folded into the serving catalog (0: none).",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_collab_model_rejected_total", Help: "Collaborative models that did not decode or fit the catalog (the previous one kept serving).",
		}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "novarec_catalog_version", Help: "Catalog version of the serving snapshot."}),
		builds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_catalog_build_seconds", Help: "Time to load and index a catalog snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	if reg != nil {
		reg.MustRegister(c.items, c.version, c.builds, c.learnedVersion, c.rejected)
	}
	return c
}

// Current returns the serving snapshot, nil while the catalog is empty.
func (c *CatalogCache) Current() *catalog.Snapshot { return c.cur.Load() }

// Refresh loads the catalog and the collaborative model from Redis and
// swaps in a new snapshot if either differs from the serving one. A model
// that does not decode or fit the catalog is rejected, logged and counted,
// and the catalog keeps serving with the previous model.
func (c *CatalogCache) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := c.store.CatalogVersion(ctx)
	if err != nil {
		return fmt.Errorf("catalog version: %w", err)
	}
	lv, err := c.store.CollabVersion(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	base, newBase := c.base, false
	if base == nil || base.Version != v {
		v, items, err := c.store.LoadItems(ctx)
		if err != nil {
			return fmt.Errorf("load catalog: %w", err)
		}
		if len(items) == 0 {
			return nil
		}
		if base, err = catalog.Build(v, c.dim, items); err != nil {
			return fmt.Errorf("build catalog snapshot: %w", err)
		}
		newBase = true
	}
	snap, folded := base, uint64(0)
	if lv != 0 && (newBase || (lv != c.folded && lv != c.refused)) {
		s, err := c.fold(ctx, base, lv)
		switch {
		case err == nil:
			snap, folded = s, s.LearnedVersion()
		case !newBase:
			c.log.Warn("collaborative model rejected; keeping the previous one", "version", lv, "err", err)
			return nil
		default:
			c.log.Warn("collaborative model rejected; serving the new catalog without one", "version", lv, "err", err)
		}
	} else if !newBase {
		return nil
	}
	snap.Prepare() // the index is built here, not on a request
	c.base, c.folded = base, folded
	c.cur.Store(snap)
	took := time.Since(start)
	c.builds.Observe(took.Seconds())
	c.items.Set(float64(snap.Len()))
	c.version.Set(float64(snap.Version))
	c.learnedVersion.Set(float64(snap.LearnedVersion()))
	c.log.Info("catalog snapshot swapped in", "version", snap.Version, "items", snap.Len(), "collab_version", snap.LearnedVersion(),
		"topics", snap.NumTopics(), "indexed", snap.Indexed(), "took", took.Round(time.Millisecond).String())
	return nil
}

// fold reads the stored collaborative model (version lv, as last read)
// and folds it into base. A model that does not decode or fit is counted
// and its version refused until another is published; a failed read is
// neither.
func (c *CatalogCache) fold(ctx context.Context, base *catalog.Snapshot, lv uint64) (*catalog.Snapshot, error) {
	b, err := c.store.GetCollab(ctx)
	if err != nil {
		return nil, err
	}
	m, err := collab.Decode(b)
	if err == nil {
		var s *catalog.Snapshot
		if s, err = base.WithLearned(&m.Learned); err == nil {
			return s, nil
		}
		err = fmt.Errorf("does not fit the catalog: %w", err)
	}
	c.refused = lv
	c.rejected.Inc()
	return nil, err
}

// Run follows catalog and collaborative-model changes until ctx ends; the
// caller owns the goroutine. Run starts one more goroutine to follow the
// second channel and waits for it before returning.
func (c *CatalogCache) Run(ctx context.Context) {
	handle := func(_ string, updates <-chan string) {
		if updates != nil {
			c.drain(ctx, updates)
		}
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catalog refresh failed; serving the previous snapshot", "err", err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.store.follow(ctx, CollabUpdates, c.Poll, c.log, handle) })
	c.store.follow(ctx, CatalogUpdates, c.Poll, c.log, handle)
	wg.Wait()
}

// follow calls handle for every notification on ch, with its message and
// the channel (so handle can swallow a burst), and every poll interval
// without one, with updates nil, until ctx ends. Polling is the safety net
// for lost messages and keeps working when the subscription fails.
func (s *Store) follow(ctx context.Context, ch Channel, poll time.Duration, log *slog.Logger, handle func(msg string, updates <-chan string)) {
	updates, err := s.Subscribe(ctx, ch)
	if err != nil {
		log.Warn("subscription failed; polling only", "channel", string(ch), "err", err)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-updates:
			if !ok {
				updates = nil // ctx is ending; the next select sees it
				continue
			}
			handle(msg, updates)
		case <-t.C:
			handle(Resync, nil)
		}
	}
}

// drain waits Debounce and swallows notifications that arrived meanwhile.
func (c *CatalogCache) drain(ctx context.Context, updates <-chan string) {
	t := time.NewTimer(c.Debounce)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case _, ok := <-updates:
			if !ok {
				return
			}
		}
	}
}

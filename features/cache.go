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
)

// CatalogCache keeps an immutable in-memory catalog snapshot for scoring and
// replaces it atomically when the catalog in Redis changes. Readers call
// Current on every request and never wait for a rebuild.
type CatalogCache struct {
	store *Store
	dim   int
	log   *slog.Logger
	cur   atomic.Pointer[catalog.Snapshot]
	// mu serialises rebuilds so a burst of notifications builds once.
	mu sync.Mutex

	// Debounce is how long Run waits after a notification for more before
	// rebuilding, so a bulk import of many batches rebuilds a few times,
	// not once per batch.
	Debounce time.Duration
	// Poll is how often Run re-checks the version without a notification,
	// a safety net for lost pub/sub messages.
	Poll time.Duration

	items, version prometheus.Gauge
	builds         prometheus.Histogram
}

// NewCatalogCache returns an empty cache; call Refresh to load and Run to follow changes.
func NewCatalogCache(store *Store, dim int, log *slog.Logger, reg prometheus.Registerer) *CatalogCache {
	if log == nil {
		log = slog.Default()
	}
	c := &CatalogCache{
		store: store, dim: dim, log: log, Debounce: 100 * time.Millisecond, Poll: 30 * time.Second,
		items:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "novarec_catalog_items", Help: "Items in the serving catalog snapshot."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "novarec_catalog_version", Help: "Catalog version of the serving snapshot."}),
		builds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_catalog_build_seconds", Help: "Time to load and index a catalog snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	if reg != nil {
		reg.MustRegister(c.items, c.version, c.builds)
	}
	return c
}

// Current returns the serving snapshot, nil while the catalog is empty.
func (c *CatalogCache) Current() *catalog.Snapshot { return c.cur.Load() }

// Refresh loads the catalog from Redis and swaps in a new snapshot if its
// version differs from the serving one.
func (c *CatalogCache) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := c.store.CatalogVersion(ctx)
	if err != nil {
		return fmt.Errorf("catalog version: %w", err)
	}
	if cur := c.cur.Load(); cur != nil && cur.Version == v {
		return nil
	}
	start := time.Now()
	v, items, err := c.store.LoadItems(ctx)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	if len(items) == 0 {
		return nil
	}
	snap, err := catalog.Build(v, c.dim, items)
	if err != nil {
		return fmt.Errorf("build catalog snapshot: %w", err)
	}
	c.cur.Store(snap)
	took := time.Since(start)
	c.builds.Observe(took.Seconds())
	c.items.Set(float64(snap.Len()))
	c.version.Set(float64(v))
	c.log.Info("catalog snapshot swapped in", "version", v, "items", snap.Len(), "indexed", snap.Indexed(), "took", took.Round(time.Millisecond).String())
	return nil
}

// Run follows catalog changes until ctx ends; the caller owns the goroutine.
func (c *CatalogCache) Run(ctx context.Context) {
	c.store.follow(ctx, CatalogUpdates, c.Poll, c.log, func(_ string, updates <-chan string) {
		if updates != nil {
			c.drain(ctx, updates)
		}
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catalog refresh failed; serving the previous snapshot", "err", err)
		}
	})
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

package features

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

// ItemLog is where the catalog survives Redis (events.CatalogLog, a
// compacted Kafka topic): every upsert is appended to it before Redis is
// written, and Items returns the latest version of every item.
type ItemLog interface {
	Append(ctx context.Context, items []catalog.Item) error
	Items(ctx context.Context) (items []catalog.Item, skipped int, err error)
}

// CatalogKeeper makes Redis a cache of the catalog that may be lost. Its
// PutItems writes the item log first and Redis second, so an item is
// acknowledged only once it is in the log; Check notices a Redis that has
// lost the catalog (restarted empty, flushed, failed over to an empty
// replica) by the missing catalog:version key and re-seeds it from the log;
// Run checks every Interval. Several replicas may run it: a short-lived
// Redis lock lets one re-seed while the others wait for its notification.
type CatalogKeeper struct {
	store *Store
	log   ItemLog
	// serving returns the version of the catalog this process serves (0 =
	// none), so that a re-seeded catalog's version keeps rising and every
	// replica swaps the restored catalog in.
	serving func() uint64
	logger  *slog.Logger
	// Interval is how often Run checks that Redis still holds the catalog
	// (default 2s; one EXISTS per check).
	Interval time.Duration

	reseeds, restored prometheus.Counter
}

// NewCatalogKeeper returns a keeper of store's catalog backed by log;
// serving may be nil. reg, when set, receives novarec_catalog_reseeds_total
// and novarec_catalog_reseeded_items_total.
func NewCatalogKeeper(store *Store, log ItemLog, serving func() uint64, logger *slog.Logger, reg prometheus.Registerer) *CatalogKeeper {
	if logger == nil {
		logger = slog.Default()
	}
	if serving == nil {
		serving = func() uint64 { return 0 }
	}
	k := &CatalogKeeper{store: store, log: log, serving: serving, logger: logger.With("component", "features.catalog_keeper"), Interval: 2 * time.Second,
		reseeds: prometheus.NewCounter(prometheus.CounterOpts{Name: "novarec_catalog_reseeds_total",
			Help: "Times this process re-seeded a Redis that had lost the catalog from the catalog log."}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{Name: "novarec_catalog_reseeded_items_total",
			Help: "Items written back to Redis by re-seeds."}),
	}
	if reg != nil {
		reg.MustRegister(k.reseeds, k.restored)
	}
	return k
}

// PutItems validates items, appends them to the log and then upserts them
// in Redis (Store.PutItems). An error from the log means nothing was
// written to Redis; an error from Redis leaves the items in the log, from
// which a retry or a re-seed completes them.
func (k *CatalogKeeper) PutItems(ctx context.Context, items []catalog.Item) (uint64, error) {
	if len(items) == 0 {
		return k.store.CatalogVersion(ctx)
	}
	if err := validateItems(items); err != nil {
		return 0, err
	}
	if err := k.log.Append(ctx, items); err != nil {
		return 0, err
	}
	return k.store.PutItems(ctx, items)
}

// Sync is the keeper's start-up step: it re-seeds Redis from the log when
// Redis holds no catalog (Check), and copies a catalog that Redis holds but
// the log does not (a deployment from before the log) into the log.
func (k *CatalogKeeper) Sync(ctx context.Context) error {
	n, err := k.Check(ctx)
	if err != nil || n > 0 {
		return err
	}
	logged, _, err := k.log.Items(ctx)
	if err != nil || len(logged) > 0 {
		return err
	}
	_, items, err := k.store.LoadItems(ctx)
	if err != nil || len(items) == 0 {
		return err
	}
	if err := k.log.Append(ctx, items); err != nil {
		return fmt.Errorf("features: copy the catalog into its log: %w", err)
	}
	k.logger.Info("copied the catalog from Redis into the catalog log", "items", len(items))
	return nil
}

// Check re-seeds Redis from the log if Redis has no catalog version, and
// reports how many items it wrote back (0 when Redis had the catalog, the
// log is empty, or another replica holds the re-seed lock).
func (k *CatalogKeeper) Check(ctx context.Context) (int, error) {
	ok, err := k.store.rdb.Exists(ctx, k.store.versionKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("features: check the catalog: %w", err)
	}
	if ok == 1 {
		return 0, nil
	}
	items, skipped, err := k.log.Items(ctx)
	if err != nil {
		return 0, fmt.Errorf("features: read the catalog log: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	release, locked, err := k.store.lock(ctx, k.store.prefix+"catalog:reseeding", 2*time.Minute)
	if err != nil || !locked {
		return 0, err
	}
	defer release()
	start := time.Now()
	v, written, err := k.store.restoreItems(ctx, items, k.serving())
	if err != nil {
		return 0, fmt.Errorf("features: re-seed the catalog: %w", err)
	}
	k.reseeds.Inc()
	k.restored.Add(float64(written))
	k.logger.Warn("Redis had lost the catalog; re-seeded it from the catalog log",
		"items", len(items), "written", written, "skipped_invalid", skipped, "version", v, "took", time.Since(start).Round(time.Millisecond).String())
	return written, nil
}

// Run checks every Interval until ctx ends; the caller owns the goroutine.
func (k *CatalogKeeper) Run(ctx context.Context) {
	t := time.NewTicker(k.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := k.Check(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			// Redis down is reported by the serving path; say it once.
			k.logger.Info("catalog check failed; retrying", "err", err)
			failing = true
		case err == nil:
			failing = false
		}
	}
}

// restoreScript writes an item hash only if it does not exist, so a
// re-seed never overwrites a newer version written meanwhile by PutItems.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`)

// restoreItems writes the items that Redis lacks, then sets the catalog
// version to above minVersion (if nothing set it meanwhile) and announces
// it like PutItems. It returns the new version and the items written.
func (s *Store) restoreItems(ctx context.Context, items []catalog.Item, minVersion uint64) (uint64, int, error) {
	written := 0
	for start := 0; start < len(items); start += putBatch {
		batch := items[start:min(start+putBatch, len(items))]
		cmds := make([]*redis.Cmd, len(batch))
		ids := make([]any, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range batch {
				ids[i] = batch[i].ID
				cmds[i] = restoreScript.Eval(ctx, p, []string{s.itemKey(batch[i].ID)}, itemFields(&batch[i])...)
			}
			p.SAdd(ctx, s.itemsKey(), ids...)
			return nil
		})
		if err != nil {
			return 0, written, err
		}
		for _, c := range cmds {
			if n, _ := c.Int(); n == 1 {
				written++
			}
		}
	}
	if err := s.rdb.SetNX(ctx, s.versionKey(), strconv.FormatUint(minVersion, 10), 0).Err(); err != nil {
		return 0, written, err
	}
	v, err := s.rdb.Incr(ctx, s.versionKey()).Uint64()
	if err != nil {
		return 0, written, err
	}
	if err := s.rdb.Publish(ctx, s.ChannelName(CatalogUpdates), strconv.FormatUint(v, 10)).Err(); err != nil {
		return v, written, err
	}
	return v, written, nil
}

// releaseScript deletes a lock only if it still holds the owner's token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// lock takes a Redis lock on key for at most ttl; release gives it back if
// it is still ours.
func (s *Store) lock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	ok, err = s.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return func() {}, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := releaseScript.Run(ctx, s.rdb, []string{key}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
			slog.Default().Debug("features: release lock", "key", key, "err", err)
		}
	}, true, nil
}

// AppliedEvent is a feedback event a rebuilt user state includes.
type AppliedEvent struct {
	ID string
	TS int64
}

// SaveRebuilt replaces the stored state of st.UserID with st like Save, and
// the user's de-duplication set with the newest DedupMax of applied, in one
// transaction: a feature updater that resumes from its committed offsets
// then skips the events the rebuild already applied (trainer rebuild).
func (s *Store) SaveRebuilt(ctx context.Context, st recommend.UserState, applied []AppliedEvent) error {
	if st.UserID == "" {
		return errNoUser
	}
	applied = applied[max(0, len(applied)-DedupMax):]
	evKey := s.userKey(st.UserID, "ev")
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.queueSave(ctx, p, st)
		p.Del(ctx, evKey)
		if len(applied) > 0 {
			zs := make([]redis.Z, len(applied))
			for i, e := range applied {
				zs[i] = redis.Z{Score: float64(e.TS), Member: e.ID}
			}
			p.ZAdd(ctx, evKey, zs...)
			p.PExpire(ctx, evKey, DedupTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("features: save rebuilt user state: %w", err)
	}
	return nil
}

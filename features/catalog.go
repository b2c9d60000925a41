package features

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
)

// Batch sizes of catalog writes and reads: large enough to amortise round
// trips, small enough that one pipeline does not hold Redis (or a reply
// buffer) for long.
const (
	putBatch  = 500
	loadBatch = 1000
)

// catSep joins an item's categories in its hash; catalog.Item.Validate does
// not forbid it, so PutItems does.
const catSep = "\x1f"

// Item hash fields.
const (
	fCats = "cats"
	fEmb  = "emb"
	fPop  = "pop"
)

// PutItems upserts items, then increments the catalog version and publishes
// it on the catalog-updates channel so every recsvc replica rebuilds its
// snapshot. Items are validated first (catalog.Item.Validate against their
// own embedding length) and nothing is written if any is invalid; the
// returned error then wraps a *catalog.FieldError. Writes go out in
// pipelined batches and are not atomic as a whole: a reader may see part of
// a large upsert before the version changes, which a snapshot rebuild on the
// notification corrects. With no items it only reports the current version.
func (s *Store) PutItems(ctx context.Context, items []catalog.Item) (version uint64, err error) {
	if err := validateItems(items); err != nil {
		return 0, err
	}
	if len(items) == 0 {
		return s.CatalogVersion(ctx)
	}
	for start := 0; start < len(items); start += putBatch {
		batch := items[start:min(start+putBatch, len(items))]
		ids := make([]any, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range batch {
				it := &batch[i]
				ids[i] = it.ID
				key := s.itemKey(it.ID)
				if len(it.Embedding) == 0 {
					p.HDel(ctx, key, fEmb)
				}
				p.HSet(ctx, key, itemFields(it)...)
			}
			p.SAdd(ctx, s.itemsKey(), ids...)
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("features: put items: %w", err)
		}
	}
	v, err := s.rdb.Incr(ctx, s.versionKey()).Uint64()
	if err != nil {
		return 0, fmt.Errorf("features: put items: bump version: %w", err)
	}
	if err := s.rdb.Publish(ctx, s.ChannelName(CatalogUpdates), strconv.FormatUint(v, 10)).Err(); err != nil {
		return v, fmt.Errorf("features: put items: publish version %d: %w", v, err)
	}
	return v, nil
}

// validateItems checks items as PutItems stores them: each valid
// (catalog.Item.Validate against its own embedding length) and no category
// holding catSep. The error wraps a *catalog.FieldError.
func validateItems(items []catalog.Item) error {
	for i := range items {
		it := &items[i]
		if err := it.Validate(len(it.Embedding)); err != nil {
			return fmt.Errorf("features: item %d (%q): %w", i, it.ID, err)
		}
		for _, c := range it.Categories {
			if strings.Contains(c, catSep) {
				return fmt.Errorf("features: item %d (%q): %w", i, it.ID,
					&catalog.FieldError{Field: "categories", Msg: "contains the unit separator \\x1f"})
			}
		}
	}
	return nil
}

// itemFields are the hash fields of an item.
func itemFields(it *catalog.Item) []any {
	fields := []any{
		fCats, strings.Join(it.Categories, catSep),
		fPop, strconv.FormatFloat(it.Popularity, 'g', -1, 64),
	}
	if len(it.Embedding) > 0 {
		fields = append(fields, fEmb, encodeEmbedding(it.Embedding))
	}
	return fields
}

// GetItem returns one catalog item; ok is false when it does not exist.
func (s *Store) GetItem(ctx context.Context, id string) (it catalog.Item, ok bool, err error) {
	h, err := s.rdb.HGetAll(ctx, s.itemKey(id)).Result()
	if err != nil {
		return it, false, fmt.Errorf("features: get item %q: %w", id, err)
	}
	if len(h) == 0 {
		return it, false, nil
	}
	it, err = decodeItem(id, h)
	if err != nil {
		return it, false, fmt.Errorf("features: get item %q: %w", id, err)
	}
	return it, true, nil
}

// LoadItems reads the whole catalog, sorted by id so that snapshots built
// from it are deterministic. The version is read first: if the catalog
// changes meanwhile, the items are at least as new as the version, and the
// pending notification of the newer version triggers another load. Items
// whose hash is missing (deleted meanwhile) or malformed are skipped, so one
// bad item cannot keep the service from starting.
func (s *Store) LoadItems(ctx context.Context) (version uint64, items []catalog.Item, err error) {
	version, err = s.CatalogVersion(ctx)
	if err != nil {
		return 0, nil, err
	}
	var ids []string
	iter := s.rdb.SScan(ctx, s.itemsKey(), 0, "", loadBatch).Iterator()
	for iter.Next(ctx) {
		ids = append(ids, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, nil, fmt.Errorf("features: load items: scan ids: %w", err)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids) // SSCAN may return an element more than once
	items = make([]catalog.Item, 0, len(ids))
	cmds := make([]*redis.MapStringStringCmd, 0, min(len(ids), loadBatch))
	for start := 0; start < len(ids); start += loadBatch {
		batch := ids[start:min(start+loadBatch, len(ids))]
		cmds = cmds[:0]
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range batch {
				cmds = append(cmds, p.HGetAll(ctx, s.itemKey(id)))
			}
			return nil
		})
		if err != nil {
			return 0, nil, fmt.Errorf("features: load items: %w", err)
		}
		for i, c := range cmds {
			h := c.Val()
			if len(h) == 0 {
				continue
			}
			if it, err := decodeItem(batch[i], h); err == nil {
				items = append(items, it)
			}
		}
	}
	return version, items, nil
}

// CatalogVersion returns the current catalog version, 0 before the first
// PutItems. Replicas compare it with their snapshot's to catch up on
// notifications they missed.
func (s *Store) CatalogVersion(ctx context.Context) (uint64, error) {
	v, err := s.rdb.Get(ctx, s.versionKey()).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("features: catalog version: %w", err)
	}
	return v, nil
}

// ItemCount returns the number of catalog items, for metrics and readiness.
func (s *Store) ItemCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.itemsKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("features: item count: %w", err)
	}
	return n, nil
}

// encodeEmbedding packs v as little-endian float32s, 4 bytes per dimension,
// the most compact form Redis can return without parsing.
func encodeEmbedding(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return string(b)
}

func decodeEmbedding(b string) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("embedding of %d bytes is not a whole number of float32s", len(b))
	}
	if len(b) == 0 {
		return nil, nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		j := 4 * i
		v[i] = math.Float32frombits(uint32(b[j]) | uint32(b[j+1])<<8 | uint32(b[j+2])<<16 | uint32(b[j+3])<<24)
	}
	return v, nil
}

func decodeItem(id string, h map[string]string) (catalog.Item, error) {
	it := catalog.Item{ID: id}
	if c := h[fCats]; c != "" {
		it.Categories = strings.Split(c, catSep)
	}
	if p, ok := h[fPop]; ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return it, fmt.Errorf("popularity %q: %w", p, err)
		}
		it.Popularity = f
	}
	if e, ok := h[fEmb]; ok {
		v, err := decodeEmbedding(e)
		if err != nil {
			return it, err
		}
		it.Embedding = v
	}
	return it, nil
}

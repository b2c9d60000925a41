package recommend

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/novarec/novarec/catalog"
)

// viewCache keeps the views of recent histories, so that a returning user's
// view (the history's ids resolved, its category counts, taste vector and
// seen topics: a fifth to a third of a decision over many users) is not
// rebuilt on every request. A history changes only with feedback, a few
// times per many requests.
//
// An entry is keyed by a hash of the history's item ids in order, which is
// all a view is derived from, so a changed history (an engagement, a
// replaced state) can never find the view of the old one; and it is valid
// for one catalog snapshot, by a generation that advances whenever the
// engine sees another snapshot than the last, so that the cache holds no
// old snapshot alive (one swap invalidates every entry once; an engine
// that alternated between two snapshots would rebuild every view, as it
// did without the cache). Entries are immutable once cached and shared by
// concurrent decisions.
//
// Each shard evicts by generations of its own: when its current map is
// full it becomes the old one and the oldest is dropped; a hit in the old
// map moves the entry back. So the cache holds between max and 2·max
// entries, the recently used ones.
type viewCache struct {
	seed   maphash.Seed
	snap   atomic.Pointer[snapGen]
	snapMu sync.Mutex
	shards [viewShards]viewShard
}

// viewShards spreads the cache's locks; a power of two.
const viewShards = 16

type snapGen struct {
	snap *catalog.Snapshot
	gen  uint64
}

type viewShard struct {
	mu       sync.Mutex
	cur, old map[uint64]viewEntry
	max      int
}

type viewEntry struct {
	v   *view
	gen uint64
	n   int // the history's length, checked with the hash
}

func newViewCache(entries int) *viewCache {
	c := &viewCache{seed: maphash.MakeSeed()}
	per := max(entries/(2*viewShards), 1)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].cur = map[uint64]viewEntry{} // sized when it first turns over
	}
	c.snap.Store(&snapGen{})
	return c
}

// generation is the generation of snap: the current one if snap is the
// snapshot seen last, else a new one.
func (c *viewCache) generation(snap *catalog.Snapshot) uint64 {
	if sg := c.snap.Load(); sg.snap == snap {
		return sg.gen
	}
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	sg := c.snap.Load()
	if sg.snap != snap {
		sg = &snapGen{snap: snap, gen: sg.gen + 1}
		c.snap.Store(sg)
	}
	return sg.gen
}

// key hashes the history's item ids in order: each id's own hash, mixed
// into the running one by a multiply and a rotation so that order counts.
// (A maphash.Hash written id by id copies every id into its buffer, which
// cost as much as the rest of the lookup.)
func (c *viewCache) key(history []Consumed) uint64 {
	h := uint64(len(history))
	for _, e := range history {
		h = bits.RotateLeft64((h^maphash.String(c.seed, e.ItemID))*0x9e3779b97f4a7c15, 29)
	}
	return h
}

func (c *viewCache) get(key, gen uint64, n int) *view {
	s := &c.shards[key%viewShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cur[key]
	if !ok {
		if e, ok = s.old[key]; ok && e.gen == gen && e.n == n {
			delete(s.old, key)
			s.add(key, e)
		}
	}
	if !ok || e.gen != gen || e.n != n {
		return nil
	}
	return e.v
}

func (c *viewCache) put(key, gen uint64, v *view, n int) {
	s := &c.shards[key%viewShards]
	s.mu.Lock()
	s.add(key, viewEntry{v: v, gen: gen, n: n})
	s.mu.Unlock()
}

func (s *viewShard) add(key uint64, e viewEntry) {
	if _, ok := s.cur[key]; !ok && len(s.cur) >= s.max {
		s.old, s.cur = s.cur, make(map[uint64]viewEntry, s.max)
	}
	s.cur[key] = e
}

// viewOf returns the view of history under snap: the scratch's, built
// now, without a cache (or for an empty history, whose view costs
// nothing); else the cached one, built and cached on a miss. The result
// is read only.
func (e *Engine) viewOf(sc *scratch, snap *catalog.Snapshot, history []Consumed) *view {
	if e.views == nil || len(history) == 0 {
		sc.view.build(snap, history, e.cfg.TasteDecay)
		return &sc.view
	}
	key, gen := e.views.key(history), e.views.generation(snap)
	if v := e.views.get(key, gen, len(history)); v != nil {
		return v
	}
	v := new(view)
	v.build(snap, history, e.cfg.TasteDecay)
	e.views.put(key, gen, v, len(history))
	return v
}

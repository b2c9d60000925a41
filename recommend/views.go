package recommend

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/novarec/novarec/catalog"
)

// viewCache keeps the views of recent histories, so that a returning user's
// view (the history's ids resolved, its category counts, taste vector, seen
// topics and the index clusters nearest the taste: a fifth to a third of a
// decision over many users) is not
// rebuilt on every request. A history changes only with feedback, a few
// times per many requests.
//
// An entry is keyed by a hash of the history's item ids in order, which is
// all a view is derived from, so a changed history (an engagement, a
// replaced state) can never find the view of the old one; and it is valid
// for one catalog snapshot (snapGens). Entries are immutable once cached
// and shared by concurrent decisions.
type viewCache struct {
	seed    maphash.Seed
	gens    *snapGens
	entries recentMap[viewEntry]
}

// snapGens numbers the snapshots an engine serves: the generation
// advances whenever the engine sees another snapshot than the last, and a
// cache entry is valid for its generation only, so that the caches hold
// no old snapshot alive (one swap invalidates every entry once; an engine
// that alternated between two snapshots would rebuild every entry, as it
// did without the caches).
type snapGens struct {
	snap atomic.Pointer[snapGen]
	mu   sync.Mutex
}

type snapGen struct {
	snap *catalog.Snapshot
	gen  uint64
}

func newSnapGens() *snapGens {
	g := new(snapGens)
	g.snap.Store(&snapGen{})
	return g
}

// generation is the generation of snap: the current one if snap is the
// snapshot seen last, else a new one.
func (g *snapGens) generation(snap *catalog.Snapshot) uint64 {
	if sg := g.snap.Load(); sg.snap == snap {
		return sg.gen
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	sg := g.snap.Load()
	if sg.snap != snap {
		sg = &snapGen{snap: snap, gen: sg.gen + 1}
		g.snap.Store(sg)
	}
	return sg.gen
}

// recentMap holds the recently used of up to 2·max entries, keyed by a
// hash. Each shard evicts by generations of its own: when its current map
// is full it becomes the old one and the oldest is dropped; a hit in the
// old map moves the entry back. So it holds between max and 2·max
// entries, the recently used ones.
type recentMap[V any] struct {
	shards [recentShards]recentShard[V]
}

// recentShards spreads the maps' locks; a power of two.
const recentShards = 16

type recentShard[V any] struct {
	mu       sync.Mutex
	cur, old map[uint64]V
	max      int
}

func (m *recentMap[V]) init(entries int) {
	per := max(entries/(2*recentShards), 1)
	for i := range m.shards {
		m.shards[i].max = per
		m.shards[i].cur = map[uint64]V{} // sized when it first turns over
	}
}

// get returns the entry of key; with take, it also removes it, so that
// the caller owns it until it puts it back.
func (m *recentMap[V]) get(key uint64, take bool) (V, bool) {
	s := &m.shards[key%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cur[key]
	switch {
	case ok && take:
		delete(s.cur, key)
	case !ok:
		if e, ok = s.old[key]; ok {
			delete(s.old, key)
			if !take {
				s.add(key, e)
			}
		}
	}
	return e, ok
}

func (m *recentMap[V]) put(key uint64, e V) {
	s := &m.shards[key%recentShards]
	s.mu.Lock()
	s.add(key, e)
	s.mu.Unlock()
}

func (s *recentShard[V]) add(key uint64, e V) {
	if _, ok := s.cur[key]; !ok && len(s.cur) >= s.max {
		s.old, s.cur = s.cur, make(map[uint64]V, s.max)
	}
	s.cur[key] = e
}

type viewEntry struct {
	v   *view
	gen uint64
	n   int // the history's length, checked with the hash
}

func newViewCache(entries int, gens *snapGens) *viewCache {
	c := &viewCache{seed: maphash.MakeSeed(), gens: gens}
	c.entries.init(entries)
	return c
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
	e, ok := c.entries.get(key, false)
	if !ok || e.gen != gen || e.n != n {
		return nil
	}
	return e.v
}

func (c *viewCache) put(key, gen uint64, v *view, n int) {
	c.entries.put(key, viewEntry{v: v, gen: gen, n: n})
}

// viewOf returns the view of history under snap: the scratch's, built
// now, without a cache (or for an empty history, whose view costs
// nothing); else the cached one, built and cached on a miss. The result
// is read only.
func (e *Engine) viewOf(sc *scratch, snap *catalog.Snapshot, history []Consumed) *view {
	if e.views == nil || len(history) == 0 {
		sc.view.build(snap, history, e.cfg.TasteDecay)
		sc.view.probe = e.probe(sc.view.probe[:0], snap, sc.view.taste)
		return &sc.view
	}
	key, gen := e.views.key(history), e.views.gens.generation(snap)
	if v := e.views.get(key, gen, len(history)); v != nil {
		return v
	}
	v := new(view)
	v.build(snap, history, e.cfg.TasteDecay)
	v.probe = e.probe(nil, snap, v.taste)
	e.views.put(key, gen, v, len(history))
	return v
}

// probe appends the index clusters the familiar pool scans for taste (none
// for a cold user, who has no familiar pool).
func (e *Engine) probe(dst []int32, snap *catalog.Snapshot, taste []float32) []int32 {
	if taste == nil {
		return dst
	}
	return snap.Probe(dst, taste, e.cfg.NProbe)
}

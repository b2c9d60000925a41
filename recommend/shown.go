package recommend

import (
	"hash/maphash"

	"github.com/novarec/novarec/catalog"
)

// shownCache keeps each recent session's Shown entries as last resolved
// (resolveShown), so that a decision looks up in the catalog's id map only
// the entries added since: the slate served last, where it would look up
// all of them, up to 300 ids at a cache miss or more each (6% of recsvc's
// CPU at 100k items). A session's list only grows at its end and is cut at
// its start, so the entries kept are found again as a run at the start of
// the new list, compared id by id: the cache never gives another answer
// than the id map. It holds copies of the ids, about 5 KB a session of 300
// entries.
//
// An entry is owned by one decision at a time: a decision takes it out and
// puts it back updated, so a concurrent decision of the same session
// resolves its ids afresh.
type shownCache struct {
	seed    maphash.Seed
	gens    *snapGens
	entries recentMap[*shownEntry]
	// min is the shortest list kept: shorter ones are looked up, which
	// costs less than keeping them (a new session's entry, growing with
	// it, cost more than it saved in bench/load.sh's short sessions).
	min int
}

// shownCacheMin is shownCache.min: 66 entries, six slates of 10.
const shownCacheMin = 66

// shownEntry is a session's list as last resolved under snapshot
// generation gen: entry k is ids[ends[k-1]:ends[k]], resolved to idx[k].
type shownEntry struct {
	gen  uint64
	ids  []byte
	ends []int32
	idx  []int32
}

func newShownCache(entries int, gens *snapGens) *shownCache {
	c := &shownCache{seed: maphash.MakeSeed(), gens: gens, min: shownCacheMin}
	c.entries.init(entries)
	return c
}

func (e *shownEntry) id(k int) []byte {
	lo := int32(0)
	if k > 0 {
		lo = e.ends[k-1]
	}
	return e.ids[lo:e.ends[k]]
}

// kept returns where the entries kept from e start in it and how many
// there are: the longest tail of e that shown starts with.
func (e *shownEntry) kept(shown []string) (from, n int) {
	old := len(e.ends)
	for d := max(old-len(shown), 0); d < old; d++ {
		k := 0
		for k < old-d && string(e.id(d+k)) == shown[k] {
			k++
		}
		if k == old-d {
			return d, k
		}
	}
	return old, 0
}

// resolve appends resolveShown(snap, shown) to dst, the session of st
// (its user and id) keyed.
func (c *shownCache) resolve(dst []int32, snap *catalog.Snapshot, st *UserState) []int32 {
	shown := st.Session.Shown
	if len(shown) < c.min {
		return resolveShown(dst, snap, shown)
	}
	// A collision of keys only costs the look-ups: the entries are
	// compared.
	key := maphash.String(c.seed, st.UserID)*0x9e3779b97f4a7c15 ^ maphash.String(c.seed, st.Session.ID)
	gen := c.gens.generation(snap)
	e, ok := c.entries.get(key, true)
	if !ok || e.gen != gen {
		if !ok {
			e = new(shownEntry)
		}
		e.gen, e.ids, e.ends, e.idx = gen, e.ids[:0], e.ends[:0], e.idx[:0]
	}
	from, n := e.kept(shown)
	dst = append(dst, e.idx[from:from+n]...)
	dst = resolveShown(dst, snap, shown[n:])
	e.ids, e.ends = e.ids[:0], e.ends[:0]
	for _, id := range shown {
		e.ids = append(e.ids, id...)
		e.ends = append(e.ends, int32(len(e.ids)))
	}
	e.idx = append(e.idx[:0], dst[len(dst)-len(shown):]...)
	c.entries.put(key, e)
	return dst
}

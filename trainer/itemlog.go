package trainer

import (
	"encoding/binary"
	"strconv"

	"github.com/novarec/novarec/features"
)

// The shared model's item log (docs/trainer-scale.md#scaling-out). A
// replica's rebase must bring in the items the other replicas changed since
// its last one, so that the snapshot it publishes holds their updates too.
// Reading the shared model's items whole costs the model's size at every
// commit; instead each merge logs the items it changed, in the hash
// hashItemLog of the shared part, in the same transaction as the items, and
// a replica reads the entries of the merges since its base and then just
// those items. The log is a ring of itemLogSlots entries keyed by version
// mod itemLogSlots, so it takes bounded space; each entry names the
// version it made and the one it merged into, so a reader follows the
// chain from the stored version back to its own and knows whether the log
// covered every merge in between (versions can skip numbers: a replica
// numbers after the last published snapshot). When it cannot — more merges
// than the ring holds, an entry overwritten or unreadable, a merge that
// changed too many items to list — the replica reads every item, as it did
// before the log.

// hashItemLog is the shared part's log: slot → itemLogEntry record.
const hashItemLog = "itemlog"

// itemLogSlots is how many merges the log keeps: a replica that falls
// further behind (more than this many merges of other replicas between two
// of its commits) reads every item. 64 covers 64 replicas committing in
// turn.
const itemLogSlots = 64

// maxLoggedItems bounds an entry: a merge that changed more items logs
// that it changed them all (readers then read every item) instead of a
// list as large as the model.
const maxLoggedItems = 20_000

// itemLogEntry is one merge's record in the log.
type itemLogEntry struct {
	// version is the shared model's version the merge stored, prev the
	// version it merged into.
	version, prev uint64
	// all marks a merge whose items are not listed (more than
	// maxLoggedItems).
	all bool
	ids []string
	// obs are the mode observations the merging replica made since its
	// last merge (modeshare.go); an entry of an older build has none.
	obs []modeObservation
}

func itemLogSlot(version uint64) string { return strconv.FormatUint(version%itemLogSlots, 10) }

func appendItemLog(b []byte, e itemLogEntry) []byte {
	b = append(b, recordV1)
	b = binary.AppendVarint(b, int64(e.version))
	b = binary.AppendVarint(b, int64(e.prev))
	all := byte(0)
	if e.all {
		all = 1
	}
	b = append(b, all)
	b = binary.AppendUvarint(b, uint64(len(e.ids)))
	for _, id := range e.ids {
		b = appendString(b, id)
	}
	if len(e.obs) > 0 {
		b = appendObservations(b, e.obs)
	}
	return b
}

func readItemLog(b []byte) (itemLogEntry, error) {
	r := &reader{b: b}
	r.version(recordV1)
	e := itemLogEntry{version: uint64(r.varint()), prev: uint64(r.varint())}
	if all := r.take(1); r.err == nil {
		e.all = all[0] == 1
	}
	n := r.count(1)
	if n > 0 {
		e.ids = make([]string, n)
		for i := range e.ids {
			e.ids[i] = r.string()
		}
	}
	if len(r.b) > 0 && r.err == nil {
		e.obs = r.observations()
	}
	return e, r.done()
}

// changedSince lists the items the merges after version from changed, up
// to the stored version to, from the log (read with get, inside the
// commit's transaction), and their mode observations, oldest merge first.
// ok is false when the log does not cover every merge in between: the
// caller must then read every item (and goes without the observations).
func changedSince(get features.SharedFields, from, to uint64) (ids []string, obs []modeObservation, ok bool, err error) {
	if to <= from || to-from > itemLogSlots {
		return nil, nil, false, nil
	}
	slots := make([]string, 0, to-from)
	for v := from + 1; v <= to; v++ {
		slots = append(slots, itemLogSlot(v))
	}
	vals, err := get(hashItemLog, slots...)
	if err != nil {
		return nil, nil, false, err
	}
	entries := make(map[uint64]itemLogEntry, len(vals))
	for _, v := range vals {
		if v == nil {
			continue
		}
		// An unreadable entry is not an error: the items themselves are
		// intact, and reading them all is the fallback.
		if e, err := readItemLog(v); err == nil {
			entries[e.version] = e
		}
	}
	seen := map[string]struct{}{}
	var chain []itemLogEntry
	for v := to; v != from; {
		e, found := entries[v]
		if !found || e.all || e.prev >= v || e.prev < from {
			return nil, nil, false, nil
		}
		for _, id := range e.ids {
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				ids = append(ids, id)
			}
		}
		chain = append(chain, e)
		v = e.prev
	}
	for i := len(chain) - 1; i >= 0; i-- {
		obs = append(obs, chain[i].obs...)
	}
	return ids, obs, true, nil
}

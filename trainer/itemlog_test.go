package trainer

import (
	"slices"
	"testing"
)

// TestChangedSince checks what the item log says a replica missed: the
// items of the chain of merges from the stored version back to the
// replica's, and that it cannot say (the replica reads every item) when a
// merge of the chain is missing, was overwritten in the ring, did not list
// its items, or lies further back than the ring holds.
func TestChangedSince(t *testing.T) {
	entry := func(version, prev uint64, ids ...string) itemLogEntry {
		return itemLogEntry{version: version, prev: prev, ids: ids}
	}
	tests := []struct {
		name     string
		log      []itemLogEntry
		from, to uint64
		want     []string
		ok       bool
	}{
		{"one merge", []itemLogEntry{entry(11, 10, "a", "b")}, 10, 11, []string{"a", "b"}, true},
		{"a chain, each item once", []itemLogEntry{entry(11, 10, "a"), entry(12, 11, "b", "a"), entry(13, 12, "c")}, 10, 13, []string{"a", "b", "c"}, true},
		{"a chain that skips numbers", []itemLogEntry{entry(15, 10, "a"), entry(16, 15, "b")}, 10, 16, []string{"a", "b"}, true},
		{"a merge that changed no item", []itemLogEntry{entry(11, 10)}, 10, 11, nil, true},
		{"a merge missing", []itemLogEntry{entry(12, 11, "b")}, 10, 12, nil, false},
		{"a merge overwritten in the ring", []itemLogEntry{entry(11+itemLogSlots, 10+itemLogSlots, "x"), entry(12, 11, "b")}, 10, 12, nil, false},
		{"items not listed", []itemLogEntry{{version: 11, prev: 10, all: true}}, 10, 11, nil, false},
		{"a chain from before the replica's base", []itemLogEntry{entry(12, 9, "a")}, 10, 12, nil, false},
		{"further back than the ring", nil, 10, 11 + itemLogSlots, nil, false},
		{"the stored version behind the replica's", nil, 10, 9, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ring := map[string][]byte{}
			for _, e := range tc.log {
				ring[itemLogSlot(e.version)] = appendItemLog(nil, e)
			}
			get := func(hash string, fields ...string) ([][]byte, error) {
				if hash != hashItemLog {
					t.Fatalf("read hash %q", hash)
				}
				out := make([][]byte, len(fields))
				for i, f := range fields {
					out[i] = ring[f]
				}
				return out, nil
			}
			got, ok, err := changedSince(get, tc.from, tc.to)
			slices.Sort(got)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("changedSince = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestItemLogRoundTrip checks an entry reads back as written, and that a
// damaged one is an error, not a short list.
func TestItemLogRoundTrip(t *testing.T) {
	for _, e := range []itemLogEntry{
		{version: 7, prev: 3, ids: []string{"item-1", "item-22", ""}},
		{version: 1 << 40, prev: 1<<40 - 1, all: true},
		{version: 2, prev: 1},
	} {
		b := appendItemLog(nil, e)
		got, err := readItemLog(b)
		if err != nil || got.version != e.version || got.prev != e.prev || got.all != e.all || !slices.Equal(got.ids, e.ids) {
			t.Fatalf("read %+v (%v), wrote %+v", got, err, e)
		}
		if _, err := readItemLog(b[:len(b)-1]); err == nil && len(b) > 1 {
			t.Errorf("a truncated entry of %+v reads without error", e)
		}
	}
}

package trainer

import (
	"reflect"
	"slices"
	"testing"

	"github.com/novarec/novarec/recommend"
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
			got, _, ok, err := changedSince(get, tc.from, tc.to)
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
		{version: 9, prev: 8, ids: []string{"a"}, obs: []modeObservation{
			{user: "u1", session: "s1", ts: 1_700_000_000_123, novelty: []float64{0, 0.25, 1, 0.1}, clicked: []bool{false, true, false, false}},
			{user: "u2", session: "", ts: -1, novelty: make([]float64, 9), clicked: []bool{true, false, false, false, false, false, false, false, true}},
		}},
	} {
		b := appendItemLog(nil, e)
		got, err := readItemLog(b)
		if err != nil || got.version != e.version || got.prev != e.prev || got.all != e.all || !slices.Equal(got.ids, e.ids) || !reflect.DeepEqual(got.obs, e.obs) {
			t.Fatalf("read %+v (%v), wrote %+v", got, err, e)
		}
		if _, err := readItemLog(b[:len(b)-1]); err == nil && len(b) > 1 {
			t.Errorf("a truncated entry of %+v reads without error", e)
		}
	}
}

// TestChangedSinceObservations checks that the mode observations of the
// merges a replica missed come back oldest merge first, as they were made.
func TestChangedSinceObservations(t *testing.T) {
	obs := func(user string) []modeObservation {
		return []modeObservation{{user: user, session: "s", novelty: []float64{1}, clicked: []bool{true}}}
	}
	ring := map[string][]byte{}
	for _, e := range []itemLogEntry{
		{version: 11, prev: 10, obs: obs("first")},
		{version: 12, prev: 11, ids: []string{"a"}},
		{version: 14, prev: 12, obs: obs("third")},
	} {
		ring[itemLogSlot(e.version)] = appendItemLog(nil, e)
	}
	get := func(_ string, fields ...string) ([][]byte, error) {
		out := make([][]byte, len(fields))
		for i, f := range fields {
			out[i] = ring[f]
		}
		return out, nil
	}
	_, got, ok, err := changedSince(get, 10, 14)
	if err != nil || !ok || len(got) != 2 || got[0].user != "first" || got[1].user != "third" {
		t.Fatalf("changedSince observations = %+v, %v, %v", got, ok, err)
	}
}

// TestObservationRoundTrip checks that an observation gives the mode
// window what the slate did: novelty and clicks in position order.
func TestObservationRoundTrip(t *testing.T) {
	s := &recommend.LoggedSlate{UserID: "u", SessionID: "s", TS: 5, Items: []recommend.LoggedItem{
		{ItemID: "c", Position: 2, Novelty: 0.3}, {ItemID: "a", Position: 0, Novelty: 1}, {ItemID: "b", Position: 1, Novelty: 0},
	}}
	got, clicked := observationOf(s, []int{2}).slate()
	want := []recommend.LoggedItem{{Position: 0, Novelty: 1}, {Position: 1, Novelty: 0}, {Position: 2, Novelty: 0.3}}
	if got.UserID != "u" || got.SessionID != "s" || got.TS != 5 || !reflect.DeepEqual(got.Items, want) || !slices.Equal(clicked, []int{2}) {
		t.Fatalf("slate %+v clicked %v", got, clicked)
	}
}

package features

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
	"github.com/redis/go-redis/v9"
)

// appendEntry writes an entry of the legacy history list, as versions
// before packed histories did.
func appendEntry(dst []byte, c recommend.Consumed) []byte {
	dst = strconv.AppendInt(dst, c.TS, 10)
	if c.Novel {
		dst = append(dst, "|1|"...)
	} else {
		dst = append(dst, "|0|"...)
	}
	return append(dst, c.ItemID...)
}

func TestPackedHistory(t *testing.T) {
	hist := []recommend.Consumed{
		{ItemID: "m|1", TS: 1_700_000_000_000, Novel: true}, {ItemID: "é{x}", TS: 1_699_999_000_000},
		{ItemID: "later-out-of-order", TS: 1_800_000_000_000}, {ItemID: "neg", TS: -5, Novel: true},
	}
	b := string(appendPacked(nil, hist))
	if got := decodePacked(b, -1); !reflect.DeepEqual(got, hist) {
		t.Fatalf("round trip: %+v", got)
	}
	if got := decodePacked(b, 2); !reflect.DeepEqual(got, hist[:2]) {
		t.Errorf("first 2: %+v", got)
	}
	// A damaged tail is dropped, the entries before it kept; garbage and
	// unknown versions decode as no history, never a panic.
	for cut := 1; cut < len(b); cut++ {
		got := decodePacked(b[:cut], -1)
		if len(got) > len(hist) || !slices.Equal(got, hist[:len(got)]) {
			t.Fatalf("cut at %d: %+v", cut, got)
		}
	}
	for _, bad := range []string{"", "\x01", "\x02\x02a\x02", "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x01\x00\x02", "\x01\x08ab"} {
		if got := decodePacked(bad, -1); len(got) != 0 {
			t.Errorf("decodePacked(%q) = %+v", bad, got)
		}
	}
}

// decodePackedOnePass is decodePacked as it was before it counted the
// entries first (one pass, a capacity guessed from len(b)): the reference
// the two-pass decoder must agree with, entry for entry.
func decodePackedOnePass(b string, limit int) []recommend.Consumed {
	if len(b) < 2 || b[0] != packedVersion {
		return nil
	}
	var out []recommend.Consumed
	var prev int64
	for i := 1; i < len(b) && limit != 0; limit-- {
		n, k := uvarint(b[i:])
		if k <= 0 || n>>1 > uint64(len(b)-i-k) {
			break
		}
		i += k
		id := b[i : i+int(n>>1)]
		i += int(n >> 1)
		d, k := varint(b[i:])
		if k <= 0 || id == "" {
			break
		}
		i += k
		ts := d
		if out != nil {
			ts = prev - d
		} else {
			out = make([]recommend.Consumed, 0, min(len(b)/8+1, 1024))
		}
		out = append(out, recommend.Consumed{ItemID: id, TS: ts, Novel: n&1 == 1})
		prev = ts
	}
	return out
}

// TestDecodePackedSized: the decoded history is allocated at its length
// (the one-pass decoder's guess was about twice that for short ids) and
// equals the one-pass decoder's, whatever the limit.
func TestDecodePackedSized(t *testing.T) {
	var hist []recommend.Consumed
	for i := range recommend.DefaultHistory {
		hist = append(hist, recommend.Consumed{ItemID: "item-" + strconv.Itoa(10000+i), TS: 1_700_000_000_000 - int64(i)*60_000, Novel: i%7 == 0})
	}
	b := string(appendPacked(nil, hist))
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{
		{"all", -1, len(hist)},
		{"none", 0, 0},
		{"one", 1, 1},
		{"some", 50, 50},
		{"more than stored", 1000, len(hist)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodePacked(b, tc.limit)
			if len(got) != tc.want || cap(got) != tc.want {
				t.Fatalf("len %d cap %d, want %d", len(got), cap(got), tc.want)
			}
			if want := decodePackedOnePass(b, tc.limit); !slices.Equal(got, want) {
				t.Errorf("differs from the one-pass decoder: %+v", got)
			}
		})
	}
}

func FuzzDecodePacked(f *testing.F) {
	f.Add(string(appendPacked(nil, []recommend.Consumed{{ItemID: "a", TS: 5, Novel: true}, {ItemID: "bc", TS: 3}})), -1)
	f.Add("\x01\x02a\x00\x03b", 1)
	f.Fuzz(func(t *testing.T, b string, limit int) {
		got := decodePacked(b, limit)
		for _, c := range got {
			if c.ItemID == "" {
				t.Fatal("empty item id decoded")
			}
		}
		if want := decodePackedOnePass(b, limit); !slices.Equal(got, want) {
			t.Fatalf("decodePacked(%q, %d) = %+v, the one-pass decoder %+v", b, limit, got, want)
		}
	})
}

// BenchmarkDecodePacked decodes a full history (DefaultHistory entries
// of short ids), as Load does on every request.
func BenchmarkDecodePacked(b *testing.B) {
	var hist []recommend.Consumed
	for i := range recommend.DefaultHistory {
		hist = append(hist, recommend.Consumed{ItemID: "item-" + strconv.Itoa(10000+i), TS: 1_700_000_000_000 - int64(i)*60_000, Novel: i%7 == 0})
	}
	packed := string(appendPacked(nil, hist))
	b.ReportAllocs()
	for b.Loop() {
		if h := decodePacked(packed, -1); len(h) != len(hist) {
			b.Fatalf("%d entries", len(h))
		}
	}
}

// TestLegacyHistoryMigrates: a history stored as a list by an older
// version (which wrote the stats hash in the same transaction) is read by
// Load, RecentHistory and ScanHistories, and rewritten packed (the list
// deleted) by the user's next engagement.
func TestLegacyHistoryMigrates(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	old := []recommend.Consumed{{ItemID: "d", TS: 2000}, {ItemID: "a", TS: 1000, Novel: true}}
	for _, u := range []string{"old", "other"} {
		for _, c := range old {
			if err := client.RPush(ctx, s.legacyHistKey(u), string(appendEntry(nil, c))).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := client.HSet(ctx, s.userKey(u, "stats"), fClicks, "2", fNovel, "1", fFamiliar, "1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(ctx, recommend.UserState{UserID: "new", History: old[:1]}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "old", "")
	if err != nil || !reflect.DeepEqual(st.History, old) {
		t.Fatalf("legacy history loaded as %+v (%v)", st.History, err)
	}
	if r, err := s.RecentHistory(ctx, "old", 1); err != nil || !reflect.DeepEqual(r, old[:1]) {
		t.Fatalf("recent legacy history %+v (%v)", r, err)
	}

	if _, _, err := s.ApplyFeedback(ctx, testSnapshot(t), intent.ModeModel{}, "e1", recommend.Feedback{UserID: "old", ItemID: "b", Type: recommend.Click, TS: 3000}); err != nil {
		t.Fatal(err)
	}
	st, err = s.Load(ctx, "old", "")
	if err != nil || len(st.History) != 3 || st.History[0].ItemID != "b" || !reflect.DeepEqual(st.History[1:], old) {
		t.Fatalf("after an engagement: %+v (%v)", st.History, err)
	}
	if n := client.Exists(ctx, s.legacyHistKey("old")).Val(); n != 0 {
		t.Error("legacy list kept after the history was rewritten packed")
	}
	if client.Exists(ctx, s.histKey("old")).Val() != 1 {
		t.Error("no packed history after an engagement")
	}

	got := map[string]string{}
	if err := s.ScanHistories(ctx, func(u string, h []recommend.Consumed) error {
		if _, dup := got[u]; dup {
			t.Errorf("%s scanned twice", u)
		}
		got[u] = fmt.Sprint(len(h), " ", h[0].ItemID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"old": "3 b", "other": "2 d", "new": "1 d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("scanned %v, want %v", got, want)
	}
}

// TestLegacyListReadOnlyWhenNeeded: the read looks for a legacy list only
// for a user with stats and no packed history; every writer of the stats
// leaves a packed history (empty, if need be), which ScanHistories skips
// when empty, and a legacy list is migrated by any feedback, not only an
// engagement.
func TestLegacyListReadOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	needs := func(u string) bool {
		t.Helper()
		var r userReads
		if _, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			r = s.queueReads(ctx, p, u, "", true)
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return r.needsLegacy()
	}
	if needs("fresh") {
		t.Error("a user never written needs the legacy read")
	}

	// Saved without a history: an empty packed one, not scanned.
	if err := s.Save(ctx, recommend.UserState{UserID: "empty", Stats: recommend.Stats{Skips: 3}}); err != nil {
		t.Fatal(err)
	}
	if needs("empty") {
		t.Error("a saved user without history needs the legacy read")
	}
	if st, err := s.Load(ctx, "empty", ""); err != nil || st.History != nil || st.Stats.Skips != 3 {
		t.Fatalf("saved user without history loaded as %+v (%v)", st, err)
	}

	// A legacy user's skip migrates the list.
	old := recommend.Consumed{ItemID: "d", TS: 2000}
	if err := client.RPush(ctx, s.legacyHistKey("old"), string(appendEntry(nil, old))).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(ctx, s.userKey("old", "stats"), fClicks, "1").Err(); err != nil {
		t.Fatal(err)
	}
	if !needs("old") {
		t.Fatal("a legacy user does not need the legacy read")
	}
	if _, _, err := s.ApplyFeedback(ctx, testSnapshot(t), intent.ModeModel{}, "e1", recommend.Feedback{UserID: "old", ItemID: "b", Type: recommend.Skip, TS: 3000}); err != nil {
		t.Fatal(err)
	}
	if needs("old") || client.Exists(ctx, s.legacyHistKey("old")).Val() != 0 {
		t.Error("a skip did not migrate the legacy list")
	}
	if st, err := s.Load(ctx, "old", ""); err != nil || !reflect.DeepEqual(st.History, []recommend.Consumed{old}) {
		t.Fatalf("after a skip: %+v (%v)", st.History, err)
	}

	// A new user's first feedback, a skip: an empty packed history.
	if _, _, err := s.ApplyFeedback(ctx, testSnapshot(t), intent.ModeModel{}, "e2", recommend.Feedback{UserID: "skipper", ItemID: "b", Type: recommend.Skip, TS: 3000}); err != nil {
		t.Fatal(err)
	}
	if needs("skipper") {
		t.Error("a user with only a skip needs the legacy read")
	}

	got := map[string]int{}
	if err := s.ScanHistories(ctx, func(u string, h []recommend.Consumed) error {
		got[u] = len(h)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"old": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("scanned %v, want %v", got, want)
	}
}

package features

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

func newStore(t testing.TB, opts Options) (*Store, redis.UniversalClient) {
	t.Helper()
	client, prefix := redistest.New(t)
	opts.Prefix = prefix
	return NewStore(client, opts), client
}

func testSnapshot(t testing.TB) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.Build(1, catalog.DefaultDim, []catalog.Item{
		{ID: "a", Categories: []string{"drama"}, Popularity: 10},
		{ID: "b", Categories: []string{"drama", "comedy"}, Popularity: 5},
		{ID: "c", Categories: []string{"horror"}, Popularity: 3},
		{ID: "d", Categories: []string{"drama"}, Popularity: 1},
		{ID: "e", Categories: []string{"western"}, Popularity: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestLoadEmptyUser(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	for _, sid := range []string{"", "s1"} {
		st, err := s.Load(t.Context(), "nobody", sid)
		if err != nil {
			t.Fatal(err)
		}
		want := recommend.UserState{UserID: "nobody", Session: recommend.Session{ID: sid}}
		if !reflect.DeepEqual(st, want) {
			t.Errorf("Load(%q) = %+v, want %+v", sid, st, want)
		}
	}
	if _, err := s.Load(t.Context(), "", ""); err == nil {
		t.Error("Load with empty user id: want error")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{History: 4})
	full := recommend.UserState{
		UserID: "u1",
		History: []recommend.Consumed{
			{ItemID: "x|y|z", TS: 3000, Novel: true},
			{ItemID: "b", TS: 2000},
			{ItemID: "a", TS: -5, Novel: true},
		},
		Stats: func() recommend.Stats {
			st := recommend.Stats{Clicks: 7, NovelClicks: 3, FamiliarClicks: 4, Skips: 2, Sessions: 5, LastTS: 3000,
				ModeSession: "s8", ModeEvidence: -1.25, ModeAccounted: 11}
			mm := intent.ModeModel{Contrast: 1, ToExploit: 0.1, ToExplore: 0.05, Examine: 0.7}
			st.ModeChain = mm.Append(mm.Append(intent.ModeChain{}, 0.75), -2)
			st.Rho.Fold(2.5)
			st.Rho.Fold(-0.75)
			return st
		}(),
		Consumed: func() recommend.Filter {
			var f recommend.Filter
			for i := range 300 { // two slices
				f.Add(uint64(i) * 0x9e3779b97f4a7c15)
			}
			return f
		}(),
		Session: recommend.Session{
			ID: "s9", Start: 1000, Last: 3000, Clicks: 2, Skips: 1, NovelClicks: 1, NovelEWMA: 0.1 + 0.2,
			CategoryClicks: map[string]int64{"drama": 2, "sci fi:x": 1},
			Shown:          recommend.ShownRecord("r1", []string{"q", "a", "x|y|z"}),
		},
	}
	long := recommend.UserState{UserID: "u{2}"}
	for i := range 6 {
		long.History = append(long.History, recommend.Consumed{ItemID: strconv.Itoa(i), TS: int64(100 - i)})
	}
	longWant := long
	longWant.History = long.History[:4]
	cases := []struct {
		name string
		in   recommend.UserState
		want recommend.UserState
	}{
		{"full", full, full},
		{"history only, implicit session", recommend.UserState{UserID: "u3", History: full.History[1:]},
			recommend.UserState{UserID: "u3", History: full.History[1:]}},
		{"capped history", long, longWant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Save(t.Context(), tc.in); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(t.Context(), tc.in.UserID, tc.in.Session.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Shown comes back oldest first, slate marks included.
			want := tc.want
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	// Save replaces: saving a smaller state leaves nothing of the old one.
	small := recommend.UserState{UserID: "u1", History: full.History[2:], Session: recommend.Session{ID: "s9"}}
	if err := s.Save(t.Context(), small); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(t.Context(), "u1", "s9")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, small) {
		t.Errorf("after replacing save: got %+v, want %+v", got, small)
	}
}

func TestLoadSkipsCorruptEntries(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	hist := s.legacyHistKey("u")
	if err := client.RPush(ctx, hist, "5|1|good", "junk", "x|1|a", "5|2|a", "5|1|", "5|0", "|0|a", "4|0|ok|too").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(ctx, s.userKey("u", "stats"), "clicks", "3", "novel", "NaN", "bogus", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(ctx, s.sessionKey("u", ""), "last", "9", "ewma", "x", "c:", "1", "c:ok", "2", "clicks", "1.5").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	want := recommend.UserState{
		UserID:  "u",
		History: []recommend.Consumed{{ItemID: "good", TS: 5, Novel: true}, {ItemID: "ok|too", TS: 4}},
		Stats:   recommend.Stats{Clicks: 3},
		Session: recommend.Session{Last: 9, CategoryClicks: map[string]int64{"ok": 2}},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got %+v\nwant %+v", st, want)
	}
}

func TestApplyFeedbackSequence(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	snap := testSnapshot(t)
	ctx := t.Context()
	const gap = 31 * 60 * 1000 // just over recommend.SessionGap, in ms
	// mirror is the same state kept in memory: the store must agree with
	// recommend.Observe, the single definition of state updates.
	mirror := recommend.UserState{UserID: "u"}
	steps := []struct {
		ev, item, typ  string
		ts             int64
		wantApplied    bool
		wantSurprising bool
		wantNew        bool
	}{
		{"e1", "a", recommend.Click, 1000, true, true, true},       // first event: new session, novel
		{"e2", "d", recommend.Click, 2000, true, false, false},     // drama again: familiar
		{"e2", "d", recommend.Click, 2000, false, false, false},    // redelivered: ignored
		{"e3", "c", recommend.Skip, 3000, true, false, false},      // skip: no history
		{"e4", "b", recommend.Click, 4000, true, false, false},     // half novel: familiar
		{"", "b", recommend.View, 4500, true, false, false},        // no event id: no dedup
		{"e5", "e", recommend.Click, 4000 + gap, true, true, true}, // idle gap: new implicit session
	}
	for i, step := range steps {
		fb := recommend.Feedback{UserID: "u", ItemID: step.item, Type: step.typ, TS: step.ts}
		obs, applied, err := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, step.ev, fb)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if applied != step.wantApplied || obs.Surprising != step.wantSurprising || obs.NewSession != step.wantNew {
			t.Fatalf("step %d: applied=%v obs=%+v, want applied=%v surprising=%v new=%v",
				i, applied, obs, step.wantApplied, step.wantSurprising, step.wantNew)
		}
		if applied {
			if want := recommend.Observe(&mirror, snap, fb, 0, intent.ModeModel{}); want != obs {
				t.Fatalf("step %d: obs %+v, Observe says %+v", i, obs, want)
			}
		}
		if i == 4 { // check the state of the first session in detail
			st, err := s.Load(ctx, "u", "")
			if err != nil {
				t.Fatal(err)
			}
			// No slate was recorded as shown, so no mode evidence: only
			// the session it would belong to.
			wantStats := recommend.Stats{Clicks: 3, NovelClicks: 1, FamiliarClicks: 2, Skips: 1, Sessions: 1, LastTS: 4000, ModeSession: "@1000"}
			if st.Stats != wantStats {
				t.Errorf("stats = %+v, want %+v", st.Stats, wantStats)
			}
			wantHist := []recommend.Consumed{{ItemID: "b", TS: 4000}, {ItemID: "d", TS: 2000}, {ItemID: "a", TS: 1000, Novel: true}}
			if !reflect.DeepEqual(st.History, wantHist) {
				t.Errorf("history = %+v, want %+v", st.History, wantHist)
			}
			ses := st.Session
			// EWMA: 1, then 0.6*1+0.4*0, then 0.6*0.6+0.4*0.5 (b is half novel).
			if ses.Clicks != 3 || ses.Skips != 1 || ses.NovelClicks != 1 || ses.Start != 1000 || ses.Last != 4000 ||
				!near(ses.NovelEWMA, 0.56) {
				t.Errorf("session = %+v", ses)
			}
			if want := map[string]int64{"drama": 3, "comedy": 1}; !maps.Equal(ses.CategoryClicks, want) {
				t.Errorf("category clicks = %v, want %v", ses.CategoryClicks, want)
			}
		}
	}
	st, err := s.Load(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, mirror) {
		t.Errorf("stored state differs from recommend.Observe's:\n got %+v\nwant %+v", st, mirror)
	}
	if st.Stats.Sessions != 2 || st.Session.Clicks != 1 || st.Session.Skips != 0 || len(st.Session.CategoryClicks) != 1 {
		t.Errorf("after idle gap: stats %+v session %+v", st.Stats, st.Session)
	}
	ttl, err := client.PTTL(ctx, s.userKey("u", "ev")).Result()
	if err != nil || ttl <= 0 || ttl > DedupTTL {
		t.Errorf("dedup key TTL = %v, %v; want in (0, %v]", ttl, err, DedupTTL)
	}
	if n, _ := client.ZCard(ctx, s.userKey("u", "ev")).Result(); n != 5 {
		t.Errorf("dedup set holds %d ids, want 5", n)
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

func TestApplyFeedbackErrors(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	snap := testSnapshot(t)
	if _, _, err := s.ApplyFeedback(t.Context(), snap, intent.ModeModel{}, "e", recommend.Feedback{ItemID: "a", Type: recommend.Click}); err == nil {
		t.Error("empty user: want error")
	}
	if _, _, err := s.ApplyFeedback(t.Context(), nil, intent.ModeModel{}, "e", recommend.Feedback{UserID: "u", Type: recommend.Click}); err == nil {
		t.Error("nil snapshot: want error")
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{SessionTTL: time.Second})
	snap := testSnapshot(t)
	ctx := t.Context()
	click := func(ev, item string, ts int64) recommend.Observation {
		t.Helper()
		obs, applied, err := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, ev, recommend.Feedback{UserID: "u", SessionID: "s1", ItemID: item, Type: recommend.Click, TS: ts})
		if err != nil || !applied {
			t.Fatalf("apply %s: applied=%v err=%v", ev, applied, err)
		}
		return obs
	}
	if obs := click("e1", "a", 1000); !obs.NewSession {
		t.Fatal("first click should start a session")
	}
	if err := s.RecordShown(ctx, "u", "s1", []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if obs := click("e2", "d", 2000); obs.NewSession {
		t.Fatal("second click within the TTL should continue the session")
	}
	redistest.Elapse(t, client, 1500*time.Millisecond)
	st, err := s.Load(ctx, "u", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Session.Last != 0 || st.Session.Shown != nil {
		t.Fatalf("session should have expired, got %+v", st.Session)
	}
	if obs := click("e3", "b", 3000); !obs.NewSession {
		t.Error("click after the TTL should start a new session")
	}
	st, err = s.Load(ctx, "u", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.Sessions != 2 || st.Session.Clicks != 1 || st.Session.Start != 3000 || len(st.History) != 3 {
		t.Errorf("after expiry: %+v", st)
	}
}

func TestHistoryCap(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{History: 3})
	snap := testSnapshot(t)
	for i, item := range []string{"a", "b", "c", "d", "e"} {
		fb := recommend.Feedback{UserID: "u", SessionID: "s", ItemID: item, Type: recommend.Rating, Value: 4, TS: int64(i + 1)}
		if _, _, err := s.ApplyFeedback(t.Context(), snap, intent.ModeModel{}, "ev"+item, fb); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Load(t.Context(), "u", "s")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range st.History {
		ids = append(ids, h.ItemID)
	}
	if want := []string{"e", "d", "c"}; !slices.Equal(ids, want) {
		t.Errorf("history = %v, want %v", ids, want)
	}
	if st.Stats.Clicks != 5 {
		t.Errorf("clicks = %d, want 5", st.Stats.Clicks)
	}
}

func TestRecordShown(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	if err := s.RecordShown(ctx, "u", "", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordShown(ctx, "u", "", []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordShown(ctx, "u", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordShown(ctx, "u", "other", []string{"z"}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Session.Shown; !slices.Equal(got, []string{"a", "b", "b", "c"}) {
		t.Errorf("shown = %v, want every record oldest first", got)
	}
	// The list is capped at ShownMax, newest kept.
	many := make([]string, ShownMax+50)
	for i := range many {
		many[i] = fmt.Sprint("m", i)
	}
	if err := s.RecordShown(ctx, "u", "long", many); err != nil {
		t.Fatal(err)
	}
	st, err = s.Load(ctx, "u", "long")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Session.Shown) != ShownMax || !slices.Contains(st.Session.Shown, many[len(many)-1]) || slices.Contains(st.Session.Shown, many[0]) {
		t.Errorf("capped shown list has %d items (want %d, newest kept)", len(st.Session.Shown), ShownMax)
	}
	if ttl := client.PTTL(ctx, s.shownKey("u", "")).Val(); ttl <= 0 || ttl > recommend.SessionGap {
		t.Errorf("shown TTL = %v", ttl)
	}
}

func TestKeysShareHashTag(t *testing.T) {
	s := NewStore(nil, Options{Prefix: "p:"})
	keys := []string{s.histKey("a}b"), s.legacyHistKey("a}b"), s.userKey("a}b", "stats"), s.sessionKey("a}b", ""), s.shownKey("a}b", "x"), s.userKey("a}b", "ev")}
	for _, k := range keys {
		if tag(k) != tag(keys[0]) {
			t.Errorf("key %q has hash tag %q, want %q", k, tag(k), tag(keys[0]))
		}
	}
	if k := s.sessionKey("u", ""); k != "p:{u:u}:s:_" {
		t.Errorf("implicit session key = %q", k)
	}
}

// tag returns the part of key Redis Cluster hashes.
func tag(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

func TestParseEntry(t *testing.T) {
	cases := []struct {
		in   string
		want recommend.Consumed
		ok   bool
	}{
		{"1|1|a", recommend.Consumed{ItemID: "a", TS: 1, Novel: true}, true},
		{"-7|0|a|b|", recommend.Consumed{ItemID: "a|b|", TS: -7}, true},
		{"1700000000000|0|x", recommend.Consumed{ItemID: "x", TS: 1700000000000}, true},
		{"", recommend.Consumed{}, false},
		{"1|1|", recommend.Consumed{}, false},
		{"1|3|a", recommend.Consumed{}, false},
		{"a|1|a", recommend.Consumed{}, false},
		{"1|11|a", recommend.Consumed{}, false},
		{"1||a", recommend.Consumed{}, false},
	}
	for _, tc := range cases {
		got, ok := parseEntry(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseEntry(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok {
			if back := string(appendEntry(nil, got)); back != tc.in {
				t.Errorf("appendEntry(parseEntry(%q)) = %q", tc.in, back)
			}
		}
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	if v, items, err := s.LoadItems(ctx); err != nil || v != 0 || len(items) != 0 {
		t.Fatalf("empty catalog: %v %v %v", v, items, err)
	}
	emb := []float32{0.5, -1.25, 3e-9, 7}
	v, err := s.PutItems(ctx, []catalog.Item{
		{ID: "b", Categories: []string{"drama", "sci fi"}, Embedding: emb, Popularity: 0.1},
		{ID: "a|1", Categories: nil, Popularity: 3},
	})
	if err != nil || v != 1 {
		t.Fatalf("PutItems = %d, %v; want version 1", v, err)
	}
	got, ok, err := s.GetItem(ctx, "b")
	if err != nil || !ok {
		t.Fatalf("GetItem: %v %v", ok, err)
	}
	if want := (catalog.Item{ID: "b", Categories: []string{"drama", "sci fi"}, Embedding: emb, Popularity: 0.1}); !reflect.DeepEqual(got, want) {
		t.Errorf("GetItem = %+v, want %+v", got, want)
	}
	if _, ok, err := s.GetItem(ctx, "missing"); ok || err != nil {
		t.Errorf("GetItem(missing) = %v, %v", ok, err)
	}

	// A bulk upsert across several pipeline batches; "b" loses its embedding.
	var bulk []catalog.Item
	for i := range putBatch + 7 {
		bulk = append(bulk, catalog.Item{ID: fmt.Sprintf("i%04d", i), Categories: []string{"c" + strconv.Itoa(i%3)}, Popularity: float64(i)})
	}
	bulk = append(bulk, catalog.Item{ID: "b", Categories: []string{"drama"}})
	if v, err = s.PutItems(ctx, bulk); err != nil || v != 2 {
		t.Fatalf("bulk PutItems = %d, %v; want version 2", v, err)
	}
	v, items, err := s.LoadItems(ctx)
	if err != nil || v != 2 {
		t.Fatalf("LoadItems = %d, %v", v, err)
	}
	if len(items) != putBatch+7+2 {
		t.Fatalf("LoadItems returned %d items", len(items))
	}
	if !slices.IsSortedFunc(items, func(a, b catalog.Item) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("LoadItems not sorted by id")
	}
	if items[0].ID != "a|1" || items[0].Popularity != 3 || items[0].Categories != nil {
		t.Errorf("items[0] = %+v", items[0])
	}
	if it := items[1]; it.ID != "b" || it.Embedding != nil || !slices.Equal(it.Categories, []string{"drama"}) {
		t.Errorf("b after upsert = %+v", it)
	}
	if n, err := s.ItemCount(ctx); err != nil || n != int64(len(items)) {
		t.Errorf("ItemCount = %d, %v", n, err)
	}
	if cv, err := s.CatalogVersion(ctx); err != nil || cv != 2 {
		t.Errorf("CatalogVersion = %d, %v", cv, err)
	}
	if _, err := catalog.Build(v, catalog.DefaultDim, items); err != nil {
		t.Errorf("snapshot from loaded items: %v", err)
	}

	// Invalid items are rejected before anything is written.
	for _, bad := range []catalog.Item{
		{ID: ""},
		{ID: "x", Categories: []string{"a\x1fb"}},
		{ID: "y", Popularity: -1},
	} {
		_, err := s.PutItems(ctx, []catalog.Item{{ID: "ok"}, bad})
		var fe *catalog.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("PutItems(%+v) error = %v, want a FieldError", bad, err)
		}
	}
	if _, ok, _ := s.GetItem(ctx, "ok"); ok {
		t.Error("an invalid batch was partly written")
	}
	if cv, _ := s.CatalogVersion(ctx); cv != 2 {
		t.Errorf("version after rejected batches = %d", cv)
	}
	if v, err := s.PutItems(ctx, nil); err != nil || v != 2 {
		t.Errorf("PutItems(nil) = %d, %v", v, err)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	if _, err := s.GetModel(ctx, "control"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetModel before put: %v, want ErrNotFound", err)
	}
	data := []byte{0, 1, 2, 0xff, '\n', 0}
	if err := s.PutModel(ctx, "control", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetModel(ctx, "control")
	if err != nil || !slices.Equal(got, data) {
		t.Errorf("GetModel = %v, %v; want %v", got, err, data)
	}
	if _, err := s.GetModel(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetModel(other): %v, want ErrNotFound", err)
	}
	if err := s.PutModel(ctx, "", data); err == nil {
		t.Error("PutModel with empty variant: want error")
	}
}

func recv(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, want %q", want)
		}
		if got != want {
			t.Fatalf("got message %q, want %q", got, want)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no message, want %q", want)
	}
}

func waitClosed(t *testing.T, ch <-chan string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("subscription channel not closed after cancel")
		}
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cat, err := s.Subscribe(ctx, CatalogUpdates)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := s.Subscribe(ctx, ModelUpdates)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutItems(ctx, []catalog.Item{{ID: "a", Categories: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	recv(t, cat, "1")
	if err := s.PutModel(ctx, "treatment", []byte("m")); err != nil {
		t.Fatal(err)
	}
	recv(t, mod, "treatment")
	if _, err := s.PutItems(ctx, []catalog.Item{{ID: "b"}}); err != nil {
		t.Fatal(err)
	}
	recv(t, cat, "2")
	cancel()
	waitClosed(t, cat)
	waitClosed(t, mod)
}

// TestSubscribeReconnects stops and restarts the server under a
// subscription: the subscriber must be told to resync and keep receiving.
func TestSubscribeReconnects(t *testing.T) {
	t.Parallel()
	mr, client := redistest.Miniredis(t)
	s := NewStore(client, Options{Prefix: "p:"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := s.Subscribe(ctx, ModelUpdates)
	if err != nil {
		t.Fatal(err)
	}
	mr.Close()
	if _, err := s.Subscribe(ctx, ModelUpdates); err == nil {
		t.Error("Subscribe with the server down: want error")
	}
	time.Sleep(200 * time.Millisecond)
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, Resync)
	if err := s.PutModel(ctx, "v", []byte("x")); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, "v")
	cancel()
	waitClosed(t, ch)
}

// seedBenchUser stores a user with a full history, statistics, a session
// with category counters and shown items.
func seedBenchUser(b *testing.B, s *Store) {
	st := recommend.UserState{
		UserID: "bench",
		Stats:  recommend.Stats{Clicks: 500, NovelClicks: 120, FamiliarClicks: 380, Skips: 90, Sessions: 40, LastTS: 1_700_000_000_000},
		Session: recommend.Session{
			ID: "s", Start: 1_700_000_000_000, Last: 1_700_000_060_000, Clicks: 6, Skips: 2, NovelClicks: 2, NovelEWMA: 0.37,
			CategoryClicks: map[string]int64{"drama": 3, "comedy": 2, "horror": 1, "western": 1},
		},
	}
	for i := range recommend.DefaultHistory {
		st.History = append(st.History, recommend.Consumed{ItemID: "item-" + strconv.Itoa(10000+i), TS: 1_700_000_000_000 - int64(i)*60_000, Novel: i%7 == 0})
	}
	// A long session: 27 slates of 10 (297 entries, the most ShownMax
	// keeps of them).
	for r := range 27 {
		ids := make([]string, 10)
		for i := range ids {
			ids[i] = "item-" + strconv.Itoa(20000+10*r+i)
		}
		st.Session.Shown = append(st.Session.Shown, recommend.ShownRecord("req-"+strconv.Itoa(r), ids)...)
	}
	if err := s.Save(b.Context(), st); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLoad measures the per-request read of recsvc against the
// configured Redis (REDIS_ADDR, or miniredis).
func BenchmarkLoad(b *testing.B) {
	s, _ := newStore(b, Options{})
	seedBenchUser(b, s)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		st, err := s.Load(ctx, "bench", "s")
		if err != nil {
			b.Fatal(err)
		}
		if len(st.History) != recommend.DefaultHistory {
			b.Fatalf("history of %d", len(st.History))
		}
	}
}

// BenchmarkLoadParallel measures Load throughput from many goroutines
// sharing the client's connection pool, as recsvc's handlers do.
func BenchmarkLoadParallel(b *testing.B) {
	s, _ := newStore(b, Options{})
	seedBenchUser(b, s)
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Load(ctx, "bench", "s"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkApplyFeedback measures the feature updater's step per event.
func BenchmarkApplyFeedback(b *testing.B) {
	s, _ := newStore(b, Options{})
	seedBenchUser(b, s)
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(1000, 1))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		fb := recommend.Feedback{UserID: "bench", SessionID: "s", ItemID: "item-" + strconv.Itoa(i%1000), Type: recommend.Click, TS: 1_700_000_060_000 + int64(i)}
		if _, _, err := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, "ev-"+strconv.Itoa(i), fb); err != nil {
			b.Fatal(err)
		}
	}
}

// freezer is a TCP proxy whose existing connections can be frozen: they stay
// open but carry nothing, like a connection to a host that vanished.
type freezer struct {
	ln      net.Listener
	mu      sync.Mutex
	flags   []*frozenFlag
	sockets []net.Conn
}

type frozenFlag struct{ atomic.Bool }

func newFreezer(t *testing.T, upstream string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.sockets {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			flag := &frozenFlag{}
			f.mu.Lock()
			f.flags = append(f.flags, flag)
			f.sockets = append(f.sockets, c, u)
			f.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 4096)
				for {
					n, err := src.Read(buf)
					if err != nil {
						dst.Close()
						return
					}
					if !flag.Load() {
						dst.Write(buf[:n])
					}
				}
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return f
}

func (f *freezer) freezeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.flags {
		c.Store(true)
	}
}

// TestSubscribeDetectsDeadConnection freezes the subscription's connection:
// the pings go unanswered, so the subscriber must reconnect by itself, tell
// the receiver to resync and keep receiving.
func TestSubscribeDetectsDeadConnection(t *testing.T) {
	t.Parallel()
	mr, direct := redistest.Miniredis(t)
	proxy := newFreezer(t, mr.Addr())
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String()})
	t.Cleanup(func() { viaProxy.Close() })
	sub := NewStore(viaProxy, Options{Prefix: "p:"})
	sub.pingEvery = 100 * time.Millisecond
	pub := NewStore(direct, Options{Prefix: "p:"})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := sub.Subscribe(ctx, ModelUpdates)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PutModel(ctx, "v1", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, "v1")
	proxy.freezeAll()
	recv(t, ch, Resync)
	if err := pub.PutModel(ctx, "v2", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, "v2")
	cancel()
	waitClosed(t, ch)
}

// The feature updater reads what recsvc recorded as shown, so a click's
// slate position and the items above it count as mode evidence.
func TestApplyFeedbackReadsTheShownSlate(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	snap := testSnapshot(t)
	ctx := t.Context()
	if err := s.Save(ctx, recommend.UserState{UserID: "u", History: []recommend.Consumed{{ItemID: "d", TS: 1}}}); err != nil {
		t.Fatal(err)
	}
	slate := []string{"c", "a", "b", "e"}
	if err := s.RecordShown(ctx, "u", "s", recommend.ShownRecord("r1", slate)); err != nil {
		t.Fatal(err)
	}
	fb := recommend.Feedback{UserID: "u", SessionID: "s", ItemID: "b", Type: recommend.Click, TS: 100}
	if _, applied, err := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, "e1", fb); err != nil || !applied {
		t.Fatalf("apply: %v %v", applied, err)
	}
	st, err := s.Load(ctx, "u", "s")
	if err != nil {
		t.Fatal(err)
	}
	// The same event applied in memory to the same state.
	mirror := recommend.UserState{UserID: "u", History: []recommend.Consumed{{ItemID: "d", TS: 1}},
		Session: recommend.Session{ID: "s", Shown: recommend.ShownRecord("r1", slate)}}
	recommend.Observe(&mirror, snap, fb, 0, intent.ModeModel{})
	if st.Stats.ModeSession != "s" || st.Stats.ModeAccounted != 4 || st.Stats.ModeEvidence != mirror.Stats.ModeEvidence || st.Stats.ModeChain != mirror.Stats.ModeChain {
		t.Fatalf("stored mode evidence %q/%d/%v, want s/4/%v", st.Stats.ModeSession, st.Stats.ModeAccounted, st.Stats.ModeEvidence, mirror.Stats.ModeEvidence)
	}
	if !slices.Equal(st.Session.Shown, recommend.ShownRecord("r1", slate)) {
		t.Fatalf("shown %q", st.Session.Shown)
	}
}

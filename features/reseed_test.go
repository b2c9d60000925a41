package features

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// memLog is an in-memory ItemLog; fail makes Append fail.
type memLog struct {
	mu    sync.Mutex
	items map[string]catalog.Item
	fail  error
}

func (l *memLog) Append(_ context.Context, items []catalog.Item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	if l.items == nil {
		l.items = map[string]catalog.Item{}
	}
	for _, it := range items {
		l.items[it.ID] = it
	}
	return nil
}

func (l *memLog) Items(context.Context) ([]catalog.Item, int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]catalog.Item, 0, len(l.items))
	for _, it := range l.items {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b catalog.Item) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out, 0, nil
}

func sampleItems(n int) []catalog.Item {
	items := make([]catalog.Item, n)
	for i := range items {
		items[i] = catalog.Item{ID: fmt.Sprintf("item-%04d", i), Categories: []string{fmt.Sprint("c", i%5)}, Popularity: float64(i)}
		if i%3 == 0 {
			items[i].Embedding = []float32{float32(i), 1, 0, -1}
		}
	}
	return items
}

// loseRedis deletes everything under the test's prefix, as an emptied Redis
// looks to this deployment.
func loseRedis(t *testing.T, s *Store) {
	t.Helper()
	if err := redistest.DeletePrefix(t.Context(), s.rdb, s.prefix); err != nil {
		t.Fatal(err)
	}
}

func TestCatalogKeeperReseeds(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	log := &memLog{}
	serving := uint64(0)
	k := NewCatalogKeeper(s, log, func() uint64 { return serving }, nil, nil)
	items := sampleItems(putBatch + 30)
	v, err := k.PutItems(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := log.Items(ctx); len(got) != len(items) {
		t.Fatalf("the log holds %d items, want %d", len(got), len(items))
	}
	if n, err := k.Check(ctx); n != 0 || err != nil {
		t.Fatalf("Check with the catalog in Redis: %d, %v", n, err)
	}

	serving = v + 5 // a replica that had seen more versions
	loseRedis(t, s)
	n, err := k.Check(ctx)
	if err != nil || n != len(items) {
		t.Fatalf("Check after Redis lost the catalog: %d, %v; want %d items restored", n, err, len(items))
	}
	v2, got, err := s.LoadItems(ctx)
	if err != nil || !reflect.DeepEqual(got, items) {
		t.Fatalf("restored catalog differs (%v): %d items", err, len(got))
	}
	if v2 <= serving {
		t.Errorf("restored catalog version %d, want above the served %d so every replica swaps it in", v2, serving)
	}
	if n, _ := k.Check(ctx); n != 0 {
		t.Errorf("a second Check re-seeded %d items again", n)
	}
}

// A re-seed never overwrites an item written meanwhile, and waits for the
// replica that holds the lock.
func TestCatalogKeeperRestoreKeepsNewerWrites(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	items := sampleItems(10)
	newer := catalog.Item{ID: items[3].ID, Categories: []string{"newer"}, Popularity: 99}
	if err := s.rdb.HSet(ctx, s.itemKey(newer.ID), itemFields(&newer)...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, n, err := s.restoreItems(ctx, items, 0); err != nil || n != len(items)-1 {
		t.Fatalf("restoreItems wrote %d, %v; want all but the newer one", n, err)
	}
	if got, _, _ := s.GetItem(ctx, newer.ID); !reflect.DeepEqual(got, newer) {
		t.Errorf("the newer item was overwritten: %+v", got)
	}

	loseRedis(t, s)
	log := &memLog{}
	_ = log.Append(ctx, items)
	k := NewCatalogKeeper(s, log, nil, nil, nil)
	release, ok, err := s.lock(ctx, s.prefix+"catalog:reseeding", 0)
	if err != nil || !ok {
		t.Fatal("could not take the lock", err)
	}
	if n, err := k.Check(ctx); n != 0 || err != nil {
		t.Errorf("Check while another replica re-seeds: %d, %v; want it to leave it to that one", n, err)
	}
	release()
	if n, err := k.Check(ctx); n != len(items) || err != nil {
		t.Errorf("Check once the lock is free: %d, %v", n, err)
	}
}

func TestCatalogKeeperSyncAndFailures(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	items := sampleItems(20)
	// A deployment from before the log: the catalog only in Redis.
	if _, err := s.PutItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	k := NewCatalogKeeper(s, log, nil, nil, nil)
	if err := k.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := log.Items(ctx); !reflect.DeepEqual(got, items) {
		t.Fatalf("Sync copied %d items into the log, want %d", len(got), len(items))
	}
	// A log that cannot take the items means Redis is not written either.
	log.fail = errors.New("broker gone")
	extra := []catalog.Item{{ID: "extra", Categories: []string{"x"}}}
	if _, err := k.PutItems(ctx, extra); !errors.Is(err, log.fail) {
		t.Fatalf("PutItems with the log down: %v", err)
	}
	if _, ok, _ := s.GetItem(ctx, "extra"); ok {
		t.Error("an item the log refused was written to Redis")
	}
	// Invalid items are refused before either is written.
	log.fail = nil
	var fe *catalog.FieldError
	if _, err := k.PutItems(ctx, []catalog.Item{{ID: ""}}); !errors.As(err, &fe) {
		t.Errorf("invalid item: %v", err)
	}
}

// SaveRebuilt leaves a de-duplication set that makes the feature updater
// skip the events the rebuild applied.
func TestSaveRebuilt(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	snap := testSnapshot(t)
	st := recommend.UserState{UserID: "u"}
	var applied []AppliedEvent
	for i, item := range []string{"a", "c", "e"} {
		fb := recommend.Feedback{UserID: "u", ItemID: item, Type: recommend.Click, TS: int64(1_700_000_000_000 + i*1000)}
		recommend.Observe(&st, snap, fb, 0, intent.ModeModel{})
		applied = append(applied, AppliedEvent{ID: fmt.Sprint("ev-", i), TS: fb.TS})
	}
	if err := s.SaveRebuilt(ctx, st, applied); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "u", st.Session.ID)
	if err != nil || got.Stats.Clicks != 3 || len(got.History) != 3 {
		t.Fatalf("rebuilt state: %+v, %v", got.Stats, err)
	}
	_, ok, err := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, "ev-2", recommend.Feedback{UserID: "u", ItemID: "e", Type: recommend.Click, TS: 1_700_000_002_000})
	if err != nil || ok {
		t.Errorf("an event the rebuild applied was applied again (%v, %v)", ok, err)
	}
	if _, ok, _ := s.ApplyFeedback(ctx, snap, intent.ModeModel{}, "ev-3", recommend.Feedback{UserID: "u", ItemID: "b", Type: recommend.Click, TS: 1_700_000_003_000}); !ok {
		t.Error("a new event was not applied")
	}
}

package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/recommend"
)

// shownAtWrite is an event log that notes, when feedback is written, what
// Redis holds as shown in the session: what the feature updater will read.
type shownAtWrite struct {
	publisher
	store *features.Store
	seen  []string
}

func (w *shownAtWrite) Write(ctx context.Context, topic, key string, value []byte) error {
	st, err := w.store.Load(ctx, "u", "s")
	if err != nil {
		return err
	}
	w.seen = st.Session.Shown
	return w.publisher.Write(ctx, topic, key, value)
}

// serveWithShown rebuilds f's server with the batched shown writer and
// the feedback log given.
func (f *fixture) serveWithShown(shown *features.ShownWriter, feedback EventLog) {
	f.srv = New(Config{
		Store: f.flaky, Events: f.pub, Feedback: feedback, Shown: shown, Catalog: fixedCatalog{f.snap},
		Models: fixedModel{recommend.DefaultModel()}, Engine: recommend.NewEngine(recommend.Config{}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: time.Second,
	})
}

// A click sent right after the answer must not overtake its slate: the
// batched shown writer has not flushed (it is not even running here), and
// the feedback handler writes the session's slate before the event.
func TestFeedbackWritesItsSlateFirst(t *testing.T) {
	f := newFixture(t)
	shown := features.NewShownWriter(f.store, nil)
	log := &shownAtWrite{store: f.store}
	f.serveWithShown(shown, log)
	r := f.recommend(t, `{"user_id":"u","session_id":"s","k":5}`)
	ids := make([]string, len(r.Items))
	for i, it := range r.Items {
		ids[i] = it.ItemID
	}
	if got := shown.Pending("u", "s"); !slices.Equal(got, recommend.ShownRecord(r.RequestID, ids)) {
		t.Fatalf("pending before the click: %q", got)
	}
	body := fmt.Sprintf(`{"request_id":%q,"user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, r.RequestID, ids[2])
	if code, b := f.do(t, "POST", "/v1/feedback", body); code != 202 {
		t.Fatalf("feedback: %d %s", code, b)
	}
	if !slices.Equal(log.seen, recommend.ShownRecord(r.RequestID, ids)) {
		t.Fatalf("when the click was written Redis held %q as shown, want the slate %q", log.seen, recommend.ShownRecord(r.RequestID, ids))
	}
	if got := shown.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after the click: %q", got)
	}
}

// Feedback that does not name its request is joined to the slate that
// showed the item: the latest of the session's slates holding it, whether
// that slate is already in Redis or still pending in the shown writer.
// Without it the trainer cannot attribute the click and learns nothing
// from a client that sends only user, item and type.
func TestFeedbackWithoutRequestIDFindsItsSlate(t *testing.T) {
	f := newFixture(t)
	shown := features.NewShownWriter(f.store, nil)
	f.serveWithShown(shown, f.pub)
	first := f.recommend(t, `{"user_id":"u","session_id":"s","k":5}`)
	if err := shown.Flush(t.Context(), "u", "s"); err != nil { // the first slate in Redis, the second pending
		t.Fatal(err)
	}
	second := f.recommend(t, `{"user_id":"u","session_id":"s","k":5}`)
	unshown := ""
	for i := range f.snap.Len() {
		id := f.snap.Item(int32(i)).ID
		if !slices.ContainsFunc(append(first.Items, second.Items...), func(it ItemOut) bool { return it.ItemID == id }) {
			unshown = id
			break
		}
	}
	tests := []struct {
		name, body, want string
	}{
		{"an item of the slate in Redis", fmt.Sprintf(`{"user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, first.Items[1].ItemID), first.RequestID},
		{"an item of the pending slate", fmt.Sprintf(`{"user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, second.Items[0].ItemID), second.RequestID},
		{"a request id the client sent is kept", fmt.Sprintf(`{"request_id":"mine","user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, first.Items[1].ItemID), "mine"},
		{"an item no slate showed", fmt.Sprintf(`{"user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, unshown), ""},
		{"another session's slate is not this one's", fmt.Sprintf(`{"user_id":"u","session_id":"t","item_id":%q,"type":"click"}`, first.Items[1].ItemID), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, b := f.do(t, "POST", "/v1/feedback", tc.body); code != 202 {
				t.Fatalf("feedback: %d %s", code, b)
			}
			f.pub.mu.Lock()
			msgs := f.pub.msgs[events.TopicFeedback]
			last := msgs[len(msgs)-1]
			f.pub.mu.Unlock()
			ev, err := events.DecodeFeedback(last)
			if err != nil {
				t.Fatal(err)
			}
			if ev.RequestID != tc.want {
				t.Fatalf("request id %q, want %q", ev.RequestID, tc.want)
			}
		})
	}
}

// A slate goes to the shown writer's queue when it has room and is written
// to Redis before the answer when it has none (Redis slow or down).
func TestRecommendQueuesOrWritesItsSlate(t *testing.T) {
	tests := []struct {
		name       string
		maxPending int
		queued     bool
	}{
		{"room in the queue", 50000, true},
		{"queue full", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			shown := features.NewShownWriter(f.store, nil) // Run is not started: nothing flushes
			shown.MaxPending = tc.maxPending
			f.serveWithShown(shown, f.pub)
			r := f.recommend(t, `{"user_id":"u","session_id":"s","k":5}`)
			ids := make([]string, len(r.Items))
			for i, it := range r.Items {
				ids[i] = it.ItemID
			}
			slate := recommend.ShownRecord(r.RequestID, ids)
			st, err := f.store.Load(t.Context(), "u", "s")
			if err != nil {
				t.Fatal(err)
			}
			wantPending, wantStored := slate, []string(nil)
			if !tc.queued {
				wantPending, wantStored = nil, slate
			}
			if got := shown.Pending("u", "s"); !slices.Equal(got, wantPending) {
				t.Errorf("pending %q, want %q", got, wantPending)
			}
			if got := st.Session.Shown; !slices.Equal(got, wantStored) {
				t.Errorf("in Redis %q, want %q", got, wantStored)
			}
		})
	}
}

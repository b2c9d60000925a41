package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

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

// A click sent right after the answer must not overtake its slate: the
// batched shown writer has not flushed (it is not even running here), and
// the feedback handler writes the session's slate before the event.
func TestFeedbackWritesItsSlateFirst(t *testing.T) {
	f := newFixture(t)
	shown := features.NewShownWriter(f.store, nil)
	log := &shownAtWrite{store: f.store}
	f.srv = New(Config{
		Store: f.flaky, Events: f.pub, Feedback: log, Shown: shown, Catalog: fixedCatalog{f.snap},
		Models: fixedModel{recommend.DefaultModel()}, Engine: recommend.NewEngine(recommend.Config{}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: time.Second,
	})
	r := f.recommend(t, `{"user_id":"u","session_id":"s","k":5}`)
	ids := make([]string, len(r.Items))
	for i, it := range r.Items {
		ids[i] = it.ItemID
	}
	if got := shown.Pending("u", "s"); !slices.Equal(got, recommend.ShownRecord(ids)) {
		t.Fatalf("pending before the click: %q", got)
	}
	body := fmt.Sprintf(`{"request_id":%q,"user_id":"u","session_id":"s","item_id":%q,"type":"click"}`, r.RequestID, ids[2])
	if code, b := f.do(t, "POST", "/v1/feedback", body); code != 202 {
		t.Fatalf("feedback: %d %s", code, b)
	}
	if !slices.Equal(log.seen, recommend.ShownRecord(ids)) {
		t.Fatalf("when the click was written Redis held %q as shown, want the slate %q", log.seen, recommend.ShownRecord(ids))
	}
	if got := shown.Pending("u", "s"); got != nil {
		t.Fatalf("still pending after the click: %q", got)
	}
}

package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// FuzzHandlers feeds a stream of messages (one per line) to what consumes
// the topics: every line the strict decoders accept goes to the learning
// core (Impression, Feedback) and, for feedback, through the feature
// updater into Redis (an in-process server); lines they reject must be
// poison to the updater. No input may panic, stop the model from being
// published or checkpointed, or leave user state that cannot be served.
//
//	go test -run '^$' -fuzz '^FuzzHandlers$' -fuzztime 10s ./trainer
func FuzzHandlers(f *testing.F) {
	cat := testCatalog(f, 200)
	snap := cat.s
	items := itemIDs(snap, 0, 6)
	line := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	imp1 := impression(snap, "r1", "u1", "s1", t0, 2, items...)
	imp2 := impression(snap, "r2", "u1", "s1", t0+5000, 4, items[3:]...)
	cold := impression(snap, "r3", "u2", "", t0, 0, items[:2]...)
	cold.Taste, cold.Intent.State = nil, nil
	rating := feedback("f3", "r2", "u1", items[4], t0+6000, events.FeedbackRating)
	rating.Value = 4.5
	for _, seed := range []string{
		line(imp1) + "\n" + line(feedback("f1", "r1", "u1", items[1], t0+1000, events.FeedbackClick)),
		line(imp1) + "\n" + line(feedback("f1", "r1", "u1", items[1], t0+1000, events.FeedbackClick)) + "\n" + line(imp2) + "\n" + line(rating) + "\n" +
			line(feedback("f4", "r2", "u1", items[5], t0+7000, events.FeedbackSkip)),
		line(feedback("f2", "r9", "u1", items[0], t0, events.FeedbackView)) + "\n" + line(imp1),
		line(cold) + "\n" + line(feedback("f5", "r3", "u2", items[1], t0+10, events.FeedbackClick)),
		line(imp1) + "\n" + line(imp1) + "\n" + line(feedback("f1", "r1", "u1", items[1], t0+1000, events.FeedbackClick)) + "\n" +
			line(feedback("f1", "r1", "u1", items[1], t0+1000, events.FeedbackClick)),
		`{"schema":1,"event_id":"e","user_id":"u","item_id":"` + items[0] + `","type":"click","ts":9223372036854775807}`,
		`{"schema":1,"event_id":"e","request_id":"r","user_id":"u","items":[{"item_id":"x","propensity":1e308,"features":[1e4,-1e4,0]}],"ts":-9223372036854775808}`,
		``, `{}`, `{"schema":2}`, `not json`, "{\"schema\":1}\n\n[]",
	} {
		f.Add([]byte(seed))
	}

	mr, client := redistest.Miniredis(f)
	store := features.NewStore(client, features.Options{Prefix: "fz:"})
	up := &FeatureUpdater{Store: store, Catalog: cat}
	eng := recommend.NewEngine(recommend.Config{})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		// A hang is a finding too: crash the worker so the input is saved.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzHandlers: one input took over 10s: %q", b)) })
		defer watchdog.Stop()
		mr.FlushAll()
		c, err := NewCore(DefaultConfig(), nil, cat)
		if err != nil {
			t.Fatal(err)
		}
		type userSession struct{ user, session string }
		users := map[userSession]bool{}
		lines := bytes.Split(b, []byte("\n"))
		if len(lines) > 32 {
			lines = lines[:32]
		}
		for _, l := range lines {
			if im, err := events.DecodeImpression(l); err == nil {
				c.Impression(im)
			}
			fb, err := events.DecodeFeedback(l)
			herr := up.Handle(ctx, kafka.Message{Topic: events.TopicFeedback, Value: l})
			if err != nil {
				if !errors.Is(herr, events.ErrPoison) {
					t.Fatalf("undecodable feedback %q: updater returned %v, want poison", l, herr)
				}
				continue
			}
			if herr != nil {
				t.Fatalf("feedback %q decodes but the updater failed: %v", l, herr)
			}
			c.Feedback(fb)
			users[userSession{fb.UserID, fb.SessionID}] = true
		}

		// The model stays publishable and the state restorable.
		m, meta, _ := c.Snapshot(t0)
		mb, err := recommend.EncodeModel(m, meta)
		if err != nil {
			t.Fatalf("model cannot be published after %q: %v", b, err)
		}
		if _, _, err := recommend.DecodeModel(mb); err != nil {
			t.Fatalf("published model does not decode after %q: %v", b, err)
		}
		ck, err := c.EncodeCheckpoint()
		if err != nil {
			t.Fatalf("checkpoint fails after %q: %v", b, err)
		}
		if _, err := DecodeCheckpoint(DefaultConfig(), ck, cat); err != nil {
			t.Fatalf("checkpoint does not restore after %q: %v", b, err)
		}

		// The user state the updater wrote can be served with that model.
		for us := range users {
			st, err := store.Load(ctx, us.user, us.session)
			if err != nil {
				t.Fatalf("load %+v after %q: %v", us, b, err)
			}
			d, err := eng.Decide(recommend.Request{K: 10, Now: t0 + 60_000, Deterministic: true}, &st, snap, m, nil)
			if err != nil {
				t.Fatalf("recommend for %+v after %q: %v", us, b, err)
			}
			if len(d.Items) == 0 {
				t.Fatalf("empty slate for %+v after %q", us, b)
			}
			for _, it := range d.Items {
				if math.IsNaN(it.Score) || math.IsInf(it.Score, 0) || !(it.Propensity > 0 && it.Propensity <= 1) {
					t.Fatalf("recommend for %+v after %q: item %+v", us, b, it)
				}
			}
			for _, p := range d.Intent.Probabilities {
				if math.IsNaN(p) {
					t.Fatalf("recommend for %+v after %q: intent %+v", us, b, d.Intent)
				}
			}
		}
	})
}

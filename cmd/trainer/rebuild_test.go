package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/trainer"
)

// TestRebuild loses everything in Redis and rebuilds it with `trainer
// rebuild` from rec.catalog and rec.feedback: the catalog comes back, and
// every user's history and statistics equal those the feature updater had
// built from the same events, duplicates applied once.
func TestRebuild(t *testing.T) {
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	redisAddr := os.Getenv(redistest.EnvAddr)
	if redisAddr == "" {
		redisAddr = client.(*redis.Client).Options().Addr
	}
	store := features.NewStore(client, features.Options{Prefix: prefix})
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger()})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	ctx := t.Context()
	items := catalog.Sample(200, 3)
	keeper := features.NewCatalogKeeper(store, events.NewCatalogLog(p, brokers, events.Security{}), nil, testLogger(), nil)
	if _, err := keeper.PutItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.Build(1, catalog.DefaultDim, items)
	if err != nil {
		t.Fatal(err)
	}

	// The feedback, as the feature updater applies it (the reference).
	rng := rand.New(rand.NewPCG(3, 4))
	up := &trainer.FeatureUpdater{Store: store, Catalog: fixedSnapshot{snap}}
	var msgs []kafka.Message
	users := map[string]bool{}
	for i := range 400 {
		user := fmt.Sprint("user-", rng.IntN(25))
		users[user] = true
		typ := []string{"click", "click", "skip", "view"}[rng.IntN(4)]
		ev := events.Feedback{Schema: 1, EventID: fmt.Sprint("e", i), UserID: user, SessionID: fmt.Sprint("s", i/100),
			ItemID: items[rng.IntN(len(items))].ID, Type: typ, TS: 1_700_000_000_000 + int64(i)*60_000}
		b, _ := json.Marshal(ev)
		m := kafka.Message{Topic: events.TopicFeedback, Key: []byte(user), Value: b}
		msgs = append(msgs, m)
		if i%9 == 0 {
			msgs = append(msgs, m) // delivered twice
		}
	}
	msgs = append(msgs, kafka.Message{Topic: events.TopicFeedback, Key: []byte("x"), Value: []byte("not json")})
	if err := p.ProduceMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[:len(msgs)-1] {
		if err := up.Handle(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]any{}
	for u := range users {
		st, err := store.Load(ctx, u, "")
		if err != nil {
			t.Fatal(err)
		}
		want[u] = []any{st.History, st.Stats}
	}

	if err := redistest.DeletePrefix(ctx, client, prefix); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	args := []string{"-redis", redisAddr, "-kafka", strings.Join(brokers, ","), "-prefix", prefix}
	if err := rebuildMain(ctx, append(args, "-dry-run"), &out); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.ItemCount(ctx); n != 0 {
		t.Fatalf("-dry-run wrote %d items", n)
	}
	out.Reset()
	if err := rebuildMain(ctx, args, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("trainer rebuild: %s", out.String())
	if !strings.Contains(out.String(), "re-seeded 200 items") || !strings.Contains(out.String(), fmt.Sprintf("the state of %d users", len(users))) ||
		!strings.Contains(out.String(), "45 duplicates, 1 undecodable") {
		t.Errorf("unexpected summary: %s", out.String())
	}
	if _, got, err := store.LoadItems(ctx); err != nil || len(got) != len(items) {
		t.Fatalf("catalog after rebuild: %d items, %v", len(got), err)
	}
	for u := range users {
		st, err := store.Load(ctx, u, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := []any{st.History, st.Stats}; !reflect.DeepEqual(got, want[u]) {
			t.Errorf("user %s rebuilt as %+v, the feature updater had %+v", u, got, want[u])
		}
	}
	// The feature updater, resuming, skips what the rebuild applied.
	if err := up.Handle(ctx, msgs[len(msgs)-2]); err != nil {
		t.Fatal(err)
	}
	var last events.Feedback
	_ = json.Unmarshal(msgs[len(msgs)-2].Value, &last)
	if st, _ := store.Load(ctx, last.UserID, ""); !reflect.DeepEqual([]any{st.History, st.Stats}, want[last.UserID]) {
		t.Error("an event the rebuild applied was applied again")
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixedSnapshot struct{ s *catalog.Snapshot }

func (f fixedSnapshot) Current() *catalog.Snapshot { return f.s }

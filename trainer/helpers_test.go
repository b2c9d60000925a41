package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
)

// fixedCatalog serves one snapshot.
type fixedCatalog struct{ s *catalog.Snapshot }

func (f fixedCatalog) Current() *catalog.Snapshot { return f.s }

func testCatalog(t testing.TB, n int) fixedCatalog {
	t.Helper()
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(n, 7))
	if err != nil {
		t.Fatal(err)
	}
	return fixedCatalog{snap}
}

// t0 is the event time tests start at (Unix ms).
const t0 = int64(1_700_000_000_000)

// impression builds a learnable impression of the given items at ts.
func impression(snap *catalog.Snapshot, rid, user, session string, ts int64, level int, items ...string) events.Impression {
	state := make([]float64, intent.Dim)
	for i := range state {
		state[i] = 0.1 * float64(i%4)
	}
	var taste []float32
	if i, ok := snap.Index(items[0]); ok {
		taste = append(taste, snap.Embedding(i)...)
	}
	ev := events.Impression{
		Schema: events.SchemaVersion, EventID: rid, RequestID: rid, UserID: user, SessionID: session,
		Variant: DefaultVariant, ModelVersion: "prior",
		Intent: events.Intent{Level: level, Probability: 0.2, State: state},
		Taste:  taste,
		TS:     ts,
	}
	for p, id := range items {
		pop := float32(0)
		if i, ok := snap.Index(id); ok {
			pop = snap.PopularityFeature(i)
		}
		ev.Items = append(ev.Items, events.ImpressionItem{
			ItemID: id, Position: p, Score: 1, Propensity: 0.2, Novelty: float64(p % 2), Novel: p%2 == 1,
			Features: []float64{0.3, 0, float64(pop)},
		})
	}
	return ev
}

func feedback(eid, rid, user, item string, ts int64, typ string) events.Feedback {
	return events.Feedback{
		Schema: events.SchemaVersion, EventID: eid, RequestID: rid, UserID: user, ItemID: item,
		Type: typ, TS: ts, Variant: DefaultVariant,
	}
}

func itemIDs(snap *catalog.Snapshot, from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = snap.Item(int32((from + i) % snap.Len())).ID
	}
	return ids
}

// stream is a synthetic traffic log: per user, sessions of impressions,
// each followed (in event time) by clicks on some of its items. Clicked
// items are drawn from a per-user "liked" subset so the model has a
// direction to move in.
type stream struct {
	imps   []events.Impression
	clicks []events.Feedback
	// clicked counts clicks per item.
	clicked map[string]int
}

func genStream(snap *catalog.Snapshot, users, perUser int, seed uint64) stream {
	rng := rand.New(rand.NewPCG(seed, 99))
	st := stream{clicked: map[string]int{}}
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		ts := t0 + int64(u)*7
		for k := range perUser {
			rid := fmt.Sprintf("r-%d-%d", u, k)
			items := itemIDs(snap, rng.IntN(snap.Len()), 8)
			imp := impression(snap, rid, user, fmt.Sprintf("s-%d", k/5), ts, rng.IntN(5), items...)
			st.imps = append(st.imps, imp)
			if rng.Float64() < 0.7 {
				item := items[rng.IntN(3)]
				st.clicks = append(st.clicks, feedback("f-"+rid, rid, user, item, ts+500, events.FeedbackClick))
				st.clicked[item]++
			}
			ts += 2000
		}
	}
	return st
}

// consumerlessReplica is a partitioned trainer on store whose replica
// state is loaded but that runs no consumer: tests and benchmarks feed its
// partitions (feedPartition) and call commitReplica themselves.
func consumerlessReplica(tb testing.TB, store *features.Store, cat fixedCatalog) *Trainer {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Brokers = []string{"unused:9092"} // no consumer runs
	cfg.Partitioned = true
	tr, err := New(cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	if tr.rep, err = tr.readShared(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tr.stop = func() {}
	return tr
}

// feedPartition gives partition p of a consumerless replica n impressions
// of 10 items from the catalog's run at *next, each clicked once.
func feedPartition(tb testing.TB, tr *Trainer, cat fixedCatalog, p, n int, next *int) {
	tb.Helper()
	c, err := tr.partCore(context.Background(), p)
	if err != nil {
		tb.Fatal(err)
	}
	for range n {
		rid := fmt.Sprintf("p%d-r-%d", p, *next)
		ev := impression(cat.s, rid, fmt.Sprintf("p%d-user-%d", p, *next%1000), "s", t0+int64(*next), *next%5, itemIDs(cat.s, 10*(*next), 10)...)
		c.Impression(ev)
		c.Feedback(feedback("f-"+rid, rid, ev.UserID, ev.Items[1].ItemID, ev.TS+1, events.FeedbackClick))
		*next++
	}
}

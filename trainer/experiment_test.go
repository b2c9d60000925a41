package trainer

import (
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

func TestExperimentAggregates(t *testing.T) {
	snap, err := catalog.Build(1, 4, []catalog.Item{
		{ID: "a", Categories: []string{"x"}}, {ID: "b", Categories: []string{"y"}}, {ID: "c", Categories: []string{"x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	slate := func(user, session string, ts int64, ids ...string) *recommend.LoggedSlate {
		s := &recommend.LoggedSlate{UserID: user, SessionID: session, TS: ts}
		for i, id := range ids {
			s.Items = append(s.Items, recommend.LoggedItem{ItemID: id, Position: i, Novelty: float64(i % 2)})
		}
		return s
	}
	const gap = 1000
	var a expAgg
	impress := func(s *recommend.LoggedSlate) {
		ids := make([]string, len(s.Items))
		for i, it := range s.Items {
			ids[i] = it.ItemID
		}
		a.impression(s, recommend.Diversity(snap, ids), true, gap)
	}
	impress(slate("u1", "s1", 0, "a", "b"))    // u1 session 1, ILD 1
	impress(slate("u1", "s1", 500, "a", "c"))  // same session, ILD 0
	impress(slate("u1", "s2", 600, "a", "b"))  // u1 session 2 (new id)
	impress(slate("u1", "s2", 5000, "a", "b")) // u1 session 3 (gap)
	first := slate("u2", "", 0, "b")           // u2 session 1, no ILD pair; 9 items in the history before
	first.State = intent.Prior{}.State(nil, intent.Observations{HistoryLen: 9})
	impress(first)
	s := slate("u2", "", 10, "a", "b")
	impress(s)
	a.click("u2", &s.Items[1], true)  // novel (novelty 1), first click of the slate
	a.click("u2", &s.Items[0], false) // familiar, second click
	// Per user (impressions N, clicked C, clicks K, novel V, pre X):
	// u1 4, 0, 0, 0, 0; u2 2, 1, 2, 1, 9.
	want := experiment.Aggregates{
		Users: 2, ReturningUsers: 1, Impressions: 6,
		ClickedImpressions: 1, Clicks: 2, NovelClicks: 1,
		ILDSum: 1 + 0 + 1 + 1 + 0 + 1, ILDSumSq: 4, ILDN: 6,
		Sessions: 4, SessionsSumSq: 9 + 1,
		PreSum: 9, PreSumSq: 81, UserClicksSumSq: 4, PreClicksSum: 18,
		UserImpressionsSumSq: 16 + 4, UserClickedSumSq: 1, UserClickedImpressionsSum: 2,
		UserNovelSumSq: 1, UserNovelClicksSum: 2,
	}
	if a.Aggregates != want {
		t.Fatalf("aggregates\n got %+v\nwant %+v", a.Aggregates, want)
	}
	// The checkpoint form round-trips.
	back := a.wire().agg()
	if back.Aggregates != want || len(back.Users) != 2 || back.Users["u1"].Sessions != 3 {
		t.Fatalf("round trip: %+v %+v", back.Aggregates, back.Users)
	}
}

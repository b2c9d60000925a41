package recommend

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/internal/cpuclock"
)

// BenchmarkDecide measures one two-level decision (intent, candidates from
// all pools, slate of k=10 with sampling) for a user with a 200-item history
// and 300 consumed items, at catalog sizes below and above the IVF
// threshold, with and without a learned model (50 neighbours per item);
// d=32.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		for _, learned := range []bool{false, true} {
			b.Run(fmt.Sprintf("items=%d/learned=%v", n, learned), func(b *testing.B) {
				benchDecide(b, n, learned)
			})
		}
	}
}

func benchDecide(b *testing.B, n int, learned bool) {
	snap := sampleSnapshot(b, n)
	if learned {
		snap = learnedSnapshot(b, n, 50)
	}
	snap.Prepare() // as the catalog cache does before serving a snapshot
	e := NewEngine(Config{})
	m := DefaultModel()
	hist := historyIn(snap, 200, "action", "adventure", "comedy", "drama", "crime")
	st := UserState{UserID: "u", History: hist, Stats: Stats{Clicks: 200, NovelClicks: 40, FamiliarClicks: 160}, Session: session(4, 2, 0.5)}
	for i := 0; i < 20; i++ {
		st.Session.Shown = append(st.Session.Shown, snap.Item(int32(i)).ID)
	}
	for i := 0; i < 300; i++ {
		st.Consumed.Add(snap.Hash(int32(i * 7 % n)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	cpu0 := cpuclock.Now()
	for b.Loop() {
		if _, err := e.Decide(Request{K: 10, Now: 5}, &st, snap, m, rng); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuclock.Now()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDecideManyUsers is BenchmarkDecide at 100k items with the
// decisions spread over 1,000 users of random 200-item histories, as a
// server sees them: one user's items are no longer in cache when the next
// request comes, so it measures what the memory layout costs, which the
// single user of BenchmarkDecide hides. Each session has been shown 20
// items, or 27 slates of 10 (297 entries with their marks, about what the
// stored list keeps). The histories do not change, so after the first
// 1,000 decisions every user's view comes from the engine's cache (as for
// a returning user without feedback since). The "served" case has the
// users bench/load.sh serves (recsvc -sample-users): 10–100 clicks, most
// among the popular items of two to four favourite categories, all of them
// consumed, and 27 slates of the engine's own shown in a session without
// feedback (setting them up takes 27,000 decisions).
func BenchmarkDecideManyUsers(b *testing.B) {
	const n = 100000
	for _, c := range []struct {
		learned, served bool
		slates          int
	}{{false, false, 0}, {false, false, 27}, {true, false, 0}, {false, true, 27}} {
		learned := c.learned
		name := fmt.Sprintf("items=%d/learned=%v", n, learned)
		if c.served {
			name += "/served"
		}
		if c.slates > 0 {
			name += fmt.Sprintf("/shown=%d", 11*c.slates)
		}
		b.Run(name, func(b *testing.B) {
			snap := sampleSnapshot(b, n)
			if learned {
				snap = learnedSnapshot(b, n, 50)
			}
			snap.Prepare()
			e := NewEngine(Config{})
			m := DefaultModel()
			r := rand.New(rand.NewPCG(7, 8))
			users := make([]UserState, 1000)
			for u := range users {
				st := &users[u]
				st.UserID = fmt.Sprint("u", u)
				st.Stats = Stats{Clicks: 200, NovelClicks: 40, FamiliarClicks: 160}
				st.Session = session(4, 2, 0.5)
				if c.served {
					servedUser(st, snap, r)
					st.Session = Session{ID: "s"} // no feedback in the session
				}
				for k := 0; k < 200 && !c.served; k++ {
					st.History = append(st.History, Consumed{ItemID: snap.Item(int32(r.IntN(n))).ID, TS: int64(k)})
				}
				if c.slates == 0 {
					for k := 0; k < 20; k++ {
						st.Session.Shown = append(st.Session.Shown, snap.Item(int32(r.IntN(n))).ID)
					}
				}
				for s := range c.slates {
					if c.served {
						break // the engine's own slates, below
					}
					ids := make([]string, 10)
					for k := range ids {
						ids[k] = snap.Item(int32(r.IntN(n))).ID
					}
					st.Session.Shown = append(st.Session.Shown, ShownRecord(fmt.Sprint("r", s), ids)...)
				}
				for k := 0; k < 300 && !c.served; k++ {
					st.Consumed.Add(snap.Hash(int32(r.IntN(n))))
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for s := 0; c.served && s < c.slates; s++ {
				for u := range users {
					d, err := e.Decide(Request{K: 10, Now: 5}, &users[u], snap, m, rng)
					if err != nil {
						b.Fatal(err)
					}
					ids := make([]string, len(d.Items))
					for k, it := range d.Items {
						ids[k] = it.ItemID
					}
					users[u].Session.Shown = append(users[u].Session.Shown, ShownRecord(fmt.Sprint("r", s), ids)...)
				}
			}
			b.ReportAllocs()
			cpu0 := cpuclock.Now()
			u := 0
			for b.Loop() {
				if _, err := e.Decide(Request{K: 10, Now: 5}, &users[u], snap, m, rng); err != nil {
					b.Fatal(err)
				}
				u = (u + 1) % len(users)
			}
			b.ReportMetric(float64(cpuclock.Now()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// servedUser gives st the clicks of a user of recsvc -sample-users
// (cmd/recsvc's sampleUser): 10–100, 85% among the popular items of two to
// four favourite categories, each in the history and the consumed filter;
// none in the session (whose slates went unclicked).
func servedUser(st *UserState, snap *catalog.Snapshot, r *rand.Rand) {
	var favs []int32
	for len(favs) < 2+r.IntN(3) {
		favs = append(favs, int32(r.IntN(snap.NumCategories())))
	}
	for k, clicks := 0, 10+r.IntN(91); k < clicks; k++ {
		item := int32(r.IntN(snap.Len()))
		if r.Float64() < 0.85 {
			list := snap.PopularIn(favs[r.IntN(len(favs))])
			item = list[min(int(r.ExpFloat64()*float64(len(list))/8), len(list)-1)]
		}
		st.History = append([]Consumed{{ItemID: snap.Item(item).ID, TS: int64(k)}}, st.History...)
		st.Consumed.Add(snap.Hash(item))
	}
}

// BenchmarkBuild measures building a catalog snapshot, including the IVF
// index at 100k items; it bounds how fast a catalog change goes live.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		items := sampleItems(n)
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			for b.Loop() {
				snap, err := buildSnapshot(items)
				if err != nil {
					b.Fatal(err)
				}
				snap.Prepare()
			}
		})
	}
}

package recommend

import (
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
)

// learnedSnapshot is sampleSnapshot with a synthetic collaborative model
// folded in: n/25 topics, each item in topic i mod topics with an
// embedding near its topic's centroid, and nbrs neighbours from its own
// topic — the shape collab.Fit produces, built directly so that a 100k-item
// benchmark needs no million-event warm-up.
func learnedSnapshot(tb testing.TB, n, nbrs int) *catalog.Snapshot {
	tb.Helper()
	base := sampleSnapshot(tb, n)
	d := base.Dim
	rng := rand.New(rand.NewPCG(3, 4))
	topics := max(n/25, 2)
	unit := func(v []float32) []float32 { return catalog.Normalize(v) }
	l := catalog.Learned{Version: 1, Dim: d, Prior: 6, NbrStart: make([]int32, n+1)}
	for t := 0; t < topics; t++ {
		c := make([]float32, d)
		for x := range c {
			c[x] = float32(rng.NormFloat64())
		}
		l.Centroids = append(l.Centroids, unit(c)...)
	}
	for i := 0; i < n; i++ {
		t := i % topics
		l.IDs = append(l.IDs, base.Item(int32(i)).ID)
		l.Count = append(l.Count, float32(1+rng.IntN(100)))
		l.Topic = append(l.Topic, int32(t))
		e := make([]float32, d)
		for x := range e {
			e[x] = l.Centroids[t*d+x] + 0.3*float32(rng.NormFloat64())/4
		}
		l.Emb = append(l.Emb, unit(e)...)
		for k := 0; k < nbrs; k++ {
			j := t + topics*rng.IntN(max(n/topics, 1))
			if j >= n || j == i {
				continue
			}
			l.Nbr = append(l.Nbr, int32(j))
			l.NbrSim = append(l.NbrSim, 1/float32(k+1))
		}
		l.NbrStart[i+1] = int32(len(l.Nbr))
	}
	snap, err := base.WithLearned(&l)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// TestCollaborativeModelSupersedesLearnedEmbeddings checks the hand-over
// of item representations: embeddings the learner moved on a catalog
// without a collaborative model serve there, and are neither served nor
// kept once the catalog has one.
func TestCollaborativeModelSupersedesLearnedEmbeddings(t *testing.T) {
	plain := sampleSnapshot(t, 1000)
	learned := learnedSnapshot(t, 1000, 20)
	l := NewLearner(DefaultLearnerConfig(), DefaultModel())
	item := plain.Item(0).ID
	s := LoggedSlate{Taste: make([]float32, plain.Dim), Items: []LoggedItem{{ItemID: item}}}
	l.SeedEmbeddings(plain, &s)
	m := l.Model()
	if len(m.ItemEmb) != 1 {
		t.Fatalf("content catalog: %d learned embeddings seeded, want 1", len(m.ItemEmb))
	}
	moved := make([]float32, plain.Dim)
	moved[0] = 1
	m.ItemEmb[item] = moved
	if got := m.embedding(plain, 0); &got[0] != &moved[0] {
		t.Error("content catalog: the model's learned embedding is not served")
	}
	i, _ := learned.Index(item)
	if got := m.embedding(learned, i); &got[0] == &moved[0] {
		t.Error("collaborative catalog: a slate-learned embedding from another space is served")
	}
	l.SeedEmbeddings(learned, &s)
	if got := l.Model().ItemEmb; len(got) != 0 {
		t.Errorf("collaborative catalog: %d slate-learned embeddings kept", len(got))
	}
}

// TestLearnerTakeTouched checks the items a learner reports changed: none
// tracked before the first call (a full comparison is needed), then every
// item a click moved or a seed added, and a full comparison again once
// embeddings were dropped wholesale for a collaborative catalog.
func TestLearnerTakeTouched(t *testing.T) {
	plain := sampleSnapshot(t, 1000)
	l := NewLearner(DefaultLearnerConfig(), DefaultModel())
	got := map[string]struct{}{}
	if !l.TakeTouched(got) {
		t.Fatal("first call: all = false, before anything was tracked")
	}
	e := NewEngine(Config{})
	st := UserState{UserID: "u", History: historyIn(plain, 30, "action", "comedy", "drama")}
	d, err := e.Decide(Request{K: 10, Now: 1}, &st, plain, l.Model(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	s := d.Logged("r", "u", "s", 1)
	l.SeedEmbeddings(plain, &s)
	if l.TakeTouched(got) || len(got) != len(s.Items) {
		t.Fatalf("after seeding %d items: %d touched", len(s.Items), len(got))
	}
	clear(got)
	if _, err := l.Click(&s, s.Items[3].ItemID); err != nil {
		t.Fatal(err)
	}
	// The click moves the clicked item's rivals: the items of its intent
	// at or below its position.
	if l.TakeTouched(got) {
		t.Fatal("after a click: all = true")
	}
	rivals := 0
	for _, it := range s.Items {
		if it.Position < s.Items[3].Position || it.Novel != s.Items[3].Novel {
			continue
		}
		rivals++
		if _, ok := got[it.ItemID]; !ok {
			t.Errorf("%s moved, not reported", it.ItemID)
		}
	}
	if len(got) != rivals {
		t.Fatalf("after a click with %d rivals: %d touched", rivals, len(got))
	}
	clear(got)
	if l.TakeTouched(got) || len(got) != 0 {
		t.Fatalf("nothing learned since the last call: %d touched", len(got))
	}
	l.SeedEmbeddings(learnedSnapshot(t, 1000, 20), &s)
	if !l.TakeTouched(got) {
		t.Error("embeddings dropped: all = false")
	}
}

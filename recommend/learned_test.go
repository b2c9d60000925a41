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

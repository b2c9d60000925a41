package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

func TestRankHRNDCG(t *testing.T) {
	slate := []string{"a", "b", "c", "d"}
	if r := Rank(slate, "c"); r != 2 {
		t.Fatalf("Rank = %d, want 2", r)
	}
	if r := Rank(slate, "z"); r != -1 {
		t.Fatalf("Rank of missing item = %d, want -1", r)
	}
	cases := []struct {
		rank, k   int
		hr, ndcg  float64
		rationale string
	}{
		{0, 10, 1, 1, "top position: 1/log2(2)"},
		{2, 10, 1, 0.5, "third position: 1/log2(4)"},
		{9, 10, 1, 1 / math.Log2(11), "last position of k=10"},
		{10, 10, 0, 0, "just outside k"},
		{2, 2, 0, 0, "k cuts the slate"},
		{-1, 10, 0, 0, "not in the slate"},
	}
	for _, c := range cases {
		near(t, c.rationale+" HR", HR(c.rank, c.k), c.hr)
		near(t, c.rationale+" NDCG", NDCG(c.rank, c.k), c.ndcg)
	}
}

func TestSelfInformationAndNovelty(t *testing.T) {
	near(t, "I(1 of 8)", SelfInformation(1, 8), 3)
	near(t, "I(2 of 8)", SelfInformation(2, 8), 2)
	near(t, "I(8 of 8)", SelfInformation(8, 8), 0)
	near(t, "I(0 of 8) counts as one consumer", SelfInformation(0, 8), 3)
	near(t, "I(9 of 8) capped", SelfInformation(9, 8), 0)
	near(t, "no users", SelfInformation(3, 0), 0)
	near(t, "I(1 of 1024)", SelfInformation(1, 1024), 10)
	near(t, "Novelty([1,2,8],8)", Novelty([]int{1, 2, 8}, 8), 5.0/3)
	near(t, "empty slate", Novelty(nil, 8), 0)
}

func catSnapshot(t *testing.T, items []catalog.Item, dim int) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.Build(1, dim, items)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func idx(t *testing.T, snap *catalog.Snapshot, ids ...string) []int32 {
	t.Helper()
	out := make([]int32, len(ids))
	for i, id := range ids {
		j, ok := snap.Index(id)
		if !ok {
			t.Fatalf("no item %s", id)
		}
		out[i] = j
	}
	return out
}

func TestCategoryILD(t *testing.T) {
	snap := catSnapshot(t, []catalog.Item{
		{ID: "A", Categories: []string{"x"}},
		{ID: "B", Categories: []string{"x", "y"}},
		{ID: "C", Categories: []string{"z"}},
		{ID: "D"},
		{ID: "E"},
	}, 4)
	// A–B share x of {x,y}: 1/2; A–C and B–C share nothing: mean 1/6.
	near(t, "ILD(A,B,C)", CategoryILD(snap, idx(t, snap, "A", "B", "C")), 1-1.0/6)
	near(t, "ILD by id", ILD(snap, []string{"A", "B", "C"}), 1-1.0/6)
	near(t, "two uncategorised items are identical", CategoryILD(snap, idx(t, snap, "D", "E")), 0)
	near(t, "categorised vs uncategorised", CategoryILD(snap, idx(t, snap, "A", "D")), 1)
	near(t, "identical categories", CategoryILD(snap, idx(t, snap, "A", "A")), 0)
	near(t, "one item", CategoryILD(snap, idx(t, snap, "A")), 0)
	near(t, "Jaccard({x},{x,y})", recommend.Jaccard([]int32{0}, []int32{0, 1}), 0.5)
}

// The index form must agree with recommend.Diversity, the reward's term.
func TestCategoryILDMatchesRecommendDiversity(t *testing.T) {
	snap := catSnapshot(t, catalog.Sample(500, 3), catalog.DefaultDim)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(12)
		ids := make([]string, n)
		items := make([]int32, n)
		for i := range ids {
			items[i] = int32(rng.IntN(snap.Len()))
			ids[i] = snap.Item(items[i]).ID
		}
		near(t, "CategoryILD vs Diversity", CategoryILD(snap, items), recommend.Diversity(snap, ids))
	}
}

func TestEmbeddingILD(t *testing.T) {
	snap := catSnapshot(t, []catalog.Item{
		{ID: "e1", Categories: []string{"x"}, Embedding: []float32{1, 0}},
		{ID: "e2", Categories: []string{"x"}, Embedding: []float32{0, 1}},
		{ID: "e3", Categories: []string{"x"}, Embedding: []float32{2, 0}}, // normalised to e1
	}, 2)
	// 1−cos: e1–e2 1, e1–e3 0, e2–e3 1.
	near(t, "EmbeddingILD", EmbeddingILD(snap, idx(t, snap, "e1", "e2", "e3")), 2.0/3)
	near(t, "one item", EmbeddingILD(snap, idx(t, snap, "e1")), 0)
}

func TestCoverage(t *testing.T) {
	var c Coverage
	c.Add(3)
	c.Add(3)
	c.Add(0)
	c.Add(-1)
	if c.Distinct() != 2 {
		t.Fatalf("Distinct = %d, want 2", c.Distinct())
	}
	near(t, "Fraction(4)", c.Fraction(4), 0.5)
	near(t, "CoverageOf capped", CoverageOf(5, 4), 1)
	near(t, "empty catalog", CoverageOf(1, 0), 0)
}

func TestMeanCI(t *testing.T) {
	e := MeanCI([]float64{1, 2, 3, 4, 5})
	// s = √2.5, t(4 df, 0.975) = 2.7764451052.
	h := 2.7764451052 * math.Sqrt(2.5) / math.Sqrt(5)
	near(t, "mean", e.Value, 3)
	if math.Abs(e.HalfWidth()-h) > 1e-6 || e.N != 5 {
		t.Fatalf("interval %+v, want ±%v", e, h)
	}
	if !e.Covers(3) || e.Covers(5) {
		t.Fatalf("Covers wrong for %+v", e)
	}
	if got := MeanCI([]float64{7}); got != (Estimate{Value: 7, Lo: 7, Hi: 7, N: 1}) {
		t.Fatalf("one observation: %+v", got)
	}
	if got := MeanCI(nil); got != (Estimate{}) {
		t.Fatalf("none: %+v", got)
	}
	near(t, "large-n quantile", TQuantile(1_000_000), 1.959963984540054)
}

func TestRunningMatchesMeanCI(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float64, 1000)
	var r Running
	for i := range xs {
		xs[i] = rng.NormFloat64()*3 + 10
		r.Add(xs[i])
	}
	a, b := r.Estimate(), MeanCI(xs)
	if math.Abs(a.Value-b.Value) > 1e-9 || math.Abs(a.Lo-b.Lo) > 1e-9 || math.Abs(a.Hi-b.Hi) > 1e-9 || a.N != b.N {
		t.Fatalf("Running %+v != MeanCI %+v", a, b)
	}
	var empty Running
	if empty.Estimate() != (Estimate{}) || empty.StdDev() != 0 {
		t.Fatal("empty Running not zero")
	}
}

func TestPaired(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       []float64
		diff, p    float64
		lo, hi     float64
		wantErr    bool
		checkRange bool // lo and hi are set
	}{
		// d = 1,1,2,2: mean 1.5, s = 1/√3, t = 1.5/(s/2) = 5.196 on 3
		// degrees of freedom; p from the closed form of Student's t CDF for
		// ν = 3, the interval 1.5 ± 3.182·s/2.
		{name: "hand-computed", a: []float64{1, 2, 3, 4}, b: []float64{0, 1, 1, 2}, diff: 1.5, p: 0.013846832988859248,
			lo: 1.5 - 3.182446305284263*0.2886751345948129, hi: 1.5 + 3.182446305284263*0.2886751345948129, checkRange: true},
		{name: "identical", a: []float64{1, 0, 1}, b: []float64{1, 0, 1}, diff: 0, p: 1},
		{name: "constant shift", a: []float64{2, 1, 2}, b: []float64{1, 0, 1}, diff: 1, p: 0},
		{name: "one pair", a: []float64{3}, b: []float64{1}, diff: 2, p: 1},
		{name: "lengths differ", a: []float64{1, 2}, b: []float64{1}, wantErr: true},
		{name: "empty", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, p, err := Paired(tc.a, tc.b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			near(t, "diff", e.Value, tc.diff)
			near(t, "p", p, tc.p)
			if e.N != len(tc.a) {
				t.Errorf("n = %d, want %d", e.N, len(tc.a))
			}
			if tc.checkRange {
				near(t, "lo", e.Lo, tc.lo)
				near(t, "hi", e.Hi, tc.hi)
			}
		})
	}
}

package collab

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/internal/topk"
)

// Refit returns a model of the counts as they are now. From prev (nil, or
// the last model Refit returned for these counts) it keeps the neighbour
// lists of items whose counts have not changed since, so a refit costs
// what changed, not the whole matrix; with embed false it also keeps prev's
// embeddings and topics (items new since then stay cold until the next
// embedding). version labels the model. Refit reads the counts and resets
// their record of what changed.
//
// Neighbours: the Neighbors most similar items by the asymmetric cosine
// c_ij / (n_i^α n_j^(1−α) + shrink). A kept list does not see later
// changes of its neighbours' counts n_j; an embedding refit (embed true)
// recomputes every list.
//
// Embedding (items with at least MinCount engagements): the leading
// eigenvectors of the normalised affinity D^(-1/2) A D^(-1/2),
// with A the symmetrised cosine co-occurrence over each item's strongest
// graphNeighbors neighbours and D its degrees, scaled by their eigenvalues
// and normalised: the spectral embedding behind spectral clustering, so
// items that users consume together sit close, and topics (spherical
// k-means clusters of the embeddings) cut the co-consumption graph where it
// is thinnest. The eigenvectors come from a randomised subspace iteration
// (Halko, Martinsson and Tropp, 2011) warm-started from prev's basis.
func Refit(c *Counts, prev *Model, version uint64, embed bool) *Model {
	cfg := c.cfg
	n := len(c.ids)
	if prev != nil && (prev.Dim != cfg.Dim || len(prev.IDs) > n) {
		prev = nil // not from these counts
	}
	l := catalog.Learned{
		Version: version, IDs: slices.Clone(c.ids), Dim: cfg.Dim,
		Count: make([]float32, n), Topic: make([]int32, n), Emb: make([]float32, n*cfg.Dim),
		NbrStart: make([]int32, n+1), Prior: float64(cfg.MinCount) * 2,
	}
	for i := range l.Count {
		l.Count[i] = float32(c.n[i])
		l.Topic[i] = -1
	}
	norm := make([]float64, n) // n_j^(1−α)
	for j := range norm {
		norm[j] = math.Pow(c.n[j], 1-cfg.Alpha)
	}
	var buf []scored
	for i := 0; i < n; i++ {
		if prev != nil && !embed && !c.dirty[i] && i < len(prev.IDs) {
			lo, hi := prev.NbrStart[i], prev.NbrStart[i+1]
			l.Nbr = append(l.Nbr, prev.Nbr[lo:hi]...)
			l.NbrSim = append(l.NbrSim, prev.NbrSim[lo:hi]...)
		} else {
			buf = topNeighbors(buf[:0], c.rows[i], math.Pow(c.n[i], cfg.Alpha), norm, cfg.Shrink, cfg.Neighbors)
			for _, x := range buf {
				l.Nbr = append(l.Nbr, x.j)
				l.NbrSim = append(l.NbrSim, x.s)
			}
		}
		l.NbrStart[i+1] = int32(len(l.Nbr))
	}
	for _, i := range c.dirtyList {
		c.dirty[i] = false
	}
	c.dirtyList = c.dirtyList[:0]
	m := &Model{Learned: l, Config: cfg}
	switch {
	case embed:
		var basis map[string][]float64
		if prev != nil {
			basis = prev.basis
		}
		m.basis = spectral(c, &m.Learned, basis, rand.New(rand.NewPCG(version, uint64(n))))
		m.embedded = c.adds
	case prev != nil:
		copy(m.Emb, prev.Emb)
		copy(m.Topic, prev.Topic)
		m.Centroids = prev.Centroids
		m.basis, m.embedded = prev.basis, prev.embedded
	}
	return m
}

// Update refits prev into the next model, re-embedding only when the
// counts have grown by half since the last embedding (or there is none):
// the cadence that the trainer and the replay share. Neighbour lists are
// always current; embeddings and topics, which move slowly and cost a
// spectral decomposition, follow the geometric growth of the data, so
// their total cost over a stream is a constant times one final fit.
func Update(c *Counts, prev *Model, version uint64) *Model {
	embed := prev == nil || c.adds >= prev.embedded*3/2
	return Refit(c, prev, version, embed)
}

// Fit is Refit from scratch, with embeddings.
func Fit(c *Counts, version uint64) *Model { return Refit(c, nil, version, true) }

type scored struct {
	j int32
	s float32
}

func (a scored) before(b scored) bool { return a.s > b.s || (a.s == b.s && a.j < b.j) }

func (a scored) compare(b scored) int {
	if a.before(b) {
		return -1
	}
	if b.before(a) {
		return 1
	}
	return 0
}

// topNeighbors appends the k most similar items of one row, most similar
// first.
func topNeighbors(dst []scored, row map[int32]float32, ni float64, norm []float64, shrink float64, k int) []scored {
	for j, w := range row {
		if norm[j] == 0 {
			continue // paired but never engaged itself
		}
		dst = append(dst, scored{j, float32(float64(w) / (ni*norm[j] + shrink))})
	}
	if len(dst) > k {
		topk.Select(dst, k, scored.before) // only the top k need sorting
		dst = dst[:k]
	}
	slices.SortFunc(dst, scored.compare)
	return dst
}

// graphNeighbors is how many of each item's neighbours make its row of the
// affinity graph that is embedded: a sparse k-nearest-neighbour graph, as
// spectral clustering uses, keeps the factorisation cheap.
const graphNeighbors = 20

// spectral fills l.Emb and l.Topic for the warm items and l.Centroids, and
// returns the subspace basis by item id for the next warm start.
func spectral(c *Counts, l *catalog.Learned, prevBasis map[string][]float64, rng *rand.Rand) map[string][]float64 {
	cfg := c.cfg
	row := make([]int32, len(c.ids))
	var warm []int32
	for i := range c.ids {
		row[i] = -1
		if c.n[i] >= float64(cfg.MinCount) {
			row[i] = int32(len(warm))
			warm = append(warm, int32(i))
		}
	}
	m := len(warm)
	q := cfg.Dim + 4
	if m < 2*q {
		return nil // too little to factorise: every item stays cold
	}
	// A in CSR over warm rows: each item's strongest neighbours' cosine
	// co-occurrence.
	start := make([]int32, m+1)
	var col []int32
	var val []float64
	for r, i := range warm {
		taken := 0
		for p := l.NbrStart[i]; p < l.NbrStart[i+1] && taken < graphNeighbors; p++ {
			j := l.Nbr[p]
			if rj := row[j]; rj >= 0 {
				col = append(col, rj)
				val = append(val, float64(c.rows[i][j])/math.Sqrt(c.n[i]*c.n[int(j)]))
				taken++
			}
		}
		start[r+1] = int32(len(col))
	}
	// Degrees of the symmetrised (A + Aᵀ)/2, then D^(-1/2) folded into A.
	deg := make([]float64, m)
	for r := 0; r < m; r++ {
		for p := start[r]; p < start[r+1]; p++ {
			deg[r] += val[p] / 2
			deg[col[p]] += val[p] / 2
		}
	}
	for r := 0; r < m; r++ {
		for p := start[r]; p < start[r+1]; p++ {
			if d := deg[r] * deg[col[p]]; d > 0 {
				val[p] /= math.Sqrt(d)
			}
		}
	}
	// mul sets z = N x for m×q row-major x, N = (A + Aᵀ)/2 normalised.
	mul := func(z, x []float64) {
		clear(z)
		for r := 0; r < m; r++ {
			xr, zr := x[r*q:(r+1)*q], z[r*q:(r+1)*q]
			for p := start[r]; p < start[r+1]; p++ {
				a, c := val[p]/2, int(col[p])
				xc, zc := x[c*q:(c+1)*q], z[c*q:(c+1)*q]
				for k := range zr {
					zr[k] += a * xc[k]
					zc[k] += a * xr[k]
				}
			}
		}
	}
	x := make([]float64, m*q)
	iters, warmRows := 6, 0
	for r, i := range warm {
		if b, ok := prevBasis[c.ids[i]]; ok && len(b) == q {
			copy(x[r*q:], b)
			warmRows++
			continue
		}
		for k := 0; k < q; k++ {
			x[r*q+k] = rng.NormFloat64()
		}
	}
	if warmRows > m*3/4 {
		iters = 2 // most of the subspace is already there
	}
	z := make([]float64, m*q)
	orthonormalize(x, m, q)
	for it := 0; it < iters; it++ {
		mul(z, x)
		x, z = z, x
		orthonormalize(x, m, q)
	}
	// Rayleigh–Ritz: B = Xᵀ N X, its eigenvectors rotate X.
	mul(z, x)
	b := mat.NewSymDense(q, nil)
	for a := 0; a < q; a++ {
		for c := a; c < q; c++ {
			var s float64
			for r := 0; r < m; r++ {
				s += x[r*q+a] * z[r*q+c]
			}
			b.SetSym(a, c, s)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(b, true) {
		return nil
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, q)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(vals[b], vals[a]) })
	d := cfg.Dim
	basis := make(map[string][]float64, m)
	u := make([]float64, q)
	for r, i := range warm {
		// Rotate the row into the eigenbasis: the next warm start.
		for k := 0; k < q; k++ {
			var s float64
			for a := 0; a < q; a++ {
				s += x[r*q+a] * vecs.At(a, order[k])
			}
			u[k] = s
		}
		basis[c.ids[i]] = slices.Clone(u)
		// Every leading eigenvector, the first (degree-proportional on a
		// connected graph, one component's indicator on a disconnected one)
		// included, then rows normalised, as Ng, Jordan and Weiss (2001).
		e := l.Emb[int(i)*d : int(i+1)*d]
		var norm float64
		for k := 0; k < d; k++ {
			s := u[k] * math.Max(vals[order[k]], 0)
			e[k] = float32(s)
			norm += s * s
		}
		if norm == 0 {
			clear(e)
			continue
		}
		inv := float32(1 / math.Sqrt(norm))
		for k := range e {
			e[k] *= inv
		}
	}
	// Topics over the warm items that got an embedding.
	var have []int32
	var pts []float32
	for _, i := range warm {
		e := l.Emb[int(i)*d : int(i+1)*d]
		if !isZero(e) {
			have = append(have, i)
			pts = append(pts, e...)
		}
	}
	if len(have) == 0 {
		return basis
	}
	k := cfg.Topics
	if k == 0 {
		k = TopicsFor(len(have))
	}
	cent, assign := catalog.KMeans(pts, d, k, 0, rng)
	l.Centroids = cent
	for p, i := range have {
		l.Topic[i] = assign[p]
	}
	return basis
}

// orthonormalize orthonormalises the q columns of the m×q row-major v in
// place by Cholesky QR, twice for stability (CholeskyQR2, Fukaya et al.,
// 2014): O(m·q²), where a Householder QR that forms Q costs O(m²·q).
func orthonormalize(v []float64, m, q int) {
	g := make([]float64, q*q)
	row := make([]float64, q)
	for pass := 0; pass < 2; pass++ {
		clear(g)
		for r := 0; r < m; r++ {
			vr := v[r*q : (r+1)*q]
			for a, x := range vr {
				if x == 0 {
					continue
				}
				ga := g[a*q : (a+1)*q]
				for b := a; b < q; b++ {
					ga[b] += x * vr[b]
				}
			}
		}
		sym := mat.NewSymDense(q, nil)
		for a := 0; a < q; a++ {
			for b := a; b < q; b++ {
				sym.SetSym(a, b, g[a*q+b])
			}
			sym.SetSym(a, a, g[a*q+a]*(1+1e-12)+1e-300)
		}
		var ch mat.Cholesky
		if !ch.Factorize(sym) {
			return
		}
		var u, inv mat.TriDense
		ch.UTo(&u)
		if err := inv.InverseTri(&u); err != nil {
			return
		}
		ri := inv.RawTriangular()
		for r := 0; r < m; r++ {
			vr := v[r*q : (r+1)*q]
			clear(row)
			for a, x := range vr {
				if x == 0 {
					continue
				}
				ia := ri.Data[a*ri.Stride : a*ri.Stride+q]
				for b := a; b < q; b++ {
					row[b] += x * ia[b]
				}
			}
			copy(vr, row)
		}
	}
}

func isZero(v []float32) bool {
	return !slices.ContainsFunc(v, func(x float32) bool { return x != 0 })
}

package trainer

import (
	"maps"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// Combining the replicas' models (docs/trainer-scale.md#scaling-out). Each
// replica learns on a local copy of the variant's model and, at every
// commit, adds what it learned since it last read the shared model —
// local − base — to the shared model as stored: global + (local − base).
// For the ranker and the items that keeps every update's full step: local −
// base is exactly the replica's own updates however stale its base, so the
// shared model is the sum of every replica's updates whatever the
// interleaving. The rest is not a plain sum:
//
//   - the high level's policy-gradient parameters (intent.Policy T, B, V)
//     add share·(local − base), share the replica's part of the updates the
//     shared model took since its base (intentShare): each replica steps
//     from a stale base towards the same target for a whole interval, and
//     summing n such steps overshoots, so they are averaged as federated
//     averaging averages its clients' models, weighted by their events; a
//     replica whose base is current takes its step whole, so one replica
//     learns as one trainer does;
//   - the critic's recursive least-squares fit (intent.Policy Q, QP) is
//     combined in information form, discounted for the replica's forgetting
//     steps as one learner's would be (mergeCritic);
//   - a learned item embedding is a unit vector: the summed one is scaled
//     back to unit length, as the learner does after each step;
//   - the fitted mode model and population prior (intent.Policy Mode,
//     Prior) are estimates, not sums of steps: see mergeModes.

// criticPrior mirrors intent's initial critic matrix (criticPrior·I per
// level), the base of a replica that started before the critic had been
// fitted (Q, QP nil until the first decision).
const criticPrior = 10

// mergeDense returns the dense part (intent policy, ranker) of
// global + (local − base), without items, with the high level's
// policy-gradient parameters' difference scaled by share (see
// intentShare); the inputs are not changed.
func mergeDense(global, base, local *recommend.Model, share float64) *recommend.Model {
	out := &recommend.Model{Version: global.Version, Intent: global.Intent.Clone(), Ranker: global.Ranker}
	g, b, l := out.Intent, base.Intent, local.Intent
	for _, f := range []struct{ g, b, l []float64 }{{g.T, b.T, l.T}, {g.B, b.B, l.B}, {g.V, b.V, l.V}} {
		addDiff(f.g, f.b, f.l, share)
	}
	g.Kappa += share * (l.Kappa - b.Kappa)
	mergeCritic(g, b, l)
	mergeModes(g, b, l)
	for i := range out.Ranker.Theta {
		out.Ranker.Theta[i] += local.Ranker.Theta[i] - base.Ranker.Theta[i]
	}
	out.Ranker.Temperature += local.Ranker.Temperature - base.Ranker.Temperature
	return out
}

// mergeModes combines the fitted mode model and population prior. They
// are estimates of the same population from each replica's own users, not
// increments, so adding differences would count one change once per
// replica: a replica that refitted since base moves global halfway to its
// fit, a running average over the replicas' fits — unless no other replica
// changed them since its base, when its fit is the latest estimate and is
// taken whole. So one replica serves each fit as one trainer does; halving
// there cost the simulator's HRL 0.04 of AUC and a click per user
// (docs/trainer-scale.md#model-quality-with-replicas).
func mergeModes(g, b, l *intent.Policy) {
	if sameFit(l, b) {
		return
	}
	if sameFit(g, b) {
		g.Mode, g.Prior, g.Worth = l.Mode, l.Prior, l.Worth
		return
	}
	g.Mode = meanMode(g.Mode.OrDefault(), l.Mode.OrDefault())
	g.Prior = intent.Prior{Alpha: (g.Prior.Alpha + l.Prior.Alpha) / 2, Beta: (g.Prior.Beta + l.Prior.Beta) / 2}
	switch {
	case l.Worth == (intent.ModeModel{}):
	case g.Worth == (intent.ModeModel{}):
		g.Worth = l.Worth
	default:
		g.Worth = meanMode(g.Worth, l.Worth)
	}
}

// meanMode is the average of two mode models, parameter by parameter.
func meanMode(a, b intent.ModeModel) intent.ModeModel {
	return intent.ModeModel{
		Base: (a.Base + b.Base) / 2, Shift: (a.Shift + b.Shift) / 2,
		Contrast: (a.Contrast + b.Contrast) / 2, Routine: (a.Routine + b.Routine) / 2,
		Examine: (a.Examine + b.Examine) / 2, ExamineClick: (a.ExamineClick + b.ExamineClick) / 2,
		ToExploit: (a.ToExploit + b.ToExploit) / 2, ToExplore: (a.ToExplore + b.ToExplore) / 2,
		// Replicas fit the same shared observations, so their errors
		// are alike and not independent: the mean, not a pooled error.
		NoveltySE: (a.NoveltySE + b.NoveltySE) / 2,
	}
}

// sameFit reports whether x and y hold the same fitted mode models and
// prior.
func sameFit(x, y *intent.Policy) bool {
	return x.Mode == y.Mode && x.Prior == y.Prior && x.Worth == y.Worth
}

// addDiff adds w·(l − b) to g element by element (over their common
// length).
func addDiff(g, b, l []float64, w float64) {
	for i := range min(len(g), len(b), len(l)) {
		g[i] += w * (l[i] - b[i])
	}
}

// intentShare is the weight of a replica's high-level steps in its merge:
// its share of the updates the shared model has taken since the replica's
// base, learned of learned + others.
func intentShare(learned, others int64) float64 {
	if learned <= 0 || others <= 0 {
		return 1
	}
	return float64(learned) / float64(learned+others)
}

// mergeCritic combines the critic fits in information form, level by
// level. A recursive least-squares fit with forgetting λ holds, after n
// forgetting steps from its base, A_l = λⁿ·A_b + (what the n decisions
// added), and likewise b = A·w; so the replica's own evidence is
// A_l − λⁿ·A_b, and the shared fit, which one learner would have discounted
// by the same n steps, becomes λⁿ·A_g + (A_l − λⁿ·A_b). (Adding A_l − A_b
// instead subtracts the base's forgetting once per replica, which leaves
// the sum without a floor: at two replicas and n ≈ 700 it is
// (2λⁿ − 1)·A ≈ 0.)
func mergeCritic(g, b, l *intent.Policy) {
	const n = intent.Dim + 1
	k := len(l.Q) / n
	if k == 0 || slices.Equal(l.Q, b.Q) && slices.Equal(l.QP, b.QP) {
		return // the replica did not fit the critic
	}
	if len(g.Q) == 0 { // the first fit anywhere: the replica's
		g.Q, g.QP, g.QForgets = slices.Clone(l.Q), slices.Clone(l.QP), slices.Clone(l.QForgets)
		return
	}
	if len(g.Q) != len(l.Q) || len(b.Q) != 0 && len(b.Q) != len(l.Q) {
		return // different level counts: cannot happen within one variant
	}
	if len(g.QForgets) != k {
		g.QForgets = make([]int64, k) // a fit from before the counts were kept
	}
	for z := range k {
		info := func(p *intent.Policy) (*mat.Dense, *mat.VecDense, bool) {
			if len(p.Q) == 0 { // the prior: A = I/criticPrior, w = 0
				a := mat.NewDense(n, n, nil)
				for i := range n {
					a.Set(i, i, 1/criticPrior)
				}
				return a, mat.NewVecDense(n, nil), true
			}
			var a mat.Dense
			if err := a.Inverse(mat.NewDense(n, n, slices.Clone(p.QP[z*n*n:(z+1)*n*n]))); err != nil {
				return nil, nil, false
			}
			var bv mat.VecDense
			bv.MulVec(&a, mat.NewVecDense(n, slices.Clone(p.Q[z*n:(z+1)*n])))
			return &a, &bv, true
		}
		ag, bg, ok1 := info(g)
		ab, bb, ok2 := info(b)
		al, bl, ok3 := info(l)
		if !ok1 || !ok2 || !ok3 {
			continue // a singular fit: keep the shared one for this level
		}
		steps := max(forgets(l, z)-forgets(b, z), 0)
		decay := math.Pow(intent.CriticForget, float64(steps))
		ag.Scale(decay, ag)
		ag.Add(ag, al)
		ab.Scale(decay, ab)
		ag.Sub(ag, ab)
		bg.ScaleVec(decay, bg)
		bg.AddVec(bg, bl)
		bb.ScaleVec(decay, bb)
		bg.SubVec(bg, bb)
		var p mat.Dense
		if err := p.Inverse(ag); err != nil {
			continue
		}
		var w mat.VecDense
		w.MulVec(&p, bg)
		ok := true
		for i := range n {
			ok = ok && finite(w.AtVec(i))
			for j := range n {
				ok = ok && finite(p.At(i, j))
			}
		}
		if !ok {
			continue
		}
		for i := range n {
			g.Q[z*n+i] = w.AtVec(i)
			for j := range n {
				// Symmetrised: inversion leaves rounding asymmetry.
				g.QP[z*n*n+i*n+j] = (p.At(i, j) + p.At(j, i)) / 2
			}
		}
		g.QForgets[z] += steps
	}
}

// forgets is p's count of forgetting steps at level z (zero when not kept).
func forgets(p *intent.Policy, z int) int64 {
	if z < len(p.QForgets) {
		return p.QForgets[z]
	}
	return 0
}

// itemParams are one item's learned parameters.
type itemParams struct {
	bias    float32
	hasBias bool
	emb     []float32
}

func itemOf(m *recommend.Model, id string) itemParams {
	b, ok := m.ItemBias[id]
	return itemParams{bias: b, hasBias: ok, emb: m.ItemEmb[id]}
}

// changedItems lists the items whose parameters differ between base and
// local, comparing every item of local.
func changedItems(base, local *recommend.Model) []string {
	var ids []string
	for id := range local.ItemBias {
		if itemChanged(base, local, id) {
			ids = append(ids, id)
		}
	}
	for id := range local.ItemEmb {
		if _, ok := local.ItemBias[id]; !ok && itemChanged(base, local, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// changedAmong lists the items of touched whose parameters differ between
// base and local: changedItems when touched holds every item the learner
// changed since base, at the cost of what was touched.
func changedAmong(base, local *recommend.Model, touched map[string]struct{}) []string {
	ids := make([]string, 0, len(touched))
	for id := range touched {
		if itemChanged(base, local, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// itemChanged reports whether local holds parameters for id that base
// does not: a bias base lacks or differs from, or another embedding. An
// item local lacks is not changed (a learner that dropped embeddings does
// not take them from the shared model).
func itemChanged(base, local *recommend.Model, id string) bool {
	lb, hasLB := local.ItemBias[id]
	le, hasLE := local.ItemEmb[id]
	if !hasLB && !hasLE {
		return false
	}
	bb, hasBB := base.ItemBias[id]
	return hasLB && (!hasBB || bb != lb) || !slices.Equal(base.ItemEmb[id], le)
}

// mergeItem returns g + (l − b) for one item. seed is the embedding an
// item starts from when it has none (the catalog's: the learner seeds
// from it), nil when unknown.
func mergeItem(g, b, l itemParams, seed []float32) itemParams {
	out := itemParams{bias: g.bias + (l.bias - b.bias), hasBias: g.hasBias || l.hasBias}
	switch {
	case l.emb == nil:
		out.emb = g.emb
	case b.emb == nil && seed == nil, len(g.emb) != len(l.emb) && g.emb != nil:
		out.emb = slices.Clone(l.emb)
	default:
		from, gb := b.emb, g.emb
		if from == nil {
			from = seed
		}
		if gb == nil {
			gb = seed
		}
		if len(from) != len(l.emb) || len(gb) != len(l.emb) {
			out.emb = slices.Clone(l.emb)
			break
		}
		out.emb = make([]float32, len(l.emb))
		var norm float64
		for i := range out.emb {
			out.emb[i] = gb[i] + (l.emb[i] - from[i])
			norm += float64(out.emb[i]) * float64(out.emb[i])
		}
		if norm = math.Sqrt(norm); norm > 0 {
			for i := range out.emb {
				out.emb[i] = float32(float64(out.emb[i]) / norm)
			}
		}
	}
	return out
}

// setItem stores p as id's parameters in m.
func setItem(m *recommend.Model, id string, p itemParams) {
	if p.hasBias {
		if m.ItemBias == nil {
			m.ItemBias = map[string]float32{}
		}
		m.ItemBias[id] = p.bias
	}
	if p.emb != nil {
		if m.ItemEmb == nil {
			m.ItemEmb = map[string][]float32{}
		}
		m.ItemEmb[id] = p.emb
	}
}

// mergeModel is a replica's commit applied to the shared model in memory:
// global + (local − base), dense part and changed items, exactly as
// commitReplica stores it (mergeDense, then mergeItem for every item
// changedItems finds), without the store. seed gives an item's catalog
// embedding (nil when unknown). The inputs are not changed; the result
// shares global's unchanged embeddings, which nothing mutates (rebaseModel
// copies them before a learner can).
func mergeModel(global, base, local *recommend.Model, share float64, seed func(id string) []float32) *recommend.Model {
	next := mergeDense(global, base, local, share)
	next.ItemBias, next.ItemEmb = maps.Clone(global.ItemBias), maps.Clone(global.ItemEmb)
	for _, id := range changedItems(base, local) {
		var s []float32
		if seed != nil {
			s = seed(id)
		}
		setItem(next, id, mergeItem(itemOf(global, id), itemOf(base, id), itemOf(local, id), s))
	}
	return next
}

// rebaseModel makes local, a learner's working model, the shared model
// (as rebase does after a commit, so local − base is zero afterwards). Its
// items are deep copies: the learner updates embeddings in place.
func rebaseModel(local, shared *recommend.Model) {
	local.Version, local.Intent, local.Ranker = shared.Version, shared.Intent.Clone(), shared.Ranker
	local.ItemBias = maps.Clone(shared.ItemBias)
	local.ItemEmb = nil
	if shared.ItemEmb != nil {
		local.ItemEmb = make(map[string][]float32, len(shared.ItemEmb))
		for id, e := range shared.ItemEmb {
			local.ItemEmb[id] = slices.Clone(e)
		}
	}
}

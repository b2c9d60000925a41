// Package recommend composes novarec's two-level policy into one decision:
// candidates from a familiar, a novel and a popular pool; the high-level
// intent policy choosing how much novelty this user wants now; the low-level
// ranker building the slate with propensities. It also defines the user state
// the policy reads and how feedback changes it. It does no I/O, so serving,
// offline replay and the simulator run exactly this code.
package recommend

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
)

// Model is one versioned set of learned parameters for both levels. A Model is
// immutable once published: learners clone, update and publish a new one.
type Model struct {
	Version string         `json:"version"`
	Intent  *intent.Policy `json:"intent"`
	Ranker  ranker.Params  `json:"ranker"`
	// ItemBias holds learned item biases (the ranker's FBias feature) for
	// items that have received feedback; others have bias 0.
	ItemBias map[string]float32 `json:"item_bias,omitempty"`
	// ItemEmb holds learned unit embeddings that replace the catalog's for
	// ranking (retrieval keeps using the catalog's index).
	ItemEmb map[string][]float32 `json:"item_emb,omitempty"`
}

// ModeModel is the click model that reads the mode evidence of feedback
// under this model: the fitted one, or the default before any fit.
func (m *Model) ModeModel() intent.ModeModel {
	if m == nil || m.Intent == nil {
		return intent.DefaultModeModel()
	}
	return m.Intent.Mode.OrDefault()
}

// WorthModel is the mode model that says whether novelty pays: the
// trainer's latest fit (intent.Policy.Worth), else ModeModel.
func (m *Model) WorthModel() intent.ModeModel {
	if m != nil && m.Intent != nil && m.Intent.Worth != (intent.ModeModel{}) {
		return m.Intent.Worth
	}
	return m.ModeModel()
}

// NovelWorth is what a session's belief q puts at stake, as the decisions
// weigh it (the hedge's novel share, the level's input): the mode model's
// NovelWorth, and nothing where the fitted worth says that even exploring
// sessions do not favour novel items. Where the worth is fitted but the
// belief is not, only that verdict is taken from it: its rates are of a
// model the belief was not read with, and in the simulator weighing the
// prior model's belief by them cost 1.3 clicks per user.
func (m *Model) NovelWorth(q float64) float64 {
	if !m.WorthModel().NoveltyPays() {
		return 0
	}
	return m.ModeModel().NovelWorth(q)
}

// embedding returns item i's embedding under the model. With a
// collaborative model in the catalog, the catalog's (learned) embedding is
// the item's representation and the policy model's own, learned in an
// earlier space, does not apply (see Learner.SeedEmbeddings).
func (m *Model) embedding(snap *catalog.Snapshot, i int32) []float32 {
	if len(m.ItemEmb) > 0 && snap.LearnedVersion() == 0 {
		if e, ok := m.ItemEmb[snap.Item(i).ID]; ok && len(e) == snap.Dim {
			return e
		}
	}
	return snap.Embedding(i)
}

// bias returns item i's learned bias.
func (m *Model) bias(snap *catalog.Snapshot, i int32) float64 {
	if len(m.ItemBias) > 0 {
		return float64(m.ItemBias[snap.Item(i).ID])
	}
	return 0
}

// DefaultModel is the prior model served before any learning.
func DefaultModel() *Model {
	return &Model{
		Version: "prior",
		Intent:  intent.NewPolicy(intent.DefaultLevels, intent.DefaultKappa),
		Ranker:  ranker.DefaultParams(),
	}
}

// Validate rejects a model that could not serve.
func (m *Model) Validate() error {
	if m == nil || m.Intent == nil {
		return errors.New("recommend: model without intent policy")
	}
	if m.Version == "" {
		return errors.New("recommend: model without version")
	}
	if err := m.Intent.Validate(); err != nil {
		return err
	}
	for id, b := range m.ItemBias {
		if math.IsNaN(float64(b)) || math.IsInf(float64(b), 0) {
			return fmt.Errorf("recommend: non-finite bias of item %s", id)
		}
	}
	for id, e := range m.ItemEmb {
		for _, x := range e {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("recommend: non-finite embedding of item %s", id)
			}
		}
	}
	return m.Ranker.Validate()
}

// Config holds the engine's structural settings.
type Config struct {
	// Candidates is the size of the candidate set the ranker sees.
	Candidates int
	// NProbe is how many embedding clusters the familiar pool probes on
	// indexed (large) catalogs.
	NProbe int
	// TasteDecay weighs history by recency when forming the taste vector:
	// the i-th most recent item has weight TasteDecay^i.
	TasteDecay float64
	// PopularShare is the share of candidates always taken from the popular
	// pool, a prior that keeps strong items in reach at every level.
	PopularShare float64
	// IntentEpsilon mixes the distribution the intent level is sampled
	// from with the uniform one, (1−ε)·π_H + ε/K, so every level keeps a
	// probability of at least ε/K: exploration control. A session whose
	// clicks were all familiar is otherwise almost never served the novel
	// levels, so no novel item is shown and no evidence of a turn to
	// exploring can arrive; and off-policy learning and evaluation need
	// every level in the logs. The logged probability is the mixed one, so
	// importance weights stay exact; the reported session propensity is
	// the policy's own. 0 (the default) samples π_H as it is; deterministic
	// requests ignore it.
	IntentEpsilon float64
	// Recent is how many of the user's most recent engaged items seed the
	// neighbour pool and the collaborative score (the k-th weighted
	// TasteDecay^k).
	Recent int
	// NeighborShare is the share of the familiar candidates taken from the
	// learned neighbours of the user's recent items; the embedding index
	// fills the rest. Without a learned model the index fills all of it.
	NeighborShare float64
	// Hedge, when positive, hedges every slate between the explore and
	// exploit intents (ranker.Knobs): P(explore) of the positions — the
	// session posterior as the mode model weighs it (NovelWorth) — go to
	// novel items, interleaved from the top in proportion rather than
	// wherever their scores put them, and the novel pool holds that share
	// of the candidates whatever the level. So a session whose mode is
	// uncertain sees both kinds, and a confident one mostly its own. Hedge
	// is the score bonus of the favoured intent's items at a position, in
	// units of θ·φ; 0 turns hedging off and leaves the novel share to the
	// level. The slate-centred mode evidence needs it: a policy that serves
	// all-novel or all-familiar slates learns nothing about the mode from
	// them (docs/evaluation.md measures both).
	Hedge float64
	// Greedy is the share of a sampled slate's positions that take the
	// ranker's argmax instead of a draw from its softmax: each position is
	// drawn from (1−Greedy)·softmax + Greedy·δ_argmax, and the logged
	// propensity is that mixture's, so it stays exact and every candidate
	// keeps a chance to be shown. Sampling every position spreads a slate
	// over items the ranker itself puts lower and costs clicks and hits;
	// off-policy learning and evaluation need draws; this keeps some of
	// both. The intent level is still drawn from π_H: mixing it with its
	// argmax as well made the level's learning unstable on the MovieLens
	// replay (importance weights of up to 1/(1−Greedy) on the levels
	// off the argmax). 0 samples every position; deterministic requests
	// ignore it.
	Greedy float64
	// Views is how many users' history views (the history's items
	// resolved, its category counts, taste vector and seen topics) the
	// engine keeps, so that a returning user's is not rebuilt until the
	// history changes; up to twice as many may be held. An entry of a
	// 200-item history is 1.4–2 KB (with 4,000 learned topics), so the
	// default holds at most about 64 MB. Negative keeps none.
	Views int
	// Sessions is how many sessions' shown lists the engine keeps
	// resolved (the ids looked up in the catalog), so that a returning
	// session's are looked up only when added; up to twice as many may be
	// held, about 5 KB each at 300 entries, so the default holds at most
	// about 80 MB. Negative keeps none.
	Sessions int
}

// DefaultConfig suits catalogs from a thousand to a few hundred thousand items.
func DefaultConfig() Config {
	return Config{Candidates: 100, NProbe: 8, TasteDecay: 0.97, PopularShare: 0.1, Recent: 50, NeighborShare: 0.7, Hedge: 2, Greedy: 0.9, Views: 16384, Sessions: 8192}
}

// MaxK bounds the slate size.
const MaxK = 100

// Request is one recommendation request as the engine sees it.
type Request struct {
	K       int
	Exclude []string
	// Now is the request time in Unix milliseconds.
	Now int64
	// Deterministic takes argmax decisions instead of sampling.
	Deterministic bool
}

// IntentDecision is the high level's part of a decision.
type IntentDecision struct {
	UserPropensity    float64
	SessionPropensity float64
	Level             int
	Probability       float64
	Probabilities     []float64
	State             []float64
}

// Scored is one item of the slate.
type Scored struct {
	Item       int32
	ItemID     string
	Position   int
	Score      float64
	Propensity float64
	Novelty    float64
	Novel      bool
	// Features is φ(u,i) as scored, logged so learners can replay the
	// ranker's softmax.
	Features [ranker.NumFeatures]float64
}

// Decision is the engine's answer.
type Decision struct {
	Intent IntentDecision
	// Taste is the user's taste vector u (nil for a cold user), logged so
	// learners can update item embeddings.
	Taste []float32
	Items []Scored
}

// Engine makes decisions. It is stateless apart from its configuration, so
// one Engine serves concurrent requests; catalog and model are passed per
// call so callers can swap them atomically.
type Engine struct {
	cfg     Config
	scratch sync.Pool   // of *scratch
	views   *viewCache  // nil when Config.Views < 0
	shown   *shownCache // nil when Config.Sessions < 0
}

// scratch holds one decision's working memory, pooled so that the hot path
// allocates little more than its answer.
type scratch struct {
	view view
	// shown holds the session's shown entries resolved (resolveShown).
	shown []int32
	// taken says which items may not be candidates and which the
	// consumed filter has cleared (see exclusion).
	taken marks
	// collab holds the collaborative score per catalog item of the items
	// in touched (the rest are 0).
	collab  []float32
	touched []int32
	ids     []int32
	sims    []float32
	// touch and touchHash sum values read ahead of use (embeddings and
	// item records), kept so that the compiler keeps those reads.
	touch     float32
	touchHash uint64
	best      []scoredItem
	pool      []int32
	cands     []ranker.Candidate
	slots     []ranker.Slot
	ranker    ranker.Scratch
}

// readAhead reads an item's embedding (a value per 64-byte line) and
// record hash before they are needed, so that the cache misses of a loop of
// items overlap instead of being waited for one by one.
func (sc *scratch) readAhead(emb []float32, hash uint64) {
	for x := 0; x < len(emb); x += 16 {
		sc.touch += emb[x]
	}
	sc.touchHash += hash
}

// marks holds two disjoint sets of item indexes, taken and clean, in one
// byte per item, and clears in O(1): an item is taken when its stamp equals
// the current generation gen, clean when it equals gen+1. One byte, not two
// uint32 stamps, because the stamps are read at random for thousands of
// items per decision: at 100k items they are 100 KB instead of 800 KB,
// which stays in cache between requests. The generation advances by two
// per decision, so every 127th reset clears the bytes.
type marks struct {
	gen   uint8
	stamp []uint8
}

func (m *marks) reset(n int) {
	if len(m.stamp) != n {
		m.stamp = make([]uint8, n)
		m.gen = 0
	}
	m.gen += 2
	if m.gen == 0 { // wrapped: old stamps could collide
		clear(m.stamp)
		m.gen = 2
	}
}

// has reports whether item i is taken; set takes it (a clean item too).
func (m *marks) has(i int32) bool { return m.stamp[i] == m.gen }
func (m *marks) set(i int32)      { m.stamp[i] = m.gen }

// isClean reports whether item i was marked clean (and not taken since).
func (m *marks) isClean(i int32) bool { return m.stamp[i] == m.gen+1 }
func (m *marks) setClean(i int32)     { m.stamp[i] = m.gen + 1 }

// NewEngine returns an engine with cfg, zero fields taking defaults.
func NewEngine(cfg Config) *Engine {
	d := DefaultConfig()
	if cfg.Candidates <= 0 {
		cfg.Candidates = d.Candidates
	}
	if cfg.NProbe <= 0 {
		cfg.NProbe = d.NProbe
	}
	if cfg.TasteDecay <= 0 || cfg.TasteDecay > 1 {
		cfg.TasteDecay = d.TasteDecay
	}
	if cfg.PopularShare < 0 || cfg.PopularShare > 1 {
		cfg.PopularShare = d.PopularShare
	}
	if !(cfg.IntentEpsilon >= 0 && cfg.IntentEpsilon <= 1) {
		cfg.IntentEpsilon = 0
	}
	if !(cfg.Greedy >= 0 && cfg.Greedy < 1) {
		cfg.Greedy = 0
	}
	if cfg.Recent <= 0 {
		cfg.Recent = d.Recent
	}
	if !(cfg.NeighborShare >= 0 && cfg.NeighborShare <= 1) {
		cfg.NeighborShare = d.NeighborShare
	}
	if cfg.Views == 0 {
		cfg.Views = d.Views
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = d.Sessions
	}
	e := &Engine{cfg: cfg}
	gens := newSnapGens()
	if cfg.Views > 0 {
		e.views = newViewCache(cfg.Views, gens)
	}
	if cfg.Sessions > 0 {
		e.shown = newShownCache(cfg.Sessions, gens)
	}
	e.scratch.New = func() any { return new(scratch) }
	return e
}

// view is what one decision derives from the user's history, resolved once
// because the history is the request's largest input. A view in the
// engine's cache (viewCache) is shared and read only.
type view struct {
	// hist holds the snapshot index of each history entry, -1 if unknown.
	hist   []int32
	counts []float64
	taste  []float32
	seen   Seen
	// probe holds the index clusters the familiar pool scans for taste
	// (catalog.Snapshot.Probe), set by the engine's viewOf: they depend
	// on the taste alone, so a returning user's are not chosen again.
	probe []int32
	// touch is the sum of the values build reads ahead of Taste; it is
	// kept only so that the compiler keeps those reads.
	touch float32
}

func (v *view) build(snap *catalog.Snapshot, history []Consumed, decay float64) {
	v.hist = slices.Grow(v.hist[:0], len(history))
	nc := snap.NumCategories()
	v.counts = slices.Grow(v.counts[:0], nc)[:nc]
	clear(v.counts)
	// The ids first, then the items' records in a pass of their own: the
	// records of a history are cache misses, and a loop that does nothing
	// but read them lets the processor wait for many at once, where one
	// interleaved with the map's lookups waits for each in turn. The same
	// pass reads a value from each cache line of the item's embedding, so
	// that Taste finds them in cache (touch keeps those reads).
	var touch float32
	for _, h := range history {
		i, ok := snap.Index(h.ItemID)
		if !ok {
			i = -1
		}
		v.hist = append(v.hist, i)
	}
	for _, i := range v.hist {
		if i < 0 {
			continue
		}
		if e := snap.Embedding(i); len(e) > 0 {
			for x := 0; x < len(e); x += 16 { // 16 float32s a 64-byte line
				touch += e[x]
			}
		}
		if m, ok := snap.CategoryMask(i); ok {
			for ; m != 0; m &= m - 1 {
				v.counts[bits.TrailingZeros64(m)]++
			}
			continue
		}
		for _, c := range snap.Categories(i) {
			v.counts[c]++
		}
	}
	v.touch = touch
	v.taste = Taste(snap, v.hist, decay, v.taste)
	v.seen.build(snap, v.hist, v.taste)
}

// Observations derives the intent policy's raw inputs from a user's state.
// mm reads the evidence of the slates shown since the last event (the
// model's ModeModel).
func Observations(snap *catalog.Snapshot, st *UserState, mm intent.ModeModel, now int64) intent.Observations {
	var v view
	v.build(snap, st.History, DefaultConfig().TasteDecay)
	return observations(snap, st, &v, resolveShown(nil, snap, st.Session.Shown), mm, now)
}

// observations is Observations from the history's view and the session's
// shown entries resolved (resolveShown).
func observations(snap *catalog.Snapshot, st *UserState, v *view, shown []int32, mm intent.ModeModel, now int64) intent.Observations {
	o := intent.Observations{
		NovelClicks:        float64(st.Stats.NovelClicks),
		FamiliarClicks:     float64(st.Stats.FamiliarClicks),
		HistoryLen:         len(st.History),
		SessionClicks:      float64(st.Session.Clicks),
		SessionSkips:       float64(st.Session.Skips),
		SessionNovelClicks: float64(st.Session.NovelClicks),
		SessionNovelEWMA:   st.Session.NovelEWMA,
		HistoryEntropy:     intent.Entropy(v.counts),
		SessionShown:       len(st.Session.Shown) > 0,
	}
	o.Rho, o.SessionChain = modeObservations(st, snap, &v.seen, shown, mm.OrDefault())
	if st.Session.Start > 0 && now > st.Session.Start {
		o.SessionMinutes = float64(now-st.Session.Start) / 60000
	}
	if nc := snap.NumCategories(); nc > 1 && len(st.Session.CategoryClicks) > 0 {
		counts := make([]float64, nc)
		for name, n := range st.Session.CategoryClicks {
			if c, ok := snap.CategoryIndex(name); ok {
				counts[c] += float64(n)
			}
		}
		o.SessionEntropy = intent.Entropy(counts)
	}
	return o
}

// Intent is the high level's view of a user without sampling: the state
// s_H, the distribution over levels and its argmax.
func (e *Engine) Intent(snap *catalog.Snapshot, st *UserState, m *Model, now int64) IntentDecision {
	return intentOf(m, Observations(snap, st, m.ModeModel(), now))
}

func intentOf(m *Model, obs intent.Observations) IntentDecision {
	x := m.Intent.Prior.State(make([]float64, intent.Dim), obs)
	mm := m.ModeModel()
	// The evidence is about the slates shown; the decision is for the
	// next, by which the mode may have switched.
	q := x[intent.FSessNovelPreference]
	if obs.SessionShown {
		q = mm.Predict(q)
	}
	// The belief is reported; the decisions act on what it puts at stake.
	x[intent.FSessNovelPreference] = m.NovelWorth(q)
	probs := m.Intent.Distribution(nil, x)
	z := intent.Argmax(probs)
	return IntentDecision{
		UserPropensity:    m.Intent.Prior.UserPropensity(obs),
		SessionPropensity: q,
		Level:             z,
		Probability:       probs[z],
		Probabilities:     probs,
		State:             x,
	}
}

// Decide makes one two-level decision for a user: the intent level, then the
// slate. rng drives both samplings; it may be nil only when
// req.Deterministic is set.
func (e *Engine) Decide(req Request, st *UserState, snap *catalog.Snapshot, m *Model, rng *rand.Rand) (Decision, error) {
	if snap == nil || m == nil {
		return Decision{}, errors.New("recommend: no catalog or model")
	}
	if req.K < 1 || req.K > MaxK {
		return Decision{}, fmt.Errorf("recommend: k=%d out of range 1..%d", req.K, MaxK)
	}
	if req.Deterministic {
		rng = nil
	} else if rng == nil {
		return Decision{}, errors.New("recommend: sampling needs an rng")
	}

	sc := e.scratch.Get().(*scratch)
	defer e.scratch.Put(sc)
	v := e.viewOf(sc, snap, st.History)
	if e.shown != nil {
		sc.shown = e.shown.resolve(sc.shown[:0], snap, st)
	} else {
		sc.shown = resolveShown(sc.shown[:0], snap, st.Session.Shown)
	}
	// The shown items' records and embeddings, read ahead in a loop of
	// their own (as in view.build): the mode evidence reads their topics,
	// hashes and embeddings, each a cache miss otherwise waited for in turn.
	// Without learned topics novelty is the categories' (Seen.Novelty) and
	// the embeddings are not read: only the records are worth reading.
	var noEmb []float32
	for _, i := range sc.shown {
		if i >= 0 {
			emb := noEmb
			if snap.NumTopics() > 0 {
				emb = snap.Embedding(i)
			}
			sc.readAhead(emb, snap.Hash(i))
		}
	}

	// High level.
	d := Decision{Intent: intentOf(m, observations(snap, st, v, sc.shown, m.ModeModel(), req.Now))}
	probs := d.Intent.Probabilities
	if rng != nil {
		if eps := e.cfg.IntentEpsilon; eps > 0 {
			// probs is this decision's own slice (intentOf allocates it).
			for i := range probs {
				probs[i] = (1-eps)*probs[i] + eps/float64(len(probs))
			}
		}
		d.Intent.Level = intent.Sample(probs, rng.Float64())
		d.Intent.Probability = probs[d.Intent.Level]
	}
	level := m.Intent.Levels[d.Intent.Level]

	// Candidates.
	taste := v.taste
	if taste != nil {
		d.Taste = slices.Clone(taste)
	}
	ex := exclusion{snap: snap, taken: &sc.taken, consumed: &st.Consumed}
	ex.taken.reset(snap.Len())
	for _, i := range v.hist {
		if i >= 0 {
			ex.taken.set(i)
		}
	}
	for _, i := range sc.shown {
		if i >= 0 {
			ex.taken.set(i)
		}
	}
	for _, id := range req.Exclude {
		markTaken(snap, ex.taken, id)
	}
	e.collabScores(sc, snap, v.hist)
	// Hedging: the explore intent gets the session posterior's share of
	// the positions, P(explore) as the mode model weighs it (NovelWorth),
	// and the novel pool holds that share so the slate can fill them. The
	// belief alone sets it, not the level, and the seats are filled by
	// relevance: the ranker leaves the level's β out of a hedged slate and
	// applies only its λ (ranker.Knobs.Beta). Letting a level add novel seats
	// beyond the belief's share cost hits on MovieLens and clicks where
	// the mode matters little, and bought no clicks where it matters
	// (docs/evaluation-intent.md).
	explore := 0.0
	if e.cfg.Hedge > 0 {
		explore = d.Intent.State[intent.FSessNovelPreference]
		level.NovelShare = explore
	}
	want := e.Pools(req.K, level, taste == nil)
	nCand := want.Familiar + want.Novel + want.Popular
	// Item neighbours of the recent history first, the learned space
	// around the taste vector for the rest of the familiar pool.
	pool, maxCollab := e.neighbors(sc.pool[:0], sc, &ex, int(math.Round(e.cfg.NeighborShare*float64(want.Familiar))))
	if want.Familiar > len(pool) {
		pool = e.familiar(pool, sc, &ex, taste, v.probe, want.Familiar-len(pool))
	}
	// The novel pool also takes what the familiar one could not fill, and
	// the popular pool whatever is still missing.
	pool = e.novel(pool, sc, &ex, &v.seen, taste, want.Novel+want.Familiar-len(pool))
	pool = popular(pool, snap, &ex, nCand-len(pool))

	sc.pool = pool
	// The candidates' embeddings and records, read ahead in a loop of
	// their own (as in view.build), so that their cache misses overlap.
	for _, i := range pool {
		sc.readAhead(m.embedding(snap, i), snap.Hash(i))
	}
	cands := slices.Grow(sc.cands[:0], len(pool))[:len(pool)]
	sc.cands = cands
	for j, i := range pool {
		c := &cands[j]
		c.Item = i
		c.Features = [ranker.NumFeatures]float64{} // the slice is pooled: no stale features
		c.Embedding = m.embedding(snap, i)
		if taste != nil {
			c.Features[ranker.FDot] = float64(catalog.Dot(taste, c.Embedding))
		}
		c.Features[ranker.FBias] = m.bias(snap, i)
		c.Features[ranker.FPopularity] = float64(snap.PopularityFeature(i))
		if maxCollab > 0 {
			c.Features[ranker.FCollab] = float64(sc.collab[i] / maxCollab)
		}
		c.Novelty, c.Novel = v.seen.Novelty(snap, i)
	}
	for _, i := range sc.touched {
		sc.collab[i] = 0
	}
	sc.touched = sc.touched[:0]

	// Low level.
	slots := m.Ranker.Slate(sc.slots[:0], &sc.ranker, cands, req.K, ranker.Knobs{Beta: level.Beta, Lambda: level.Lambda, Explore: explore, Hedge: e.cfg.Hedge, Greedy: e.cfg.Greedy}, rng)
	sc.slots = slots
	// The slate's item records and their ids' bytes, read in a loop of
	// their own (as in view.build): cache misses that the loop below, the
	// response and the impression would otherwise wait for one by one.
	for _, s := range slots {
		if id := snap.Item(cands[s.Candidate].Item).ID; id != "" {
			sc.touchHash += uint64(id[0])
		}
	}
	d.Items = make([]Scored, len(slots))
	for pos, s := range slots {
		c := &cands[s.Candidate]
		d.Items[pos] = Scored{
			Item:       c.Item,
			ItemID:     snap.Item(c.Item).ID,
			Position:   pos,
			Score:      s.Score,
			Propensity: s.Propensity,
			Novelty:    c.Novelty,
			Novel:      c.Novel,
			Features:   c.Features,
		}
	}
	return d, nil
}

// Config returns the engine's settings.
func (e *Engine) Config() Config { return e.cfg }

// Pools are the candidate pools' planned sizes for one decision.
type Pools struct {
	Familiar, Novel, Popular int
}

// Pools returns how many candidates a decision at level asks of each pool
// for a slate of k: the popular pool always takes Config.PopularShare (a
// prior that keeps strong items in reach at every level), the novel pool the
// level's NovelShare of the rest, the familiar pool what remains; a cold
// user (no known history) has no taste to be familiar with and gets the
// popular pool only, made diverse by the ranker. A pool that runs short
// (few unseen categories) is topped up by the next one, so these are the
// sizes asked for, not always the sizes served.
func (e *Engine) Pools(k int, level intent.Level, cold bool) Pools {
	n := max(e.cfg.Candidates, 4*k)
	if cold {
		return Pools{Popular: n}
	}
	pop := int(math.Ceil(e.cfg.PopularShare * float64(n)))
	nov := int(math.Round(level.NovelShare * float64(n-pop)))
	return Pools{Familiar: n - pop - nov, Novel: nov, Popular: pop}
}

func markTaken(snap *catalog.Snapshot, taken *marks, id string) {
	if i, ok := snap.Index(id); ok {
		taken.set(i)
	}
}

// exclusion says which items may not be candidates: those already taken
// (history, shown, excluded, already pooled) and those the user consumed.
// Items the filter said were not consumed are marked clean in taken.
type exclusion struct {
	snap     *catalog.Snapshot
	taken    *marks
	consumed *Filter
	// touch sums values read ahead of use (see pickBest), kept so that
	// the compiler keeps those reads.
	touch uint64
}

// excluded reports whether item i may not be a candidate. The filter's
// answer is remembered (a consumed item is marked taken, another clean),
// so each item is probed at most once per decision.
func (x *exclusion) excluded(i int32) bool {
	if x.taken.has(i) {
		return true
	}
	if x.consumed.N == 0 || x.taken.isClean(i) {
		return false
	}
	if x.consumed.Has(x.snap.Hash(i)) {
		x.taken.set(i)
		return true
	}
	x.taken.setClean(i)
	return false
}

// collabScores accumulates the item-to-item collaborative score of every
// neighbour of the user's Recent most recent items, Σ_k TasteDecay^k ·
// sim(h_k, j), into sc.collab (listing them in sc.touched), and returns the
// largest score of an item that may be recommended (0 when none).
func (e *Engine) collabScores(sc *scratch, snap *catalog.Snapshot, hist []int32) {
	if snap.NumTopics() == 0 && snap.LearnedVersion() == 0 {
		return
	}
	if len(sc.collab) != snap.Len() {
		sc.collab = make([]float32, snap.Len())
	}
	w := float32(1)
	for k, h := range hist {
		if k >= e.cfg.Recent {
			break
		}
		if h >= 0 {
			nbr, sim := snap.Neighbors(h)
			for p, j := range nbr {
				if sc.collab[j] == 0 {
					sc.touched = append(sc.touched, j)
				}
				sc.collab[j] += w * sim[p]
			}
		}
		w *= float32(e.cfg.TasteDecay)
	}
}

// neighbors appends the n untaken items of highest collaborative score
// and returns the highest score among untaken items, the scale of the
// ranker's collaborative feature (0 when no item scores).
func (e *Engine) neighbors(pool []int32, sc *scratch, ex *exclusion, n int) ([]int32, float32) {
	if len(sc.touched) == 0 {
		return pool, 0
	}
	best := sc.best[:0]
	for _, j := range sc.touched {
		if !ex.taken.has(j) {
			best = append(best, scoredItem{j, sc.collab[j]})
		}
	}
	best = pickBest(best, max(n, 1), ex)
	var top float32
	for k, b := range best {
		top = max(top, b.sim)
		if k < n {
			ex.taken.set(b.item)
			pool = append(pool, b.item)
		}
	}
	sc.best = best[:0]
	return pool, top
}

// pickBest moves the n best items of s that are not excluded to its front
// and returns them, in no particular order. It asks the exclusion only
// about items that could make the cut, a few times n rather than all of
// s: the consumed filter's probes are the costly part of a decision for a
// user who has consumed thousands of items.
func pickBest(s []scoredItem, n int, ex *exclusion) []scoredItem {
	got, rest := 0, s
	for got < n && len(rest) > 0 {
		m := min(len(rest), 2*(n-got))
		selectTop(rest, m)
		// The items' hashes, read ahead in a loop of their own, arrive
		// together rather than one cache miss per probe of the filter.
		if ex.consumed.N > 0 {
			for _, c := range rest[:m] {
				ex.touch += ex.snap.Hash(c.item)
			}
		}
		// Writing s[got] never overtakes the read position: got counts
		// kept items among those already read.
		for _, c := range rest[:m] {
			if !ex.excluded(c.item) {
				s[got] = c
				got++
			}
		}
		rest = rest[m:]
	}
	if got > n { // the last chunk may keep more than were missing
		selectTop(s[:got], n)
		got = n
	}
	return s[:got]
}

// familiar appends the n untaken items most similar to the taste vector,
// probing the embedding index's clusters probe on large catalogs.
func (e *Engine) familiar(pool []int32, sc *scratch, ex *exclusion, taste []float32, probe []int32, n int) []int32 {
	if n <= 0 {
		return pool
	}
	snap := ex.snap
	// Probing stops once it has several times the items needed: enough
	// for the top n, at a fraction of the cost of all nprobe clusters.
	ids, sims := snap.NearestIn(sc.ids[:0], sc.sims[:0], taste, probe, max(6*n, 500))
	sc.ids, sc.sims = ids, sims
	best := sc.best[:0]
	defer func() { sc.best = best[:0] }()
	for j, i := range ids {
		if !ex.taken.has(i) {
			best = append(best, scoredItem{i, sims[j]})
		}
	}
	best = pickBest(best, n, ex)
	for _, b := range best {
		ex.taken.set(b.item)
		pool = append(pool, b.item)
	}
	return pool
}

type scoredItem struct {
	item int32
	sim  float32
}

func (a scoredItem) before(b scoredItem) bool {
	return a.sim > b.sim || (a.sim == b.sim && a.item < b.item)
}

// compare orders best first, for sorting.
func (s scoredItem) compare(o scoredItem) int {
	switch {
	case s.before(o):
		return -1
	case o.before(s):
		return 1
	}
	return 0
}

// selectTop reorders s so that its first n elements are the n best, in
// no particular order. It is topk.Select's quickselect step for step (the
// same input gives the same order, so the pools and hence the slates do
// not change), written out for scoredItem: the generic version calls its
// comparison through a function value, which made the selections of a
// decision a sixth of its time.
func selectTop(s []scoredItem, n int) {
	lo, hi := 0, len(s)-1
	if n <= 0 || n >= len(s) {
		return
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if s[mid].before(s[lo]) {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi].before(s[lo]) {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi].before(s[mid]) {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i].before(pivot) {
				i++
			}
			for pivot.before(s[j]) {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case n-1 <= j:
			hi = j
		case n-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// novel appends up to n items novel to the user, relevant ones first:
// half from the collaborative neighbours of the recent history that lie in
// topics the user has not consumed (what people with this taste went on to
// discover), the rest round-robin over the unseen topics nearest the taste
// vector, most popular first, then over the categories absent from the
// history (for cold items, which have no topic), so the pool spans topics
// without drifting to ones the user has no affinity for.
func (e *Engine) novel(pool []int32, sc *scratch, ex *exclusion, seen *Seen, taste []float32, n int) []int32 {
	if n <= 0 {
		return pool
	}
	snap := ex.snap
	if len(sc.touched) > 0 {
		best := sc.best[:0]
		for _, j := range sc.touched {
			if !ex.taken.has(j) && snap.Topic(j) >= 0 && !seen.TopicSeen(snap.Topic(j)) {
				best = append(best, scoredItem{j, sc.collab[j]})
			}
		}
		for _, b := range pickBest(best, (n+1)/2, ex) {
			ex.taken.set(b.item)
			pool = append(pool, b.item)
			n--
		}
		sc.best = best[:0]
	}
	var lists [][]int32
	if nt := snap.NumTopics(); nt > 0 {
		var sims []float32
		if taste != nil {
			sims = snap.TopicSims(sc.sims[:0], taste)
			sc.sims = sims
		}
		topics := sc.best[:0]
		for t := int32(0); int(t) < nt; t++ {
			if !seen.TopicSeen(t) {
				var sim float32
				if sims != nil {
					sim = sims[t]
				}
				topics = append(topics, scoredItem{t, sim})
			}
		}
		// Enough topics for the pool, nearest first.
		m := min(len(topics), 2*n)
		selectTop(topics, m)
		topics = topics[:m]
		slices.SortFunc(topics, scoredItem.compare)
		for _, t := range topics {
			lists = append(lists, snap.PopularInTopic(t.item))
		}
		sc.best = topics[:0]
	}
	for c := int32(0); int(c) < snap.NumCategories(); c++ {
		if !seen.CategorySeen(c) {
			lists = append(lists, snap.PopularIn(c))
		}
	}
	next := make([]int, len(lists))
	// An item of an unseen category may have a seen topic or carry a seen
	// category too; the scan budget keeps a user who has seen almost
	// everything from walking the whole catalog.
	budget := 40 * n
	for added, progress := 0, true; added < n && progress && budget > 0; {
		progress = false
		for l, list := range lists {
			for next[l] < len(list) && budget > 0 {
				i := list[next[l]]
				next[l]++
				budget--
				// Whether it is novel first: that reads the item's own
				// record, where the consumed filter's probes are the
				// costly part of a scan that rejects most of what it reads
				// (the answer is the same either way round).
				if ex.taken.has(i) || !seen.IsNovel(snap, i) || ex.excluded(i) {
					continue
				}
				ex.taken.set(i)
				pool = append(pool, i)
				added++
				progress = true
				break
			}
			if added == n {
				break
			}
		}
	}
	return pool
}

// popular appends up to n of the most popular untaken items.
func popular(pool []int32, snap *catalog.Snapshot, ex *exclusion, n int) []int32 {
	for _, i := range snap.Popular() {
		if n <= 0 {
			break
		}
		if ex.excluded(i) {
			continue
		}
		ex.taken.set(i)
		pool = append(pool, i)
		n--
	}
	return pool
}

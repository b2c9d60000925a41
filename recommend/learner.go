package recommend

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
)

// RewardWeights are the novelty and diversity terms of the reward
// r = Σ_clicked (1 + w_nov·surprise(i)) + w_div·diversity(slate); they are
// what A/B variants change.
type RewardWeights struct {
	Novelty   float64 `json:"w_nov" yaml:"w_nov"`
	Diversity float64 `json:"w_div" yaml:"w_div"`
}

// DefaultRewardWeights is the ×4 boost for surprising clicks of Chen et al.
// (2021) and a small diversity term.
var DefaultRewardWeights = RewardWeights{Novelty: 3, Diversity: 0.1}

// LearnerConfig sets the learning rates and corrections of both levels.
type LearnerConfig struct {
	Reward RewardWeights
	// RankerLR is the step size of θ; BiasLR of item biases; EmbeddingLR of
	// item embeddings.
	RankerLR, BiasLR, EmbeddingLR float64
	// IntentLR is the step size of the high-level policy, BaselineLR of its
	// baseline V, IntentEntropy the weight of its entropy bonus.
	IntentLR, BaselineLR, IntentEntropy float64
	// Clip caps importance weights π/β of both levels.
	Clip float64
	// GammaH discounts the high level's bootstrapped return r_t + γ_H·V(s_{t+1}).
	GammaH float64
	// ModeWindow is how many shown items of the most recent sessions the
	// mode model and the population prior are fitted to (intent.ModeLog),
	// ModeRefit how many slates pass between fits once the first few are
	// made (0: never fit; modeRefitInterval), and ModeIters how many EM
	// iterations a fit takes, each warm-started from the last (the first
	// takes five times as many).
	ModeWindow, ModeRefit, ModeIters int
	// ModeRoutine fits the mode model's Routine too (intent.ModeLog.FitRoutine;
	// on by default); off, it stays 0. The simulator, whose exploring users
	// are bored by familiar slates, rewards it (session AUC from the second
	// slate 0.855 against 0.816, +0.66 clicks per user); through the HTTP
	// API, on a client with its own user model, it read the modes as well
	// or better since novelty weighs the categories a client sees, where
	// before it misread them (docs/evaluation-http.md#routine-fitted).
	ModeRoutine bool
	// ModeSwitch fits the mode's switch rates within a session too
	// (intent.ModeLog.FitSwitch; on by default); off, a session keeps its
	// mode. The simulator, whose sessions switch, rewards it (AUC from the
	// second slate 0.82 against 0.78; 1.1 clicks per user at w_nov = 3).
	// Through the HTTP API, on a client whose sessions never switch, the
	// fit found a drift toward exploring that read loyal users'
	// exploiting sessions as more exploring slate by slate; off, the
	// modes were read better there, at the same clicks
	// (docs/evaluation-http.md#an-independent-http-client).
	ModeSwitch bool
	// ModeBelief publishes the fit as the model that reads each session's
	// evidence (intent.Policy.Mode; on by default). Off, it is published as
	// intent.Policy.Worth and only decides whether novel items pay at all
	// (Model.NovelWorth), and the evidence is read with the default model.
	ModeBelief bool
	// ModePrior publishes the fit's population prior of ρ_u too
	// (intent.Policy.Prior); off (the default), the prior stays
	// intent.DefaultPrior. The prior is what a fit gets wrong on traffic
	// it was not built for: through the HTTP API it read an independent
	// client's population as mostly exploring (a mean of 0.67 where 0.45
	// explore), and since users with more evidence move further from a
	// prior, that ranked loyal users above explorers; the fitted evidence
	// model with the default prior read them as well as the default model
	// did (docs/evaluation-http.md#an-independent-http-client).
	ModePrior bool
	// Hedge is the serving engine's hedging (Config.Hedge, recsvc -hedge):
	// the learner scores a logged slate's items as the ranker served them,
	// and a hedged slate's scores leave out the levels' β
	// (ranker.Knobs.Beta). Set it to what recsvc serves with.
	Hedge float64
}

// DefaultLearnerConfig are conservative rates that learn within a few
// hundred events without oscillating (see the learner tests). The low
// level's rates are small because Click's step already carries λ_K ≤ K and
// 1/τ (12.5 at the default temperature): at 0.002 one click moved an item's
// bias by up to ~0.25, more than the whole relevance spread of a slate, and
// in the simulator every policy that learned from clicks did worse than the
// same policy frozen; a tenth of those rates (these) still cost the
// relevance baseline 1.3 clicks per user in the simulator (27.1 against
// 28.4 frozen, 1000 users × 5 seeds), but a hundredth cost the MovieLens
// replay a fifth of its accuracy (HR@10 of the HRL 0.0235 → 0.0188), and
// the simulator's clicks come from fixed topic affinities that learned
// embeddings cannot improve on, so the rates stay. The high level's
// step is 0.005: at 0.02 learning pulled the prior policy from 29.7 to 28.1
// clicks per user (w_nov = 0), at 0.005 it stays at 29.6.
func DefaultLearnerConfig() LearnerConfig {
	return LearnerConfig{
		Reward:   DefaultRewardWeights,
		RankerLR: 0.00002, BiasLR: 0.0002, EmbeddingLR: 0.0002,
		IntentLR: 0.005, BaselineLR: 0.05, IntentEntropy: 0.01,
		Clip:       5,
		GammaH:     0.9,
		ModeWindow: 50_000, ModeRefit: 10_000, ModeIters: 4, ModeBelief: true, ModeSwitch: true, ModeRoutine: true,
		Hedge: DefaultConfig().Hedge,
	}
}

// LoggedItem is one shown item of a logged slate.
type LoggedItem struct {
	ItemID     string
	Position   int
	Propensity float64
	Novelty    float64
	// Novel says whether the item was novel to the user (ranker.Candidate):
	// under hedging it decides which intent's seats the item competed for.
	Novel bool
	// Score is the adjusted score the ranker chose the item with.
	Score    float64
	Features [ranker.NumFeatures]float64
}

// LoggedSlate is one logged two-level decision, as rec.impressions carries it.
type LoggedSlate struct {
	RequestID string
	UserID    string
	SessionID string
	TS        int64
	// Level, LevelProb and State are the high-level decision and its input.
	Level     int
	LevelProb float64
	State     []float64
	// Taste is the user's taste vector at serving time (nil when cold).
	Taste []float32
	Items []LoggedItem
}

// Learner updates both levels of a model from logged decisions and their
// outcomes. It is pure computation over its own working copy of the model,
// shared by the trainer (fed from Kafka), offline replay and the simulator;
// it is not safe for concurrent use. Snapshot hands out immutable copies.
type Learner struct {
	cfg     LearnerConfig
	m       *Model
	updates int64
	// modes is the window the mode model is fitted to; sinceFit counts
	// the slates added since the last fit, fits the fits made.
	modes          *intent.ModeLog
	sinceFit, fits int
	// fitPrior is the last fit's population prior, where ModePrior is off
	// and it is not published: the next fit starts from it.
	fitPrior intent.Prior
	// Click's buffers, reused so that a click allocates nothing: the
	// slate's scores, softmax weights and features.
	p, probs []float64
	feats    [][ranker.NumFeatures]float64
	// touched holds the items whose parameters changed since the last
	// TakeTouched (nil until the first call: not tracked); touchedAll
	// that items were dropped wholesale since.
	touched    map[string]struct{}
	touchedAll bool
}

// NewLearner starts learning from a copy of start.
func NewLearner(cfg LearnerConfig, start *Model) *Learner {
	return &Learner{cfg: cfg, m: cloneModel(start)}
}

// Updates counts the updates applied so far (clicks and decisions).
func (l *Learner) Updates() int64 { return l.updates }

// Config returns the learner's configuration.
func (l *Learner) Config() LearnerConfig { return l.cfg }

// SetReward changes the reward weights (an A/B variant's configuration).
func (l *Learner) SetReward(w RewardWeights) { l.cfg.Reward = w }

// Snapshot returns an immutable deep copy of the current model under version.
func (l *Learner) Snapshot(version string) *Model {
	m := cloneModel(l.m)
	m.Version = version
	return m
}

// Model exposes the working model for reading (e.g. to serve from it in the
// same goroutine in replay). Callers must not keep it across updates.
func (l *Learner) Model() *Model { return l.m }

// TakeTouched adds to dst the items whose learned parameters the learner
// changed or added since the last call, and starts over. all reports that
// the set does not cover every change — items were dropped wholesale since
// (SeedEmbeddings), or this is the first call, before which nothing was
// tracked — so only comparing every item finds them. A commit that writes
// the changed items thus costs what was touched, not the model's size.
func (l *Learner) TakeTouched(dst map[string]struct{}) (all bool) {
	if l.touched == nil {
		l.touched = map[string]struct{}{}
		return true
	}
	for id := range l.touched {
		dst[id] = struct{}{}
	}
	all = l.touchedAll
	clear(l.touched)
	l.touchedAll = false
	return all
}

// touch notes that item id's parameters changed, when tracked.
func (l *Learner) touch(id string) {
	if l.touched != nil {
		l.touched[id] = struct{}{}
	}
}

// Clone is a deep copy of m: its intent policy, ranker, item biases and
// embeddings, none shared with m.
func (m *Model) Clone() *Model { return cloneModel(m) }

func cloneModel(src *Model) *Model {
	m := &Model{Version: src.Version, Intent: src.Intent.Clone(), Ranker: src.Ranker}
	if len(src.ItemBias) > 0 {
		m.ItemBias = make(map[string]float32, len(src.ItemBias))
		for k, v := range src.ItemBias {
			m.ItemBias[k] = v
		}
	}
	if len(src.ItemEmb) > 0 {
		m.ItemEmb = make(map[string][]float32, len(src.ItemEmb))
		for k, v := range src.ItemEmb {
			m.ItemEmb[k] = append([]float32(nil), v...)
		}
	}
	return m
}

// Diversity is 1 − the mean pairwise category overlap (Jaccard) of the
// slate's items: the intra-list diversity term of the reward.
func Diversity(snap *catalog.Snapshot, items []string) float64 {
	idx := make([]int32, 0, len(items))
	for _, id := range items {
		if i, ok := snap.Index(id); ok {
			idx = append(idx, i)
		}
	}
	return DiversityOf(snap, idx)
}

// DiversityOf is Diversity for items given by snapshot index, without the id
// lookups (replay's hot loop uses it).
func DiversityOf(snap *catalog.Snapshot, idx []int32) float64 {
	if len(idx) < 2 {
		return 0
	}
	sum, pairs := 0.0, 0
	for a := 0; a < len(idx); a++ {
		ca := snap.Categories(idx[a])
		for b := a + 1; b < len(idx); b++ {
			sum += Jaccard(ca, snap.Categories(idx[b]))
			pairs++
		}
	}
	return 1 - sum/float64(pairs)
}

// Jaccard is |a∩b| / |a∪b| of two sets of category indexes without
// duplicates; two empty sets are identical (1).
func Jaccard(a, b []int32) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter := 0
	for _, x := range a {
		for _, y := range b {
			if x == y {
				inter++
				break
			}
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// Reward is r_t of one impression: the clicked positions' 1 + w_nov·surprise
// plus w_div times the slate's diversity.
func (l *Learner) Reward(s *LoggedSlate, clicked []int, diversity float64) float64 {
	r := l.cfg.Reward.Diversity * diversity
	for _, pos := range clicked {
		if it := s.item(pos); it != nil {
			r += 1 + l.cfg.Reward.Novelty*it.Novelty
		}
	}
	return r
}

func (s *LoggedSlate) item(pos int) *LoggedItem {
	for i := range s.Items {
		if s.Items[i].Position == pos {
			return &s.Items[i]
		}
	}
	return nil
}

// ErrNotInSlate is returned for a click on an item the slate did not show.
var ErrNotInSlate = errors.New("recommend: clicked item not in slate")

// Click is the low level's learning rule, applied as soon as a click is
// known: REINFORCE with the top-K off-policy correction (Chen et al., WSDM
// 2019). The click on item a earns R = 1 + w_nov·nov(a). The ranker's
// softmax ran over a candidate set the log does not hold, so the slate's
// items that competed with a for its seat stand in for it (a sampled
// softmax): the step is
//
//	w · λ_K · R · ∇log softmax_rivals(a),   λ_K = K(1−β)^(K−1) capped at K,
//
// with β the logged propensity of a (its probability at its position among
// all candidates, the π of Chen et al., small for a large candidate set), and
// w = min(π_now/π_logged, c) the importance weight of the current policy
// against the logging one for that choice, from current scores and the
// logged ones. The gradient reaches θ, the rivals' biases and their
// embeddings (projected back to the unit sphere). It returns the reward
// credited.
//
// a's rivals are the items the ranker chose from when it placed a (the
// slate's items at a's position or below) and, when the slate was hedged,
// only those of a's intent (novel or not, LoggedItem.Novel): the hedge's
// seat, not θ, put a novel item next to familiar ones. Comparing across
// intents, as the whole slate did before, taught θ which intent the
// seats favoured, and θ drifted: measured, learning θ then cost clicks
// against θ frozen, most of all under argmax serving (−1.6 clicks per
// user), and at w_nov = 3 it pushed slates to novel items that were
// clicked less (docs/evaluation-intent.md).
func (l *Learner) Click(s *LoggedSlate, itemID string) (float64, error) {
	a := -1
	for i := range s.Items {
		if s.Items[i].ItemID == itemID {
			a = i
			break
		}
	}
	if a < 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotInSlate, itemID)
	}
	pos := s.Items[a].Position
	tau := l.m.Ranker.Temperature
	level := l.m.Intent.Levels[min(max(s.Level, 0), len(l.m.Intent.Levels)-1)]
	n := len(s.Items)
	feats := slices.Grow(l.feats[:0], n)[:n]
	l.feats = feats
	scores := slices.Grow(l.p[:0], n)[:n]
	for i := range s.Items {
		f := s.Items[i].Features
		if e, ok := l.m.ItemEmb[s.Items[i].ItemID]; ok && len(s.Taste) == len(e) {
			f[ranker.FDot] = float64(catalog.Dot(s.Taste, e))
		}
		f[ranker.FBias] = float64(l.m.ItemBias[s.Items[i].ItemID])
		feats[i] = f
		c := ranker.Candidate{Features: f, Novelty: s.Items[i].Novelty}
		scores[i] = l.m.Ranker.Score(&c, ranker.Knobs{Beta: level.Beta, Hedge: l.cfg.Hedge}) / tau
	}
	l.p = scores

	hedged := l.cfg.Hedge > 0
	rival := func(j int) bool {
		it := &s.Items[j]
		return it.Position >= pos && (!hedged || it.Novel == s.Items[a].Novel)
	}
	// Importance weight for the choice at pos among a's rivals.
	w := 1.0
	now := rivalShare(s, a, rival, func(i int) float64 { return scores[i] })
	if logged := rivalShare(s, a, rival, func(i int) float64 { return s.Items[i].Score / tau }); logged > 0 {
		w = math.Min(now/logged, l.cfg.Clip)
	}
	k := float64(n)
	lambdaK := k
	if beta := s.Items[a].Propensity; beta > 0 && beta < 1 {
		lambdaK = math.Min(k*math.Pow(1-beta, k-1), k)
	}
	reward := 1 + l.cfg.Reward.Novelty*s.Items[a].Novelty
	step := w * lambdaK * reward / tau

	// Sampled softmax over the rivals: ∇ = Σ_j (1[j=a] − p_j) φ_j.
	maxS := math.Inf(-1)
	for j, x := range scores {
		if rival(j) {
			maxS = math.Max(maxS, x)
		}
	}
	total := 0.0
	probs := slices.Grow(l.probs[:0], n)[:n]
	l.probs = probs
	for i, x := range scores {
		probs[i] = 0
		if rival(i) {
			probs[i] = math.Exp(x - maxS)
		}
		total += probs[i]
	}
	var gTheta [ranker.NumFeatures]float64
	for j := range s.Items {
		if !rival(j) {
			continue
		}
		g := -probs[j] / total
		if j == a {
			g += 1
		}
		for f := range gTheta {
			gTheta[f] += g * feats[j][f]
		}
		id := s.Items[j].ItemID
		// Item bias: ∂score/∂b = θ_bias.
		if l.cfg.BiasLR > 0 {
			if l.m.ItemBias == nil {
				l.m.ItemBias = map[string]float32{}
			}
			l.m.ItemBias[id] += float32(l.cfg.BiasLR * step * g * l.m.Ranker.Theta[ranker.FBias])
			l.touch(id)
		}
		// Item embedding: ∂score/∂v = θ_dot·u.
		if l.cfg.EmbeddingLR > 0 && len(s.Taste) > 0 {
			l.updateEmbedding(id, s.Taste, l.cfg.EmbeddingLR*step*g*l.m.Ranker.Theta[ranker.FDot])
		}
	}
	for f := range gTheta {
		l.m.Ranker.Theta[f] += l.cfg.RankerLR * step * gTheta[f]
	}
	l.updates++
	return reward, nil
}

// rivalShare is the softmax probability of item a among the slate's items
// that rival says competed with it, under the scores given by score
// (already divided by the temperature).
func rivalShare(s *LoggedSlate, a int, rival func(int) bool, score func(int) float64) float64 {
	maxS := math.Inf(-1)
	for i := range s.Items {
		if rival(i) {
			maxS = math.Max(maxS, score(i))
		}
	}
	total := 0.0
	for i := range s.Items {
		if rival(i) {
			total += math.Exp(score(i) - maxS)
		}
	}
	return math.Exp(score(a)-maxS) / total
}

// updateEmbedding moves item id's learned embedding by step·u and projects
// it back to unit length. An item without a learned embedding starts from
// the logged taste direction's complement: we do not have the catalog's
// vector here, so the learner records only the update direction until the
// trainer seeds it (see SeedEmbedding).
func (l *Learner) updateEmbedding(id string, u []float32, step float64) {
	e, ok := l.m.ItemEmb[id]
	if !ok {
		return
	}
	l.touch(id)
	var n float64
	for x := range e {
		e[x] += float32(step) * u[x]
		n += float64(e[x]) * float64(e[x])
	}
	if n == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(n))
	for x := range e {
		e[x] *= inv
	}
}

// SeedEmbeddings gives every slate item without a learned embedding its
// catalog embedding, so Click can learn it. The trainer calls it with the
// current catalog snapshot before Click.
//
// With a collaborative model in the catalog it seeds nothing and drops the
// embeddings learned so far: items are then represented by the
// collaborative model, learned from all consumption, and refitted into a
// new space now and then, where embeddings moved by slate clicks alone
// would be stale (on the MovieLens replay they cost the learning policies
// an eighth of their hit rate). θ and item biases keep learning.
func (l *Learner) SeedEmbeddings(snap *catalog.Snapshot, s *LoggedSlate) {
	if snap.LearnedVersion() != 0 {
		if l.m.ItemEmb != nil {
			l.touchedAll = true
		}
		l.m.ItemEmb = nil
		return
	}
	if l.cfg.EmbeddingLR <= 0 || len(s.Taste) != snap.Dim {
		return
	}
	if l.m.ItemEmb == nil {
		l.m.ItemEmb = map[string][]float32{}
	}
	for _, it := range s.Items {
		if _, ok := l.m.ItemEmb[it.ItemID]; ok {
			continue
		}
		if i, ok := snap.Index(it.ItemID); ok {
			l.m.ItemEmb[it.ItemID] = append([]float32(nil), snap.Embedding(i)...)
			l.touch(it.ItemID)
		}
	}
}

// Decision is the high level's learning rule, applied when the outcome of a
// logged decision is known: advantage actor-critic on the session time
// scale. reward is r_t of the decision's impression (see Reward); next is the
// state of the user's next decision in the same session, or nil when the
// session ended (then returnBonus is added if the user came back later).
// The return target r_t + γ_H·V(s_{t+1}) bootstraps the rest of the
// session, so the policy learns from each decision without waiting for the
// session to end; the step is importance-weighted by π_H/π_H,logged and
// clipped (intent.Policy.Update). It returns the advantage.
func (l *Learner) Decision(s *LoggedSlate, reward float64, next []float64, returnBonus float64) (float64, error) {
	p := l.m.Intent
	if len(s.State) != intent.Dim {
		return 0, fmt.Errorf("recommend: logged state has %d features, want %d", len(s.State), intent.Dim)
	}
	if s.Level < 0 || s.Level >= p.K() {
		return 0, fmt.Errorf("recommend: logged level %d out of range", s.Level)
	}
	target := reward + returnBonus
	if len(next) == intent.Dim {
		target = reward + l.cfg.GammaH*p.Baseline(next)
	}
	adv := p.Update(s.State, s.Level, s.LevelProb, target, intent.Step{
		LR: l.cfg.IntentLR, BaselineLR: l.cfg.BaselineLR, Clip: l.cfg.Clip, Entropy: l.cfg.IntentEntropy,
	})
	l.updates++
	return adv, nil
}

// ObserveSlate records the outcome of a logged slate, the positions that
// were clicked, for the fit of the mode model and the population prior
// (intent.ModeLog.Fit), and refits them every ModeRefit slates. A fit
// changes the model's Intent.Mode and Intent.Prior, which reach serving
// with the next snapshot.
func (l *Learner) ObserveSlate(s *LoggedSlate, clicked []int) {
	if l.cfg.ModeRefit <= 0 || len(s.Items) == 0 {
		return
	}
	if l.modes == nil {
		l.modes = intent.NewModeLog(l.cfg.ModeWindow)
		l.modes.FitRoutine, l.modes.FitSwitch = l.cfg.ModeRoutine, l.cfg.ModeSwitch
	}
	var (
		nbuf [16]float64
		cbuf [16]bool
	)
	nov, clk := nbuf[:0], cbuf[:0]
	items := s.Items
	if !slices.IsSortedFunc(items, func(a, b LoggedItem) int { return a.Position - b.Position }) {
		items = slices.SortedFunc(slices.Values(items), func(a, b LoggedItem) int { return a.Position - b.Position })
	}
	for _, it := range items {
		nov = append(nov, it.Novelty)
		clk = append(clk, slices.Contains(clicked, it.Position))
	}
	l.modes.Add(s.UserID, s.SessionID, s.TS, nov, clk)
	if l.sinceFit++; l.sinceFit < modeRefitInterval(l.cfg.ModeRefit, l.fits) {
		return
	}
	l.sinceFit = 0
	iters := max(l.cfg.ModeIters, 1)
	if l.fits == 0 {
		iters *= 5
	}
	p := l.m.Intent
	from, prior := p.Mode.OrDefault(), p.Prior
	if !l.cfg.ModeBelief && p.Worth != (intent.ModeModel{}) {
		from = p.Worth
	}
	if !l.cfg.ModePrior && l.fitPrior.Alpha > 0 {
		prior = l.fitPrior
	}
	// A fit that is not a valid model (it cannot be, short of a bug, but
	// a snapshot that fails validation would stop publishing) is dropped.
	mm, prior, _, ok := l.modes.Fit(from, prior, iters)
	if !ok || mm.Validate() != nil || !(prior.Alpha > 0 && prior.Beta > 0) {
		return
	}
	l.fits++
	// The worth is always the latest fit, so that no earlier fit under
	// the other setting outlives it (Model.WorthModel) and replicas
	// average fits with fits (trainer mergeModes).
	p.Worth = mm
	if l.cfg.ModeBelief {
		p.Mode = mm
	}
	if l.cfg.ModePrior {
		p.Prior = prior
	} else {
		l.fitPrior = prior
	}
}

// modeRefitWarmup is how many times the interval between the first fits
// doubles before it reaches ModeRefit.
const modeRefitWarmup = 3

// modeRefitInterval is how many slates pass before the next fit after the
// first fits: ModeRefit/8, /4, /2, then ModeRefit. The first fits matter
// most, since until then the default model serves, which reads a strong
// mode (in the simulator with a weak one, fitting first after 10,000
// slates instead of 2,000 cost 1.1 clicks per user); later fits follow a
// window that turns over slowly, and each costs the same (27 ms at the
// default window).
func modeRefitInterval(every, fits int) int {
	if fits >= modeRefitWarmup {
		return every
	}
	return max(every>>(modeRefitWarmup-fits), 1)
}

// Logged turns a decision into the record a learner learns from, as the
// impression event carries it; replay and the simulator use it directly.
func (d *Decision) Logged(requestID, userID, sessionID string, ts int64) LoggedSlate {
	s := LoggedSlate{
		RequestID: requestID, UserID: userID, SessionID: sessionID, TS: ts,
		Level: d.Intent.Level, LevelProb: d.Intent.Probability, State: d.Intent.State, Taste: d.Taste,
		Items: make([]LoggedItem, len(d.Items)),
	}
	for i, it := range d.Items {
		s.Items[i] = LoggedItem{ItemID: it.ItemID, Position: it.Position, Propensity: it.Propensity, Novelty: it.Novelty, Novel: it.Novel, Score: it.Score, Features: it.Features}
	}
	return s
}

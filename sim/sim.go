package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// Result is what one run of one policy against one simulated population
// measured. All rates are over the whole run.
type Result struct {
	Policy string `json:"policy"`
	Seed   uint64 `json:"seed"`
	Users  int    `json:"users"`

	// Counts.
	Decisions   int64 `json:"decisions"`
	Impressions int64 `json:"impressions"`
	Clicks      int64 `json:"clicks"`
	NovelClicks int64 `json:"novel_clicks"`
	Sessions    int64 `json:"sessions"`
	// Returns counts the sessions after which the user came back, out of
	// ReturnChances (sessions that did not end at the session cap).
	Returns       int64 `json:"returns"`
	ReturnChances int64 `json:"return_chances"`

	// ClicksPerUser is the long-term engagement: clicks over all sessions
	// per user of the population.
	ClicksPerUser float64 `json:"clicks_per_user"`
	// CTR is clicks per shown item.
	CTR float64 `json:"ctr"`
	// ReturnRate is Returns / ReturnChances.
	ReturnRate float64 `json:"return_rate"`
	// SessionsPerUser is the mean number of sessions a user had.
	SessionsPerUser float64 `json:"sessions_per_user"`
	// Novelty is the mean nov(u,i) of shown items against the user's
	// history (user-level novelty).
	Novelty float64 `json:"novelty"`
	// SelfInformation is the mean population-level novelty of shown items,
	// −log2((c_i+1)/(U+1)) with c_i the users who had consumed i when it
	// was shown and U the population size.
	SelfInformation float64 `json:"self_information"`
	// ILD is the mean intra-list diversity of slates (recommend.Diversity,
	// 1 − mean pairwise category Jaccard).
	ILD float64 `json:"ild"`
	// TopicsPerUser is the mean number of topics a user clicked during the
	// run that were not in their initial history.
	TopicsPerUser float64 `json:"topics_per_user"`
	// NovelClickShare is the share of clicks on surprising items (no
	// category in the user's history): serendipity per click.
	NovelClickShare float64 `json:"novel_click_share"`
	// Engagement holds clicks per user in the s-th session (users without
	// an s-th session count as 0), so it sums to ClicksPerUser.
	Engagement []float64 `json:"engagement"`
	// Active holds the share of users who had an s-th session.
	Active []float64 `json:"active"`
	// ExploreCTR and ExploitCTR are clicks per shown item in the decisions
	// served while the user's true mode was explore and exploit, and
	// ExploreNovel and ExploitNovel the share of those slates' items that
	// were novel (a topic new to the user): where a policy wins or loses
	// against the oracle, which serves each mode its own level.
	ExploreCTR   float64 `json:"explore_ctr"`
	ExploitCTR   float64 `json:"exploit_ctr"`
	ExploreNovel float64 `json:"explore_novel"`
	ExploitNovel float64 `json:"exploit_novel"`

	// IntentModeled is set for policies that estimate intent (the HRL);
	// the scores below are meaningful only then.
	IntentModeled bool `json:"intent_modeled"`
	// SessionAUC is the AUC of the decisions' session propensity against
	// the true mode (explore = positive) at that step; SessionAUCFirst
	// counts only a session's first slate (where the estimate can only
	// come from earlier sessions), SessionAUCLater the others.
	SessionAUC      float64 `json:"session_auc"`
	SessionAUCFirst float64 `json:"session_auc_first"`
	SessionAUCLater float64 `json:"session_auc_later"`
	// SessionAUCFirstBound is what SessionAUCFirst could be at best from
	// the run's sessions: the AUC on each session's first slate of the
	// posterior mean of ρ_u under the simulator's own Beta prior given the
	// true starting mode of every earlier session of the user, an oracle
	// that reads past sessions without error. A user's first session has
	// nothing to go on, whatever the estimator.
	SessionAUCFirstBound float64 `json:"session_auc_first_bound"`
	// UserCorrelation is the Pearson correlation between the user
	// propensity at each user's last decision and ρ_u.
	UserCorrelation float64 `json:"user_correlation"`
	// UserCorrelationBound is the same correlation for that oracle at the
	// user's last decision, from the sessions before it (those the user
	// propensity has folded): how well ρ_u can be known from as many
	// sessions as the user had.
	UserCorrelationBound float64 `json:"user_correlation_bound"`
	// SessionCalibration is the expected calibration error of the session
	// propensity as P(explore): over ten bins of the propensity, the mean
	// gap between the bin's propensity and its share of exploring
	// decisions, weighted by the bin's decisions. AUC only ranks; a policy
	// acts on the probability itself.
	SessionCalibration float64 `json:"session_calibration"`
	// Mode and Prior are the policy's mode model and population prior at
	// the end of the run: what it fitted to the run's sessions, to set
	// against the simulator's (Beta(RhoA, RhoB), ModeWeight).
	Mode  intent.ModeModel `json:"mode"`
	Prior intent.Prior     `json:"prior"`
	// Worth is the fitted model whose verdict on whether novelty pays the
	// decisions took (recommend.Model.WorthModel): the latest fit, which
	// is Mode too unless ModeBelief is off.
	Worth intent.ModeModel `json:"worth"`
}

// ModeAware is implemented by reference policies that are told the user's
// true mode before each decision (the oracle of the tests). Run calls SetMode
// right before Recommend.
type ModeAware interface {
	SetMode(explore bool)
}

// Simulated time: sessions a day apart, slates a minute apart.
const (
	startMS   = int64(1_700_000_000_000)
	dayMS     = int64(24 * 3600 * 1000)
	stepMS    = int64(60 * 1000)
	historyMS = int64(3600 * 1000)
)

// simUser is one simulated user.
type simUser struct {
	st  recommend.UserState
	rng *rand.Rand
	rho float64
	// aff is the affinity per catalog category.
	aff []float64
	// initial marks the categories of the initial history; clickedCats
	// those clicked during the run.
	initial, clickedCats []bool
	active               bool
	// shown lists the current session's shown items (the service keeps
	// them under their own key, which Observe does not reset).
	shown      []string
	latent     []float64
	lastUP     float64
	hasDecided bool
	// sessions and explored count the user's sessions so far and those
	// that started exploring, for the oracle bounds.
	sessions, explored int
	// lastBound is the oracle's estimate at the start of the latest
	// session, when the policy's user propensity knows the same sessions.
	lastBound float64
}

// runner is one run's working state.
type runner struct {
	cfg  Config
	snap *catalog.Snapshot
	p    policy.Policy
	prng *rand.Rand
	res  Result
	// consumers counts the users who have consumed each item.
	consumers []int32
	// intent scores, and whether each was a session's first slate.
	scores []float64
	labels []bool
	first  []bool
	// boundScores and boundLabels are the oracle's ρ_u posterior mean and
	// the true mode at each session's first slate.
	boundScores []float64
	boundLabels []bool
	// quality and latent are the items' hidden quality and factors.
	quality []float64
	latent  []float64
	// per-decision buffers.
	nov     []float64
	ids     []string
	clicked []string
	sumNov  float64
	sumInfo float64
	sumILD  float64
	sessEng []float64
	sessAct []float64
	// byMode sums shown items, clicks and novel items per true mode
	// (0 exploit, 1 explore).
	byMode [2]struct{ shown, clicks, novel float64 }
	obs    Observer
}

// Observer sees what a run's users are shown and what they do, in event
// order, so that a run can be kept as the service's event log (see
// replay.Recorder) and analysed offline like real traffic.
type Observer interface {
	// Shown is called for every decision served to user in session at
	// now (Unix ms).
	Shown(user, session string, now int64, d *recommend.Decision)
	// Reacted is called for every item the user examined, in order: typ
	// is recommend.Click or recommend.Skip.
	Reacted(user, session, item, typ string, ts int64)
}

// Run simulates cfg's population against policy p (which learns online)
// with seed, and returns what it measured. Users take their sessions in
// rounds: every active user's s-th session before anyone's (s+1)-th, so the
// policy learns from the whole population over time as it would in service.
// Cancelling ctx stops the run between sessions with ctx's error.
func Run(ctx context.Context, cfg Config, p policy.Policy, seed uint64) (Result, error) {
	return run(ctx, cfg, p, seed, nil, nil)
}

// RunObserved is Run with an observer of every decision and reaction.
func RunObserved(ctx context.Context, cfg Config, p policy.Policy, seed uint64, obs Observer) (Result, error) {
	return run(ctx, cfg, p, seed, nil, obs)
}

// run is Run with a callback after each round of sessions and an optional
// observer.
func run(ctx context.Context, cfg Config, p policy.Policy, seed uint64, round func(), obs Observer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	snap, err := cfg.snapshot()
	if err != nil {
		return Result{}, err
	}
	if snap.Len() < cfg.K {
		return Result{}, fmt.Errorf("sim: %d items cannot fill a slate of %d", snap.Len(), cfg.K)
	}
	r := &runner{
		cfg: cfg, snap: snap, p: p,
		prng:      rand.New(rand.NewPCG(seed, 0x9011c7)),
		consumers: make([]int32, snap.Len()),
		sessEng:   make([]float64, cfg.Sessions),
		sessAct:   make([]float64, cfg.Sessions),
		obs:       obs,
	}
	r.res = Result{Policy: p.Name(), Seed: seed, Users: cfg.Users, IntentModeled: policy.ModelsIntent(p)}
	r.items()
	users := r.population(seed)
	for s := 0; s < cfg.Sessions; s++ {
		anyActive := false
		for _, u := range users {
			if !u.active {
				continue
			}
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			anyActive = true
			if err := r.session(u, s); err != nil {
				return Result{}, err
			}
		}
		if round != nil {
			round()
		}
		if !anyActive {
			for range cfg.Sessions - s - 1 {
				if round != nil {
					round()
				}
			}
			break
		}
	}
	r.finish(users)
	return r.res, nil
}

// items draws the items' hidden quality and latent factors from the
// catalog seed: the same for every policy and every population seed.
func (r *runner) items() {
	cfg, n := &r.cfg, r.snap.Len()
	if cfg.QualityWeight == 0 && cfg.LatentWeight == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(cfg.CatalogSeed, 0x9a11_7e57))
	r.quality = make([]float64, n)
	for i := range r.quality {
		r.quality[i] = rng.NormFloat64()
	}
	if cfg.LatentWeight != 0 {
		r.latent = make([]float64, n*cfg.LatentDim)
		for i := range n {
			unitGaussian(rng, r.latent[i*cfg.LatentDim:(i+1)*cfg.LatentDim])
		}
	}
}

// unitGaussian fills v with a uniformly random unit direction.
func unitGaussian(rng *rand.Rand, v []float64) {
	for j := range v {
		v[j] = rng.NormFloat64()
	}
	floats.Scale(1/floats.Norm(v, 2), v)
}

// population draws the users from seed alone, so every policy run with the
// same seed faces the same people.
func (r *runner) population(seed uint64) []*simUser {
	cfg, snap := &r.cfg, r.snap
	rng := rand.New(rand.NewPCG(seed, 0x5eed_0b5e))
	src := rand.NewPCG(seed, 0xbe7a)
	rhoDist := distuv.Beta{Alpha: cfg.RhoA, Beta: cfg.RhoB, Src: src}
	coreDist := distuv.Beta{Alpha: cfg.CoreAffinityA, Beta: cfg.CoreAffinityB, Src: src}
	otherDist := distuv.Beta{Alpha: cfg.OtherAffinityA, Beta: cfg.OtherAffinityB, Src: src}
	nc := snap.NumCategories()
	// Core topics are drawn in proportion to their catalog share, so that
	// a user's home topics have items to offer.
	weight := make([]float64, nc)
	for c := range weight {
		weight[c] = float64(len(snap.PopularIn(int32(c))))
	}
	users := make([]*simUser, cfg.Users)
	for idx := range users {
		u := &simUser{
			st:          recommend.UserState{UserID: fmt.Sprintf("sim-%d", idx)},
			rng:         rand.New(rand.NewPCG(seed^0xa5a5_5a5a, uint64(idx))),
			rho:         rhoDist.Rand(),
			aff:         make([]float64, nc),
			initial:     make([]bool, nc),
			clickedCats: make([]bool, nc),
			active:      true,
		}
		if cfg.LatentWeight != 0 {
			u.latent = make([]float64, cfg.LatentDim)
			unitGaussian(rng, u.latent)
		}
		core := make([]bool, nc)
		for n := 0; n < min(cfg.CoreTopics, nc); {
			c := weightedPick(rng, weight)
			if !core[c] {
				core[c] = true
				n++
			}
		}
		for c := range u.aff {
			if core[c] {
				u.aff[c] = coreDist.Rand()
			} else {
				u.aff[c] = otherDist.Rand()
			}
		}
		// The initial history: items entirely within the core topics,
		// as an import would write it (history only: the service has
		// observed none of these clicks, so the user's statistics start
		// empty).
		var pool []int32
		for c := range nc {
			if !core[c] {
				continue
			}
			for _, i := range snap.PopularIn(int32(c)) {
				if within(snap.Categories(i), core) {
					pool = append(pool, i)
				}
			}
		}
		slices.Sort(pool)
		pool = slices.Compact(pool)
		rng.Shuffle(len(pool), func(a, b int) { pool[a], pool[b] = pool[b], pool[a] })
		n := min(cfg.InitialHistory, len(pool))
		for j, i := range pool[:n] {
			u.st.History = append(u.st.History, recommend.Consumed{
				ItemID: snap.Item(i).ID, TS: startMS - int64(j+1)*historyMS,
			})
			r.consumers[i]++
			for _, c := range snap.Categories(i) {
				u.initial[c] = true
			}
		}
		users[idx] = u
	}
	return users
}

func within(cats []int32, set []bool) bool {
	for _, c := range cats {
		if !set[c] {
			return false
		}
	}
	return len(cats) > 0
}

func weightedPick(rng *rand.Rand, w []float64) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	u := rng.Float64() * total
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// session runs user u's s-th session.
func (r *runner) session(u *simUser, s int) error {
	cfg, snap := &r.cfg, r.snap
	r.res.Sessions++
	r.sessAct[s]++
	sid := fmt.Sprintf("%s-s%d", u.st.UserID, s)
	// A new session as the service loads it: an empty session record.
	u.st.Session = recommend.Session{ID: sid}
	u.shown = u.shown[:0]
	explore := u.rng.Float64() < u.rho
	u.lastBound = r.rhoPosterior(u)
	r.boundScores = append(r.boundScores, u.lastBound)
	r.boundLabels = append(r.boundLabels, explore)
	u.sessions++
	if explore {
		u.explored++
	}
	t0 := startMS + int64(s)*dayMS + int64(u.rng.IntN(int(dayMS/4)))
	clicks := 0
	for step := 0; step < cfg.Steps; step++ {
		now := t0 + int64(step)*stepMS
		if ma, ok := r.p.(ModeAware); ok {
			ma.SetMode(explore)
		}
		d, err := r.p.Recommend(&u.st, snap, cfg.K, now, r.prng)
		if err != nil {
			return fmt.Errorf("sim: %s: %w", r.p.Name(), err)
		}
		r.res.Decisions++
		if r.obs != nil {
			r.obs.Shown(u.st.UserID, sid, now, &d)
		}
		u.lastUP, u.hasDecided = d.Intent.UserPropensity, true
		r.scores = append(r.scores, d.Intent.SessionPropensity)
		r.labels = append(r.labels, explore)
		r.first = append(r.first, step == 0)

		// What the user sees: novelty against their history, now.
		seen := recommend.SeenOf(snap, u.st.History)
		r.nov, r.ids = r.nov[:0], r.ids[:0]
		u.shown = append(u.shown, recommend.SlateMark)
		for _, it := range d.Items {
			nv, _ := seen.Novelty(snap, it.Item)
			r.nov = append(r.nov, nv)
			r.ids = append(r.ids, it.ItemID)
			r.sumNov += nv
			r.sumInfo -= math.Log2(float64(r.consumers[it.Item]+1) / float64(cfg.Users+1))
			u.shown = append(u.shown, it.ItemID)
		}
		// As the service records the slate before any feedback on it.
		u.st.Session.Shown = u.shown
		r.res.Impressions += int64(len(d.Items))
		if len(d.Items) > 0 {
			r.sumILD += recommend.Diversity(snap, r.ids)
		}

		// The cascade.
		r.clicked = r.clicked[:0]
		ts := now
		for pos, it := range d.Items {
			ts += 1000
			if u.rng.Float64() < r.clickProb(u, it.Item, r.nov[pos], explore) {
				if r.obs != nil {
					r.obs.Reacted(u.st.UserID, sid, it.ItemID, recommend.Click, ts)
				}
				r.clicked = append(r.clicked, it.ItemID)
				r.click(u, it.Item, ts, sid)
				if u.rng.Float64() >= cfg.ContinueAfterClick {
					break
				}
			} else {
				if cfg.SkipEvents {
					if r.obs != nil {
						r.obs.Reacted(u.st.UserID, sid, it.ItemID, recommend.Skip, ts)
					}
					recommend.Observe(&u.st, snap, recommend.Feedback{
						UserID: u.st.UserID, SessionID: sid, ItemID: it.ItemID, Type: recommend.Skip, TS: ts,
					}, cfg.History, r.modeModel())
				}
				if u.rng.Float64() >= cfg.ContinueAfterSkip {
					break
				}
			}
		}
		clicks += len(r.clicked)
		bm := &r.byMode[b2i(explore)]
		bm.shown += float64(len(d.Items))
		bm.clicks += float64(len(r.clicked))
		for _, it := range d.Items {
			if it.Novel {
				bm.novel++
			}
		}

		leave := cfg.LeaveAfterNoClick
		if len(r.clicked) > 0 {
			leave = cfg.LeaveAfterClick
		}
		ended := step == cfg.Steps-1 || u.rng.Float64() < leave
		r.p.Learn(snap, &d, r.clicked, ended)
		if ended {
			break
		}
		// The mode's Markov chain.
		if explore {
			explore = u.rng.Float64() >= cfg.ExploreToExploit
		} else {
			explore = u.rng.Float64() < cfg.ExploitToExplore
		}
	}
	r.sessEng[s] += float64(clicks)
	if s+1 < cfg.Sessions {
		r.res.ReturnChances++
		p := cfg.ReturnMin + (cfg.ReturnMax-cfg.ReturnMin)*(1-math.Exp(-float64(clicks)/cfg.ReturnScale))
		if u.rng.Float64() < p {
			r.res.Returns++
		} else {
			u.active = false
		}
	}
	return nil
}

// clickProb is the probability that user u clicks item i once examined.
func (r *runner) clickProb(u *simUser, i int32, nov float64, explore bool) float64 {
	cats := r.snap.Categories(i)
	aff := 0.0
	for _, c := range cats {
		aff += u.aff[c]
	}
	if len(cats) > 0 {
		aff /= float64(len(cats))
	}
	m := 1 - nov
	if explore {
		m = nov
	}
	x := r.cfg.ClickBias + r.cfg.AffinityWeight*aff + r.cfg.PopularityWeight*float64(r.snap.PopularityFeature(i)) + r.cfg.ModeWeight*m
	if r.quality != nil {
		x += r.cfg.QualityWeight * r.quality[i]
	}
	if r.latent != nil {
		d := r.cfg.LatentDim
		x += r.cfg.LatentWeight * floats.Dot(u.latent, r.latent[int(i)*d:(int(i)+1)*d])
	}
	return 1 / (1 + math.Exp(-x))
}

// modeModel is the click model the policy under test reads mode evidence
// with, which the simulated feature updater applies as the service's
// applies the served model's.
func (r *runner) modeModel() intent.ModeModel {
	if m, ok := r.p.(modeler); ok {
		return m.Model().ModeModel()
	}
	return intent.ModeModel{}
}

// modeler is a policy with a model (every engine policy).
type modeler interface{ Model() *recommend.Model }

// streamObserver is a policy that learns from every engagement, not only
// from its own slates (the item-kNN baseline).
type streamObserver interface {
	Observe(st *recommend.UserState, fb recommend.Feedback)
}

// click applies a click: the user's state through Observe as the service
// would, and the simulator's hidden state (topic affinities).
func (r *runner) click(u *simUser, i int32, ts int64, sid string) {
	snap := r.snap
	seen := recommend.SeenOf(snap, u.st.History)
	fb := recommend.Feedback{UserID: u.st.UserID, SessionID: sid, ItemID: snap.Item(i).ID, Type: recommend.Click, TS: ts}
	if o, ok := r.p.(streamObserver); ok {
		o.Observe(&u.st, fb) // before Observe: it sees the history the click follows
	}
	obs := recommend.Observe(&u.st, snap, fb, r.cfg.History, r.modeModel())
	r.res.Clicks++
	if obs.Surprising {
		r.res.NovelClicks++
	}
	r.consumers[i]++
	for _, c := range snap.Categories(i) {
		if !seen.CategorySeen(c) {
			u.aff[c] += r.cfg.AffinityGrowth * (1 - u.aff[c])
		}
		u.clickedCats[c] = true
	}
}

// finish turns the run's sums into the Result's rates.
func (r *runner) finish(users []*simUser) {
	res := &r.res
	n := float64(r.cfg.Users)
	res.ClicksPerUser = float64(res.Clicks) / n
	res.SessionsPerUser = float64(res.Sessions) / n
	res.CTR = ratio(float64(res.Clicks), float64(res.Impressions))
	res.ReturnRate = ratio(float64(res.Returns), float64(res.ReturnChances))
	res.Novelty = ratio(r.sumNov, float64(res.Impressions))
	res.SelfInformation = ratio(r.sumInfo, float64(res.Impressions))
	res.ILD = ratio(r.sumILD, float64(res.Decisions))
	res.NovelClickShare = ratio(float64(res.NovelClicks), float64(res.Clicks))
	topics := 0
	for _, u := range users {
		for c, k := range u.clickedCats {
			if k && !u.initial[c] {
				topics++
			}
		}
	}
	res.TopicsPerUser = float64(topics) / n
	res.ExploitCTR = ratio(r.byMode[0].clicks, r.byMode[0].shown)
	res.ExploreCTR = ratio(r.byMode[1].clicks, r.byMode[1].shown)
	res.ExploitNovel = ratio(r.byMode[0].novel, r.byMode[0].shown)
	res.ExploreNovel = ratio(r.byMode[1].novel, r.byMode[1].shown)
	res.Engagement = make([]float64, len(r.sessEng))
	res.Active = make([]float64, len(r.sessAct))
	for s := range r.sessEng {
		res.Engagement[s] = r.sessEng[s] / n
		res.Active[s] = r.sessAct[s] / n
	}
	if res.IntentModeled {
		res.SessionAUC = finiteOr(AUC(r.scores, r.labels), 0.5)
		res.SessionCalibration = calibrationError(r.scores, r.labels)
		var fs, ls []float64
		var fl, ll []bool
		for j, f := range r.first {
			if f {
				fs, fl = append(fs, r.scores[j]), append(fl, r.labels[j])
			} else {
				ls, ll = append(ls, r.scores[j]), append(ll, r.labels[j])
			}
		}
		res.SessionAUCFirst = finiteOr(AUC(fs, fl), 0.5)
		res.SessionAUCLater = finiteOr(AUC(ls, ll), 0.5)
		var up, rho []float64
		for _, u := range users {
			if u.hasDecided {
				up = append(up, u.lastUP)
				rho = append(rho, u.rho)
			}
		}
		res.UserCorrelation = finiteOr(Pearson(up, rho), 0)
		res.SessionAUCFirstBound = finiteOr(AUC(r.boundScores, r.boundLabels), 0.5)
		up = up[:0]
		for _, u := range users {
			if u.hasDecided {
				up = append(up, u.lastBound)
			}
		}
		res.UserCorrelationBound = finiteOr(Pearson(up, rho), 0)
		if m, ok := r.p.(modeler); ok {
			res.Mode, res.Prior, res.Worth = m.Model().ModeModel(), m.Model().Intent.Prior, m.Model().WorthModel()
		}
	}
}

// rhoPosterior is the posterior mean of u's ρ under the simulator's prior
// given the starting modes of u's sessions so far.
func (r *runner) rhoPosterior(u *simUser) float64 {
	return (r.cfg.RhoA + float64(u.explored)) / (r.cfg.RhoA + r.cfg.RhoB + float64(u.sessions))
}

// calibrationError is the expected calibration error of the scores as
// probabilities of the labels, over ten equal-width bins.
func calibrationError(scores []float64, labels []bool) float64 {
	var n, sum, pos [10]float64
	for j, q := range scores {
		b := min(max(int(q*10), 0), 9)
		n[b]++
		sum[b] += q
		if labels[j] {
			pos[b]++
		}
	}
	e := 0.0
	for b := range n {
		if n[b] > 0 {
			e += math.Abs(sum[b]-pos[b]) / float64(len(scores))
		}
	}
	return e
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func finiteOr(x, def float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return def
	}
	return x
}

// AUC is the area under the ROC curve of scores against labels (true =
// positive): the probability that a random positive scores above a random
// negative, ties counting half (the Mann–Whitney statistic). It is NaN
// when either class is empty.
func AUC(scores []float64, labels []bool) float64 {
	n := min(len(scores), len(labels))
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	// Sum of the positives' ranks, tied scores sharing their mean rank.
	var rankSum float64
	var pos, neg int
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && scores[idx[hi]] == scores[idx[lo]] {
			hi++
		}
		mid := float64(lo+hi+1) / 2 // mean of ranks lo+1..hi
		for _, i := range idx[lo:hi] {
			if labels[i] {
				rankSum += mid
				pos++
			} else {
				neg++
			}
		}
		lo = hi
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	p := float64(pos)
	return (rankSum - p*(p+1)/2) / (p * float64(neg))
}

// Pearson is the correlation coefficient of x and y (gonum/stat); NaN when
// either is constant or they have fewer than two points.
func Pearson(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	return stat.Correlation(x, y, nil)
}

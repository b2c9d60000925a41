package replay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/eval"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// ShownMax mirrors features.ShownMax: the service remembers at most this
// many items shown per session (newest kept) and excludes them from later
// slates of the session; off-policy evaluation rebuilds that context.
const ShownMax = 300

// OPEConfig configures OffPolicy.
type OPEConfig struct {
	// Draws is how many slates the target policy draws per logged
	// impression to estimate the probability that it puts the logged top
	// item first (default 10; 1 is exact for a deterministic policy).
	Draws int
	// Seed seeds the target's draws.
	Seed uint64
	// Reward weighs a click on the top item as 1 + Reward.Novelty·novelty
	// (the item's logged nov(u,i)), the click part of the service's reward.
	// The zero value counts clicks. The slate diversity term needs no
	// feedback and is left to replay's ILD.
	Reward recommend.RewardWeights
	// Window is the attribution window: a click counts for an impression
	// if it names the impression's request and comes within Window of it
	// (default 30 minutes, the trainer's default).
	Window time.Duration
	// Clip caps importance weights (0 = no cap); see eval.Options.
	Clip float64
	// Variant restricts the evaluation to impressions of one variant
	// (empty = all; propensities are per impression, so pooling variants
	// is valid).
	Variant string
	// History caps the reconstructed history (0 = recommend.DefaultHistory).
	History int
	// From (Unix ms) evaluates only impressions at or after it; earlier
	// ones still rebuild the context (histories, shown items). It holds
	// out the later part of a log when the earlier part trained the
	// target (see trainer.TrainOnLog).
	From int64
	// Progress, if set, is called periodically with impressions done and
	// the total.
	Progress func(done, total int)
}

// OPEResult is the off-policy estimate of one target policy's value on a
// log, with the logging policy's own value for reference.
type OPEResult struct {
	Policy string `json:"policy"`
	// Impressions is the number in the log; Evaluated those used;
	// Skipped those without a valid top-position propensity, of another
	// variant, or before OPEConfig.From.
	Impressions int `json:"impressions"`
	Evaluated   int `json:"evaluated"`
	Skipped     int `json:"skipped"`
	// Clicks counts evaluated impressions whose top item was clicked.
	Clicks int `json:"top_clicks"`
	Draws  int `json:"draws"`
	// Logged is the logging policy's mean top-slot reward (on-policy).
	Logged eval.Estimate `json:"logged"`
	// IPS, SNIPS and DR estimate the target's expected top-slot reward.
	// SNIPSError says why SNIPS is undefined, when it is (no overlap).
	IPS        eval.Estimate `json:"ips"`
	SNIPS      eval.Estimate `json:"snips"`
	SNIPSError string        `json:"snips_error,omitempty"`
	DR         eval.Estimate `json:"dr"`
	// Match is the target's mean probability of choosing the logged top
	// item (how much it agrees with the logging policy); ESS the effective
	// sample size of the importance weights.
	Match   float64 `json:"match"`
	ESS     float64 `json:"effective_sample_size"`
	Seconds float64 `json:"seconds"`
	// Complete is false when ctx ended first; the estimates then cover
	// the impressions evaluated so far.
	Complete bool `json:"complete"`

	// The evaluated impressions' request ids and DR terms, in order, for
	// paired comparisons of targets scored on the same log (PairedLift).
	requests []string
	terms    []float64
}

// Lift is a target's paired difference from a reference target on the
// same logged impressions.
type Lift struct {
	// Diff is the DR estimate of value(target) − value(reference), with
	// its 95% interval; Relative is Diff over the reference's DR value
	// (0 when that is 0).
	Diff     eval.Estimate `json:"diff"`
	Relative float64       `json:"relative"`
	// P is the two-sided p-value of the paired t-test of no difference.
	P float64 `json:"p"`
}

// PairedLift compares two targets evaluated by OffPolicy on the same log
// with the same configuration: the mean of their per-impression DR terms'
// differences. Both are scored on the same clicks, so the noise they share
// cancels: the more the targets agree, the narrower the difference's
// interval is than the two estimates' separate ones suggest.
func PairedLift(target, reference *OPEResult) (Lift, error) {
	if target == nil || reference == nil {
		return Lift{}, errors.New("replay: paired lift of a nil result")
	}
	if !slices.Equal(target.requests, reference.requests) {
		return Lift{}, fmt.Errorf("replay: %s and %s were not evaluated on the same impressions (%d and %d)",
			target.Policy, reference.Policy, len(target.requests), len(reference.requests))
	}
	d, p, err := eval.Paired(target.terms, reference.terms)
	if err != nil {
		return Lift{}, fmt.Errorf("replay: paired lift: %w", err)
	}
	l := Lift{Diff: d, P: p}
	if reference.DR.Value != 0 {
		l.Relative = d.Value / reference.DR.Value
	}
	return l, nil
}

// OffPolicy estimates, from the service's logged impressions and feedback,
// the value a candidate policy would have had: the expected reward of the
// item it puts at the top of the slate.
//
// Why the top position. An impression logs for each shown item the
// probability with which the ranker chose it at its position given the
// items above it (Plackett–Luce), and the probability of the intent level.
// For position 0 there are no items above, so the logged propensity is the
// exact probability μ(a|x,z) of the logged first item given the level; the
// level's probability cancels when the target is scored by its own marginal
// π(a|x) (E_z[π(a|x)/μ(a|x,z)·r] = Σ_a π(a|x) q(x,a) whenever μ(·|x,z)
// covers π's support). For lower positions the marginal probabilities of
// both policies depend on unlogged candidates, so item- or slate-level
// weights would need approximations (e.g. the top-K correction of Chen et
// al. 2019) that make the estimate biased in unknown ways. The top slot is
// an exact, unbiased target with the most traffic.
//
// π(a|x) is estimated without bias as the share of Draws slates the target
// draws for the reconstructed context x whose first item is a; the DR
// reward model is the mean top-slot reward per item (eval.MeanReward, one
// pseudo-observation at the global mean), and its expectation under π is
// averaged over the same draws. The context is rebuilt as the service saw
// it at serving time: history, statistics and session from the feedback
// before the impression through recommend.Observe, and the session's
// already-shown items from earlier impressions of the session. The target
// does not learn during the evaluation: it is scored as it is.
//
// items is the catalog (the service's; items the log names but it lacks
// are added without categories). A Recommend error stops the evaluation.
func OffPolicy(ctx context.Context, l *EventLog, items []catalog.Item, target Policy, cfg OPEConfig) (*OPEResult, error) {
	if l == nil || target == nil {
		return nil, errors.New("replay: nil event log or policy")
	}
	if len(l.Impressions) == 0 {
		return nil, errors.New("replay: the event log has no impressions to evaluate on")
	}
	start := time.Now()
	if cfg.Draws <= 0 {
		cfg.Draws = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Minute
	}
	if cfg.History <= 0 {
		cfg.History = recommend.DefaultHistory
	}
	snap, err := l.Catalog(items)
	if err != nil {
		return nil, err
	}

	imps := slices.Clone(l.Impressions)
	slices.SortStableFunc(imps, func(a, b events.Impression) int { return cmpTS(a.TS, b.TS) })
	fbs := slices.Clone(l.Feedback)
	slices.SortStableFunc(fbs, func(a, b events.Feedback) int { return cmpTS(a.TS, b.TS) })

	// Which impressions are evaluated, their logged top item and reward.
	type unit struct {
		imp    int
		top    string
		prop   float64
		reward float64
		// context: before cfg.From; it only rebuilds the shown items.
		context bool
	}
	res := &OPEResult{Policy: target.Name(), Impressions: len(imps), Draws: cfg.Draws}
	units := make([]unit, 0, len(imps))
	byReq := make(map[string]int, len(imps))
	for i := range imps {
		im := &imps[i]
		if _, dup := byReq[im.RequestID]; dup || (cfg.Variant != "" && im.Variant != cfg.Variant) {
			res.Skipped++
			continue
		}
		j := slices.IndexFunc(im.Items, func(it events.ImpressionItem) bool { return it.Position == 0 })
		if j < 0 || !(im.Items[j].Propensity > 0 && im.Items[j].Propensity <= 1) {
			res.Skipped++
			continue
		}
		byReq[im.RequestID] = len(units)
		units = append(units, unit{imp: i, top: im.Items[j].ItemID, prop: im.Items[j].Propensity, context: im.TS < cfg.From})
		if im.TS < cfg.From {
			res.Skipped++
		}
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("replay: none of %d impressions has a valid top-position propensity", len(imps))
	}
	if res.Skipped == len(imps) {
		return nil, fmt.Errorf("replay: none of %d impressions is at or after -from %s", len(imps), time.UnixMilli(cfg.From).UTC().Format(time.RFC3339))
	}
	win := cfg.Window.Milliseconds()
	for _, f := range fbs {
		u, ok := byReq[f.RequestID]
		if !ok || f.RequestID == "" {
			continue
		}
		un := &units[u]
		im := &imps[un.imp]
		if un.reward > 0 || f.UserID != im.UserID || f.ItemID != un.top || f.TS-im.TS > win ||
			!(recommend.Feedback{Type: f.Type, Value: f.Value}).Engaged() {
			continue
		}
		j := slices.IndexFunc(im.Items, func(it events.ImpressionItem) bool { return it.Position == 0 })
		un.reward = 1 + cfg.Reward.Novelty*im.Items[j].Novelty
		if !un.context {
			res.Clicks++
		}
	}
	model := eval.NewMeanReward[string](1)
	for _, u := range units {
		model.Add(u.top, u.reward)
	}

	// Rebuild each impression's context in time order and draw from the
	// target there.
	h := fnv.New64a()
	_, _ = h.Write([]byte(target.Name()))
	rng := rand.New(rand.NewPCG(cfg.Seed, h.Sum64()))
	states := map[string]*recommend.UserState{}
	type shownList struct {
		session string
		last    int64
		items   []string
	}
	shown := map[string]*shownList{}
	gap := recommend.SessionGap.Milliseconds()
	state := func(user string) *recommend.UserState {
		st := states[user]
		if st == nil {
			st = &recommend.UserState{UserID: user}
			states[user] = st
		}
		return st
	}
	samples := make([]eval.Sample, 0, len(units))
	logged := make([]float64, 0, len(units))
	fi, done := 0, 0
	stopped := false
	for n, u := range units {
		if n%64 == 0 {
			if ctx.Err() != nil {
				stopped = true
				break
			}
			if cfg.Progress != nil {
				cfg.Progress(n, len(units))
			}
		}
		im := &imps[u.imp]
		// Feedback before the impression (an impression precedes
		// feedback with the same time stamp: the click answers it).
		for ; fi < len(fbs) && fbs[fi].TS < im.TS; fi++ {
			f := &fbs[fi]
			recommend.Observe(state(f.UserID), snap, recommend.Feedback{
				UserID: f.UserID, SessionID: f.SessionID, ItemID: f.ItemID, Type: f.Type, Value: f.Value, TS: f.TS,
			}, cfg.History, intent.ModeModel{}) // the log does not say which mode model the service read it with
			if sh := shown[f.UserID]; sh != nil && sh.session == f.SessionID {
				sh.last = max(sh.last, f.TS)
			}
		}
		st := state(im.UserID)
		view := *st
		if st.Session.ID != im.SessionID || (st.Session.Last > 0 && im.TS-st.Session.Last > gap) {
			view.Session = recommend.Session{ID: im.SessionID}
		}
		sh := shown[im.UserID]
		if sh == nil || sh.session != im.SessionID || im.TS-sh.last > gap {
			sh = &shownList{session: im.SessionID}
			shown[im.UserID] = sh
		}
		view.Session.Shown = sh.items

		k := min(max(len(im.Items), 1), recommend.MaxK)
		hits, dm := 0, 0.0
		draws := cfg.Draws
		if u.context {
			draws = 0
		}
		for range draws {
			d, err := target.Recommend(&view, snap, k, im.TS, rng)
			if err != nil {
				return nil, fmt.Errorf("replay: %s: recommend for impression %s: %w", target.Name(), im.RequestID, err)
			}
			if len(d.Items) == 0 {
				continue
			}
			top := d.Items[0].ItemID
			if top == u.top {
				hits++
			}
			dm += model.Predict(top)
		}
		if !u.context {
			samples = append(samples, eval.Sample{
				Reward: u.reward, Propensity: u.prop, Target: float64(hits) / float64(cfg.Draws),
				Predicted: model.Predict(u.top), TargetPredicted: dm / float64(cfg.Draws),
			})
			logged = append(logged, u.reward)
			res.requests = append(res.requests, im.RequestID)
		}
		done = n + 1

		// The service records the slate as shown in the session, oldest
		// first, keeping the newest ShownMax entries.
		ids := make([]string, 0, len(im.Items))
		for _, it := range im.Items {
			ids = append(ids, it.ItemID)
		}
		sh.items = append(sh.items, recommend.ShownRecord("", ids)...)
		if n := len(sh.items); n > ShownMax {
			sh.items = append([]string(nil), sh.items[n-ShownMax:]...)
		}
		sh.last = im.TS
	}
	if cfg.Progress != nil {
		cfg.Progress(done, len(units))
	}
	res.Evaluated = len(samples)
	res.Complete = !stopped
	res.Seconds = time.Since(start).Seconds()
	if len(samples) == 0 {
		return res, fmt.Errorf("replay: off-policy evaluation stopped before the first impression: %w", ctx.Err())
	}
	o := eval.Options{Clip: cfg.Clip}
	res.Logged = eval.MeanCI(logged)
	if res.IPS, err = eval.IPS(samples, o); err != nil {
		return nil, fmt.Errorf("replay: IPS: %w", err)
	}
	if res.SNIPS, err = eval.SNIPS(samples, o); err != nil {
		if !errors.Is(err, eval.ErrNoOverlap) {
			return nil, fmt.Errorf("replay: SNIPS: %w", err)
		}
		res.SNIPSError = err.Error()
	}
	if res.terms, err = eval.DRTerms(samples, o); err != nil {
		return nil, fmt.Errorf("replay: DR: %w", err)
	}
	res.DR = eval.MeanCI(res.terms)
	for _, s := range samples {
		res.Match += s.Target
	}
	res.Match /= float64(len(samples))
	res.ESS = eval.EffectiveSampleSize(samples, o)
	if stopped {
		return res, fmt.Errorf("replay: off-policy evaluation stopped after %d of %d impressions: %w", len(samples), len(units), ctx.Err())
	}
	return res, nil
}

// Catalog builds the static catalog the log is interpreted against (by
// off-policy evaluation, and by trainer.TrainOnLog): items as given, plus the
// items the log names but items lacks, without categories.
func (l *EventLog) Catalog(items []catalog.Item) (*catalog.Snapshot, error) {
	all := slices.Clone(items)
	known := make(map[string]bool, len(items))
	for i := range all {
		known[all[i].ID] = true
	}
	add := func(id string) {
		if !known[id] {
			known[id] = true
			all = append(all, catalog.Item{ID: id})
		}
	}
	for i := range l.Impressions {
		for _, it := range l.Impressions[i].Items {
			add(it.ItemID)
		}
	}
	for i := range l.Feedback {
		add(l.Feedback[i].ItemID)
	}
	snap, err := catalog.Build(1, catalog.DefaultDim, all)
	if err != nil {
		return nil, fmt.Errorf("replay: build catalog: %w", err)
	}
	return snap, nil
}

// Package replay evaluates recommendation policies offline on logged data
// (DESIGN.md §6): MovieLens ratings or the service's own event log, replayed
// in time order with the prequential (test-then-train) protocol, and
// off-policy evaluation of a candidate policy on the service's logged
// impressions.
//
// Replay drives a policy through exactly the code that serves: user state
// is recommend.UserState, changed only by recommend.Observe as the feature
// updater changes it, and the policy is whatever it is in production (the
// engine and learner behind the Policy interface). Only the edges differ:
// events come from a file instead of Kafka, state lives in memory instead
// of Redis.
package replay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/eval"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// Policy is what replay needs of a policy under evaluation; the policy
// package's policies satisfy it. Recommend must not keep st; Learn is
// called right after the Recommend that returned d, before the next one.
type Policy interface {
	Name() string
	Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error)
	Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool)
}

// Observer is implemented by policies that learn from every event of the
// stream, as the service's feature updater sees it, and not only from
// their own slates (the item-kNN baseline counts co-occurrences). Observe
// is called before the event changes st.
type Observer interface {
	Observe(st *recommend.UserState, fb recommend.Feedback)
}

// flusher is implemented by policies that hold back an update until they
// see the next decision; replay flushes them when the stream ends.
type flusher interface{ Flush() }

// modeler is a policy with a model, whose mode model reads feedback.
type modeler interface{ Model() *recommend.Model }

// CatalogMode says which items a replay may recommend at each point of the
// stream, and with what popularity.
type CatalogMode int

const (
	// CatalogSeen (the default) offers the items that have appeared in
	// the stream so far, with popularity = their consumptions so far: "the
	// catalog known at that time" (DESIGN.md §6). MovieLens lists every
	// movie up front, but a movie first rated in 2015 was not in a 1997
	// catalog, and the dataset's popularity counts the future.
	CatalogSeen CatalogMode = iota
	// CatalogAll offers every item from the start, still with popularity
	// counted so far (no leak of future popularity).
	CatalogAll
	// CatalogStatic offers every item with the popularity the catalog
	// gives, built once: the service's own catalog, for event logs.
	CatalogStatic
)

var catalogModes = []string{"seen", "all", "static"}

// String is the mode's flag value ("seen", "all", "static").
func (m CatalogMode) String() string {
	if m >= 0 && int(m) < len(catalogModes) {
		return catalogModes[m]
	}
	return fmt.Sprintf("CatalogMode(%d)", int(m))
}

// ParseCatalogMode parses "seen", "all" or "static".
func ParseCatalogMode(s string) (CatalogMode, error) {
	for i, n := range catalogModes {
		if strings.EqualFold(s, n) {
			return CatalogMode(i), nil
		}
	}
	return 0, fmt.Errorf("replay: unknown catalog mode %q (want %s)", s, strings.Join(catalogModes, ", "))
}

// Config configures a replay. The zero value is valid: k = 10, catalog
// seen so far, test points are engaged events.
type Config struct {
	// K is the slate size (default 10); HR@K and NDCG@K are reported.
	K int
	// Catalog says which items are recommendable when (default CatalogSeen).
	Catalog CatalogMode
	// RefreshEvery is how many events pass between catalog rebuilds (new
	// items, popularity so far), as a catalog service would publish
	// snapshots in batches. 0 means max(1000, events/100), so a long
	// replay rebuilds about a hundred times. A rebuild also happens as
	// soon as the items first seen since the last one exceed a tenth of
	// the catalog, so a young catalog grows quickly (at a cost that sums
	// to a few builds of the final catalog). CatalogStatic builds once.
	RefreshEvery int
	// AllEvents makes every consumption a test point (every rating, any
	// value) instead of only engaged events (clicks and ratings ≥ 3.5).
	AllEvents bool
	// History caps the user history H (0 = recommend.DefaultHistory).
	History int
	// Buckets is how many equal slices of the stream the metrics over
	// time are reported for (default 10).
	Buckets int
	// Seed seeds the policy's random draws (with its name), so a replay
	// is deterministic for a given seed, policy and stream.
	Seed uint64
	// Progress, if set, is called about every half per cent of the events
	// and at the end with the events done and the total.
	Progress func(done, total int)
}

func (c Config) withDefaults(n int) Config {
	if c.K <= 0 {
		c.K = 10
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = max(1000, n/100)
	}
	if c.History <= 0 {
		c.History = recommend.DefaultHistory
	}
	if c.Buckets <= 0 {
		c.Buckets = 10
	}
	c.Buckets = min(c.Buckets, max(n, 1))
	return c
}

// Result is one policy's replay: the metrics over all test points with 95%
// intervals, their course over the stream, and what it cost.
type Result struct {
	Policy  string `json:"policy"`
	Stream  string `json:"stream"`
	K       int    `json:"k"`
	Catalog string `json:"catalog"`
	// AllEvents is Config.AllEvents: whether every consumption was a test
	// point or only engaged ones.
	AllEvents bool `json:"all_events"`
	// Events is the number of events replayed (all, unless stopped early),
	// of TotalEvents; Complete says whether the replay reached the end.
	Events      int  `json:"events"`
	TotalEvents int  `json:"total_events"`
	Complete    bool `json:"complete"`
	// TestPoints counts the recommendations evaluated; Hits those whose
	// slate held the consumed item.
	TestPoints int `json:"test_points"`
	Hits       int `json:"hits"`
	// HR and NDCG are HR@K and NDCG@K; Novelty is the slates' mean
	// self-information in bits; ILD their category diversity, ILDEmbedding
	// the embedding form.
	HR           eval.Estimate `json:"hr"`
	NDCG         eval.Estimate `json:"ndcg"`
	Novelty      eval.Estimate `json:"novelty"`
	ILD          eval.Estimate `json:"ild"`
	ILDEmbedding eval.Estimate `json:"ild_embedding"`
	// Coverage is Recommended (distinct items ever recommended) over
	// CatalogItems (the catalog's size at the end).
	Coverage     float64 `json:"coverage"`
	Recommended  int     `json:"recommended_items"`
	CatalogItems int     `json:"catalog_items"`
	Refreshes    int     `json:"catalog_refreshes"`
	// Seconds is the wall time; RecommendSeconds, LearnSeconds and
	// CatalogSeconds the parts spent in the policy's Recommend and Learn
	// and in catalog rebuilds. EventsPerSecond is Events/Seconds.
	Seconds          float64 `json:"seconds"`
	RecommendSeconds float64 `json:"recommend_seconds"`
	LearnSeconds     float64 `json:"learn_seconds"`
	CatalogSeconds   float64 `json:"catalog_seconds"`
	EventsPerSecond  float64 `json:"events_per_second"`
	// OverTime holds the metrics per slice of the stream, for the chart.
	OverTime []Bucket `json:"over_time"`
}

// Projected is the wall time this replay's per-event cost projects for a
// stream of n events (per-event cost grows with the catalog's size and the
// users' history length, so it is a first-order estimate).
func (r *Result) Projected(n int) time.Duration {
	if r.Events == 0 {
		return 0
	}
	return time.Duration(r.Seconds / float64(r.Events) * float64(n) * float64(time.Second))
}

// Bucket is the metrics of one slice of the stream: events [Start, End),
// from FromTS to ToTS (Unix ms). Coverage is the distinct items recommended
// in the slice over the catalog's size at its end.
type Bucket struct {
	Start      int     `json:"start"`
	End        int     `json:"end"`
	FromTS     int64   `json:"from_ts"`
	ToTS       int64   `json:"to_ts"`
	TestPoints int     `json:"test_points"`
	HR         float64 `json:"hr"`
	NDCG       float64 `json:"ndcg"`
	Novelty    float64 `json:"novelty"`
	ILD        float64 `json:"ild"`
	Coverage   float64 `json:"coverage"`
}

// Run replays the stream through policy p prequentially. For each event in
// time order:
//
//  1. If it is a test point — an engaged event (a click or a rating ≥ 3.5),
//     or with AllEvents any consumption — the policy recommends K items
//     for the user's current state from the catalog known at that time,
//     before the event is revealed. The slate is scored: a hit if it holds
//     the consumed item (HR@K, NDCG@K by its position), its novelty
//     (self-information from consumption counts so far), its ILD, and its
//     items for coverage. Then the policy learns from its decision at
//     once: clicked = [item] if the slate held it and the event is
//     engaged, and sessionEnded = whether the user's session ends after
//     this event (next event of the user more than 30 minutes later, or a
//     different session id, or none). That last bit looks ahead; it
//     closes only the high level's bootstrap, after the decision was
//     scored, as the trainer closes a decision when the session times out.
//  2. The event updates the user's state through recommend.Observe,
//     exactly as the feature updater applies feedback (negative ratings,
//     skips and views included), and the consumption counts.
//
// The state's Session.Shown stays empty: the users in the data never saw
// the replayed policy's slates, so excluding them as already shown (as the
// service does) would punish a policy for skips that never happened.
//
// Every event is replayed; none is sampled away. Run stops early when ctx
// ends, returning what it measured so far (Complete false) with an error
// wrapping ctx.Err(). A Recommend error stops the replay the same way.
func Run(ctx context.Context, s *Stream, p Policy, cfg Config) (*Result, error) {
	if s == nil || p == nil {
		return nil, errors.New("replay: nil stream or policy")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(len(s.Events))
	r, err := newRunner(s, p, cfg)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

func (s *Stream) validate() error {
	if len(s.Events) == 0 {
		return errors.New("replay: empty stream")
	}
	if len(s.Items) == 0 {
		return fmt.Errorf("replay: stream without catalog: %w", catalog.ErrNoItems)
	}
	ids := make(map[string]struct{}, len(s.Items))
	for i := range s.Items {
		if _, dup := ids[s.Items[i].ID]; dup {
			return fmt.Errorf("replay: item id %q appears twice in the catalog", s.Items[i].ID)
		}
		ids[s.Items[i].ID] = struct{}{}
	}
	var last int64
	for i := range s.Events {
		e := &s.Events[i]
		if e.User < 0 || int(e.User) >= len(s.Users) || e.Item < 0 || int(e.Item) >= len(s.Items) {
			return fmt.Errorf("replay: event %d refers to user %d or item %d outside the stream's %d users and %d items", i, e.User, e.Item, len(s.Users), len(s.Items))
		}
		if i > 0 && e.TS < last {
			return fmt.Errorf("replay: event %d is out of time order (%d after %d)", i, e.TS, last)
		}
		last = e.TS
	}
	return nil
}

// runner is one replay's working state.
type runner struct {
	s   *Stream
	p   Policy
	cfg Config
	rng *rand.Rand

	states []*recommend.UserState
	ended  []bool

	// Catalog as known so far.
	known     []bool
	counts    []int // consumptions per item
	consumers []int // distinct users who consumed each item
	consumed  map[uint64]struct{}
	active    []bool // users with a consumption
	users     int
	emb       [][]float32
	snap      *catalog.Snapshot
	toGlobal  []int32
	since     int
	fresh     int // items first seen since the last rebuild
	refreshes int

	// Metrics.
	hr, ndcg, nov, ild, ildEmb eval.Running
	hits                       int
	cov                        eval.Coverage
	buckets                    []Bucket
	bcov                       eval.Coverage
	bsum                       [5]float64

	slate      []int32
	novBuf     []int
	recT, lrnT time.Duration
	catT       time.Duration

	// The collaborative model: counts fed by every engagement, refitted
	// at each rebuild.
	cf     *collab.Counts
	model  *collab.Model
	recent []string
	fits   int
}

func newRunner(s *Stream, p Policy, cfg Config) (*runner, error) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(p.Name()))
	r := &runner{
		s: s, p: p, cfg: cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, h.Sum64())),
		states:    make([]*recommend.UserState, len(s.Users)),
		ended:     sessionEnds(s.Events, len(s.Users)),
		known:     make([]bool, len(s.Items)),
		counts:    make([]int, len(s.Items)),
		consumers: make([]int, len(s.Items)),
		consumed:  map[uint64]struct{}{},
		active:    make([]bool, len(s.Users)),
		emb:       make([][]float32, len(s.Items)),
	}
	// The collaborative model, learned from the stream's engagements,
	// is refitted at every catalog rebuild and folded into the snapshot
	// the policy sees, as the trainer publishes it to the service.
	var err error
	if r.cf, err = collab.NewCounts(collab.DefaultConfig()); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return r, nil
}

// sessionEnds marks, for each event, whether the user's session ends after
// it, by the rule of recommend.Observe applied to the user's next event.
func sessionEnds(evs []Event, users int) []bool {
	ended := make([]bool, len(evs))
	next := make([]int32, users)
	for i := range next {
		next[i] = -1
	}
	gap := recommend.SessionGap.Milliseconds()
	for i := len(evs) - 1; i >= 0; i-- {
		e := &evs[i]
		j := next[e.User]
		if j < 0 {
			ended[i] = true
		} else {
			n := &evs[j]
			ended[i] = (n.Session == "" && n.TS-e.TS > gap) || (n.Session != "" && n.Session != e.Session)
		}
		next[e.User] = int32(i)
	}
	return ended
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	start := time.Now()
	n := len(r.s.Events)
	step := max(1, n/200)
	bucketEnd := func(b int) int { return int(int64(b+1) * int64(n) / int64(r.cfg.Buckets)) }
	b, bStart := 0, 0
	if r.cfg.Catalog != CatalogSeen {
		if err := r.refresh(); err != nil {
			return nil, err
		}
	}
	var stopErr error
	i, nextProgress := 0, 0
	for ; i < n; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				stopErr = fmt.Errorf("replay: stopped after %d of %d events: %w", i, n, err)
				break
			}
		}
		if r.cfg.Progress != nil && i >= nextProgress {
			r.cfg.Progress(i, n)
			nextProgress += step
		}
		if err := r.step(i); err != nil {
			stopErr = err
			break
		}
		for b < r.cfg.Buckets && i+1 >= bucketEnd(b) {
			if i+1 > bStart {
				r.closeBucket(bStart, i+1)
				bStart = i + 1
			}
			b++
		}
	}
	if i > bStart && i < n {
		r.closeBucket(bStart, i)
	}
	if f, ok := r.p.(flusher); ok {
		f.Flush()
	}
	if r.cfg.Progress != nil {
		r.cfg.Progress(i, n)
	}
	return r.result(i, time.Since(start)), stopErr
}

// step replays event i.
func (r *runner) step(i int) error {
	e := &r.s.Events[i]
	if r.cfg.Catalog != CatalogStatic && (r.since >= r.cfg.RefreshEvery || r.fresh > r.snapLen()/10) {
		if err := r.refresh(); err != nil {
			return err
		}
	}
	r.since++
	st := r.states[e.User]
	if st == nil {
		st = &recommend.UserState{UserID: r.s.Users[e.User]}
		r.states[e.User] = st
	}
	engaged := e.Engaged()
	if engaged || (r.cfg.AllEvents && e.Consumption()) {
		if err := r.test(i, e, st, engaged); err != nil {
			return err
		}
	}
	snap := r.snap
	if snap == nil {
		var err error
		if snap, err = placeholderSnapshot(); err != nil {
			return err
		}
	}
	fb := r.s.Feedback(e)
	if o, ok := r.p.(Observer); ok {
		o.Observe(st, fb)
	}
	r.recent = r.recent[:0]
	if engaged {
		for _, h := range st.History {
			r.recent = append(r.recent, h.ItemID)
		}
	}
	mm := intent.ModeModel{}
	if m, ok := r.p.(modeler); ok {
		mm = m.Model().ModeModel() // as the feature updater reads events under the served model
	}
	if obs := recommend.Observe(st, snap, fb, r.cfg.History, mm); obs.Engaged {
		r.cf.Add(r.s.Items[e.Item].ID, r.recent)
	}
	if e.Consumption() {
		r.counts[e.Item]++
		key := uint64(uint32(e.User))<<32 | uint64(uint32(e.Item))
		if _, dup := r.consumed[key]; !dup {
			r.consumed[key] = struct{}{}
			r.consumers[e.Item]++
		}
		if !r.active[e.User] {
			r.active[e.User] = true
			r.users++
		}
	}
	if !r.known[e.Item] {
		r.known[e.Item] = true
		r.fresh++
	}
	return nil
}

// placeholderSnapshot stands in for the catalog before any item is known,
// so Observe can run (every item is then unknown to it, as Observe allows).
func placeholderSnapshot() (*catalog.Snapshot, error) {
	s, err := catalog.Build(0, catalog.DefaultDim, []catalog.Item{{ID: "\x00replay:none"}})
	if err != nil {
		return nil, fmt.Errorf("replay: placeholder catalog: %w", err)
	}
	return s, nil
}

func (r *runner) snapLen() int {
	if r.snap == nil {
		return 0
	}
	return r.snap.Len()
}

// test asks the policy for a slate before event e is revealed, scores it
// and lets the policy learn from it.
func (r *runner) test(i int, e *Event, st *recommend.UserState, engaged bool) error {
	if r.snap == nil { // nothing known yet: nothing can be recommended
		r.record(-1, nil)
		return nil
	}
	t0 := time.Now()
	d, err := r.p.Recommend(st, r.snap, r.cfg.K, e.TS, r.rng)
	t1 := time.Now()
	r.recT += t1.Sub(t0)
	if err != nil {
		return fmt.Errorf("replay: %s: recommend at event %d: %w", r.p.Name(), i, err)
	}
	target := r.s.Items[e.Item].ID
	rank := -1
	r.slate = r.slate[:0]
	for j := range d.Items {
		it := &d.Items[j]
		if it.ItemID == target && rank < 0 {
			rank = j
		}
		idx := it.Item
		if idx < 0 || int(idx) >= r.snap.Len() || r.snap.Item(idx).ID != it.ItemID {
			var ok bool
			if idx, ok = r.snap.Index(it.ItemID); !ok {
				continue // not a catalog item: no metrics for it
			}
		}
		r.slate = append(r.slate, idx)
	}
	r.record(rank, r.slate)
	var clicked []string
	if rank >= 0 && engaged {
		clicked = []string{target}
	}
	t2 := time.Now()
	r.p.Learn(r.snap, &d, clicked, r.ended[i])
	r.lrnT += time.Since(t2)
	return nil
}

// record adds one test point's metrics; slate holds snapshot indexes.
func (r *runner) record(rank int, slate []int32) {
	k := r.cfg.K
	hr, ndcg := eval.HR(rank, k), eval.NDCG(rank, k)
	r.hr.Add(hr)
	r.ndcg.Add(ndcg)
	if hr > 0 {
		r.hits++
	}
	r.bsum[0] += hr
	r.bsum[1] += ndcg
	r.bsum[4]++
	if len(slate) == 0 {
		return
	}
	r.novBuf = r.novBuf[:0]
	for _, j := range slate {
		g := r.toGlobal[j]
		r.novBuf = append(r.novBuf, r.consumers[g])
		r.cov.Add(int(g))
		r.bcov.Add(int(g))
	}
	nov := eval.Novelty(r.novBuf, r.users)
	ild := eval.CategoryILD(r.snap, slate)
	r.nov.Add(nov)
	r.ild.Add(ild)
	r.ildEmb.Add(eval.EmbeddingILD(r.snap, slate))
	r.bsum[2] += nov
	r.bsum[3] += ild
}

func (r *runner) closeBucket(start, end int) {
	n := r.bsum[4]
	b := Bucket{Start: start, End: end, FromTS: r.s.Events[start].TS, ToTS: r.s.Events[end-1].TS, TestPoints: int(n)}
	if n > 0 {
		b.HR, b.NDCG, b.Novelty, b.ILD = r.bsum[0]/n, r.bsum[1]/n, r.bsum[2]/n, r.bsum[3]/n
	}
	if r.snap != nil {
		b.Coverage = r.bcov.Fraction(r.snap.Len())
	}
	r.buckets = append(r.buckets, b)
	r.bsum = [5]float64{}
	r.bcov = eval.Coverage{}
}

// refresh rebuilds the catalog snapshot from the items known so far (or
// all) with popularity so far (or as given), as a catalog service would
// publish a new snapshot.
func (r *runner) refresh() error {
	t0 := time.Now()
	items := make([]catalog.Item, 0, len(r.s.Items))
	globals := make([]int32, 0, len(r.s.Items))
	for g := range r.s.Items {
		if r.cfg.Catalog == CatalogSeen && !r.known[g] {
			continue
		}
		src := &r.s.Items[g]
		if r.emb[g] == nil {
			if len(src.Embedding) == catalog.DefaultDim {
				r.emb[g] = catalog.Normalize(src.Embedding)
			} else {
				r.emb[g] = catalog.Embed(src.ID, src.Categories, catalog.DefaultDim)
			}
		}
		it := catalog.Item{ID: src.ID, Categories: src.Categories, Embedding: r.emb[g], Popularity: src.Popularity}
		if r.cfg.Catalog != CatalogStatic {
			it.Popularity = float64(r.counts[g])
		}
		items = append(items, it)
		globals = append(globals, int32(g))
	}
	if len(items) == 0 {
		return nil
	}
	snap, err := catalog.Build(uint64(r.refreshes+1), catalog.DefaultDim, items)
	if err != nil {
		return fmt.Errorf("replay: build catalog: %w", err)
	}
	if r.cf.Adds() > 0 {
		r.fits++
		r.model = collab.Update(r.cf, r.model, uint64(r.fits))
		if snap, err = snap.WithLearned(&r.model.Learned); err != nil {
			return fmt.Errorf("replay: collaborative model: %w", err)
		}
	}
	if snap.Len() != len(items) {
		return fmt.Errorf("replay: catalog has duplicate item ids (%d items, %d distinct)", len(items), snap.Len())
	}
	r.snap, r.toGlobal = snap, globals
	r.since, r.fresh = 0, 0
	r.refreshes++
	r.catT += time.Since(t0)
	return nil
}

func (r *runner) result(events int, wall time.Duration) *Result {
	res := &Result{
		Policy: r.p.Name(), Stream: r.s.Name, K: r.cfg.K, Catalog: r.cfg.Catalog.String(), AllEvents: r.cfg.AllEvents,
		Events: events, TotalEvents: len(r.s.Events), Complete: events == len(r.s.Events),
		TestPoints: r.hr.N(), Hits: r.hits,
		HR: r.hr.Estimate(), NDCG: r.ndcg.Estimate(), Novelty: r.nov.Estimate(), ILD: r.ild.Estimate(), ILDEmbedding: r.ildEmb.Estimate(),
		Recommended: r.cov.Distinct(), Refreshes: r.refreshes,
		Seconds: wall.Seconds(), RecommendSeconds: r.recT.Seconds(), LearnSeconds: r.lrnT.Seconds(), CatalogSeconds: r.catT.Seconds(),
		OverTime: r.buckets,
	}
	if r.snap != nil {
		res.CatalogItems = r.snap.Len()
	}
	if r.cfg.Catalog == CatalogSeen {
		// Items first seen after the last rebuild were known at the end
		// too; count them so coverage has the final catalog as base.
		res.CatalogItems = 0
		for _, k := range r.known {
			if k {
				res.CatalogItems++
			}
		}
	}
	res.Coverage = eval.CoverageOf(res.Recommended, res.CatalogItems)
	if wall > 0 {
		res.EventsPerSecond = float64(events) / wall.Seconds()
	}
	return res
}

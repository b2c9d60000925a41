package trainer

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
	"github.com/novarec/novarec/recommend"
)

// Outcome says what the Core made of one event.
type Outcome int

// Outcomes of Core.Impression and Core.Feedback.
const (
	// Applied: the event was learned from (an impression became a slate
	// that feedback can be attributed to; engaged feedback updated the low
	// level).
	Applied Outcome = iota
	// Duplicate: an event with this event_id was already handled.
	Duplicate
	// Unattributed: engaged feedback that cannot be joined to an
	// impression of this variant within the window (no request_id, its
	// impression never arrived or is too old, or the item was not shown).
	Unattributed
	// Ignored: a valid event with nothing to learn (another variant, a
	// non-engaging feedback type, a repeated click on the same item, an
	// impression too old for the window or without ranker features).
	Ignored
	// Waiting: engaged feedback whose impression has not arrived yet; it
	// is held (bounded) until the impression arrives or the window passes,
	// and its final outcome is then counted in Counters.
	Waiting
)

// String names the outcome as the metrics label it (applied, duplicate,
// unattributed, ignored, waiting).
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Unattributed:
		return "unattributed"
	case Ignored:
		return "ignored"
	case Waiting:
		return "waiting"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Counters are the Core's running totals. They are part of the checkpoint,
// so they survive restarts and count every event exactly once however often
// Kafka delivers it (which is what the crash test checks).
type Counters struct {
	// Impressions counts impressions learned from (kept for attribution).
	Impressions int64 `json:"impressions"`
	// ImpressionDuplicates counts impressions whose event_id was seen.
	ImpressionDuplicates int64 `json:"impression_duplicates"`
	// ImpressionsIgnored counts valid impressions with nothing to learn:
	// another variant, older than the window, no ranker features, or a
	// request_id already seen under another event_id.
	ImpressionsIgnored int64 `json:"impressions_ignored"`
	// Clicks counts engaged feedback credited to a shown item: one
	// low-level update each.
	Clicks int64 `json:"clicks"`
	// FeedbackDuplicates counts feedback whose event_id was seen.
	FeedbackDuplicates int64 `json:"feedback_duplicates"`
	// FeedbackUnattributed counts engaged feedback that could not be
	// joined to an impression within the window.
	FeedbackUnattributed int64 `json:"feedback_unattributed"`
	// FeedbackIgnored counts feedback with nothing to learn (views, skips,
	// low ratings, other variants, repeated clicks on one item).
	FeedbackIgnored int64 `json:"feedback_ignored"`
	// Decisions counts high-level updates (closed decisions).
	Decisions int64 `json:"decisions"`
	// DecisionsSkipped counts impressions whose high-level decision could
	// not be learned from (a state vector or level this build cannot use).
	DecisionsSkipped int64 `json:"decisions_skipped"`
	// DedupEvicted counts event ids forgotten before their window ended
	// because MaxDedup was reached (a duplicate of one would be applied
	// again).
	DedupEvicted int64 `json:"dedup_evicted"`
}

// decision states of a slate.
const (
	decNone    uint8 = iota // not a high-level decision we learn from
	decOpen                 // the session's latest decision, outcome still growing
	decClosing              // a successor impression arrived; waiting for late clicks
	decClosed               // learned from
)

// slate is one impression kept for attribution.
type slate struct {
	ls   recommend.LoggedSlate
	sess string // session key: user id, NUL, session id ("" = implicit)
	// learn is false for impressions kept only so their feedback is
	// recognised (and ignored): another variant, no ranker features.
	learn   bool
	clicked []int // positions credited so far
	last    int64 // last activity: the impression's and its feedback's times
	dec     uint8
	// nextState and nextTS describe the successor impression of a closing
	// decision.
	nextState []float64
	nextTS    int64
	// seq orders slates by arrival and closeSeq closing decisions by when
	// they started closing (Core.seq), so a state restored from unordered
	// records rebuilds the same queues.
	seq, closeSeq int64
	// div caches the slate's diversity (divOK: computed), needed by the
	// A/B report at the impression and by the decision's reward at its
	// close; it is not stored (a restored slate computes it again).
	div   float64
	divOK bool
	// noted: the slate is in the change log (changeLog.slates); gone: it
	// was dropped from the join state.
	noted, gone bool
}

// waitingFB is engaged feedback waiting for its impression.
type waitingFB struct {
	ev  events.Feedback
	seq int64
}

// waitRef orders waiting feedback by arrival for expiry.
type waitRef struct {
	rid, eventID string
	ts           int64
}

// seenRef orders remembered event ids by arrival for expiry; seq is the
// id's arrival number (seenVal.seq).
type seenRef struct {
	id      string
	ts, seq int64
}

// seenVal is what is remembered of an event id.
type seenVal struct {
	ts, seq int64
}

// sweepEvery is how much event time passes between scans of open decisions
// for ended sessions.
const sweepEvery = int64(10_000)

// maxRewards bounds the rewards kept between DrainRewards calls.
const maxRewards = 4096

// Core is the trainer's pure part: it consumes decoded impressions and
// feedback in order and drives a recommend.Learner, with no Kafka, Redis or
// clocks inside (time is event time: the watermark is the largest event ts
// seen). It joins feedback to impressions by request_id, de-duplicates by
// event_id, applies clicks to the low level at once and closes high-level
// decisions when their outcome is known, and it can be checkpointed and
// restored exactly (EncodeCheckpoint, DecodeCheckpoint).
//
// Given the same configuration, catalog, starting model and event order, a
// Core makes the same updates in the same order. It is not safe for
// concurrent use.
type Core struct {
	cfg Config
	cat Snapshots
	l   *recommend.Learner
	// updBase counts updates made before the last restore (the Learner
	// counts from zero).
	updBase int64

	// Event-time watermarks, one per topic: the largest ts seen. The topics
	// are consumed independently, and while a backlog drains one may run
	// far ahead of the other, so each rule below asks the watermark of the
	// topic whose future events it is about (see maintain).
	impWM, fbWM int64
	lastSweep   int64

	slates  map[string]*slate // by request id
	slateQ  queue[string]     // request ids in arrival order
	open    map[string]string // session key → request id of its open decision
	closing closingQueue      // closing decisions, by when their outcome is known

	waiting  map[string][]waitingFB // by request id
	waitQ    queue[waitRef]
	nWaiting int

	seen   map[string]seenVal // "i:"/"f:" + event id → event ts
	seenIQ queue[seenRef]     // impression ids in arrival order
	seenFQ queue[seenRef]     // feedback ids in arrival order

	version      uint64 // number of the last published snapshot
	sincePublish int64  // updates since the last publish
	fresh        []int64
	freshSeen    int64

	counters Counters
	rewards  []float64
	exp      expAgg

	// seq numbers the entries of the join state in the order they were
	// queued (see slate.seq).
	seq int64
	// changes collects the records of the join state that changed since
	// the last commit (TrackChanges).
	changes changeLog
	// itemSums fingerprints the model's items as last committed, and
	// itemPending the changes of the delta not yet committed. itemDirty
	// holds the items the learner touched since the last commit (a failed
	// commit's too); itemScan that only comparing every item finds what
	// changed since (no commit yet, or items dropped wholesale).
	itemSums    map[string]uint64
	itemPending []itemMark
	itemDirty   map[string]struct{}
	itemScan    bool
	// sharedModel marks a partition's Core of a partitioned trainer: its
	// Learner is shared with the replica's other partitions, and the
	// model's items are committed by the replica (replica.go), not in its
	// records.
	sharedModel bool
	// observed, when set, is told of every slate the Core adds to the
	// learner's mode window (a replica logs them for the others:
	// modeshare.go).
	observed func(*recommend.LoggedSlate, []int)
}

// NewCore returns a Core learning from start (recommend.DefaultModel() when
// nil) with cfg's learner settings. cat may be nil (no diversity term, no
// embedding seeding), which is useful in tests only.
func NewCore(cfg Config, start *recommend.Model, cat Snapshots) (*Core, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if start == nil {
		start = recommend.DefaultModel()
	}
	if err := start.Validate(); err != nil {
		return nil, fmt.Errorf("trainer: starting model: %w", err)
	}
	return newCore(cfg, recommend.NewLearner(cfg.Learner, start), cat), nil
}

func newCore(cfg Config, l *recommend.Learner, cat Snapshots) *Core {
	return &Core{
		cfg: cfg, cat: cat, l: l,
		slates:  map[string]*slate{},
		open:    map[string]string{},
		waiting: map[string][]waitingFB{},
		seen:    map[string]seenVal{},
	}
}

// Learner exposes the learner, for reading its model on the Core's
// goroutine (tests, replay).
func (c *Core) Learner() *recommend.Learner { return c.l }

// Aggregates returns the variant's A/B aggregates.
func (c *Core) Aggregates() experiment.Aggregates { return c.exp.Aggregates }

// Counters returns the running totals.
func (c *Core) Counters() Counters { return c.counters }

// Watermark returns the largest event time seen on either topic (Unix ms).
func (c *Core) Watermark() int64 { return max(c.impWM, c.fbWM) }

// Watermarks returns the largest event times seen per topic (Unix ms; 0
// before the first event of a topic).
func (c *Core) Watermarks() (impressions, feedback int64) { return c.impWM, c.fbWM }

// Updates counts learner updates since the first start (across restores).
func (c *Core) Updates() int64 { return c.updBase + c.l.Updates() }

// SincePublish counts learner updates not yet in a published snapshot.
func (c *Core) SincePublish() int64 { return c.sincePublish }

// Version is the number of the last published snapshot (0 = none yet).
func (c *Core) Version() uint64 { return c.version }

// Buffered reports how much the Core holds: impressions kept for
// attribution, feedback waiting for its impression, open (or closing)
// decisions, and remembered event ids.
func (c *Core) Buffered() (slates, waiting, decisions, ids int) {
	return len(c.slates), c.nWaiting, len(c.open) + c.closing.len(), len(c.seen)
}

// DrainRewards returns the rewards r_t of the decisions closed since the
// last call (at most a few thousand are kept) and forgets them.
func (c *Core) DrainRewards() []float64 {
	r := c.rewards
	c.rewards = nil
	return r
}

func (c *Core) snapshot() *catalog.Snapshot {
	if c.cat == nil {
		return nil
	}
	return c.cat.Current()
}

func (c *Core) ownVariant(v string) bool {
	return c.cfg.AllVariants || v == c.cfg.Variant || (v == "" && c.cfg.Variant == DefaultVariant)
}

// passed reports whether event time has moved more than d past ts: on the
// topic whose events would still matter (primary watermark), or by 2d on
// the other one, so that an idle topic cannot hold state forever.
func passed(ts, d, primary, other int64) bool {
	return primary > ts+d || other > ts+2*d
}

// Impression handles one rec.impressions event. Impressions of other
// variants, without ranker features or with out-of-range numbers are kept
// only to recognise their feedback, not learned from; impressions older
// than the window are dropped.
func (c *Core) Impression(ev events.Impression) Outcome {
	c.impWM = max(c.impWM, ev.TS)
	defer c.maintain()
	key := "i:" + ev.EventID
	if _, dup := c.seen[key]; dup {
		c.counters.ImpressionDuplicates++
		return Duplicate
	}
	if ev.TS < c.impWM-c.cfg.Window.Milliseconds() {
		// Older than the window on its own topic (its id may have been
		// forgotten, so it cannot be told from a duplicate).
		c.counters.ImpressionsIgnored++
		return Ignored
	}
	c.remember(&c.seenIQ, key, ev.TS)
	if _, ok := c.slates[ev.RequestID]; ok {
		c.counters.ImpressionsIgnored++
		return Ignored
	}
	c.seq++
	s := &slate{sess: ev.UserID + "\x00" + ev.SessionID, last: ev.TS, seq: c.seq}
	s.ls, s.learn = c.logged(&ev)
	c.slates[ev.RequestID] = s
	c.slateQ.push(ev.RequestID)
	c.noteSlate(s)
	out := Ignored
	if s.learn {
		out = Applied
		c.counters.Impressions++
		div, ok := c.diversity(s)
		c.noteUser(ev.UserID, c.exp.impression(&s.ls, div, ok, c.cfg.SessionGap.Milliseconds()))
		if len(s.ls.State) == intent.Dim && s.ls.Level >= 0 && s.ls.Level < c.l.Model().Intent.K() {
			c.openDecision(s)
		} else {
			c.counters.DecisionsSkipped++
		}
	} else {
		c.counters.ImpressionsIgnored++
	}
	if fbs, ok := c.waiting[ev.RequestID]; ok {
		delete(c.waiting, ev.RequestID)
		c.nWaiting -= len(fbs)
		for _, w := range fbs {
			c.touchWaiting(ev.RequestID, w.ev.EventID)
			c.count(c.attribute(s, &w.ev))
		}
	}
	return out
}

// logged converts an impression into the learner's record; learn is false
// when the impression cannot be learned from.
func (c *Core) logged(ev *events.Impression) (recommend.LoggedSlate, bool) {
	ls := recommend.LoggedSlate{
		RequestID: ev.RequestID, UserID: ev.UserID, SessionID: ev.SessionID, TS: ev.TS,
		Level: ev.Intent.Level, LevelProb: ev.Intent.Probability, State: ev.Intent.State, Taste: ev.Taste,
		Items: make([]recommend.LoggedItem, len(ev.Items)),
	}
	learn := c.ownVariant(ev.Variant) && unit(ev.Intent.Probability) && bounded(ev.Intent.State) && bounded(ev.Taste)
	for i, it := range ev.Items {
		li := recommend.LoggedItem{ItemID: it.ItemID, Position: it.Position, Propensity: it.Propensity, Novelty: it.Novelty, Novel: it.Novel, Score: it.Score}
		// Impressions logged before a feature existed carry fewer; the
		// missing ones were 0 for them.
		if len(it.Features) == 0 || len(it.Features) > ranker.NumFeatures || !bounded(it.Features) || !unit(it.Propensity) || !unit(it.Novelty) {
			learn = false
		} else {
			copy(li.Features[:], it.Features)
		}
		ls.Items[i] = li
	}
	return ls, learn
}

// maxInput bounds the magnitude of logged features, states and tastes the
// learner accepts. Serving produces values of order 1; a producer bug that
// logged huge (finite) numbers would otherwise overflow the learner into a
// non-finite model that can be neither published nor checkpointed.
const maxInput = 1e4

func bounded[F float32 | float64](xs []F) bool {
	for _, x := range xs {
		if !(math.Abs(float64(x)) <= maxInput) { // false for NaN too
			return false
		}
	}
	return true
}

// unit reports whether p is a probability.
func unit(p float64) bool { return p >= 0 && p <= 1 }

// openDecision makes s its session's open decision, handing the previous
// one its successor (or ending it, after a session gap).
func (c *Core) openDecision(s *slate) {
	if prevID, ok := c.open[s.sess]; ok {
		prev := c.slates[prevID]
		if s.ls.TS-prev.last > c.cfg.SessionGap.Milliseconds() {
			c.closeDecision(prev, nil)
		} else {
			delete(c.open, s.sess)
			prev.dec = decClosing
			prev.nextState = s.ls.State
			prev.nextTS = s.ls.TS
			c.seq++
			prev.closeSeq = c.seq
			c.closing.push(prev.ls.RequestID, prev.nextTS, prev.closeSeq)
			c.noteSlate(prev)
		}
	}
	s.dec = decOpen
	c.open[s.sess] = s.ls.RequestID
}

// Feedback handles one rec.feedback event. Engaged feedback on a shown item
// updates the low level at once and counts in its decision's reward; other
// feedback only marks the session active.
func (c *Core) Feedback(ev events.Feedback) Outcome {
	c.fbWM = max(c.fbWM, ev.TS)
	defer c.maintain()
	key := "f:" + ev.EventID
	if _, dup := c.seen[key]; dup {
		c.counters.FeedbackDuplicates++
		return Duplicate
	}
	engaged := recommend.Feedback{Type: ev.Type, Value: ev.Value}.Engaged()
	if ev.TS < c.fbWM-c.cfg.Window.Milliseconds() {
		// Older than the window on its own topic: its impression has been
		// forgotten (and its id may have been too).
		return c.count(c.unattributed(engaged))
	}
	c.remember(&c.seenFQ, key, ev.TS)
	if !c.ownVariant(ev.Variant) {
		return c.count(Ignored)
	}
	if ev.RequestID == "" {
		return c.count(c.unattributed(engaged))
	}
	s, ok := c.slates[ev.RequestID]
	if !ok {
		if !engaged {
			return c.count(Ignored)
		}
		c.wait(ev)
		return Waiting
	}
	return c.count(c.attribute(s, &ev))
}

func (c *Core) unattributed(engaged bool) Outcome {
	if engaged {
		return Unattributed
	}
	return Ignored
}

// count adds a final feedback outcome to the counters and returns it.
func (c *Core) count(o Outcome) Outcome {
	switch o {
	case Applied:
		c.counters.Clicks++
	case Unattributed:
		c.counters.FeedbackUnattributed++
	case Ignored:
		c.counters.FeedbackIgnored++
	}
	return o
}

// attribute credits feedback ev to slate s.
func (c *Core) attribute(s *slate, ev *events.Feedback) Outcome {
	engaged := recommend.Feedback{Type: ev.Type, Value: ev.Value}.Engaged()
	if ev.UserID != s.ls.UserID {
		return c.unattributed(engaged)
	}
	s.last = max(s.last, ev.TS)
	c.noteSlate(s)
	switch {
	case !s.learn || !engaged:
		return Ignored
	case ev.TS-s.ls.TS > c.cfg.Window.Milliseconds():
		return Unattributed
	}
	pos := -1
	for i := range s.ls.Items {
		if s.ls.Items[i].ItemID == ev.ItemID {
			pos = s.ls.Items[i].Position
			break
		}
	}
	if pos < 0 {
		return Unattributed
	}
	if slices.Contains(s.clicked, pos) {
		return Ignored
	}
	if snap := c.snapshot(); snap != nil {
		c.l.SeedEmbeddings(snap, &s.ls)
	}
	if _, err := c.l.Click(&s.ls, ev.ItemID); err != nil {
		return Unattributed // cannot happen: the item is in the slate
	}
	for i := range s.ls.Items {
		if s.ls.Items[i].Position == pos {
			c.noteUser(s.ls.UserID, c.exp.click(s.ls.UserID, &s.ls.Items[i], len(s.clicked) == 0))
		}
	}
	s.clicked = append(s.clicked, pos)
	c.sincePublish++
	c.sampleFresh(ev.TS, ev.EventID)
	return Applied
}

// wait holds engaged feedback until its impression arrives.
func (c *Core) wait(ev events.Feedback) {
	c.seq++
	c.waiting[ev.RequestID] = append(c.waiting[ev.RequestID], waitingFB{ev: ev, seq: c.seq})
	c.waitQ.push(waitRef{rid: ev.RequestID, eventID: ev.EventID, ts: ev.TS})
	c.nWaiting++
	c.touchWaiting(ev.RequestID, ev.EventID)
}

// remember records an event id for de-duplication.
func (c *Core) remember(q *queue[seenRef], key string, ts int64) {
	c.seq++
	c.rememberAs(q, key, ts, c.seq)
}

// rememberAs is remember with the arrival number given.
func (c *Core) rememberAs(q *queue[seenRef], key string, ts, seq int64) {
	c.seen[key] = seenVal{ts: ts, seq: seq}
	q.push(seenRef{id: key, ts: ts, seq: seq})
	c.noteSeen(key, seq, false)
}

// forget drops a remembered event id.
func (c *Core) forget(ref seenRef) {
	delete(c.seen, ref.id)
	c.noteSeen(ref.id, ref.seq, true)
}

// sampleFresh keeps a uniform sample of the feedback times applied since the
// last publish (reservoir sampling with the event id's hash as the random
// draw, so the sample is deterministic).
func (c *Core) sampleFresh(ts int64, eventID string) {
	c.freshSeen++
	if len(c.fresh) < c.cfg.FreshnessSample {
		c.fresh = append(c.fresh, ts)
		return
	}
	// FNV-1a, inline: hash/fnv's hasher was an allocation per click.
	h := uint64(14695981039346656037)
	for i := 0; i < len(eventID); i++ {
		h ^= uint64(eventID[i])
		h *= 1099511628211
	}
	if j := h % uint64(c.freshSeen); j < uint64(len(c.fresh)) {
		c.fresh[j] = ts
	}
}

// closeDecision applies the high level's update for s: reward r_t from the
// clicks credited so far and the slate's diversity, bootstrapped from next
// (nil when the session ended).
func (c *Core) closeDecision(s *slate, next []float64) {
	if c.open[s.sess] == s.ls.RequestID {
		delete(c.open, s.sess)
	}
	s.dec = decClosed
	c.noteSlate(s)
	div, _ := c.diversity(s)
	r := c.l.Reward(&s.ls, s.clicked, div)
	c.l.ObserveSlate(&s.ls, s.clicked)
	if c.observed != nil {
		c.observed(&s.ls, s.clicked)
	}
	if _, err := c.l.Decision(&s.ls, r, next, 0); err != nil {
		c.counters.DecisionsSkipped++
		return
	}
	c.counters.Decisions++
	c.sincePublish++
	if len(c.rewards) < maxRewards {
		c.rewards = append(c.rewards, r)
	}
}

// diversity returns the slate's intra-list diversity under the catalog
// (false without a catalog or items).
func (c *Core) diversity(s *slate) (float64, bool) {
	if s.divOK {
		return s.div, true
	}
	snap := c.snapshot()
	if snap == nil || len(s.ls.Items) == 0 {
		return 0, false
	}
	// recommend.Diversity without its two slices (of ids, of indexes): a
	// slate's indexes fit on the stack.
	idx := make([]int32, 0, 32)
	masks := make([]uint64, 0, 32)
	narrow := true // every item's categories fit a bit set
	for i := range s.ls.Items {
		if j, ok := snap.Index(s.ls.Items[i].ItemID); ok {
			idx = append(idx, j)
			m, ok := snap.CategoryMask(j)
			masks, narrow = append(masks, m), narrow && ok
		}
	}
	if narrow {
		s.div = diversityOfMasks(masks)
	} else {
		s.div = recommend.DiversityOf(snap, idx)
	}
	s.divOK = true
	return s.div, true
}

// diversityOfMasks is recommend.DiversityOf with each item's categories as
// a bit set (catalog.Snapshot.CategoryMask): the same pairs in the same
// order, each pair's Jaccard |a∩b| / |a∪b| from the same two integers, so
// the same float64 — by popcounts instead of Jaccard's nested loops over
// category lists (45 pairs a slate of 10, 8% of the trainer's CPU per
// event). TestDiversityOfMasksMatches pins it.
func diversityOfMasks(masks []uint64) float64 {
	if len(masks) < 2 {
		return 0
	}
	sum, pairs := 0.0, 0
	for a := 0; a < len(masks); a++ {
		for b := a + 1; b < len(masks); b++ {
			if union := bits.OnesCount64(masks[a] | masks[b]); union == 0 {
				sum++ // two items without categories are identical
			} else {
				sum += float64(bits.OnesCount64(masks[a]&masks[b])) / float64(union)
			}
			pairs++
		}
	}
	return 1 - sum/float64(pairs)
}

// maintain runs after every event: it closes decisions whose outcome is now
// known and forgets what fell out of the window or over a bound. Each rule
// uses the watermark of the topic whose late events it waits for (feedback
// for slates and decisions, impressions for waiting feedback), with the
// other topic's watermark at twice the delay as a fallback when that topic
// is idle.
func (c *Core) maintain() {
	win := c.cfg.Window.Milliseconds()
	grace, gap := c.cfg.DecisionGrace.Milliseconds(), c.cfg.SessionGap.Milliseconds()
	// Closing decisions: once feedback up to the successor's time (plus
	// grace) has been seen, the reward is complete.
	for c.closing.len() > 0 {
		s := c.slates[c.closing.front()]
		if s == nil || s.dec != decClosing {
			c.closing.pop()
			continue
		}
		if c.fbWM < s.nextTS+grace && !passed(s.nextTS, gap, c.fbWM, c.impWM) {
			break
		}
		c.closing.pop()
		c.closeDecision(s, s.nextState)
	}
	// Impressions that no feedback can be credited to any more (or over
	// the bound) are forgotten, closing their decisions first.
	for c.slateQ.len() > 0 {
		rid := c.slateQ.front()
		s := c.slates[rid]
		if !passed(s.ls.TS, win, c.fbWM, c.impWM) && c.slateQ.len() <= c.cfg.MaxSlates {
			break
		}
		c.slateQ.pop()
		switch s.dec {
		case decOpen:
			c.closeDecision(s, nil)
		case decClosing:
			c.closeDecision(s, s.nextState)
		}
		delete(c.slates, rid)
		s.gone = true
		c.noteSlate(s)
	}
	// Feedback whose impression can no longer arrive in time.
	for c.waitQ.len() > 0 {
		ref := c.waitQ.front()
		if !passed(ref.ts, win, c.impWM, c.fbWM) && c.nWaiting <= c.cfg.MaxWaiting {
			break
		}
		c.waitQ.pop()
		fbs := c.waiting[ref.rid]
		for i := range fbs {
			if fbs[i].ev.EventID == ref.eventID {
				fbs = slices.Delete(fbs, i, i+1)
				c.nWaiting--
				c.counters.FeedbackUnattributed++
				c.touchWaiting(ref.rid, ref.eventID)
				break
			}
		}
		if len(fbs) == 0 {
			delete(c.waiting, ref.rid)
		} else {
			c.waiting[ref.rid] = fbs
		}
	}
	// Event ids older than the window on their own topic: a repeat would
	// be dropped as too old anyway. Over the bound, the oldest go first.
	for _, q := range []struct {
		q  *queue[seenRef]
		wm int64
	}{{&c.seenIQ, c.impWM}, {&c.seenFQ, c.fbWM}} {
		for q.q.len() > 0 && q.q.front().ts < q.wm-win {
			c.forget(q.q.pop())
		}
	}
	for len(c.seen) > c.cfg.MaxDedup {
		q := &c.seenIQ
		if q.len() == 0 || (c.seenFQ.len() > 0 && c.seenFQ.front().ts < q.front().ts) {
			q = &c.seenFQ
		}
		c.forget(q.pop())
		c.counters.DedupEvicted++
	}
	// Sessions that went quiet end their open decision.
	if wm := max(c.impWM, c.fbWM); wm >= c.lastSweep+sweepEvery {
		c.lastSweep = wm
		lo, hi := min(c.impWM, c.fbWM), wm
		var ended []*slate
		for _, rid := range c.open {
			if s := c.slates[rid]; passed(s.last, gap, lo, hi) {
				ended = append(ended, s)
			}
		}
		slices.SortFunc(ended, func(a, b *slate) int {
			return cmp.Or(cmp.Compare(a.ls.TS, b.ls.TS), cmp.Compare(a.ls.RequestID, b.ls.RequestID))
		})
		for _, s := range ended {
			c.closeDecision(s, nil)
		}
	}
}

// Snapshot returns the model to publish next, named "VARIANT-N" with N one
// more than the last published number, with its metadata. The working
// model is returned without a copy (its Version is set to the new name):
// encode it before the next event. Call Published(n) once it is stored.
func (c *Core) Snapshot(createdMS int64) (m *recommend.Model, meta recommend.SnapshotMeta, n uint64) {
	n = c.version + 1
	m = c.l.Model()
	m.Version = VersionName(c.cfg.Variant, n)
	meta = recommend.SnapshotMeta{
		Variant: c.cfg.Variant, CreatedMS: createdMS, Updates: c.Updates(),
		FeedbackTS: slices.Clone(c.fresh),
	}
	return m, meta, n
}

// Published records that snapshot n is stored: its updates and feedback
// times no longer count as pending.
func (c *Core) Published(n uint64) {
	c.version = max(c.version, n)
	c.sincePublish = 0
	c.fresh = c.fresh[:0]
	c.freshSeen = 0
}

// RaiseVersion makes the next snapshot number larger than n, so versions
// stay unique when a snapshot was published after the checkpoint the Core
// was restored from.
func (c *Core) RaiseVersion(n uint64) { c.version = max(c.version, n) }

// VersionName is the model version string of snapshot n of variant.
func VersionName(variant string, n uint64) string { return fmt.Sprintf("%s-%d", variant, n) }

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// queue is a FIFO backed by a slice that is compacted as it drains.
// closingQueue holds the closing decisions in the order their outcomes
// become known: by the successor's time (nextTS; a decision closes once
// feedback has been seen up to it plus the grace), then by when they began
// closing. A queue in the order they began closing would hold a decision
// whose successor came late behind every one that could close: the
// consumer reads partitions in turn, so decisions began closing in
// partition order, not time order, and through the HTTP API a burst of
// traffic closed 0 of 2,400 decisions until later traffic arrived (720 of
// 2,400 of a stream read by partition, in a test of the Core).
type closingQueue struct{ h []closingEntry }

type closingEntry struct {
	nextTS, seq int64
	rid         string
}

func (a *closingEntry) before(b *closingEntry) bool {
	return a.nextTS < b.nextTS || a.nextTS == b.nextTS && a.seq < b.seq
}

// push and pop are container/heap's sift up and down on the entries
// themselves: through heap.Interface every push and pop put an entry in
// an interface, two allocations per decision.
func (q *closingQueue) push(rid string, nextTS, seq int64) {
	q.h = append(q.h, closingEntry{nextTS: nextTS, seq: seq, rid: rid})
	h := q.h
	for j := len(h) - 1; j > 0; {
		i := (j - 1) / 2
		if !h[j].before(&h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		j = i
	}
}

func (q *closingQueue) len() int      { return len(q.h) }
func (q *closingQueue) front() string { return q.h[0].rid }

func (q *closingQueue) pop() string {
	h := q.h
	n := len(h) - 1
	rid := h[0].rid
	h[0] = h[n]
	h[n] = closingEntry{}
	h = h[:n]
	for i := 0; ; {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && h[r].before(&h[j]) {
			j = r
		}
		if !h[j].before(&h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
	q.h = h
	return rid
}

// all lists the queue in order, so that equal states checkpoint alike.
func (q *closingQueue) all() []string {
	s := slices.Clone(q.h)
	slices.SortFunc(s, func(a, b closingEntry) int { return cmp.Or(cmp.Compare(a.nextTS, b.nextTS), cmp.Compare(a.seq, b.seq)) })
	out := make([]string, len(s))
	for i, e := range s {
		out[i] = e.rid
	}
	return out
}

type queue[T any] struct {
	items []T
	head  int
}

func (q *queue[T]) push(x T) { q.items = append(q.items, x) }
func (q *queue[T]) len() int { return len(q.items) - q.head }
func (q *queue[T]) front() T { return q.items[q.head] }
func (q *queue[T]) all() []T { return q.items[q.head:] }
func (q *queue[T]) pop() T {
	x := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head >= 1024 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return x
}

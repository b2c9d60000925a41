package trainer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

func newTestCore(t *testing.T, cfg Config, cat fixedCatalog) *Core {
	t.Helper()
	c, err := NewCore(cfg, nil, cat)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func modelBytes(t *testing.T, c *Core) []byte {
	t.Helper()
	b, err := recommend.EncodeModel(c.Learner().Model(), recommend.SnapshotMeta{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func want(t *testing.T, what string, got, wantO Outcome) {
	t.Helper()
	if got != wantO {
		t.Errorf("%s: outcome %v, want %v", what, got, wantO)
	}
}

func TestJoinFeedbackToImpression(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	c := newTestCore(t, DefaultConfig(), cat)
	items := itemIDs(snap, 0, 6)
	before := modelBytes(t, c)

	want(t, "impression", c.Impression(impression(snap, "r1", "u1", "s1", t0, 2, items...)), Applied)
	if !bytes.Equal(before, modelBytes(t, c)) {
		t.Error("an impression alone changed the model")
	}
	want(t, "click", c.Feedback(feedback("f1", "r1", "u1", items[1], t0+1000, events.FeedbackClick)), Applied)
	if c.Learner().Model().ItemBias[items[1]] <= 0 {
		t.Errorf("clicked item's bias = %v, want > 0", c.Learner().Model().ItemBias[items[1]])
	}
	if c.Learner().Model().ItemEmb[items[1]] == nil {
		t.Error("clicked slate's embeddings were not seeded from the catalog")
	}
	// A good rating is engagement too; a low one and a view are not.
	want(t, "rating 4", c.Feedback(events.Feedback{Schema: 1, EventID: "f2", RequestID: "r1", UserID: "u1", ItemID: items[2], Type: events.FeedbackRating, Value: 4, TS: t0 + 1100}), Applied)
	want(t, "rating 2", c.Feedback(events.Feedback{Schema: 1, EventID: "f3", RequestID: "r1", UserID: "u1", ItemID: items[3], Type: events.FeedbackRating, Value: 2, TS: t0 + 1200}), Ignored)
	want(t, "view", c.Feedback(feedback("f4", "r1", "u1", items[3], t0+1300, events.FeedbackView)), Ignored)
	want(t, "second click on one item", c.Feedback(feedback("f5", "r1", "u1", items[1], t0+1400, events.FeedbackClick)), Ignored)
	want(t, "item not shown", c.Feedback(feedback("f6", "r1", "u1", "not-shown", t0+1500, events.FeedbackClick)), Unattributed)
	want(t, "other user", c.Feedback(feedback("f7", "r1", "u2", items[4], t0+1600, events.FeedbackClick)), Unattributed)
	want(t, "no request id", c.Feedback(feedback("f8", "", "u1", items[4], t0+1700, events.FeedbackClick)), Unattributed)
	other := feedback("f9", "r1", "u1", items[4], t0+1800, events.FeedbackClick)
	other.Variant = "treatment"
	want(t, "other variant", c.Feedback(other), Ignored)

	// Feedback before its impression waits, then applies.
	items2 := itemIDs(snap, 50, 6)
	want(t, "early click", c.Feedback(feedback("g1", "r2", "u1", items2[0], t0+3000, events.FeedbackClick)), Waiting)
	want(t, "early view", c.Feedback(feedback("g2", "r2", "u1", items2[1], t0+3000, events.FeedbackView)), Ignored)
	if _, waiting, _, _ := c.Buffered(); waiting != 1 {
		t.Errorf("waiting = %d, want 1", waiting)
	}
	clicks := c.Counters().Clicks
	want(t, "late impression", c.Impression(impression(snap, "r2", "u1", "s1", t0+2500, 1, items2...)), Applied)
	if got := c.Counters().Clicks; got != clicks+1 {
		t.Errorf("clicks after the impression arrived = %d, want %d", got, clicks+1)
	}
	if _, waiting, _, _ := c.Buffered(); waiting != 0 {
		t.Errorf("waiting = %d, want 0", waiting)
	}
	got := c.Counters()
	wantC := Counters{Impressions: 2, Clicks: 3, FeedbackUnattributed: 3, FeedbackIgnored: 5}
	if got.Impressions != wantC.Impressions || got.Clicks != wantC.Clicks || got.FeedbackUnattributed != wantC.FeedbackUnattributed || got.FeedbackIgnored != wantC.FeedbackIgnored {
		t.Errorf("counters = %+v, want %+v", got, wantC)
	}
	if c.SincePublish() != 3 {
		t.Errorf("SincePublish = %d, want 3 (one per click)", c.SincePublish())
	}
}

func TestDuplicatesAppliedOnce(t *testing.T) {
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 5, 10, 1)
	once, twice := newTestCore(t, DefaultConfig(), cat), newTestCore(t, DefaultConfig(), cat)
	for i, imp := range s.imps {
		once.Impression(imp)
		twice.Impression(imp)
		if i%3 == 0 {
			want(t, "repeated impression", twice.Impression(imp), Duplicate)
		}
	}
	for i, fb := range s.clicks {
		once.Feedback(fb)
		twice.Feedback(fb)
		if i%2 == 0 {
			want(t, "repeated feedback", twice.Feedback(fb), Duplicate)
		}
	}
	// The same impression under a new event id (a request id seen before)
	// is not learned from twice either.
	imp := s.imps[0]
	imp.EventID = "other-event"
	want(t, "impression with a known request id", twice.Impression(imp), Ignored)

	a, b := once.Counters(), twice.Counters()
	if a.Impressions != b.Impressions || a.Clicks != b.Clicks || a.Decisions != b.Decisions {
		t.Errorf("with duplicates %+v, without %+v", b, a)
	}
	if b.ImpressionDuplicates != int64((len(s.imps)+2)/3) || b.FeedbackDuplicates != int64((len(s.clicks)+1)/2) {
		t.Errorf("duplicates counted %d/%d, want %d/%d", b.ImpressionDuplicates, b.FeedbackDuplicates, (len(s.imps)+2)/3, (len(s.clicks)+1)/2)
	}
	if !bytes.Equal(modelBytes(t, once), modelBytes(t, twice)) {
		t.Error("duplicates changed the learned model")
	}
}

func TestFeedbackOutsideWindowIsUnattributed(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	cfg := DefaultConfig()
	cfg.Window = 10 * time.Minute
	c := newTestCore(t, cfg, cat)
	items := itemIDs(snap, 0, 5)
	win := cfg.Window.Milliseconds()

	c.Impression(impression(snap, "r1", "u1", "", t0, 0, items...))
	want(t, "click after the window", c.Feedback(feedback("f1", "r1", "u1", items[0], t0+win+1, events.FeedbackClick)), Unattributed)

	// Feedback whose impression never comes is unattributed once the
	// watermark passes its window.
	want(t, "orphan click", c.Feedback(feedback("f2", "r-missing", "u1", items[0], t0+win+2, events.FeedbackClick)), Waiting)
	n := c.Counters().FeedbackUnattributed
	c.Impression(impression(snap, "r-other", "u9", "", t0+2*win+3, 0, items...))
	if got := c.Counters().FeedbackUnattributed; got != n+1 {
		t.Errorf("orphan click not expired: unattributed %d, want %d", got, n+1)
	}
	// Events older than the window are dropped on arrival.
	want(t, "stale impression", c.Impression(impression(snap, "r-stale", "u1", "", t0, 0, items...)), Ignored)
	want(t, "stale click", c.Feedback(feedback("f3", "r-stale", "u1", items[0], t0+1, events.FeedbackClick)), Unattributed)
	// r1 itself fell out of the window and was forgotten.
	if slates, _, _, _ := c.Buffered(); slates != 1 {
		t.Errorf("slates kept = %d, want 1 (only r-other)", slates)
	}
}

func TestDecisionClosesOnNextImpression(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	cfg := DefaultConfig()
	c := newTestCore(t, cfg, cat)
	a, b := itemIDs(snap, 0, 6), itemIDs(snap, 100, 6)
	grace := cfg.DecisionGrace.Milliseconds()
	policy := func() []float64 { return slices.Clone(c.Learner().Model().Intent.B) }

	c.Impression(impression(snap, "r1", "u1", "s1", t0, 3, a...))
	c.Impression(impression(snap, "r2", "u1", "s1", t0+10_000, 2, b...))
	if c.Counters().Decisions != 0 {
		t.Fatal("decision closed before late feedback could arrive")
	}
	// The click on r1 reaches the trainer after r2 (independent topics):
	// it must still count in r1's reward.
	c.Feedback(feedback("f1", "r1", "u1", a[1], t0+9_000, events.FeedbackClick))
	c.DrainRewards()
	b0 := policy()
	if c.Counters().Decisions != 0 {
		t.Fatal("decision closed before the feedback watermark passed the successor + grace")
	}
	// Feedback of another user moves the feedback watermark past r2 + grace.
	c.Feedback(feedback("x1", "", "u2", a[0], t0+10_000+grace, events.FeedbackView))
	if got := c.Counters().Decisions; got != 1 {
		t.Fatalf("decisions = %d after the grace, want 1", got)
	}
	r := c.DrainRewards()
	w := cfg.Learner.Reward
	wantR := 1 + w.Novelty*1 + w.Diversity*recommend.Diversity(snap, a) // a[1] has novelty 1
	if len(r) != 1 || math.Abs(r[0]-wantR) > 1e-9 {
		t.Errorf("reward of r1 = %v, want [%v]", r, wantR)
	}
	if slices.Equal(b0, policy()) {
		t.Error("closing a decision did not update the high level")
	}
	// r2 is open; once the session has been quiet for the gap, it closes
	// with no successor.
	c.Feedback(feedback("x2", "", "u2", a[0], t0+10_000+cfg.SessionGap.Milliseconds()+sweepEvery+1, events.FeedbackView))
	if got := c.Counters().Decisions; got != 2 {
		t.Errorf("decisions = %d after the session gap, want 2", got)
	}
	if _, _, open, _ := c.Buffered(); open != 0 {
		t.Errorf("open decisions = %d, want 0", open)
	}
}

func TestImplicitSessionEndsAfterGap(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	cfg := DefaultConfig()
	cfg.Window = 2 * time.Hour
	c := newTestCore(t, cfg, cat)
	a := itemIDs(snap, 0, 5)
	c.Impression(impression(snap, "r1", "u1", "", t0, 1, a...))
	// Another user's impression in its own implicit session leaves u1's
	// decision alone.
	c.Impression(impression(snap, "r2", "u2", "", t0+1000, 1, a...))
	if _, _, open, _ := c.Buffered(); open != 2 {
		t.Fatalf("open decisions = %d, want 2", open)
	}
	// u1 returns after more than the gap: the old decision ends at once
	// with no successor (the sweep is not needed for that).
	c.Impression(impression(snap, "r3", "u1", "", t0+cfg.SessionGap.Milliseconds()+1, 1, a...))
	if got := c.Counters().Decisions; got < 1 {
		t.Errorf("decisions = %d, want u1's first closed", got)
	}
}

func TestSnapshotVersionsAndFreshness(t *testing.T) {
	cat := testCatalog(t, 300)
	cfg := DefaultConfig()
	cfg.FreshnessSample = 10
	c := newTestCore(t, cfg, cat)
	s := genStream(cat.s, 10, 10, 3)
	for _, imp := range s.imps {
		c.Impression(imp)
	}
	for _, fb := range s.clicks {
		c.Feedback(fb)
	}
	m, meta, n := c.Snapshot(123)
	if n != 1 || m.Version != "default-1" || meta.Variant != "default" || meta.CreatedMS != 123 {
		t.Errorf("first snapshot: n=%d version=%q meta=%+v", n, m.Version, meta)
	}
	if len(meta.FeedbackTS) != 10 {
		t.Errorf("FeedbackTS has %d entries, want the bound 10", len(meta.FeedbackTS))
	}
	if meta.Updates != c.Updates() || meta.Updates != c.Counters().Clicks+c.Counters().Decisions {
		t.Errorf("meta.Updates = %d, core %d, counters %+v", meta.Updates, c.Updates(), c.Counters())
	}
	data, err := recommend.EncodeModel(m, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := recommend.DecodeModel(data); err != nil || len(got.FeedbackTS) != 10 {
		t.Fatalf("DecodeModel: %v, %+v", err, got)
	}
	c.Published(n)
	if c.SincePublish() != 0 {
		t.Error("Published did not reset the pending updates")
	}
	if _, meta, n := c.Snapshot(0); n != 2 || len(meta.FeedbackTS) != 0 {
		t.Errorf("second snapshot n=%d with %d feedback times, want 2 and 0", n, len(meta.FeedbackTS))
	}
	c.RaiseVersion(41)
	if _, _, n := c.Snapshot(0); n != 42 {
		t.Errorf("after RaiseVersion(41) next = %d, want 42", n)
	}
}

func TestBounds(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	cfg := DefaultConfig()
	cfg.MaxSlates, cfg.MaxWaiting, cfg.MaxDedup = 5, 3, 8
	c := newTestCore(t, cfg, cat)
	items := itemIDs(snap, 0, 4)
	for i := range 10 {
		rid := "r" + string(rune('a'+i))
		c.Impression(impression(snap, rid, "u"+rid, "", t0+int64(i), 0, items...))
		c.Feedback(feedback("w"+rid, "missing-"+rid, "u"+rid, items[0], t0+int64(i), events.FeedbackClick))
	}
	slates, waiting, open, ids := c.Buffered()
	if slates != 5 || waiting != 3 || ids != 8 || open != 5 {
		t.Errorf("buffered slates=%d waiting=%d open=%d ids=%d, want 5 3 5 8", slates, waiting, open, ids)
	}
	got := c.Counters()
	if got.Decisions != 5 || got.FeedbackUnattributed != 7 || got.DedupEvicted != 12 {
		t.Errorf("counters %+v: want 5 decisions closed by eviction, 7 feedback expired, 12 ids evicted", got)
	}
}

// buildState drives a core into a state with every kind of content: slates
// with open, closing and closed decisions, waiting feedback, remembered ids,
// a pending freshness sample and a published version.
func buildState(t *testing.T, c *Core, cat fixedCatalog) {
	t.Helper()
	snap := cat.s
	s := genStream(snap, 6, 8, 5)
	for i, imp := range s.imps {
		c.Impression(imp)
		if i == 20 {
			m, meta, n := c.Snapshot(1)
			if _, err := recommend.EncodeModel(m, meta); err != nil {
				t.Fatal(err)
			}
			c.Published(n)
		}
	}
	for _, fb := range s.clicks[:len(s.clicks)-3] {
		c.Feedback(fb)
	}
	a := itemIDs(snap, 10, 5)
	c.Feedback(feedback("early", "r-future", "user-1", a[0], t0+100_000, events.FeedbackClick))
	c.Impression(impression(snap, "r-next", "user-2", "s-1", t0+100_000, 2, a...))
	_, waiting, decisions, _ := c.Buffered()
	if waiting == 0 || decisions == 0 || c.Counters().Clicks == 0 || c.SincePublish() == 0 || c.Version() == 0 {
		t.Fatalf("state too thin for the test: waiting=%d decisions=%d %+v", waiting, decisions, c.Counters())
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	cat := testCatalog(t, 300)
	c := newTestCore(t, DefaultConfig(), cat)
	buildState(t, c, cat)
	data, err := c.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeCheckpoint(DefaultConfig(), data, cat)
	if err != nil {
		t.Fatal(err)
	}
	r0 := struct {
		wm       int64
		counters Counters
	}{r.Watermark(), r.Counters()}
	again, err := r.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatal("a restored core re-encodes to different bytes")
	}
	if r.Counters() != c.Counters() || r.Watermark() != c.Watermark() || r.Updates() != c.Updates() || r.Version() != c.Version() || r.SincePublish() != c.SincePublish() {
		t.Errorf("restored %+v/%d/%d, original %+v/%d/%d", r.Counters(), r.Watermark(), r.Updates(), c.Counters(), c.Watermark(), c.Updates())
	}
	// Identical state means identical futures: the same events give the
	// same model and the same checkpoint.
	s := genStream(cat.s, 6, 8, 5) // replays: duplicates, and the last clicks are new
	more := genStream(cat.s, 4, 6, 77)
	for _, core := range []*Core{c, r} {
		for _, fb := range s.clicks {
			core.Feedback(fb)
		}
		for _, imp := range more.imps {
			imp.TS += 200_000
			core.Impression(imp)
		}
		core.Impression(impression(cat.s, "r-future", "user-1", "s-9", t0+400_000, 1, itemIDs(cat.s, 10, 5)...))
	}
	if !bytes.Equal(modelBytes(t, c), modelBytes(t, r)) {
		t.Error("original and restored cores learned different models from the same events")
	}
	c1, _ := c.EncodeCheckpoint()
	c2, _ := r.EncodeCheckpoint()
	if !bytes.Equal(c1, c2) {
		t.Error("original and restored cores diverged")
	}
	if c.Counters().FeedbackDuplicates == 0 {
		t.Error("replayed feedback was not recognised after the restore")
	}

	if got, w, err := ReadCheckpointCounters(data); err != nil || w != r0.wm || got != r0.counters {
		t.Errorf("ReadCheckpointCounters = %+v, %d, %v; want %+v, %d", got, w, err, r0.counters, r0.wm)
	}
}

func TestCorruptCheckpointRejected(t *testing.T) {
	cat := testCatalog(t, 300)
	c := newTestCore(t, DefaultConfig(), cat)
	buildState(t, c, cat)
	data, err := c.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	flip := slices.Clone(data)
	flip[len(flip)/2] ^= 0x40
	schema := slices.Clone(data)
	binary.BigEndian.PutUint16(schema[4:], CheckpointSchema+1)
	for _, tc := range []struct {
		name string
		data []byte
		err  error
		text string
	}{
		{"empty", nil, ErrCheckpointCorrupt, "bad header"},
		{"not a checkpoint", []byte("NVRM and some more bytes to pass the length"), ErrCheckpointCorrupt, "bad header"},
		{"truncated", data[:len(data)-10], ErrCheckpointCorrupt, "payload length"},
		{"flipped bit", flip, ErrCheckpointCorrupt, "checksum mismatch"},
		{"newer schema", schema, ErrCheckpointSchema, "schema 2"},
	} {
		_, err := DecodeCheckpoint(DefaultConfig(), tc.data, cat)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.err, tc.text)
		}
	}
	other := DefaultConfig()
	other.Variant = "treatment"
	if _, err := DecodeCheckpoint(other, data, cat); !errors.Is(err, ErrCheckpointVariant) {
		t.Errorf("other variant: %v, want ErrCheckpointVariant", err)
	}
}

func TestCoreIsDeterministic(t *testing.T) {
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 8, 12, 9)
	var out [][]byte
	for range 2 {
		c := newTestCore(t, DefaultConfig(), cat)
		for i := range max(len(s.imps), len(s.clicks)) {
			if i < len(s.imps) {
				c.Impression(s.imps[i])
			}
			if i < len(s.clicks) {
				c.Feedback(s.clicks[i])
			}
		}
		b, err := c.EncodeCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Error("the same events gave different states")
	}
}

func TestUnlearnableImpressionsAreIgnored(t *testing.T) {
	cat := testCatalog(t, 300)
	snap := cat.s
	c := newTestCore(t, DefaultConfig(), cat)
	items := itemIDs(snap, 0, 4)
	before := modelBytes(t, c)
	mutate := map[string]func(*events.Impression){
		"other variant":        func(ev *events.Impression) { ev.Variant = "treatment" },
		"no features":          func(ev *events.Impression) { ev.Items[1].Features = nil },
		"huge feature":         func(ev *events.Impression) { ev.Items[0].Features[0] = 1e300 },
		"propensity above one": func(ev *events.Impression) { ev.Items[2].Propensity = 7 },
		"huge state":           func(ev *events.Impression) { ev.Intent.State[3] = -1e200 },
		"negative probability": func(ev *events.Impression) { ev.Intent.Probability = -0.5 },
	}
	i := 0
	for name, f := range mutate {
		rid := "r-" + name
		ev := impression(snap, rid, "u1", "s", t0+int64(i), 1, items...)
		f(&ev)
		want(t, name, c.Impression(ev), Ignored)
		want(t, name+": click", c.Feedback(feedback("f-"+name, rid, "u1", items[0], t0+int64(i)+1, events.FeedbackClick)), Ignored)
		i++
	}
	if !bytes.Equal(before, modelBytes(t, c)) {
		t.Error("unlearnable impressions changed the model")
	}
	got := c.Counters()
	if got.ImpressionsIgnored != int64(len(mutate)) || got.FeedbackIgnored != int64(len(mutate)) || got.Impressions != 0 || got.Clicks != 0 {
		t.Errorf("counters %+v", got)
	}
	// A decision with a state of the wrong length still teaches the low
	// level; only the high level skips it.
	ev := impression(snap, "r-short-state", "u2", "s", t0+100, 1, items...)
	ev.Intent.State = ev.Intent.State[:3]
	want(t, "short state", c.Impression(ev), Applied)
	want(t, "short state: click", c.Feedback(feedback("f-short", "r-short-state", "u2", items[0], t0+101, events.FeedbackClick)), Applied)
	if c.Counters().DecisionsSkipped != 1 {
		t.Errorf("DecisionsSkipped = %d, want 1", c.Counters().DecisionsSkipped)
	}
}

// TestDecisionsCloseWhenPartitionsAreReadInTurn reads one burst of traffic
// in time order and, as a consumer does, partition by partition (users
// keyed to partitions), and checks that about as many decisions close:
// a decision waits only for feedback up to its successor's time, not for
// every decision that began closing before it.
func TestDecisionsCloseWhenPartitionsAreReadInTurn(t *testing.T) {
	cat := testCatalog(t, 200)
	const parts = 3
	var imps [parts][]events.Impression
	var fbs [parts][]events.Feedback
	var all []any // in time order
	ts := t0
	for u := range 150 {
		user := fmt.Sprint("u", u)
		for s := range 4 {
			for k := range 5 {
				rid := fmt.Sprintf("r-%d-%d-%d", u, s, k)
				items := itemIDs(cat.s, (u*7+k)%200, 8)
				imp := impression(cat.s, rid, user, fmt.Sprint("s", s), ts, 0, items...)
				imps[u%parts] = append(imps[u%parts], imp)
				all = append(all, imp)
				ts += 8
				if k%2 == 0 {
					fb := feedback("f"+rid, rid, user, items[1], ts, events.FeedbackClick)
					fbs[u%parts] = append(fbs[u%parts], fb)
					all = append(all, fb)
				}
				ts += 8
			}
		}
	}
	run := func(feed func(c *Core)) int64 {
		c, err := NewCore(DefaultConfig(), recommend.DefaultModel(), cat)
		if err != nil {
			t.Fatal(err)
		}
		feed(c)
		return c.Counters().Decisions
	}
	inOrder := run(func(c *Core) {
		for _, e := range all {
			switch e := e.(type) {
			case events.Impression:
				c.Impression(e)
			case events.Feedback:
				c.Feedback(e)
			}
		}
	})
	byPartition := run(func(c *Core) {
		for p := range parts {
			for _, e := range imps[p] {
				c.Impression(e)
			}
			for _, e := range fbs[p] {
				c.Feedback(e)
			}
		}
	})
	if inOrder < 2000 || float64(byPartition) < 0.95*float64(inOrder) {
		t.Fatalf("decisions closed: %d read in time order, %d partition by partition", inOrder, byPartition)
	}
}

// TestDiversityOfMasksMatches pins the trainer's slate diversity from
// category bit sets to recommend.DiversityOf's, exactly, on random slates
// of a catalog whose items have 0 to 4 of 40 categories (two items without
// any are identical), and checks that a catalog with categories beyond the
// bit set's 64 takes DiversityOf itself.
func TestDiversityOfMasksMatches(t *testing.T) {
	for _, ncat := range []int{40, 100} {
		rng := rand.New(rand.NewPCG(uint64(ncat), 3))
		items := make([]catalog.Item, 500)
		for i := range items {
			items[i] = catalog.Item{ID: fmt.Sprintf("item-%d", i), Popularity: float64(i)}
			for range rng.IntN(5) {
				items[i].Categories = append(items[i].Categories, fmt.Sprintf("c%d", rng.IntN(ncat)))
			}
		}
		snap, err := catalog.Build(1, catalog.DefaultDim, items)
		if err != nil {
			t.Fatal(err)
		}
		c := newCore(DefaultConfig().withDefaults(), recommend.NewLearner(recommend.DefaultLearnerConfig(), recommend.DefaultModel()), fixedCatalog{snap})
		for trial := range 2000 {
			k := 1 + rng.IntN(30)
			s := &slate{}
			idx := make([]int32, k)
			for i := range idx {
				idx[i] = int32(rng.IntN(snap.Len()))
				s.ls.Items = append(s.ls.Items, recommend.LoggedItem{ItemID: snap.Item(idx[i]).ID})
			}
			got, ok := c.diversity(s)
			if want := recommend.DiversityOf(snap, idx); !ok || got != want {
				t.Fatalf("%d categories, slate %d (%v): diversity %v, DiversityOf %v", ncat, trial, idx, got, want)
			}
		}
	}
}

package trainer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/ranker"
	"github.com/novarec/novarec/recommend"
)

// image applies deltas the way features.Store.CommitState does, in memory.
type image struct{ features.StateImage }

func (im *image) apply(d *features.StateDelta) {
	if im.Hashes == nil {
		im.Hashes = map[string]map[string]string{}
	}
	im.Head = d.Head
	for h, fs := range d.Put {
		if im.Hashes[h] == nil {
			im.Hashes[h] = map[string]string{}
		}
		for f, v := range fs {
			im.Hashes[h][f] = string(v)
		}
	}
	for h, fs := range d.Del {
		for _, f := range fs {
			delete(im.Hashes[h], f)
		}
	}
}

func (im *image) records() int {
	n := 0
	for _, fs := range im.Hashes {
		n += len(fs)
	}
	return n
}

// commit takes c's delta into im.
func commit(t testing.TB, c *Core, im *image) *features.StateDelta {
	t.Helper()
	d, err := c.StateDelta()
	if err != nil {
		t.Fatal(err)
	}
	im.apply(d)
	c.Committed()
	return d
}

func checkpointBytes(t testing.TB, c *Core) []byte {
	t.Helper()
	b, err := c.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateDeltasRebuildTheCore checks that the records written commit by
// commit describe the whole Core: restoring them gives a Core whose whole
// checkpoint is byte for byte the original's, and which learns the same
// from the same events (duplicates included).
func TestStateDeltasRebuildTheCore(t *testing.T) {
	cat := testCatalog(t, 300)
	c := newTestCore(t, DefaultConfig(), cat)
	c.TrackChanges()
	var im image
	s := genStream(cat.s, 6, 8, 5)
	for i, imp := range s.imps {
		c.Impression(imp)
		if i%7 == 0 {
			commit(t, c, &im)
		}
	}
	for i, fb := range s.clicks[:len(s.clicks)-3] {
		c.Feedback(fb)
		if i%5 == 0 {
			commit(t, c, &im)
		}
	}
	a := itemIDs(cat.s, 10, 5)
	c.Feedback(feedback("early", "r-future", "user-1", a[0], t0+100_000, events.FeedbackClick))
	c.Impression(impression(cat.s, "r-next", "user-2", "s-1", t0+100_000, 2, a...))
	// Late enough that decisions close and slates and ids leave the window.
	c.Impression(impression(cat.s, "r-late", "user-3", "s-1", t0+40*60_000, 2, a...))
	c.Feedback(feedback("early-2", "r-future-2", "user-1", a[0], t0+40*60_000+10, events.FeedbackClick))
	commit(t, c, &im)
	if slates, waiting, decisions, ids := c.Buffered(); slates == 0 || waiting == 0 || decisions == 0 || ids == 0 {
		t.Fatalf("state too thin for the test: %d %d %d %d", slates, waiting, decisions, ids)
	}

	r, err := RestoreState(DefaultConfig(), &im.StateImage, cat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(checkpointBytes(t, c), checkpointBytes(t, r)) {
		t.Fatal("the restored core differs from the original")
	}
	// A restored core knows its records are stored: nothing to rewrite.
	d, err := r.StateDelta()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Put)+len(d.Del) != 0 {
		t.Fatalf("first delta after a restore writes %d hashes, deletes in %d", len(d.Put), len(d.Del))
	}
	more := genStream(cat.s, 4, 6, 77)
	for _, core := range []*Core{c, r} {
		for _, fb := range s.clicks {
			core.Feedback(fb)
		}
		for _, imp := range more.imps {
			imp.TS += 40 * 60_000
			core.Impression(imp)
		}
	}
	if !bytes.Equal(checkpointBytes(t, c), checkpointBytes(t, r)) {
		t.Error("original and restored cores diverged on the same events")
	}
	// Their deltas agree too, and bring the image to the same state again.
	commit(t, c, &im)
	again, err := RestoreState(DefaultConfig(), &im.StateImage, cat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(checkpointBytes(t, c), checkpointBytes(t, again)) {
		t.Error("the second restore differs")
	}
}

// TestStateDeltasFollowReusedIDs checks the records when entries leave the
// join state and their ids come back within one commit interval: a stored
// slate dropped over MaxSlates whose request id a new impression takes, a
// stored event id evicted over MaxDedup and delivered again, and slates and
// ids that come and go between two commits (never stored). After every
// commit the records restore the Core exactly.
func TestStateDeltasFollowReusedIDs(t *testing.T) {
	cat := testCatalog(t, 300)
	cfg := DefaultConfig()
	cfg.MaxSlates, cfg.MaxDedup = 3, 4
	c := newTestCore(t, cfg, cat)
	c.TrackChanges()
	var im image
	a := itemIDs(cat.s, 10, 5)
	imp := func(eid, rid, user string, ts int64) {
		ev := impression(cat.s, rid, user, "s", ts, 1, a...)
		ev.EventID = eid
		c.Impression(ev)
	}
	check := func(step string) {
		t.Helper()
		commit(t, c, &im)
		r, err := RestoreState(cfg, &im.StateImage, cat)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !bytes.Equal(checkpointBytes(t, c), checkpointBytes(t, r)) {
			t.Fatalf("%s: the restored core differs from the original", step)
		}
	}
	imp("e1", "r1", "u1", t0)
	imp("e2", "r2", "u2", t0+1)
	imp("e3", "r3", "u3", t0+2)
	check("stored")
	imp("e4", "r4", "u1", t0+3) // r1 leaves (over MaxSlates)
	imp("e5", "r1", "u2", t0+4) // r1 again, a new slate; e1 evicted
	imp("e1", "r6", "u3", t0+5) // e1 delivered again: remembered anew
	check("reused")
	imp("e7", "r7", "u1", t0+6)
	imp("e8", "r8", "u2", t0+7)
	imp("e9", "r9", "u3", t0+8)
	imp("e10", "r10", "u1", t0+9) // r7 came and went between commits
	c.Feedback(feedback("f1", "r10", "u1", a[0], t0+10, events.FeedbackClick))
	check("transient")
	if slates, _, _, ids := c.Buffered(); slates != 3 || ids != 4 {
		t.Fatalf("%d slates, %d ids: want the bounds, 3 and 4", slates, ids)
	}
}

// TestCommitSizeIndependentOfWindow fills the attribution window with 1,000
// and with 20,000 impressions, then feeds both cores the same 300 events:
// the commits that follow write the same records, of nearly the same size
// (the head differs only in its counters).
func TestCommitSizeIndependentOfWindow(t *testing.T) {
	cat := testCatalog(t, 500)
	var sizes, records []int
	for _, fill := range []int{1000, 20_000} {
		c := newTestCore(t, DefaultConfig(), cat)
		c.TrackChanges()
		var im image
		// One impression per filler user: no decision of theirs closes
		// while the new events come in.
		for i := range fill {
			rid := fmt.Sprintf("fill-%d", i)
			c.Impression(impression(cat.s, rid, fmt.Sprintf("filler-%d", i), "s", t0+int64(i), 1, itemIDs(cat.s, i, 10)...))
		}
		c.Feedback(feedback("f-fill", "fill-0", "filler-0", "nothing-shown", t0+int64(fill), events.FeedbackClick))
		commit(t, c, &im)
		if got := len(im.Hashes[hashSlates]); got != fill {
			t.Fatalf("%d slates stored, want %d", got, fill)
		}
		for i := range 100 {
			rid := fmt.Sprintf("new-%d", i)
			items := itemIDs(cat.s, 7*i, 10)
			ts := t0 + 60_000 + int64(i)*10
			c.Impression(impression(cat.s, rid, fmt.Sprintf("u-%d", i%10), "s", ts, 1, items...))
			c.Feedback(feedback("f1-"+rid, rid, fmt.Sprintf("u-%d", i%10), items[1], ts+1, events.FeedbackClick))
			c.Feedback(feedback("f2-"+rid, rid, fmt.Sprintf("u-%d", i%10), items[2], ts+2, events.FeedbackView))
		}
		n := c.Changes()
		d := commit(t, c, &im)
		sizes, records = append(sizes, d.Bytes()), append(records, n)
		t.Logf("window %d: commit of %d records, %d bytes (head %d); %d records stored", fill, n, d.Bytes(), len(d.Head), im.records())
	}
	if records[0] != records[1] {
		t.Errorf("records per commit %v depend on the window", records)
	}
	if diff := sizes[1] - sizes[0]; diff < -sizes[0]/50 || diff > sizes[0]/50 {
		t.Errorf("commit bytes %v differ by more than 2%%", sizes)
	}
}

// TestRestoreStateRejectsDamage checks a damaged record or head is an
// error naming it, never a silently thinner state.
func TestRestoreStateRejectsDamage(t *testing.T) {
	cat := testCatalog(t, 300)
	c := newTestCore(t, DefaultConfig(), cat)
	c.TrackChanges()
	buildState(t, c, cat)
	var good image
	commit(t, c, &good)
	clone := func() *image {
		im := &image{}
		im.Head = bytes.Clone(good.Head)
		im.Hashes = map[string]map[string]string{}
		for h, fs := range good.Hashes {
			im.Hashes[h] = map[string]string{}
			for f, v := range fs {
				im.Hashes[h][f] = v
			}
		}
		return im
	}
	for _, h := range StateHashes {
		if len(good.Hashes[h]) == 0 {
			t.Fatalf("no %s records", h)
		}
		for _, cut := range []int{0, 1, 5} {
			im := clone()
			for f, v := range im.Hashes[h] {
				im.Hashes[h][f] = v[:min(cut, len(v))]
				break
			}
			if _, err := RestoreState(DefaultConfig(), &im.StateImage, cat); !errors.Is(err, ErrCheckpointCorrupt) {
				t.Errorf("%s record cut to %d bytes: %v", h, cut, err)
			}
		}
	}
	im := clone()
	im.Head[len(im.Head)-1] ^= 1
	if _, err := RestoreState(DefaultConfig(), &im.StateImage, cat); !errors.Is(err, ErrCheckpointCorrupt) {
		t.Errorf("flipped head: %v", err)
	}
	other := DefaultConfig()
	other.Variant = "treatment"
	if _, err := RestoreState(other, &clone().StateImage, cat); !errors.Is(err, ErrCheckpointVariant) {
		t.Errorf("other variant: %v", err)
	}
	// A full checkpoint is not a head.
	im = clone()
	im.Head = checkpointBytes(t, c)
	if _, err := RestoreState(DefaultConfig(), &im.StateImage, cat); !errors.Is(err, ErrCheckpointCorrupt) {
		t.Errorf("whole checkpoint as head: %v", err)
	}
}

// TestSchema2LearnsLikeSchema1 feeds one stream to two cores, its
// impressions once as schema 1 and once through schema 2's encoding (float16
// features and state, int8 taste): the rounding must not change what is
// learned beyond it (the ranker's weights agree to 1%, the clicked items'
// biases to a few percent).
func TestSchema2LearnsLikeSchema1(t *testing.T) {
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 30, 20, 13)
	var cores [2]*Core
	for i, schema := range []int{events.SchemaVersion, events.ImpressionSchema} {
		c := newTestCore(t, DefaultConfig(), cat)
		for _, imp := range s.imps {
			imp.Schema = schema
			b, err := json.Marshal(imp)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := events.DecodeImpression(b)
			if err != nil {
				t.Fatal(err)
			}
			want(t, "impression", c.Impression(dec), Applied)
		}
		for _, fb := range s.clicks {
			c.Feedback(fb)
		}
		cores[i] = c
	}
	m1, m2 := cores[0].Learner().Model(), cores[1].Learner().Model()
	if cores[0].Counters() != cores[1].Counters() {
		t.Fatalf("counters differ: %+v, %+v", cores[0].Counters(), cores[1].Counters())
	}
	prior := recommend.DefaultModel().Ranker.Theta
	for j := range m1.Ranker.Theta {
		d1, d2 := m1.Ranker.Theta[j]-prior[j], m2.Ranker.Theta[j]-prior[j]
		if math.Abs(d1-d2) > 0.01*math.Abs(d1)+1e-9 {
			t.Errorf("θ[%d] moved %g from schema 1, %g from schema 2", j, d1, d2)
		}
	}
	// Item biases: the same up to the rounding's noise, which compounds
	// over updates (a few percent per item; the whole vector agrees).
	var dot, n1, n2, diff float64
	for item := range s.clicked {
		b1, b2 := float64(m1.ItemBias[item]), float64(m2.ItemBias[item])
		dot, n1, n2, diff = dot+b1*b2, n1+b1*b1, n2+b2*b2, diff+(b1-b2)*(b1-b2)
	}
	corr, rel := dot/math.Sqrt(n1*n2), math.Sqrt(diff/n1)
	t.Logf("item biases: correlation %.5f, RMS difference %.2f%% of their RMS", corr, 100*rel)
	if corr < 0.995 || rel > 0.05 {
		t.Errorf("item biases differ: correlation %.5f, RMS difference %.2f%%", corr, 100*rel)
	}
}

// Any one parameter of an item that moves, by as little as one ulp, moves
// its fingerprint: a commit finds every item that changed.
func TestItemHashSeesEveryChange(t *testing.T) {
	emb := []float32{0.5, -0.25, 0.125, 1e-7}
	base := itemHash(0.3, true, emb)
	for _, tc := range []struct {
		name string
		sum  uint64
	}{
		{"bias", itemHash(math.Nextafter32(0.3, 1), true, emb)},
		{"no bias", itemHash(0.3, false, emb)},
		{"shorter", itemHash(0.3, true, emb[:3])},
	} {
		if tc.sum == base {
			t.Errorf("%s: fingerprint unchanged", tc.name)
		}
	}
	for i := range emb {
		moved := slices.Clone(emb)
		moved[i] = math.Nextafter32(moved[i], 2)
		if itemHash(0.3, true, moved) == base {
			t.Errorf("embedding[%d] moved by one ulp: fingerprint unchanged", i)
		}
	}
}

// TestItemsDeltaWritesWhatAScanWould checks that a commit that writes only
// the items the learner touched since the last commit writes exactly what
// comparing every item would: after clicks on a few items of a model that
// holds many, after a commit that failed (its items are written by the
// next), and after an item came back to its committed value.
func TestItemsDeltaWritesWhatAScanWould(t *testing.T) {
	cat := testCatalog(t, 2000)
	click := func(c *Core, n, from int, tag string) {
		for i := range n {
			rid := fmt.Sprintf("%s-%d", tag, i)
			items := itemIDs(cat.s, from+3*i, 10)
			ts := t0 + 60_000 + int64(i)*10
			c.Impression(impression(cat.s, rid, fmt.Sprintf("u-%d", i%5), "s", ts, 1, items...))
			c.Feedback(feedback("f-"+rid, rid, fmt.Sprintf("u-%d", i%5), items[2], ts+1, events.FeedbackClick))
		}
	}
	tests := []struct {
		name string
		// then runs after the model has learned many items and committed
		// them; it may commit.
		then func(t *testing.T, c *Core, im *image)
	}{
		{"a few items clicked", func(t *testing.T, c *Core, im *image) { click(c, 3, 400, "few") }},
		{"a commit failed between", func(t *testing.T, c *Core, im *image) {
			click(c, 3, 400, "failed")
			if _, err := c.StateDelta(); err != nil { // not stored: Committed not called
				t.Fatal(err)
			}
			click(c, 2, 300, "after")
		}},
		{"an item back to its committed value", func(t *testing.T, c *Core, im *image) {
			r, err := RestoreState(DefaultConfig(), &im.StateImage, cat)
			if err != nil {
				t.Fatal(err)
			}
			was := r.Learner().Model()
			var id string
			for _, x := range itemIDs(cat.s, 0, 400) {
				if _, ok := was.ItemBias[x]; ok && was.ItemEmb[x] != nil {
					id = x
					break
				}
			}
			click(c, 2, 0, "moved")
			m := c.Learner().Model()
			if id == "" || m.ItemBias[id] == was.ItemBias[id] {
				t.Fatalf("item %q not learned before, or not moved", id)
			}
			m.ItemBias[id] = was.ItemBias[id]
			m.ItemEmb[id] = slices.Clone(was.ItemEmb[id])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t, DefaultConfig(), cat)
			c.TrackChanges()
			var im image
			s := genStream(cat.s, 20, 10, 9)
			for _, imp := range s.imps {
				c.Impression(imp)
			}
			for _, fb := range s.clicks {
				c.Feedback(fb)
			}
			commit(t, c, &im)
			commit(t, c, &im) // the first after the scan: tracked
			learned := len(c.Learner().Model().ItemBias)
			tc.then(t, c, &im)
			tracked, err := c.StateDelta()
			if err != nil {
				t.Fatal(err)
			}
			if c.itemScan {
				t.Fatal("the commit compared every item")
			}
			if len(c.itemDirty) == 0 || 4*len(c.itemDirty) > learned {
				t.Fatalf("%d items touched of %d learned: not a test of a few", len(c.itemDirty), learned)
			}
			c.itemScan = true
			scanned, err := c.StateDelta()
			if err != nil {
				t.Fatal(err)
			}
			if len(tracked.Put[hashItems]) == 0 {
				t.Fatal("no item written")
			}
			if !maps.EqualFunc(tracked.Put[hashItems], scanned.Put[hashItems], bytes.Equal) ||
				!slices.Equal(slices.Sorted(slices.Values(tracked.Del[hashItems])), slices.Sorted(slices.Values(scanned.Del[hashItems]))) {
				t.Fatalf("tracked commit writes %d items, deletes %v; the scan %d, %v",
					len(tracked.Put[hashItems]), tracked.Del[hashItems], len(scanned.Put[hashItems]), scanned.Del[hashItems])
			}
			im.apply(scanned)
			c.Committed()
			r, err := RestoreState(DefaultConfig(), &im.StateImage, cat)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(checkpointBytes(t, c), checkpointBytes(t, r)) {
				t.Fatal("the restored core differs from the original")
			}
		})
	}
}

// TestSlateRecordVersions: a slate record of version 1 (written before the
// items' novel flags were kept) still reads, its items not novel, and the
// current version keeps the flags.
func TestSlateRecordVersions(t *testing.T) {
	s := &slate{seq: 7, closeSeq: 3, learn: true, dec: 1, clicked: []int{1}, last: 1700000000500,
		nextState: []float64{0.5}, nextTS: 1700000000900,
		ls: recommend.LoggedSlate{UserID: "u1", SessionID: "s1", TS: 1700000000000, Level: 2, LevelProb: 0.25,
			State: []float64{0.5, 0.25}, Taste: []float32{0.5, -0.5},
			Items: []recommend.LoggedItem{
				{ItemID: "a", Position: 0, Propensity: 0.5, Score: 1.5, Features: [ranker.NumFeatures]float64{1, 0.5, 0.25, 0}},
				{ItemID: "b", Position: 1, Propensity: 0.125, Novelty: 0.75, Score: 0.5, Features: [ranker.NumFeatures]float64{0.5, 0, 0.25, 1}},
			}}}
	// appendSlate's bytes for s before slateV2.
	const v1 = "010e0602753102733180a0abfef9620401020034020200380034020000003f000000bf02016100030200380000003e040200" +
		"3c00380034000001620203020030003a00380402003800000034003c01010102e8a7abfef9620102003888aeabfef962"
	old, err := hex.DecodeString(v1)
	if err != nil {
		t.Fatal(err)
	}
	s.ls.Items[1].Novel = true
	for _, tc := range []struct {
		name   string
		record []byte
		novel  bool
	}{{"version 1", old, false}, {"current", appendSlate(nil, s), true}} {
		got, err := readSlate("r", tc.record)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := s.ls
		want.RequestID = "r"
		want.Items = slices.Clone(want.Items)
		want.Items[1].Novel = tc.novel
		if !reflect.DeepEqual(got.Slate, want) || got.Seq != 7 || !got.Learn || got.NextTS != 1700000000900 {
			t.Errorf("%s: read %+v, want %+v", tc.name, got.Slate, want)
		}
	}
}

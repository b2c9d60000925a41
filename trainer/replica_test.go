package trainer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// TestMergeSumsReplicaUpdates checks the combination rule: two replicas
// learn from one base on different clicks, and merging both into the
// shared model, in either order, adds both replicas' steps — the ranker's
// and the items' whole, the high level's weighted by the replica's share
// of the updates merged since its base (the first to merge takes its step
// whole, the second by its share of both).
func TestMergeSumsReplicaUpdates(t *testing.T) {
	cat := testCatalog(t, 200)
	s := genStream(cat.s, 20, 8, 5)
	cfg := DefaultConfig()
	base := recommend.DefaultModel()
	type learned struct {
		m       *recommend.Model
		updates int64
	}
	learn := func(users map[string]bool) learned {
		c, err := NewCore(cfg, base, cat)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range s.imps {
			if users[imp.UserID] {
				c.Impression(imp)
			}
		}
		for _, fb := range s.clicks {
			if users[fb.UserID] {
				c.Feedback(fb)
			}
		}
		return learned{c.Learner().Model(), c.Learner().Updates()}
	}
	even, odd := map[string]bool{}, map[string]bool{}
	for u := range 20 {
		if u%2 == 0 {
			even[fmt.Sprintf("user-%d", u)] = true
		} else {
			odd[fmt.Sprintf("user-%d", u)] = true
		}
	}
	a, b := learn(even), learn(odd)
	seed := func(id string) []float32 {
		i, _ := cat.s.Index(id)
		return cat.s.Embedding(i)
	}
	merge := func(first, second learned) *recommend.Model {
		g := &recommend.Model{Version: "merged", Intent: base.Intent.Clone(), Ranker: base.Ranker}
		g = mergeModel(g, base, first.m, intentShare(first.updates, 0), seed)
		return mergeModel(g, base, second.m, intentShare(second.updates, first.updates), seed)
	}
	ab, ba := merge(a, b), merge(b, a)
	for i := range base.Ranker.Theta {
		want := base.Ranker.Theta[i] + (a.m.Ranker.Theta[i] - base.Ranker.Theta[i]) + (b.m.Ranker.Theta[i] - base.Ranker.Theta[i])
		if math.Abs(ab.Ranker.Theta[i]-want) > 1e-12 || math.Abs(ba.Ranker.Theta[i]-want) > 1e-12 {
			t.Errorf("theta[%d] = %v / %v, want %v", i, ab.Ranker.Theta[i], ba.Ranker.Theta[i], want)
		}
	}
	for _, tc := range []struct {
		name          string
		got           *recommend.Model
		first, second learned
	}{{"a then b", ab, a, b}, {"b then a", ba, b, a}} {
		w := float64(tc.second.updates) / float64(tc.first.updates+tc.second.updates)
		moved := false
		for i, x := range tc.got.Intent.T {
			d1, d2 := tc.first.m.Intent.T[i]-base.Intent.T[i], tc.second.m.Intent.T[i]-base.Intent.T[i]
			moved = moved || d1 != 0 && d2 != 0
			if want := base.Intent.T[i] + d1 + w*d2; math.Abs(x-want) > 1e-12 {
				t.Errorf("%s: target weight %d = %v, want %v (the second's step weighted %v)", tc.name, i, x, want, w)
			}
		}
		if !moved {
			t.Errorf("%s: the replicas took no high-level steps: the weighting is untested", tc.name)
		}
	}
	if len(ab.ItemBias) == 0 || len(ab.ItemBias) < max(len(a.m.ItemBias), len(b.m.ItemBias)) {
		t.Fatalf("merged %d item biases from %d and %d", len(ab.ItemBias), len(a.m.ItemBias), len(b.m.ItemBias))
	}
	for id, x := range ab.ItemBias {
		if want := a.m.ItemBias[id] + b.m.ItemBias[id]; math.Abs(float64(x-want)) > 1e-5 || math.Abs(float64(ba.ItemBias[id]-want)) > 1e-5 {
			t.Errorf("bias of %s = %v / %v, want %v", id, x, ba.ItemBias[id], want)
		}
	}
	for id, e := range ab.ItemEmb {
		var n float64
		for _, x := range e {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-4 {
			t.Errorf("merged embedding of %s has norm² %v", id, n)
		}
	}
	for _, m := range []*recommend.Model{ab, ba} {
		if err := m.Validate(); err != nil {
			t.Errorf("merged model: %v", err)
		}
	}
}

// TestMergeCriticAsOneLearner checks the critic's merge against one
// learner: two replicas fit the critic from one base on different
// decisions, and merging the first, then the second, gives the fit of one
// learner that saw the first's decisions, then the second's — forgetting
// included, so the shared fit is discounted as the local one was.
func TestMergeCriticAsOneLearner(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	decisions := func(n int) (xs [][]float64, zs []int, rets []float64) {
		for range n {
			x := make([]float64, intent.Dim)
			for i := range x {
				x[i] = rng.Float64()
			}
			xs, zs, rets = append(xs, x), append(zs, rng.IntN(len(intent.DefaultLevels))), append(rets, rng.NormFloat64()+x[0])
		}
		return xs, zs, rets
	}
	fit := func(p *intent.Policy, xs [][]float64, zs []int, rets []float64) {
		for i := range xs {
			p.Update(xs[i], zs[i], 0, rets[i], intent.Step{}) // no step: the critic alone learns
		}
	}
	base := recommend.DefaultModel()
	x0, z0, r0 := decisions(300)
	fit(base.Intent, x0, z0, r0)
	x1, z1, r1 := decisions(400)
	x2, z2, r2 := decisions(250)
	one := base.Intent.Clone()
	fit(one, x1, z1, r1)
	fit(one, x2, z2, r2)
	local := func(xs [][]float64, zs []int, rets []float64) *recommend.Model {
		m := &recommend.Model{Intent: base.Intent.Clone(), Ranker: base.Ranker}
		fit(m.Intent, xs, zs, rets)
		return m
	}
	g := mergeDense(base, base, local(x1, z1, r1), 1)
	g = mergeDense(g, base, local(x2, z2, r2), 1)
	for _, f := range []struct {
		name     string
		got, one []float64
	}{{"Q", g.Intent.Q, one.Q}, {"QP", g.Intent.QP, one.QP}} {
		for i := range f.one {
			if d := math.Abs(f.got[i] - f.one[i]); d > 1e-6*max(1, math.Abs(f.one[i])) {
				t.Fatalf("%s[%d] merged %v, one learner %v", f.name, i, f.got[i], f.one[i])
			}
		}
	}
	if !slices.Equal(g.Intent.QForgets, one.QForgets) {
		t.Errorf("forgetting steps merged %v, one learner %v", g.Intent.QForgets, one.QForgets)
	}
}

// crashStore refuses every commit once crashed, as a dead process would
// make none: what the replica applied since its last commit is lost with
// it.
type crashStore struct {
	*features.Store
	crashed atomic.Bool
}

func (c *crashStore) CommitParts(ctx context.Context, name string, parts []features.PartDelta, shared string, merge features.Merge) error {
	if c.crashed.Load() {
		return errors.New("crashed")
	}
	return c.Store.CommitParts(ctx, name, parts, shared, merge)
}

// storedParts sums the counters of the variant's stored partitions.
func storedParts(t *testing.T, store *features.Store) Counters {
	t.Helper()
	var sum Counters
	for p := range kafkatest.Partitions {
		img, err := store.LoadPart(t.Context(), CheckpointName(DefaultVariant), partName(p))
		if errors.Is(err, features.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := ReadCheckpointCounters(img.Head)
		if err != nil {
			t.Fatal(err)
		}
		sum = sum.plus(c)
	}
	return sum
}

// TestReplicasShareTheWorkAndSurviveACrash runs two replicas of one
// variant in one consumer group over the 3-partition cluster. Both learn
// (each from its partitions); then one crashes mid-stream — its commits
// stop, what it applies after is lost — and the other takes its
// partitions over. Every impression and click ends up applied exactly
// once in the stored partitions, the shared model counts exactly their
// updates, and the published snapshot is the shared model.
func TestReplicasShareTheWorkAndSurviveACrash(t *testing.T) {
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	crashing := &crashStore{Store: store}
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 60, 10, 23)
	p := newTestProducer(t, brokers)
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.Partitioned = true
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	a, stopA := runTrainer(t, cfg, Deps{Store: crashing, Catalog: cat, Logger: testLogger()})
	b, stopB := runTrainer(t, cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	// A trickle of impressions until both replicas have partitions (the
	// group rebalances as the second joins, and may again as the first
	// replica finds a partition taken and rejoins).
	sent := 0
	for sent < len(s.imps)/2 && (a.Stats().Impressions == 0 || b.Stats().Impressions == 0) {
		for _, imp := range s.imps[sent : sent+5] {
			publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
		}
		sent += 5
		time.Sleep(100 * time.Millisecond)
	}
	if a.Stats().Impressions == 0 || b.Stats().Impressions == 0 {
		t.Fatalf("after %d impressions, one replica still has none: %+v, %+v", sent, a.Stats().Counters, b.Stats().Counters)
	}
	waitUntil(t, time.Minute, "the replicas to commit what was sent", func() bool {
		return storedParts(t, store).Impressions == int64(sent)
	})
	crashing.crashed.Store(true)
	before := a.Stats()
	for _, imp := range s.imps[sent:] {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
	}
	for _, fb := range s.clicks {
		publishJSON(t, p, events.TopicFeedback, fb.UserID, fb)
	}
	waitUntil(t, time.Minute, "the crashing replica to apply events it cannot commit", func() bool {
		st := a.Stats()
		return st.Impressions > before.Impressions && st.Clicks > 0
	})
	lost := a.Stats()
	_ = stopA() // its final commit fails too
	waitUntil(t, 2*time.Minute, "the other replica to apply everything", func() bool {
		c := storedParts(t, store)
		return c.Impressions == int64(len(s.imps)) && c.Clicks == int64(len(s.clicks))
	})
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	got := storedParts(t, store)
	if got.Impressions != int64(len(s.imps)) || got.Clicks != int64(len(s.clicks)) {
		t.Errorf("stored counters %+v, want %d impressions and %d clicks", got, len(s.imps), len(s.clicks))
	}
	shared, err := store.LoadPart(t.Context(), CheckpointName(DefaultVariant), modelPart)
	if err != nil {
		t.Fatal(err)
	}
	m, meta, err := recommend.DecodeModel(shared.Head)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Updates != got.Clicks+got.Decisions {
		t.Errorf("the shared model counts %d updates; the partitions applied %d clicks and %d decisions", meta.Updates, got.Clicks, got.Decisions)
	}
	pub, err := store.GetModel(t.Context(), DefaultVariant)
	if err != nil {
		t.Fatal(err)
	}
	pm, pmeta, err := recommend.DecodeModel(pub)
	if err != nil || pm.Version != m.Version || pmeta.Updates != meta.Updates {
		t.Errorf("published %s with %d updates (%v), shared model %s with %d", pm.Version, pmeta.Updates, err, m.Version, meta.Updates)
	}
	// The A/B aggregates, summed over the partitions, count every
	// impression and click once, as one Core fed the whole stream does.
	whole := newTestCore(t, DefaultConfig(), cat)
	for _, imp := range s.imps {
		whole.Impression(imp)
	}
	for _, fb := range s.clicks {
		whole.Feedback(fb)
	}
	ab, err := store.GetAggregates(t.Context(), cfg.withDefaults().Experiment, DefaultVariant)
	if err != nil {
		t.Fatal(err)
	}
	// Fields that do not depend on how the two topics interleave.
	orderFree := func(a experiment.Aggregates) [8]int64 {
		return [8]int64{a.Users, a.ReturningUsers, a.Impressions, a.ClickedImpressions, a.Clicks, a.NovelClicks, a.Sessions, a.ILDN}
	}
	if want := whole.Aggregates(); orderFree(ab) != orderFree(want) || math.Abs(ab.ILDSum-want.ILDSum) > 1e-9*want.ILDSum {
		t.Errorf("A/B aggregates of the partitions %+v, want %+v", ab, want)
	}
	t.Logf("replica A had applied %d impressions and %d clicks when it was killed (%d impressions when its commits stopped); the shared model is %s with %d updates",
		lost.Impressions, lost.Clicks, before.Impressions, m.Version, meta.Updates)
}

// TestMergeAveragesModeFits checks that the replicas' fits of the mode
// model and prior combine as estimates: two replicas that fitted the same
// values leave them as they are (a sum of differences would double the
// move), a replica that did not refit changes nothing, a fit that no other
// replica's came after the replica's base replaces the shared one, and two
// fits average, every rate (the switch rates and the standard error too).
func TestMergeAveragesModeFits(t *testing.T) {
	base := recommend.DefaultModel()
	fit := base.Intent.Clone()
	fit.Mode = intent.ModeModel{Base: -1, Shift: -0.5, Contrast: 1.5, Routine: 1, Examine: 0.7, ExamineClick: 0.5, ToExploit: 0.25, ToExplore: 0.125, NoveltySE: 0.25}
	fit.Prior = intent.Prior{Alpha: 2, Beta: 3}
	other := base.Intent.Clone()
	other.Mode = intent.ModeModel{Base: -2, Shift: -1.5, Contrast: 0.5, Routine: 0.5, Examine: 0.8, ExamineClick: 0.6, ToExploit: 0.5, ToExplore: 0.25, NoveltySE: 0.125}
	other.Prior = intent.Prior{Alpha: 4, Beta: 1}
	// The worth (intent.Policy.Worth) is a fit too, and merges alike.
	fit.Worth, other.Worth = fit.Mode, other.Mode
	model := func(p *intent.Policy) *recommend.Model {
		return &recommend.Model{Intent: p, Ranker: base.Ranker}
	}
	tests := []struct {
		name          string
		global, local *intent.Policy
		wantMode      intent.ModeModel
		wantPrior     intent.Prior
	}{
		{"the same fit twice stays put", fit, fit, fit.Mode, fit.Prior},
		{"a replica that did not refit changes nothing", fit, base.Intent, fit.Mode, fit.Prior},
		{"a fit onto a shared model no other replica refitted is taken whole", base.Intent, other, other.Mode, other.Prior},
		{"two fits average", fit, other,
			intent.ModeModel{Base: -1.5, Shift: -1, Contrast: 1, Routine: 0.75, Examine: 0.75, ExamineClick: 0.55, ToExploit: 0.375, ToExplore: 0.1875, NoveltySE: 0.1875}, intent.Prior{Alpha: 3, Beta: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeDense(model(tc.global), base, model(tc.local), 1).Intent
			if got.Mode != tc.wantMode || got.Prior != tc.wantPrior || got.Worth != tc.wantMode {
				t.Fatalf("merged %+v %+v, worth %+v; want %+v %+v", got.Mode, got.Prior, got.Worth, tc.wantMode, tc.wantPrior)
			}
		})
	}
}

// TestReplicaCommitTracksWhatAScanWould runs two replicas of one variant
// through rounds of commits twice, each run on a store of its own: once as
// replicas run (a commit merges the items the learner touched, and the
// rebase copies those and the items the other replica's merges logged),
// once comparing every item and rebasing on the whole stored model at every
// commit, as before the item log. After every commit the runs' shared
// models and both replicas' local models are the same, and the committing
// replica's local model is the shared model, the other replica's updates
// included — also after the other replica merged more often than the log
// keeps, when the rebase falls back to reading every item — and its base
// is its model.
func TestReplicaCommitTracksWhatAScanWould(t *testing.T) {
	cat := testCatalog(t, 2000)
	type run struct {
		store *features.Store
		reps  [2]*Trainer
		next  [2]int
	}
	newRun := func() *run {
		client, prefix := redistest.New(t)
		r := &run{store: features.NewStore(client, features.Options{Prefix: prefix}), next: [2]int{0, 100}}
		for i := range r.reps {
			r.reps[i] = consumerlessReplica(t, r.store, cat)
		}
		return r
	}
	tracked, scanned := newRun(), newRun()
	shared := func(r *run) *recommend.Model { return storedShared(t, r.store) }
	step := func(what string, i, events int) {
		t.Helper()
		for _, r := range []*run{tracked, scanned} {
			tr := r.reps[i]
			feedPartition(t, tr, cat, i, events, &r.next[i])
			tr.rep.scan = r == scanned
			if err := tr.commitReplica(t.Context()); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		got, want := shared(tracked), shared(scanned)
		if err := sameModel(got, want); err != nil {
			t.Fatalf("%s: shared models differ: %v", what, err)
		}
		if err := sameModel(tracked.reps[i].rep.l.Model(), got); err != nil {
			t.Fatalf("%s: the committing replica's model is not the shared model: %v", what, err)
		}
		for _, r := range []*run{tracked, scanned} {
			// local − base must be zero after a rebase, or the next
			// commit adds an update twice (or loses one).
			if rep := r.reps[i].rep; sameModel(rep.base, rep.l.Model()) != nil {
				t.Fatalf("%s: the committing replica's base is not its model: %v", what, sameModel(rep.base, rep.l.Model()))
			}
		}
		for j := range tracked.reps {
			if err := sameModel(tracked.reps[j].rep.l.Model(), scanned.reps[j].rep.l.Model()); err != nil {
				t.Fatalf("%s: replica %d's models differ: %v", what, j, err)
			}
		}
	}
	for round := range 4 {
		step(fmt.Sprintf("round %d, replica 0", round), 0, 30)
		step(fmt.Sprintf("round %d, replica 1", round), 1, 30)
	}
	for k := range itemLogSlots + 1 {
		step(fmt.Sprintf("replica 1 alone, commit %d", k), 1, 1)
	}
	step("replica 0 after more merges than the log keeps", 0, 30)
	step("replica 1 after that", 1, 30)
	step("replica 0 again", 0, 30)
	if n := len(tracked.reps[0].rep.l.Model().ItemBias); n < 1000 {
		t.Fatalf("%d items learned: too few to tell tracking from a scan", n)
	}
}

// sameModel reports how a and b differ: version, dense part or items.
func sameModel(a, b *recommend.Model) error {
	switch {
	case a.Version != b.Version:
		return fmt.Errorf("version %s, %s", a.Version, b.Version)
	case a.Ranker != b.Ranker:
		return fmt.Errorf("ranker %+v, %+v", a.Ranker, b.Ranker)
	case !reflect.DeepEqual(a.Intent, b.Intent):
		return errors.New("intent policies differ")
	case !maps.Equal(a.ItemBias, b.ItemBias):
		return fmt.Errorf("item biases differ (%d, %d items)", len(a.ItemBias), len(b.ItemBias))
	case !maps.EqualFunc(a.ItemEmb, b.ItemEmb, slices.Equal):
		return fmt.Errorf("item embeddings differ (%d, %d items)", len(a.ItemEmb), len(b.ItemEmb))
	}
	return nil
}

// TestReplicasPublishOnTheVariantsCadence checks that replicas publish at
// most one snapshot per PublishEvery between them, not one per commit, and
// that no merge stays unpublished: a replica whose merge no claim holds
// claims a snapshot once PublishEvery has passed, even with nothing new
// learned, and when it stops. Every snapshot published is the shared model
// as stored.
func TestReplicasPublishOnTheVariantsCadence(t *testing.T) {
	cat := testCatalog(t, 500)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	var reps [2]*Trainer
	next := [2]int{0, 100}
	for i := range reps {
		reps[i] = consumerlessReplica(t, store, cat)
		reps[i].cfg.PublishEvery = time.Hour
	}
	published := func() string {
		t.Helper()
		b, err := store.GetModel(t.Context(), DefaultVariant)
		if errors.Is(err, features.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := recommend.DecodeModel(b)
		if err != nil {
			t.Fatal(err)
		}
		if shared := storedShared(t, store); m.Version == shared.Version {
			if err := sameModel(m, shared); err != nil {
				t.Errorf("the snapshot %s is not the shared model: %v", m.Version, err)
			}
		}
		return m.Version
	}
	stored := func() string { return storedShared(t, store).Version }
	steps := []struct {
		what    string
		replica int
		events  int
		every   time.Duration // PublishEvery for this commit
		final   bool
		publish bool // a snapshot is published, and it is the shared model
	}{
		{"the first commit", 0, 30, time.Hour, false, true},
		{"the other's commit within the gap", 1, 30, time.Hour, false, false},
		{"the first's again", 0, 30, time.Hour, false, false},
		{"the other's, idle, within the gap", 1, 0, time.Hour, false, false},
		{"the other's, idle, after the gap: its merge is unpublished", 1, 0, 0, false, true},
		{"the other's, idle, nothing unpublished of its own", 1, 0, 0, false, false},
		{"the first's, learning, within the gap", 0, 30, time.Hour, false, false},
		{"the first's final commit", 0, 0, time.Hour, true, true},
		{"the other's final commit: nothing of its own unpublished", 1, 0, time.Hour, true, false},
	}
	for _, s := range steps {
		tr := reps[s.replica]
		if s.events > 0 {
			feedPartition(t, tr, cat, s.replica, s.events, &next[s.replica])
		}
		tr.cfg.PublishEvery = s.every
		if s.final {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			tr.runCtx = ctx
		}
		before, pubs := published(), tr.publishes.Load()
		if err := tr.commitReplica(t.Context()); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		after := published()
		if got := tr.publishes.Load() > pubs; got != s.publish {
			t.Fatalf("%s: published %v (snapshot %s → %s), want %v", s.what, got, before, after, s.publish)
		}
		if s.publish && after != stored() {
			t.Fatalf("%s: published %s, shared model %s", s.what, after, stored())
		}
	}
}

// TestReplicasShareModeObservations checks that a replica fits the mode
// model to every replica's sessions, not only its own: replica B holds too
// few users for a fit (intent.MinFitUsers) and fits only once A's merge has
// logged A's observations and B's commit has added them to its window
// (counting them towards its next fit, as one trainer would).
func TestReplicasShareModeObservations(t *testing.T) {
	cat := testCatalog(t, 200)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	newReplica := func() *Trainer {
		tr := consumerlessReplica(t, store, cat)
		tr.cfg.Learner.ModeRefit = 500
		tr.rep.l = recommend.NewLearner(tr.cfg.Learner, tr.rep.l.Model())
		tr.rep.base = tr.rep.l.Snapshot(tr.rep.base.Version)
		tr.rep.l.TakeTouched(tr.rep.dirty)
		tr.rep.noPublish = true
		return tr
	}
	a, b := newReplica(), newReplica()
	s := genStream(cat.s, 210, 25, 7)
	feed := func(tr *Trainer, p int, users func(string) bool) {
		t.Helper()
		c, err := tr.partCore(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		imps := slices.DeleteFunc(slices.Clone(s.imps), func(e events.Impression) bool { return !users(e.UserID) })
		clicks := slices.DeleteFunc(slices.Clone(s.clicks), func(e events.Feedback) bool { return !users(e.UserID) })
		slices.SortStableFunc(imps, func(x, y events.Impression) int { return cmp.Compare(x.TS, y.TS) })
		slices.SortStableFunc(clicks, func(x, y events.Feedback) int { return cmp.Compare(x.TS, y.TS) })
		fb := 0
		for _, imp := range imps {
			for fb < len(clicks) && clicks[fb].TS < imp.TS {
				c.Feedback(clicks[fb])
				fb++
			}
			c.Impression(imp)
		}
		for _, f := range clicks[fb:] {
			c.Feedback(f)
		}
		last := imps[len(imps)-1] // an hour later: every decision closes
		c.Impression(impression(cat.s, fmt.Sprintf("late-%d", p), "late-user", "s", last.TS+3_600_000, 0, itemIDs(cat.s, 0, 8)...))
		if err := tr.commitReplica(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	user := func(id string) int { n, _ := strconv.Atoi(strings.TrimPrefix(id, "user-")); return n }
	fitted := func(tr *Trainer) bool {
		return tr.rep.l.Model().WorthModel() != intent.DefaultModeModel()
	}
	feed(a, 0, func(id string) bool { return id != "late-user" && user(id) < 150 })
	if !fitted(a) {
		t.Fatal("replica A, with 150 users, did not fit the mode model")
	}
	if len(a.rep.obs) != 0 {
		t.Errorf("%d observations still held after A's merge logged them", len(a.rep.obs))
	}
	feed(b, 1, func(id string) bool { return id != "late-user" && user(id) >= 150 })
	// B's commit rebased it on the shared model, which holds A's fit;
	// B's own fit, on its 60 users and A's 150, is a different one.
	if b.rep.l.Model().WorthModel() == storedShared(t, store).WorthModel() {
		t.Fatal("replica B, with 60 users of its own, did not fit on A's observations too")
	}
}

// storedShared reads the shared model of DefaultVariant's replicas as
// stored, with its items.
func storedShared(t *testing.T, store *features.Store) *recommend.Model {
	t.Helper()
	img, err := store.LoadPart(t.Context(), CheckpointName(DefaultVariant), modelPart, hashItems)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := recommend.DecodeModel(img.Head)
	if err != nil {
		t.Fatal(err)
	}
	if err := restoreItems(m, img.Hashes[hashItems]); err != nil {
		t.Fatal(err)
	}
	return m
}

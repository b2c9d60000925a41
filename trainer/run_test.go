package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/metrictest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("TRAINER_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func newTestProducer(t testing.TB, brokers []string) *events.Producer {
	t.Helper()
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger(), Buffer: 200_000, BatchTimeout: 5 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// publishJSON queues v on topic, keyed by user, waiting while the buffer is full.
func publishJSON(t testing.TB, p *events.Producer, topic, user string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for !p.Publish(topic, user, b) {
		time.Sleep(100 * time.Microsecond)
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runTrainer starts a Trainer in the background; stop cancels it and
// returns Run's error.
func runTrainer(t *testing.T, cfg Config, deps Deps) (*Trainer, func() error) {
	t.Helper()
	tr, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(time.Minute):
				runErr = errors.New("Run did not return within a minute of cancellation")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return tr, stop
}

// TestRunLearnsAndPublishes runs the whole loop: events in Kafka → the
// trainer → a snapshot in Redis that decodes, names a growing version,
// carries feedback times, and has moved toward the clicked items; a
// restarted trainer resumes from the checkpoint.
// runSetup is what a run test starts from: a cluster, a store under a
// key prefix of its own, a 500-item catalog, a stream of 20 users'
// sessions on it and a producer to the cluster.
func runSetup(t *testing.T) ([]string, *features.Store, fixedCatalog, stream, *events.Producer) {
	t.Helper()
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	cat := testCatalog(t, 500)
	return brokers, store, cat, genStream(cat.s, 20, 15, 11), newTestProducer(t, brokers)
}

func TestRunLearnsAndPublishes(t *testing.T) {
	brokers, store, cat, s, p := runSetup(t)
	half := len(s.imps) / 2
	first := map[string]bool{}
	for _, imp := range s.imps[:half] {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
		first[imp.RequestID] = true
	}
	var clicks1 int
	for _, fb := range s.clicks {
		if first[fb.RequestID] {
			publishJSON(t, p, events.TopicFeedback, fb.UserID, fb)
			clicks1++
		}
	}
	// A poison message goes to the dead-letter topic.
	if !p.Publish(events.TopicFeedback, "user-x", []byte(`{"schema":1,"event_id":"bad"`)) {
		t.Fatal("publish refused")
	}

	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.PublishEvery = 100 * time.Millisecond
	cfg.CommitInterval = 200 * time.Millisecond
	deps := Deps{Store: store, Catalog: cat, Registerer: reg, Logger: testLogger()}
	tr, stop := runTrainer(t, cfg, deps)

	waitUntil(t, 30*time.Second, "the first half learned and published", func() bool {
		st := tr.Stats()
		return st.Impressions == int64(half) && st.Clicks == int64(clicks1) && st.Publishes > 0 && st.Checkpoints > 0
	})
	// A snapshot published before the clicks were handled may still be
	// the stored one (a loaded machine): wait for one that has them.
	upToDate := func() bool {
		b, err := store.GetModel(t.Context(), "default")
		if err != nil {
			return false
		}
		_, meta, err := recommend.DecodeModel(b)
		return err == nil && meta.Updates == tr.Stats().Updates
	}
	waitUntil(t, 10*time.Second, "a snapshot with the first half", upToDate)
	b, err := store.GetModel(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	m1, meta1, err := recommend.DecodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	n1, ok := parseVersion("default", m1.Version)
	if !ok || n1 < 1 || meta1.Variant != "default" || len(meta1.FeedbackTS) == 0 || meta1.Updates == 0 {
		t.Fatalf("first snapshot: version %q, meta %+v", m1.Version, meta1)
	}

	// The rest of the traffic: a later snapshot with a higher version.
	for _, imp := range s.imps[half:] {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
	}
	for _, fb := range s.clicks {
		if !first[fb.RequestID] {
			publishJSON(t, p, events.TopicFeedback, fb.UserID, fb)
		}
	}
	// And every click again: duplicates must change nothing.
	for _, fb := range s.clicks {
		publishJSON(t, p, events.TopicFeedback, fb.UserID, fb)
	}
	waitUntil(t, 30*time.Second, "all events handled", func() bool {
		st := tr.Stats()
		return st.Impressions == int64(len(s.imps)) && st.Clicks == int64(len(s.clicks)) && st.FeedbackDuplicates == int64(len(s.clicks))
	})
	waitUntil(t, 10*time.Second, "a snapshot with everything", upToDate)
	b, _ = store.GetModel(t.Context(), "default")
	m2, meta2, err := recommend.DecodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := parseVersion("default", m2.Version)
	if n2 <= n1 || meta2.Updates <= meta1.Updates {
		t.Errorf("second snapshot %s (updates %d) not after the first %s (%d)", m2.Version, meta2.Updates, m1.Version, meta1.Updates)
	}

	// The model moved the way the clicks pushed: clicked items gained
	// bias, items shown but never clicked lost it.
	shown := map[string]bool{}
	for _, imp := range s.imps {
		for _, it := range imp.Items {
			shown[it.ItemID] = true
		}
	}
	var clickedSum, otherSum float64
	var nClicked, nOther int
	for id := range shown {
		if s.clicked[id] > 0 {
			clickedSum += float64(m2.ItemBias[id])
			nClicked++
		} else {
			otherSum += float64(m2.ItemBias[id])
			nOther++
		}
	}
	t.Logf("mean bias: clicked items %.5f (%d), never clicked %.5f (%d); theta %v", clickedSum/float64(nClicked), nClicked, otherSum/float64(nOther), nOther, m2.Ranker.Theta)
	if clickedSum/float64(nClicked) <= 0 || otherSum/float64(nOther) >= 0 {
		t.Errorf("biases did not follow the clicks: clicked mean %v, unclicked mean %v", clickedSum/float64(nClicked), otherSum/float64(nOther))
	}

	// Metrics.
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"novarec_trainer_events_total", map[string]string{"topic": "rec.impressions", "outcome": "applied", "variant": "default"}, float64(len(s.imps))},
		{"novarec_trainer_events_total", map[string]string{"topic": "rec.feedback", "outcome": "applied"}, float64(len(s.clicks))},
		{"novarec_trainer_events_total", map[string]string{"topic": "rec.feedback", "outcome": "duplicate"}, 1},
		{"novarec_trainer_updates_total", map[string]string{"level": "low"}, float64(len(s.clicks))},
		{"novarec_trainer_updates_total", map[string]string{"level": "high"}, 1},
		{"novarec_trainer_reward", nil, 1},
		{"novarec_trainer_model_version", nil, float64(n2)},
		{"novarec_trainer_snapshot_bytes", nil, 1000},
		{"novarec_trainer_publish_seconds", nil, 2},
		{"novarec_trainer_checkpoint_seconds", nil, 1},
		{"novarec_trainer_watermark_seconds", nil, float64(t0 / 1000)},
		{"novarec_events_consumed_total", map[string]string{"topic": "rec.impressions"}, float64(len(s.imps))},
		{"novarec_events_deadlettered_total", map[string]string{"topic": "rec.feedback"}, 1},
	} {
		v, ok := metrictest.Value(t, reg, c.name, c.labels)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (found %v), want ≥ %v", c.name, c.labels, v, ok, c.min)
		}
	}
	dl := kafkatest.ReadAll(t, brokers, events.TopicDeadLetter, 1, 10*time.Second)
	if !strings.Contains(string(dl[0].Value), "bad") {
		t.Errorf("dead letter %s does not carry the message", dl[0].Value)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	final := tr.Stats()
	ckpt, err := store.StateHead(t.Context(), CheckpointName("default"))
	if err != nil {
		t.Fatal(err)
	}
	counters, _, err := ReadCheckpointCounters(ckpt)
	if err != nil || counters != final.Counters {
		t.Fatalf("final checkpoint counters %+v (%v), trainer %+v", counters, err, final.Counters)
	}

	// A restarted trainer continues from the checkpoint: nothing is
	// applied again, and new events publish a still higher version.
	tr2, stop2 := runTrainer(t, cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	extra := impression(cat.s, "r-extra", "user-1", "s-extra", s.imps[len(s.imps)-1].TS+1000, 1, itemIDs(cat.s, 3, 5)...)
	publishJSON(t, p, events.TopicImpressions, extra.UserID, extra)
	publishJSON(t, p, events.TopicFeedback, "user-1", feedback("f-extra", "r-extra", "user-1", extra.Items[0].ItemID, extra.TS+10, events.FeedbackClick))
	waitUntil(t, 30*time.Second, "the restarted trainer to learn the new click", func() bool {
		return tr2.Stats().Clicks == final.Clicks+1
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	st2 := tr2.Stats()
	if st2.Impressions != final.Impressions+1 || st2.ModelVersion <= final.ModelVersion {
		t.Errorf("after restart: %+v, before: %+v", st2, final)
	}
}

// TestRunRefusesCorruptCheckpoint checks a damaged checkpoint stops the
// trainer with a clear error instead of silently starting over.
func TestRunRefusesCorruptCheckpoint(t *testing.T) {
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	c, err := NewCore(DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := store.SaveCheckpoint(t.Context(), CheckpointName("default"), data); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Brokers = []string{kafkatest.FreePort(t)}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = Run(ctx, cfg, Deps{Store: store, Catalog: testCatalog(t, 50), Logger: testLogger()})
	if !errors.Is(err, ErrCheckpointCorrupt) || !strings.Contains(err.Error(), "trainer:ckpt:trainer:default") {
		t.Errorf("Run = %v, want ErrCheckpointCorrupt naming the key", err)
	}
}

// TestNewValidates checks the configuration errors New reports.
func TestNewValidates(t *testing.T) {
	cat := testCatalog(t, 50)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	good := DefaultConfig()
	good.Brokers = []string{"127.0.0.1:1"}
	if _, err := New(good, Deps{Store: store, Catalog: cat}); err != nil {
		t.Fatal(err)
	}
	noBrokers := good
	noBrokers.Brokers = nil
	badReward := good
	badReward.Learner.Reward.Novelty = nan()
	for name, tc := range map[string]struct {
		cfg  Config
		deps Deps
	}{
		"no brokers": {noBrokers, Deps{Store: store, Catalog: cat}},
		"no store":   {good, Deps{Catalog: cat}},
		"no catalog": {good, Deps{Store: store}},
		"NaN reward": {badReward, Deps{Store: store, Catalog: cat}},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func nan() float64 { var z float64; return z / z }

// TestRunMigratesWholeCheckpoint starts a trainer on the whole checkpoint an
// older build wrote: it resumes from it, its first commit moves the state
// into records and deletes the old key, and the state it leaves restores to
// what it ran with.
func TestRunMigratesWholeCheckpoint(t *testing.T) {
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	cat := testCatalog(t, 300)
	old, err := NewCore(DefaultConfig(), nil, cat)
	if err != nil {
		t.Fatal(err)
	}
	s := genStream(cat.s, 6, 8, 5)
	for _, imp := range s.imps {
		old.Impression(imp)
	}
	for _, fb := range s.clicks {
		old.Feedback(fb)
	}
	data, err := old.EncodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveCheckpoint(t.Context(), CheckpointName("default"), data); err != nil {
		t.Fatal(err)
	}
	// A replayed click (a duplicate the old checkpoint remembers) and a new
	// one on a slate it holds.
	last := s.imps[len(s.imps)-1]
	p := newTestProducer(t, brokers)
	publishJSON(t, p, events.TopicFeedback, s.clicks[0].UserID, s.clicks[0])
	publishJSON(t, p, events.TopicFeedback, last.UserID, feedback("f-new", last.RequestID, last.UserID, last.Items[4].ItemID, last.TS+10, events.FeedbackClick))

	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.CommitInterval = 100 * time.Millisecond
	tr, stop := runTrainer(t, cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	want := old.Counters()
	want.Clicks++
	want.FeedbackDuplicates++
	waitUntil(t, 30*time.Second, "both clicks handled and committed", func() bool {
		st := tr.Stats()
		return st.Counters == want && st.Checkpoints > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadCheckpoint(t.Context(), CheckpointName("default")); !errors.Is(err, features.ErrNotFound) {
		t.Errorf("the whole checkpoint is still stored: %v", err)
	}
	img, err := store.LoadState(t.Context(), CheckpointName("default"), StateHashes...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RestoreState(cfg, img, cat)
	if err != nil {
		t.Fatal(err)
	}
	slates, waiting, decisions, ids := old.Buffered()
	rs, rw, rd, ri := r.Buffered()
	if r.Counters() != want || rs != slates || rw != waiting || rd != decisions || ri != ids+1 {
		t.Errorf("restored %+v with %d/%d/%d/%d held; want %+v with %d/%d/%d/%d", r.Counters(), rs, rw, rd, ri, want, slates, waiting, decisions, ids+1)
	}
}

// gatedStore holds a trainer's commits of applied events while hold says
// so, until release is closed.
type gatedStore struct {
	*features.Store
	hold    atomic.Value // func() bool
	held    atomic.Bool
	release chan struct{}
}

func (g *gatedStore) CommitState(ctx context.Context, name string, d *features.StateDelta) error {
	// Only commits that carry applied events are held: an idle trainer's
	// head-only commit, held, would stop it from applying anything more.
	if h, _ := g.hold.Load().(func() bool); h != nil && h() && (len(d.Put) > 0 || len(d.Del) > 0) {
		g.held.Store(true)
		<-g.release
	}
	return g.Store.CommitState(ctx, name, d)
}

// TestSecondTrainerTakesOver starts a second trainer of the same variant
// while the first runs (an operator's mistake, or a replacement started
// before the old process died) and holds events the first applied but has
// not committed: the second claims the state, the first's commit is
// refused and it stops with ErrTakenOver, and the events it had applied go
// to the second, which ends with every impression and click applied
// exactly once.
func TestSecondTrainerTakesOver(t *testing.T) {
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	gated := &gatedStore{Store: store, release: make(chan struct{})}
	cat := testCatalog(t, 300)
	s := genStream(cat.s, 30, 10, 21)
	p := newTestProducer(t, brokers)
	half := len(s.imps) / 2
	for _, imp := range s.imps[:half] {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
	}
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.CommitInterval = 100 * time.Millisecond
	first, err := New(cfg, Deps{Store: gated, Catalog: cat, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	// Committed as a whole: a commit of part of the half, with the rest
	// applied after it, would be the one held below, before the first
	// trainer applied anything more.
	waitUntil(t, 30*time.Second, "the first half applied and committed", func() bool {
		head, err := store.StateHead(t.Context(), CheckpointName("default"))
		if err != nil {
			return false
		}
		c, _, err := ReadCheckpointCounters(head)
		return err == nil && c.Impressions == int64(half)
	})
	// From now on the first trainer's commits wait: what it applies stays
	// uncommitted.
	gated.hold.Store(func() bool { return true })
	for _, imp := range s.imps[half:] {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
	}
	for _, fb := range s.clicks {
		publishJSON(t, p, events.TopicFeedback, fb.UserID, fb)
	}
	waitUntil(t, 30*time.Second, "the first trainer to apply more and try to commit it", func() bool {
		return first.Stats().Impressions > int64(half) && gated.held.Load()
	})
	ahead := first.Stats()

	second, stop := runTrainer(t, cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	waitUntil(t, 30*time.Second, "the second trainer to claim the state", func() bool { return second.Stats().Checkpoints > 0 })
	close(gated.release)
	select {
	case err := <-done:
		if !errors.Is(err, ErrTakenOver) {
			t.Fatalf("the first trainer returned %v, want ErrTakenOver", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the first trainer did not stop")
	}
	waitUntil(t, time.Minute, "the second trainer to apply everything", func() bool {
		st := second.Stats()
		return st.Impressions == int64(len(s.imps)) && st.Clicks == int64(len(s.clicks)) && st.Checkpoints > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	head, err := store.StateHead(t.Context(), CheckpointName("default"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ReadCheckpointCounters(head)
	if err != nil || got.Impressions != int64(len(s.imps)) || got.Clicks != int64(len(s.clicks)) {
		t.Errorf("stored counters %+v (%v), want %d impressions and %d clicks", got, err, len(s.imps), len(s.clicks))
	}
	t.Logf("the first trainer had applied %d impressions and %d clicks when taken over (%d and 0 committed)", ahead.Impressions, ahead.Clicks, half)
}

// With CommitEvery the trainer commits after that many events, long before
// its commit interval: what replicas need to merge often.
func TestCommitEvery(t *testing.T) {
	brokers, store, cat, s, p := runSetup(t)
	for _, imp := range s.imps {
		publishJSON(t, p, events.TopicImpressions, imp.UserID, imp)
	}
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.CommitInterval = time.Hour
	cfg.CommitEvery = 50
	tr, stop := runTrainer(t, cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
	want := int64(len(s.imps)) / 50 / 2
	waitUntil(t, 30*time.Second, "commits by count", func() bool {
		st := tr.Stats()
		return st.Impressions == int64(len(s.imps)) && st.Checkpoints >= want
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d impressions, %d checkpoints", len(s.imps), tr.Stats().Checkpoints)
}

package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/cpuclock"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// benchStream encodes a realistic mix: impressions of 10 items (with
// features, a 32-dimensional taste vector and the intent state) in the
// given schema and clicks on about 60% of them, interleaved per user.
func benchStream(b *testing.B, snap *catalog.Snapshot, events, schema int) (imps, fbs [][2][]byte) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; len(imps)+len(fbs) < events; i++ {
		user := fmt.Sprintf("user-%d", i%1000)
		rid := fmt.Sprintf("r-%d", i)
		ids := itemIDs(snap, rng.IntN(snap.Len()), 10)
		ts := t0 + int64(i)*10
		imp := impression(snap, rid, user, "s", ts, rng.IntN(5), ids...)
		imp.Schema = schema
		body, err := json.Marshal(imp)
		if err != nil {
			b.Fatal(err)
		}
		imps = append(imps, [2][]byte{[]byte(user), body})
		if rng.Float64() < 0.6 {
			body, _ := json.Marshal(feedback("f-"+rid, rid, user, ids[rng.IntN(4)], ts+100, "click"))
			fbs = append(fbs, [2][]byte{[]byte(user), body})
		}
	}
	return imps, fbs
}

// BenchmarkTrainerThroughput measures the whole trainer through the
// in-process Kafka-protocol cluster: events are produced first (untimed),
// then the timer covers joining the group, decoding, learning, publishing
// snapshots to Redis and committing state, until every event is handled.
// Run with -cpu 1 -benchtime 1x for the one-core figure; it reports
// events/s until every event is handled (the broker, and Redis unless
// REDIS_ADDR is set, run in the same process and share the core), and
// events per CPU-second of the process including the final commit of the
// state (robust to other load on the machine), with impressions in schema
// 1 and in schema 2, and in schema 2 with a commit every 200 events (what
// replicas need, Config.CommitEvery). NOVAREC_BENCH_CPUPROFILE=file
// profiles the timed part.
func BenchmarkTrainerThroughput(b *testing.B) {
	for _, schema := range []int{events.SchemaVersion, events.ImpressionSchema} {
		b.Run(fmt.Sprintf("schema%d", schema), func(b *testing.B) { benchThroughput(b, schema, 0) })
	}
	b.Run(fmt.Sprintf("schema%d/commit-every-200", events.ImpressionSchema), func(b *testing.B) {
		benchThroughput(b, events.ImpressionSchema, 200)
	})
}

func benchThroughput(b *testing.B, schema, commitEvery int) {
	const n = 60_000
	cat := testCatalog(b, 3000)
	imps, fbs := benchStream(b, cat.s, n, schema)
	b.Logf("%d impressions (%d bytes each), %d feedback (%d bytes each)", len(imps), len(imps[0][1]), len(fbs), len(fbs[0][1]))
	for b.Loop() {
		b.StopTimer()
		brokers, store := produced(b, imps, fbs)
		cfg := DefaultConfig()
		cfg.Brokers = brokers
		cfg.CommitEvery = commitEvery
		tr, err := New(cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		stopProfile := timedProfile(b)
		start, cpu0 := time.Now(), cpuclock.Now()
		go func() { done <- tr.Run(runCtx) }()
		var first time.Time
		last, idle := int64(-1), 0 // a stall guard: 60,000 polls without progress
		for {
			st := tr.Stats()
			handled := st.Handled()
			if first.IsZero() && handled > 0 {
				first = time.Now()
			}
			if handled >= int64(len(imps)+len(fbs)) {
				break
			}
			if idle++; handled != last {
				last, idle = handled, 0
			}
			if idle > 60000 {
				b.Fatalf("stalled: handled %d of %d: %+v", handled, len(imps)+len(fbs), st)
			}
			time.Sleep(time.Millisecond)
		}
		elapsed, steady, cpu1 := time.Since(start), time.Since(first), cpuclock.Now()
		// The final commit (every record of the stream's events: the
		// commits of a steady stream, taken at once) counts in the CPU time.
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cpu := cpuclock.Now() - cpu0
		b.StopTimer()
		stopProfile()
		st := tr.Stats()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(n)/steady.Seconds(), "events/s-after-join")
		b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
		b.ReportMetric(float64((cpu - (cpu1 - cpu0)).Milliseconds()), "commit-cpu-ms")
		b.Logf("%d events in %v (%v after the first): %d publishes (last %d bytes), %d commits (last %d bytes, %d records), updates %d, %+v",
			n, elapsed.Round(time.Millisecond), steady.Round(time.Millisecond), st.Publishes, st.SnapshotBytes, st.Checkpoints, st.CheckpointBytes, st.CheckpointRecords, st.Updates, st.Counters)
		b.StartTimer()
	}
}

// produced starts a cluster and a Redis store for one run and produces the
// stream (keyed by user) into the cluster.
func produced(b *testing.B, imps, fbs [][2][]byte) ([]string, *features.Store) {
	b.Helper()
	return producedOn(b, kafkatest.Start(b), imps, fbs)
}

// producedOn is produced on a cluster of the caller's.
func producedOn(b *testing.B, brokers []string, imps, fbs [][2][]byte) ([]string, *features.Store) {
	b.Helper()
	client, prefix := redistest.New(b)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger(), Buffer: 2 * (len(imps) + len(fbs))})
	for _, m := range imps {
		p.Publish(events.TopicImpressions, string(m[0]), m[1])
	}
	for _, m := range fbs {
		p.Publish(events.TopicFeedback, string(m[0]), m[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil || p.Stats().Published != uint64(len(imps)+len(fbs)) {
		b.Fatalf("produce: %v, %+v", err, p.Stats())
	}
	return brokers, store
}

// BenchmarkCore measures the pure learning path (no Kafka, no JSON): one
// impression of 10 items and 0.6 clicks per iteration.
func BenchmarkCore(b *testing.B) {
	cat := testCatalog(b, 3000)
	c, err := NewCore(DefaultConfig(), nil, cat)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	i := 0
	for b.Loop() {
		user := fmt.Sprintf("user-%d", i%1000)
		rid := fmt.Sprintf("r-%d", i)
		ids := itemIDs(cat.s, rng.IntN(cat.s.Len()), 10)
		ts := t0 + int64(i)*10
		c.Impression(impression(cat.s, rid, user, "s", ts, rng.IntN(5), ids...))
		if rng.Float64() < 0.6 {
			c.Feedback(feedback("f-"+rid, rid, user, ids[rng.IntN(4)], ts+100, "click"))
		}
		i++
	}
}

// model100k is a model with learned embeddings and biases for 100,000 items.
func model100k() *recommend.Model {
	m := recommend.DefaultModel()
	m.Version = "default-1"
	rng := rand.New(rand.NewPCG(5, 5))
	m.ItemBias = make(map[string]float32, 100_000)
	m.ItemEmb = make(map[string][]float32, 100_000)
	for i := range 100_000 {
		id := fmt.Sprintf("item-%d", i)
		e := make([]float32, catalog.DefaultDim)
		for x := range e {
			e[x] = float32(rng.NormFloat64())
		}
		m.ItemEmb[id] = catalog.Normalize(e)
		m.ItemBias[id] = float32(rng.NormFloat64() * 0.01)
	}
	return m
}

// BenchmarkSnapshotPublish100k measures what publishing costs at 100k items
// with learned embeddings for all: EncodeModel plus PutModel (SET + PUBLISH
// in one pipeline) to Redis (REDIS_ADDR when set, else in-process).
func BenchmarkSnapshotPublish100k(b *testing.B) {
	m := model100k()
	client, prefix := redistest.New(b)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	ctx := context.Background()
	meta := recommend.SnapshotMeta{Variant: "default", FeedbackTS: make([]int64, 2000)}
	var size int
	var encode, put time.Duration
	for b.Loop() {
		t := time.Now()
		data, err := recommend.EncodeModel(m, meta)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := store.PutModel(ctx, "default", data); err != nil {
			b.Fatal(err)
		}
		encode += t1.Sub(t)
		put += time.Since(t1)
		size = len(data)
	}
	b.ReportMetric(float64(size), "bytes")
	b.ReportMetric(float64(encode.Milliseconds())/float64(b.N), "encode-ms")
	b.ReportMetric(float64(put.Milliseconds())/float64(b.N), "put-ms")
}

// BenchmarkCheckpoint100k measures a checkpoint (encode of the whole state)
// at 100k learned items, the cost paid before every offset commit.
func BenchmarkCheckpoint100k(b *testing.B) {
	cat := testCatalog(b, 3000)
	c := newCore(DefaultConfig().withDefaults(), recommend.NewLearner(recommend.DefaultLearnerConfig(), model100k()), cat)
	s := genStream(cat.s, 200, 20, 3)
	for _, imp := range s.imps {
		c.Impression(imp)
	}
	for _, fb := range s.clicks {
		c.Feedback(fb)
	}
	var size int
	for b.Loop() {
		data, err := c.EncodeCheckpoint()
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size), "bytes")
}

// BenchmarkCommitCost measures one commit of the incremental state after an
// interval of 5,000 events (2,500 impressions of 10 items, 2,500 clicks)
// with 10k, 100k and 1M impressions already in the attribution window:
// StateDelta plus CommitState to Redis (REDIS_ADDR when set, else
// in-process). The window's records are taken as stored (their first
// commit is not written), since what is measured is what a commit costs
// once they are. For comparison it reports the whole checkpoint the
// trainer used to write at that occupancy (not at 1M: about a gigabyte).
// Each commit starts after a garbage collection: a cycle's work grows with
// the heap, so one running during a commit makes it look dependent on the
// window when it is not.
//
//	go test -run - -bench CommitCost -benchtime 5x ./trainer
func BenchmarkCommitCost(b *testing.B) {
	cat := testCatalog(b, 3000)
	for _, occ := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("window=%d", occ), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxSlates, cfg.MaxDedup = occ+100_000, 2*occ+200_000
			c, err := NewCore(cfg, nil, cat)
			if err != nil {
				b.Fatal(err)
			}
			imp := func(i int, ts int64) events.Impression {
				rid := fmt.Sprintf("r-%d", i)
				return viaSchema2(b, impression(cat.s, rid, fmt.Sprintf("user-%d", i), "s", ts, i%5, itemIDs(cat.s, i%cat.s.Len(), 10)...))
			}
			for i := range occ {
				c.Impression(imp(i, t0+int64(i)/1000))
			}
			c.TrackChanges()
			if _, err := c.StateDelta(); err != nil {
				b.Fatal(err)
			}
			c.Committed()
			whole := 0
			if occ <= 100_000 {
				data, err := c.EncodeCheckpoint()
				if err != nil {
					b.Fatal(err)
				}
				whole = len(data)
			}
			client, prefix := redistest.New(b)
			st := features.NewStore(client, features.Options{Prefix: prefix})
			next, size, records := occ, 0, 0
			var delta, store time.Duration
			for b.Loop() {
				b.StopTimer()
				for range 2500 {
					ev := imp(next, t0+int64(occ)/1000+int64(next-occ))
					c.Impression(ev)
					c.Feedback(feedback("f-"+ev.RequestID, ev.RequestID, ev.UserID, ev.Items[1].ItemID, ev.TS+1, events.FeedbackClick))
					next++
				}
				records = c.Changes()
				// The collector's work grows with the heap (the window), not
				// with the commit: start each commit without a cycle running.
				runtime.GC()
				b.StartTimer()
				start := time.Now()
				d, err := c.StateDelta()
				if err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := st.CommitState(context.Background(), "bench", d); err != nil {
					b.Fatal(err)
				}
				delta, store = delta+mid.Sub(start), store+time.Since(mid)
				c.Committed()
				size = d.Bytes()
			}
			b.ReportMetric(float64(delta.Milliseconds())/float64(b.N), "delta-ms")
			b.ReportMetric(float64(store.Milliseconds())/float64(b.N), "store-ms")
			b.ReportMetric(float64(size), "commit-bytes")
			b.ReportMetric(float64(records), "records")
			b.ReportMetric(float64(whole), "whole-ckpt-bytes")
		})
	}
}

// BenchmarkRestore measures a restart with 100k impressions in the window:
// LoadState (HSCAN of every record) and RestoreState.
//
//	go test -run - -bench Restore -benchtime 3x ./trainer
func BenchmarkRestore(b *testing.B) {
	const occ = 100_000
	cat := testCatalog(b, 3000)
	c, err := NewCore(DefaultConfig(), nil, cat)
	if err != nil {
		b.Fatal(err)
	}
	c.TrackChanges()
	for i := range occ {
		ev := viaSchema2(b, impression(cat.s, fmt.Sprintf("r-%d", i), fmt.Sprintf("user-%d", i%20_000), "s", t0+int64(i)*10, i%5, itemIDs(cat.s, i%cat.s.Len(), 10)...))
		c.Impression(ev)
		if i%2 == 0 {
			c.Feedback(feedback("f-"+ev.RequestID, ev.RequestID, ev.UserID, ev.Items[1].ItemID, ev.TS+1, events.FeedbackClick))
		}
	}
	client, prefix := redistest.New(b)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	d, err := c.StateDelta()
	if err != nil {
		b.Fatal(err)
	}
	if err := store.CommitState(context.Background(), "bench", d); err != nil {
		b.Fatal(err)
	}
	slates, _, _, ids := c.Buffered()
	b.Logf("stored %d bytes: %d slates, %d event ids", d.Bytes(), slates, ids)
	for b.Loop() {
		img, err := store.LoadState(context.Background(), "bench", StateHashes...)
		if err != nil {
			b.Fatal(err)
		}
		r, err := RestoreState(DefaultConfig(), img, cat)
		if err != nil {
			b.Fatal(err)
		}
		if s, _, _, _ := r.Buffered(); s != slates {
			b.Fatalf("restored %d slates of %d", s, slates)
		}
	}
	b.ReportMetric(float64(d.Bytes()), "state-bytes")
}

// viaSchema2 returns ev as the trainer reads it from a schema-2 event, whose
// numbers the state records store narrower.
func viaSchema2(b *testing.B, ev events.Impression) events.Impression {
	ev.Schema = events.ImpressionSchema
	data, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	out, err := events.DecodeImpression(data)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkReplicaThroughput runs one and two partitioned replicas
// (Config.Partitioned) of a variant on the same schema-2 stream, produced
// first (untimed). The timer covers starting the replicas until the stored
// partitions account for every event; events/s-steady counts from the
// moment every replica has handled events (the group's first rebalances
// are then over) using the committed counts, so it is the rate of the
// replicas sharing the work. The broker runs in the process; Redis is
// REDIS_ADDR's (or miniredis). Run with -benchtime 1x.
func BenchmarkReplicaThroughput(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas%d", replicas), func(b *testing.B) { benchReplicas(b, replicas) })
	}
}

// replicaPartitions is the partition count of the replica benchmark's
// topics: even, so that two replicas can share the work equally (with 3,
// range assignment gives one replica 2 partitions and the other 1, which
// caps two replicas at 1.5× one).
const replicaPartitions = 6

func benchReplicas(b *testing.B, replicas int) {
	const n = 100_000
	cat := testCatalog(b, 3000)
	imps, fbs := benchStream(b, cat.s, n, events.ImpressionSchema)
	for b.Loop() {
		b.StopTimer()
		cluster, err := events.StartEmbedded(replicaPartitions)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cluster.Close)
		brokers, store := producedOn(b, cluster.Brokers(), imps, fbs)
		cfg := DefaultConfig()
		cfg.Brokers = brokers
		cfg.Partitioned = true
		cfg.CommitInterval = time.Second
		// The first replica hears of the second's join, and hands over
		// half its partitions, at its next heartbeat: every 100 ms, not
		// the default's 3 s, so that it does not work alone for seconds.
		cfg.SessionTimeout = 6 * time.Second
		cfg.HeartbeatInterval = 100 * time.Millisecond
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, replicas)
		trs := make([]*Trainer, replicas)
		for i := range trs {
			tr, err := New(cfg, Deps{Store: store, Catalog: cat, Logger: testLogger()})
			if err != nil {
				b.Fatal(err)
			}
			trs[i] = tr
		}
		handled := func() int64 {
			c, _ := CommittedCounters(context.Background(), store, DefaultVariant, replicaPartitions)
			return c.Handled()
		}
		active := func() bool {
			for _, tr := range trs {
				if st := tr.Stats(); st.Impressions+st.Clicks == 0 {
					return false
				}
			}
			return true
		}
		b.StartTimer()
		stopProfile := timedProfile(b)
		start, cpu0 := time.Now(), cpuclock.Now()
		for _, tr := range trs {
			go func() { done <- tr.Run(runCtx) }()
		}
		var shared time.Time
		var atShared int64
		// A stall guard, not a speed bound: it fails only when 1,200
		// polls in a row (a minute or more) saw no event handled.
		last, idle := int64(-1), 0
		for total := int64(len(imps) + len(fbs)); ; {
			h := handled()
			if shared.IsZero() && active() {
				shared, atShared = time.Now(), h
			}
			if h >= total {
				break
			}
			if idle++; h != last {
				last, idle = h, 0
			}
			if idle > 1200 {
				for i, tr := range trs {
					b.Logf("replica %d: %+v", i, tr.Stats())
				}
				b.Fatalf("stalled: handled %d of %d", h, total)
			}
			time.Sleep(50 * time.Millisecond) // each poll reads every partition head
		}
		elapsed, steady, cpu := time.Since(start), time.Since(shared), cpuclock.Now()-cpu0
		b.StopTimer()
		stopProfile()
		stop()
		for range trs {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(int64(n)-atShared)/steady.Seconds(), "events/s-steady")
		b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
		b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
		var commits, publishes int64
		for i, tr := range trs {
			st := tr.Stats()
			commits += st.Checkpoints
			publishes += st.Publishes
			b.Logf("replica %d: %d impressions, %d clicks handled (its last partitions')", i, st.Impressions, st.Clicks)
		}
		b.Logf("%d replicas: %d events in %v; %d of them committed before every replica was working, the rest in %v; %d commits, %d publishes",
			replicas, n, elapsed.Round(time.Millisecond), atShared, steady.Round(time.Millisecond), commits, publishes)
		b.StartTimer()
	}
}

// BenchmarkEventCost measures what the trainer itself spends per event,
// without the broker, the Kafka client or Redis: decoding the message
// (schema-2 impressions, feedback), the Core's join and learning, and
// building the commit of its changes (StateDelta) after each pass over the
// 60,000 events, as the trainer does once per commit interval (5 s: 60,000
// events at 12,000 events/s, fewer than at the target rate, so the
// commit's fixed part is not undercounted). One op is one event; the
// per-core ceiling of the trainer is 1e9 / (ns/op) events/s less what the
// Kafka client and the Redis round trips take. It also reports the CPU
// time of the process per event (cpu-ns/event, events/cpu-s), which load
// on the machine moves less than ns/op; NOVAREC_BENCH_CPUPROFILE=file
// profiles the timed part.
//
//	go test -run - -bench EventCost -benchmem -benchtime 180000x -cpu 1 ./trainer
func BenchmarkEventCost(b *testing.B) {
	cat := testCatalog(b, 3000)
	imps, fbs := benchStream(b, cat.s, 60_000, events.ImpressionSchema)
	// Interleave as the trainer sees them: each click right after its
	// impression's successor (fetches of the two topics alternate).
	type msg struct {
		imp  bool
		body []byte
	}
	var stream []msg
	for i, j := 0, 0; i < len(imps) || j < len(fbs); {
		if i < len(imps) {
			stream = append(stream, msg{true, imps[i][1]})
			i++
		}
		if j < len(fbs) && (i >= len(imps) || j*len(imps) < i*len(fbs)) {
			stream = append(stream, msg{false, fbs[j][1]})
			j++
		}
	}
	var c *Core
	i := 0
	// CPU time of the timed part (all threads: the collector's work counts),
	// which other load on the machine moves far less than ns/op.
	var cpu time.Duration
	stopProfile := timedProfile(b)
	cpu0 := cpuclock.Now()
	for b.Loop() {
		if i%len(stream) == 0 {
			cpu += cpuclock.Now() - cpu0
			b.StopTimer()
			var err error
			if c, err = NewCore(DefaultConfig(), nil, cat); err != nil {
				b.Fatal(err)
			}
			c.TrackChanges()
			b.StartTimer()
			cpu0 = cpuclock.Now()
		}
		m := stream[i%len(stream)]
		if m.imp {
			ev, err := events.DecodeImpression(m.body)
			if err != nil {
				b.Fatal(err)
			}
			c.Impression(ev)
		} else {
			ev, err := events.DecodeFeedback(m.body)
			if err != nil {
				b.Fatal(err)
			}
			c.Feedback(ev)
		}
		i++
		if i%len(stream) == 0 {
			if _, err := c.StateDelta(); err != nil {
				b.Fatal(err)
			}
			c.Committed()
		}
	}
	cpu += cpuclock.Now() - cpu0
	stopProfile()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
}

// BenchmarkItemsDelta measures building a commit of 200 events (100
// impressions, 100 clicks: about 1,000 items touched) on a model that has
// learned 3,000 or 100,000 items, writing the items the learner touched
// (tracked) or comparing every item's fingerprint with the committed one
// (scan, as before Learner.TakeTouched and still for a first commit). No
// Redis: StateDelta alone, the part of a commit that depended on the
// model's size.
//
//	go test -run - -bench ItemsDelta -benchtime 200x ./trainer
func BenchmarkItemsDelta(b *testing.B) {
	for _, items := range []int{3000, 100_000} {
		cat := testCatalog(b, items)
		for _, scan := range []bool{false, true} {
			name := fmt.Sprintf("items=%d/tracked", items)
			if scan {
				name = fmt.Sprintf("items=%d/scan", items)
			}
			b.Run(name, func(b *testing.B) {
				c, err := NewCore(DefaultConfig(), nil, cat)
				if err != nil {
					b.Fatal(err)
				}
				next := 0
				feed := func(n int) {
					for range n {
						rid := fmt.Sprintf("r-%d", next)
						ev := impression(cat.s, rid, fmt.Sprintf("user-%d", next%1000), "s", t0+int64(next), next%5, itemIDs(cat.s, 10*next, 10)...)
						c.Impression(ev)
						c.Feedback(feedback("f-"+rid, rid, ev.UserID, ev.Items[1].ItemID, ev.TS+1, events.FeedbackClick))
						next++
					}
				}
				feed(items / 10) // every item learned
				c.TrackChanges()
				for range 2 { // the first commit writes all; the second is tracked
					if _, err := c.StateDelta(); err != nil {
						b.Fatal(err)
					}
					c.Committed()
				}
				if n := len(c.Learner().Model().ItemBias); n < items*9/10 {
					b.Fatalf("%d items learned of %d", n, items)
				}
				var took time.Duration
				written := 0
				for b.Loop() {
					b.StopTimer()
					feed(100)
					c.itemScan = scan
					b.StartTimer()
					start := time.Now()
					d, err := c.StateDelta()
					if err != nil {
						b.Fatal(err)
					}
					took += time.Since(start)
					written = len(d.Put[hashItems])
					c.Committed()
				}
				b.ReportMetric(float64(took.Microseconds())/float64(b.N), "µs/commit")
				b.ReportMetric(float64(written), "items-written")
			})
		}
	}
}

// BenchmarkReplicaCommit measures a partitioned replica's commit of 200
// events (100 impressions of 10 items, 100 clicks: about 1,000 items
// touched) on a shared model that has learned 3,000 or 100,000 items:
// building its partition's records and the model's delta, the Redis
// transaction that merges it into the shared model, and the rebase of the
// replica's local model on the result. With others=1 a second replica
// commits 200 events of its own between two of the measured replica's, so
// each measured commit also brings in what the other changed. Publishing
// the snapshot, which encodes the whole model by design (one snapshot per
// variant: BenchmarkSnapshotPublish100k), is left out. Redis is
// REDIS_ADDR's (or miniredis); cpu-µs/commit is the process's CPU time
// (not Redis's), which other load on the machine moves less than wall
// time.
//
//	REDIS_ADDR=127.0.0.1:6379 go test -run - -bench ReplicaCommit -benchtime 20x ./trainer
func BenchmarkReplicaCommit(b *testing.B) {
	ctx := context.Background()
	for _, items := range []int{3000, 100_000} {
		cat := testCatalog(b, items)
		for _, others := range []int{0, 1} {
			b.Run(fmt.Sprintf("items=%d/others=%d", items, others), func(b *testing.B) {
				client, prefix := redistest.New(b)
				store := features.NewStore(client, features.Options{Prefix: prefix})
				replica := func() *Trainer {
					tr := consumerlessReplica(b, store, cat)
					tr.rep.noPublish = true // publishing is not measured
					return tr
				}
				feed := func(tr *Trainer, p, n int, next *int) { feedPartition(b, tr, cat, p, n, next) }
				commit := func(tr *Trainer) {
					if err := tr.commitReplica(ctx); err != nil {
						b.Fatal(err)
					}
				}
				a := replica()
				nextA, nextB := 0, items/20  // the other replica starts halfway round the catalog
				feed(a, 0, items/10, &nextA) // every item learned
				commit(a)
				if n := len(a.rep.l.Model().ItemBias); n < items*9/10 {
					b.Fatalf("%d items learned of %d", n, items)
				}
				other := replica() // reads the shared model a has stored
				feed(a, 0, 100, &nextA)
				commit(a)
				var took, cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					if others > 0 {
						feed(other, 1, 100, &nextB)
						commit(other)
					}
					feed(a, 0, 100, &nextA)
					b.StartTimer()
					start, cpu0 := time.Now(), cpuclock.Now()
					commit(a)
					took, cpu = took+time.Since(start), cpu+cpuclock.Now()-cpu0
				}
				b.ReportMetric(float64(took.Microseconds())/float64(b.N), "µs/commit")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/commit")
			})
		}
	}
}

package features

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/internal/cpuclock"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// readsPerLoad is how many commands one Load sends (newReads with the
// session's shown list).
const readsPerLoad = 4

// fullBatches makes the store's auto-pipeliner send a batch only once it
// holds the reads of exactly users loads (the window is an hour, so nothing
// else ends it): which loads share a pipeline is then decided by the test,
// not by the scheduler.
func fullBatches(users int) *redis.AutoPipelineOptions {
	opts := redis.DefaultAutoPipelineOptions()
	opts.MaxBatchSize = users * readsPerLoad
	opts.MaxFlushDelay = time.Hour
	return opts
}

// pipelineSizes records the number of commands of every pipeline the client
// sends.
type pipelineSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (p *pipelineSizes) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelineSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.mu.Lock()
		p.sizes = append(p.sizes, len(cmds))
		p.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (p *pipelineSizes) get() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.sizes...)
}

// batchedStore returns a store whose loads are batched with opts, and one
// on the same keys that reads them one pipeline a load, for reference.
func batchedStore(t *testing.T, opts *redis.AutoPipelineOptions) (batched, plain *Store, client redis.UniversalClient) {
	t.Helper()
	client, prefix := redistest.New(t)
	batched, plain = NewStore(client, Options{Prefix: prefix}), NewStore(client, Options{Prefix: prefix})
	if err := batched.BatchLoads(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := batched.Close(); err != nil {
			t.Error(err)
		}
	})
	return batched, plain, client
}

// saveUsers stores n users whose states all differ (history, statistics,
// session and shown items) and returns their ids.
func saveUsers(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		id := fmt.Sprintf("u%d", i)
		st := recommend.UserState{
			UserID: id,
			Stats:  recommend.Stats{Clicks: int64(i + 1), Sessions: int64(i%3 + 1), LastTS: int64(1000 + i)},
			Session: recommend.Session{ID: "s" + id, Start: 10, Last: int64(20 + i), Clicks: int64(i % 4),
				Shown: recommend.ShownRecord("r"+id, []string{"shown-" + id, "x"})},
		}
		for j := range i%5 + 1 {
			st.History = append(st.History, recommend.Consumed{ItemID: fmt.Sprintf("%s-item%d", id, j), TS: int64(500 - j)})
		}
		if i%2 == 0 {
			st.Consumed.Add(uint64(i+1) * 0x9e3779b97f4a7c15)
		}
		if err := s.Save(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// Loads batched together get each their own user's state: the same state a
// load of its own reads. Four loads share every pipeline (fullBatches), so
// each pipeline interleaves four users' reads.
func TestBatchedLoadsGetTheirOwnState(t *testing.T) {
	t.Parallel()
	const together = 4
	s, plain, client := batchedStore(t, fullBatches(together))
	ids := saveUsers(t, plain, 24)
	want := map[string]recommend.UserState{}
	for _, id := range ids {
		st, err := plain.Load(t.Context(), id, "s"+id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = st
	}
	sizes := &pipelineSizes{}
	client.AddHook(sizes)
	for round := range 5 {
		var wg sync.WaitGroup
		for g := range together {
			wg.Go(func() {
				// Each round loads other users; a user is loaded in two sessions
				// in the round before last, so a user's own session is told apart.
				for k := range len(ids) / together {
					id := ids[(g+k*together+round)%len(ids)]
					sess := "s" + id
					if round == 3 && k%2 == 1 {
						sess = "other"
					}
					got, err := s.Load(t.Context(), id, sess)
					if err != nil {
						t.Error(err)
						return
					}
					w := want[id]
					if sess == "other" {
						w.Session = recommend.Session{ID: "other"}
					}
					if !reflect.DeepEqual(got, w) {
						t.Errorf("round %d: load of %s in %s:\n got %+v\nwant %+v", round, id, sess, got, w)
					}
				}
			})
		}
		wg.Wait()
	}
	shared := 0
	for _, n := range sizes.get() {
		if n == together*readsPerLoad {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no pipeline carried %d loads' reads; sizes %v", together, sizes.get())
	}
}

// A load waits for its batch only until its own deadline: it then gets a
// timeout (the breaker's kind of failure, not an error of Redis's), and its
// reads still go out with the batch, whose other load is served.
func TestBatchedLoadHonoursItsDeadline(t *testing.T) {
	t.Parallel()
	s, plain, client := batchedStore(t, fullBatches(2))
	ids := saveUsers(t, plain, 2)
	want, err := plain.Load(t.Context(), ids[1], "s"+ids[1])
	if err != nil {
		t.Fatal(err)
	}
	sizes := &pipelineSizes{}
	client.AddHook(sizes)

	// Alone, the first load's batch is never sent: only its deadline ends
	// the wait.
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	if _, err := s.Load(ctx, ids[0], "s"+ids[0]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load past its deadline: err = %v, want a deadline error", err)
	}
	if n := len(sizes.get()); n != 0 {
		t.Fatalf("%d pipelines sent before the batch was full", n)
	}

	// The second load fills the batch: it is sent with both loads' reads,
	// and the second load, with no deadline, gets its state.
	got, err := s.Load(t.Context(), ids[1], "s"+ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("load after a timed-out one:\n got %+v\nwant %+v", got, want)
	}
	if got := sizes.get(); len(got) != 1 || got[0] != 2*readsPerLoad {
		t.Errorf("pipelines sent: %v, want one of both loads' %d reads", got, 2*readsPerLoad)
	}
}

// When Redis fails, every load of the batch gets the failure, as an error
// that is not a timeout (so the breaker counts it as Redis's answer): an
// error reply, then a closed server.
func TestBatchedLoadErrorsReachEveryCaller(t *testing.T) {
	t.Parallel()
	mr, client := redistest.Miniredis(t)
	s := NewStore(client, Options{Prefix: "p:"})
	if err := s.BatchLoads(fullBatches(3)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name  string
		fail  func()
		check func(error) bool
	}{
		{"error reply", func() { mr.SetError("ERR injected") }, func(err error) bool { return strings.Contains(err.Error(), "ERR injected") }},
		{"server gone", mr.Close, func(err error) bool { return !errors.Is(err, redis.Nil) }},
	} {
		tc.fail()
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.Load(t.Context(), fmt.Sprintf("u%d", i), "")
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !tc.check(err) {
				t.Errorf("%s: load %d: err = %v", tc.name, i, err)
			}
		}
	}
}

// flushers counts the goroutines of go-redis's auto-pipeliners.
func flushers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "go-redis/v9.(*apShard).flusher")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Close stops the auto-pipeliner's goroutine; later loads fail. Not
// parallel: it counts every goroutine of the process.
func TestCloseStopsBatching(t *testing.T) {
	client, prefix := redistest.New(t)
	s := NewStore(client, Options{Prefix: prefix})
	before := flushers()
	if err := s.BatchLoads(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "u", ""); err != nil {
		t.Fatal(err)
	}
	if n := flushers(); n <= before {
		t.Fatalf("%d flusher goroutines with batching, %d before: the count does not see them", n, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := flushers(); n != before {
		t.Errorf("%d flusher goroutines after Close, want %d", n, before)
	}
	if _, err := s.Load(t.Context(), "u", ""); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("load after Close: err = %v, want redis.ErrClosed", err)
	}
	// The client is the caller's: still open.
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("ping after Close: %v", err)
	}
}

// BenchmarkLoadBatched is recsvc's user-state read as it serves: Load
// through the auto-pipeliner from 8 goroutines at once per core (wrk's c=8
// on this 2-core machine is 4 a core), the benchmark user's full state (a
// 200-item history, 297 shown entries). cpu-ns/op is the process's CPU a
// load, go-redis's goroutines included, the client's share of what
// bench/load.sh measures (Redis's CPU is not in it); run it against the
// real Redis (REDIS_ADDR), as miniredis's CPU would be in the process.
// full-duplex is go-redis's other dispatcher (AutoPipelineOptions.FullDuplex:
// one held connection, a writer and a reader goroutine), measured and not
// used: it costs the client more CPU a load on loopback.
func BenchmarkLoadBatched(b *testing.B) {
	for _, tc := range []struct {
		name       string
		fullDuplex bool
	}{
		{"half-duplex", false},
		{"full-duplex", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := newStore(b, Options{})
			opts := redis.DefaultAutoPipelineOptions()
			opts.FullDuplex = tc.fullDuplex
			if err := s.BatchLoads(opts); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := s.Close(); err != nil {
					b.Error(err)
				}
			})
			seedBenchUser(b, s)
			ctx := b.Context()
			b.ReportAllocs()
			b.SetParallelism(4)
			cpu0 := cpuclock.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Load(ctx, "bench", "s"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuclock.Now()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

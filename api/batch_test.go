package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// batchedFixture serves from a features.Store whose loads are batched
// (features.Store.BatchLoads with opts) on a miniredis of its own.
func batchedFixture(t *testing.T, opts *redis.AutoPipelineOptions, budget time.Duration) (*fixture, *miniredis.Miniredis) {
	t.Helper()
	mr, client := redistest.Miniredis(t)
	store := features.NewStore(client, features.Options{Prefix: "p:"})
	if err := store.BatchLoads(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(200, 3))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, pub: &publisher{}, snap: snap}
	f.srv = New(Config{
		Store: store, Events: f.pub, Feedback: f.pub, Catalog: fixedCatalog{snap}, Models: fixedModel{recommend.DefaultModel()},
		Engine: recommend.NewEngine(recommend.Config{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreTimeout: budget,
	})
	return f, mr
}

// With batched loads the breaker sees what it saw before: a load whose
// batch does not come back within the budget is a timeout that degrades
// its own request (a burst of them does not trip, a sustained rate does),
// and Redis's own errors trip after RedisFailures in a row.
func TestBatchedLoadsFeedTheBreaker(t *testing.T) {
	t.Run("timeouts", func(t *testing.T) {
		// Batches are never sent (an hour's window, never full): every load
		// ends at its budget.
		opts := redis.DefaultAutoPipelineOptions()
		opts.MaxBatchSize, opts.MaxFlushDelay = 10000, time.Hour
		f, _ := batchedFixture(t, opts, time.Millisecond)
		now := ms(0)
		f.srv.nanotime = func() int64 { return now }
		deg, trips := f.srv.metrics.degraded, f.srv.metrics.trips
		for range 50 { // one stall: every request in flight at once
			if r := f.recommend(t, `{"user_id":"u"}`); !r.Degraded {
				t.Fatal("a load past its budget was not degraded")
			}
		}
		if n := value(t, deg.WithLabelValues(causeRedisTimeout)); n != 50 {
			t.Errorf("redis_timeout answers = %v, want 50", n)
		}
		if n := value(t, trips.WithLabelValues(tripFailureRate)) + value(t, trips.WithLabelValues(tripErrors)); n != 0 {
			t.Fatal("one stall marked Redis down")
		}
		for range 100 { // frozen for a second
			now += 10e6
			f.recommend(t, `{"user_id":"u"}`)
		}
		if value(t, trips.WithLabelValues(tripFailureRate)) != 1 {
			t.Fatal("a sustained failure rate did not mark Redis down")
		}
	})
	t.Run("errors", func(t *testing.T) {
		f, mr := batchedFixture(t, nil, time.Second)
		if r := f.recommend(t, `{"user_id":"u"}`); r.Degraded {
			t.Fatal("degraded with Redis up")
		}
		mr.SetError("ERR injected")
		for range RedisFailures {
			if r := f.recommend(t, `{"user_id":"u"}`); !r.Degraded {
				t.Fatal("served from Redis while it answers errors")
			}
		}
		if n := value(t, f.srv.metrics.degraded.WithLabelValues(causeRedisError)); n != RedisFailures {
			t.Errorf("redis_error answers = %v, want %d", n, RedisFailures)
		}
		if value(t, f.srv.metrics.trips.WithLabelValues(tripErrors)) != 1 {
			t.Fatal("consecutive errors did not mark Redis down")
		}
	})
}

// A client that goes away while its load waits (a batched load stops
// waiting at once) is not a Redis failure: nothing counts it, neither the
// breaker nor the degraded answers.
func TestGoneClientIsNoRedisFailure(t *testing.T) {
	opts := redis.DefaultAutoPipelineOptions()
	opts.MaxBatchSize, opts.MaxFlushDelay = 10000, time.Hour // never sent: the load waits
	f, _ := batchedFixture(t, opts, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range RedisFailures + 1 {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/recommend", strings.NewReader(`{"user_id":"u"}`))
		req.Header.Set("Content-Type", "application/json")
		f.srv.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, cause := range []string{causeRedisError, causeRedisTimeout, causeRedisDown} {
		if n := value(t, f.srv.metrics.degraded.WithLabelValues(cause)); n != 0 {
			t.Errorf("%s answers = %v for clients that went away", cause, n)
		}
	}
	if n := value(t, f.srv.metrics.trips.WithLabelValues(tripErrors)); n != 0 || !f.srv.redisUp.Load() {
		t.Error("clients that went away marked Redis down")
	}
}

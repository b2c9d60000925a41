package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ms is a time in the window's clock (Unix ns), in milliseconds.
func ms(n int64) int64 { return 1_000_000_000_000 + n*1e6 }

func TestRateWindow(t *testing.T) {
	type read struct {
		at     int64 // ms
		n      int
		failed bool
	}
	every := func(from, to, step int64, n int, failed bool) []read {
		var r []read
		for at := from; at < to; at += step {
			r = append(r, read{at, n, failed})
		}
		return r
	}
	cat := func(rs ...[]read) []read {
		var out []read
		for _, r := range rs {
			out = append(out, r...)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		reads []read
		at    int64 // ms, when sustained is asked
		want  bool
	}{
		// CPU starvation: one stall times out every read in flight at once.
		{"stall amid successes", cat(every(0, 900, 10, 5, false), []read{{950, 32, true}}), 960, false},
		{"stall at start, nothing else yet", []read{{10, 32, true}}, 20, false},
		{"stall of 300ms, then answers", cat(every(0, 300, 10, 4, true), every(300, 1000, 10, 4, false)), 990, false},
		{"a third of reads time out all along", cat(every(0, 1000, 10, 2, false), every(0, 1000, 10, 1, true)), 995, false},
		// Redis frozen or partitioned: reads keep failing.
		{"every read fails for 600ms", every(400, 1000, 25, 1, true), 995, true},
		{"nine in ten fail all along", cat(every(0, 1000, 10, 1, false), every(0, 1000, 10, 9, true)), 995, true},
		{"failures only longer ago than the window", every(0, 800, 10, 4, true), 2500, false},
		{"few reads, all failing", every(0, 1000, 100, 1, true), 995, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w rateWindow
			for _, r := range tc.reads {
				for range r.n {
					w.add(ms(r.at), r.failed)
				}
			}
			if got := w.sustained(ms(tc.at)); got != tc.want {
				t.Errorf("sustained = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsTimeout(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("load: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, true},
		{redis.ErrPoolTimeout, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{fmt.Errorf("load: %w", errors.New("EOF")), false},
		{errors.New("LOADING Redis is loading the dataset in memory"), false},
	} {
		if got := isTimeout(tc.err); got != tc.want {
			t.Errorf("isTimeout(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestTimeoutsDegradeTheRequestOnly: reads that overrun the budget while
// Redis answers others (a starved process) degrade those requests, counted
// as redis_timeout, and never mark Redis down; reads that keep timing out
// for a sustained part of a second (a frozen Redis) do, and so do a few
// connection errors in a row. The breaker's clock advances by hand.
func TestTimeoutsDegradeTheRequestOnly(t *testing.T) {
	f := newFixture(t)
	var now int64 = ms(0)
	f.srv.nanotime = func() int64 { return now }
	deg, trips := f.srv.metrics.degraded, f.srv.metrics.trips
	tripped := func() float64 {
		return value(t, trips.WithLabelValues(tripErrors)) + value(t, trips.WithLabelValues(tripFailureRate)) + value(t, trips.WithLabelValues(tripProbe))
	}

	// Starvation: every third request times out, 10 ms apart, for 3 s.
	for i := range 300 {
		now += 10e6
		f.flaky.slow.Store(i%3 == 0)
		r := f.recommend(t, `{"user_id":"u"}`)
		if r.Degraded != (i%3 == 0) {
			t.Fatalf("request %d: degraded %v; want only the timed-out requests degraded", i, r.Degraded)
		}
	}
	if n := value(t, deg.WithLabelValues(causeRedisTimeout)); n != 100 {
		t.Errorf("redis_timeout answers = %v, want 100", n)
	}
	if n := value(t, deg.WithLabelValues(causeRedisDown)); n != 0 || tripped() != 0 {
		t.Fatalf("Redis marked down while it answered: %v answers skipped it, %v trips", n, tripped())
	}

	// A burst of 50 timeouts at one instant (every request in flight when
	// the process stalls) does not trip either.
	f.flaky.slow.Store(true)
	for range 50 {
		f.recommend(t, `{"user_id":"u"}`)
	}
	if tripped() != 0 {
		t.Fatal("one stall marked Redis down")
	}

	// Frozen: every read times out for most of a second.
	for range 100 {
		now += 10e6
		f.recommend(t, `{"user_id":"u"}`)
	}
	if value(t, trips.WithLabelValues(tripFailureRate)) != 1 {
		t.Fatal("a sustained failure rate did not mark Redis down")
	}
	if _, r := f.ready(t); r.Checks["redis"] != "unreachable" {
		t.Fatalf("/readyz says redis %v", r.Checks["redis"])
	}

	// Back: a trial request finds it and closes the breaker, clearing the
	// window, so one more timeout does not reopen it.
	f.flaky.slow.Store(false)
	now += int64(trialEvery) * 2
	f.srv.lastTrial.Store(0)
	if r := f.recommend(t, `{"user_id":"u"}`); r.Degraded {
		t.Fatal("trial request degraded with Redis back")
	}
	f.flaky.slow.Store(true)
	now += 10e6
	f.recommend(t, `{"user_id":"u"}`)
	if _, r := f.ready(t); r.Checks["redis"] != "ok" {
		t.Fatal("one timeout after recovery marked Redis down")
	}

	// Refused connections are Redis's own answer: a few in a row trip.
	f.flaky.slow.Store(false)
	f.flaky.down.Store(true)
	for range RedisFailures {
		now += 10e6
		f.recommend(t, `{"user_id":"u"}`)
	}
	if value(t, trips.WithLabelValues(tripErrors)) != 1 {
		t.Fatal("consecutive connection errors did not mark Redis down")
	}
}

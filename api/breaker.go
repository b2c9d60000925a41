package api

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The breaker marks Redis down so that requests stop waiting out a budget
// each while it cannot answer. It must trip on evidence that Redis is
// unreachable, never on slowness of this process: under CPU starvation
// (a noisy neighbour, a GC spike, a throttled pod) every request in flight
// can overrun its Redis budget at once although Redis answered in time,
// and tripping then would send a second of healthy traffic to the popular
// pool. So the two kinds of failure count differently:
//
//   - An error that is not a timeout (connection refused or reset, EOF, a
//     Redis error reply) is Redis's own answer that it cannot serve:
//     RedisFailures of them in a row trip the breaker (reason "errors").
//   - A timeout degrades its own request only. It trips the breaker only
//     as part of a sustained failure rate: over the last second (window),
//     at least failMinFailures failed reads, failing in at least
//     failMinBuckets of its ten 100 ms buckets (half a second of failing,
//     not one stall), and at least failRatio of all reads (reason
//     "failure_rate"). A frozen or partitioned Redis fails every read and
//     trips within about half a second under load; a starved process
//     keeps answering most requests and does not.
//
// The background prober trips it too (reason "probe") when a ping with
// its generous one-second budget fails. Any success (a request, a trial
// request, the prober) closes it again and clears the window.

// RedisFailures is how many consecutive non-timeout errors mark Redis down.
const RedisFailures = 3

// Window of the failure rate; see above.
const (
	windowBuckets   = 10
	bucketWidth     = int64(100e6) // ns; windowBuckets*bucketWidth = 1 s
	failMinFailures = 20
	failMinBuckets  = windowBuckets / 2
	failRatio       = 0.8
)

// Reasons the breaker trips (novarec_redis_trips_total).
const (
	tripErrors      = "errors"
	tripFailureRate = "failure_rate"
	tripProbe       = "probe"
)

// rateWindow counts Redis reads that succeeded and failed over the last
// second in ten buckets, lock-free: recording is two atomic operations on
// the hot path. A bucket reused for a new 100 ms slot is zeroed by whoever
// first sees it stale; a count racing that reset may be lost, which only
// blurs a rate that needs no precision.
type rateWindow struct {
	b [windowBuckets]struct {
		slot     atomic.Int64 // now/bucketWidth the counts are for
		ok, fail atomic.Int64
	}
}

func (w *rateWindow) add(now int64, failed bool) {
	slot := now / bucketWidth
	b := &w.b[slot%windowBuckets]
	if old := b.slot.Load(); old != slot && b.slot.CompareAndSwap(old, slot) {
		b.ok.Store(0)
		b.fail.Store(0)
	}
	if failed {
		b.fail.Add(1)
	} else {
		b.ok.Add(1)
	}
}

// sustained reports whether the window holds a sustained failure rate.
func (w *rateWindow) sustained(now int64) bool {
	slot := now / bucketWidth
	var ok, fail, failing int64
	for i := range w.b {
		b := &w.b[i]
		if s := b.slot.Load(); s > slot-windowBuckets && s <= slot {
			f := b.fail.Load()
			ok += b.ok.Load()
			fail += f
			if f > 0 {
				failing++
			}
		}
	}
	return fail >= failMinFailures && failing >= failMinBuckets && float64(fail) >= failRatio*float64(ok+fail)
}

func (w *rateWindow) reset() {
	for i := range w.b {
		w.b[i].slot.Store(0)
		w.b[i].ok.Store(0)
		w.b[i].fail.Store(0)
	}
}

// isTimeout tells a read that ran out of time (the budget, a socket
// deadline, waiting for a pooled connection) from one Redis refused.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// redisOK records a successful Redis round trip at now (Unix ns).
func (s *Server) redisOK(now int64) {
	s.window.add(now, false)
	s.setRedis(true, "")
}

// redisFailed records a failed Redis round trip at now (Unix ns) and trips
// the breaker when the failures are evidence that Redis is unreachable.
func (s *Server) redisFailed(now int64, err error) {
	s.window.add(now, true)
	if isTimeout(err) {
		if s.window.sustained(now) {
			s.setRedis(false, tripFailureRate)
		}
		return
	}
	if s.redisFailures.Add(1) >= RedisFailures {
		s.setRedis(false, tripErrors)
	}
}

// setRedis marks Redis up or (for reason) down.
func (s *Server) setRedis(up bool, reason string) {
	if up {
		if s.redisFailures.Load() != 0 {
			s.redisFailures.Store(0)
		}
		if s.redisUp.Load() {
			return // the common case, on every request: nothing changes
		}
	}
	if s.redisUp.Swap(up) != up {
		if up {
			s.window.reset()
			s.log.Info("redis reachable again")
		} else {
			s.metrics.trips.WithLabelValues(reason).Inc()
			s.log.Warn("redis unreachable; recommend serves degraded answers", "reason", reason)
		}
	}
	s.metrics.redisUp.Set(b2f(up))
	s.metrics.dependencyUp.WithLabelValues("redis").Set(b2f(up))
}

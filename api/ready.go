package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Readiness answers one question for the orchestrator: would a request sent
// to this replica be served worse than one sent to another? A load balancer
// acts on the answer by taking the replica out of rotation, so /readyz is
// 503 only for conditions of this replica:
//
//   - no catalog snapshot yet, or a variant's model not loaded (a replica
//     that is starting up, or cannot read what others could);
//   - a Check that is not Shared failing.
//
// Redis and Kafka are shared by every replica. While Redis is down, each
// replica still answers recommendations, degraded (from the popular pool);
// while Kafka is down, feedback is spooled to local disk (or refused with
// 503 when that is full or off), and recommendations are unaffected.
// Failing readiness then would take every replica out at once and turn a
// degraded service into no service, so shared dependencies are reported in
// the body ("degraded": true and their state), in novarec_dependency_up and
// novarec_redis_up, and by the alerts, but /readyz stays 200. A replica
// cannot tell a shared outage from its own network trouble; the alerts,
// which see every replica, can.

// trialEvery is how often a request tries Redis while it is marked down: the
// background prober checks every second, and a trial lets a Redis that was
// only slow for a moment (a CPU spike) come back within this rather than
// after the next probe, so a blip degrades a fraction of a second of
// traffic instead of a burst.
const trialEvery = 200 * time.Millisecond

// tryRedis reports whether this request should try Redis although it is
// marked down: one request per trialEvery does.
func (s *Server) tryRedis() bool {
	now := time.Now().UnixNano()
	last := s.lastTrial.Load()
	return now-last >= int64(trialEvery) && s.lastTrial.CompareAndSwap(last, now)
}

// Causes of a degraded recommendation (novarec_recommend_degraded_total).
const (
	causeRedisDown    = "redis_down"    // Redis marked down: not tried
	causeRedisTimeout = "redis_timeout" // the read exceeded the Redis budget
	causeRedisError   = "redis_error"   // the read failed otherwise
)

func (s *Server) readyz(c *gin.Context) {
	checks := gin.H{}
	ready, degraded := true, false
	if s.redisUp.Load() {
		checks["redis"] = "ok"
	} else {
		checks["redis"], degraded = "unreachable", true
	}
	for i, ch := range s.cfg.Checks {
		msg := s.checks[i].Load()
		switch {
		case msg == nil:
			checks[ch.Name] = "ok"
		case ch.Shared:
			checks[ch.Name], degraded = *msg, true
		default:
			checks[ch.Name], ready = *msg, false
		}
	}
	if s.cfg.Catalog.Current() == nil {
		checks["catalog"], ready = "empty", false
	} else {
		checks["catalog"] = "ok"
	}
	models := gin.H{}
	for _, v := range s.variants() {
		if a, err := s.armOf(v); err != nil {
			models[v], ready = err.Error(), false
		} else if a.model == nil {
			models[v], ready = "not loaded", false
		} else {
			models[v] = a.model.Version
		}
	}
	checks["models"] = models
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	c.JSON(code, gin.H{"ready": ready, "degraded": degraded, "checks": checks})
}

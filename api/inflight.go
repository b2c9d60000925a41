package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// DefaultMaxInflight is recsvc's default bound on data-plane requests served
// at once. A recommendation takes well under a millisecond of CPU and at
// most the 100 ms store budget, so by Little's law 512 concurrent requests
// are over 5,000 requests/s per replica even when every one waits out the
// Redis budget, more than a two-CPU replica computes. The bound is reached
// only when requests pile up faster than they finish (a slow Redis, a
// traffic spike before the HPA reacts); queueing more then only makes every
// answer late and grows memory until the pod is killed.
const DefaultMaxInflight = 512

// limitInflight admits a data-plane request only while fewer than
// Config.MaxInflight are being served, and otherwise answers 503 at once
// with Retry-After: shedding the excess keeps the admitted requests fast
// and tells clients and load balancers to go elsewhere, where a blocking
// wait would hold the connection and still time out. The semaphore is a
// buffered channel; acquiring never blocks.
func (s *Server) limitInflight(c *gin.Context) {
	select {
	case s.inflight <- struct{}{}:
	default:
		s.metrics.overloaded.WithLabelValues(c.FullPath()).Inc()
		c.Header("Retry-After", "1")
		abort(c, http.StatusServiceUnavailable, Error{Code: "overloaded", Message: "too many requests in flight; retry"})
		return
	}
	defer func() { <-s.inflight }()
	c.Next()
}

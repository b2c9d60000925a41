package api

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	levels   *prometheus.CounterVec
	redis    *prometheus.HistogramVec
	redisUp  prometheus.Gauge
	degraded *prometheus.CounterVec
	// trips counts the times Redis was marked down, by reason (breaker.go).
	trips *prometheus.CounterVec
	// dependencyUp is 1 per dependency (redis, kafka) while it answers.
	dependencyUp *prometheus.GaugeVec
	published    *prometheus.CounterVec
	// overloaded counts requests limitInflight turned away; inflightLimit
	// is Config.MaxInflight, so a dashboard can plot in-flight against it.
	overloaded    *prometheus.CounterVec
	inflight      prometheus.GaugeFunc
	inflightLimit prometheus.Gauge
	// slowBodies counts requests cut off by the body deadline (408);
	// connsRejected counts connections closed by LimitListener.
	slowBodies    prometheus.Counter
	connsRejected prometheus.Counter
	// readingBodies counts requests whose body is being read (not yet
	// holding an in-flight slot): many of them and few requests served
	// means clients that send slowly.
	readingBodies prometheus.Gauge
	// The children of the series every recommendation updates, resolved
	// once rather than by label lookup per request.
	recommendOK      prometheus.Counter
	recommendLatency prometheus.Observer
	redisLoad        prometheus.Observer
}

// latencyBuckets resolve the sub-millisecond range the service lives in.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// newMetrics registers the server's metrics; inflight reports the
// data-plane requests being served under the in-flight bound.
func newMetrics(reg prometheus.Registerer, inflight func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "novarec_http_request_duration_seconds", Help: "HTTP request latency by route and method.", Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		levels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_intent_level_total", Help: "Intent levels chosen by the high-level policy, by variant.",
		}, []string{"variant", "level"}),
		redis: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "novarec_redis_duration_seconds", Help: "Latency of the request path's Redis round trips by operation.", Buckets: latencyBuckets,
		}, []string{"op"}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_redis_up", Help: "1 while Redis answers, 0 while recommend is degraded.",
		}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_recommend_degraded_total", Help: "Recommendations answered from the popular pool without the user's state, by cause: redis_down (Redis marked down, not tried), redis_timeout (the read exceeded the Redis budget), redis_error.",
		}, []string{"cause"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_redis_trips_total", Help: "Times this replica marked Redis down (recommend then skips it and answers degraded), by reason: errors (consecutive connection or Redis errors), failure_rate (most reads failed for a sustained second), probe (the background ping failed). Timeouts alone, as under CPU starvation, degrade their request only.",
		}, []string{"reason"}),
		dependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "novarec_dependency_up", Help: "1 while a shared dependency (redis, kafka) answers this replica's probes and requests, 0 while it does not (the replica stays ready and serves degraded).",
		}, []string{"dependency"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_events_rejected_total", Help: "Events the handlers could not hand on, by topic: impressions refused by the producer's full buffer (dropped), feedback that could not be made durable (answered 503).",
		}, []string{"topic"}),
		overloaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_http_overloaded_total", Help: "Data-plane requests answered 503 at once because MaxInflight requests were already being served, by route.",
		}, []string{"route"}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "novarec_http_inflight_requests", Help: "Data-plane requests being served under the -max-inflight bound (0 while there is no bound).",
		}, inflight),
		inflightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_http_inflight_limit", Help: "The bound on data-plane requests served at once (-max-inflight; 0 = none).",
		}),
		slowBodies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_http_body_timeouts_total", Help: "Requests answered 408 because their body did not arrive within the body deadline.",
		}),
		connsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_http_connections_rejected_total", Help: "Connections closed at once because their client already held -max-conns-per-client connections.",
		}),
		readingBodies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_http_body_reads_inflight", Help: "Requests whose body is still being received (they do not count against -max-inflight yet).",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.levels, m.redis, m.redisUp, m.degraded, m.trips, m.dependencyUp, m.published, m.overloaded, m.inflight, m.inflightLimit, m.slowBodies, m.connsRejected, m.readingBodies)
	// Process and Go runtime metrics, if the registry has none yet.
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.redisUp.Set(1)
	m.recommendOK = m.requests.WithLabelValues(recommendRoute, "POST", "200")
	m.recommendLatency = m.latency.WithLabelValues(recommendRoute, "POST")
	m.redisLoad = m.redis.WithLabelValues("load")
	m.dependencyUp.WithLabelValues("redis").Set(1)
	for _, c := range []string{causeRedisDown, causeRedisTimeout, causeRedisError} {
		m.degraded.WithLabelValues(c) // export every cause from the start
	}
	for _, r := range []string{tripErrors, tripFailureRate, tripProbe} {
		m.trips.WithLabelValues(r)
	}
	return m
}

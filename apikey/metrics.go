package apikey

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	keys     prometheus.Gauge
	reloads  *prometheus.CounterVec
	lastOK   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_auth_requests_total",
			Help: "Requests to key-guarded routes by key id (anonymous in open mode, none when no valid key was presented), scope and outcome (allowed, unauthorized, forbidden, rate_limited).",
		}, []string{"key_id", "scope", "outcome"}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_auth_keys", Help: "API keys in force.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novarec_auth_reloads_total", Help: "Reloads of the API keys file by outcome (ok, error); after an error the previous keys stay in force.",
		}, []string{"outcome"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "novarec_auth_last_reload_successful", Help: "1 if the last reload of the API keys file succeeded (or there is no file), 0 while the file in place is refused and the previous keys serve.",
		}),
	}
	m.lastOK.Set(1)
	if reg != nil {
		reg.MustRegister(m.requests, m.keys, m.reloads, m.lastOK)
	}
	return m
}

func (m *metrics) count(keyID string, scope Scope, outcome string) {
	m.requests.WithLabelValues(keyID, string(scope), outcome).Inc()
}

package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"topic", "via"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("a", "kafka").Add(2)
	c.WithLabelValues("a", "spool").Add(5)
	g.Set(-1.5)
	h.Observe(1)
	h.Observe(2)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		ok     bool
	}{
		{"c_total", map[string]string{"topic": "a", "via": "spool"}, 5, true},
		{"c_total", map[string]string{"via": "kafka"}, 2, true},
		{"c_total", map[string]string{"via": "other"}, 0, false},
		{"c_total", map[string]string{"missing": ""}, 2, true}, // "" = the series lacks the label
		{"g", nil, -1.5, true},
		{"h_seconds", nil, 2, true},
		{"nothing", nil, 0, false},
	} {
		if got, ok := Value(t, reg, tc.name, tc.labels); got != tc.want || ok != tc.ok {
			t.Errorf("%s%v: %v %v, want %v %v", tc.name, tc.labels, got, ok, tc.want, tc.ok)
		}
	}
}

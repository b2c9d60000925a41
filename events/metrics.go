package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// registerCounterVec registers cv with reg (when reg is not nil) and returns
// the collector to use: cv itself, or the identical one already registered
// (several producers or consumers in one process then share the series, which
// is what a dashboard wants).
func registerCounterVec(reg prometheus.Registerer, log *slog.Logger, cv *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return cv
	}
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		log.Warn("events: metric not registered", "err", err)
	}
	return cv
}

// registerGauge is registerCounterVec for a plain gauge.
func registerGauge(reg prometheus.Registerer, log *slog.Logger, g prometheus.Gauge) prometheus.Gauge {
	if reg == nil {
		return g
	}
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Gauge); ok {
				return existing
			}
		}
		log.Warn("events: metric not registered", "err", err)
	}
	return g
}

// bufferedGauge is novarec_events_buffered: the sum of Buffered over the
// producers registered with one Registerer. A custom collector, because a
// process may run several producers (recsvc's events and, in embedded mode,
// the trainer's dead letters) and the gauge should cover them all.
type bufferedGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	ps   map[*Producer]struct{}
}

func registerBufferedGauge(reg prometheus.Registerer, log *slog.Logger) *bufferedGauge {
	g := &bufferedGauge{
		desc: prometheus.NewDesc("novarec_events_buffered",
			"Events accepted by producers and not yet acknowledged by Kafka or dropped.", nil, nil),
		ps: make(map[*Producer]struct{}),
	}
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*bufferedGauge); ok {
				return existing
			}
		}
		log.Warn("events: metric not registered", "err", err)
	}
	return g
}

func (g *bufferedGauge) add(p *Producer) {
	g.mu.Lock()
	g.ps[p] = struct{}{}
	g.mu.Unlock()
}

func (g *bufferedGauge) remove(p *Producer) {
	g.mu.Lock()
	delete(g.ps, p)
	g.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (g *bufferedGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *bufferedGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	n := 0
	for p := range g.ps {
		n += p.buffered()
	}
	g.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
}

// backoff returns the delay before retry number attempt (0-based): base·2^attempt
// capped at max, with ±20% jitter so that many clients do not retry in step.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	if j <= 0 {
		j = time.Millisecond
	}
	return j
}

// sleepCtx waits for d or until ctx ends, reporting whether the full d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// kafkaLogger adapts slog to kafka-go's Logger interface. kafka-go's own
// messages are low-level (one per retry), so they go out at the given level,
// normally Debug, while this package logs the decisions that matter.
type kafkaLogger struct {
	log   *slog.Logger
	level slog.Level
	what  string
}

func (k kafkaLogger) Printf(format string, args ...any) {
	if !k.log.Enabled(context.Background(), k.level) {
		return
	}
	k.log.Log(context.Background(), k.level, fmt.Sprintf(format, args...), "component", k.what)
}

package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// gate holds requests inside their handler: each one announces itself on
// entered and waits until release is closed, so a test knows exactly how
// many requests are in flight without sleeping.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

// gatedStore blocks recommend's user-state read.
type gatedStore struct {
	Store
	g *gate
}

func (s gatedStore) Load(ctx context.Context, u, sess string) (recommend.UserState, error) {
	s.g.entered <- struct{}{}
	select {
	case <-s.g.release:
	case <-ctx.Done():
		return recommend.UserState{}, ctx.Err()
	}
	return s.Store.Load(ctx, u, sess)
}

// gatedPublisher blocks feedback's durable write (and lets recommend's
// impressions through).
type gatedPublisher struct {
	publisher
	g *gate
}

func (p *gatedPublisher) Write(ctx context.Context, topic, key string, value []byte) error {
	if topic == events.TopicFeedback {
		p.g.entered <- struct{}{}
		<-p.g.release
	}
	return p.publisher.Write(ctx, topic, key, value)
}

// TestMaxInflight fills the data-plane bound with requests parked inside
// their handlers, then checks that further recommend and feedback requests
// are shed at once with 503 "overloaded" and Retry-After while health,
// metrics and catalog routes still answer, and that the slots come back
// when the parked requests finish.
func TestMaxInflight(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		// parked requests held in their handlers: recommend, feedback.
		parkRec, parkFb int
		// extra requests sent while they are parked.
		extraRec, extraFb int
		wantShed          bool
	}{
		{name: "bound 1 by a recommend", max: 1, parkRec: 1, extraRec: 3, extraFb: 2, wantShed: true},
		{name: "bound 1 by a feedback", max: 1, parkFb: 1, extraRec: 1, extraFb: 1, wantShed: true},
		{name: "bound 4 shared by both routes", max: 4, parkRec: 2, parkFb: 2, extraRec: 2, extraFb: 2, wantShed: true},
		{name: "below the bound", max: 4, parkRec: 1, parkFb: 2, wantShed: false},
		{name: "no bound", max: 0, parkRec: 6, parkFb: 6, wantShed: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, prefix := redistest.New(t)
			store := features.NewStore(client, features.Options{Prefix: prefix})
			snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(200, 3))
			if err != nil {
				t.Fatal(err)
			}
			parked := tc.parkRec + tc.parkFb
			g := &gate{entered: make(chan struct{}, parked), release: make(chan struct{})}
			pub := &gatedPublisher{g: g}
			srv := New(Config{
				Store: gatedStore{store, g}, Events: pub, Feedback: pub, Catalog: fixedCatalog{snap},
				Models: fixedModel{recommend.DefaultModel()}, Engine: recommend.NewEngine(recommend.Config{}),
				Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
				StoreTimeout: time.Hour, // the gate, not a timeout, ends the parked requests
				MaxInflight:  tc.max,
			})
			item := snap.Item(0).ID
			bodies := map[string]string{
				"/v1/recommend": `{"user_id":"u","k":3}`,
				"/v1/feedback":  `{"user_id":"u","item_id":"` + item + `","type":"click"}`,
			}
			serve := func(method, path, body string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(method, path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				return w
			}

			done := make(chan int, parked)
			park := func(path string, n int) {
				for range n {
					go func() { done <- serve(http.MethodPost, path, bodies[path]).Code }()
				}
			}
			park("/v1/recommend", tc.parkRec)
			park("/v1/feedback", tc.parkFb)
			for range parked {
				<-g.entered // every parked request holds a slot now
			}

			shed := map[string]int{}
			for path, n := range map[string]int{"/v1/recommend": tc.extraRec, "/v1/feedback": tc.extraFb} {
				for range n {
					w := serve(http.MethodPost, path, bodies[path])
					if !tc.wantShed {
						t.Fatalf("%s answered %d while under the bound", path, w.Code)
					}
					var body errorBody
					if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusServiceUnavailable || body.Error.Code != "overloaded" {
						t.Fatalf("%s over the bound: %d %s, want 503 overloaded", path, w.Code, w.Body)
					}
					if w.Header().Get("Retry-After") == "" {
						t.Errorf("%s: 503 without Retry-After", path)
					}
					shed[path]++
				}
			}
			// Never limited: probes, scrapes, catalog reads (this item is in
			// the snapshot but not in Redis: 404 shows the handler ran).
			for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusOK, "/v1/items/" + item: http.StatusNotFound} {
				if w := serve(http.MethodGet, path, ""); w.Code != want {
					t.Errorf("GET %s while saturated: %d %s, want %d", path, w.Code, w.Body, want)
				}
			}
			if w := serve(http.MethodGet, "/readyz", ""); strings.Contains(w.Body.String(), "overloaded") {
				t.Errorf("/readyz was shed: %s", w.Body)
			}
			if got := value(t, srv.metrics.inflight); tc.max > 0 && got != float64(parked) {
				t.Errorf("novarec_http_inflight_requests = %v, want %d", got, parked)
			}

			close(g.release)
			for range parked {
				if code := <-done; code != http.StatusOK && code != http.StatusAccepted {
					t.Errorf("a parked request ended with %d", code)
				}
			}
			// The slots are free again.
			g.entered = make(chan struct{}, 2)
			for path, want := range map[string]int{"/v1/recommend": http.StatusOK, "/v1/feedback": http.StatusAccepted} {
				if w := serve(http.MethodPost, path, bodies[path]); w.Code != want {
					t.Errorf("%s after the parked requests finished: %d %s", path, w.Code, w.Body)
				}
			}
			for path, n := range shed {
				if got := value(t, srv.metrics.overloaded.WithLabelValues(path)); got != float64(n) {
					t.Errorf("novarec_http_overloaded_total{route=%q} = %v, want %d", path, got, n)
				}
			}
			if got := value(t, srv.metrics.inflightLimit); got != float64(tc.max) {
				t.Errorf("novarec_http_inflight_limit = %v, want %d", got, tc.max)
			}
		})
	}
}

// value reads a counter's or gauge's current value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

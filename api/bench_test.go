package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/internal/cpuclock"
	"github.com/novarec/novarec/recommend"
)

// oneUserStore answers every Load with a copy of one user's state, with no
// Redis: BenchmarkRecommendHandler measures the handler, not the store.
type oneUserStore struct {
	Store
	st recommend.UserState
}

func (m *oneUserStore) Load(_ context.Context, userID, sessionID string) (recommend.UserState, error) {
	st := m.st
	st.UserID, st.Session.ID = userID, sessionID
	return st, nil
}

func (m *oneUserStore) RecordShown(context.Context, string, string, []string) error { return nil }

// countingPublisher takes every event and keeps only their number.
type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Publish(string, string, []byte) bool { p.n.Add(1); return true }

func (p *countingPublisher) Write(context.Context, string, string, []byte) error {
	p.n.Add(1)
	return nil
}

// BenchmarkRecommendHandler serves POST /v1/recommend (k = 10) through the
// whole handler chain on httptest, for a user with a 200-item history and
// three slates shown in the session, on a 1k-item catalog (so that Decide,
// measured in package recommend, weighs less). allocs/op and cpu-ns/op
// (the process's CPU per request) are what the handler adds around Decide:
// decoding, loading (here a copy), the response and the impression.
func BenchmarkRecommendHandler(b *testing.B) {
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(1000, 3))
	if err != nil {
		b.Fatal(err)
	}
	st := recommend.UserState{Session: recommend.Session{Start: time.Now().UnixMilli() - 60_000}}
	for i := range 200 {
		st.History = append(st.History, recommend.Consumed{ItemID: snap.Item(int32(i * 5)).ID, TS: int64(1_700_000_000_000 - i*60_000), Novel: i%4 == 0})
	}
	for s := range 3 {
		ids := make([]string, 10)
		for i := range ids {
			ids[i] = snap.Item(int32(1 + s*10 + i*7)).ID
		}
		st.Session.Shown = append(st.Session.Shown, recommend.ShownRecord("r1", ids)...)
	}
	pub := &countingPublisher{}
	srv := New(Config{
		Store: &oneUserStore{st: st}, Events: pub, Feedback: pub, Catalog: fixedCatalog{snap}, Models: fixedModel{recommend.DefaultModel()},
		Engine: recommend.NewEngine(recommend.Config{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreTimeout: time.Second,
	})
	body := `{"user_id":"user-4821","session_id":"s-1","k":10}`
	b.ReportAllocs()
	cpu0 := cpuclock.Now()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/recommend", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("recommend: %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(cpuclock.Now()-cpu0)/float64(b.N), "cpu-ns/op")
	if pub.n.Load() != int64(b.N) {
		b.Fatalf("%d impressions for %d requests", pub.n.Load(), b.N)
	}
}

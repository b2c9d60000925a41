package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// publisher records events; full makes it refuse them like a full buffer.
type publisher struct {
	mu   sync.Mutex
	msgs map[string][][]byte
	full atomic.Bool
}

func (p *publisher) Publish(topic, key string, value []byte) bool {
	if p.full.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msgs == nil {
		p.msgs = map[string][][]byte{}
	}
	p.msgs[topic] = append(p.msgs[topic], value)
	return true
}

// Write is the durable path (EventLog): it fails like Publish while full.
func (p *publisher) Write(_ context.Context, topic, key string, value []byte) error {
	if !p.Publish(topic, key, value) {
		return errors.New("event log unavailable")
	}
	return nil
}

func (p *publisher) last(t *testing.T, topic string, v any) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs[topic]) == 0 {
		t.Fatalf("nothing published on %s", topic)
	}
	if err := json.Unmarshal(p.msgs[topic][len(p.msgs[topic])-1], v); err != nil {
		t.Fatal(err)
	}
}

type fixedCatalog struct{ s *catalog.Snapshot }

func (f fixedCatalog) Current() *catalog.Snapshot { return f.s }

type fixedModel struct{ m *recommend.Model }

func (f fixedModel) Current(string) *recommend.Model { return f.m }

// flakyStore fails every call while down is set, like an unreachable Redis,
// and every Load with a timeout while slow is set, like a Redis that
// answers after the budget.
type flakyStore struct {
	Store
	down, slow atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *flakyStore) Load(ctx context.Context, u, s string) (recommend.UserState, error) {
	if f.down.Load() {
		return recommend.UserState{}, errDown
	}
	if f.slow.Load() {
		return recommend.UserState{}, fmt.Errorf("features: load user state: %w", context.DeadlineExceeded)
	}
	return f.Store.Load(ctx, u, s)
}

func (f *flakyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Ping(ctx)
}

type fixture struct {
	srv   *Server
	store *features.Store
	flaky *flakyStore
	pub   *publisher
	snap  *catalog.Snapshot
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureModel(t, recommend.DefaultModel())
}

// newFixtureModel is newFixture serving model m.
func newFixtureModel(t *testing.T, m *recommend.Model) *fixture {
	t.Helper()
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	snap, err := catalog.Build(1, catalog.DefaultDim, catalog.Sample(600, 3))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, flaky: &flakyStore{Store: store}, pub: &publisher{}, snap: snap}
	f.srv = New(Config{
		Store: f.flaky, Events: f.pub, Feedback: f.pub, Catalog: fixedCatalog{snap}, Models: fixedModel{m},
		Engine: recommend.NewEngine(recommend.Config{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreTimeout: time.Second,
	})
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

func (f *fixture) recommend(t *testing.T, body string) RecommendResponse {
	t.Helper()
	code, b := f.do(t, http.MethodPost, "/v1/recommend", body)
	if code != http.StatusOK {
		t.Fatalf("recommend: %d %s", code, b)
	}
	var r RecommendResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecommend(t *testing.T) {
	f := newFixture(t)
	r := f.recommend(t, `{"user_id":"u1","session_id":"s1"}`)
	if len(r.Items) != DefaultK || r.Variant != DefaultVariant || r.ModelVersion != "prior" || r.RequestID == "" || r.Degraded {
		t.Fatalf("unexpected response %+v", r)
	}
	seen := map[string]bool{}
	for i, it := range r.Items {
		if it.Position != i || seen[it.ItemID] || !(it.Propensity > 0 && it.Propensity <= 1) {
			t.Fatalf("bad item %d: %+v", i, it)
		}
		seen[it.ItemID] = true
	}
	if r.Intent.Probability <= 0 || r.Intent.UserPropensity != 0.25 {
		t.Fatalf("intent %+v", r.Intent)
	}
	var imp events.Impression
	f.pub.last(t, events.TopicImpressions, &imp)
	if imp.RequestID != r.RequestID || len(imp.Items) != len(r.Items) || imp.Schema != events.ImpressionSchema || len(imp.Intent.State) == 0 || imp.UserID != "u1" {
		t.Fatalf("impression %+v does not match response", imp)
	}

	// The session's shown items and the request's exclusions are not served again.
	ex := r.Items[0].ItemID
	r2 := f.recommend(t, `{"user_id":"u1","session_id":"s1","k":30,"exclude":["`+ex+`","not-an-item"]}`)
	for _, it := range r2.Items {
		if seen[it.ItemID] {
			t.Fatalf("item %s shown again in the same session", it.ItemID)
		}
	}
	if len(r2.Items) != 30 {
		t.Fatalf("k=30 gave %d items", len(r2.Items))
	}
	// Another session may see them again.
	r3 := f.recommend(t, `{"user_id":"u1","session_id":"s2","deterministic":true,"exclude":["`+ex+`"]}`)
	for _, it := range r3.Items {
		if it.ItemID == ex {
			t.Fatalf("excluded item %s served", ex)
		}
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	item := f.snap.Item(0).ID
	long := strings.Repeat("x", MaxIDBytes+1)
	tests := []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"malformed JSON", "POST", "/v1/recommend", `{"user_id":`, 400, ""},
		{"not JSON", "POST", "/v1/recommend", `hello`, 400, ""},
		{"empty body", "POST", "/v1/recommend", ``, 400, ""},
		{"two values", "POST", "/v1/recommend", `{"user_id":"a"}{}`, 400, ""},
		{"unknown field", "POST", "/v1/recommend", `{"user_id":"a","kk":3}`, 400, "kk"},
		{"missing user_id", "POST", "/v1/recommend", `{"k":3}`, 400, "user_id"},
		{"long user_id", "POST", "/v1/recommend", `{"user_id":"` + long + `"}`, 400, "user_id"},
		{"control char in user_id", "POST", "/v1/recommend", `{"user_id":"a\u0001"}`, 400, "user_id"},
		{"k zero", "POST", "/v1/recommend", `{"user_id":"a","k":0}`, 400, "k"},
		{"k too large", "POST", "/v1/recommend", `{"user_id":"a","k":101}`, 400, "k"},
		{"k wrong type", "POST", "/v1/recommend", `{"user_id":"a","k":"ten"}`, 400, "k"},
		{"exclude wrong type", "POST", "/v1/recommend", `{"user_id":"a","exclude":"x"}`, 400, "exclude"},
		{"exclude empty id", "POST", "/v1/recommend", `{"user_id":"a","exclude":[""]}`, 400, "exclude[0]"},
		{"oversized body", "POST", "/v1/recommend", `{"user_id":"a","context":{"x":"` + strings.Repeat("y", MaxBodyBytes) + `"}}`, 413, ""},
		{"feedback missing type", "POST", "/v1/feedback", `{"user_id":"a","item_id":"` + item + `"}`, 400, "type"},
		{"feedback bad type", "POST", "/v1/feedback", `{"user_id":"a","item_id":"` + item + `","type":"love"}`, 400, "type"},
		{"feedback missing item", "POST", "/v1/feedback", `{"user_id":"a","type":"click"}`, 400, "item_id"},
		{"feedback unknown item", "POST", "/v1/feedback", `{"user_id":"a","item_id":"nope","type":"click"}`, 404, "item_id"},
		{"rating without value", "POST", "/v1/feedback", `{"user_id":"a","item_id":"` + item + `","type":"rating"}`, 400, "value"},
		{"feedback from the future", "POST", "/v1/feedback", `{"user_id":"a","item_id":"` + item + `","type":"click","ts":99999999999999}`, 400, "ts"},
		{"put no items", "PUT", "/v1/items", `{"items":[]}`, 400, "items"},
		{"put item without id", "PUT", "/v1/items", `{"items":[{"categories":["a"]}]}`, 400, "items[0].id"},
		{"put bad embedding", "PUT", "/v1/items", `{"items":[{"id":"a","embedding":[1,2]}]}`, 400, "items[0].embedding"},
		{"put negative popularity", "PUT", "/v1/items", `{"items":[{"id":"a","popularity":-1}]}`, 400, "items[0].popularity"},
		{"get unknown item", "GET", "/v1/items/nope", ``, 404, "id"},
		{"unknown route", "GET", "/v2/nothing", ``, 404, ""},
		{"wrong method", "GET", "/v1/recommend", ``, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, b)
			}
			var body struct {
				Error Error `json:"error"`
			}
			if err := json.Unmarshal(b, &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
				t.Fatalf("error body %q is not the JSON error shape (%v)", b, err)
			}
			if body.Error.Field != tc.field {
				t.Fatalf("error names field %q, want %q: %s", body.Error.Field, tc.field, b)
			}
		})
	}
}

func TestFeedback(t *testing.T) {
	f := newFixture(t)
	item := f.snap.Item(3).ID
	code, b := f.do(t, "POST", "/v1/feedback", `{"request_id":"r1","user_id":"u","session_id":"s","item_id":"`+item+`","type":"rating","value":4.5}`)
	if code != http.StatusAccepted {
		t.Fatalf("feedback: %d %s", code, b)
	}
	var ev events.Feedback
	f.pub.last(t, events.TopicFeedback, &ev)
	if ev.ItemID != item || ev.Type != "rating" || ev.Value != 4.5 || ev.EventID == "" || ev.TS == 0 || ev.RequestID != "r1" || ev.Schema != 1 {
		t.Fatalf("published %+v", ev)
	}
	if _, err := events.DecodeFeedback(f.pub.msgs[events.TopicFeedback][0]); err != nil {
		t.Fatalf("the consumer would reject what the API published: %v", err)
	}
	// An event log that cannot keep the event refuses it rather than losing it.
	f.pub.full.Store(true)
	code, b = f.do(t, "POST", "/v1/feedback", `{"user_id":"u","item_id":"`+item+`","type":"click"}`)
	if code != http.StatusServiceUnavailable || !bytes.Contains(b, []byte(`"unavailable"`)) {
		t.Fatalf("full buffer: %d %s", code, b)
	}
}

func TestItems(t *testing.T) {
	f := newFixture(t)
	code, b := f.do(t, "PUT", "/v1/items", `{"items":[{"id":"m1","categories":["drama","war"],"popularity":12},{"id":"m2","categories":["comedy"]}]}`)
	if code != http.StatusOK {
		t.Fatalf("put: %d %s", code, b)
	}
	var put struct {
		Upserted       int    `json:"upserted"`
		CatalogVersion uint64 `json:"catalog_version"`
	}
	if err := json.Unmarshal(b, &put); err != nil || put.Upserted != 2 || put.CatalogVersion == 0 {
		t.Fatalf("put answer %s (%v)", b, err)
	}
	code, b = f.do(t, "GET", "/v1/items/m1", "")
	var it catalog.Item
	if err := json.Unmarshal(b, &it); code != 200 || err != nil || it.ID != "m1" || len(it.Categories) != 2 || it.Popularity != 12 {
		t.Fatalf("get: %d %s", code, b)
	}
	// Feedback on an item stored but not yet in the serving snapshot is accepted.
	if code, b := f.do(t, "POST", "/v1/feedback", `{"user_id":"u","item_id":"m2","type":"click"}`); code != http.StatusAccepted {
		t.Fatalf("feedback on new item: %d %s", code, b)
	}
}

// readyBody is the body of /readyz.
type readyBody struct {
	Ready    bool           `json:"ready"`
	Degraded bool           `json:"degraded"`
	Checks   map[string]any `json:"checks"`
}

func (f *fixture) ready(t *testing.T) (int, readyBody) {
	t.Helper()
	code, b := f.do(t, "GET", "/readyz", "")
	var r readyBody
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/readyz: %v: %s", err, b)
	}
	return code, r
}

func TestDegradedWhenRedisFailsAndRecovery(t *testing.T) {
	for _, recovery := range []string{"trial request", "prober"} {
		t.Run(recovery, func(t *testing.T) {
			f := newFixture(t)
			if code, r := f.ready(t); code != http.StatusOK || r.Degraded || r.Checks["redis"] != "ok" {
				t.Fatalf("at start: %d %+v", code, r)
			}
			f.flaky.down.Store(true)
			for i := 0; i < RedisFailures; i++ {
				r := f.recommend(t, `{"user_id":"u"}`)
				if !r.Degraded || len(r.Items) != DefaultK {
					t.Fatalf("want a degraded full slate, got %+v", r)
				}
				if _, rb := f.ready(t); i < RedisFailures-1 && rb.Checks["redis"] != "ok" {
					t.Fatalf("one failed request (%d) must not mark Redis down", i+1)
				}
			}
			// Redis is shared by every replica: this one reports it and stays
			// in rotation, serving degraded answers.
			if code, r := f.ready(t); code != http.StatusOK || !r.Ready || !r.Degraded || r.Checks["redis"] != "unreachable" {
				t.Fatalf("/readyz while Redis is down: %d %+v, want 200, ready, degraded, redis unreachable", code, r)
			}
			for range 20 {
				if r := f.recommend(t, `{"user_id":"u"}`); !r.Degraded {
					t.Fatal("served from Redis while it is down")
				}
			}
			m := f.srv.metrics.degraded
			down, errs := value(t, m.WithLabelValues(causeRedisDown)), value(t, m.WithLabelValues(causeRedisError))
			if errs < RedisFailures || down+errs != RedisFailures+20 || value(t, m.WithLabelValues(causeRedisTimeout)) != 0 {
				t.Errorf("degraded by cause: down %v, error %v; want %d in all, at least %d errors", down, errs, RedisFailures+20, RedisFailures)
			}
			var imp events.Impression
			f.pub.last(t, events.TopicImpressions, &imp)
			if !imp.Degraded {
				t.Fatal("impression of a degraded answer must say so")
			}
			// Recovery without a restart: a trial request (one per
			// trialEvery) or the background prober finds Redis back.
			f.flaky.down.Store(false)
			if recovery == "prober" {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go f.srv.Run(ctx, 10*time.Millisecond)
				waitUntil(t, "the prober to find Redis back", func() bool { _, r := f.ready(t); return r.Checks["redis"] == "ok" })
			} else {
				waitUntil(t, "a trial request to find Redis back", func() bool { return !f.recommend(t, `{"user_id":"u"}`).Degraded })
			}
			if code, r := f.ready(t); code != http.StatusOK || r.Degraded || r.Checks["redis"] != "ok" {
				t.Fatalf("after recovery: %d %+v", code, r)
			}
			if r := f.recommend(t, `{"user_id":"u"}`); r.Degraded {
				t.Fatal("still degraded after recovery")
			}
		})
	}
}

// TestReadinessReportsLocalFailures: a replica without a catalog or with a
// failing local check is out of rotation; a shared check only degrades it.
func TestReadinessReportsLocalFailures(t *testing.T) {
	f := newFixture(t)
	sharedDown, localDown := errors.New("broker unreachable; 12 events spooled"), errors.New("disk full")
	var shared, local atomic.Pointer[error]
	probe := func(p *atomic.Pointer[error]) func(context.Context) error {
		return func(context.Context) error {
			if e := p.Load(); e != nil {
				return *e
			}
			return nil
		}
	}
	f.srv = New(Config{
		Store: f.flaky, Events: f.pub, Feedback: f.pub, Catalog: fixedCatalog{f.snap}, Models: fixedModel{recommend.DefaultModel()},
		Engine: recommend.NewEngine(recommend.Config{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Checks: []Check{{Name: "kafka", Probe: probe(&shared), Shared: true}, {Name: "spool", Probe: probe(&local)}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.srv.Run(ctx, 10*time.Millisecond)
	shared.Store(&sharedDown)
	waitUntil(t, "the shared check to fail", func() bool { _, r := f.ready(t); return r.Checks["kafka"] != "ok" })
	if code, r := f.ready(t); code != http.StatusOK || !r.Degraded || r.Checks["kafka"] != sharedDown.Error() {
		t.Errorf("shared dependency down: %d %+v, want 200 degraded with its state", code, r)
	}
	local.Store(&localDown)
	waitUntil(t, "the local check to fail", func() bool { code, _ := f.ready(t); return code == http.StatusServiceUnavailable })
	if _, r := f.ready(t); r.Ready || r.Checks["spool"] != localDown.Error() {
		t.Errorf("local check failing: %+v", r)
	}
	f.srv.cfg.Catalog = fixedCatalog{}
	local.Store(nil)
	waitUntil(t, "the local check to pass", func() bool { _, r := f.ready(t); return r.Checks["spool"] == "ok" })
	if code, r := f.ready(t); code != http.StatusServiceUnavailable || r.Checks["catalog"] != "empty" {
		t.Errorf("no catalog: %d %+v, want 503", code, r)
	}
}

func TestUserIntentAndMetrics(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A user whose past sessions all explored has a high static propensity.
	st := recommend.UserState{UserID: "n", Stats: recommend.Stats{Clicks: 20, NovelClicks: 20}}
	for range 10 {
		st.Stats.Rho.Fold(intent.SessionEvidenceCap)
	}
	if err := f.store.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	code, b := f.do(t, "GET", "/v1/users/n/intent", "")
	var in IntentResponse
	if err := json.Unmarshal(b, &in); code != 200 || err != nil {
		t.Fatalf("intent: %d %s", code, b)
	}
	if in.UserPropensity < 0.7 || len(in.Probabilities) != 5 || len(in.State) == 0 {
		t.Fatalf("intent %+v", in)
	}
	f.recommend(t, `{"user_id":"n"}`)
	code, b = f.do(t, "GET", "/metrics", "")
	for _, name := range []string{"novarec_http_requests_total", "novarec_http_request_duration_seconds", "novarec_intent_level_total", "novarec_redis_duration_seconds", "novarec_redis_up"} {
		if code != 200 || !bytes.Contains(b, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, _ := f.do(t, "GET", "/healthz", ""); code != 200 {
		t.Errorf("/healthz %d", code)
	}
}

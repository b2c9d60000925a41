package api

// Fuzz targets for the request bodies of POST /v1/recommend, POST
// /v1/feedback and PUT /v1/items, sent through the real gin handler with an
// in-memory store and a publisher that holds every event to the consumers'
// strict decoders. Whatever the body, the answer must be a success or a
// 4xx with the JSON error body, never a 5xx (the store and the publisher
// are healthy, so a 5xx means a panic or a bug); what is accepted must be
// consumable downstream. Run one briefly with
//
//	go test -run '^$' -fuzz '^FuzzRecommendBody$' -fuzztime 10s ./api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// memStore is an in-memory Store: users whose id has an even length have a
// click history (so both cold and warm paths run), items are looked up in
// the catalog, and PUT items are merged into a copy of it and indexed the
// way the catalog cache would, recording any error.
type memStore struct {
	snap *catalog.Snapshot
	warm recommend.UserState

	mu       sync.Mutex
	items    map[string]catalog.Item
	buildErr error
	built    *catalog.Snapshot
}

func newMemStore(t testing.TB, snap *catalog.Snapshot, items []catalog.Item) *memStore {
	t.Helper()
	m := &memStore{snap: snap, items: map[string]catalog.Item{}}
	for _, it := range items {
		m.items[it.ID] = it
	}
	m.warm.UserID = "warm"
	ts := int64(1_700_000_000_000)
	for i := range 30 {
		fb := recommend.Feedback{UserID: "warm", SessionID: "s", ItemID: snap.Item(int32(i * 7 % snap.Len())).ID, Type: recommend.Click, TS: ts + int64(i)*1000}
		recommend.Observe(&m.warm, snap, fb, 0, intent.ModeModel{})
	}
	return m
}

func (m *memStore) Load(_ context.Context, userID, sessionID string) (recommend.UserState, error) {
	if len(userID)%2 == 1 {
		return recommend.UserState{UserID: userID}, nil
	}
	st := cloneState(m.warm)
	st.UserID = userID
	if sessionID != st.Session.ID {
		st.Session = recommend.Session{ID: sessionID}
	}
	return st, nil
}

// cloneState deep-copies st, so a handler can never change the template.
func cloneState(st recommend.UserState) recommend.UserState {
	st.History = slices.Clone(st.History)
	st.Session.CategoryClicks = maps.Clone(st.Session.CategoryClicks)
	st.Session.Shown = slices.Clone(st.Session.Shown)
	return st
}

func (m *memStore) RecordShown(context.Context, string, string, []string) error { return nil }
func (m *memStore) Shown(context.Context, string, string) ([]string, error)     { return nil, nil }

func (m *memStore) PutItems(_ context.Context, items []catalog.Item) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make(map[string]catalog.Item, len(m.items)+len(items))
	for id, it := range m.items {
		all[id] = it
	}
	for _, it := range items {
		all[it.ID] = it // a later duplicate id wins, as with Redis HSET
	}
	list := make([]catalog.Item, 0, len(all))
	for _, it := range all {
		list = append(list, it)
	}
	m.built, m.buildErr = catalog.Build(2, catalog.DefaultDim, list)
	return 2, nil
}

func (m *memStore) GetItem(_ context.Context, id string) (catalog.Item, bool, error) {
	if i, ok := m.snap.Index(id); ok {
		return *m.snap.Item(i), true, nil
	}
	return catalog.Item{}, false, nil
}

func (m *memStore) Ping(context.Context) error { return nil }

// takeBuild returns the result of the last PutItems and forgets it.
func (m *memStore) takeBuild() (*catalog.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.built, m.buildErr
	m.built, m.buildErr = nil, nil
	return s, err
}

// checkingPublisher decodes every event with the consumers' decoders and
// keeps the last one per topic.
type checkingPublisher struct {
	mu   sync.Mutex
	err  error
	last map[string][]byte
}

func (p *checkingPublisher) Publish(topic, _ string, value []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch topic {
	case events.TopicImpressions:
		_, err = events.DecodeImpression(value)
	case events.TopicFeedback:
		_, err = events.DecodeFeedback(value)
	default:
		err = fmt.Errorf("unexpected topic %q", topic)
	}
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("published %s the consumer rejects: %w: %s", topic, err, value)
	}
	if p.last == nil {
		p.last = map[string][]byte{}
	}
	p.last[topic] = value
	return true
}

// Write is the durable path; it checks the event like Publish.
func (p *checkingPublisher) Write(_ context.Context, topic, key string, value []byte) error {
	p.Publish(topic, key, value)
	return nil
}

// take returns the first decode error and the last event of topic since the
// previous call, and forgets them.
func (p *checkingPublisher) take(topic string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, err := p.last[topic], p.err
	p.last, p.err = nil, nil
	return v, err
}

type fuzzServer struct {
	srv   *Server
	store *memStore
	pub   *checkingPublisher
	snap  *catalog.Snapshot
}

func newFuzzServer(t testing.TB) *fuzzServer {
	t.Helper()
	items := catalog.Sample(300, 5)
	snap, err := catalog.Build(1, catalog.DefaultDim, items)
	if err != nil {
		t.Fatal(err)
	}
	f := &fuzzServer{store: newMemStore(t, snap, items), pub: &checkingPublisher{}, snap: snap}
	f.srv = New(Config{
		Store: f.store, Events: f.pub, Feedback: f.pub, Catalog: fixedCatalog{snap}, Models: fixedModel{recommend.DefaultModel()},
		Engine: recommend.NewEngine(recommend.Config{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return f
}

// serve sends body and checks the answer's shape: 2xx with a JSON body, or
// 4xx with exactly the JSON error body. It returns the status and body.
func (f *fuzzServer) serve(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	code, b := w.Code, w.Body.Bytes()
	switch {
	case code >= 200 && code < 300:
		if !json.Valid(b) {
			t.Fatalf("%s %s %q: %d with a body that is not JSON: %q", method, path, body, code, b)
		}
	case code >= 400 && code < 500:
		var eb struct {
			Error *Error `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil || eb.Error == nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %s %q: %d with a body that is not the JSON error shape (%v): %q", method, path, body, code, err, b)
		}
	default:
		t.Fatalf("%s %s %q: status %d (%s); want 2xx or 4xx", method, path, body, code, b)
	}
	return code, b
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// badJSON are seeds every route must answer with 400 or 413.
var badJSON = []string{``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `{"user_id":`, `{}{}`, `{} x`, "\xff\xfe", `{"user_id":"a","user_id":"b"}`,
	`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`}

func FuzzRecommendBody(f *testing.F) {
	all := catalog.Sample(300, 5)
	item := all[0].ID
	ids := make([]string, len(all))
	for i, it := range all {
		ids[i] = it.ID
	}
	everything, _ := json.Marshal(ids)
	addSeeds(f, badJSON...)
	addSeeds(f,
		`{"user_id":"everything-excluded","exclude":`+string(everything)+`}`,
		`{"user_id":"warm","session_id":"s","k":100,"exclude":`+string(everything[:len(everything)/2])+`"]}`,
	)
	addSeeds(f,
		`{"user_id":"alice"}`,
		`{"user_id":"bo","session_id":"s1","k":5}`,
		`{"user_id":"warm","session_id":"s","k":100,"deterministic":true}`,
		`{"user_id":"al","k":1,"exclude":["`+item+`","nope",""],"context":{"device":"tv"}}`,
		`{"user_id":"a","k":0}`, `{"user_id":"a","k":101}`, `{"user_id":"a","k":-1}`, `{"user_id":"a","k":1e3}`, `{"user_id":"a","k":"5"}`,
		`{"user_id":"a","k":9223372036854775808}`, `{"user_id":"a","exclude":null}`, `{"user_id":"a","context":{"x":1}}`,
		`{"user_id":"a\u0000"}`, `{"user_id":"\ud800"}`, `{"user_id":"`+strings.Repeat("é", 70)+`"}`, `{"USER_ID":"a"}`, `{"user_id":"a","extra":1}`,
	)
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, b := fs.serve(t, http.MethodPost, "/v1/recommend", body)
		imp, perr := fs.pub.take(events.TopicImpressions)
		if perr != nil {
			t.Fatal(perr)
		}
		if code != http.StatusOK {
			if imp != nil {
				t.Fatalf("%q: %d, yet an impression was published", body, code)
			}
			return
		}
		var req RecommendRequest
		_ = json.Unmarshal(body, &req)
		var r RecommendResponse
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%q: response %q: %v", body, b, err)
		}
		k := DefaultK
		if req.K != nil {
			k = *req.K
		}
		if r.UserID != req.UserID || r.RequestID == "" || len(r.Items) > k {
			t.Fatalf("%q: response %+v", body, r)
		}
		excluded := map[string]bool{}
		for _, id := range req.Exclude {
			excluded[id] = true
		}
		for i, it := range r.Items {
			if it.Position != i || excluded[it.ItemID] || !(it.Propensity > 0 && it.Propensity <= 1) || math.IsNaN(it.Score) {
				t.Fatalf("%q: item %d: %+v", body, i, it)
			}
		}
		if len(r.Items) == 0 {
			// Every candidate was excluded: nothing shown, nothing logged.
			if imp != nil {
				t.Fatalf("%q: empty slate logged as %q", body, imp)
			}
			return
		}
		if imp == nil {
			t.Fatalf("%q: 200 without an impression", body)
		}
		ev, _ := events.DecodeImpression(imp)
		if ev.RequestID != r.RequestID || ev.UserID != r.UserID || len(ev.Items) != len(r.Items) {
			t.Fatalf("%q: impression %+v does not match the response %+v", body, ev, r)
		}
	})
}

func FuzzFeedbackBody(f *testing.F) {
	item := catalog.Sample(300, 5)[3].ID
	addSeeds(f, badJSON...)
	addSeeds(f,
		`{"user_id":"u","item_id":"`+item+`","type":"click"}`,
		`{"request_id":"r1","user_id":"u","session_id":"s","item_id":"`+item+`","type":"rating","value":4.5,"ts":1700000000000}`,
		`{"user_id":"u","item_id":"`+item+`","type":"view","value":-1e308}`,
		`{"user_id":"u","item_id":"`+item+`","type":"skip","ts":-1}`,
		`{"user_id":"u","item_id":"`+item+`","type":"rating"}`,
		`{"user_id":"u","item_id":"`+item+`","type":"love"}`,
		`{"user_id":"u","item_id":"nope","type":"click"}`,
		`{"user_id":"u","item_id":"`+item+`","type":"click","ts":99999999999999}`,
		`{"user_id":"u","item_id":"`+item+`","type":"click","value":1e400}`,
		`{"user_id":"u","item_id":"`+item+`","type":"click","ts":1.5}`,
		`{"user_id":"","item_id":"`+item+`","type":"click"}`,
	)
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, b := fs.serve(t, http.MethodPost, "/v1/feedback", body)
		ev, perr := fs.pub.take(events.TopicFeedback)
		if perr != nil {
			t.Fatal(perr)
		}
		if code != http.StatusAccepted {
			if ev != nil {
				t.Fatalf("%q: %d, yet feedback was published", body, code)
			}
			return
		}
		var req FeedbackRequest
		_ = json.Unmarshal(body, &req)
		var ok struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(b, &ok); err != nil || ok.EventID == "" || ev == nil {
			t.Fatalf("%q: 202 %q, published %q", body, b, ev)
		}
		fb, _ := events.DecodeFeedback(ev)
		if fb.EventID != ok.EventID || fb.UserID != req.UserID || fb.ItemID != req.ItemID || fb.Type != req.Type || fb.SessionID != req.SessionID {
			t.Fatalf("%q: published %+v", body, fb)
		}
	})
}

func FuzzItemsBody(f *testing.F) {
	emb := make([]string, catalog.DefaultDim)
	for i := range emb {
		emb[i] = "0.1"
	}
	addSeeds(f, badJSON...)
	addSeeds(f,
		`{"items":[{"id":"m1","categories":["drama","war"],"popularity":120}]}`,
		`{"items":[{"id":"m2","categories":["comedy"],"embedding":[`+strings.Join(emb, ",")+`]}]}`,
		`{"items":[{"id":"m3","categories":[]},{"id":"m3","categories":["a","b","c"]}]}`,
		`{"items":[{"id":"m4","categories":["x"],"embedding":[`+strings.Repeat("0,", catalog.DefaultDim-1)+`0]}]}`,
		`{"items":[{"id":"m5","categories":["x"],"embedding":[`+strings.Repeat("3e38,", catalog.DefaultDim-1)+`3e38]}]}`,
		`{"items":[{"id":"m6","categories":["x"],"popularity":1.7e308}]}`,
		`{"items":[]}`, `{"items":null}`, `{"items":[{}]}`, `{"items":[{"id":"a","embedding":[1,2]}]}`,
		`{"items":[{"id":"a","popularity":-1}]}`, `{"items":[{"id":"a","embedding":[1e39]}]}`, `{"items":[{"id":"a\n"}]}`,
		`{"items":[{"id":"a","categories":[""]}]}`,
	)
	fs := newFuzzServer(f)
	eng := recommend.NewEngine(recommend.Config{})
	f.Fuzz(func(t *testing.T, body []byte) {
		code, _ := fs.serve(t, http.MethodPut, "/v1/items", body)
		snap, err := fs.store.takeBuild()
		if code != http.StatusOK {
			return
		}
		// What was accepted must index, and the catalog must still serve.
		if err != nil {
			t.Fatalf("%q: accepted, but the catalog cannot be built: %v", body, err)
		}
		var req ItemsRequest
		_ = json.Unmarshal(body, &req)
		seen := map[string]bool{}
		for _, it := range req.Items {
			if _, ok := snap.Index(it.ID); !ok {
				t.Fatalf("%q: item %q missing from the snapshot", body, it.ID)
			}
			if len(it.Categories) == 0 || seen[it.ID] || !(it.Popularity <= catalog.MaxPopularity) {
				t.Fatalf("%q: accepted item %+v breaks the documented rules (categories required, unique ids, bounded popularity)", body, it)
			}
			seen[it.ID] = true
		}
		for _, user := range []recommend.UserState{{UserID: "cold"}, fs.store.warm} {
			for _, det := range []bool{true, false} {
				st := cloneState(user)
				d, err := eng.Decide(recommend.Request{K: 20, Now: 1_700_000_100_000, Deterministic: det}, &st, snap, recommend.DefaultModel(), rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					t.Fatalf("%q: recommend on the new catalog: %v", body, err)
				}
				for _, it := range d.Items {
					if math.IsNaN(it.Score) || math.IsInf(it.Score, 0) || !(it.Propensity > 0 && it.Propensity <= 1) {
						t.Fatalf("%q: recommend on the new catalog: item %+v", body, it)
					}
				}
			}
		}
	})
}

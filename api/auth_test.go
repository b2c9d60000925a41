package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/internal/logtest"
	"github.com/novarec/novarec/playground"
)

func keyring(t *testing.T, opts apikey.Options) *apikey.Keyring {
	t.Helper()
	k, err := apikey.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// routeScopes is the documented scope of every route (docs/security.md);
// "" = no key needed.
var routeScopes = map[string]apikey.Scope{
	"POST /v1/recommend":                apikey.Recommend,
	"POST /v1/feedback":                 apikey.Feedback,
	"PUT /v1/items":                     apikey.Catalog,
	"GET /v1/items/:id":                 apikey.Catalog,
	"GET /v1/users/:id/intent":          apikey.IntentRead,
	"POST /v1/admin/experiments/reload": apikey.Admin,
	"GET /v1/admin/experiments":         apikey.Admin,
	"GET /v1/experiments/:name/report":  apikey.Admin,
	"GET /v1/policy":                    apikey.Recommend,
	"GET /healthz":                      "",
	"GET /readyz":                       "",
	"GET /metrics":                      "",
	"GET /openapi.json":                 "",
	"GET /":                             "",
	"GET /playground/*file":             "",
}

// send calls the server with a key in the given header ("" = none).
func (f *fixture) send(t *testing.T, method, path, body, header, key string) (int, http.Header, Error) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(header, key)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	var e errorBody
	if w.Code >= 300 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %s: %d with a body that is not the JSON error: %s", method, path, w.Code, w.Body)
		}
	}
	return w.Code, w.Header(), e.Error
}

// TestScopesAllowExactlyTheirRoutes calls every route the server has with a
// key of each scope, and with none: a key passes exactly on the routes of
// its scope (403 elsewhere), no key is 401, and health and metrics need no
// key. A route added without a scope in routeScopes fails the test.
func TestScopesAllowExactlyTheirRoutes(t *testing.T) {
	f := newFixture(t)
	secrets := map[apikey.Scope]string{}
	var keys []apikey.Key
	for _, sc := range apikey.Scopes {
		secret, k := apikey.Generate("only-"+strings.ReplaceAll(string(sc), ":", "-"), sc)
		secrets[sc] = secret
		keys = append(keys, k)
	}
	cfg := f.srv.cfg
	cfg.Keys = keyring(t, apikey.Options{Extra: keys, Limits: apikey.Limits{}})
	cfg.Playground, cfg.Registry = playground.Handler(), nil // every route there is
	f.srv = New(cfg)

	var routes []string
	for _, r := range f.srv.handler.(*gin.Engine).Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	for route := range routeScopes {
		if !slices.Contains(routes, route) {
			t.Errorf("%s is documented but not served", route)
		}
	}
	fill := strings.NewReplacer(":id", "scope-test", ":name", "nov-weights", "*file", "app.js")
	for _, route := range routes {
		want, ok := routeScopes[route]
		if !ok {
			t.Errorf("route %s has no documented scope: add it to routeScopes and docs/security.md", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		path = fill.Replace(path)
		for _, sc := range append([]apikey.Scope{""}, apikey.Scopes...) {
			for _, header := range []string{"Authorization", "X-API-Key"} {
				key := secrets[sc]
				if header == "Authorization" && sc != "" {
					key = "Bearer " + key
				}
				if sc == "" {
					header = ""
				}
				code, _, e := f.send(t, method, path, "{}", header, key)
				denied := code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusTooManyRequests
				switch {
				case want == "" && denied:
					t.Errorf("%s with key %q via %s: %d %+v; it needs no key", route, sc, header, code, e)
				case want != "" && sc == want && denied:
					t.Errorf("%s with a %s key via %s: %d %+v, want it admitted", route, sc, header, code, e)
				case want != "" && sc == "" && (code != http.StatusUnauthorized || e.Code != "unauthorized"):
					t.Errorf("%s without a key: %d %+v, want 401 unauthorized", route, code, e)
				case want != "" && sc != "" && sc != want && (code != http.StatusForbidden || e.Code != "forbidden"):
					t.Errorf("%s with a %s key: %d %+v, want 403 forbidden", route, sc, code, e)
				}
			}
		}
	}
}

// TestKeyRefused checks how a request is refused, per documented case.
func TestKeyRefused(t *testing.T) {
	f := newFixture(t)
	secret, k := apikey.Generate("frontend", apikey.Recommend, apikey.Feedback)
	f.srv.cfg.Keys = keyring(t, apikey.Options{Extra: []apikey.Key{k}})
	body := `{"user_id":"u1"}`
	for _, tc := range []struct {
		name, header, value string
		code                int
		errCode, field      string
	}{
		{"no key", "", "", 401, "unauthorized", "Authorization"},
		{"empty bearer", "Authorization", "Bearer ", 401, "unauthorized", "Authorization"},
		{"basic scheme", "Authorization", "Basic " + secret, 401, "unauthorized", "Authorization"},
		{"wrong key", "Authorization", "Bearer frontend.0000", 401, "unauthorized", "Authorization"},
		{"wrong key in X-API-Key", "X-API-Key", "frontend.0000", 401, "unauthorized", "X-API-Key"},
		{"key with a character more", "Authorization", "Bearer " + secret + "0", 401, "unauthorized", "Authorization"},
		{"oversized key", "X-API-Key", strings.Repeat("k", apikey.MaxKeyLen+1), 401, "unauthorized", "X-API-Key"},
		{"bearer", "Authorization", "Bearer " + secret, 200, "", ""},
		{"scheme in capitals", "Authorization", "BEARER " + secret, 200, "", ""},
		{"X-API-Key", "X-API-Key", secret, 200, "", ""},
	} {
		code, h, e := f.send(t, "POST", "/v1/recommend", body, tc.header, tc.value)
		if code != tc.code || e.Code != tc.errCode || e.Field != tc.field {
			t.Errorf("%s: %d %+v, want %d %s field %q", tc.name, code, e, tc.code, tc.errCode, tc.field)
		}
		if code == 401 && h.Get("WWW-Authenticate") != `Bearer realm="novarec"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, h.Get("WWW-Authenticate"))
		}
		if strings.Contains(e.Message, secret) {
			t.Errorf("%s: the error echoes the key", tc.name)
		}
	}
	// A valid key on a route of another scope.
	code, _, e := f.send(t, "PUT", "/v1/items", `{"items":[]}`, "X-API-Key", secret)
	if code != 403 || e.Code != "forbidden" || !strings.Contains(e.Message, "catalog") {
		t.Errorf("catalog write with a frontend key: %d %+v", code, e)
	}
	// No key holds admin: the admin routes are off, as they were without a token.
	if code, _, e := f.send(t, "GET", "/v1/admin/experiments", "", "X-API-Key", secret); code != 403 || e.Code != "admin_disabled" {
		t.Errorf("admin route with no admin key configured: %d %+v", code, e)
	}
}

// TestRateLimitAnswer checks the 429: Retry-After, the JSON error, and that
// only the key whose bucket is empty is refused.
func TestRateLimitAnswer(t *testing.T) {
	f := newFixture(t)
	a, ka := apikey.Generate("client-a", apikey.Recommend)
	b, kb := apikey.Generate("client-b", apikey.Recommend)
	now := time.Unix(1_800_000_000, 0)
	f.srv.cfg.Keys = keyring(t, apikey.Options{Extra: []apikey.Key{ka, kb}, Now: func() time.Time { return now },
		Limits: apikey.Limits{apikey.Recommend: {Rate: 0.25, Burst: 2}}})
	body := `{"user_id":"u1","k":3}`
	for i := 0; i < 2; i++ {
		if code, _, e := f.send(t, "POST", "/v1/recommend", body, "X-API-Key", a); code != 200 {
			t.Fatalf("request %d within the burst: %d %+v", i, code, e)
		}
	}
	code, h, e := f.send(t, "POST", "/v1/recommend", body, "X-API-Key", a)
	// One token every 4 s: the next is 4 s away.
	if code != http.StatusTooManyRequests || e.Code != "rate_limited" || h.Get("Retry-After") != "4" {
		t.Fatalf("over the burst: %d Retry-After %q %+v", code, h.Get("Retry-After"), e)
	}
	if code, _, _ := f.send(t, "POST", "/v1/recommend", body, "X-API-Key", b); code != 200 {
		t.Fatalf("another key was refused with the first: %d", code)
	}
	now = now.Add(4 * time.Second)
	if code, _, e := f.send(t, "POST", "/v1/recommend", body, "X-API-Key", a); code != 200 {
		t.Fatalf("after Retry-After: %d %+v", code, e)
	}
}

// TestAuditLines checks that catalog writes and experiment reloads, refused
// ones included, leave one audit line each with the key id, route, counts
// and outcome, and that no log line carries a key or a user id.
func TestAuditLines(t *testing.T) {
	f := newFixture(t)
	logs, log := logtest.New()
	f.srv.log = log
	pipeline, kp := apikey.Generate("pipeline", apikey.Catalog)
	frontend, kf := apikey.Generate("frontend", apikey.Recommend, apikey.Feedback)
	operator, ko := apikey.Generate("operator", apikey.Admin)
	f.srv.cfg.Keys = keyring(t, apikey.Options{Extra: []apikey.Key{kp, kf, ko}, Logger: f.srv.log})
	f.srv.cfg.Experiments, _ = openExperiment(t, experimentYAML)

	const user = "audit-user-7f3a"
	items := `{"items":[{"id":"a1","categories":["drama"]},{"id":"a2","categories":["war"]},{"id":"a3","categories":["news"]}]}`
	calls := []struct {
		method, path, body, key string
		want                    map[string]any
	}{
		{"PUT", "/v1/items", items, pipeline, map[string]any{"action": "catalog.put", "key_id": "pipeline", "outcome": "ok", "items": 3.0}},
		{"PUT", "/v1/items", items, frontend, map[string]any{"action": "catalog.put", "key_id": "frontend", "outcome": "forbidden"}},
		{"PUT", "/v1/items", items, "", map[string]any{"action": "catalog.put", "key_id": "none", "outcome": "unauthorized"}},
		{"PUT", "/v1/items", `{"items":[{"id":"a1","categories":["x"],"embedding":[1,2]}]}`, pipeline, map[string]any{"action": "catalog.put", "key_id": "pipeline", "outcome": "invalid", "items": 1.0}},
		{"POST", "/v1/recommend", `{"user_id":"` + user + `"}`, frontend, nil},
		{"POST", "/v1/feedback", `{"user_id":"` + user + `","item_id":"a1","type":"click"}`, frontend, nil},
		{"POST", "/v1/admin/experiments/reload", "", operator, map[string]any{"action": "experiments.reload", "key_id": "operator", "outcome": "ok", "experiment": "nov-weights", "variants": 2.0}},
	}
	var want []map[string]any
	for _, c := range calls {
		header := "X-API-Key"
		if c.key == "" {
			header = ""
		}
		f.send(t, c.method, c.path, c.body, header, c.key)
		if c.want != nil {
			c.want["route"] = c.method + " " + c.path
			want = append(want, c.want)
		}
	}
	lines := logs.Lines(t, "audit")
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("audit line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if lines[i]["level"] != "INFO" {
			t.Errorf("audit line %d at %v", i, lines[i]["level"])
		}
	}
	if v, _ := lines[0]["catalog_version"].(float64); v < 1 {
		t.Errorf("catalog write without its catalog_version: %v", lines[0])
	}
	all := logs.String()
	for _, secret := range []string{pipeline, frontend, operator, user} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds %q:\n%s", secret, all)
		}
	}
}

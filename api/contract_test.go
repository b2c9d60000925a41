package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"github.com/novarec/novarec/intent"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gin-gonic/gin"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/playground"
	"github.com/novarec/novarec/recommend"
)

// The contract tests check the real handlers against api/openapi.yaml with
// kin-openapi: the document is valid OpenAPI 3.1, every route is documented
// and every documented route exists, every request example is accepted,
// and every documented status of every operation is returned by some
// request, its body valid against the documented schema. Response schemas
// forbid undocumented fields (additionalProperties: false), so a field added
// to a handler and not to the contract fails here.

func init() {
	// The playground's assets are validated like the JSON answers; kin
	// decodes only the types it knows.
	for _, ct := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

func loadContract(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("api/openapi.yaml is not valid OpenAPI: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("api/openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	// Without servers the router matches requests by path alone
	// (httptest requests carry no scheme and host).
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

func TestContractServedAsJSON(t *testing.T) {
	f := newFixture(t)
	code, b := f.do(t, http.MethodGet, "/openapi.json", "")
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", code, b)
	}
	fromJSON, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := openapi3.NewLoader().LoadFromData(OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(fromJSON)
	j2, _ := json.Marshal(fromYAML)
	if !bytes.Equal(j1, j2) {
		t.Fatal("/openapi.json differs from api/openapi.yaml")
	}
}

// TestContractRoutes checks that the router and the document list the same
// operations.
func TestContractRoutes(t *testing.T) {
	doc, _ := loadContract(t)
	f := newContractFixture(t)
	var served, documented []string
	for _, r := range f.srv.handler.(*gin.Engine).Routes() {
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served = append(served, r.Method+" "+p)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("routes and contract differ\nserved:     %v\ndocumented: %v", served, documented)
	}
}

// contractFixture is a server with every optional part configured: an
// experiment, API keys, reports and the playground.
type contractFixture struct {
	*fixture
	file *experiment.File
	base Config
	// narrow holds, per scope, a key of another scope only (for 403s).
	narrow map[apikey.Scope]string
}

// contractToken is the fixture's key of every scope; calls send it unless
// they say otherwise.
const contractToken = "contract-token"

// allScopes is a keyring holding contractToken with every scope but those
// left out, and narrow keys of one scope each.
func allScopes(t *testing.T, opts apikey.Options, leaveOut ...apikey.Scope) (*apikey.Keyring, map[apikey.Scope]string) {
	t.Helper()
	var scopes []apikey.Scope
	for _, sc := range apikey.Scopes {
		if !slices.Contains(leaveOut, sc) {
			scopes = append(scopes, sc)
		}
	}
	opts.Extra = append(opts.Extra, apikey.NewKey("contract", contractToken, scopes...))
	narrow := map[apikey.Scope]string{}
	for i, sc := range apikey.Scopes {
		other := apikey.Scopes[(i+1)%len(apikey.Scopes)]
		secret, k := apikey.Generate("not-"+strings.ReplaceAll(string(sc), ":", "-"), other)
		narrow[sc] = secret
		opts.Extra = append(opts.Extra, k)
	}
	return keyring(t, opts), narrow
}

func newContractFixture(t *testing.T) *contractFixture {
	t.Helper()
	f := newFixture(t)
	file, _ := openExperiment(t, experimentYAML)
	cf := &contractFixture{fixture: f, file: file}
	cf.base = f.srv.cfg
	cf.base.Experiments, cf.base.Reports = file, f.store
	cf.base.Keys, cf.narrow = allScopes(t, apikey.Options{})
	cf.base.Playground = playground.Handler()
	cf.base.Registry = nil
	cf.srv = New(cf.base)
	if _, err := f.store.PutItems(t.Context(), catalog.Sample(10, 3)); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutAggregates(t.Context(), "nov-weights", "nov3", experiment.Aggregates{Users: 10, Impressions: 40, ClickedImpressions: 8, Clicks: 9, NovelClicks: 4}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutAggregates(t.Context(), "nov-weights", "control", experiment.Aggregates{Users: 12, Impressions: 50, ClickedImpressions: 7, Clicks: 7, NovelClicks: 1}); err != nil {
		t.Fatal(err)
	}
	return cf
}

// variant returns a server configured like the fixture's but changed by mod.
func (cf *contractFixture) variant(mod func(*Config)) *Server {
	cfg := cf.base
	cfg.Registry = nil // each server registers its own metrics
	mod(&cfg)
	return New(cfg)
}

// downStore fails every call, like an unreachable Redis.
type downStore struct{}

func (downStore) Load(context.Context, string, string) (recommend.UserState, error) {
	return recommend.UserState{}, errDown
}
func (downStore) Shown(context.Context, string, string) ([]string, error)     { return nil, errDown }
func (downStore) RecordShown(context.Context, string, string, []string) error { return errDown }
func (downStore) PutItems(context.Context, []catalog.Item) (uint64, error)    { return 0, errDown }
func (downStore) GetItem(context.Context, string) (catalog.Item, bool, error) {
	return catalog.Item{}, false, errDown
}
func (downStore) Ping(context.Context) error { return errDown }

type downReports struct{}

func (downReports) Report(context.Context, *experiment.Config) (experiment.Report, error) {
	return experiment.Report{}, errDown
}

type call struct {
	name   string
	srv    *Server // nil: the fixture's
	method string
	path   string
	body   string
	// token is the key sent (default contractToken); anon sends none.
	token string
	anon  bool
	// contentType is the body's (default application/json).
	contentType string
	// stalls makes the body stop half-way as a client past the body
	// timeout would: the read fails with os.ErrDeadlineExceeded.
	stalls bool
	// invalid marks requests that break the contract on purpose; the
	// others must pass its request validation.
	invalid bool
	want    int
}

func TestContract(t *testing.T) {
	doc, router := loadContract(t)
	cf := newContractFixture(t)
	down := cf.variant(func(c *Config) { c.Store, c.Reports = downStore{}, downReports{} })
	empty := cf.variant(func(c *Config) { c.Catalog = fixedCatalog{nil} })
	fullPub := &publisher{}
	fullPub.full.Store(true)
	full := cf.variant(func(c *Config) { c.Events, c.Feedback = fullPub, fullPub })
	noAdmin := cf.variant(func(c *Config) { c.Keys, _ = allScopes(t, apikey.Options{}, apikey.Admin) })
	// Every bucket of every key empty: rate 1/1000 s, burst 0.
	limits := apikey.Limits{}
	for _, sc := range apikey.Scopes {
		limits[sc] = apikey.Limit{Rate: 0.001, Burst: 0}
	}
	limited := cf.variant(func(c *Config) { c.Keys, _ = allScopes(t, apikey.Options{Limits: limits}) })
	noExp := cf.variant(func(c *Config) { c.Experiments = nil })
	// An experiments file edited into an invalid one after it was loaded.
	badFile, badPath := openExperiment(t, experimentYAML)
	if err := os.WriteFile(badPath, []byte(strings.Replace(experimentYAML, "share: 0.5", "share: 0.7", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	badReload := cf.variant(func(c *Config) { c.Experiments = badFile })
	tooBig := `{"user_id":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tooBigItems := `{"items":"` + strings.Repeat("x", MaxItemsBodyBytes) + `"}`

	calls := []call{
		{name: "recommend with exclude", method: "POST", path: "/v1/recommend", body: `{"user_id":"u1","session_id":"s1","k":3,"exclude":["item-1"]}`, want: 200},
		{name: "recommend degraded", srv: down, method: "POST", path: "/v1/recommend", body: `{"user_id":"u1"}`, want: 200},
		{name: "recommend k out of range", method: "POST", path: "/v1/recommend", body: `{"user_id":"u1","k":0}`, invalid: true, want: 400},
		{name: "recommend unknown field", method: "POST", path: "/v1/recommend", body: `{"user_id":"u1","kk":3}`, invalid: true, want: 400},
		{name: "recommend too large", method: "POST", path: "/v1/recommend", body: tooBig, invalid: true, want: 413},
		{name: "recommend before a catalog", srv: empty, method: "POST", path: "/v1/recommend", body: `{"user_id":"u1"}`, want: 503},

		{name: "feedback unknown item", method: "POST", path: "/v1/feedback", body: `{"user_id":"u1","item_id":"nope","type":"click"}`, want: 404},
		{name: "feedback bad type", method: "POST", path: "/v1/feedback", body: `{"user_id":"u1","item_id":"item-1","type":"like"}`, invalid: true, want: 400},
		{name: "feedback too large", method: "POST", path: "/v1/feedback", body: tooBig, invalid: true, want: 413},
		{name: "feedback buffer full", srv: full, method: "POST", path: "/v1/feedback", body: `{"user_id":"u1","item_id":"item-1","type":"click"}`, want: 503},

		{name: "items empty batch", method: "PUT", path: "/v1/items", body: `{"items":[]}`, invalid: true, want: 400},
		{name: "items too large", method: "PUT", path: "/v1/items", body: tooBigItems, invalid: true, want: 413},
		{name: "items store down", srv: down, method: "PUT", path: "/v1/items", body: `{"items":[{"id":"m2","categories":["drama"]}]}`, want: 503},
		{name: "get item", method: "GET", path: "/v1/items/item-3", want: 200},
		{name: "get item too long", method: "GET", path: "/v1/items/" + strings.Repeat("x", 200), invalid: true, want: 400},
		{name: "get unknown item", method: "GET", path: "/v1/items/nope", want: 404},
		{name: "get item store down, from the served snapshot", srv: down, method: "GET", path: "/v1/items/item-3", want: 200},
		{name: "get item store down, not in the snapshot", srv: down, method: "GET", path: "/v1/items/added-since", want: 503},

		{name: "intent", method: "GET", path: "/v1/users/u1/intent?session_id=s1", want: 200},
		{name: "intent bad session", method: "GET", path: "/v1/users/u1/intent?session_id=" + strings.Repeat("s", 200), invalid: true, want: 400},
		{name: "intent store down", srv: down, method: "GET", path: "/v1/users/u1/intent", want: 503},

		{name: "policy", method: "GET", path: "/v1/policy", want: 200},
		{name: "policy of a variant", method: "GET", path: "/v1/policy?variant=nov3&k=20", want: 200},
		{name: "policy bad k", method: "GET", path: "/v1/policy?k=0", invalid: true, want: 400},
		{name: "policy unknown variant", method: "GET", path: "/v1/policy?variant=nope", want: 404},
		{name: "policy without model", srv: cf.variant(func(c *Config) { c.Models = fixedModel{nil} }), method: "GET", path: "/v1/policy", want: 503},

		{name: "experiment", method: "GET", path: "/v1/admin/experiments", token: contractToken, want: 200},
		{name: "experiment no token", method: "GET", path: "/v1/admin/experiments", anon: true, want: 401},
		{name: "experiment admin off", srv: noAdmin, method: "GET", path: "/v1/admin/experiments", token: contractToken, want: 403},
		{name: "experiment none", srv: noExp, method: "GET", path: "/v1/admin/experiments", token: contractToken, want: 404},
		{name: "reload", method: "POST", path: "/v1/admin/experiments/reload", token: contractToken, want: 200},
		{name: "reload wrong token", method: "POST", path: "/v1/admin/experiments/reload", token: "nope", want: 401},
		{name: "reload admin off", srv: noAdmin, method: "POST", path: "/v1/admin/experiments/reload", token: contractToken, want: 403},
		{name: "reload invalid file", srv: badReload, method: "POST", path: "/v1/admin/experiments/reload", token: contractToken, want: 400},
		{name: "reload no file", srv: noExp, method: "POST", path: "/v1/admin/experiments/reload", token: contractToken, want: 404},
		{name: "report", method: "GET", path: "/v1/experiments/nov-weights/report", token: contractToken, want: 200},
		{name: "report no token", method: "GET", path: "/v1/experiments/nov-weights/report", anon: true, want: 401},
		{name: "report admin off", srv: noAdmin, method: "GET", path: "/v1/experiments/nov-weights/report", token: contractToken, want: 403},
		{name: "report unknown", method: "GET", path: "/v1/experiments/other/report", token: contractToken, want: 404},
		{name: "report store down", srv: down, method: "GET", path: "/v1/experiments/nov-weights/report", token: contractToken, want: 503},

		{name: "healthz", method: "GET", path: "/healthz", want: 200},
		{name: "readyz", method: "GET", path: "/readyz", want: 200},
		{name: "readyz with Redis down", srv: down, method: "GET", path: "/readyz", want: 200},
		{name: "readyz without catalog", srv: empty, method: "GET", path: "/readyz", want: 503},
		{name: "metrics", method: "GET", path: "/metrics", want: 200},
		{name: "openapi", method: "GET", path: "/openapi.json", want: 200},
		{name: "playground", method: "GET", path: "/", want: 200},
		{name: "playground script", method: "GET", path: "/playground/app.js", want: 200},
		{name: "playground style", method: "GET", path: "/playground/style.css", want: 200},
		{name: "playground missing asset", method: "GET", path: "/playground/nope.js", want: 404},
	}
	// Every request example of the contract is a call that must succeed.
	fill := strings.NewReplacer("{id}", "item-3", "{name}", "nov-weights")
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			example := ""
			if op.RequestBody != nil {
				for ct, mt := range op.RequestBody.Value.Content {
					if len(mt.Examples) == 0 {
						t.Errorf("%s %s: no request example for %s", method, path, ct)
					}
					for name, ex := range mt.Examples {
						b, err := json.Marshal(ex.Value.Value)
						if err != nil {
							t.Fatal(err)
						}
						example = string(b)
						calls = append(calls, call{name: fmt.Sprintf("example %s of %s", name, op.OperationID), method: method, path: path, body: example, want: successOf(op)})
					}
				}
				// The body rules of issue 12, on every route that takes one.
				calls = append(calls,
					call{name: op.OperationID + " as text/plain", method: method, path: fill.Replace(path), body: example, contentType: "text/plain", invalid: true, want: 415},
					call{name: op.OperationID + " body stalls", method: method, path: fill.Replace(path), body: example, stalls: true, invalid: true, want: 408})
			}
			// The key rules of issue 16, on every route that needs a key;
			// the key is checked before the body is read.
			if op.Security == nil || len(*op.Security) == 0 {
				continue
			}
			var scope apikey.Scope
			for _, req := range *op.Security {
				for _, scopes := range req {
					scope = apikey.Scope(scopes[0])
				}
			}
			calls = append(calls,
				call{name: op.OperationID + " without a key", method: method, path: fill.Replace(path), body: example, anon: true, want: 401},
				call{name: op.OperationID + " with a key of another scope", method: method, path: fill.Replace(path), body: example, token: cf.narrow[scope], want: 403},
				call{name: op.OperationID + " over the rate limit", srv: limited, method: method, path: fill.Replace(path), body: example, want: 429})
		}
	}
	// The readiness probe must have run for /readyz to answer ready.
	for _, s := range []*Server{cf.srv, empty, down} {
		s.probe(t.Context())
	}

	covered := map[string]bool{}
	for _, c := range calls {
		srv := c.srv
		if srv == nil {
			srv = cf.srv
		}
		req := httptest.NewRequest(c.method, c.path, c.reader())
		if c.body != "" {
			req.Header.Set("Content-Type", cmp.Or(c.contentType, "application/json"))
		}
		if !c.anon {
			req.Header.Set("Authorization", "Bearer "+cmp.Or(c.token, contractToken))
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: %s %s is not in the contract: %v", c.name, c.method, c.path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		}
		if err := openapi3filter.ValidateRequest(t.Context(), in); (err != nil) != c.invalid {
			t.Errorf("%s: request validation: %v (invalid on purpose: %v)", c.name, err, c.invalid)
		}
		// ValidateRequest consumed the body; serve a fresh copy.
		req.Body = io.NopCloser(c.reader())
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != c.want {
			t.Errorf("%s: status %d, want %d: %.300s", c.name, w.Code, c.want, w.Body.Bytes())
			continue
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: w.Code, Header: w.Header(),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		out.SetBodyBytes(w.Body.Bytes())
		if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
			t.Errorf("%s: %d response breaks the contract: %v\n%.500s", c.name, w.Code, err, w.Body.Bytes())
		}
		covered[fmt.Sprintf("%s %d", route.Operation.OperationID, w.Code)] = true
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if !covered[op.OperationID+" "+status] {
					t.Errorf("%s %s: documented status %s is never returned by the calls of this test", method, path, status)
				}
			}
		}
	}
}

// reader is the call's body as the server reads it.
func (c call) reader() io.Reader {
	if c.stalls {
		return io.MultiReader(strings.NewReader(c.body[:len(c.body)/2]), iotest.ErrReader(os.ErrDeadlineExceeded))
	}
	return strings.NewReader(c.body)
}

func successOf(op *openapi3.Operation) int {
	for _, code := range []int{200, 201, 202, 204} {
		if op.Responses.Status(code) != nil {
			return code
		}
	}
	return 200
}

// TestContractCatchesViolations makes sure the validation above has teeth:
// a body with a missing, a mistyped or an undocumented field fails.
func TestContractCatchesViolations(t *testing.T) {
	_, router := loadContract(t)
	good := `{"request_id":"r","user_id":"u","variant":"default","model_version":"prior","catalog_version":1,` +
		`"intent":{"user_propensity":0.2,"session_propensity":0.3,"level":1,"probability":0.5},` +
		`"items":[{"item_id":"i","score":0.1,"propensity":0.2,"novel":true,"position":0}]}`
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"valid", good, true},
		{"missing field", strings.Replace(good, `"variant":"default",`, "", 1), false},
		{"wrong type", strings.Replace(good, `"novel":true`, `"novel":"yes"`, 1), false},
		{"undocumented field", strings.Replace(good, `"variant":"default"`, `"variant":"default","extra":1`, 1), false},
		{"out of range", strings.Replace(good, `"propensity":0.2`, `"propensity":1.2`, 1), false},
	} {
		req := httptest.NewRequest("POST", "/v1/recommend", strings.NewReader(`{"user_id":"u"}`))
		req.Header.Set("Content-Type", "application/json")
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 200, Header: http.Header{"Content-Type": {"application/json"}},
		}
		out.SetBodyBytes([]byte(tc.body))
		err = openapi3filter.ValidateResponse(t.Context(), out)
		if (err == nil) != tc.ok {
			t.Errorf("%s: validation error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestPolicy checks the knobs and pools GET /v1/policy reports against the
// served model and engine.
func TestPolicy(t *testing.T) {
	f := newFixture(t)
	code, b := f.do(t, http.MethodGet, "/v1/policy?k=30", "")
	var p PolicyResponse
	if err := json.Unmarshal(b, &p); code != http.StatusOK || err != nil {
		t.Fatalf("%d %s", code, b)
	}
	m := recommend.DefaultModel()
	if p.Variant != DefaultVariant || p.ModelVersion != "prior" || p.K != 30 || len(p.Levels) != m.Intent.K() {
		t.Fatalf("unexpected %+v", p)
	}
	for z, l := range p.Levels {
		want := m.Intent.Levels[z]
		if l.Beta != want.Beta || l.Lambda != want.Lambda || l.NovelShare != want.NovelShare {
			t.Errorf("level %d: %+v, want %+v", z, l, want)
		}
		if n := l.Pools.Familiar + l.Pools.Novel + l.Pools.Popular; n != 120 {
			t.Errorf("level %d: pools of %d candidates for k=30, want max(100, 4k) = 120", z, n)
		}
		if z > 0 && l.Pools.Novel <= p.Levels[z-1].Pools.Novel {
			t.Errorf("level %d asks for no more novel candidates than level %d", z, z-1)
		}
	}
	if p.ColdPools.Familiar != 0 || p.ColdPools.Novel != 0 {
		t.Errorf("a cold user has no taste or history to be novel against: %+v", p.ColdPools)
	}
	if p.Target.Weights["session_novel_preference"] != 3 || p.Target.Bias != -1.05 {
		t.Errorf("target %+v is not the prior's", p.Target)
	}
}

// TestPolicyModeModel checks that GET /v1/policy reports the click model and
// the prior the propensities are read with: the defaults until a fit, then
// what the fit found.
func TestPolicyModeModel(t *testing.T) {
	fit := intent.ModeModel{Base: -1.4, Shift: -1, Contrast: 2.2, Routine: 1.1, ToExploit: 0.1, ToExplore: 0.05, Examine: 0.8, ExamineClick: 0.5}
	belief := recommend.DefaultModel()
	belief.Intent.Mode = fit
	belief.Intent.Prior = intent.Prior{Alpha: 1.5, Beta: 2.5}
	worth := recommend.DefaultModel()
	worth.Intent.Worth = fit
	def := intent.DefaultModeModel()
	for _, tc := range []struct {
		name        string
		model       *recommend.Model
		mode, worth ModeOut
		prior       PriorOut
	}{
		{"defaults", recommend.DefaultModel(), ModeOut{false, def}, ModeOut{false, def}, PriorOut{Alpha: 1, Beta: 3, Mean: 0.25}},
		{"fit read the belief", belief, ModeOut{true, fit}, ModeOut{true, fit}, PriorOut{Alpha: 1.5, Beta: 2.5, Mean: 0.375}},
		{"fit weighs the belief only", worth, ModeOut{false, def}, ModeOut{true, fit}, PriorOut{Alpha: 1, Beta: 3, Mean: 0.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureModel(t, tc.model)
			code, b := f.do(t, http.MethodGet, "/v1/policy", "")
			var p PolicyResponse
			if err := json.Unmarshal(b, &p); code != http.StatusOK || err != nil {
				t.Fatalf("%d %s", code, b)
			}
			if p.Mode != tc.mode || p.Worth != tc.worth {
				t.Errorf("mode %+v, worth %+v; want %+v, %+v", p.Mode, p.Worth, tc.mode, tc.worth)
			}
			if p.Prior != tc.prior {
				t.Errorf("prior %+v, want %+v", p.Prior, tc.prior)
			}
		})
	}
}

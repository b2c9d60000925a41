package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/experiment"
)

const experimentYAML = `name: nov-weights
salt: s1
variants:
  - {name: control, share: 0.5, reward: {w_nov: 0, w_div: 0}}
  - {name: nov3, share: 0.5, reward: {w_nov: 3, w_div: 0.1}}
`

// openExperiment writes an experiments file and opens it.
func openExperiment(t *testing.T, yaml string) (*experiment.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "experiments.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := experiment.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return file, path
}

func TestExperimentsAndAdmin(t *testing.T) {
	f := newFixture(t)
	file, path := openExperiment(t, experimentYAML)
	f.srv.cfg.Experiments = file
	// NOVAREC_ADMIN_TOKEN's compatibility key, next to an open data plane.
	f.srv.cfg.Keys = keyring(t, apikey.Options{Open: true, Extra: []apikey.Key{apikey.NewKey("admin-token", "s3cret", apikey.Admin)}})

	// Every user is served from their variant, stably.
	seen := map[string]int{}
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		r := f.recommend(t, `{"user_id":"`+u+`"}`)
		if want := file.Current().Assign(u).Name; r.Variant != want {
			t.Fatalf("user %s served as %s, assigned %s", u, r.Variant, want)
		}
		seen[r.Variant]++
	}
	if len(seen) != 2 {
		t.Fatalf("8 users all landed in %v", seen)
	}

	call := func(method, path, auth string) (int, []byte) {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, req)
		return w.Code, w.Body.Bytes()
	}
	for _, tc := range []struct {
		name, auth string
		code       int
	}{
		{"missing token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"wrong scheme", "Basic s3cret", http.StatusUnauthorized},
		{"right token", "Bearer s3cret", http.StatusOK},
		{"scheme in lower case", "bearer s3cret", http.StatusOK},
	} {
		if code, b := call("POST", "/v1/admin/experiments/reload", tc.auth); code != tc.code {
			t.Errorf("%s: %d %s", tc.name, code, b)
		}
	}
	// The report comes from the trainers' aggregates in the store.
	f.srv.cfg.Reports = f.store
	if err := f.store.PutAggregates(t.Context(), "nov-weights", "nov3", experiment.Aggregates{Users: 10, Impressions: 40, ClickedImpressions: 8, Clicks: 9}); err != nil {
		t.Fatal(err)
	}
	if code, _ := call("GET", "/v1/experiments/nov-weights/report", ""); code != http.StatusUnauthorized {
		t.Fatalf("report without a token: %d", code)
	}
	code, b := call("GET", "/v1/experiments/nov-weights/report", "Bearer s3cret")
	var rep experiment.Report
	if err := json.Unmarshal(b, &rep); code != http.StatusOK || err != nil || len(rep.Variants) != 2 || rep.Variants[1].Metrics[0].Value != 10 {
		t.Fatalf("report: %d %s", code, b)
	}
	if code, _ := call("GET", "/v1/experiments/other/report", "Bearer s3cret"); code != http.StatusNotFound {
		t.Fatalf("report of an unknown experiment: %d", code)
	}

	// A reload that fails validation is refused with the field and keeps the experiment.
	bad := strings.Replace(experimentYAML, "share: 0.5, reward: {w_nov: 3", "share: 0.7, reward: {w_nov: 3", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, b = call("POST", "/v1/admin/experiments/reload", "Bearer s3cret")
	var body struct{ Error Error }
	if err := json.Unmarshal(b, &body); code != http.StatusBadRequest || err != nil || body.Error.Field != "variants" {
		t.Fatalf("invalid reload: %d %s", code, b)
	}
	if code, _ := call("GET", "/v1/admin/experiments", "Bearer s3cret"); code != http.StatusOK || file.Current().Variants[1].Share != 0.5 {
		t.Fatal("a failed reload replaced the running experiment")
	}
	// Without a key of the admin scope the admin routes are off.
	f.srv.cfg.Keys = keyring(t, apikey.Options{Open: true})
	if code, _ := call("POST", "/v1/admin/experiments/reload", "Bearer "); code != http.StatusForbidden {
		t.Fatalf("admin with no token configured: %d", code)
	}
}

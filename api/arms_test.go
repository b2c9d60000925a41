package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// TestBaselineArm serves an experiment's arm that names a fixed baseline:
// its users get exactly the slate policy.NewFixed's MMR decides by argmax,
// the learned arm's users the learned model, and the policy route and
// readiness name what each arm serves.
func TestBaselineArm(t *testing.T) {
	f := newFixture(t)
	file, _ := openExperiment(t, `name: hrl-vs-mmr
salt: s1
variants:
  - {name: hrl, share: 0.5}
  - {name: mmr, share: 0.5, policy: mmr}
`)
	f.srv.cfg.Experiments = file
	want, err := policy.NewFixed(policy.MMR, recommend.DefaultModel(), f.srv.cfg.Engine.Config())
	if err != nil {
		t.Fatal(err)
	}
	var st recommend.UserState
	ref, err := recommend.NewEngine(want.Engine).Decide(recommend.Request{K: DefaultK, Deterministic: true}, &st, f.snap, want.Model, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refIDs []string
	for _, it := range ref.Items {
		refIDs = append(refIDs, it.ItemID)
	}

	served := map[string]int{}
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		r := f.recommend(t, `{"user_id":"`+u+`"}`)
		served[r.Variant]++
		var ids []string
		for _, it := range r.Items {
			ids = append(ids, it.ItemID)
		}
		switch r.Variant {
		case "mmr":
			if r.ModelVersion != "baseline-mmr" || r.Intent.Level != 0 || !slices.Equal(ids, refIDs) {
				t.Fatalf("user %s of the mmr arm got model %s, level %d, %v; want baseline-mmr, 0, %v", u, r.ModelVersion, r.Intent.Level, ids, refIDs)
			}
		case "hrl":
			if r.ModelVersion != "prior" {
				t.Fatalf("user %s of the learned arm got model %s", u, r.ModelVersion)
			}
		default:
			t.Fatalf("user %s served as %q", u, r.Variant)
		}
	}
	if served["mmr"] == 0 || served["hrl"] == 0 {
		t.Fatalf("10 users all in one arm: %v", served)
	}

	for _, tc := range []struct {
		variant, policy string
		levels          int
		lambda          float64
	}{
		{"mmr", "mmr", 1, policy.MMRLambda},
		{"hrl", "hrl", len(recommend.DefaultModel().Intent.Levels), recommend.DefaultModel().Intent.Levels[0].Lambda},
	} {
		code, b := f.do(t, http.MethodGet, "/v1/policy?variant="+tc.variant, "")
		var p PolicyResponse
		if err := json.Unmarshal(b, &p); code != http.StatusOK || err != nil {
			t.Fatalf("policy of %s: %d %s", tc.variant, code, b)
		}
		if p.Policy != tc.policy || len(p.Levels) != tc.levels || p.Levels[0].Lambda != tc.lambda {
			t.Fatalf("policy of %s: %s with %d levels, λ₀ %v; want %s, %d, %v", tc.variant, p.Policy, len(p.Levels), p.Levels[0].Lambda, tc.policy, tc.levels, tc.lambda)
		}
	}
}

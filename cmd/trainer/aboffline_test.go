package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novarec/novarec/recommend"
)

func TestABOfflineMain(t *testing.T) {
	logPath, catPath := writeReplayLog(t)
	dir := t.TempDir()
	expPath := filepath.Join(dir, "experiments.yaml")
	if err := os.WriteFile(expPath, []byte(`name: weights
salt: s1
control: control
variants:
  - {name: nov3, share: 0.3, reward: {w_nov: 3, w_div: 0.1}}
  - {name: control, share: 0.5, reward: {w_nov: 0, w_div: 0}}
  - {name: nov1, share: 0.2, reward: {w_nov: 1, w_div: 0}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "ab.json")
	var stdout bytes.Buffer
	err := abOfflineMain(context.Background(), []string{"-experiments", expPath, "-log", logPath, "-catalog", catPath,
		"-holdout", "0.5", "-draws", "2", "-json", jsonPath, "-progress=false"}, &stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	out := stdout.String()
	t.Log(out)
	for _, want := range []string{"offline A/B of weights", "evaluated on the last 6 impressions", "control", "nov3", "nov1", "Bonferroni"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var rep abOfflineReport
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Train != 6 || rep.Holdout != 6 || len(rep.Variants) != 3 {
		t.Fatalf("report: train %d, holdout %d, %d variants; want 6, 6, 3", rep.Train, rep.Holdout, len(rep.Variants))
	}
	// Control comes first and has no lift; the others are compared with
	// it on the same impressions, each with its own trained model.
	for i, v := range rep.Variants {
		if (i == 0) != (v.Name == "control") || (v.Lift == nil) != (i == 0) {
			t.Errorf("variant %d: %s, lift %v", i, v.Name, v.Lift)
		}
		if v.Result == nil || v.Result.Evaluated != 6 || v.Trained == nil || v.Trained.Impressions != 6 || v.Model != v.Name+"-offline" {
			t.Errorf("variant %s: result %+v, trained %+v, model %q", v.Name, v.Result, v.Trained, v.Model)
		}
	}
	if rep.Variants[1].Reward.Novelty != 3 || rep.Variants[2].Reward.Novelty != 1 {
		t.Errorf("reward weights %+v, %+v", rep.Variants[1].Reward, rep.Variants[2].Reward)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-log", logPath}, "-experiments"},
		{[]string{"-experiments", expPath}, "-log is required"},
		{[]string{"-experiments", expPath, "-log", logPath, "-models", "s3"}, "-models must be"},
		{[]string{"-experiments", expPath, "-log", logPath, "-models", "redis", "-redis", ""}, "REDIS_ADDR"},
		{[]string{"-experiments", expPath, "-log", logPath, "-holdout", "1"}, "nothing to train on"},
		{[]string{"-experiments", expPath, "-log", logPath, "-holdout", "0"}, "-holdout"},
		{[]string{"-experiments", filepath.Join(dir, "missing.yaml"), "-log", logPath}, "missing.yaml"},
	} {
		err := abOfflineMain(context.Background(), append(c.args, "-progress=false"), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

// -models redis evaluates the live snapshots of each variant.
func TestABOfflineFromRedis(t *testing.T) {
	store, addr, prefix := testStore(t)
	ctx := context.Background()
	logPath, catPath := writeReplayLog(t)
	expPath := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(expPath, []byte("name: w\nsalt: s\nvariants:\n  - {name: control, share: 0.5}\n  - {name: nov3, share: 0.5, reward: {w_nov: 3}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-experiments", expPath, "-log", logPath, "-catalog", catPath, "-models", "redis", "-redis", addr, "-prefix", prefix,
		"-holdout", "1", "-draws", "1", "-progress=false"}
	// nov3 has no snapshot yet.
	m := recommend.DefaultModel()
	m.Version = "control-7"
	b, err := recommend.EncodeModel(m, recommend.SnapshotMeta{Variant: "control"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutModel(ctx, "control", b); err != nil {
		t.Fatal(err)
	}
	if err := abOfflineMain(ctx, args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "nov3") {
		t.Fatalf("err = %v, want one naming the variant without a snapshot", err)
	}

	m.Version = "nov3-3"
	if b, err = recommend.EncodeModel(m, recommend.SnapshotMeta{Variant: "nov3"}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutModel(ctx, "nov3", b); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "ab.json")
	var out bytes.Buffer
	if err := abOfflineMain(ctx, append(args, "-json", jsonPath), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var rep abOfflineReport
	if b, err = os.ReadFile(jsonPath); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Models != "redis" || rep.Holdout != 12 || len(rep.Variants) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []string{"control-7", "nov3-3"} {
		v := rep.Variants[i]
		if v.Model != want || v.Trained != nil || v.Result.Evaluated != 12 {
			t.Errorf("variant %s: model %q, trained %v, evaluated %d; want %s from Redis on all 12 impressions", v.Name, v.Model, v.Trained, v.Result.Evaluated, want)
		}
	}
	// The same model on the same impressions: no difference.
	if l := rep.Variants[1].Lift; l == nil || l.Diff.Value != 0 || l.P != 1 {
		t.Errorf("lift of identical models: %+v", l)
	}
}

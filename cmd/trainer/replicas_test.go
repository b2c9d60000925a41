package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseReplicas(t *testing.T) {
	for _, c := range []struct {
		name, base string
		n          int
		ok, err    bool
	}{
		{"hrl", "hrl", 0, false, false},
		{"hrl/2", "hrl", 2, true, false},
		{"flat/6", "flat", 6, true, false},
		{"hrl/0", "", 0, false, true},
		{"hrl/7", "", 0, false, true},
		{"hrl/two", "", 0, false, true},
	} {
		base, n, ok, err := parseReplicas(c.name)
		if base != c.base || n != c.n || ok != c.ok || (err != nil) != c.err {
			t.Errorf("parseReplicas(%q) = %q, %d, %v, %v", c.name, base, n, ok, err)
		}
	}
}

// Replicas run in both offline loops under the name NAME/N; a policy
// without a model to merge, or a bad count, is refused before the run.
func TestSimulateAndReplayRunReplicas(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "sim.json")
	var out bytes.Buffer
	if err := simulateMain(context.Background(), []string{
		"-users", "30", "-sessions", "3", "-steps", "4", "-items", "400", "-seeds", "2",
		"-policies", "hrl,hrl/2", "-merge-every", "50", "-json", jsonPath, "-progress=false",
	}, &out); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Policies []struct {
			Policy string `json:"policy"`
			Runs   int    `json:"runs"`
		} `json:"policies"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Policies) != 2 || rep.Policies[1].Policy != "hrl/2" || rep.Policies[1].Runs != 2 {
		t.Fatalf("report: %s", b)
	}

	dir := tinyMovieLens(t)
	out.Reset()
	if err := replayMain(context.Background(), []string{"-data", dir, "-policies", "hrl,hrl/2", "-k", "2", "-merge-every", "3", "-progress=false"}, &out, newOfflinePolicy); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "hrl/2") {
		t.Errorf("replay output lacks hrl/2:\n%s", out.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-policies", "a/2"}, "cannot run as replicas"},
		{[]string{"-policies", "hrl/9"}, "replicas after /"},
		{[]string{"-policies", "hrl/2", "-merge-every", "0"}, "-merge-every"},
	} {
		err := replayMain(context.Background(), append(c.args, "-data", dir, "-progress=false"), &bytes.Buffer{}, replayStubs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("replay %v: err = %v, want one mentioning %q", c.args, err, c.want)
		}
	}
	if err := simulateMain(context.Background(), []string{"-policies", "mmr/2,hrl/2", "-users", "5", "-progress=false"}, &bytes.Buffer{}); err != nil {
		t.Errorf("simulate mmr/2: %v", err) // a policy that learns nothing merges nothing
	}
}

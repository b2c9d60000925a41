package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novarec/novarec/replay"
)

func TestSimulateWritesTableJSONAndPNG(t *testing.T) {
	dir := t.TempDir()
	jsonPath, pngPath := filepath.Join(dir, "sim.json"), filepath.Join(dir, "sim.png")
	var out bytes.Buffer
	err := simulateMain(context.Background(), []string{
		"-users", "15", "-sessions", "3", "-steps", "4", "-items", "400", "-seeds", "2",
		"-policies", "popular, hrl", "-json", jsonPath, "-png", pngPath, "-progress=false",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{"clicks/user", "intent AUC", "popular", "hrl", " ± "} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	var rep struct {
		Complete bool `json:"complete"`
		Policies []struct {
			Policy  string                     `json:"policy"`
			Runs    int                        `json:"runs"`
			Metrics map[string]json.RawMessage `json:"metrics"`
		} `json:"policies"`
		Runs           []json.RawMessage `json:"runs"`
		ElapsedSeconds float64           `json:"elapsed_seconds"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Complete || len(rep.Runs) != 4 || len(rep.Policies) != 2 || rep.Policies[1].Runs != 2 || rep.Policies[1].Metrics["session_auc"] == nil {
		t.Fatalf("report: %s", b)
	}
	png, err := os.ReadFile(pngPath)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("no PNG written: %v", err)
	}
}

// -log keeps the first policy's first run as an event log that ope and
// ab-offline read.
func TestSimulateWritesEventLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "sim.jsonl")
	var out bytes.Buffer
	err := simulateMain(context.Background(), []string{
		"-users", "15", "-sessions", "3", "-steps", "4", "-seeds", "1",
		"-policies", "hrl", "-log", logPath, "-log-variant", "control", "-progress=false",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrote "+logPath) {
		t.Errorf("output does not mention the log:\n%s", out.String())
	}
	l, err := replay.LoadEventLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Impressions) == 0 || len(l.Feedback) == 0 || l.Skipped != 0 || l.Impressions[0].Variant != "control" {
		t.Fatalf("log: %d impressions, %d feedback, %d skipped", len(l.Impressions), len(l.Feedback), l.Skipped)
	}
	var ope bytes.Buffer
	if err := opeMain(context.Background(), []string{"-log", logPath, "-policy", "hrl", "-draws", "1", "-progress=false"}, &ope, newOfflinePolicy); err != nil {
		t.Fatalf("ope on the simulated log: %v\n%s", err, ope.String())
	}
}

func TestSimulateRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-policies", "nope", "-users", "2", "-progress=false"},
		{"-seeds", "0"},
		{"-users", "0", "-progress=false"},
		{"extra"},
	} {
		if err := simulateMain(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestSimulateKeepsFinishedRunsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "sim.json")
	if err := simulateMain(ctx, []string{"-users", "5", "-sessions", "2", "-items", "300", "-seeds", "1", "-policies", "mmr", "-json", jsonPath, "-progress=false"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "interrupted: 0 of 1 runs finished") {
		t.Fatalf("output: %s", out.String())
	}
	if _, err := os.Stat(jsonPath); err != nil {
		t.Fatal("no JSON for the partial report")
	}
}

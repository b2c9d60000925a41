package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/replay"
)

// replayStub is a stand-in policy for the subcommands' tests: the k most
// popular items the user has not consumed.
type replayStub struct{ name string }

func (p *replayStub) Name() string { return p.name }

func (p *replayStub) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, _ int64, _ *rand.Rand) (recommend.Decision, error) {
	seen := map[string]bool{}
	for _, h := range st.History {
		seen[h.ItemID] = true
	}
	var d recommend.Decision
	for _, i := range snap.Popular() {
		if len(d.Items) == k {
			break
		}
		if id := snap.Item(i).ID; !seen[id] {
			d.Items = append(d.Items, recommend.Scored{Item: i, ItemID: id, Position: len(d.Items), Propensity: 1})
		}
	}
	return d, nil
}

func (p *replayStub) Learn(*catalog.Snapshot, *recommend.Decision, []string, bool) {}

func replayStubs(name string, _ recommend.RewardWeights) (replay.Policy, error) {
	if name == "unknown" {
		return nil, errors.New("policy: unknown policy \"unknown\"")
	}
	return &replayStub{name: name}, nil
}

// tinyMovieLens writes a MovieLens directory of 4 movies and 12 ratings.
func tinyMovieLens(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	movies := "movieId,title,genres\n1,A (1995),Drama\n2,B (1995),Comedy\n3,C (1996),Drama|Comedy\n4,D (1997),Horror\n"
	var ratings strings.Builder
	ratings.WriteString("userId,movieId,rating,timestamp\n")
	for u := 1; u <= 3; u++ {
		for m := 1; m <= 4; m++ {
			fmt.Fprintf(&ratings, "%d,%d,%.1f,%d\n", u, m, 2.5+float64((u+m)%3), 1000*u+10*m)
		}
	}
	for name, body := range map[string]string{"movies.csv": movies, "ratings.csv": ratings.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReplayMainWritesTableJSONAndChart(t *testing.T) {
	dir := tinyMovieLens(t)
	out := t.TempDir()
	jsonPath, pngPath := filepath.Join(out, "r.json"), filepath.Join(out, "r.png")
	var stdout bytes.Buffer
	err := replayMain(context.Background(), []string{"-data", dir, "-policies", "a,b", "-k", "2", "-buckets", "3",
		"-json", jsonPath, "-png", pngPath, "-progress=false"}, &stdout, replayStubs)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	t.Log(stdout.String())
	for _, want := range []string{"12 events", "HR@2", "NDCG@2", "coverage", "20M events"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var rep replayReport
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[1].Policy != "b" || !rep.Results[0].Complete || rep.Events != 12 || rep.Interrupted {
		t.Fatalf("report %+v", rep)
	}
	if png, err := os.ReadFile(pngPath); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("chart: %v", err)
	}
}

func TestReplayMainRejectsBadArguments(t *testing.T) {
	dir := tinyMovieLens(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-data", filepath.Join(dir, "missing")}, "MovieLens data not found"},
		{[]string{"-data", dir, "-k", "0"}, "-k"},
		{[]string{"-data", dir, "-policies", "a,unknown"}, "unknown policy"},
		{[]string{"-data", dir, "-policies", " , "}, "-policies is empty"},
		{[]string{"-data", dir, "-catalog-mode", "future"}, "catalog mode"},
		{[]string{"-data", dir, "extra"}, "unexpected arguments"},
		{[]string{"-log", filepath.Join(dir, "missing.jsonl")}, "event log"},
	} {
		err := replayMain(context.Background(), append(c.args, "-progress=false"), &bytes.Buffer{}, replayStubs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

func TestReplayMainKeepsWhatFinishedWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var stdout bytes.Buffer
	err := replayMain(ctx, []string{"-data", tinyMovieLens(t), "-json", jsonPath, "-progress=false"}, &stdout, replayStubs)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var rep replayReport
	b, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || len(rep.Results) != 1 || rep.Results[0].Complete {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(stdout.String(), "interrupted") {
		t.Errorf("output does not say it was interrupted:\n%s", stdout.String())
	}
}

// writeReplayLog writes an event log of a few impressions with clicks and
// a catalog JSON for it.
func writeReplayLog(t *testing.T) (logPath, catPath string) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	n := 0
	for u := 0; u < 3; u++ {
		for j := 0; j < 4; j++ {
			n++
			ts := int64(1_000_000 + u*10_000_000 + j*60_000)
			first, second := fmt.Sprintf("m%d", (u+j)%4), fmt.Sprintf("m%d", (u+j+1)%4)
			fmt.Fprintf(&b, `{"schema":1,"event_id":"i%d","request_id":"r%d","user_id":"u%d","session_id":"s%d","variant":"default","model_version":"prior","intent":{"user_propensity":0.1,"session_propensity":0.2,"level":0,"probability":1},"items":[{"item_id":%q,"position":0,"score":1,"propensity":0.5,"novel":false,"novelty":0,"features":[0.3,0,0.5]},{"item_id":%q,"position":1,"score":0.5,"propensity":0.6,"novel":false,"novelty":0,"features":[0.2,0,0.4]}],"ts":%d}`+"\n",
				n, n, u, u, first, second, ts)
			clicked := first
			if j%2 == 1 {
				clicked = second
			}
			fmt.Fprintf(&b, `{"schema":1,"event_id":"f%d","request_id":"r%d","user_id":"u%d","session_id":"s%d","item_id":%q,"type":"click","ts":%d}`+"\n",
				n, n, u, u, clicked, ts+5000)
		}
	}
	b.WriteString("garbage\n")
	logPath = filepath.Join(dir, "events.jsonl")
	catPath = filepath.Join(dir, "items.json")
	cat := `{"items":[{"id":"m0","categories":["a"],"popularity":4},{"id":"m1","categories":["b"],"popularity":3},{"id":"m2","categories":["a","b"],"popularity":2},{"id":"m3","categories":["c"],"popularity":1}]}`
	for p, body := range map[string]string{logPath: b.String(), catPath: cat} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return logPath, catPath
}

func TestReplayMainOnEventLog(t *testing.T) {
	logPath, catPath := writeReplayLog(t)
	var stdout bytes.Buffer
	if err := replayMain(context.Background(), []string{"-log", logPath, "-catalog", catPath, "-policies", "a", "-k", "2", "-progress=false"}, &stdout, replayStubs); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	out := stdout.String()
	t.Log(out)
	if !strings.Contains(out, "12 events (12 engaged)") || !strings.Contains(out, "catalog static") || !strings.Contains(out, "skipped 1 of 25 lines") {
		t.Errorf("unexpected output:\n%s", out)
	}
}

func TestOPEMain(t *testing.T) {
	logPath, catPath := writeReplayLog(t)
	jsonPath := filepath.Join(t.TempDir(), "ope.json")
	var stdout bytes.Buffer
	err := opeMain(context.Background(), []string{"-log", logPath, "-catalog", catPath, "-policy", "a,b", "-draws", "1", "-w-nov", "0", "-json", jsonPath, "-progress=false"}, &stdout, replayStubs)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	t.Log(stdout.String())
	for _, want := range []string{"IPS", "SNIPS", "DR", "logging policy"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var rep opeReport
	b, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Evaluated != 12 || rep.Impressions != 12 {
		t.Fatalf("report %+v", rep)
	}
	// The stub puts first the most popular item the user has not clicked
	// (m0, else m1), so it agrees with the logged top item in 4 of 12
	// impressions — u0's first two (m0, then m1 once m0 is in u0's
	// history), u1's last (m0) and u2's last (m1, u2 having clicked m0) —
	// and of those only u0's first was clicked on top. The log clicked
	// the top item in the 6 impressions with even j.
	r := rep.Results[0]
	if r.Match != 4.0/12 || r.Logged.Value != 0.5 || r.IPS.Value != 1/0.5/12 || r.Clicks != 6 {
		t.Errorf("match %v logged %v IPS %v clicks %d; want 1/3, 0.5, %v, 6", r.Match, r.Logged.Value, r.IPS.Value, r.Clicks, 1/0.5/12)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-log is required"},
		{[]string{"-log", logPath, "-draws", "0"}, "-draws"},
		{[]string{"-log", logPath, "-policy", "unknown"}, "unknown policy"},
	} {
		err := opeMain(context.Background(), append(c.args, "-progress=false"), &bytes.Buffer{}, replayStubs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

// On the shared dataset: a slice through the stand-in, to check the loader
// path the default -data takes.
func TestReplayMainSharedDataset(t *testing.T) {
	dir := filepath.Join("../..", defaultReplayData) // the default is relative to the repository's root
	if _, err := os.Stat(filepath.Join(dir, "ratings.csv")); err != nil {
		t.Skipf("MovieLens ml-latest-small not available at %s (see ../shared/datasets/README.md): %v", dir, err)
	}
	var stdout bytes.Buffer
	if err := replayMain(context.Background(), []string{"-data", dir, "-policies", "a", "-limit", "3000", "-progress=false"}, &stdout, replayStubs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "3000 events") {
		t.Errorf("output:\n%s", stdout.String())
	}
}

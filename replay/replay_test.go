package replay

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

const smallDir = "../../shared/datasets/ml-latest-small"

// smallStream loads ml-latest-small or skips the test.
func smallStream(t testing.TB) *Stream {
	t.Helper()
	if _, err := os.Stat(filepath.Join(smallDir, "ratings.csv")); err != nil {
		t.Skipf("MovieLens ml-latest-small not available at %s (see ../shared/datasets/README.md): %v", smallDir, err)
	}
	s, err := LoadMovieLens(smallDir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handStream is six rating events over five items whose replay by the
// popular test policy is worked out by hand in TestRunHandComputed.
func handStream() *Stream {
	return &Stream{
		Name: "hand",
		Items: []catalog.Item{
			{ID: "a", Categories: []string{"x"}},
			{ID: "b", Categories: []string{"y"}},
			{ID: "c", Categories: []string{"x", "y"}},
			{ID: "d", Categories: []string{"z"}},
			{ID: "e", Categories: []string{"z"}},
		},
		Users: []string{"u1", "u2", "u3"},
		Events: []Event{
			{TS: 1000, User: 0, Item: 0, Type: recommend.Rating, Value: 5}, // u1 a
			{TS: 2000, User: 1, Item: 0, Type: recommend.Rating, Value: 5}, // u2 a
			{TS: 3000, User: 2, Item: 1, Type: recommend.Rating, Value: 5}, // u3 b
			{TS: 4000, User: 0, Item: 2, Type: recommend.Rating, Value: 5}, // u1 c
			{TS: 5000, User: 1, Item: 4, Type: recommend.Rating, Value: 2}, // u2 e (disliked)
			{TS: 6000, User: 2, Item: 3, Type: recommend.Rating, Value: 4}, // u3 d
		},
	}
}

func TestRunHandComputed(t *testing.T) {
	// Catalog "all" with popularity so far, rebuilt before every event, k=2:
	//   u1 a: no popularity yet, ties by id → [a b]: hit at 0
	//   u2 a: a=1 → [a b]: hit at 0
	//   u3 b: a=2 → [a b]: hit at 1
	//   u1 c: u1 has a → [b c]: hit at 1
	//   u2 e: rating 2, not engaged: no test point
	//   u3 d: u3 has b; a=2, c=1, e=1 → [a c]: miss
	p := &popularPolicy{}
	res, err := Run(context.Background(), handStream(), p, Config{K: 2, Catalog: CatalogAll, RefreshEvery: 1, Buckets: 3})
	if err != nil {
		t.Fatal(err)
	}
	ndcg1 := 1 / math.Log2(3)
	if res.TestPoints != 5 || res.Hits != 4 || !res.Complete || res.Events != 6 {
		t.Fatalf("test points %d hits %d complete %v events %d, want 5, 4, true, 6", res.TestPoints, res.Hits, res.Complete, res.Events)
	}
	near(t, "HR", res.HR.Value, 0.8)
	near(t, "NDCG", res.NDCG.Value, (2+2*ndcg1)/5)
	// a, b, c recommended of five items.
	near(t, "coverage", res.Coverage, 0.6)
	// Novelty of the last slate [a c]: 3 users so far; a consumed by 2,
	// c by 1 → (log2(3/2) + log2(3))/2.
	if got := len(res.OverTime); got != 3 {
		t.Fatalf("%d buckets, want 3", got)
	}
	last := res.OverTime[2]
	if last.Start != 4 || last.End != 6 || last.TestPoints != 1 {
		t.Fatalf("last bucket %+v", last)
	}
	near(t, "last slate novelty", last.Novelty, (math.Log2(1.5)+math.Log2(3))/2)
	// ILD of [a c]: Jaccard({x},{x,y}) = 1/2.
	near(t, "last slate ILD", last.ILD, 0.5)

	// Learn follows each Recommend with the click and the session's end:
	// u1 and u3 come back within seconds, so only their last events end
	// a session (u2's e is not a test point).
	want := []learnCall{
		{user: "u1", clicked: []string{"a"}}, {user: "u2", clicked: []string{"a"}},
		{user: "u3", clicked: []string{"b"}}, {user: "u1", clicked: []string{"c"}, ended: true},
		{user: "u3", ended: true},
	}
	if !reflect.DeepEqual(p.calls, want) || p.violations != 0 {
		t.Fatalf("Learn calls %+v (violations %d), want %+v", p.calls, p.violations, want)
	}

	// Every consumption a test point: u2's disliked e too (a miss).
	all, err := Run(context.Background(), handStream(), &popularPolicy{}, Config{K: 2, Catalog: CatalogAll, RefreshEvery: 1, AllEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	if all.TestPoints != 6 || all.Hits != 4 {
		t.Fatalf("AllEvents: %d test points, %d hits; want 6, 4", all.TestPoints, all.Hits)
	}
}

// With the catalog known so far, an item cannot be recommended before its
// first appearance: b is unknown when u3 first rates it.
func TestRunCatalogSeen(t *testing.T) {
	//   u1 a: nothing known yet: miss
	//   u2 a: {a} → [a]: hit
	//   u3 b: {a} (b not yet seen) → [a]: miss
	//   u1 c: {a b}, u1 has a → [b]: miss
	//   u3 d: {a b c e}, u3 has b; a=2, c=1, e=1 → [a c]: miss
	res, err := Run(context.Background(), handStream(), &popularPolicy{}, Config{K: 2, RefreshEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hits != 1 || res.TestPoints != 5 || res.Catalog != "seen" || res.CatalogItems != 5 {
		t.Fatalf("%+v", res)
	}
}

func TestRunRejectsBadStreams(t *testing.T) {
	for name, mutate := range map[string]func(*Stream){
		"out of order":  func(s *Stream) { s.Events[3].TS = 10 },
		"bad item":      func(s *Stream) { s.Events[0].Item = 99 },
		"bad user":      func(s *Stream) { s.Events[0].User = -1 },
		"duplicate ids": func(s *Stream) { s.Items[1].ID = "a" },
		"no events":     func(s *Stream) { s.Events = nil },
		"no items":      func(s *Stream) { s.Items = nil },
	} {
		s := handStream()
		mutate(s)
		if _, err := Run(context.Background(), s, &popularPolicy{}, Config{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	boom := errors.New("boom")
	res, err := Run(context.Background(), handStream(), &popularPolicy{err: boom}, Config{Catalog: CatalogAll})
	if !errors.Is(err, boom) || res == nil || res.Complete {
		t.Fatalf("policy error: %v, %+v", err, res)
	}
}

func TestParseCatalogMode(t *testing.T) {
	for _, m := range []CatalogMode{CatalogSeen, CatalogAll, CatalogStatic} {
		got, err := ParseCatalogMode(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Fatalf("%v: %v %v", m, got, err)
		}
	}
	if _, err := ParseCatalogMode("future"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// A slice of ml-latest-small through the serving engine with a learner:
// metrics in range, and the same numbers on a second run.
func TestRunMovieLensSlice(t *testing.T) {
	s := smallStream(t).Head(2000)
	cfg := Config{K: 10, Seed: 7}
	a, err := Run(context.Background(), s, newEnginePolicy(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d test points: HR@10 %.4f NDCG@10 %.4f novelty %.2f ILD %.3f coverage %.3f, %.0f events/s",
		a.Events, a.TestPoints, a.HR.Value, a.NDCG.Value, a.Novelty.Value, a.ILD.Value, a.Coverage, a.EventsPerSecond)
	if a.Events != 2000 || a.TestPoints == 0 || a.TestPoints > 2000 {
		t.Fatalf("events %d test points %d", a.Events, a.TestPoints)
	}
	for name, v := range map[string]float64{"HR": a.HR.Value, "NDCG": a.NDCG.Value, "ILD": a.ILD.Value, "ILD emb": a.ILDEmbedding.Value, "coverage": a.Coverage} {
		if !(v >= 0 && v <= 1) {
			t.Errorf("%s = %v outside [0,1]", name, v)
		}
	}
	if a.NDCG.Value > a.HR.Value || a.Hits == 0 {
		t.Errorf("NDCG %v > HR %v, or no hit at all (%d)", a.NDCG.Value, a.HR.Value, a.Hits)
	}
	if users := float64(len(s.Users)); !(a.Novelty.Value > 0 && a.Novelty.Value <= math.Log2(users)) {
		t.Errorf("novelty %v outside (0, log2(%v)]", a.Novelty.Value, users)
	}
	n := 0
	for _, b := range a.OverTime {
		n += b.TestPoints
	}
	if len(a.OverTime) != 10 || n != a.TestPoints {
		t.Errorf("%d buckets with %d test points, want 10 with %d", len(a.OverTime), n, a.TestPoints)
	}

	b, err := Run(context.Background(), s, newEnginePolicy(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMetrics(a, b) {
		t.Fatalf("two runs differ:\n%+v\n%+v", a, b)
	}
}

// sameMetrics compares two results without their timings.
func sameMetrics(a, b *Result) bool {
	x, y := *a, *b
	for _, r := range []*Result{&x, &y} {
		r.Seconds, r.RecommendSeconds, r.LearnSeconds, r.CatalogSeconds, r.EventsPerSecond = 0, 0, 0, 0, 0
	}
	return reflect.DeepEqual(x, y)
}

func TestRunStopsWithContext(t *testing.T) {
	s := smallStream(t).Head(3000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	res, err := Run(ctx, s, &popularPolicy{}, Config{Progress: func(done, total int) {
		calls++
		if done >= 1000 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res == nil || res.Complete || res.Events < 1000 || res.Events >= 3000 || res.TestPoints == 0 {
		t.Fatalf("partial result %+v", res)
	}
	if calls < 2 {
		t.Fatalf("progress called %d times", calls)
	}
}

func TestLoadMovieLensLayouts(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	layouts := map[string]map[string]string{
		"csv": {
			"movies.csv":  "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,Heat (1995),Action|Crime\n3,Nothing (2000),(no genres listed)\n",
			"ratings.csv": "userId,movieId,rating,timestamp\n7,2,4.0,300\n5,1,3.0,100\n7,1,5.0,200\n5,3,4.5,300\n",
		},
		"dat": {
			"movies.dat":  "1::Toy Story (1995)::Adventure|Animation\n2::Heat (1995)::Action|Crime\n3::Nothing (2000)::Drama\n",
			"ratings.dat": "7::2::4::300\n5::1::3::100\n7::1::5::200\n5::3::5::300\n",
		},
		"100k": {
			"u.item": "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n" +
				"2|Heat (1995)|01-Jan-1995||http://x|0|1|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0\n" +
				"3|Nothing (2000)|01-Jan-2000||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n",
			"u.data": "7\t2\t4\t300\n5\t1\t3\t100\n7\t1\t5\t200\n5\t3\t5\t300\n",
		},
	}
	for name, files := range layouts {
		t.Run(name, func(t *testing.T) {
			s, err := LoadMovieLens(write(t, files))
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Items) != 3 || len(s.Events) != 4 || len(s.Users) != 2 {
				t.Fatalf("%d items, %d events, %d users", len(s.Items), len(s.Events), len(s.Users))
			}
			first := s.Events[0]
			if s.Users[first.User] != "5" || s.Items[first.Item].ID != "1" || first.TS != 100_000 || first.Type != recommend.Rating || first.Value != 3 {
				t.Fatalf("first event %+v (user %s item %s)", first, s.Users[first.User], s.Items[first.Item].ID)
			}
			for i := 1; i < len(s.Events); i++ {
				if s.Events[i].TS < s.Events[i-1].TS {
					t.Fatal("events out of time order")
				}
			}
			if got := s.Items[1].Categories; len(got) != 2 {
				t.Fatalf("Heat has categories %v", got)
			}
			if _, err := Run(context.Background(), s, &popularPolicy{}, Config{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("no dataset", func(t *testing.T) {
		if _, err := LoadMovieLens(t.TempDir()); err == nil {
			t.Fatal("empty directory accepted")
		}
	})
	t.Run("no ratings", func(t *testing.T) {
		if _, err := LoadMovieLens(write(t, map[string]string{"movies.csv": "movieId,title,genres\n1,A (1995),Drama\n"})); err == nil || !strings.Contains(err.Error(), "no ratings") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLoadSharedMovieLens(t *testing.T) {
	s := smallStream(t)
	if len(s.Events) != 100836 || len(s.Users) != 610 || len(s.Items) != 9742 {
		t.Fatalf("%d events, %d users, %d items; want 100836, 610, 9742", len(s.Events), len(s.Users), len(s.Items))
	}
}

func TestWriteChart(t *testing.T) {
	a, err := Run(context.Background(), handStream(), &popularPolicy{}, Config{K: 2, Catalog: CatalogAll, Buckets: 3})
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Policy = "other"
	defer func(w, h vg.Length) { chartWidth, chartHeight = w, h }(chartWidth, chartHeight)
	chartWidth, chartHeight = vg.Points(300), vg.Points(200) // rendering dominates the test under -race
	for _, format := range []string{"png", "svg"} {
		var buf bytes.Buffer
		if err := WriteChart(&buf, []*Result{a, &b}, format); err != nil {
			t.Fatal(err)
		}
		if format == "png" && !bytes.HasPrefix(buf.Bytes(), []byte("\x89PNG")) {
			t.Fatal("not a PNG")
		}
		if format == "svg" && !bytes.Contains(buf.Bytes(), []byte("<svg")) {
			t.Fatal("not an SVG")
		}
	}
	if err := WriteChart(&bytes.Buffer{}, nil, "png"); err == nil {
		t.Fatal("empty chart accepted")
	}
	if err := SaveChart(filepath.Join(t.TempDir(), "x.gif"), []*Result{a}); err == nil {
		t.Fatal("gif accepted")
	}
	path := filepath.Join(t.TempDir(), "x.png")
	if err := SaveChart(path, []*Result{a}); err != nil {
		t.Fatal(err)
	}
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

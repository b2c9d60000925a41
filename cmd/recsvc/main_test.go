package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/trainer"
)

// system is one recsvc started by the test, on real Redis when REDIS_ADDR
// is set (under a unique key prefix) and embedded Redis otherwise, with an
// embedded Kafka-protocol cluster.
type system struct {
	base    string
	brokers []string
	stop    func() error
}

func start(t *testing.T, cfg config) *system {
	t.Helper()
	return startLogging(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startLogging is start with recsvc's log going to log. Without a keys
// file the system is open (-insecure-open when the test uses real servers).
func startLogging(t *testing.T, cfg config, log *slog.Logger) *system {
	t.Helper()
	cfg.addr = "127.0.0.1:0"
	cfg.insecureOpen = cfg.apiKeys == ""
	if addr := os.Getenv(redistest.EnvAddr); addr != "" {
		cfg.redisAddrs = []string{addr}
		cfg.prefix = redistest.Prefix(t)
		t.Cleanup(func() {
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			if err := redistest.DeletePrefix(context.Background(), rdb, cfg.prefix); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	if cfg.drain == 0 {
		cfg.drain = 10 * time.Second
	}
	if cfg.hedge == 0 { // a config literal: serve as the flags' default does
		cfg.hedge = recommend.DefaultConfig().Hedge
	}
	ctx, cancel := context.WithCancel(context.Background())
	info := make(chan running, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log, func(r running) { info <- r }) }()
	var r running
	select {
	case r = <-info:
	case err := <-done:
		cancel()
		t.Fatalf("recsvc did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("recsvc did not start in 30s")
	}
	s := &system{base: "http://" + r.addr, brokers: r.brokers}
	stopped := false
	s.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("recsvc did not stop in 30s")
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

func (s *system) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// eventually polls cond until it holds, with a minute's hang guard (within).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	within(t, time.Minute, what, cond)
}

// TestEndToEnd drives the serving path as a client would: post a catalog,
// recommend, click on novel items, and watch the feedback travel through
// Kafka and the feature updater into Redis until the session propensity has
// risen and the next slate is more novel.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	s := start(t, config{updater: "on", trainer: "off", sampleItems: 0})

	items := catalog.Sample(2000, 11)
	for i := 0; i < len(items); i += 1000 {
		if code := s.call(t, "PUT", "/v1/items", api.ItemsRequest{Items: items[i : i+1000]}, nil); code != 200 {
			t.Fatalf("PUT /v1/items: %d", code)
		}
	}
	eventually(t, "the catalog snapshot", func() bool {
		var r api.RecommendResponse
		return s.call(t, "POST", "/v1/recommend", map[string]any{"user_id": "probe"}, &r) == 200 && r.CatalogVersion >= 2
	})
	if code := s.call(t, "GET", "/readyz", nil, nil); code != 200 {
		t.Fatalf("/readyz %d", code)
	}

	recommendFor := func(user string) api.RecommendResponse {
		var r api.RecommendResponse
		if code := s.call(t, "POST", "/v1/recommend", map[string]any{"user_id": user, "session_id": "s1", "k": 20}, &r); code != 200 {
			t.Fatalf("recommend: %d", code)
		}
		return r
	}
	intentOf := func(user string) api.IntentResponse {
		var in api.IntentResponse
		if code := s.call(t, "GET", "/v1/users/"+user+"/intent?session_id=s1", nil, &in); code != 200 {
			t.Fatalf("intent: %d", code)
		}
		return in
	}
	click := func(user string, r api.RecommendResponse, item string) {
		body := map[string]any{"request_id": r.RequestID, "user_id": user, "session_id": "s1", "item_id": item, "type": "click"}
		if code := s.call(t, "POST", "/v1/feedback", body, nil); code != http.StatusAccepted {
			t.Fatalf("feedback: %d", code)
		}
	}
	novelShare := func(r api.RecommendResponse) float64 {
		n := 0
		for _, it := range r.Items {
			if it.Novel {
				n++
			}
		}
		return float64(n) / float64(len(r.Items))
	}

	// Build a familiar history first: clicks on items of one category.
	byCat := map[string][]string{}
	for _, it := range items {
		if len(it.Categories) == 1 {
			byCat[it.Categories[0]] = append(byCat[it.Categories[0]], it.ID)
		}
	}
	const user = "e2e-user"
	first := recommendFor(user)
	for i, id := range byCat["action"][:5] {
		click(user, first, id)
		want := int64(i + 1)
		eventually(t, "the feature updater to apply a click", func() bool { return intentOf(user).Stats.Clicks == want })
	}
	levelOf := func() int { // the deterministic (argmax) intent level of the next slate
		var r api.RecommendResponse
		body := map[string]any{"user_id": user, "session_id": "s1", "k": 20, "deterministic": true}
		if code := s.call(t, "POST", "/v1/recommend", body, &r); code != 200 {
			t.Fatalf("recommend: %d", code)
		}
		return r.Intent.Level
	}
	before := recommendFor(user)
	p0 := intentOf(user).SessionPropensity
	level0 := levelOf()

	// Now click only on novel items. The policy explores by sampling the
	// intent level, but a session whose every click so far was familiar is
	// served novel candidates rarely (the untrained policy moves up only on
	// evidence), so when a few slates hold no novel item the user clicks a
	// catalog item of a category absent from their history, as a user who
	// searched for it would.
	clicked := map[string]bool{"action": true}
	clicks := int64(5)
	for round := 0; round < 4; round++ {
		var r api.RecommendResponse
		var novel string
		for try := 0; try < 5 && novel == ""; try++ {
			r = recommendFor(user)
			for _, it := range r.Items {
				if it.Novel {
					novel = it.ItemID
					break
				}
			}
		}
		if novel == "" {
			for _, it := range items {
				if len(it.Categories) == 1 && !clicked[it.Categories[0]] {
					novel = it.ID
					break
				}
			}
		}
		for _, it := range items {
			if it.ID == novel {
				for _, c := range it.Categories {
					clicked[c] = true
				}
			}
		}
		click(user, r, novel)
		clicks++
		eventually(t, "the feature updater to apply a novel click", func() bool { return intentOf(user).Stats.Clicks == clicks })
	}
	in := intentOf(user)
	after := recommendFor(user)
	t.Logf("session propensity %.3f -> %.3f; novel share of slate %.2f -> %.2f; novel clicks %d",
		p0, in.SessionPropensity, novelShare(before), novelShare(after), in.Stats.NovelClicks)
	if in.SessionPropensity < p0+0.2 {
		t.Fatalf("session propensity rose only from %.3f to %.3f after novel clicks", p0, in.SessionPropensity)
	}
	if in.Stats.NovelClicks < 4 {
		t.Fatalf("novel clicks %d, want at least 4", in.Stats.NovelClicks)
	}
	// The next slate changes with the intent: it is built at a more novel
	// level (higher β, lower λ) and, with hedging, gets the session belief's
	// share of novel candidates and seats. The share of
	// strictly novel items need not rise, since every novel click widens
	// the history and so shrinks what is still novel to this user.
	if level1 := levelOf(); level1 <= level0 {
		t.Fatalf("the next slate's intent level is %d after novel clicks, %d before", level1, level0)
	}

	// Every recommendation was published as an impression (at least the 9
	// made after the catalog went live).
	msgs := kafkatest.ReadAll(t, s.brokers, events.TopicImpressions, 9, 10*time.Second)
	if _, err := events.DecodeImpression(msgs[len(msgs)-1].Value); err != nil {
		t.Fatalf("impression does not decode: %v", err)
	}
	// Graceful shutdown drains and returns cleanly.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestLearningLoop closes the loop through real protocols: served slates and
// clicks go through Kafka into the in-process trainer, which publishes a
// snapshot to Redis; recsvc swaps it in and serves a new model_version whose
// slates have moved toward what users clicked.
func TestLearningLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	s := start(t, config{updater: "on", trainer: "on", sampleItems: 1500})
	eventually(t, "the catalog", func() bool {
		return s.call(t, "POST", "/v1/recommend", map[string]any{"user_id": "probe"}, nil) == 200
	})
	slate := func(user string, k int, deterministic bool) api.RecommendResponse {
		var r api.RecommendResponse
		body := map[string]any{"user_id": user, "k": k, "deterministic": deterministic}
		if code := s.call(t, "POST", "/v1/recommend", body, &r); code != 200 {
			t.Fatalf("recommend: %d", code)
		}
		return r
	}
	// Users click only items of one category, wherever the slate puts them.
	const target = "music"
	items := map[string][]string{}
	for _, it := range catalog.Sample(1500, 1) { // the catalog recsvc generated
		items[it.ID] = it.Categories
	}
	share := func(r api.RecommendResponse) float64 {
		n := 0
		for _, it := range r.Items {
			if slices.Contains(items[it.ItemID], target) {
				n++
			}
		}
		return float64(n) / float64(len(r.Items))
	}
	const k = 20
	before := slate("fresh-before", k, true)
	if before.ModelVersion != "prior" {
		t.Fatalf("model %q before any feedback", before.ModelVersion)
	}
	clicks := 0
	for u := 0; u < 80; u++ {
		user := fmt.Sprint("learner-", u)
		r := slate(user, k, false)
		for _, it := range r.Items {
			if slices.Contains(items[it.ItemID], target) {
				body := map[string]any{"request_id": r.RequestID, "user_id": user, "item_id": it.ItemID, "type": "click"}
				if code := s.call(t, "POST", "/v1/feedback", body, nil); code != http.StatusAccepted {
					t.Fatalf("feedback: %d", code)
				}
				clicks++
				break
			}
		}
	}
	if clicks < 20 {
		t.Fatalf("only %d slates had a %s item", clicks, target)
	}
	// Wait until the trainer has learned from every click and a snapshot
	// published after that is served.
	eventually(t, "the trainer to apply every click", func() bool {
		return metricValue(t, s.base, `novarec_trainer_updates_total{level="low",variant="default"}`) >= float64(clicks)
	})
	trained := metricValue(t, s.base, `novarec_trainer_model_version{variant="default"}`)
	var after api.RecommendResponse
	probe := 0
	eventually(t, "a snapshot with every click to be served", func() bool {
		probe++ // a new user each time: a session never sees an item twice
		after = slate(fmt.Sprint("fresh-after-", probe), k, true)
		v := metricValue(t, s.base, `novarec_trainer_model_version{variant="default"}`)
		return v > trained && after.ModelVersion == fmt.Sprintf("default-%d", int(v))
	})
	t.Logf("model %s -> %s after %d clicks on %s items; %s share of a fresh user's top %d: %.2f -> %.2f",
		before.ModelVersion, after.ModelVersion, clicks, target, target, k, share(before), share(after))
	if share(after) <= share(before) {
		t.Fatalf("slates did not move toward the clicked category: %.2f before, %.2f after", share(before), share(after))
	}
	metrics := scrape(t, s.base)
	for _, name := range []string{"novarec_model_freshness_seconds_count", "novarec_trainer_updates_total", "novarec_model_swaps_total"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue reads one sample (name with labels, as exposed) from /metrics;
// 0 when absent.
func metricValue(t *testing.T, base, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, base), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

func TestParseConfigRedisCluster(t *testing.T) {
	t.Setenv("REDIS_ADDR", "r0:6379, r1:6379,,r2:6379")
	t.Setenv("KAFKA_BROKERS", "k0:9092")
	c, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"r0:6379", "r1:6379", "r2:6379"}; !slices.Equal(c.redisAddrs, want) {
		t.Fatalf("redis addresses %v, want %v", c.redisAddrs, want)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.redisAddrs})
	defer client.Close()
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("several addresses gave a %T, want a cluster client", client)
	}
	if _, err := parseConfig([]string{"-trainer", "maybe"}); err == nil {
		t.Fatal("-trainer maybe accepted")
	}
}

// TestTrainerConfigsScoreAsServed: the in-process trainers' learners get the
// hedging this process serves with, for every variant, so that they score
// logged slates as they were ranked (recommend.LearnerConfig.Hedge).
func TestTrainerConfigsScoreAsServed(t *testing.T) {
	for _, hedge := range []float64{0, 2} {
		for _, tc := range trainerConfigs([]string{"k:9092"}, events.Security{}, nil, modeFit{}, hedge) {
			if tc.Learner.Hedge != hedge {
				t.Errorf("serving with -hedge %v: variant %q's learner scores with %v", hedge, tc.Variant, tc.Learner.Hedge)
			}
		}
	}
}

// TestModeFitFlags: the mode-fit flags default to the trainer's learner (so
// the in-process trainer fits as `trainer` and the simulator do) and reach
// every variant's learner when set.
func TestModeFitFlags(t *testing.T) {
	for _, v := range []string{"NOVAREC_MODE_REFIT", "NOVAREC_MODE_BELIEF", "NOVAREC_MODE_PRIOR", "NOVAREC_MODE_SWITCH", "NOVAREC_MODE_ROUTINE"} {
		t.Setenv(v, "")
	}
	want := trainer.DefaultConfig().Learner
	for _, tc := range []struct {
		args                             []string
		refit                            int
		belief, prior, switches, routine bool
	}{
		{nil, want.ModeRefit, want.ModeBelief, want.ModePrior, want.ModeSwitch, want.ModeRoutine},
		{[]string{"-mode-refit", "500", "-mode-belief=false", "-mode-prior", "-mode-switch=false", "-mode-routine=false"}, 500, false, true, false, false},
	} {
		c, err := parseConfig(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		for _, tcfg := range trainerConfigs([]string{"k:9092"}, events.Security{}, nil, c.modeFit, 2) {
			l := tcfg.Learner
			if l.ModeRefit != tc.refit || l.ModeBelief != tc.belief || l.ModePrior != tc.prior || l.ModeSwitch != tc.switches || l.ModeRoutine != tc.routine {
				t.Errorf("%v: learner refit %d belief %v prior %v switch %v routine %v, want %d %v %v %v %v", tc.args,
					l.ModeRefit, l.ModeBelief, l.ModePrior, l.ModeSwitch, l.ModeRoutine, tc.refit, tc.belief, tc.prior, tc.switches, tc.routine)
			}
		}
	}
}

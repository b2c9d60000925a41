package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/proctest"
	"github.com/novarec/novarec/internal/redistest"
)

func TestMain(m *testing.M) {
	proctest.RunMain(main)
	os.Exit(m.Run())
}

// child is one recsvc process.
type child struct {
	*proctest.Process
	base string
}

// startChild starts recsvc with args and waits until it is ready. It is
// open (-insecure-open): the tests call it without API keys, on loopback.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	addr := kafkatest.FreePort(t)
	c := &child{Process: proctest.Start(t, append([]string{"-addr", addr, "-log-level", "info", "-insecure-open"}, args...)...), base: "http://" + addr}
	within(t, time.Minute, "the child recsvc to be ready", func() bool {
		resp, err := http.Get(c.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// postFeedback sends one click and returns the status and the event id of
// a 202.
func postFeedback(t *testing.T, base, user, item string) (int, string, http.Header) {
	t.Helper()
	body := fmt.Sprintf(`{"user_id":%q,"item_id":%q,"type":"click"}`, user, item)
	resp, err := faultClient.Post(base+"/v1/feedback", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ok struct {
		EventID string `json:"event_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &ok); err != nil || ok.EventID == "" {
			t.Fatalf("202 without an event id: %s", b)
		}
	}
	return resp.StatusCode, ok.EventID, resp.Header
}

// TestFeedbackSurvivesBrokerLossAndRestarts: with the broker gone, feedback
// is answered 202 from the fsync'd spool; recsvc is stopped with SIGTERM,
// started again (the broker still gone) and fills its spool until it
// answers 503 with Retry-After, then is killed with SIGKILL; started once
// more with a broker back on the same address, it delivers the spool.
// Every event that was answered 202 reaches rec.feedback, and after
// de-duplication by event_id exactly once.
func TestFeedbackSurvivesBrokerLossAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts recsvc processes")
	}
	mr, _ := redistest.Miniredis(t)
	c1 := kfakeOn(t, 0)
	broker := c1.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(broker)
	spool := t.TempDir()
	args := []string{"-redis", mr.Addr(), "-kafka", broker, "-sample-items", "100", "-feature-updater", "off", "-trainer", "off",
		"-spool-dir", spool, "-spool-max-bytes", "65536", "-feedback-ack-timeout", "500ms", "-drain", "5s"}

	r1 := startChild(t, args...)
	item := catalog.Sample(100, 1)[0].ID // the sample recsvc generated
	if code, _, _ := postFeedback(t, r1.base, "before", item); code != http.StatusAccepted {
		t.Fatalf("feedback with the broker up: %d", code)
	}
	c1.Close()

	accepted := map[string]bool{}
	for i := range 40 {
		code, id, _ := postFeedback(t, r1.base, fmt.Sprint("user-", i%5), item)
		if code != http.StatusAccepted {
			t.Fatalf("feedback %d with the broker gone: %d, want 202 from the spool", i, code)
		}
		accepted[id] = true
	}
	within(t, 30*time.Second, "/readyz to report the feedback spooled", func() bool {
		code, state := readiness(t, r1.base, "kafka")
		return code == http.StatusOK && strings.Contains(state, "spooled")
	})
	if err := r1.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if !strings.Contains(r1.Log.String(), "remain in the spool") {
		t.Error("recsvc stopped without saying that events remain in the spool")
	}

	// Started again, broker still gone: the spool fills up; then a crash.
	r2 := startChild(t, args...)
	full := false
	for i := 0; i < 2000 && !full; i++ {
		code, id, h := postFeedback(t, r2.base, fmt.Sprint("user-", i%5), item)
		switch code {
		case http.StatusAccepted:
			accepted[id] = true
		case http.StatusServiceUnavailable:
			if h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			full = true
		default:
			t.Fatalf("feedback: %d", code)
		}
	}
	if !full {
		t.Fatal("a 64 KiB spool took 2,000 events")
	}
	if err := r2.Stop(t, syscall.SIGKILL); !proctest.Killed(err) {
		t.Fatalf("SIGKILL: %v", err)
	}
	t.Logf("%d events answered 202 while the broker was gone", len(accepted))

	// A broker on the same address, and recsvc once more: the spool drains.
	c2 := kfakeOn(t, atoi(t, port))
	t.Cleanup(c2.Close)
	r3 := startChild(t, args...)
	seen := map[string]int{}
	within(t, 60*time.Second, "every accepted event on rec.feedback", func() bool {
		clear(seen)
		for _, m := range kafkatest.ReadAvailable(t, c2.ListenAddrs(), events.TopicFeedback, time.Second) {
			var ev events.Feedback
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("undecodable feedback on rec.feedback: %s", m.Value)
			}
			seen[ev.EventID]++
		}
		for id := range accepted {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for id, n := range seen {
		if !accepted[id] {
			t.Errorf("event %s on rec.feedback was never answered 202", id)
		}
		dups += n - 1
	}
	t.Logf("rec.feedback holds all %d accepted events (%d duplicate deliveries, dropped by event_id downstream)", len(accepted), dups)
	if code, _, _ := postFeedback(t, r3.base, "after", item); code != http.StatusAccepted {
		t.Errorf("feedback after recovery: %d", code)
	}
	within(t, 30*time.Second, "the spool to empty", func() bool {
		_, state := readiness(t, r3.base, "kafka")
		return state == "ok"
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFaultRedisRestartsEmpty replaces Redis under traffic with an empty
// server on the same address: recsvc notices the missing catalog, re-seeds
// it from rec.catalog without a restart, and item reads agree with the
// catalog again; recommend answers 200 throughout.
func TestFaultRedisRestartsEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	mr, _ := redistest.Miniredis(t)
	addr := mr.Addr()
	s := startOnRedis(t, addr)
	items := catalog.Sample(500, 1) // what startOnRedis's recsvc generated
	agree := func() bool {
		for _, it := range items {
			resp, err := faultClient.Get(s.base + "/v1/items/" + url.PathEscape(it.ID))
			if err != nil {
				t.Fatal(err)
			}
			var got catalog.Item
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil || got.ID != it.ID || got.Popularity != it.Popularity || len(got.Categories) != len(it.Categories) {
				return false
			}
		}
		return true
	}
	if !agree() {
		t.Fatal("item reads disagree with the catalog before the fault")
	}
	var r api.RecommendResponse
	s.callRecommend(t, &r)
	versionBefore := r.CatalogVersion

	l := startLoad(t, s.base, 4)
	l.setPhase("before")
	within(t, 30*time.Second, "traffic", func() bool { return l.get("before").ok >= 20 })
	l.setPhase("restarted empty")
	mr.Close()
	empty := miniredis.NewMiniRedis()
	if err := empty.StartAddr(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(empty.Close)
	took := within(t, 60*time.Second, "the catalog to be back in Redis", agree)
	t.Logf("catalog re-seeded and readable %v after Redis restarted empty", took.Round(time.Millisecond))
	l.setPhase("after")
	within(t, 30*time.Second, "traffic after the re-seed", func() bool { return l.get("after").ok >= 20 })
	l.stop()
	if v := metricValue(t, s.base, "novarec_catalog_reseeds_total"); v != 1 {
		t.Errorf("novarec_catalog_reseeds_total = %v, want 1", v)
	}
	// The re-seeded catalog has a newer version, so every replica swaps it in.
	within(t, time.Minute, "a catalog version above the one before the re-seed", func() bool {
		s.callRecommend(t, &r)
		return r.CatalogVersion > versionBefore
	})
	if code, _, _ := postFeedback(t, s.base, "u", items[0].ID); code != http.StatusAccepted {
		t.Errorf("feedback on a re-seeded item: %d", code)
	}
	checkPhase(t, l, "before", "none")
	checkPhase(t, l, "restarted empty", "any")
	checkPhase(t, l, "after", "any") // user state was lost with Redis: any
}

func (s *system) callRecommend(t *testing.T, r *api.RecommendResponse) {
	t.Helper()
	if code := s.call(t, "POST", "/v1/recommend", map[string]any{"user_id": "probe"}, r); code != http.StatusOK {
		t.Fatalf("recommend: %d", code)
	}
}

// TestHelpShowsTrueDefaults: recsvc -h exits 0 and shows defaults as they
// apply (auto for the sample catalog, not -1).
func TestHelpShowsTrueDefaults(t *testing.T) {
	t.Setenv("NOVAREC_SAMPLE_ITEMS", "")
	out, err := proctest.Run(t, "-h")
	if err != nil {
		t.Fatalf("recsvc -h: %v\n%s", err, out)
	}
	for _, want := range []string{"-sample-items count", "(default auto)", "-spool-dir", "-redis-budget duration", "(default 100ms)", "-body-timeout"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("recsvc -h does not say %q", want)
		}
	}
	if strings.Contains(string(out), "default -1") {
		t.Error("recsvc -h shows a default of -1")
	}
}

func TestParseConfigDurability(t *testing.T) {
	t.Setenv("NOVAREC_SPOOL_DIR", "/var/lib/novarec/spool")
	t.Setenv("NOVAREC_REDIS_BUDGET", "250ms")
	c, err := parseConfig([]string{"-sample-items", "auto", "-max-conns-per-client", "64"})
	if err != nil {
		t.Fatal(err)
	}
	if c.spoolDir != "/var/lib/novarec/spool" || c.redisBudget != 250*time.Millisecond || c.sampleItems != -1 || c.maxConnsPerClient != 64 ||
		c.spoolMaxBytes != 256<<20 || c.ackTimeout != 2*time.Second || c.bodyTimeout != api.DefaultBodyTimeout {
		t.Errorf("parsed %+v", c)
	}
	for _, args := range [][]string{{"-spool-max-bytes", "1000"}, {"-redis-budget", "0s"}, {"-max-conns-per-client", "-1"}, {"-sample-items", "-2"}} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

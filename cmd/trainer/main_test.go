package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/proctest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/trainer"
)

func TestMain(m *testing.M) {
	proctest.RunMain(main)
	os.Exit(m.Run())
}

func TestParseConfig(t *testing.T) {
	t.Setenv("REDIS_ADDR", "")
	t.Setenv("KAFKA_BROKERS", "")
	if _, err := parseConfig([]string{"-redis", "r:6379"}); err == nil || !strings.Contains(err.Error(), "no embedded mode") {
		t.Errorf("without brokers: %v, want an error explaining there is no embedded mode", err)
	}
	if _, err := parseConfig([]string{"-kafka", "k:9092"}); err == nil || !strings.Contains(err.Error(), "REDIS_ADDR") {
		t.Errorf("without redis: %v", err)
	}
	c, err := parseConfig([]string{"-redis", "a:1, b:2", "-kafka", "k:9092", "-variant", "treat", "-w-nov", "0", "-w-div", "0.5",
		"-window", "10m", "-publish-every", "1s", "-publish-updates", "50", "-commit-interval", "3s", "-commit-every", "500", "-feature-updater=false"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.redisAddrs) != 2 || c.variant != "treat" || c.reward != (recommend.RewardWeights{Novelty: 0, Diversity: 0.5}) ||
		c.window != 10*time.Minute || c.publish != time.Second || c.publishN != 50 || c.commit != 3*time.Second || c.commitN != 500 || c.updater {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range [][]string{{"-commit-every", "-1"}, {"-hedge", "-1"}, {"-hedge", "NaN"}, {"-hedge", "+Inf"}} {
		if _, err := parseConfig(append([]string{"-redis", "r:6379", "-kafka", "k:9092"}, bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s %s: %v, want an error naming the flag", bad[0], bad[1], err)
		}
	}
	t.Setenv("KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("REDIS_ADDR", "r:6379")
	if c, err := parseConfig(nil); err != nil || len(c.kafka) != 2 || c.reward != recommend.DefaultRewardWeights || c.metricsAddr != ":9091" || !c.updater ||
		c.hedge != recommend.DefaultConfig().Hedge {
		t.Errorf("from env: %+v, %v", c, err)
	}
	t.Setenv("NOVAREC_HEDGE", "0") // recsvc's variable: both read it
	if c, err := parseConfig(nil); err != nil || c.hedge != 0 {
		t.Errorf("NOVAREC_HEDGE=0: hedge %v, %v", c.hedge, err)
	}
}

// child is one trainer process.
type child struct {
	*proctest.Process
	metrics string
}

func startChild(t *testing.T, redisAddr, prefix string, brokers []string) *child {
	t.Helper()
	metrics := kafkatest.FreePort(t)
	p := proctest.Start(t,
		"-redis", redisAddr, "-kafka", strings.Join(brokers, ","), "-prefix", prefix,
		"-commit-interval", "250ms", "-publish-every", "100ms", "-feature-updater=false", "-session-timeout", "1s",
		"-metrics-addr", metrics, "-log-level", "info")
	return &child{Process: p, metrics: metrics}
}

// applied reads the child's novarec_trainer_events_total{outcome="applied"}
// for topic (what this process applied since it started).
func (c *child) applied(topic string) (float64, bool) {
	resp, err := http.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "novarec_trainer_events_total{") && strings.Contains(line, `outcome="applied"`) && strings.Contains(line, `topic="`+topic+`"`) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func checkpointCounters(t *testing.T, store *features.Store) (trainer.Counters, bool) {
	t.Helper()
	b, err := store.StateHead(context.Background(), trainer.CheckpointName("default"))
	if errors.Is(err, features.ErrNotFound) {
		return trainer.Counters{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := trainer.ReadCheckpointCounters(b)
	if err != nil {
		t.Fatalf("checkpoint unreadable: %v", err)
	}
	return c, true
}

// waitFor polls cond until it holds. d is only a hang guard, raised to at
// least a minute: a loaded machine can be many times slower.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d = max(d, time.Minute)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killAhead SIGKILLs c at a moment when it has applied impressions its
// last checkpoint does not hold yet (so they must be redelivered and
// applied exactly once after the restart), after at least one checkpoint
// of its own. base is the checkpoint it started from. Meanwhile it feeds
// the stream a round at a time (produce returns false when it is all out,
// and otherwise the number of distinct impressions produced so far), and
// only when the trainer has applied and checkpointed everything produced:
// progress, not a clock, paces the stream, so however slow the machine,
// every round opens a new window in which the trainer is ahead of its
// checkpoint.
func killAhead(t *testing.T, c *child, store *features.Store, base trainer.Counters, produce func() (int, bool)) {
	t.Helper()
	produced, ok := produce()
	if !ok {
		t.Fatal("the stream ran out before the trainer started")
	}
	waitFor(t, 2*time.Minute, "the trainer to checkpoint and run ahead of its checkpoint", func() bool {
		applied, ok := c.applied(events.TopicImpressions)
		if !ok {
			return false
		}
		ck, ok := checkpointCounters(t, store)
		if !ok {
			return false
		}
		if ck.Impressions > base.Impressions && base.Impressions+int64(applied) > ck.Impressions {
			return true // ahead of its own checkpoint: kill it now
		}
		if base.Impressions+int64(applied) >= int64(produced) && ck.Impressions >= int64(produced) {
			// Everything produced is applied and checkpointed: next round.
			if produced, ok = produce(); !ok {
				t.Fatal("the stream ran out before the trainer could be killed ahead of its checkpoint")
			}
		}
		return false
	})
	if err := c.Stop(t, syscall.SIGKILL); !proctest.Killed(err) {
		t.Fatalf("trainer exit: %v, want killed by SIGKILL", err)
	}
}

// TestCrashLosesNothingAndAppliesNothingTwice produces a stream (300
// impressions and their clicks for 30 users, plus duplicate events) while a
// trainer process consumes it, SIGKILLs the process twice mid-stream (each
// time when it holds state beyond its last checkpoint), restarts it, and
// checks from the final checkpoint that every distinct impression and
// click was applied exactly once.
func TestCrashLosesNothingAndAppliesNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trainer processes")
	}
	// A cluster like kafkatest.Start's, but accepting short group session
	// timeouts, so a restarted trainer takes over a SIGKILLed one's
	// partitions after 1s rather than the broker minimum of 6s.
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(kafkatest.Partitions, events.EmbeddedTopics...),
		kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "100"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	client, prefix := redistest.New(t)
	redisAddr := os.Getenv(redistest.EnvAddr)
	if redisAddr == "" {
		redisAddr = client.(*redis.Client).Options().Addr
	}
	store := features.NewStore(client, features.Options{Prefix: prefix})
	items := catalog.Sample(300, 7)
	if _, err := store.PutItems(t.Context(), items); err != nil {
		t.Fatal(err)
	}

	// The stream, in rounds, produced as the test goes (see killAhead).
	const users, perUser, rounds = 30, 10, 20
	rng := rand.New(rand.NewPCG(1, 2))
	type msg struct {
		topic, key string
		body       []byte
	}
	var stream [rounds][]msg
	var roundImp [rounds]int // distinct impressions per round
	var nImp, nClick, dupImp, dupClick int
	state := make([]float64, intent.Dim)
	for k := range perUser {
		for u := range users {
			user := fmt.Sprintf("user-%d", u)
			rid := fmt.Sprintf("r-%d-%d", u, k)
			ts := int64(1_700_000_000_000) + int64(k*users+u)*1000
			imp := events.Impression{
				Schema: 1, EventID: rid, RequestID: rid, UserID: user, SessionID: "s", Variant: "default", ModelVersion: "prior",
				Intent: events.Intent{Level: rng.IntN(5), Probability: 0.2, State: state}, TS: ts,
			}
			for p := range 6 {
				imp.Items = append(imp.Items, events.ImpressionItem{
					ItemID: items[rng.IntN(len(items))].ID, Position: p, Propensity: 0.1, Novelty: float64(p % 2), Features: []float64{0.2, 0, 0.5},
				})
			}
			round := (k*users + u) * rounds / (users * perUser)
			b, _ := json.Marshal(imp)
			stream[round] = append(stream[round], msg{events.TopicImpressions, user, b})
			nImp++
			roundImp[round]++
			if u%7 == 0 { // a duplicate delivery of the impression
				stream[round] = append(stream[round], msg{events.TopicImpressions, user, b})
				dupImp++
			}
			for c := range 2 {
				if rng.Float64() < 0.5 {
					continue
				}
				fb := events.Feedback{
					Schema: 1, EventID: fmt.Sprintf("f-%s-%d", rid, c), RequestID: rid, UserID: user, SessionID: "s",
					ItemID: imp.Items[c*3].ItemID, Type: events.FeedbackClick, TS: ts + 100, Variant: "default",
				}
				b, _ := json.Marshal(fb)
				stream[round] = append(stream[round], msg{events.TopicFeedback, user, b})
				nClick++
				if rng.Float64() < 0.15 {
					stream[round] = append(stream[round], msg{events.TopicFeedback, user, b})
					dupClick++
				}
			}
		}
	}
	t.Logf("stream: %d impressions (+%d duplicates), %d clicks (+%d duplicates)", nImp, dupImp, nClick, dupClick)

	p := events.NewProducer(brokers, events.ProducerOptions{BatchTimeout: 2 * time.Millisecond})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	next, produced := 0, 0
	produce := func() (int, bool) {
		if next == rounds {
			return produced, false
		}
		for _, m := range stream[next] {
			for !p.Publish(m.topic, m.key, m.body) {
				time.Sleep(time.Millisecond)
			}
		}
		produced += roundImp[next]
		next++
		return produced, true
	}

	// Two crashes, then a run to the end.
	var base trainer.Counters
	var versions []string
	for crash := range 2 {
		c := startChild(t, redisAddr, prefix, brokers)
		killAhead(t, c, store, base, produce)
		base, _ = checkpointCounters(t, store)
		if b, err := store.GetModel(t.Context(), "default"); err == nil {
			m, _, err := recommend.DecodeModel(b)
			if err != nil {
				t.Fatal(err)
			}
			versions = append(versions, m.Version)
		}
		t.Logf("crash %d: killed after round %d with checkpoint %+v", crash+1, next, base)
	}
	for _, more := produce(); more; _, more = produce() {
	}
	c := startChild(t, redisAddr, prefix, brokers)
	waitFor(t, 40*time.Second, "every event applied", func() bool {
		ck, ok := checkpointCounters(t, store)
		return ok && ck.Impressions >= int64(nImp) && ck.Clicks >= int64(nClick) &&
			ck.ImpressionDuplicates >= int64(dupImp) && ck.FeedbackDuplicates >= int64(dupClick)
	})
	// SIGTERM: a graceful stop with a final checkpoint and exit status 0.
	if err := c.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("trainer exit after SIGTERM: %v", err)
	}
	final, _ := checkpointCounters(t, store)
	t.Logf("final checkpoint: %+v", final)
	if final.Impressions != int64(nImp) || final.Clicks != int64(nClick) {
		t.Errorf("applied %d impressions and %d clicks, want exactly %d and %d", final.Impressions, final.Clicks, nImp, nClick)
	}
	if final.ImpressionDuplicates < int64(dupImp) || final.FeedbackDuplicates < int64(dupClick) {
		t.Errorf("duplicates counted %d/%d, want at least the %d/%d produced", final.ImpressionDuplicates, final.FeedbackDuplicates, dupImp, dupClick)
	}
	if final.FeedbackUnattributed != 0 || final.ImpressionsIgnored != 0 || final.FeedbackIgnored != 0 {
		t.Errorf("events lost to attribution: %+v", final)
	}
	if !strings.Contains(c.Log.String(), `"msg":"trainer stopped"`) {
		t.Error("no final log line from the trainer")
	}

	// The published model includes everything and kept numbering upward
	// across the crashes.
	b, err := store.GetModel(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	m, meta, err := recommend.DecodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	versions = append(versions, m.Version)
	if meta.Updates != final.Clicks+final.Decisions {
		t.Errorf("final snapshot has %d updates, checkpoint %d clicks + %d decisions", meta.Updates, final.Clicks, final.Decisions)
	}
	last := uint64(0)
	for _, v := range versions {
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "default-"), 10, 64)
		if err != nil || n < last {
			t.Errorf("versions across restarts %v go backwards", versions)
			break
		}
		last = n
	}
}

// TestHelp: `trainer help`, `trainer -h` and `trainer help CMD` describe the
// commands and exit 0; an unknown command is an error.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		ok   bool
	}{
		{[]string{"help"}, []string{"Commands:", "rebuild", "ab-report", "simulate", "Flags of learn:", "-commit-interval"}, true},
		{[]string{"-h"}, []string{"Commands:", "rebuild", "Flags of learn:"}, true},
		{[]string{"help", "rebuild"}, []string{"Usage: trainer rebuild", "-dry-run"}, true},
		{[]string{"help", "nonsense"}, []string{`no command "nonsense"`}, false},
	} {
		out, err := proctest.Run(t, tc.args...)
		if (err == nil) != tc.ok {
			t.Errorf("trainer %v: exit %v, want success %v\n%s", tc.args, err, tc.ok, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("trainer %v does not say %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestModeFitFlags: the mode-fit flags default to the learner the
// simulator measures (trainer.DefaultConfig) and can each be turned.
func TestModeFitFlags(t *testing.T) {
	for _, v := range []string{"NOVAREC_MODE_REFIT", "NOVAREC_MODE_BELIEF", "NOVAREC_MODE_PRIOR", "NOVAREC_MODE_SWITCH", "NOVAREC_MODE_ROUTINE"} {
		t.Setenv(v, "")
	}
	d := trainer.DefaultConfig().Learner
	for _, tc := range []struct {
		args                             []string
		refit                            int
		belief, prior, switches, routine bool
	}{
		{nil, d.ModeRefit, d.ModeBelief, d.ModePrior, d.ModeSwitch, d.ModeRoutine},
		{[]string{"-mode-refit", "0", "-mode-belief=false", "-mode-prior", "-mode-switch=false", "-mode-routine=false"}, 0, false, true, false, false},
	} {
		c, err := parseConfig(append([]string{"-kafka", "k:9092", "-redis", "r:6379"}, tc.args...))
		if err != nil {
			t.Fatal(err)
		}
		if c.modeRefit != tc.refit || c.modeBelief != tc.belief || c.modePrior != tc.prior || c.modeSwitch != tc.switches || c.modeRoutine != tc.routine {
			t.Errorf("%v: refit %d belief %v prior %v switch %v routine %v, want %d %v %v %v %v", tc.args,
				c.modeRefit, c.modeBelief, c.modePrior, c.modeSwitch, c.modeRoutine, tc.refit, tc.belief, tc.prior, tc.switches, tc.routine)
		}
	}
}

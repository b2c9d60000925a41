package main

// Fault tests: the whole recsvc (run, as main starts it) while a client
// keeps asking for recommendations, and Redis or the Kafka broker stops and
// comes back. Everything is on loopback and bounded in time; the trainer's
// crash test (SIGKILL mid-stream) is TestCrashLosesNothingAndAppliesNothingTwice
// in cmd/trainer.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
)

// No assertion here measures wall-clock time: a loaded two-core machine
// stretches every latency. What the tests assert instead is that no request
// waits on a dead dependency, by making such a wait impossible to miss:
// recsvc's Redis client gets a one-minute read timeout (redisIOTimeout), so
// a request that waited on a hung Redis instead of its 100 ms budget would
// outlast loadTimeout and count as failed; a request that waited on a full
// event buffer would block for good. Latencies are logged, not judged.
const loadTimeout = 30 * time.Second

// faultClient is for the test's own calls: one that hangs fails the test.
var faultClient = &http.Client{Timeout: loadTimeout}

// tally is what the load saw in one phase of a fault test.
type tally struct {
	requests, ok, degraded, failed int
	codes                          map[int]int
	errs                           []string
	latencies                      []time.Duration
	requestIDs                     []string
	itemIDs                        []string
}

func (t *tally) max() time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	return slices.Max(t.latencies)
}

func (t *tally) p99() time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	l := slices.Clone(t.latencies)
	slices.Sort(l)
	return l[len(l)*99/100]
}

func (t *tally) String() string {
	return fmt.Sprintf("%d requests: %d ok (%d degraded), %d failed %v, p99 %v, max %v",
		t.requests, t.ok, t.degraded, t.failed, t.codes, t.p99().Round(time.Millisecond), t.max().Round(time.Millisecond))
}

// load sends POST /v1/recommend from a few workers, each pausing a little
// between requests, until stopped; it tallies the answers by phase (the
// phase when the request was sent).
type load struct {
	base   string
	client *http.Client
	mu     sync.Mutex
	phase  string
	phases map[string]*tally
	// inflight counts the requests of each phase not answered yet.
	inflight map[string]int
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func startLoad(t *testing.T, base string, workers int) *load {
	t.Helper()
	l := &load{
		base: base,
		// A request that hangs is a failure, not a stuck test.
		client: &http.Client{Timeout: loadTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: workers}},
		phase:  "start", phases: map[string]*tally{}, inflight: map[string]int{}, done: make(chan struct{}),
	}
	for w := range workers {
		l.wg.Add(1)
		go l.work(w)
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() {
	l.once.Do(func() { close(l.done); l.wg.Wait() })
}

// setPhase starts phase p and waits until no request of the previous phase
// is in flight, so what is done next (stopping a server) happens after
// every request of that phase ended.
func (l *load) setPhase(p string) {
	l.mu.Lock()
	prev := l.phase
	l.phase = p
	l.mu.Unlock()
	deadline := time.Now().Add(loadTimeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		n := l.inflight[prev]
		l.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// get returns a copy of the tally of phase p.
func (l *load) get(p string) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.phases[p]; t != nil {
		c := *t
		c.codes, c.errs, c.itemIDs = maps.Clone(t.codes), slices.Clone(t.errs), slices.Clone(t.itemIDs)
		c.latencies, c.requestIDs = slices.Clone(t.latencies), slices.Clone(t.requestIDs)
		return c
	}
	return tally{}
}

func (l *load) work(w int) {
	defer l.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-l.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
		body := fmt.Sprintf(`{"user_id":"fault-%d","k":10}`, rand.IntN(2000))
		l.mu.Lock()
		phase := l.phase
		l.inflight[phase]++
		l.mu.Unlock()
		start := time.Now()
		resp, err := l.client.Post(l.base+"/v1/recommend", "application/json", strings.NewReader(body))
		var b []byte
		if err == nil {
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		took := time.Since(start)
		var r api.RecommendResponse
		code := 0
		if err == nil {
			code = resp.StatusCode
			if code == http.StatusOK {
				err = json.Unmarshal(b, &r)
				if err == nil && len(r.Items) != 10 {
					err = fmt.Errorf("slate of %d items", len(r.Items))
				}
			}
		}
		l.mu.Lock()
		l.inflight[phase]--
		t := l.phases[phase]
		if t == nil {
			t = &tally{codes: map[int]int{}}
			l.phases[phase] = t
		}
		t.requests++
		t.codes[code]++
		t.latencies = append(t.latencies, took)
		switch {
		case err != nil:
			t.failed++
			t.errs = append(t.errs, err.Error())
		case code != http.StatusOK:
			t.failed++
			t.errs = append(t.errs, fmt.Sprintf("%d %s", code, b))
		default:
			t.ok++
			if r.Degraded {
				t.degraded++
			}
			t.requestIDs = append(t.requestIDs, r.RequestID)
			if len(t.itemIDs) < 10 {
				t.itemIDs = append(t.itemIDs, r.Items[0].ItemID)
			}
		}
		l.mu.Unlock()
	}
}

// checkPhase fails the test unless every request of phase p was answered
// 200 (within loadTimeout); degraded says how many answers may be
// degraded: "none" (at most one in ten), "all" or "any". A phase may hold
// no request at all (recovery can beat the next request); the callers wait
// for traffic where it matters.
func checkPhase(t *testing.T, l *load, p, degraded string) tally {
	t.Helper()
	got := l.get(p)
	t.Logf("%-28s %v", p+":", &got)
	switch {
	case got.failed > 0:
		t.Errorf("%s: %d of %d requests failed, e.g. %v", p, got.failed, got.requests, got.errs[:min(len(got.errs), 3)])
	case degraded == "none" && got.degraded*10 > got.ok:
		// Not strictly none: on a loaded CI machine a healthy Redis can
		// miss the 100ms budget now and then, and that request is
		// rightly served degraded.
		t.Errorf("%s: %d of %d answers degraded, want (almost) none", p, got.degraded, got.ok)
	case degraded == "all" && got.degraded != got.ok:
		t.Errorf("%s: %d of %d answers degraded, want all", p, got.degraded, got.ok)
	}
	return got
}

// within polls cond until it holds and returns how long that took (for the
// log). d is only a hang guard, raised to at least a minute.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	d = max(d, time.Minute)
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// readiness returns /readyz's status code and the state it reports for
// dependency (checks[dependency]).
func readiness(t *testing.T, base, dependency string) (int, string) {
	t.Helper()
	resp, err := faultClient.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Checks map[string]any `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	state, _ := body.Checks[dependency].(string)
	return resp.StatusCode, state
}

func status(t *testing.T, base, path string) int {
	t.Helper()
	resp, err := faultClient.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// startOnRedis starts recsvc on the Redis at addr, whatever REDIS_ADDR says,
// with embedded Kafka and a small generated catalog.
func startOnRedis(t *testing.T, addr string) *system {
	t.Helper()
	return startReading(t, addr, defaultRedisBatch)
}

// startReading is startOnRedis with user-state reads batched or not
// (-redis-batch).
func startReading(t *testing.T, addr string, batch bool) *system {
	t.Helper()
	t.Setenv(redistest.EnvAddr, "") // start() would otherwise use REDIS_ADDR
	s := start(t, config{redisAddrs: []string{addr}, sampleItems: 500, partitions: 3, updater: "off", trainer: "off", drain: 3 * time.Second,
		redisIOTimeout: time.Minute, redisBatch: batch})
	within(t, 30*time.Second, "/readyz 200", func() bool { return status(t, s.base, "/readyz") == http.StatusOK })
	return s
}

// bothReads runs a Redis fault test with user-state reads batched
// (-redis-batch) and with one pipeline a request: a batch in flight on a
// hung connection holds every read queued behind it, which no request may
// wait for beyond its budget either.
func bothReads(t *testing.T, test func(t *testing.T, batch bool)) {
	for _, batch := range []bool{true, false} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) { test(t, batch) })
	}
}

// redisOutage takes Redis away with down while l keeps sending requests and
// checks that recommend answers 200 throughout, degraded once Redis is
// known down, that /readyz reports Redis unreachable yet stays 200 (Redis
// is down for every replica: taking them all out of rotation would turn
// degraded answers into none), and that both recover without a restart
// once up has brought Redis back.
func redisOutage(t *testing.T, s *system, l *load, name string, down, up func()) {
	t.Helper()
	const skipped = `novarec_recommend_degraded_total{cause="redis_down"}`
	l.setPhase(name + ": going down")
	down()
	within(t, 30*time.Second, "/readyz to report Redis unreachable after "+name, func() bool {
		_, state := readiness(t, s.base, "redis")
		return state == "unreachable"
	})
	l.setPhase(name + ": down")
	// Requests skip Redis once it is known down: wait for some of those.
	before := metricValue(t, s.base, skipped)
	within(t, 30*time.Second, "degraded answers that skipped Redis", func() bool {
		return l.get(name+": down").degraded >= 20 && metricValue(t, s.base, skipped) >= before+20
	})
	if code, state := readiness(t, s.base, "redis"); code != http.StatusOK || state != "unreachable" {
		t.Errorf("%s: /readyz %d with redis %q while Redis is down; want 200 and unreachable", name, code, state)
	}

	l.setPhase(name + ": coming back")
	up()
	took := within(t, 30*time.Second, "/readyz to report Redis ok", func() bool {
		_, state := readiness(t, s.base, "redis")
		return state == "ok"
	})
	t.Logf("%s: Redis reported ok %v after it returned", name, took.Round(time.Millisecond))
	l.setPhase(name + ": back")
	within(t, 30*time.Second, "answers after recovery", func() bool { return l.get(name+": back").ok >= 20 })
	l.setPhase(name + ": after")

	checkPhase(t, l, name+": going down", "any")
	checkPhase(t, l, name+": down", "all")
	checkPhase(t, l, name+": coming back", "any")
	checkPhase(t, l, name+": back", "none")
}

// TestFaultRedisStopsAndReturns stops the (in-process) Redis under traffic
// and restarts it on the same address with its data.
func TestFaultRedisStopsAndReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	bothReads(t, func(t *testing.T, batch bool) {
		mr, _ := redistest.Miniredis(t)
		s := startReading(t, mr.Addr(), batch)
		l := startLoad(t, s.base, 4)
		l.setPhase("before")
		within(t, 30*time.Second, "traffic", func() bool { return l.get("before").ok >= 20 })
		redisOutage(t, s, l, "miniredis closed", mr.Close, func() {
			if err := mr.Restart(); err != nil {
				t.Fatal(err)
			}
		})
		l.stop()
		checkPhase(t, l, "before", "none")
		if v := metricValue(t, s.base, "novarec_redis_up"); v != 1 {
			t.Errorf("novarec_redis_up = %v after recovery", v)
		}
	})
}

// redisServer is a redis-server process on a loopback port, without
// persistence, that the test can pause, kill and start again.
type redisServer struct {
	t    *testing.T
	port string
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed; TestFaultRedisStopsAndReturns covers the in-process server")
	}
	_, port, _ := net.SplitHostPort(kafkatest.FreePort(t))
	r := &redisServer{t: t, port: port}
	r.start(bin)
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + r.port }

func (r *redisServer) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", r.port, "--save", "", "--appendonly", "no", "--daemonize", "no")
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	within(r.t, 10*time.Second, "redis-server to answer", func() bool { return rdb.Ping(r.t.Context()).Err() == nil })
}

func (r *redisServer) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill() // works on a stopped process too
		_ = r.cmd.Wait()
	}
}

// TestFaultRedisServerHangsAndCrashes runs recsvc on a real redis-server
// and, under traffic, first freezes it (SIGSTOP: connections stay open but
// nothing answers, so every call must be cut off by the store timeout),
// then, after it thawed, kills it (SIGKILL) and starts a new, empty one on
// the same port.
func TestFaultRedisServerHangsAndCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	bothReads(t, func(t *testing.T, batch bool) {
		r := startRedisServer(t)
		s := startReading(t, r.addr(), batch)
		l := startLoad(t, s.base, 4)
		l.setPhase("before")
		within(t, 30*time.Second, "traffic", func() bool { return l.get("before").ok >= 20 })
		redisOutage(t, s, l, "redis-server frozen", func() { r.signal(syscall.SIGSTOP) }, func() { r.signal(syscall.SIGCONT) })
		redisOutage(t, s, l, "redis-server killed", r.kill, func() { r.start(r.cmd.Path) })
		l.stop()
		checkPhase(t, l, "before", "none")
	})
}

// kfakeOn starts a one-broker Kafka-protocol cluster on port (0 = any) with
// recsvc's topics.
func kfakeOn(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(3, events.EmbeddedTopics...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFaultKafkaBrokerStopsAndReturns stops the broker under traffic:
// recommend must keep answering at once (publishing never waits), the
// impressions fill the producer's bounded buffer and the rest are dropped
// and counted, feedback is refused with 503 rather than lost; once a broker
// listens on the same address again, the buffered events and new ones are
// delivered.
func TestFaultKafkaBrokerStopsAndReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	const buffer = 300 // recsvc's producer buffer (10,000 in production)
	c1 := kfakeOn(t, 0)
	c1Closed := false
	t.Cleanup(func() {
		if !c1Closed {
			c1.Close()
		}
	})
	brokers := c1.ListenAddrs()
	_, portStr, _ := net.SplitHostPort(brokers[0])
	port, _ := strconv.Atoi(portStr)
	s := start(t, config{kafka: brokers, sampleItems: 500, partitions: 3, replication: 1, updater: "off", trainer: "off", eventBuffer: buffer, drain: 3 * time.Second})
	metric := func(sample string) float64 { return metricValue(t, s.base, sample) }
	const (
		published = `novarec_events_published_total{topic="rec.impressions"}`
		dropped   = `novarec_events_dropped_total{topic="rec.impressions"}`
		buffered  = `novarec_events_buffered`
	)
	feedback := func(item string) (int, http.Header, []byte) {
		body := fmt.Sprintf(`{"user_id":"fault-fb","item_id":%q,"type":"click"}`, item)
		resp, err := faultClient.Post(s.base+"/v1/feedback", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}

	l := startLoad(t, s.base, 4)
	l.setPhase("before")
	within(t, 30*time.Second, "impressions published", func() bool { return metric(published) >= 20 })
	item := l.get("before").itemIDs[0]

	c1.Close()
	c1Closed = true
	l.setPhase("broker down")
	took := within(t, 30*time.Second, "impressions dropped once the buffer is full", func() bool { return metric(dropped) > 0 })
	t.Logf("broker down: buffer of %d full and impressions dropped after %v", buffer, took.Round(time.Millisecond))
	// The buffer holds at most its capacity plus the batch being retried.
	if b := metric(buffered); b < buffer || b > buffer+500 {
		t.Errorf("novarec_events_buffered = %v with the broker down, want %d..%d", b, buffer, buffer+500)
	}
	// Without a spool (-spool-dir), feedback Kafka does not acknowledge is
	// refused, and the client told to retry (TestFeedbackSurvivesBrokerLossAndRestarts
	// covers the spool).
	code, h, b := feedback(item)
	var eb struct{ Error api.Error }
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || json.Unmarshal(b, &eb) != nil || eb.Error.Code != "unavailable" {
		t.Errorf("feedback with the broker gone and no spool: %d Retry-After=%q %s; want 503 unavailable with Retry-After", code, h.Get("Retry-After"), b)
	}
	within(t, 30*time.Second, "/readyz to report the broker unreachable", func() bool {
		code, state := readiness(t, s.base, "kafka")
		if code != http.StatusOK {
			t.Fatalf("/readyz %d with the broker gone; Kafka is shared by every replica, so want 200", code)
		}
		return strings.Contains(state, "unreachable") && strings.Contains(state, "refused")
	})
	if v := metric(`novarec_events_rejected_total{topic="rec.feedback"}`); v < 1 {
		t.Errorf("rejected feedback not counted: %v", v)
	}
	before := metric(dropped)
	within(t, 30*time.Second, "more traffic during the outage", func() bool { return metric(dropped) >= before+50 })
	publishedDown := metric(published)

	c2 := kfakeOn(t, port)
	t.Cleanup(c2.Close)
	l.setPhase("broker back")
	took = within(t, 30*time.Second, "the buffered impressions to be delivered", func() bool { return metric(published) >= publishedDown+buffer })
	t.Logf("broker back: the buffered impressions delivered within %v", took.Round(time.Millisecond))
	l.setPhase("after")
	within(t, 30*time.Second, "traffic after recovery", func() bool { return l.get("after").ok >= 20 })
	droppedAfter := metric(dropped)
	// A client retries a 503 (Retry-After); right after an outage recsvc may
	// still refuse for a moment before it tries Kafka again.
	within(t, time.Minute, "feedback to be accepted after recovery", func() bool {
		code, _, b = feedback(item)
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Fatalf("feedback after recovery: %d %s", code, b)
		}
		return code == http.StatusAccepted
	})
	l.setPhase("done")
	l.stop()

	// New impressions arrive on the new broker.
	want := l.get("after").requestIDs
	var got map[string]bool
	within(t, 30*time.Second, "the impressions made after recovery on rec.impressions", func() bool {
		got = map[string]bool{}
		for _, m := range kafkatest.ReadAvailable(t, brokers, events.TopicImpressions, time.Second) {
			var imp events.Impression
			if err := json.Unmarshal(m.Value, &imp); err == nil {
				got[imp.RequestID] = true
			}
		}
		for _, id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})
	fbs := kafkatest.ReadAvailable(t, brokers, events.TopicFeedback, time.Second)
	if len(fbs) != 1 || !bytes.Contains(fbs[0].Value, []byte(item)) {
		t.Errorf("rec.feedback on the new broker holds %d events, want the one accepted after recovery", len(fbs))
	}
	if v := metric(dropped); v != droppedAfter {
		t.Errorf("impressions dropped after recovery: %v -> %v", droppedAfter, v)
	}
	t.Logf("impressions: %v published, %v dropped; %d on the new broker", metric(published), metric(dropped), len(got))

	// Degraded answers are about Redis, not Kafka: any number is fine here.
	checkPhase(t, l, "before", "any")
	checkPhase(t, l, "broker down", "any")
	checkPhase(t, l, "broker back", "any")
	checkPhase(t, l, "after", "any")
	if err := s.stop(); err != nil {
		t.Error(err)
	}
}

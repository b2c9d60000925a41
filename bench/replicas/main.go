// Command replicas measures how partitioned trainer replicas
// (trainer.Config.Partitioned) scale on this machine, with every part in a
// process of its own so that each one's CPU is measured apart: the broker
// (the embedded kfake cluster, as bench/kafka runs it), a Redis server of the
// command's own (redis-server on a free loopback port, no persistence), and
// one process per replica. It produces a schema-2 stream (impressions of 10
// items and clicks on ~60% of them, keyed by user, as the trainer's
// benchmarks make it) once, untimed, then runs 1 replica, 2 replicas, ...
// on it in turn, each run in a consumer group and a Redis prefix of its own
// (so it reads the whole stream from the start with no state), alternating
// the counts run after run so that load from other jobs falls on all alike.
//
//	go run ./bench/replicas -events 200000 -runs 3
//
// NOVAREC_BENCH_CPUPROFILE=path writes a CPU profile of each replica's run
// to path.PID.
//
// For each run it prints the wall time until every event was handled
// (summed over the replicas' own counts, reported every 20 ms), events per
// wall second, and, until the stored partitions account for every event
// (the replicas' commits are part of the cost; the run fails unless each
// event is counted exactly once), the CPU seconds of the replicas, the
// broker and Redis, events per replica CPU-second, and how busy the
// machine was: the cores used by these processes and by everything else
// (/proc/stat), so a reader can tell what share of the machine the
// replicas got. "steady" is the rate from the moment every replica had
// handled events (the consumer group's first rebalance behind it) to the
// end. Loopback only, bounded: a run that handles no event for a minute
// fails.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/trainer"
)

func main() {
	role := flag.String("role", "driver", "driver; broker and replica are the child processes the driver starts")
	n := flag.Int("events", 200_000, "events in the stream")
	partitions := flag.Int("partitions", 6, "partitions per topic (even, so that two replicas get equal shares)")
	counts := flag.String("replicas", "1,2", "replica counts to run, comma-separated")
	runs := flag.Int("runs", 2, "rounds over the replica counts")
	redisServer := flag.String("redis-server", "redis-server", "the redis-server binary the driver starts on a free loopback port")
	commit := flag.Duration("commit", time.Second, "the replicas' commit interval")
	items := flag.Int("items", 3000, "items in the catalog the stream draws from (the shared model learns most of them: at 100,000 its snapshot is ~15 MB)")
	procs := flag.Int("procs", 1, "GOMAXPROCS of each replica: 1, a core each, as a deployment that gives each replica one core (Go follows a container's CPU limit); 0 = Go's default, every core of the machine")
	brokers := flag.String("brokers", "", "replica: bootstrap broker")
	redisAddr := flag.String("redis", "", "replica: Redis address")
	prefix := flag.String("prefix", "", "replica: Redis key prefix")
	group := flag.String("group", "", "replica: consumer group")
	flag.Parse()
	var err error
	switch *role {
	case "broker":
		err = broker(*partitions)
	case "replica":
		err = replica(*brokers, *redisAddr, *prefix, *group, *commit, *items)
	case "driver":
		err = drive(*n, *partitions, *counts, *runs, *redisServer, *commit, *procs, *items)
	default:
		err = fmt.Errorf("unknown -role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		os.Exit(1)
	}
}

// fixedCatalog serves one snapshot: the same in every process (built from a
// fixed seed), as a deployment's trainers read the same catalog.
type fixedCatalog struct{ s *catalog.Snapshot }

func (f fixedCatalog) Current() *catalog.Snapshot { return f.s }

func benchCatalog(items int) (*catalog.Snapshot, error) {
	return catalog.Build(1, catalog.DefaultDim, catalog.Sample(items, 7))
}

// broker runs the embedded cluster until stdin closes or a signal comes,
// printing its address first.
func broker(partitions int) error {
	k, err := events.StartEmbedded(partitions)
	if err != nil {
		return err
	}
	defer k.Close()
	fmt.Println(k.Brokers()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }() // the driver died: stop too
	<-ctx.Done()
	return nil
}

// status is what a replica reports every 20 ms: its handled count (the
// counters of the partitions it holds), its own CPU time, and its commits
// and snapshots so far with the bytes they wrote to Redis.
type status struct {
	At        int64 `json:"at"` // Unix ns
	Handled   int64 `json:"handled"`
	CPU       int64 `json:"cpu"` // ns, user + system
	Commits   int64 `json:"commits"`
	Publishes int64 `json:"publishes"`
	CommitB   int64 `json:"commit_bytes"`
	PublishB  int64 `json:"publish_bytes"`
}

// replica runs one partitioned trainer until a signal comes (or stdin
// closes), printing its status as JSON lines.
func replica(brokers, redisAddr, prefix, group string, commit time.Duration, items int) error {
	snap, err := benchCatalog(items)
	if err != nil {
		return err
	}
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	cfg := trainer.DefaultConfig()
	cfg.Brokers = []string{brokers}
	cfg.Partitioned = true
	cfg.GroupID = group
	cfg.CommitInterval = commit
	// A replica hears of another's join, and hands over its partitions,
	// at its next heartbeat: every 100 ms, so that the first of the
	// replicas to join works alone for no longer (the default is 3 s).
	cfg.SessionTimeout = 6 * time.Second
	cfg.HeartbeatInterval = 100 * time.Millisecond
	tr, err := trainer.New(cfg, trainer.Deps{
		Store:   features.NewStore(client, features.Options{Prefix: prefix}),
		Catalog: fixedCatalog{snap},
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	report := func() {
		mu.Lock()
		defer mu.Unlock()
		st := tr.Stats()
		_ = enc.Encode(status{At: time.Now().UnixNano(), Handled: st.Handled(), CPU: int64(selfCPU()),
			Commits: st.Checkpoints, Publishes: st.Publishes, CommitB: st.CheckpointBytesTotal, PublishB: st.SnapshotBytesTotal})
	}
	// Ready (the CPU spent so far is the set-up's), then wait for the
	// driver's go: the replicas join the group within a millisecond of each
	// other, so that the first does not take every partition and work
	// alone until its next heartbeat tells it of the others.
	report()
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return nil
	}
	if path := os.Getenv("NOVAREC_BENCH_CPUPROFILE"); path != "" {
		// A profile per replica process, of the run only.
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	go func() { _, _ = io.Copy(io.Discard, in); stop() }() // the driver died: stop too
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				report()
			}
		}
	}()
	err = tr.Run(ctx)
	close(done)
	return err
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time of process pid so far (/proc/PID/stat: user +
// system, in clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // utime is field 14, the 12th after the name
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// machineCPU is the CPU time the machine's cores spent busy so far (user,
// nice, system, interrupts: not idle, waiting for I/O or stolen by the
// hypervisor), from /proc/stat, and the core count.
func machineCPU() (time.Duration, int, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	var busy int64
	cores := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "cpu":
			for i, x := range f[1:] {
				v, _ := strconv.ParseInt(x, 10, 64)
				if i < 3 || i == 5 || i == 6 { // user nice system (idle iowait) irq softirq (steal; guest is in user)
					busy += v
				}
			}
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			cores++
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond, cores, nil
}

// child is a started child process and its status lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	ready chan status // the first status: set up, waiting for go
	last  status
	first time.Time // when it first reported a handled event
	lines chan string
}

// start runs this command with args and, besides the environment, env.
func start(env []string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1), ready: make(chan status, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var st status
			if json.Unmarshal(sc.Bytes(), &st) != nil {
				select {
				case c.lines <- sc.Text():
				default:
				}
				continue
			}
			select {
			case c.ready <- st:
			default:
			}
			c.mu.Lock()
			c.last = st
			if st.Handled > 0 && c.first.IsZero() {
				c.first = time.Unix(0, st.At)
			}
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func (c *child) status() (status, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.first
}

// stop ends the child: SIGTERM, then SIGKILL after 30 s.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-done
	}
}

// result is one run's measurements.
type result struct {
	replicas int
	// steady is the time from the first poll after every replica had
	// handled events to the end, and steadyEvents the events handled in it.
	wall, steady             time.Duration
	committed                time.Duration // until the stored partitions counted every event
	steadyCPU                time.Duration // the replicas' CPU in steady, but for the last commit
	steadyEvents             int64
	replicaCPU               []time.Duration
	firsts                   []time.Duration // when each replica first reported handled events
	brokerCPU, redisCPU      time.Duration
	machineBusy, selfCPU     time.Duration
	cores                    int
	handled, impressions     int64
	clicks, committedHandled int64
	// commits and publishes count the replicas' commits and snapshots
	// until every event was committed, and the bytes they wrote to Redis.
	commits, publishes, commitBytes, publishBytes int64
}

func drive(n, partitions int, counts string, runs int, redisServer string, commit time.Duration, procs, items int) error {
	var replicaCounts []int
	for _, s := range strings.Split(counts, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return fmt.Errorf("-replicas: %q is not a replica count", s)
		}
		replicaCounts = append(replicaCounts, k)
	}
	rs, redisAddr, err := startRedis(redisServer)
	if err != nil {
		return err
	}
	defer func() {
		_ = rs.Process.Signal(syscall.SIGTERM)
		_ = rs.Wait()
	}()
	br, err := start(nil, "-role", "broker", "-partitions", strconv.Itoa(partitions))
	if err != nil {
		return err
	}
	defer br.stop()
	var brokerAddr string
	select {
	case brokerAddr = <-br.lines:
	case <-time.After(30 * time.Second):
		return errors.New("the broker did not print its address")
	}
	snap, err := benchCatalog(items)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "producing %d events into %d partitions per topic at %s ...\n", n, partitions, brokerAddr)
	t := time.Now()
	if err := produce(snap, brokerAddr, n); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "produced in %v\n", time.Since(t).Round(time.Millisecond))
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	var results []result
	for r := range runs {
		for i, k := range replicaCounts {
			if r%2 == 1 { // alternate the order from round to round
				k = replicaCounts[len(replicaCounts)-1-i]
			}
			name := fmt.Sprintf("r%d-n%d", r, k)
			res, err := run(client, redisAddr, rs.Process.Pid, br, brokerAddr, name, k, n, partitions, commit, procs, items)
			if err != nil {
				return fmt.Errorf("run %s: %w", name, err)
			}
			res.print(n)
			results = append(results, res)
		}
	}
	fmt.Println()
	fmt.Println("| replicas | wall s | events/s | steady events/s | replica CPU s | events per replica CPU-s (steady) | broker CPU s | Redis CPU s | cores: ours / others / machine |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, res := range results {
		res.row(n)
	}
	projectSpeedup(results)
	return nil
}

// projectSpeedup prints, for each replica count k > 1, what k replicas
// would do on k cores of their own with the broker and Redis elsewhere, as
// deployed, if each is bound by its own CPU: one replica's CPU over the
// busiest of k's (medians over the runs). On a shared machine wall times
// say more about the other jobs than about the replicas; CPU time does not.
func projectSpeedup(results []result) {
	cpu := map[int][]float64{}
	for _, r := range results {
		busiest := slices.Max(r.replicaCPU)
		cpu[r.replicas] = append(cpu[r.replicas], busiest.Seconds())
	}
	one, ok := cpu[1]
	if !ok {
		return
	}
	for k, c := range cpu {
		if k > 1 {
			fmt.Printf("projected on dedicated cores: %d replicas %.2f× one (one replica's CPU %.2f s over the busiest of %d's %.2f s, medians)\n",
				k, median(one)/median(c), median(one), k, median(c))
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startRedis starts redis-server on a free loopback port without
// persistence, and waits until it answers.
func startRedis(bin string) (*exec.Cmd, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	for range 100 {
		if client.Ping(context.Background()).Err() == nil {
			return cmd, addr, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, "", fmt.Errorf("%s on %s does not answer", bin, addr)
}

// produce writes the stream: impressions of 10 items in schema 2 and
// clicks on ~60% of them, interleaved per user (as the trainer's
// benchmarks make it, bench_test.go benchStream).
func produce(snap *catalog.Snapshot, broker string, n int) error {
	p := events.NewProducer([]string{broker}, events.ProducerOptions{Buffer: 2 * n})
	rng := rand.New(rand.NewPCG(1, 1))
	const t0 = int64(1_700_000_000_000)
	state := make([]float64, intent.Dim)
	for i := range state {
		state[i] = 0.1 * float64(i%4)
	}
	var body []byte
	for i, sent := 0, 0; sent < n; i++ {
		user := fmt.Sprintf("user-%d", i%1000)
		rid := fmt.Sprintf("r-%d", i)
		from := rng.IntN(snap.Len())
		ids := make([]string, 10)
		for j := range ids {
			ids[j] = snap.Item(int32((from + j) % snap.Len())).ID
		}
		ts := t0 + int64(i)*10
		first, _ := snap.Index(ids[0])
		imp := events.Impression{
			Schema: events.ImpressionSchema, EventID: rid, RequestID: rid, UserID: user, SessionID: "s",
			Variant: trainer.DefaultVariant, ModelVersion: "prior",
			Intent: events.Intent{Level: rng.IntN(5), Probability: 0.2, State: state},
			Taste:  snap.Embedding(first),
			TS:     ts,
		}
		for pos, id := range ids {
			j, _ := snap.Index(id)
			imp.Items = append(imp.Items, events.ImpressionItem{
				ItemID: id, Position: pos, Score: 1, Propensity: 0.2, Novelty: float64(pos % 2), Novel: pos%2 == 1,
				Features: []float64{0.3, 0, float64(snap.PopularityFeature(j))},
			})
		}
		var err error
		if body, err = imp.AppendJSON(body[:0]); err != nil {
			return err
		}
		p.Publish(events.TopicImpressions, user, append([]byte(nil), body...))
		sent++
		if rng.Float64() < 0.6 && sent < n {
			fb, err := json.Marshal(events.Feedback{
				Schema: events.SchemaVersion, EventID: "f-" + rid, RequestID: rid, UserID: user,
				ItemID: ids[rng.IntN(4)], Type: events.FeedbackClick, TS: ts + 100, Variant: trainer.DefaultVariant,
			})
			if err != nil {
				return err
			}
			p.Publish(events.TopicFeedback, user, fb)
			sent++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		return err
	}
	if st := p.Stats(); st.Published != uint64(n) {
		return fmt.Errorf("produced %d of %d events: %+v", st.Published, n, st)
	}
	return nil
}

// run starts k replicas on the stream and measures them until every event
// is handled, then stops them and checks the stored partitions.
func run(client *redis.Client, redisAddr string, redisPid int, br *child, brokerAddr, name string, k, n, partitions int, commit time.Duration, procs, items int) (result, error) {
	res := result{replicas: k}
	prefix := "bench:replicas:" + name + ":" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	args := []string{"-role", "replica", "-brokers", brokerAddr, "-redis", redisAddr, "-prefix", prefix,
		"-group", "bench-" + prefix, "-commit", commit.String(), "-items", strconv.Itoa(items)}
	reps := make([]*child, k)
	cpu0 := make([]time.Duration, k)
	var env []string
	if procs > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(procs)}
	}
	for i := range reps {
		c, err := start(env, args...)
		if err != nil {
			return res, err
		}
		reps[i] = c
		defer c.stop()
	}
	for i, c := range reps {
		select {
		case st := <-c.ready:
			cpu0[i] = time.Duration(st.CPU)
		case <-time.After(time.Minute):
			return res, errors.New("a replica did not get ready")
		}
	}
	b0, err1 := procCPU(br.cmd.Process.Pid)
	r0, err2 := procCPU(redisPid)
	m0, cores, err3 := machineCPU()
	if err := errors.Join(err1, err2, err3); err != nil {
		return res, err
	}
	res.cores = cores
	self0 := selfCPU()
	began := time.Now()
	for _, c := range reps {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			return res, err
		}
	}
	var end time.Time
	type poll struct {
		at      time.Time
		handled int64
		cpu     time.Duration // the replicas' CPU as they last reported it
	}
	var polls []poll
	last, idleSince := int64(-1), time.Now()
	for {
		time.Sleep(20 * time.Millisecond)
		var sum, latest int64
		var cpu time.Duration
		for i, c := range reps {
			st, _ := c.status()
			sum += st.Handled
			latest = max(latest, st.At)
			cpu += time.Duration(st.CPU) - cpu0[i]
		}
		polls = append(polls, poll{time.Now(), sum, cpu})
		if sum >= int64(n) {
			end = time.Unix(0, latest)
			break
		}
		if sum != last {
			last, idleSince = sum, time.Now()
		}
		if time.Since(idleSince) > time.Minute {
			return res, fmt.Errorf("stalled: %d of %d events handled", sum, n)
		}
	}
	// The CPU counts until the replicas have committed every event (their
	// commits are part of the cost per event), the wall time until they
	// had handled them (the last commit's wait is up to -commit).
	store := features.NewStore(client, features.Options{Prefix: prefix})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		got, err := trainer.CommittedCounters(ctx, store, trainer.DefaultVariant, partitions)
		if err != nil {
			return res, err
		}
		if got.Handled() >= int64(n) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(40 * time.Millisecond) // a status line after the commit
	res.committed = time.Since(began)
	b1, err1 := procCPU(br.cmd.Process.Pid)
	r1, err2 := procCPU(redisPid)
	m1, _, err3 := machineCPU()
	if err := errors.Join(err1, err2, err3); err != nil {
		return res, err
	}
	res.selfCPU = selfCPU() - self0
	res.wall = end.Sub(began)
	res.brokerCPU, res.redisCPU, res.machineBusy = b1-b0, r1-r0, m1-m0
	// The steady part starts once every replica has handled events.
	var shared time.Time
	for i, c := range reps {
		st, first := c.status()
		res.firsts = append(res.firsts, first.Sub(began))
		res.replicaCPU = append(res.replicaCPU, time.Duration(st.CPU)-cpu0[i])
		res.handled += st.Handled
		res.commits, res.publishes = res.commits+st.Commits, res.publishes+st.Publishes
		res.commitBytes, res.publishBytes = res.commitBytes+st.CommitB, res.publishBytes+st.PublishB
		if first.After(shared) {
			shared = first
		}
	}
	for _, p := range polls {
		if !p.at.Before(shared) {
			res.steady, res.steadyEvents = end.Sub(p.at), int64(n)-p.handled
			res.steadyCPU = polls[len(polls)-1].cpu - p.cpu
			break
		}
	}
	for _, c := range reps {
		if err := c.stop(); err != nil {
			return res, fmt.Errorf("replica: %w", err)
		}
	}
	got, err := trainer.CommittedCounters(ctx, store, trainer.DefaultVariant, partitions)
	if err != nil {
		return res, err
	}
	res.committedHandled, res.impressions, res.clicks = got.Handled(), got.Impressions, got.Clicks
	if got.Handled() != int64(n) || got.ImpressionDuplicates+got.FeedbackDuplicates != 0 {
		return res, fmt.Errorf("the stored partitions count %d events of %d (%+v)", got.Handled(), n, got)
	}
	return res, nil
}

func (r result) totalReplicaCPU() time.Duration {
	var t time.Duration
	for _, c := range r.replicaCPU {
		t += c
	}
	return t
}

// steadyRate is events per second after every replica had handled events
// ("—" when that was too close to the end to say).
func (r result) steadyRate() string {
	if r.steady < 200*time.Millisecond || r.steadyEvents <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(r.steadyEvents)/r.steady.Seconds(), 'f', 0, 64)
}

// steadyCost is events per replica CPU-second in steady (the group's
// first rebalance behind, the last commit not yet made).
func (r result) steadyCost() string {
	if r.steady < 200*time.Millisecond || r.steadyEvents <= 0 || r.steadyCPU <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(r.steadyEvents)/r.steadyCPU.Seconds(), 'f', 0, 64)
}

func (r result) print(n int) {
	cpu := r.totalReplicaCPU()
	ours := cpu + r.brokerCPU + r.redisCPU + r.selfCPU
	fmt.Printf("%d replica(s): %d events in %v (%.0f events/s; every replica working from %v, %d events after: steady %s); replicas' CPU %v %v = %.0f events per replica CPU-s; broker %v, Redis %v, driver %v; cores busy %.2f of %d (ours %.2f); %d commits writing %.2f MB each, %d snapshots of %.2f MB each: %.2f MB written to Redis per commit\n",
		r.replicas, n, r.wall.Round(time.Millisecond), float64(n)/r.wall.Seconds(), r.firsts, r.steadyEvents, r.steadyRate(), cpu.Round(time.Millisecond), r.replicaCPU,
		float64(n)/cpu.Seconds(), r.brokerCPU, r.redisCPU, r.selfCPU.Round(time.Millisecond),
		r.machineBusy.Seconds()/r.committed.Seconds(), r.cores, ours.Seconds()/r.committed.Seconds(),
		r.commits, perMB(r.commitBytes, r.commits), r.publishes, perMB(r.publishBytes, r.publishes), perMB(r.commitBytes+r.publishBytes, r.commits))
}

// perMB is b/n bytes in MB (0 for n = 0).
func perMB(b, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(b) / float64(n) / 1e6
}

func (r result) row(n int) {
	cpu := r.totalReplicaCPU()
	ours := cpu + r.brokerCPU + r.redisCPU + r.selfCPU
	wall := r.wall.Seconds()
	fmt.Printf("| %d | %.2f | %.0f | %s | %.2f | %.0f (%s) | %.2f | %.2f | %.2f / %.2f / %d |\n",
		r.replicas, wall, float64(n)/wall, r.steadyRate(), cpu.Seconds(), float64(n)/cpu.Seconds(), r.steadyCost(), r.brokerCPU.Seconds(), r.redisCPU.Seconds(),
		ours.Seconds()/r.committed.Seconds(), (r.machineBusy-ours).Seconds()/r.committed.Seconds(), r.cores)
}

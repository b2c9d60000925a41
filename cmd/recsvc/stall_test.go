package main

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/novarec/novarec/internal/redistest"
)

// stallProxy forwards TCP connections on loopback to a Redis and can hold
// back its replies: for a while (a stall, as a CPU-starved process sees
// Redis: the answers are there but arrive after the budget) or until
// released (a frozen Redis). It can also drop every connection and refuse
// new ones (a Redis that is gone).
type stallProxy struct {
	t        *testing.T
	upstream string
	addr     string
	// gate is held for writing while replies are held back; forwarders
	// take it for reading before they pass a reply on.
	gate sync.RWMutex

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func startStallProxy(t *testing.T, upstream string) *stallProxy {
	t.Helper()
	p := &stallProxy{t: t, upstream: upstream, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) listen(addr string) {
	p.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *stallProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
		go p.replies(c, u)
	}
}

// replies copies u's replies to c, each chunk only while the gate is open.
func (p *stallProxy) replies(c, u net.Conn) {
	defer c.Close()
	defer u.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := u.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := c.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall holds replies back for d.
func (p *stallProxy) stall(d time.Duration) {
	p.gate.Lock()
	time.Sleep(d)
	p.gate.Unlock()
}

func (p *stallProxy) freeze() { p.gate.Lock() }
func (p *stallProxy) thaw()   { p.gate.Unlock() }

// close drops every connection and stops listening: connections are
// refused until reopen.
func (p *stallProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *stallProxy) reopen() { p.listen(p.addr) }

// TestFaultSlowRedisRepliesDoNotTrip runs recsvc on a Redis whose replies a
// proxy holds back, now and then, for longer than the 100 ms budget, as
// a CPU-starved replica sees its Redis: the requests caught in a stall
// answer degraded (redis_timeout), and Redis, which answers everything
// else, is never marked down, so no request skips it. Then the proxy
// freezes (no reply at all) and drops every connection: both are real
// outages and must still mark Redis down, and recovery follows.
func TestFaultSlowRedisRepliesDoNotTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test skipped in -short mode")
	}
	bothReads(t, func(t *testing.T, batch bool) {
		mr, _ := redistest.Miniredis(t)
		p := startStallProxy(t, mr.Addr())
		s := startReading(t, p.addr, batch)
		metric := func(sample string) float64 { return metricValue(t, s.base, sample) }
		const (
			timeouts = `novarec_recommend_degraded_total{cause="redis_timeout"}`
			skipped  = `novarec_recommend_degraded_total{cause="redis_down"}`
		)
		trips := func() float64 {
			return metric(`novarec_redis_trips_total{reason="errors"}`) + metric(`novarec_redis_trips_total{reason="failure_rate"}`) +
				metric(`novarec_redis_trips_total{reason="probe"}`)
		}
		l := startLoad(t, s.base, 4)
		l.setPhase("before")
		within(t, 30*time.Second, "traffic", func() bool { return l.get("before").ok >= 20 })

		l.setPhase("stalls")
		before := metric(timeouts)
		for i := 0; i < 8 || metric(timeouts) < before+4; i++ {
			if i == 100 {
				t.Fatal("no request ran into a stall in 100 stalls")
			}
			p.stall(300 * time.Millisecond) // three budgets
			time.Sleep(700 * time.Millisecond)
		}
		l.setPhase("after stalls")
		got := checkPhase(t, l, "stalls", "any")
		t.Logf("stalls: %v requests timed out", metric(timeouts)-before)
		if n, tr := metric(skipped), trips(); n != 0 || tr != 0 {
			t.Fatalf("Redis marked down %v times while it answered (%v answers skipped it); %d of %d answers degraded",
				tr, n, got.degraded, got.ok)
		}
		if got.degraded*2 > got.ok {
			t.Errorf("%d of %d answers degraded by stalls of a third of the time", got.degraded, got.ok)
		}

		redisOutage(t, s, l, "replies frozen", p.freeze, p.thaw)
		redisOutage(t, s, l, "connections refused", p.close, p.reopen)
		l.stop()
		if trips() < 2 {
			t.Errorf("%v trips after two outages", trips())
		}
	})
}

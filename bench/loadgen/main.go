// Command loadgen drives POST /v1/recommend at a constant request rate
// (open loop, vegeta as a library), so latency percentiles are measured at a
// given throughput rather than at saturation. Bounded in rate and time; it
// targets loopback addresses only.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080 -rate 3000 -duration 30s -users 10000
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:8080", "recsvc base URL (loopback only)")
	rate := flag.Int("rate", 3000, "requests per second")
	duration := flag.Duration("duration", 30*time.Second, "how long to send (at most 10m)")
	users := flag.Int("users", 10000, "user ids are user-0 .. user-(N-1)")
	k := flag.Int("k", 10, "slate size")
	workers := flag.Uint64("workers", 64, "initial vegeta workers")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be a loopback address")
		os.Exit(2)
	}
	if *duration > 10*time.Minute {
		*duration = 10 * time.Minute
	}
	header := http.Header{"Content-Type": []string{"application/json"}}
	run := time.Now().Unix() // sessions are per run, as real sessions are short
	targeter := func(t *vegeta.Target) error {
		n := rand.IntN(*users)
		t.Method, t.URL, t.Header = "POST", *target+"/v1/recommend", header
		t.Body = fmt.Appendf(nil, `{"user_id":"user-%d","session_id":"load-%d-%d","k":%d}`, n, run, n, *k)
		return nil
	}
	attacker := vegeta.NewAttacker(vegeta.Workers(*workers), vegeta.KeepAlive(true), vegeta.Connections(256))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	var m vegeta.Metrics
	results := attacker.Attack(targeter, vegeta.Rate{Freq: *rate, Per: time.Second}, *duration, "recommend")
loop:
	for {
		select {
		case r, ok := <-results:
			if !ok {
				break loop
			}
			m.Add(r)
		case <-stop:
			attacker.Stop() // Ctrl-C: report what finished
		}
	}
	m.Close()
	fmt.Printf("rate=%d/s duration=%s requests=%d throughput=%.0f/s success=%.4f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		*rate, *duration, m.Requests, m.Throughput, m.Success,
		ms(m.Latencies.P50), ms(m.Latencies.P90), ms(m.Latencies.P99), ms(m.Latencies.Max))
	for code, n := range m.StatusCodes {
		if code != "200" {
			fmt.Printf("status %s: %d\n", code, n)
		}
	}
	if len(m.Errors) > 0 {
		fmt.Printf("errors: %v\n", m.Errors[:min(len(m.Errors), 5)])
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

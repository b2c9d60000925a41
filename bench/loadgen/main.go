// Command loadgen drives POST /v1/recommend at a constant request rate
// (open loop, vegeta as a library), so latency percentiles are measured at a
// given throughput rather than at saturation. Bounded in rate and time; it
// targets loopback addresses only.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080 -rate 3000 -duration 30s -users 10000
//	go run ./bench/loadgen -rate 2000 -duration 10m -report 30s   # a line per 30s, then the total
//
// The last line sums up the whole run (rate=… requests=… throughput=…
// success=… p50_ms=… p99_ms=… errors=…); with -report, lines starting with
// "interval" cover each period. Ctrl-C stops the attack and reports what
// finished. The environment variable NOVAREC_API_KEY, when set, is sent as
// Authorization: Bearer (recsvc on real servers requires a key).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// maxDuration bounds one run (a soak test is the longest use).
const maxDuration = time.Hour

func main() {
	target := flag.String("url", "http://127.0.0.1:8080", "recsvc base URL (loopback only)")
	rate := flag.Int("rate", 3000, "requests per second")
	duration := flag.Duration("duration", 30*time.Second, "how long to send (at most 1h)")
	users := flag.Int("users", 10000, "user ids are user-0 .. user-(N-1)")
	k := flag.Int("k", 10, "slate size")
	workers := flag.Uint64("workers", 64, "initial vegeta workers")
	report := flag.Duration("report", 0, "also print the metrics of every period this long (0 = only the total)")
	key := os.Getenv("NOVAREC_API_KEY") // not a flag: a key on the command line is visible to every user of the machine
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be a loopback address")
		os.Exit(2)
	}
	if *duration > maxDuration {
		*duration = maxDuration
	}
	header := http.Header{"Content-Type": []string{"application/json"}}
	if key != "" {
		header.Set("Authorization", "Bearer "+key)
	}
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
	var total, period vegeta.Metrics
	var tick <-chan time.Time
	if *report > 0 {
		t := time.NewTicker(*report)
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	results := attacker.Attack(targeter, vegeta.Rate{Freq: *rate, Per: time.Second}, *duration, "recommend")
loop:
	for {
		select {
		case r, ok := <-results:
			if !ok {
				break loop
			}
			total.Add(r)
			if tick != nil {
				period.Add(r)
			}
		case <-tick:
			period.Close()
			fmt.Printf("interval t=%.0fs requests=%d throughput=%.0f/s success=%.4f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
				time.Since(start).Seconds(), period.Requests, float64(period.Requests)/report.Seconds(), period.Success,
				ms(period.Latencies.P50), ms(period.Latencies.P99), ms(period.Latencies.Max), failures(&period))
			period = vegeta.Metrics{}
		case <-stop:
			attacker.Stop() // Ctrl-C: report what finished
		}
	}
	total.Close()
	fmt.Printf("rate=%d/s duration=%s requests=%d throughput=%.0f/s success=%.4f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
		*rate, *duration, total.Requests, total.Throughput, total.Success,
		ms(total.Latencies.P50), ms(total.Latencies.P90), ms(total.Latencies.P99), ms(total.Latencies.Max), failures(&total))
	codes := make([]string, 0, len(total.StatusCodes))
	for code := range total.StatusCodes {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		if code != "200" {
			fmt.Printf("status %s: %d\n", code, total.StatusCodes[code])
		}
	}
	if len(total.Errors) > 0 {
		fmt.Printf("errors: %v\n", total.Errors[:min(len(total.Errors), 5)])
	}
}

// failures counts requests that did not answer 200 (other statuses and
// transport errors, which vegeta records as status 0).
func failures(m *vegeta.Metrics) uint64 {
	return m.Requests - uint64(m.StatusCodes["200"])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

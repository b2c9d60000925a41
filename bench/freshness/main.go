// Command freshness measures how fast novarec learns: simulated users
// request slates and click on them for a while, then it reads recsvc's
// novarec_model_freshness_seconds histogram (seconds from a feedback event
// to the first response served by a model that includes it) and prints its
// percentiles. Loopback only, bounded in time.
//
//	go run ./cmd/recsvc &   # embedded mode runs the trainer in-process
//	go run ./bench/freshness -url http://127.0.0.1:8080 -duration 60s
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type slate struct {
	RequestID string `json:"request_id"`
	Items     []struct {
		ItemID string `json:"item_id"`
	} `json:"items"`
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "recsvc base URL (loopback only)")
	duration := flag.Duration("duration", 60*time.Second, "how long to run (at most 10m)")
	users := flag.Int("users", 8, "concurrent simulated users")
	pause := flag.Duration("pause", 50*time.Millisecond, "pause between a user's requests")
	variant := flag.String("variant", "default", "variant label of the histogram")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		fmt.Fprintln(os.Stderr, "freshness: -url must be a loopback address")
		os.Exit(2)
	}
	*duration = min(*duration, 10*time.Minute)
	before := histogram(*base, *variant)
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	var mu sync.Mutex
	clicks := 0
	for w := 0; w < *users; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for n := 0; time.Now().Before(deadline); n++ {
				user := fmt.Sprintf("fresh-%d-%d", w, n/10) // a new user every 10 requests
				var s slate
				if post(*base+"/v1/recommend", map[string]any{"user_id": user, "k": 10}, &s) != nil || len(s.Items) == 0 {
					continue
				}
				item := s.Items[rng.IntN(len(s.Items))].ItemID
				if post(*base+"/v1/feedback", map[string]any{"request_id": s.RequestID, "user_id": user, "item_id": item, "type": "click"}, nil) == nil {
					mu.Lock()
					clicks++
					mu.Unlock()
				}
				time.Sleep(*pause)
			}
		}()
	}
	wg.Wait()
	// Keep asking for a while so the last snapshots get served and observed.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		post(*base+"/v1/recommend", map[string]any{"user_id": "fresh-observer", "k": 1}, nil)
		time.Sleep(100 * time.Millisecond)
	}
	after := histogram(*base, *variant)
	delta := map[float64]float64{}
	for le, c := range after {
		delta[le] = c - before[le]
	}
	total := delta[math.Inf(1)]
	fmt.Printf("clicks=%d observed=%.0f p50_s=%.2f p95_s=%.2f p99_s=%.2f (bucket interpolation)\n",
		clicks, total, quantile(delta, 0.5), quantile(delta, 0.95), quantile(delta, 0.99))
}

func post(u string, body any, out any) error {
	b, _ := json.Marshal(body)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// histogram reads the cumulative buckets of the freshness histogram.
func histogram(base, variant string) map[float64]float64 {
	out := map[float64]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	prefix := "novarec_model_freshness_seconds_bucket{"
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, `variant="`+variant+`"`) {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		le, err1 := strconv.ParseFloat(line[i+4:i+4+j], 64)
		v, err2 := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err1 == nil && err2 == nil {
			out[le] = v
		}
	}
	return out
}

// quantile interpolates linearly inside the bucket holding q.
func quantile(cum map[float64]float64, q float64) float64 {
	var les []float64
	for le := range cum {
		les = append(les, le)
	}
	sort.Float64s(les)
	total := cum[math.Inf(1)]
	if total == 0 {
		return math.NaN()
	}
	rank, prevLe, prevC := q*total, 0.0, 0.0
	for _, le := range les {
		c := cum[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLe
			}
			return prevLe + (le-prevLe)*(rank-prevC)/math.Max(c-prevC, 1)
		}
		prevLe, prevC = le, c
	}
	return prevLe
}

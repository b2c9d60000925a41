package apikey

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is the token bucket of one key for one scope: Rate requests per
// second on average, at most Burst at once. A Rate of rate.Inf is no limit.
type Limit struct {
	Rate  rate.Limit
	Burst int
}

func (l Limit) String() string {
	if l.Rate == rate.Inf {
		return "off"
	}
	return strconv.FormatFloat(float64(l.Rate), 'g', -1, 64) + ":" + strconv.Itoa(l.Burst)
}

// Limits are the buckets per scope. Every key gets its own bucket for each
// scope it uses, so one runaway client cannot use up another's share. The
// buckets live in each replica: N replicas admit up to N times the rate.
type Limits map[Scope]Limit

// DefaultLimits are generous for one client of one replica and still stop
// a runaway loop before it takes the replica: a replica serves a few
// thousand recommendations a second (docs/benchmarks.md), so one key may
// take about a third of that; a catalog call carries up to 10,000 items;
// intent reads and admin calls are for people and tools.
func DefaultLimits() Limits {
	return Limits{
		Recommend:  {1000, 2000},
		Feedback:   {1000, 2000},
		Catalog:    {10, 20},
		IntentRead: {100, 200},
		Admin:      {5, 10},
	}
}

// ParseLimits applies "scope=RATE[:BURST],..." on top of DefaultLimits.
// RATE is requests per second (> 0), BURST at least 1 (default: one
// second's worth); "scope=off" lifts the limit, as a load test needs.
func ParseLimits(s string) (Limits, error) {
	l := DefaultLimits()
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		sc := Scope(strings.TrimSpace(name))
		if !ok || !sc.valid() {
			return nil, fmt.Errorf("rate limit %q: want scope=RATE[:BURST] or scope=off, scope one of %v", part, Scopes)
		}
		if val == "off" {
			l[sc] = Limit{rate.Inf, 0}
			continue
		}
		rs, bs, hasBurst := strings.Cut(val, ":")
		r, err := strconv.ParseFloat(rs, 64)
		if err != nil || !(r > 0) || math.IsInf(r, 0) {
			return nil, fmt.Errorf("rate limit %s: rate %q must be a positive number of requests per second", sc, rs)
		}
		b := int(math.Max(1, math.Ceil(r)))
		if hasBurst {
			if b, err = strconv.Atoi(bs); err != nil || b < 1 {
				return nil, fmt.Errorf("rate limit %s: burst %q must be a whole number of at least 1", sc, bs)
			}
		}
		l[sc] = Limit{rate.Limit(r), b}
	}
	return l, nil
}

// String is the flag form of l, scopes in the order of Scopes.
func (l Limits) String() string {
	var parts []string
	for _, sc := range Scopes {
		if lim, ok := l[sc]; ok {
			parts = append(parts, string(sc)+"="+lim.String())
		}
	}
	return strings.Join(parts, ",")
}

// limiter returns a new bucket for scope, nil when it is not limited. A
// scope missing from l is not limited.
func (l Limits) limiter(sc Scope) *bucket {
	lim, ok := l[sc]
	if !ok || lim.Rate == rate.Inf {
		return nil
	}
	return &bucket{lim: rate.NewLimiter(lim.Rate, lim.Burst)}
}

// bucket is a token bucket whose clock is read under its lock: requests
// that read the clock outside it can reach the limiter out of time order,
// and rate.Limiter then counts the time between them twice, admitting more
// than the rate under contention.
type bucket struct {
	mu  sync.Mutex
	lim *rate.Limiter
}

// take takes a token now, or returns how long until there is one.
func (b *bucket) take(clock func() time.Time) (wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := clock()
	if b.lim.AllowN(now, 1) {
		return 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return max(time.Duration(missing/float64(b.lim.Limit())*float64(time.Second)), time.Millisecond)
}

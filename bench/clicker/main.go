// Command clicker checks recsvc through its HTTP API with a user model of
// its own: a population of explorers and loyalists who read slates top down
// and send clicks only, never skips, as most apps do. It imports none of the
// service's policy or simulator packages and knows the catalog only as a
// client does (the item route, or MovieLens' files with -movielens), so it
// judges the service on traffic it was not built against.
//
//	go run ./cmd/recsvc -addr 127.0.0.1:8080 &
//	go run ./bench/clicker -addr http://127.0.0.1:8080 -seed 1
//	go run ./bench/clicker -addr http://127.0.0.1:8080,http://127.0.0.1:8081 -seed 2   # two servers side by side
//
// Each user (-explorers, -loyalists) has a latent taste per category and
// plays -sessions sessions of -slates slates. A session explores with
// probability -explorer-rho or -loyalist-rho; exploring, the user is drawn to
// items novel to them (no category of anything they clicked, not shown
// before), exploiting, to items like those they clicked. They examine a
// slate as a cascade (-continue after an unclicked item, -continue-click
// after a click, at most -max-clicks) and click an examined item with
// probability -click-rate × its appeal. The output sets explorers against
// loyalists per server: clicks, the novel share served (from the user's
// view and by the service's flag), the reported propensities and how well
// they separate the groups and the sessions' modes (AUC), and what a cold
// user gets. Runs are bounded (-timeout per server, at most 1h; at most 10,000 users)
// and deterministic given -seed, apart from the service's own draws.
// Loopback servers only. NOVAREC_API_KEY, when set, is sent as a bearer key
// (it needs the recommend, feedback, catalog and intent:read scopes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

// Bounds of one run: the clicker is a check, not a load test.
const (
	maxTimeout = time.Hour
	maxUsers   = 10000
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "clicker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("clicker", flag.ContinueOnError)
	addrs := fs.String("addr", "http://127.0.0.1:8080", "recsvc base URL, or several comma-separated to run the same users against each (loopback only)")
	p := Population{Behaviour: DefaultBehaviour()}
	fs.IntVar(&p.Explorers, "explorers", 30, "users whose sessions mostly explore")
	fs.IntVar(&p.Loyalists, "loyalists", 30, "users whose sessions mostly exploit")
	fs.Float64Var(&p.ExplorerRho, "explorer-rho", 0.8, "probability that an explorer's session explores")
	fs.Float64Var(&p.LoyalistRho, "loyalist-rho", 0.1, "probability that a loyalist's session explores")
	fs.IntVar(&p.Sessions, "sessions", 3, "sessions per user")
	fs.IntVar(&p.Slates, "slates", 8, "slates per session")
	fs.IntVar(&p.K, "k", 10, "slate size")
	fs.DurationVar(&p.Think, "think", 300*time.Millisecond, "pause after a slate's clicks before the next request")
	fs.IntVar(&p.Concurrency, "concurrency", 8, "users played at once")
	fs.Uint64Var(&p.Seed, "seed", 1, "seed of the users' tastes, modes and clicks")
	fs.StringVar(&p.RunID, "run", "", "user id infix (default: the seed and the start time, so each run's users are new)")
	b := &p.Behaviour
	fs.Float64Var(&b.ClickRate, "click-rate", b.ClickRate, "click probability of an examined item that fully appeals")
	fs.Float64Var(&b.Continue, "continue", b.Continue, "probability of examining the next item after an unclicked one")
	fs.Float64Var(&b.ContinueClick, "continue-click", b.ContinueClick, "probability of examining the next item after a click")
	fs.IntVar(&b.MaxClicks, "max-clicks", b.MaxClicks, "most clicks on one slate")
	fs.Float64Var(&b.OffIntent, "off-intent", b.OffIntent, "appeal of an item of the other intent, times taste")
	fs.Float64Var(&b.SeenDiscount, "seen-discount", b.SeenDiscount, "factor on an exploring user's appeal of a novel item shown before")
	fs.Float64Var(&b.LikedShare, "liked-share", b.LikedShare, "share of categories a user likes")
	movielens := fs.String("movielens", "", "MovieLens directory (movies.csv, ratings.csv): users take the genre tastes of its raters, and items the service will not describe take its genres; skipped with a note when absent")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound of the run against each server (at most 1h)")
	verify := fs.Duration("verify", 15*time.Second, "after the run, wait up to this long for the service to report every click sent (0 = do not check)")
	asJSON := fs.Bool("json", false, "print the summaries as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	servers, err := loopback(*addrs)
	if err != nil {
		return err
	}
	if err := p.check(); err != nil {
		return err
	}
	if p.RunID == "" {
		p.RunID = fmt.Sprintf("%d-%d", p.Seed, time.Now().Unix())
	}
	var fallback map[string][]string
	if *movielens != "" {
		ml, err := loadMovieLens(*movielens)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(os.Stderr, "clicker: -movielens %s: %v; using generated tastes\n", *movielens, err)
		case err != nil:
			return err
		default:
			p.Tastes, fallback = ml.tastes(p.Seed), ml.genres
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var sums []Summary
	for _, server := range servers {
		c := NewClient(server, os.Getenv("NOVAREC_API_KEY"))
		c.Fallback = fallback
		start := time.Now()
		s, err := runServer(ctx, c, p, min(*timeout, maxTimeout), *verify)
		if err != nil {
			return fmt.Errorf("%s: %w", server, err)
		}
		fmt.Fprintf(os.Stderr, "clicker: %s: %d slates, %d clicks in %s\n", server, s.Explorers.Slates+s.Loyalists.Slates, s.ClicksSent, time.Since(start).Round(time.Second))
		sums = append(sums, s)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sums)
	}
	fmt.Printf("seed=%d explorers=%d (rho %.2f) loyalists=%d (rho %.2f) sessions=%d slates=%d k=%d; columns: explorers / loyalists\n",
		p.Seed, p.Explorers, p.ExplorerRho, p.Loyalists, p.LoyalistRho, p.Sessions, p.Slates, p.K)
	Print(os.Stdout, sums)
	return nil
}

// runServer plays the population against one server within timeout and
// sums it up; with verify > 0 it then waits that long at most for the
// service to report every click sent.
func runServer(ctx context.Context, c *Client, p Population, timeout, verify time.Duration) (Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	recs, sent, err := Run(ctx, c, p)
	if err != nil {
		return Summary{}, err
	}
	s := Summarise(c.Base, recs)
	s.ClicksSent, s.ClicksRecorded = sent, -1
	if verify > 0 {
		if s.ClicksRecorded, err = Recorded(ctx, c, p, sent, verify); err != nil {
			return s, fmt.Errorf("checking recorded clicks: %w", err)
		}
	}
	s.Retried = c.Retried.Load()
	return s, nil
}

// check refuses populations and behaviours that cannot run or would run
// unbounded.
func (p Population) check() error {
	b := p.Behaviour
	switch {
	case p.Explorers < 0 || p.Loyalists < 0 || p.Explorers+p.Loyalists == 0 || p.Explorers+p.Loyalists > maxUsers:
		return fmt.Errorf("-explorers and -loyalists must be ≥ 0 with 1..%d users in all", maxUsers)
	case p.Sessions < 1 || p.Sessions > 100 || p.Slates < 1 || p.Slates > 100:
		return errors.New("-sessions and -slates must be in 1..100")
	case p.K < 1 || p.K > 100:
		return errors.New("-k must be in 1..100")
	case p.Concurrency < 1 || p.Concurrency > 256:
		return errors.New("-concurrency must be in 1..256")
	case p.Think < 0 || p.Think > time.Minute:
		return errors.New("-think must be in 0..1m")
	case b.MaxClicks < 1:
		return errors.New("-max-clicks must be ≥ 1")
	}
	for name, v := range map[string]float64{"-explorer-rho": p.ExplorerRho, "-loyalist-rho": p.LoyalistRho,
		"-click-rate": b.ClickRate, "-continue": b.Continue, "-continue-click": b.ContinueClick,
		"-off-intent": b.OffIntent, "-seen-discount": b.SeenDiscount, "-liked-share": b.LikedShare} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%s must be in [0, 1], not %v", name, v)
		}
	}
	return nil
}

// loopback splits the -addr list and refuses any server that is not on
// this machine's loopback: the clicker sends synthetic traffic and must
// not reach a real deployment by a typo.
func loopback(list string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("-addr %q: %w", a, err)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
			return nil, fmt.Errorf("-addr %q: loopback addresses only", a)
		}
		out = append(out, strings.TrimRight(a, "/"))
	}
	if len(out) == 0 {
		return nil, errors.New("-addr: no server")
	}
	return out, nil
}

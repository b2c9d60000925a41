package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Population is who the clicker simulates and how long.
type Population struct {
	Explorers, Loyalists int
	// ExplorerRho and LoyalistRho are the probabilities that a session of
	// an explorer or a loyalist explores.
	ExplorerRho, LoyalistRho float64
	Sessions, Slates, K      int
	// Think is the pause after a slate's clicks before the next request,
	// as a reading user makes; it also lets the service apply the clicks.
	Think       time.Duration
	Concurrency int
	Seed        uint64
	// RunID keeps user ids of different runs apart, so every run's users
	// are new to the service; it does not enter any random draw.
	RunID     string
	Behaviour Behaviour
	// Tastes, when set, gives user i's tastes by category (MovieLens).
	Tastes func(i int) map[string]float64
}

// Users builds the population, deterministically from the seed.
func (p Population) Users() []*User {
	n := p.Explorers + p.Loyalists
	users := make([]*User, n)
	for i := range users {
		explorer := i < p.Explorers
		rho, kind := p.LoyalistRho, "l"
		if explorer {
			rho, kind = p.ExplorerRho, "e"
		}
		var tastes map[string]float64
		if p.Tastes != nil {
			tastes = p.Tastes(i)
		}
		seed := rand.New(rand.NewPCG(p.Seed, uint64(i))).Uint64()
		users[i] = NewUser(fmt.Sprintf("clicker-%s-%s%d", p.RunID, kind, i), explorer, rho, p.Behaviour, seed, tastes)
	}
	return users
}

// SlateRecord is what one served slate showed and what the user did.
type SlateRecord struct {
	User           int
	Explorer       bool
	Session, Slate int
	// Explore is the session's true mode.
	Explore bool
	Shown   int
	// ClientNovel counts items novel from the user's view (User.Novel);
	// ServiceNovel those the service flagged novel.
	ClientNovel, ServiceNovel int
	// Disagree counts items the service flagged novel although the user
	// has clicked one of their categories: the slate was built before the
	// service applied an earlier click, or the service judges novelty by
	// its learned topics, not categories (docs/collaborative.md).
	Disagree int
	Clicks   int
	// ClicksFlagged counts the clicks on items the service flagged novel:
	// in an exploiting session they are the evidence of exploring that
	// the user did not mean.
	ClicksFlagged int
	// ClicksBefore is the user's clicks before this slate, SessionClicks
	// those in this session before it.
	ClicksBefore, SessionClicks int
	SessionPropensity, UserProp float64
	Level                       int
	Variant, ModelVersion       string
	Degraded                    bool
}

// Run drives every user of the population through its sessions against
// the service and returns the slates in user order (the same order
// whatever the concurrency) and the clicks sent. The first error stops
// the run.
func Run(ctx context.Context, c *Client, p Population) ([]SlateRecord, int, error) {
	users := p.Users()
	perUser := make([][]SlateRecord, len(users))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range max(1, p.Concurrency) {
		wg.Go(func() {
			for i := range next {
				recs, err := runUser(ctx, c, p, i, users[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("user %s: %w", users[i].ID, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				perUser[i] = recs
			}
		})
	}
feed:
	for i := range users {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	var all []SlateRecord
	clicks := 0
	for _, recs := range perUser {
		for _, r := range recs {
			clicks += r.Clicks
		}
		all = append(all, recs...)
	}
	return all, clicks, firstErr
}

// runUser plays one user's sessions. The user's draws come from a source
// of its own, so that the concurrency does not change them.
func runUser(ctx context.Context, c *Client, p Population, i int, u *User) ([]SlateRecord, error) {
	rng := rand.New(rand.NewPCG(p.Seed, 1<<32|uint64(i)))
	var recs []SlateRecord
	total := 0
	for s := range p.Sessions {
		explore := rng.Float64() < u.Rho
		session := fmt.Sprintf("%s-s%d", u.ID, s)
		sessionClicks := 0
		for j := range p.Slates {
			resp, err := c.Recommend(ctx, u.ID, session, p.K)
			if err != nil {
				return recs, err
			}
			slate := make([]Item, len(resp.Items))
			r := SlateRecord{User: i, Explorer: u.Explorer, Session: s, Slate: j, Explore: explore,
				Shown: len(slate), ClicksBefore: total, SessionClicks: sessionClicks,
				SessionPropensity: resp.Intent.SessionPropensity, UserProp: resp.Intent.UserPropensity,
				Level: resp.Intent.Level, Variant: resp.Variant, ModelVersion: resp.ModelVersion, Degraded: resp.Degraded}
			for k, it := range resp.Items {
				cats, err := c.Categories(ctx, it.ItemID)
				if err != nil {
					return recs, err
				}
				slate[k] = Item{ID: it.ItemID, Categories: cats}
				novel := u.Novel(slate[k])
				if novel {
					r.ClientNovel++
				}
				if it.Novel && !novel {
					r.Disagree++
				}
				if it.Novel {
					r.ServiceNovel++
				}
			}
			clicks := u.Browse(rng, slate, explore)
			for _, k := range clicks {
				if err := c.Click(ctx, u.ID, session, resp.RequestID, slate[k].ID); err != nil {
					return recs, err
				}
			}
			u.Record(slate, clicks)
			r.Clicks = len(clicks)
			for _, k := range clicks {
				if resp.Items[k].Novel {
					r.ClicksFlagged++
				}
			}
			total += len(clicks)
			sessionClicks += len(clicks)
			recs = append(recs, r)
			select {
			case <-time.After(p.Think):
			case <-ctx.Done():
				return recs, ctx.Err()
			}
		}
	}
	return recs, nil
}

// Recorded waits up to wait for the service to hold the clicks sent for
// the users (the feature updater applies them asynchronously) and returns
// how many it holds.
func Recorded(ctx context.Context, c *Client, p Population, sent int, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		got := 0
		for _, u := range p.Users() {
			n, err := c.RecordedClicks(ctx, u.ID)
			if err != nil {
				return got, err
			}
			got += n
		}
		if got >= sent || time.Now().After(deadline) {
			return got, nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

// Package sim is novarec's user simulator (DESIGN.md §7): a population whose
// novelty-seeking intent is known, so that policies can be compared on
// long-term engagement and the high level's intent estimates scored against
// ground truth, neither of which logged data can show.
//
// Each simulated user has a static novelty propensity ρ_u ~ Beta(a, b). At
// each session start the session's mode is drawn from it (explore with
// probability ρ_u, else exploit) and within the session the mode switches by
// a two-state Markov chain. Users have an affinity for every topic (the
// catalog's categories): high for a few core topics their history starts
// in, latent and lower elsewhere; clicking an item of a topic new to them
// raises that topic's affinity (novelty widens horizons). A user scans a
// slate top-down (a position-biased cascade) and clicks an item with a
// probability that grows with affinity and popularity, and with the item's
// novelty nov(u,i) in explore mode or its familiarity 1 − nov(u,i) in exploit
// mode. Sessions end after unrewarding steps; satisfied users (more clicks in
// the session) return for another session with higher probability, the
// others churn. Every event goes through recommend.Observe exactly as the
// service's feature updater applies it, and every decision through the
// policy under test, which learns online.
//
// Everything is seeded (math/rand/v2 PCG) and deterministic: the same
// configuration, policy and seed give identical results.
package sim

import (
	"errors"
	"fmt"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
)

// Config is the simulator's configuration. DefaultConfig documents the
// defaults; every field must be set (use DefaultConfig and change fields).
type Config struct {
	// Population and run length.

	// Users is the population size.
	Users int `json:"users"`
	// Sessions caps the sessions per user; users churn before that.
	Sessions int `json:"sessions"`
	// Steps caps the decisions (slates) per session.
	Steps int `json:"steps"`
	// K is the slate size.
	K int `json:"k"`

	// Catalog.

	// Items is the size of the generated catalog (catalog.Sample) used
	// when Catalog is nil; CatalogSeed seeds it.
	Items       int    `json:"items"`
	CatalogSeed uint64 `json:"catalog_seed"`
	// Catalog, when set, is used instead of a generated one.
	Catalog *catalog.Snapshot `json:"-"`

	// Policy configures the policies under test (reward weights, learning
	// rates, engine settings).
	Policy policy.Config `json:"policy"`

	// Intent.

	// RhoA and RhoB are the Beta(a, b) of the users' static novelty
	// propensity ρ_u: the probability that a session starts in explore mode.
	RhoA float64 `json:"rho_a"`
	RhoB float64 `json:"rho_b"`
	// ExploreToExploit and ExploitToExplore are the per-step switching
	// probabilities of the session mode's Markov chain.
	ExploreToExploit float64 `json:"explore_to_exploit"`
	ExploitToExplore float64 `json:"exploit_to_explore"`

	// Tastes.

	// CoreTopics is how many topics a user's history starts in, and
	// InitialHistory how many items it starts with.
	CoreTopics     int `json:"core_topics"`
	InitialHistory int `json:"initial_history"`
	// CoreAffinityA/B and OtherAffinityA/B are the Beta distributions of
	// the affinity for core topics and for the other (latent) topics.
	CoreAffinityA  float64 `json:"core_affinity_a"`
	CoreAffinityB  float64 `json:"core_affinity_b"`
	OtherAffinityA float64 `json:"other_affinity_a"`
	OtherAffinityB float64 `json:"other_affinity_b"`
	// AffinityGrowth moves a topic's affinity this share of the way to 1
	// when the user clicks an item of that topic new to them.
	AffinityGrowth float64 `json:"affinity_growth"`

	// Click model: P(click | examined) = σ(ClickBias + AffinityWeight·aff
	// + PopularityWeight·pop + ModeWeight·m), with aff the mean affinity
	// of the item's topics, pop the catalog's popularity feature in [0,1],
	// and m = nov(u,i) in explore mode, 1 − nov(u,i) in exploit mode.

	ClickBias        float64 `json:"click_bias"`
	AffinityWeight   float64 `json:"affinity_weight"`
	PopularityWeight float64 `json:"popularity_weight"`
	ModeWeight       float64 `json:"mode_weight"`
	// QualityWeight weighs each item's latent quality q_i ~ N(0, 1) (drawn
	// from CatalogSeed, the same for every policy) in the click logit;
	// LatentWeight weighs ⟨w_u, v_i⟩, a user's and an item's LatentDim-d
	// factors (unit Gaussian directions) that no category describes. They
	// give the population collaborative structure (items everyone likes,
	// items liked by the same people) that only learning from consumption
	// can find, so the simulator is not built around categories alone.
	QualityWeight float64 `json:"quality_weight"`
	LatentWeight  float64 `json:"latent_weight"`
	LatentDim     int     `json:"latent_dim"`
	// SkipEvents makes the simulated client send a skip event for every
	// examined item it does not click, as an instrumented app would; false
	// is a clicks-only client (most apps), whose skips the service must
	// infer from what it showed.
	SkipEvents bool `json:"skip_events"`
	// ContinueAfterClick and ContinueAfterSkip are the probabilities that
	// the user examines the next position after clicking or passing over
	// one (the cascade's position bias).
	ContinueAfterClick float64 `json:"continue_after_click"`
	ContinueAfterSkip  float64 `json:"continue_after_skip"`

	// Sessions and returns.

	// LeaveAfterClick and LeaveAfterNoClick are the probabilities that the
	// session ends after a step with and without a click.
	LeaveAfterClick   float64 `json:"leave_after_click"`
	LeaveAfterNoClick float64 `json:"leave_after_no_click"`
	// A user whose session had c clicks returns for another with
	// probability ReturnMin + (ReturnMax − ReturnMin)·(1 − e^(−c/ReturnScale)).
	ReturnMin   float64 `json:"return_min"`
	ReturnMax   float64 `json:"return_max"`
	ReturnScale float64 `json:"return_scale"`

	// History caps the history window H of recommend.Observe (0: the
	// service's default).
	History int `json:"history"`

	// Workers bounds Compare's parallel runs (0: GOMAXPROCS). Results do
	// not depend on it.
	Workers int `json:"-"`
	// NewPolicy, if set, builds Compare's policies by name in place of
	// NewPolicy (the trainer's simulate wraps learning policies in
	// partitioned replicas this way, which this package cannot import).
	NewPolicy func(name string, cfg policy.Config) (policy.Policy, error) `json:"-"`
}

// DefaultConfig is a population of 1,000 users with up to 12 sessions of up
// to 15 slates of 10 from a 3,000-item sample catalog, sized so that the
// default comparison (five policies, five seeds: about 150,000 decisions
// per policy) takes well under a minute on two cores. ρ_u ~ Beta(2, 3) (mean 0.4: most sessions exploit, a sizeable
// minority explore); the mode switches rarely within a session (0.1 and
// 0.05 per step), so a session has a recognisable intent. Click
// probabilities of a well-matched item are around 0.5–0.8 and of a
// mismatched one 0.05–0.2; satisfied users return with probability up to
// 0.95, users who clicked nothing with 0.3.
func DefaultConfig() Config {
	return Config{
		Users: 1000, Sessions: 12, Steps: 15, K: 10,
		Items: 3000, CatalogSeed: 1,
		Policy: policy.DefaultConfig(),
		RhoA:   2, RhoB: 3,
		ExploreToExploit: 0.1, ExploitToExplore: 0.05,
		CoreTopics: 3, InitialHistory: 20,
		CoreAffinityA: 8, CoreAffinityB: 2,
		OtherAffinityA: 2, OtherAffinityB: 4,
		AffinityGrowth: 0.3,
		ClickBias:      -4.5, AffinityWeight: 3, PopularityWeight: 1, ModeWeight: 2.5,
		LatentDim: 8, SkipEvents: true,
		ContinueAfterClick: 0.5, ContinueAfterSkip: 0.8,
		LeaveAfterClick: 0.1, LeaveAfterNoClick: 0.35,
		ReturnMin: 0.3, ReturnMax: 0.95, ReturnScale: 3,
	}
}

// Validate rejects a configuration the simulator cannot run.
func (c *Config) Validate() error {
	prob := func(name string, p float64) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("sim: %s = %v is not a probability", name, p)
		}
		return nil
	}
	switch {
	case c.Users < 1:
		return errors.New("sim: need at least one user")
	case c.Sessions < 1 || c.Steps < 1:
		return errors.New("sim: sessions and steps must be positive")
	case c.K < 1 || c.K > 100:
		return fmt.Errorf("sim: k = %d out of range 1..100", c.K)
	case c.Catalog == nil && c.Items < c.K:
		return fmt.Errorf("sim: %d items cannot fill a slate of %d", c.Items, c.K)
	case !(c.RhoA > 0 && c.RhoB > 0 && c.CoreAffinityA > 0 && c.CoreAffinityB > 0 && c.OtherAffinityA > 0 && c.OtherAffinityB > 0):
		return errors.New("sim: Beta parameters must be positive")
	case c.CoreTopics < 1 || c.InitialHistory < 1:
		return errors.New("sim: users need core topics and an initial history")
	case c.LatentWeight != 0 && c.LatentDim < 1:
		return errors.New("sim: latent_weight needs latent_dim ≥ 1")
	case c.ReturnScale <= 0:
		return errors.New("sim: return scale must be positive")
	}
	for _, p := range []struct {
		name string
		p    float64
	}{
		{"explore_to_exploit", c.ExploreToExploit}, {"exploit_to_explore", c.ExploitToExplore},
		{"affinity_growth", c.AffinityGrowth},
		{"continue_after_click", c.ContinueAfterClick}, {"continue_after_skip", c.ContinueAfterSkip},
		{"leave_after_click", c.LeaveAfterClick}, {"leave_after_no_click", c.LeaveAfterNoClick},
		{"return_min", c.ReturnMin}, {"return_max", c.ReturnMax},
	} {
		if err := prob(p.name, p.p); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns the configured catalog, generating it if needed.
func (c *Config) snapshot() (*catalog.Snapshot, error) {
	if c.Catalog != nil {
		return c.Catalog, nil
	}
	return catalog.Build(1, catalog.DefaultDim, catalog.Sample(c.Items, c.CatalogSeed))
}

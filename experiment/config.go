// Package experiment runs A/B tests of novelty reward weights (DESIGN.md §8):
// the experiment file, stable assignment of users to variants, and the
// statistics of the report. It does no I/O beyond reading the file it is
// given.
package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"regexp"
	"slices"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// Variant is one arm of the experiment: a share of the traffic and the
// reward weights its learner trains with, or a fixed baseline it is
// served instead.
type Variant struct {
	Name   string                  `yaml:"name" json:"name"`
	Share  float64                 `yaml:"share" json:"share"`
	Reward recommend.RewardWeights `yaml:"reward" json:"reward"`
	// Policy is what the arm is served: empty (or "hrl") for the variant's
	// learned two-level model, or a fixed baseline of policy.NewFixed
	// ("mmr", "popular"), so an experiment can judge the learned policy
	// against a standard baseline on live traffic as the simulator and
	// the replay judge it offline. A baseline arm's reward weights are not
	// used for serving; its events still feed the A/B report.
	Policy string `yaml:"policy,omitempty" json:"policy,omitempty"`
}

// Learned is the Policy of an arm served its variant's learned model.
const Learned = policy.HRL

// Baseline reports whether the arm is served a fixed baseline rather than
// its learned model.
func (v *Variant) Baseline() bool { return v.Policy != "" && v.Policy != Learned }

// Config is an experiments file:
//
//	name: novelty-weights
//	salt: 2026-11
//	control: control          # optional, default the first variant
//	variants:
//	  - {name: control, share: 0.5, reward: {w_nov: 0, w_div: 0}}
//	  - {name: nov3,    share: 0.5, reward: {w_nov: 3, w_div: 0.1}}
type Config struct {
	Name     string    `yaml:"name" json:"name"`
	Salt     string    `yaml:"salt" json:"salt"`
	Control  string    `yaml:"control" json:"control"`
	Variants []Variant `yaml:"variants" json:"variants"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidationError names the offending field of an experiments file.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return "experiment: " + e.Field + ": " + e.Msg }

// shareTolerance absorbs decimal rounding in hand-written shares.
const shareTolerance = 1e-6

// Parse reads and validates an experiments file. Unknown fields are errors,
// so a typo cannot silently change an experiment.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("experiment: parse: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads the experiments file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	return Parse(b)
}

// Validate checks names, shares and weights, and defaults Control.
func (c *Config) Validate() error {
	if !namePattern.MatchString(c.Name) {
		return &ValidationError{"name", "must be 1-64 letters, digits, '_', '.', '-'"}
	}
	if c.Salt == "" {
		return &ValidationError{"salt", "is required (changing it reshuffles users)"}
	}
	if len(c.Variants) == 0 {
		return &ValidationError{"variants", "at least one variant is required"}
	}
	seen := map[string]bool{}
	total := 0.0
	for i, v := range c.Variants {
		field := fmt.Sprintf("variants[%d]", i)
		switch {
		case !namePattern.MatchString(v.Name):
			return &ValidationError{field + ".name", "must be 1-64 letters, digits, '_', '.', '-'"}
		case seen[v.Name]:
			return &ValidationError{field + ".name", fmt.Sprintf("duplicate variant %q", v.Name)}
		case math.IsNaN(v.Share) || v.Share < 0 || v.Share > 1:
			return &ValidationError{field + ".share", "must be between 0 and 1"}
		case !finite(v.Reward.Novelty) || !finite(v.Reward.Diversity):
			return &ValidationError{field + ".reward", "weights must be finite numbers"}
		case v.Baseline() && !slices.Contains(policy.FixedNames(), v.Policy):
			return &ValidationError{field + ".policy", fmt.Sprintf("unknown policy %q (known: %s and the fixed baselines %v)", v.Policy, Learned, policy.FixedNames())}
		}
		seen[v.Name] = true
		total += v.Share
	}
	if math.Abs(total-1) > shareTolerance {
		return &ValidationError{"variants", fmt.Sprintf("shares sum to %g, want 1", total)}
	}
	if c.Control == "" {
		c.Control = c.Variants[0].Name
	} else if !seen[c.Control] {
		return &ValidationError{"control", fmt.Sprintf("no variant named %q", c.Control)}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// ErrNoVariant is returned by Variant for a name the experiment lacks.
var ErrNoVariant = errors.New("experiment: no such variant")

// Variant returns the variant named name.
func (c *Config) Variant(name string) (*Variant, error) {
	for i := range c.Variants {
		if c.Variants[i].Name == name {
			return &c.Variants[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoVariant, name)
}

// Assign buckets a user: a stable hash of (salt, user id) mapped to [0,1)
// and cut by the cumulative shares. It depends on nothing but its inputs, so
// every process and restart agrees, a user stays in one variant while the
// salt and shares stay, and a new salt reshuffles everyone.
func (c *Config) Assign(userID string) *Variant {
	u := Bucket(c.Salt, userID)
	acc := 0.0
	for i := range c.Variants {
		acc += c.Variants[i].Share
		if u < acc {
			return &c.Variants[i]
		}
	}
	// Rounding left u above the last cumulative share: the last variant
	// with traffic takes it.
	for i := len(c.Variants) - 1; i >= 0; i-- {
		if c.Variants[i].Share > 0 {
			return &c.Variants[i]
		}
	}
	return &c.Variants[len(c.Variants)-1]
}

// Bucket maps (salt, user id) uniformly to [0,1): FNV-1a over both, with a
// zero byte between so ("ab","c") and ("a","bc") differ, then the
// SplitMix64 finaliser so nearby ids spread evenly.
func Bucket(salt, userID string) float64 {
	h := fnv.New64a()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// File holds the experiment read from a file and reloads it on demand; a
// reload that fails validation keeps the running experiment.
type File struct {
	path string
	cur  atomic.Pointer[Config]
}

// OpenFile loads the experiments file at path.
func OpenFile(path string) (*File, error) {
	f := &File{path: path}
	if _, err := f.Reload(context.Background()); err != nil {
		return nil, err
	}
	return f, nil
}

// Current returns the running experiment.
func (f *File) Current() *Config { return f.cur.Load() }

// Reload re-reads the file and swaps the experiment in if it is valid.
func (f *File) Reload(context.Context) (*Config, error) {
	c, err := Load(f.path)
	if err != nil {
		return nil, err
	}
	f.cur.Store(c)
	return c, nil
}

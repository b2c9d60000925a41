// Package collab learns how items relate from what users consume: an
// item-to-item co-occurrence model counted incrementally from every
// engagement, fitted into neighbour lists (item-based collaborative
// filtering), item embeddings (a low-rank factorisation of the normalised
// co-occurrence graph) and topics (clusters of those embeddings). It is pure
// computation: the trainer feeds it the feedback stream and the stored
// histories, replay and the simulator feed it their events, and all of them
// publish the same Model, which catalog.Snapshot.WithLearned folds into the
// serving catalog.
//
// Why co-occurrence: it is incremental (an engagement adds one row of counts
// and nothing else changes), it needs no user parameters (so a user who
// arrives with a history is served at once, with no fold-in), and item-based
// neighbourhoods are the strongest simple method on sequential consumption
// data such as MovieLens (see docs/collaborative.md for the measurements).
// The embeddings factorise the same statistics (Levy and Goldberg, 2014,
// show that item2vec-style skip-gram training does so implicitly), so the
// neighbour lists, the embedding space and the topics agree with each other.
package collab

import (
	"cmp"
	"errors"
	"math"
	"slices"
)

// Config sets how engagements are counted and how a Model is fitted.
type Config struct {
	// Window is how many of the user's most recent engaged items each new
	// engagement is paired with.
	Window int `json:"window"`
	// Decay weighs a pair by the distance of its two items in the user's
	// sequence: the k-th most recent item counts Decay^k. Items consumed
	// close together are more alike than items a hundred ratings apart.
	Decay float64 `json:"decay"`
	// RowCap bounds the co-occurrence entries kept per item between fits;
	// a row that outgrows it loses its weakest half, which bounds memory
	// by items × RowCap whatever the traffic.
	RowCap int `json:"row_cap"`
	// Neighbors is how many neighbours a fitted item keeps.
	Neighbors int `json:"neighbors"`
	// Alpha is the exponent of the asymmetric cosine
	// c_ij / (n_i^α · n_j^(1−α)); 0.5 is the cosine.
	Alpha float64 `json:"alpha"`
	// Shrink is added to the denominator, damping similarities supported
	// by few co-occurrences.
	Shrink float64 `json:"shrink"`
	// Dim is the embedding dimension; it must equal the catalog's.
	Dim int `json:"dim"`
	// Topics is how many topics the embeddings are clustered into; 0
	// scales with the catalog (see TopicsFor).
	Topics int `json:"topics"`
	// MinCount is the number of engagements from which an item gets an
	// embedding and a topic of its own; rarer items stay cold.
	MinCount int `json:"min_count"`
}

// DefaultConfig suits catalogs from a few thousand to a few hundred
// thousand items.
func DefaultConfig() Config {
	return Config{Window: 50, Decay: 0.97, RowCap: 1000, Neighbors: 100, Alpha: 0.5, Shrink: 1, Dim: 32, MinCount: 3}
}

// Validate rejects settings a fit cannot use.
func (c Config) Validate() error {
	switch {
	case c.Window < 1:
		return errors.New("collab: window must be at least 1")
	case !(c.Decay > 0 && c.Decay <= 1):
		return errors.New("collab: decay must be in (0, 1]")
	case c.RowCap < 2:
		return errors.New("collab: row cap must be at least 2")
	case c.Neighbors < 1:
		return errors.New("collab: neighbors must be at least 1")
	case !(c.Alpha >= 0 && c.Alpha <= 1):
		return errors.New("collab: alpha must be in [0, 1]")
	case !(c.Shrink >= 0) || math.IsInf(c.Shrink, 0):
		return errors.New("collab: shrink must be finite and not negative")
	case c.Dim < 2 || c.Dim > 1024:
		return errors.New("collab: dim must be in 2..1024")
	case c.Topics < 0:
		return errors.New("collab: topics must not be negative")
	case c.MinCount < 1:
		return errors.New("collab: min count must be at least 1")
	}
	return nil
}

// TopicsFor is the default number of topics for n items with embeddings:
// about one per 25 items, between 8 and 4096. Fine enough that an engaged
// user has not consumed every topic (MovieLens's 20 genres are all seen by
// most of its users), coarse enough that a topic holds items a user would
// call alike.
func TopicsFor(n int) int {
	return min(max(n/25, 8), 4096)
}

// Counts accumulates engagement and co-occurrence counts. It is not safe
// for concurrent use: one goroutine feeds it, and Fit reads it on the same
// goroutine (or on a Clone).
type Counts struct {
	cfg   Config
	index map[string]int32
	ids   []string
	n     []float64
	rows  []map[int32]float32
	adds  int64
	// dirty marks the rows changed since the last Refit.
	dirty     []bool
	dirtyList []int32
	// pow[i] is n[i]^(1−Alpha), the candidate side of the cosine, kept
	// current by Add so that Similar takes no powers per entry.
	pow []float64
	// scratch of Similar
	score   []float64
	touched []int32
}

// NewCounts returns empty counts under cfg, which must be valid (start
// from DefaultConfig).
func NewCounts(cfg Config) (*Counts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Counts{cfg: cfg, index: map[string]int32{}}, nil
}

// Config returns the counts' configuration.
func (c *Counts) Config() Config { return c.cfg }

// Items is the number of distinct items counted.
func (c *Counts) Items() int { return len(c.ids) }

// Adds is the number of engagements counted.
func (c *Counts) Adds() int64 { return c.adds }

func (c *Counts) intern(id string) int32 {
	if i, ok := c.index[id]; ok {
		return i
	}
	i := int32(len(c.ids))
	c.index[id] = i
	c.ids = append(c.ids, id)
	c.n = append(c.n, 0)
	c.pow = append(c.pow, 0)
	c.rows = append(c.rows, nil)
	c.dirty = append(c.dirty, false)
	return i
}

// Add counts one engagement of item by a user whose earlier engagements
// are recent, newest first (a user's history as recommend.UserState holds
// it, before this event). The item is paired with the first Window of them,
// the k-th weighted Decay^k; repeats of the item itself are skipped.
func (c *Counts) Add(item string, recent []string) {
	if item == "" {
		return
	}
	i := c.intern(item)
	c.n[i]++
	c.pow[i] = math.Pow(c.n[i], 1-c.cfg.Alpha)
	c.adds++
	c.touch(i)
	w := 1.0
	for k, id := range recent {
		if k >= c.cfg.Window {
			break
		}
		if id != "" && id != item {
			j := c.intern(id)
			c.bump(i, j, float32(w))
			c.bump(j, i, float32(w))
		}
		w *= c.cfg.Decay
	}
}

func (c *Counts) touch(i int32) {
	if !c.dirty[i] {
		c.dirty[i] = true
		c.dirtyList = append(c.dirtyList, i)
	}
}

func (c *Counts) bump(i, j int32, w float32) {
	c.touch(i)
	r := c.rows[i]
	if r == nil {
		r = make(map[int32]float32, 8)
		c.rows[i] = r
	}
	r[j] += w
	if len(r) > c.cfg.RowCap {
		c.prune(i)
	}
}

// prune keeps the strongest half of row i.
func (c *Counts) prune(i int32) {
	r := c.rows[i]
	type e struct {
		j int32
		w float32
	}
	es := make([]e, 0, len(r))
	for j, w := range r {
		es = append(es, e{j, w})
	}
	slices.SortFunc(es, func(a, b e) int {
		if x := cmp.Compare(b.w, a.w); x != 0 {
			return x
		}
		return cmp.Compare(a.j, b.j)
	})
	for _, x := range es[c.cfg.RowCap/2:] {
		delete(r, x.j)
	}
}

// Similar calls visit with every item co-occurring with one of the recent
// items (newest first, the k-th of the first Window weighted Decay^k) and
// its summed weighted asymmetric cosine with them, from the live counts:
// the exact, always fresh item-based score that a fitted Model's pruned
// neighbour lists approximate. It is the scoring of the item-kNN baseline.
// The order of the visits is unspecified.
func (c *Counts) Similar(recent []string, visit func(id string, score float64)) {
	if len(c.score) < len(c.ids) {
		c.score = make([]float64, len(c.ids))
	}
	w := 1.0
	for k, id := range recent {
		if k >= c.cfg.Window {
			break
		}
		if i, ok := c.index[id]; ok && c.n[i] > 0 {
			ni := math.Pow(c.n[i], c.cfg.Alpha)
			for j, x := range c.rows[i] {
				if c.n[j] > 0 {
					if c.score[j] == 0 {
						c.touched = append(c.touched, j)
					}
					c.score[j] += w * float64(x) / (ni*c.pow[j] + c.cfg.Shrink)
				}
			}
		}
		w *= c.cfg.Decay
	}
	for _, j := range c.touched {
		visit(c.ids[j], c.score[j])
		c.score[j] = 0
	}
	c.touched = c.touched[:0]
}

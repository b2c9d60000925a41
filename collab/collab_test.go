package collab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
)

// planted feeds counts from users who each consume items of one block
// only: blocks of size items, users per block, each consuming per items in
// a random order. It returns the block of every item id.
func planted(t testing.TB, c *Counts, blocks, size, users, per int, seed uint64) map[string]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	block := map[string]int{}
	for b := 0; b < blocks; b++ {
		for i := 0; i < size; i++ {
			block[fmt.Sprintf("b%d-i%d", b, i)] = b
		}
	}
	for u := 0; u < users*blocks; u++ {
		b := u % blocks
		var hist []string // newest first
		for _, i := range rng.Perm(size)[:per] {
			id := fmt.Sprintf("b%d-i%d", b, i)
			c.Add(id, hist)
			hist = append([]string{id}, hist...)
		}
	}
	return block
}

func newCounts(t testing.TB, mod func(*Config)) *Counts {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dim = 8
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewCounts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The model recovers a planted block structure: an item's neighbours and
// its nearest items by embedding are of its own block, and topics do not
// mix blocks.
func TestFitRecoversPlantedBlocks(t *testing.T) {
	c := newCounts(t, func(c *Config) { c.Topics = 6 })
	block := planted(t, c, 6, 40, 30, 15, 1)
	m := Fit(c, 1)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	d := m.Dim
	emb := func(i int) []float32 { return m.Emb[i*d : (i+1)*d] }
	var nbrSame, nbrAll, embSame, embAll int
	topicBlocks := map[int32]map[int]int{}
	for i, id := range m.IDs {
		for p := m.NbrStart[i]; p < m.NbrStart[i+1]; p++ {
			nbrAll++
			if block[m.IDs[m.Nbr[p]]] == block[id] {
				nbrSame++
			}
		}
		if t := m.Topic[i]; t >= 0 {
			if topicBlocks[t] == nil {
				topicBlocks[t] = map[int]int{}
			}
			topicBlocks[t][block[id]]++
		}
		// Nearest other item by embedding.
		best, bestSim := -1, float32(-2)
		for j := range m.IDs {
			if j != i {
				if s := catalog.Dot(emb(i), emb(j)); s > bestSim {
					best, bestSim = j, s
				}
			}
		}
		embAll++
		if block[m.IDs[best]] == block[id] {
			embSame++
		}
	}
	if share := float64(nbrSame) / float64(nbrAll); share < 0.99 {
		t.Errorf("%.3f of neighbours in the item's own block, want ≥ 0.99", share)
	}
	if share := float64(embSame) / float64(embAll); share < 0.95 {
		t.Errorf("%.3f of items' nearest embedding in their own block, want ≥ 0.95", share)
	}
	mixed := 0
	for _, bs := range topicBlocks {
		total, top := 0, 0
		for _, n := range bs {
			total += n
			top = max(top, n)
		}
		mixed += total - top
	}
	if mixed > len(m.IDs)/20 {
		t.Errorf("%d items in topics dominated by another block, want ≤ 5%%", mixed)
	}
}

// Refit keeps the neighbour lists of unchanged items and recomputes the
// changed ones exactly as a full fit would.
func TestRefitIncremental(t *testing.T) {
	c := newCounts(t, nil)
	planted(t, c, 4, 30, 20, 10, 2)
	m1 := Fit(c, 1)
	c.Add("b0-i1", []string{"b0-i2", "b0-i3"})
	c.Add("new", []string{"b1-i1"})
	m2 := Refit(c, m1, 2, false)
	full := Fit(c, 3)
	if len(m2.IDs) != len(m1.IDs)+1 || m2.IDs[len(m2.IDs)-1] != "new" {
		t.Fatalf("ids %d → %d", len(m1.IDs), len(m2.IDs))
	}
	list := func(m *Model, id string) []int32 {
		i := slices.Index(m.IDs, id)
		return m.Nbr[m.NbrStart[i]:m.NbrStart[i+1]]
	}
	for _, id := range []string{"b0-i1", "b0-i2", "new", "b1-i1"} {
		if !slices.Equal(list(m2, id), list(full, id)) {
			t.Errorf("%s: refitted neighbours %v, full fit %v", id, list(m2, id), list(full, id))
		}
	}
	if !slices.Equal(list(m2, "b2-i5"), list(m1, "b2-i5")) {
		t.Error("an unchanged item's list changed")
	}
	if !slices.Equal(m2.Emb[:len(m1.Emb)], m1.Emb) || len(m2.Centroids) != len(m1.Centroids) {
		t.Error("a refit without embedding changed the embeddings")
	}
	if m2.Topic[len(m2.IDs)-1] != -1 {
		t.Error("an item new since the embedding has a topic")
	}
}

func TestModelRoundTrip(t *testing.T) {
	c := newCounts(t, nil)
	planted(t, c, 3, 30, 10, 10, 3)
	m := Fit(c, 7)
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 7 || !slices.Equal(got.IDs, m.IDs) || !slices.Equal(got.Emb, m.Emb) || !slices.Equal(got.Nbr, m.Nbr) ||
		!slices.Equal(got.NbrSim, m.NbrSim) || !slices.Equal(got.Topic, m.Topic) || got.Config != m.Config || got.Prior != m.Prior {
		t.Error("decoded model differs")
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", b[:len(b)/2]},
		{"flipped", func() []byte { x := slices.Clone(b); x[len(x)/2] ^= 1; return x }()},
		{"other blob", append([]byte("NVRM"), b[4:]...)},
	} {
		if _, err := Decode(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", tc.name, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"window": func(c *Config) { c.Window = 0 },
		"decay":  func(c *Config) { c.Decay = 1.5 },
		"alpha":  func(c *Config) { c.Alpha = -1 },
		"dim":    func(c *Config) { c.Dim = 1 },
		"topics": func(c *Config) { c.Topics = -1 },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if _, err := NewCounts(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Counts stay bounded by RowCap whatever the traffic.
func TestRowCap(t *testing.T) {
	c := newCounts(t, func(c *Config) { c.RowCap = 10 })
	for i := 0; i < 200; i++ {
		c.Add("hub", []string{fmt.Sprint(i)})
	}
	if n := len(c.rows[c.index["hub"]]); n > 10 {
		t.Errorf("row holds %d entries, cap 10", n)
	}
}

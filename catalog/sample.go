package catalog

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SampleCategories are the topics of the generated sample catalog.
var SampleCategories = []string{
	"action", "adventure", "animation", "biography", "comedy", "crime", "documentary",
	"drama", "family", "fantasy", "history", "horror", "music", "mystery", "romance",
	"science", "sport", "thriller", "travel", "western",
}

// Sample generates n items over SampleCategories with one to three categories
// each and Zipf-like popularity, deterministically from seed. It is the
// built-in catalog of the embedded mode and a fixture for tests and
// benchmarks. Category frequencies are skewed too, so some topics are niche.
func Sample(n int, seed uint64) []Item {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	items := make([]Item, n)
	nc := len(SampleCategories)
	for i := range items {
		k := 1 + rng.IntN(3)
		cats := make([]string, 0, k)
		for len(cats) < k {
			// Skewed category choice: low indexes are more common.
			c := SampleCategories[int(float64(nc)*math.Pow(rng.Float64(), 1.6))]
			dup := false
			for _, x := range cats {
				dup = dup || x == c
			}
			if !dup {
				cats = append(cats, c)
			}
		}
		rank := rng.IntN(n) + 1
		items[i] = Item{
			ID:         fmt.Sprintf("item-%d", i),
			Categories: cats,
			Popularity: math.Round(10000 / math.Pow(float64(rank), 0.8)),
		}
	}
	return items
}

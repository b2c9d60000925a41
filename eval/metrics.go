// Package eval holds novarec's offline evaluation measures (DESIGN.md §3 and
// §6): ranking accuracy against a held-out consumed item (HR@k, NDCG@k),
// slate novelty as mean self-information, intra-list diversity, catalog
// coverage, means with 95% confidence intervals, and the off-policy
// estimators IPS, SNIPS and DR of a target policy's value from logs with
// propensities.
//
// It is pure computation with no I/O and no state beyond what a caller puts
// in its accumulators, so that offline replay, the simulator and reports
// compute every number the same way.
package eval

import (
	"math"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

// Rank returns the 0-based position of item in slate, or -1 when the slate
// does not contain it. Ranking metrics take this rank so that a caller that
// already knows the position (from a decision) need not search twice.
func Rank(slate []string, item string) int {
	for i, id := range slate {
		if id == item {
			return i
		}
	}
	return -1
}

// HR is the hit rate HR@k of one held-out item: 1 when its rank (see Rank)
// is within the first k positions, else 0. Averaged over test points it is
// the share of next consumptions the policy had in its top k.
func HR(rank, k int) float64 {
	if rank >= 0 && rank < k {
		return 1
	}
	return 0
}

// NDCG is NDCG@k of one held-out item: with a single relevant item the
// ideal DCG is 1, so NDCG@k = 1/log2(rank+2) for a rank within the first k
// positions (1 at the top, 0.5 at position 3) and 0 otherwise. Unlike HR it
// rewards putting the consumed item higher in the slate.
func NDCG(rank, k int) float64 {
	if rank >= 0 && rank < k {
		return 1 / math.Log2(float64(rank)+2)
	}
	return 0
}

// SelfInformation is the population-level novelty of one item,
// I(i) = −log2(consumers/users) bits, where consumers is the number of users
// who consumed it and users the number of users (Chen et al., RecSys 2021;
// DESIGN.md §3): an item everyone consumed carries 0 bits, one that a single
// user in 1024 consumed carries 10. An item nobody has consumed yet is
// counted as consumed by one user (the largest finite value, log2(users)),
// so a slate of brand-new items is maximally novel rather than infinite.
// With no users there is no population to be novel against: 0.
func SelfInformation(consumers, users int) float64 {
	if users <= 0 {
		return 0
	}
	c := min(max(consumers, 1), users)
	return -math.Log2(float64(c) / float64(users))
}

// Novelty is the novelty of a slate: the mean SelfInformation of its items,
// given each item's number of consumers (0 for an empty slate).
func Novelty(consumers []int, users int) float64 {
	if len(consumers) == 0 {
		return 0
	}
	s := 0.0
	for _, c := range consumers {
		s += SelfInformation(c, users)
	}
	return s / float64(len(consumers))
}

// ILD is the intra-list diversity of a slate of item ids in its category
// form, 1 − mean pairwise Jaccard overlap of the items' categories. It is
// recommend.Diversity, the reward's diversity term, so that what is
// evaluated is what is rewarded. Ids missing from the snapshot are ignored;
// fewer than two known items give 0.
func ILD(snap *catalog.Snapshot, ids []string) float64 {
	return recommend.Diversity(snap, ids)
}

// CategoryILD is ILD for items given by snapshot index: the same definition
// without the id lookups, for replay's hot loop. Two items without
// categories count as identical, as in recommend.Diversity.
func CategoryILD(snap *catalog.Snapshot, items []int32) float64 {
	return recommend.DiversityOf(snap, items)
}

// EmbeddingILD is the second form of intra-list diversity in DESIGN.md §3:
// the mean pairwise embedding distance 1 − cos(v_i, v_j) of the slate's
// items (catalog embeddings, unit length). It separates items that share a
// genre but little else, which the category form cannot.
func EmbeddingILD(snap *catalog.Snapshot, items []int32) float64 {
	if len(items) < 2 {
		return 0
	}
	sum, pairs := 0.0, 0
	for a := 0; a < len(items); a++ {
		for b := a + 1; b < len(items); b++ {
			sum += 1 - float64(snap.Cos(items[a], items[b]))
			pairs++
		}
	}
	return sum / float64(pairs)
}

// Coverage counts the distinct items a policy recommended, identified by a
// dense index the caller assigns (0..n−1), so that catalog coverage —
// distinct items recommended / catalog size — shows whether a policy
// reaches beyond a popular head. The zero value is ready to use.
type Coverage struct {
	seen     []bool
	distinct int
}

// Add records that item i was recommended; negative indexes are ignored.
func (c *Coverage) Add(i int) {
	if i < 0 {
		return
	}
	if i >= len(c.seen) {
		c.seen = append(c.seen, make([]bool, i+1-len(c.seen))...)
	}
	if !c.seen[i] {
		c.seen[i] = true
		c.distinct++
	}
}

// Distinct is the number of distinct items recorded.
func (c *Coverage) Distinct() int { return c.distinct }

// Fraction is the catalog coverage against a catalog of catalogSize items.
func (c *Coverage) Fraction(catalogSize int) float64 {
	return CoverageOf(c.distinct, catalogSize)
}

// CoverageOf is distinct / catalogSize, capped at 1 (0 for an empty
// catalog).
func CoverageOf(distinct, catalogSize int) float64 {
	if catalogSize <= 0 {
		return 0
	}
	return min(float64(distinct)/float64(catalogSize), 1)
}

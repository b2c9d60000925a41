package policy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/replay"
)

// blockStream writes a stream in which only co-consumption predicts what
// a user takes next: users of block b consume, in random order, items of
// block b, and categories are assigned at random, so neither popularity
// nor content can tell the blocks apart.
func blockStream(blocks, itemsPer, usersPer, perUser int, seed uint64) *replay.Stream {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &replay.Stream{Name: "blocks"}
	cats := []string{"x", "y", "z", "w"}
	for b := range blocks {
		for i := range itemsPer {
			s.Items = append(s.Items, catalog.Item{ID: fmt.Sprintf("b%d-i%d", b, i), Categories: []string{cats[rng.IntN(len(cats))]}})
		}
	}
	type cursor struct {
		user  int32
		order []int
	}
	var users []cursor
	for b := range blocks {
		for range usersPer {
			perm := rng.Perm(itemsPer)[:perUser]
			for k := range perm {
				perm[k] += b * itemsPer
			}
			users = append(users, cursor{int32(len(s.Users)), perm})
			s.Users = append(s.Users, fmt.Sprintf("u%d", len(s.Users)))
		}
	}
	// Interleave users in time: each step, a random user with items left
	// consumes the next one.
	ts := int64(1_000_000)
	for len(users) > 0 {
		k := rng.IntN(len(users))
		u := &users[k]
		ts += 1000
		s.Events = append(s.Events, replay.Event{TS: ts, User: u.user, Item: int32(u.order[0]), Type: recommend.Rating, Value: 5})
		u.order = u.order[1:]
		if len(u.order) == 0 {
			users = append(users[:k], users[k+1:]...)
		}
	}
	return s
}

// TestBaselinesOnPlantedBlocks replays the standard baselines and
// novarec's relevance policy on a stream the test writes: item-kNN must
// find the blocks that popularity cannot, and novarec's collaborative
// relevance must do at least nearly as well as item-kNN.
func TestBaselinesOnPlantedBlocks(t *testing.T) {
	s := blockStream(4, 40, 25, 20, 3)
	cfg := replay.Config{K: 10, RefreshEvery: 100, Seed: 1}
	hr := map[string]float64{}
	for _, name := range []string{policy.Popular, policy.KNN, policy.Relevance} {
		p, err := policy.New(name, policy.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := replay.Run(context.Background(), s, p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		hr[name] = res.HR.Value
		t.Logf("%-9s HR@10 %.3f NDCG@10 %.3f novelty %.2f bits (%d test points)", name, res.HR.Value, res.NDCG.Value, res.Novelty.Value, res.TestPoints)
	}
	// A random slate of 10 from the ~120 items of the other blocks and
	// the user's own hits about 10/150; the user's block holds 40.
	if hr[policy.KNN] < 2*hr[policy.Popular] || hr[policy.KNN] < 0.15 {
		t.Errorf("item-kNN HR@10 %.3f does not find the blocks (popular %.3f)", hr[policy.KNN], hr[policy.Popular])
	}
	if hr[policy.Relevance] < 0.8*hr[policy.KNN] {
		t.Errorf("novarec relevance HR@10 %.3f, below 80%% of item-kNN's %.3f", hr[policy.Relevance], hr[policy.KNN])
	}
}

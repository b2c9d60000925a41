package features

import (
	"errors"
	"testing"

	"github.com/novarec/novarec/experiment"
)

// TestPartAggregates checks the A/B aggregates of a partitioned variant:
// the report reads the sum of its parts, a part keeps the aggregates of its
// newest epoch (a replica that lost it cannot set it back), and parts take
// precedence over aggregates a single-owner trainer wrote before.
func TestPartAggregates(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	agg := func(users, imps int64) experiment.Aggregates {
		return experiment.Aggregates{Users: users, Impressions: imps, ILDSum: float64(imps) / 4}
	}
	if _, err := s.GetAggregates(ctx, "exp", "v"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before any write: %v, want ErrNotFound", err)
	}
	if err := s.PutAggregates(ctx, "exp", "v", agg(1000, 9000)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		parts map[string]PartAggregates
		want  experiment.Aggregates
	}{
		{"one replica", map[string]PartAggregates{"p0": {1, agg(2, 10)}, "p1": {1, agg(3, 20)}}, agg(5, 30)},
		{"another part", map[string]PartAggregates{"p2": {4, agg(1, 5)}}, agg(6, 35)},
		{"a new owner of p1", map[string]PartAggregates{"p1": {2, agg(4, 40)}}, agg(7, 55)},
		{"the old owner of p1, late", map[string]PartAggregates{"p0": {1, agg(2, 12)}, "p1": {1, agg(3, 25)}}, agg(7, 57)},
	}
	for _, st := range steps {
		if err := s.PutPartAggregates(ctx, "exp", "v", st.parts); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := s.GetAggregates(ctx, "exp", "v")
		if err != nil || got != st.want {
			t.Fatalf("%s: %+v (%v), want %+v", st.name, got, err, st.want)
		}
	}
	if got, err := s.GetAggregates(ctx, "exp", "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another variant: %+v (%v), want ErrNotFound", got, err)
	}
}

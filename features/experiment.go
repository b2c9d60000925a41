package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/experiment"
)

func (s *Store) aggregatesKey(exp, variant string) string {
	return s.prefix + "exp:" + exp + ":" + variant
}

// PutAggregates stores a variant's A/B aggregates, which the trainer of that
// variant maintains (and checkpoints) and the report reads.
func (s *Store) PutAggregates(ctx context.Context, exp, variant string, a experiment.Aggregates) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("features: encode aggregates: %w", err)
	}
	if err := s.rdb.Set(ctx, s.aggregatesKey(exp, variant), b, 0).Err(); err != nil {
		return fmt.Errorf("features: put aggregates %s/%s: %w", exp, variant, err)
	}
	return nil
}

// GetAggregates reads a variant's A/B aggregates (ErrNotFound before its
// trainer has written any).
func (s *Store) GetAggregates(ctx context.Context, exp, variant string) (experiment.Aggregates, error) {
	var a experiment.Aggregates
	b, err := s.rdb.Get(ctx, s.aggregatesKey(exp, variant)).Bytes()
	if errors.Is(err, redis.Nil) {
		return a, fmt.Errorf("features: aggregates %s/%s: %w", exp, variant, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("features: get aggregates %s/%s: %w", exp, variant, err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("features: decode aggregates %s/%s: %w", exp, variant, err)
	}
	return a, nil
}

// Report builds the A/B report of an experiment from its variants' stored
// aggregates; a variant without aggregates counts as empty.
func (s *Store) Report(ctx context.Context, cfg *experiment.Config) (experiment.Report, error) {
	aggs := make(map[string]experiment.Aggregates, len(cfg.Variants))
	for _, v := range cfg.Variants {
		a, err := s.GetAggregates(ctx, cfg.Name, v.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return experiment.Report{}, err
		}
		aggs[v.Name] = a
	}
	return experiment.BuildReport(cfg, aggs), nil
}

package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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

// partAggregatesKey is the hash of a partitioned variant's aggregates: part
// name → PartAggregates (JSON).
func (s *Store) partAggregatesKey(exp, variant string) string {
	return s.aggregatesKey(exp, variant) + ":parts"
}

// PartAggregates are the A/B aggregates of one part of a variant's users —
// a partition of a partitioned trainer — as committed under Epoch, the
// part's claim (ClaimPart).
type PartAggregates struct {
	Epoch      int64                 `json:"epoch"`
	Aggregates experiment.Aggregates `json:"aggregates"`
}

// PutPartAggregates stores the A/B aggregates of parts (part name → its
// aggregates) of a variant whose trainer is partitioned; GetAggregates sums
// them. A part stored under a newer epoch than the one given keeps what is
// stored: it comes from the replica that claimed the part since, and a
// replica that lost the part after its last commit must not set it back.
func (s *Store) PutPartAggregates(ctx context.Context, exp, variant string, parts map[string]PartAggregates) error {
	if len(parts) == 0 {
		return nil
	}
	key := s.partAggregatesKey(exp, variant)
	names := make([]string, 0, len(parts))
	for p := range parts {
		names = append(names, p)
	}
	put := func(tx *redis.Tx) error {
		stored, err := tx.HMGet(ctx, key, names...).Result()
		if err != nil {
			return err
		}
		args := make([]any, 0, 2*len(names))
		for i, name := range names {
			var old PartAggregates
			if v, ok := stored[i].(string); ok && json.Unmarshal([]byte(v), &old) == nil && old.Epoch > parts[name].Epoch {
				continue
			}
			b, err := json.Marshal(parts[name])
			if err != nil {
				return fmt.Errorf("features: encode aggregates: %w", err)
			}
			args = append(args, name, b)
		}
		if len(args) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, args...)
			return nil
		})
		return err
	}
	// Replicas write their own parts: a conflict is another replica's
	// write to the hash, and retrying at once succeeds.
	for range 10 {
		err := s.rdb.Watch(ctx, put, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return fmt.Errorf("features: put aggregates %s/%s: %w", exp, variant, err)
		}
		return nil
	}
	return fmt.Errorf("features: put aggregates %s/%s: %w", exp, variant, redis.TxFailedErr)
}

// GetAggregates reads a variant's A/B aggregates (ErrNotFound before its
// trainer has written any): the sum of its parts' when a partitioned
// trainer wrote them (PutPartAggregates), else the whole variant's
// (PutAggregates). Parts, once written, take precedence: a variant
// switched to partitioned trainers starts its join state, A/B users
// included, over.
func (s *Store) GetAggregates(ctx context.Context, exp, variant string) (experiment.Aggregates, error) {
	var a experiment.Aggregates
	parts, err := s.rdb.HGetAll(ctx, s.partAggregatesKey(exp, variant)).Result()
	if err != nil {
		return a, fmt.Errorf("features: get aggregates %s/%s: %w", exp, variant, err)
	}
	if len(parts) > 0 {
		// In a fixed order, so that equal parts sum to equal floats.
		names := make([]string, 0, len(parts))
		for name := range parts {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			var pa PartAggregates
			if err := json.Unmarshal([]byte(parts[name]), &pa); err != nil {
				return a, fmt.Errorf("features: decode aggregates %s/%s part %s: %w", exp, variant, name, err)
			}
			a = a.Plus(pa.Aggregates)
		}
		return a, nil
	}
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

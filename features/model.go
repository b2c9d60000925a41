package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var errNoVariant = errors.New("features: empty model variant")

// PutModel stores the snapshot of a variant's model and announces the
// variant on the model-updates channel, in one pipeline, so recsvc replicas
// swap the new model in without a restart. The snapshot format is the
// learner's business; Redis only carries bytes.
func (s *Store) PutModel(ctx context.Context, variant string, data []byte) error {
	if variant == "" {
		return errNoVariant
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.modelKey(variant), data, 0)
		p.Publish(ctx, s.ChannelName(ModelUpdates), variant)
		return nil
	})
	if err != nil {
		return fmt.Errorf("features: put model %q: %w", variant, err)
	}
	return nil
}

// GetModel returns the stored snapshot of a variant's model. The error wraps
// ErrNotFound when no model was published yet, which callers treat as "start
// from an untrained model" rather than as a failure.
func (s *Store) GetModel(ctx context.Context, variant string) ([]byte, error) {
	if variant == "" {
		return nil, errNoVariant
	}
	b, err := s.rdb.Get(ctx, s.modelKey(variant)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: model %q: %w", variant, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("features: get model %q: %w", variant, err)
	}
	return b, nil
}

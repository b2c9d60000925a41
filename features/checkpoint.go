package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Checkpoints are opaque blobs a long-running consumer (the trainer) saves so
// that a restart resumes from its state instead of re-learning from scratch.
// Their format is the writer's business; the store only carries bytes, one
// blob per name, overwritten whole by each save (a single SET, so a reader
// never sees half of one).
//
//	trainer:ckpt:NAME    checkpoint bytes

var errNoCheckpointName = errors.New("features: empty checkpoint name")

func (s *Store) checkpointKey(name string) string { return s.prefix + "trainer:ckpt:" + name }

// SaveCheckpoint stores data under name, replacing the previous checkpoint.
// It returns only after Redis has acknowledged the write, so a caller may
// then commit the Kafka offsets whose effects data contains.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, data []byte) error {
	if name == "" {
		return errNoCheckpointName
	}
	if err := s.rdb.Set(ctx, s.checkpointKey(name), data, 0).Err(); err != nil {
		return fmt.Errorf("features: save checkpoint %q: %w", name, err)
	}
	return nil
}

// LoadCheckpoint returns the checkpoint saved under name. The error wraps
// ErrNotFound when there is none, which a caller treats as a first start.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errNoCheckpointName
	}
	b, err := s.rdb.Get(ctx, s.checkpointKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: checkpoint %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("features: load checkpoint %q: %w", name, err)
	}
	return b, nil
}

package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Batched loads. A Load is one pipelined round trip, and on loopback most
// of its cost is not Redis's work but the system calls around it: the
// write that hands the pipeline to the kernel (and wakes Redis) and the
// read of the replies, once per request. Concurrent requests' reads can
// share them instead: go-redis's deferred auto-pipeliner (AsyncAutoPipeline)
// collects the commands that goroutines submit while a batch is in flight
// and sends them as the next pipeline, one write and one wake-up for many
// users.
//
// What it does not do is honour a command's context once the command is
// queued: the batch runs on the pipeliner's own context, bounded by the
// client's read and write timeouts (seconds), not by a request's 100 ms
// Redis budget. So a caller does not wait on the command but on its
// future, with its own context (AutoFuture.WaitContext): when the deadline
// passes it gets the context's error, a timeout to the breaker as for an
// unbatched read, and its commands still complete with their batch,
// unread. The other callers of that batch are not affected.

// BatchLoads makes Load send its reads through the client's deferred
// auto-pipeliner, configured by opts (nil: go-redis's defaults, an ordered
// stream that flushes as soon as the previous batch is back). Call it
// before the Store is used concurrently, and Close the Store to stop the
// pipeliner's goroutines. The pipeliner is the client's (go-redis keeps one
// per client, and the first configuration wins); nothing else in novarec
// uses it.
func (s *Store) BatchLoads(opts *redis.AutoPipelineOptions) error {
	ap, err := s.rdb.AsyncAutoPipelineWithOptions(opts)
	if err != nil {
		return fmt.Errorf("features: batch loads: %w", err)
	}
	s.batch = ap
	return nil
}

// Close stops what the Store started: the auto-pipeliner of BatchLoads,
// after the reads already queued on it are sent. It does not close the
// client, which the caller owns. Loads after Close fail (redis.ErrClosed).
func (s *Store) Close() error {
	if s.batch == nil {
		return nil
	}
	if err := s.batch.Close(); err != nil {
		return fmt.Errorf("features: close: %w", err)
	}
	return nil
}

// loadBatched submits the reads of Load to the auto-pipeliner and waits for
// them until ctx is done. The error is the first command's that is not
// redis.Nil, or ctx's.
func (s *Store) loadBatched(ctx context.Context, userID, sessionID string) (userReads, error) {
	r := s.newReads(ctx, userID, sessionID, true)
	var buf [4]redis.Cmder
	cmds := r.cmds(&buf)
	var futures [len(buf)]redis.AutoFuture
	for i, c := range cmds {
		futures[i] = s.batch.Submit(ctx, c)
	}
	for _, f := range futures[:len(cmds)] {
		if err := f.WaitContext(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return r, err
		}
	}
	return r, nil
}

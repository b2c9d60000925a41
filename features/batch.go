package features

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batched loads. A Load is one command (loadScript, load.go), and on
// loopback most of its round trip's cost is not Redis's work but the
// system calls around it: the write that hands the command to the kernel
// (and wakes Redis) and the read of the reply, once per request. Concurrent requests' reads can
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
// uses it. It also loads Load's script into Redis, so the first batch need
// not carry its source (a Redis that cannot be reached now gets it with the
// first load that finds it missing).
func (s *Store) BatchLoads(opts *redis.AutoPipelineOptions) error {
	ap, err := s.rdb.AsyncAutoPipelineWithOptions(opts)
	if err != nil {
		return fmt.Errorf("features: batch loads: %w", err)
	}
	s.batch = ap
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = loadScript.Load(ctx, s.rdb).Err()
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

package features

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ShownWriter records shown items off the request path: requests hand their
// slates to it and it writes them to Redis in one pipelined round trip per
// batch, which saves every request a round trip and Redis most of the
// per-command work. Until a batch is written, Pending answers from memory,
// so this process never serves an item twice in a session even for a
// request that arrives before the write; other replicas see it after at most
// FlushEvery.
type ShownWriter struct {
	store *Store
	log   *slog.Logger
	// FlushEvery bounds how long a record waits before it is written. Each
	// flush is a Redis round trip; at thousands of requests a second 5 ms
	// batches a dozen slates into one (1 ms batched one or two, nearly a
	// round trip a request), while this process already excludes them at
	// once (Pending) and other replicas see them 5 ms later.
	FlushEvery time.Duration
	// MaxPending bounds memory: beyond it Record writes synchronously.
	MaxPending int

	// flushMu is held while a batch is written, so Flush can wait for a
	// batch that already took its session's records.
	flushMu sync.Mutex
	mu      sync.Mutex
	pending map[shownKey][]string
	n       int
	kick    chan struct{}
}

type shownKey struct{ user, session string }

// NewShownWriter returns a writer; call Run to start flushing.
func NewShownWriter(store *Store, log *slog.Logger) *ShownWriter {
	if log == nil {
		log = slog.Default()
	}
	return &ShownWriter{
		store: store, log: log, FlushEvery: 5 * time.Millisecond, MaxPending: 50000,
		pending: map[shownKey][]string{}, kick: make(chan struct{}, 1),
	}
}

// Record queues the items shown to a user in a session. It writes
// synchronously only when too much is pending (Redis is slow or down), and
// then returns the write's error.
func (w *ShownWriter) Record(ctx context.Context, userID, sessionID string, items []string) error {
	w.mu.Lock()
	if w.n+len(items) > w.MaxPending {
		w.mu.Unlock()
		return w.store.RecordShown(ctx, userID, sessionID, items)
	}
	k := shownKey{userID, sessionID}
	w.pending[k] = append(w.pending[k], items...)
	w.n += len(items)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// Flush writes the session's pending records now, in one round trip, after
// any batch being written; it does nothing when there are none. On failure
// they stay pending for Run.
func (w *ShownWriter) Flush(ctx context.Context, userID, sessionID string) error {
	k := shownKey{userID, sessionID}
	// After a batch in flight, which may hold this session's records.
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	items := w.pending[k]
	if len(items) == 0 {
		w.mu.Unlock()
		return nil
	}
	delete(w.pending, k)
	w.n -= len(items)
	w.mu.Unlock()
	_, err := w.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		w.store.queueShown(ctx, p, userID, sessionID, items)
		return nil
	})
	if err == nil {
		return nil
	}
	w.mu.Lock()
	w.pending[k] = append(items, w.pending[k]...) // older records first
	w.n += len(items)
	w.mu.Unlock()
	return fmt.Errorf("features: flush shown items: %w", err)
}

// Pending returns the items recorded for the session but not yet written.
func (w *ShownWriter) Pending(userID, sessionID string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.pending[shownKey{userID, sessionID}]; len(p) > 0 {
		return append([]string(nil), p...)
	}
	return nil
}

// Run flushes pending records until ctx ends, then flushes once more with a
// short grace period. The caller owns the goroutine.
func (w *ShownWriter) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			w.flush(fctx)
			cancel()
			return
		case <-w.kick:
		}
		// Let a batch gather, then write it.
		t.Reset(w.FlushEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		if !w.flush(ctx) {
			// Redis is failing: back off instead of retrying every FlushEvery.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// flush writes everything pending in one pipeline. Records stay pending
// (and visible through Pending) until their write succeeded; a failed write
// is retried at the next flush.
func (w *ShownWriter) flush(ctx context.Context) bool {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		w.mu.Unlock()
		return true
	}
	w.pending, w.n = make(map[shownKey][]string, len(batch)), 0
	w.mu.Unlock()

	_, err := w.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, items := range batch {
			w.store.queueShown(ctx, p, k.user, k.session, items)
		}
		return nil
	})
	if err == nil {
		return true
	}
	w.log.Warn("writing shown items failed; will retry", "sessions", len(batch), "err", err)
	w.mu.Lock()
	for k, items := range batch { // put back, older records first
		w.pending[k] = append(items, w.pending[k]...)
		w.n += len(items)
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return false
}

package features

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/recommend"
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
	if w.Queue(userID, sessionID, items) {
		return nil
	}
	return w.store.RecordShown(ctx, userID, sessionID, items)
}

// Queue is Record without the synchronous write: it queues the items and
// reports true, or reports false when too much is pending. A caller that
// bounds a write with a deadline need not make one (a context and a timer
// a request) for the common case, which never waits.
func (w *ShownWriter) Queue(userID, sessionID string, items []string) bool {
	w.mu.Lock()
	if w.n+len(items) > w.MaxPending {
		w.mu.Unlock()
		return false
	}
	k := shownKey{userID, sessionID}
	w.pending[k] = append(w.pending[k], items...)
	w.n += len(items)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return true
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

// A session's shown list ({u:ID}:shown:SESSION) is read on every
// recommendation. It holds one list element per slate, packed, rather than
// one per item: a slate of k items was k+1 elements (its mark, then its
// ids), which cost Redis k+1 replies and recsvc k+1 strings a slate on every
// read, up to 300 a request. A packed element is
//
//	byte  shownPacked
//	uvarint(len(mark)+1), mark  (0: the record has no mark)
//	per item: uvarint(len(id)), id
//
// and the list stays newest first (LPUSH). Lists written before, an element
// per entry, stay readable (decodeShown takes both in one list), so nothing
// needs migrating: a session's list expires with it. The other way round
// does not hold: a version before packing reads a packed slate as one
// unknown id, so while old and new recsvc or feature updaters run side by
// side, the sessions they share lose those slates' exclusions and skips
// (never an error); roll them within a session's lifetime (30 minutes).
const shownPacked = 0x01

// shownSlates caps the stored list's elements. Every packed element holds
// at least two entries (a mark and an item) or one old entry, so 150
// elements hold the newest ShownMax entries whatever the slates' sizes, and
// decodeShown cuts to exactly those: the same entries a list of items
// trimmed to ShownMax kept.
const shownSlates = ShownMax / 2

// packShown appends to dst one packed element per record of entries (a
// record is a mark and the items after it, up to the next mark; entries
// before the first mark form a record without one), oldest first.
func packShown(dst []any, entries []string) []any {
	for start := 0; start < len(entries); {
		end := start + 1
		for end < len(entries) && !recommend.IsSlateMark(entries[end]) {
			end++
		}
		n := 1 + binary.MaxVarintLen64*(end-start)
		for _, e := range entries[start:end] {
			n += len(e)
		}
		b := make([]byte, 0, n)
		b = append(b, shownPacked)
		items := entries[start:end]
		if recommend.IsSlateMark(items[0]) {
			b = binary.AppendUvarint(b, uint64(len(items[0]))+1)
			b = append(b, items[0]...)
			items = items[1:]
		} else {
			b = binary.AppendUvarint(b, 0)
		}
		for _, id := range items {
			b = binary.AppendUvarint(b, uint64(len(id)))
			b = append(b, id...)
		}
		dst = append(dst, b)
		start = end
	}
	return dst
}

// unpackShown calls f with each entry of one list element in order: the
// entries of a packed slate, or the element itself (an entry of a list
// written an element per entry). A malformed packed element yields the
// entries before the fault. The entries share el's memory.
func unpackShown(el string, f func(string)) {
	if len(el) == 0 || el[0] != shownPacked {
		f(el)
		return
	}
	i := 1
	n, k := uvarint(el[i:])
	if k <= 0 || n > uint64(len(el)-i-k)+1 {
		return
	}
	i += k
	if n > 0 {
		f(el[i : i+int(n-1)])
		i += int(n - 1)
	}
	for i < len(el) {
		n, k := uvarint(el[i:])
		if k <= 0 || n == 0 || n > uint64(len(el)-i-k) {
			return
		}
		i += k
		f(el[i : i+int(n)])
		i += int(n)
	}
}

// decodeShown turns the stored list (newest element first) into the
// session's Shown entries, oldest first, at most the newest ShownMax.
func decodeShown(els []string) []string {
	total := 0
	for _, el := range els {
		unpackShown(el, func(string) { total++ })
	}
	if total == 0 {
		return nil
	}
	skip := max(total-ShownMax, 0) // the oldest entries beyond the cap
	out := make([]string, 0, total-skip)
	for k := len(els) - 1; k >= 0; k-- {
		unpackShown(els[k], func(e string) {
			if skip > 0 {
				skip--
				return
			}
			out = append(out, e)
		})
	}
	return out
}

package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// CollabStore is what the collaborative learner reads and writes:
// features.Store satisfies it.
type CollabStore interface {
	RecentHistory(ctx context.Context, userID string, n int) ([]recommend.Consumed, error)
	ScanHistories(ctx context.Context, fn func(userID string, hist []recommend.Consumed) error) error
	CollabVersion(ctx context.Context) (uint64, error)
	PutCollab(ctx context.Context, version uint64, data []byte) error
}

// CollabLearner keeps the collaborative item model (package collab)
// current from all consumption, not only clicks on served slates:
//
//   - Start counts every stored history (imported ones included) as of the
//     moment it starts, so a restart or a bulk import is folded in without
//     replaying the topic;
//   - Handle counts each engaged rec.feedback event newer than that scan,
//     paired with the user's recent history as the feature updater stored
//     it (feedback found by search or browsing counts as much as a click on
//     a slate);
//   - BeforeCommit refits and publishes the model every RefitEvery, so
//     every recsvc's catalog cache swaps it in.
//
// Run it as the handler of an events.Consumer of its own group with
// BeforeCommit set; Handle and BeforeCommit then share Run's goroutine and
// need no lock. Counts live in memory: a restart rebuilds them from the
// histories, so the offsets the group commits only say where to resume.
// Counts are statistics, not a ledger: an event redelivered after a crash
// is counted twice, which shifts a few co-occurrence weights until the next
// restart's rebuild.
type CollabLearner struct {
	Store  CollabStore
	Config collab.Config
	// RefitEvery is the cadence of refits (neighbour lists of the changed
	// items every time; embeddings and topics when the counts grew by
	// half, see collab.Update).
	RefitEvery time.Duration
	Logger     *slog.Logger

	counts  *collab.Counts
	model   *collab.Model
	version uint64
	since   time.Time // events before it were in the scanned histories
	last    time.Time // last refit
	pending int       // engagements counted since the last refit
	recent  []string

	fits    prometheus.Counter
	fitTime prometheus.Histogram
	adds    prometheus.Counter
}

// NewCollabLearner returns a learner over store with cfg and registers its
// metrics on reg (nil: none).
func NewCollabLearner(store CollabStore, cfg collab.Config, every time.Duration, log *slog.Logger, reg prometheus.Registerer) (*CollabLearner, error) {
	counts, err := collab.NewCounts(cfg)
	if err != nil {
		return nil, err
	}
	if every <= 0 {
		return nil, errors.New("trainer: collaborative refit interval must be positive")
	}
	if log == nil {
		log = slog.Default()
	}
	l := &CollabLearner{
		Store: store, Config: cfg, RefitEvery: every, Logger: log, counts: counts,
		fits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_collab_fits_total", Help: "Collaborative model refits published by the trainer.",
		}),
		fitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "novarec_collab_fit_seconds", Help: "Time to refit and publish the collaborative model.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		adds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "novarec_collab_engagements_total", Help: "Engagements counted by the collaborative learner (histories at start and the feedback stream).",
		}),
	}
	if reg != nil {
		reg.MustRegister(l.fits, l.fitTime, l.adds)
	}
	return l, nil
}

// Start counts every stored history, oldest engagement first as it
// happened, and publishes a first model when there was anything to count.
// Events stamped before Start began are then skipped by Handle: the scan
// already holds what the feature updater had applied of them.
func (l *CollabLearner) Start(ctx context.Context) error {
	l.since = time.Now()
	v, err := l.Store.CollabVersion(ctx)
	if err != nil {
		return err
	}
	l.version = v
	users := 0
	err = l.Store.ScanHistories(ctx, func(_ string, hist []recommend.Consumed) error {
		users++
		l.addHistory(hist)
		return nil
	})
	if err != nil {
		return fmt.Errorf("trainer: collaborative model from histories: %w", err)
	}
	l.Logger.Info("collaborative counts rebuilt from stored histories", "users", users,
		"items", l.counts.Items(), "engagements", l.counts.Adds(), "took", time.Since(l.since).Round(time.Millisecond).String())
	if l.counts.Adds() == 0 {
		return nil
	}
	return l.refit(ctx)
}

// addHistory counts one stored history (newest first): each item paired
// with the items before it.
func (l *CollabLearner) addHistory(hist []recommend.Consumed) {
	ids := make([]string, len(hist))
	for i, h := range hist {
		ids[i] = h.ItemID
	}
	for i := len(ids) - 1; i >= 0; i-- {
		l.counts.Add(ids[i], ids[i+1:])
		l.adds.Inc()
		l.pending++
	}
}

// Handle counts one rec.feedback message if it is an engagement newer
// than the start-up scan. Undecodable messages are poison; Redis failures
// are transient (retried).
func (l *CollabLearner) Handle(ctx context.Context, m kafka.Message) error {
	ev, err := events.DecodeFeedback(m.Value)
	if err != nil {
		return err
	}
	fb := recommend.Feedback{UserID: ev.UserID, SessionID: ev.SessionID, ItemID: ev.ItemID, Type: ev.Type, Value: ev.Value, TS: ev.TS}
	if !fb.Engaged() || (!m.Time.IsZero() && m.Time.Before(l.since)) {
		return nil
	}
	hist, err := l.Store.RecentHistory(ctx, ev.UserID, l.Config.Window+1)
	if err != nil {
		return fmt.Errorf("collaborative learner: %w", err)
	}
	l.recent = l.recent[:0]
	for _, h := range hist {
		l.recent = append(l.recent, h.ItemID)
	}
	// The feature updater may or may not have stored this event yet;
	// Counts.Add skips the item's own entry either way.
	l.counts.Add(ev.ItemID, l.recent)
	l.adds.Inc()
	l.pending++
	return nil
}

// BeforeCommit refits and publishes the model when RefitEvery has passed
// and something was counted; a failed publish vetoes the commit, so the
// events are redelivered rather than lost to the model's next version.
func (l *CollabLearner) BeforeCommit(ctx context.Context) error {
	if l.pending == 0 || time.Since(l.last) < l.RefitEvery {
		return nil
	}
	return l.refit(ctx)
}

func (l *CollabLearner) refit(ctx context.Context) error {
	t := time.Now()
	l.version++
	m := collab.Update(l.counts, l.model, l.version)
	b, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("trainer: encode collaborative model: %w", err)
	}
	if err := l.Store.PutCollab(ctx, m.Version, b); err != nil {
		return err
	}
	l.model, l.last, l.pending = m, time.Now(), 0
	l.fits.Inc()
	l.fitTime.Observe(time.Since(t).Seconds())
	l.Logger.Info("collaborative model published", "version", m.Version, "items", len(m.IDs),
		"embedded", m.Embedded(), "topics", len(m.Centroids)/max(m.Dim, 1), "bytes", len(b), "took", time.Since(t).Round(time.Millisecond).String())
	return nil
}

// CollabGroup is the consumer group of the collaborative learner.
const CollabGroup = "novarec-collab"

// RunCollab runs l until ctx ends: Start (retried with backoff while Redis
// fails), then the feedback topic under CollabGroup with l's refits at the
// consumer's commit points. opts supplies the brokers, security, dead-letter
// producer and metrics; RunCollab sets the group, topic and BeforeCommit.
func RunCollab(ctx context.Context, l *CollabLearner, opts events.ConsumerOptions) error {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := l.Start(ctx)
		if err == nil {
			break
		}
		l.Logger.Warn("collaborative learner cannot start; retrying", "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	opts.GroupID, opts.Topics, opts.BeforeCommit = CollabGroup, []string{events.TopicFeedback}, l.BeforeCommit
	c, err := events.NewConsumer(opts)
	if err != nil {
		return fmt.Errorf("collaborative learner: %w", err)
	}
	defer c.Close()
	return c.Run(ctx, l.Handle)
}

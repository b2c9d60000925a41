package trainer

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// StateStore applies one feedback event to a user's persisted state,
// idempotently by event id.
type StateStore interface {
	ApplyFeedback(ctx context.Context, snap *catalog.Snapshot, eventID string, fb recommend.Feedback) (recommend.Observation, bool, error)
}

// Snapshots serves the current catalog snapshot (features.CatalogCache
// satisfies it). Current returns nil while there is no catalog.
type Snapshots interface {
	Current() *catalog.Snapshot
}

// ErrNoCatalog is returned while there is no catalog to interpret feedback
// against; the consumer retries the message until there is.
var ErrNoCatalog = errors.New("trainer: catalog is empty")

// FeatureUpdater is the single writer of user state: it consumes
// rec.feedback and applies each event to history, statistics and session
// in Redis (recommend.Observe, persisted by the store). Run it as the
// handler of an events.Consumer.
type FeatureUpdater struct {
	Store   StateStore
	Catalog Snapshots
}

// Handle applies one rec.feedback message. Undecodable or invalid messages
// are poison (dead-lettered); store failures are transient (retried).
func (u *FeatureUpdater) Handle(ctx context.Context, m kafka.Message) error {
	ev, err := events.DecodeFeedback(m.Value)
	if err != nil {
		return err // a *events.DecodeError, which is ErrPoison
	}
	snap := u.Catalog.Current()
	if snap == nil {
		return ErrNoCatalog
	}
	fb := recommend.Feedback{UserID: ev.UserID, SessionID: ev.SessionID, ItemID: ev.ItemID, Type: ev.Type, Value: ev.Value, TS: ev.TS}
	if _, _, err := u.Store.ApplyFeedback(ctx, snap, ev.EventID, fb); err != nil {
		return fmt.Errorf("apply feedback %s: %w", ev.EventID, err)
	}
	return nil
}

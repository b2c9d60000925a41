package trainer

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// StateStore applies one feedback event to a user's persisted state,
// idempotently by event id.
type StateStore interface {
	ApplyFeedback(ctx context.Context, snap *catalog.Snapshot, mm intent.ModeModel, eventID string, fb recommend.Feedback) (recommend.Observation, bool, error)
}

// Models serves the current model of a variant (features.ModelSet
// satisfies it).
type Models interface {
	Current(variant string) *recommend.Model
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
//
// Models, when set, gives the model whose fitted mode model reads each
// event as evidence of its session's mode: the served model of the event's
// variant, so that the evidence a decision starts from is read as that
// variant's decisions read the slates still pending. Without it the
// default mode model reads every event.
type FeatureUpdater struct {
	Store   StateStore
	Catalog Snapshots
	Models  Models
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
	var mm intent.ModeModel
	if u.Models != nil {
		variant := ev.Variant
		if variant == "" {
			variant = DefaultVariant
		}
		mm = u.Models.Current(variant).ModeModel()
	}
	if _, _, err := u.Store.ApplyFeedback(ctx, snap, mm, ev.EventID, fb); err != nil {
		return fmt.Errorf("apply feedback %s: %w", ev.EventID, err)
	}
	return nil
}

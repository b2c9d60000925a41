package trainer

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
)

// modeRecorder is a StateStore that records the mode model it is given.
type modeRecorder struct{ got []intent.ModeModel }

func (r *modeRecorder) ApplyFeedback(_ context.Context, _ *catalog.Snapshot, mm intent.ModeModel, _ string, _ recommend.Feedback) (recommend.Observation, bool, error) {
	r.got = append(r.got, mm)
	return recommend.Observation{}, true, nil
}

// variantModels serves one model per variant.
type variantModels map[string]*recommend.Model

func (m variantModels) Current(variant string) *recommend.Model { return m[variant] }

// TestFeatureUpdaterReadsEventsWithTheirVariantsModeModel checks that each
// event's evidence is read with the fitted mode model its variant serves,
// an event without a variant with the default variant's, and that an
// updater without models uses the default model.
func TestFeatureUpdaterReadsEventsWithTheirVariantsModeModel(t *testing.T) {
	cat := testCatalog(t, 20)
	fitted := recommend.DefaultModel()
	fitted.Intent.Mode = intent.ModeModel{Base: -1, Shift: -0.5, Contrast: 1, Examine: 0.8, ExamineClick: 0.5}
	other := recommend.DefaultModel()
	other.Intent.Mode = intent.ModeModel{Base: -2, Contrast: 0.3, Examine: 0.6, ExamineClick: 0.6}
	models := variantModels{DefaultVariant: fitted, "b": other}
	tests := []struct {
		name    string
		models  Models
		variant string
		want    intent.ModeModel
	}{
		{"the event's variant", models, "b", other.Intent.Mode},
		{"no variant: the default one's", models, "", fitted.Intent.Mode},
		{"no models: the default mode model", nil, "b", intent.DefaultModeModel()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &modeRecorder{}
			up := &FeatureUpdater{Store: rec, Catalog: cat, Models: tc.models}
			fb := feedback("e1", "r1", "u1", cat.s.Item(0).ID, 1000, events.FeedbackClick)
			fb.Variant = tc.variant
			body, err := json.Marshal(fb)
			if err != nil {
				t.Fatal(err)
			}
			if err := up.Handle(t.Context(), kafka.Message{Value: body}); err != nil {
				t.Fatal(err)
			}
			if len(rec.got) != 1 || rec.got[0].OrDefault() != tc.want {
				t.Fatalf("read with %+v, want %+v", rec.got, tc.want)
			}
		})
	}
}

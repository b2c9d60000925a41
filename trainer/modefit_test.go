package trainer

import (
	"cmp"
	"slices"
	"testing"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/recommend"
	"github.com/novarec/novarec/sim"
)

// TestServesWhatTheSimulatorMeasured: the trainer's learner, mode fitting
// included, is the simulator's, so the numbers in docs/evaluation.md are
// those of the service as shipped (it once shipped without the fit, which
// cost 1.6 clicks per user against MMR where the mode barely matters).
func TestServesWhatTheSimulatorMeasured(t *testing.T) {
	got, want := DefaultConfig().Learner, sim.DefaultConfig().Policy.Learner
	if got != want {
		t.Fatalf("trainer learner %+v, simulator's %+v", got, want)
	}
	if got.ModeRefit <= 0 || !got.ModeRoutine || !got.ModeSwitch || !got.ModeBelief || got.ModePrior {
		t.Fatalf("shipped mode fitting: refit %d, routine %v, switch %v, belief %v, prior %v; want fits of the switch rates and routine that read the evidence and leave the prior at the default",
			got.ModeRefit, got.ModeRoutine, got.ModeSwitch, got.ModeBelief, got.ModePrior)
	}
}

// TestCoreFitsTheModeModel runs a stream through the trainer's Core with
// a short refit interval and checks that the model it publishes carries a
// fitted mode model and prior, and that they survive the snapshot's
// encoding (what recsvc and the feature updater load).
func TestCoreFitsTheModeModel(t *testing.T) {
	cat := testCatalog(t, 200)
	s := genStream(cat.s, 200, 25, 7)
	cfg := DefaultConfig()
	cfg.Learner.ModeRefit = 500
	c, err := NewCore(cfg, recommend.DefaultModel(), cat)
	if err != nil {
		t.Fatal(err)
	}
	// In event-time order, then an event an hour later, so that every
	// decision's reward is complete and applied.
	slices.SortStableFunc(s.imps, func(a, b events.Impression) int { return cmp.Compare(a.TS, b.TS) })
	slices.SortStableFunc(s.clicks, func(a, b events.Feedback) int { return cmp.Compare(a.TS, b.TS) })
	fb := 0
	for _, imp := range s.imps {
		for fb < len(s.clicks) && s.clicks[fb].TS < imp.TS {
			c.Feedback(s.clicks[fb])
			fb++
		}
		c.Impression(imp)
	}
	for _, f := range s.clicks[fb:] {
		c.Feedback(f)
	}
	last := s.imps[len(s.imps)-1]
	c.Impression(impression(cat.s, "late", "late-user", "s", last.TS+3_600_000, 0, itemIDs(cat.s, 0, 8)...))
	c.Feedback(feedback("late-f", "late", "late-user", cat.s.Item(0).ID, last.TS+3_600_001, events.FeedbackClick))
	m := c.Learner().Snapshot("v1")
	if m.WorthModel() == intent.DefaultModeModel() {
		t.Fatalf("no fit after %d decisions: %+v", c.Counters().Decisions, m.WorthModel())
	}
	b, err := recommend.EncodeModel(m, recommend.SnapshotMeta{})
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := recommend.DecodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Intent.Mode != m.Intent.Mode || back.Intent.Prior != m.Intent.Prior || back.Intent.Worth != m.Intent.Worth {
		t.Fatalf("round trip: %+v %+v %+v, want %+v %+v %+v", back.Intent.Mode, back.Intent.Prior, back.Intent.Worth, m.Intent.Mode, m.Intent.Prior, m.Intent.Worth)
	}
}

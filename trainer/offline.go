package trainer

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// TrainOnLog trains a model offline on a logged stream of impressions and
// feedback, through the same Core (joins, attribution window, decisions,
// reward weights) the live trainer runs, so that a reward weighting can be
// trained on yesterday's traffic and judged by off-policy evaluation before
// it serves anyone. Events are merged in time order, an impression before
// feedback with the same time stamp (the click answers it); cfg.AllVariants
// is implied. Decisions still open when the log ends are not learned from.
// It returns the trained model, named "VARIANT-offline", and the Core's
// counters.
func TrainOnLog(ctx context.Context, cfg Config, start *recommend.Model, cat Snapshots, imps []events.Impression, fbs []events.Feedback) (*recommend.Model, Counters, error) {
	cfg.AllVariants = true
	c, err := NewCore(cfg, start, cat)
	if err != nil {
		return nil, Counters{}, err
	}
	imps = slices.Clone(imps)
	slices.SortStableFunc(imps, func(a, b events.Impression) int { return cmp.Compare(a.TS, b.TS) })
	fbs = slices.Clone(fbs)
	slices.SortStableFunc(fbs, func(a, b events.Feedback) int { return cmp.Compare(a.TS, b.TS) })
	i, f := 0, 0
	for n := 0; i < len(imps) || f < len(fbs); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, c.Counters(), fmt.Errorf("trainer: training on the log stopped after %d events: %w", n, ctx.Err())
		}
		if f == len(fbs) || (i < len(imps) && imps[i].TS <= fbs[f].TS) {
			c.Impression(imps[i])
			i++
		} else {
			c.Feedback(fbs[f])
			f++
		}
	}
	m := c.Learner().Model()
	m.Version = c.cfg.Variant + "-offline"
	return m, c.Counters(), nil
}

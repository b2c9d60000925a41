package events

import "github.com/novarec/novarec/recommend"

// SetDecision fills the impression's intent, taste and items from the
// engine's decision as served. The service and the simulator's event log
// both build their impressions here, so offline tools read exactly the
// record the trainer learns from.
func (im *Impression) SetDecision(d *recommend.Decision) {
	im.Intent = Intent{
		UserPropensity: d.Intent.UserPropensity, SessionPropensity: d.Intent.SessionPropensity,
		Level: d.Intent.Level, Probability: d.Intent.Probability,
		Probabilities: d.Intent.Probabilities, State: d.Intent.State,
	}
	im.Taste = d.Taste
	im.Items = make([]ImpressionItem, len(d.Items))
	for i, it := range d.Items {
		im.Items[i] = ImpressionItem{
			ItemID: it.ItemID, Position: it.Position, Score: it.Score, Propensity: it.Propensity,
			Novel: it.Novel, Novelty: it.Novelty, Features: it.Features[:],
		}
	}
}

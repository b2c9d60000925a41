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
	// The features are copied, as before, but into one array for all the
	// items: slicing a range variable's copy of each item moved that copy
	// to the heap, one allocation per item.
	const nphi = len(recommend.Scored{}.Features)
	phi := make([]float64, nphi*len(d.Items))
	for i := range d.Items {
		it := &d.Items[i]
		f := phi[i*nphi : (i+1)*nphi : (i+1)*nphi]
		copy(f, it.Features[:])
		im.Items[i] = ImpressionItem{
			ItemID: it.ItemID, Position: it.Position, Score: it.Score, Propensity: it.Propensity,
			Novel: it.Novel, Novelty: it.Novelty, Features: f,
		}
	}
}

package intent

import "math"

// ActivityCap is the history length at which the user-activity feature
// saturates at 1.
const ActivityCap = 200

// HistoryLength recovers the history length a state's user-activity feature
// encodes: exact below ActivityCap, ActivityCap at or above it, 0 for a
// state of another dimension. The A/B report uses it as the pre-period
// covariate of CUPED: how active the user was before first exposure, read
// from the state logged with that exposure.
func HistoryLength(state []float64) float64 {
	if len(state) != Dim {
		return 0
	}
	x := math.Min(math.Max(state[FUserActivity], 0), 1)
	return math.Round(math.Expm1(x * math.Log1p(ActivityCap)))
}

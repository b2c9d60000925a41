package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/recommend"
)

// Recorder keeps a simulated run (sim.RunObserved) as the service's event
// log: one impression per decision, built by the same
// events.Impression.SetDecision the service uses, and one feedback event
// per examined item, attributed to the user's latest impression. Offline
// tools (ope, ab-offline, replay) then read it like a dump of the topics,
// with the simulator's ground truth known.
type Recorder struct {
	// Variant and Model label the impressions.
	Variant, Model string
	// Log is what has been recorded.
	Log  EventLog
	last map[string]string // user → request id of the latest impression
	n    int
}

// Shown records an impression.
func (r *Recorder) Shown(user, session string, now int64, d *recommend.Decision) {
	if len(d.Items) == 0 {
		return // the service publishes no impression for an empty slate
	}
	if r.last == nil {
		r.last = map[string]string{}
	}
	r.n++
	id := fmt.Sprintf("sim-r%d", r.n)
	im := events.Impression{
		Schema: events.SchemaVersion, EventID: id, RequestID: id, UserID: user, SessionID: session,
		Variant: r.Variant, ModelVersion: r.Model, TS: now,
	}
	im.SetDecision(d) // a decision owns its slices (the engine allocates them per decision)
	r.Log.Impressions = append(r.Log.Impressions, im)
	r.last[user] = id
}

// Reacted records a click or skip on the user's latest impression.
func (r *Recorder) Reacted(user, session, item, typ string, ts int64) {
	r.n++
	r.Log.Feedback = append(r.Log.Feedback, events.Feedback{
		Schema: events.SchemaVersion, EventID: fmt.Sprintf("sim-f%d", r.n), RequestID: r.last[user],
		UserID: user, SessionID: session, ItemID: item, Type: typ, Variant: r.Variant, TS: ts,
	})
}

// WriteJSONLines writes the log as JSON lines, impressions and feedback
// interleaved in time order (an impression before feedback at the same
// time), as a dump of both topics would read.
func (l *EventLog) WriteJSONLines(w io.Writer) error {
	imps := slices.Clone(l.Impressions)
	slices.SortStableFunc(imps, func(a, b events.Impression) int { return cmpTS(a.TS, b.TS) })
	fbs := slices.Clone(l.Feedback)
	slices.SortStableFunc(fbs, func(a, b events.Feedback) int { return cmpTS(a.TS, b.TS) })
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	i, f := 0, 0
	for i < len(imps) || f < len(fbs) {
		var err error
		if f == len(fbs) || (i < len(imps) && imps[i].TS <= fbs[f].TS) {
			err = enc.Encode(&imps[i])
			i++
		} else {
			err = enc.Encode(&fbs[f])
			f++
		}
		if err != nil {
			return fmt.Errorf("replay: write event log: %w", err)
		}
	}
	return bw.Flush()
}

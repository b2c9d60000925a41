package trainer

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/novarec/novarec/recommend"
)

// Replicas share their mode observations
// (docs/trainer-scale.md#model-quality-with-replicas). The mode model and
// the population prior (Config.Learner.ModeRefit) are fitted to a window of
// recent slates: each slate's items' novelty and which were clicked,
// grouped by user and session. A replica sees only its partitions' users,
// half the sessions at two replicas, and its fits are worse for it (two
// replicas' session AUC was 0.007–0.012 below one trainer's). So each merge
// logs the observations its replica made since its last merge with the
// merge's item-log entry, and a replica whose commit finds other merges
// since its base adds their observations to its own window, as it reads
// their items: every replica fits to every session, a commit interval late,
// and counts every slate towards its next fit, as one trainer does.

// modeObservation is what the mode window keeps of a slate: its user and
// session, its time, and its items' novelty and clicks in slate order.
type modeObservation struct {
	user, session string
	ts            int64
	novelty       []float64
	clicked       []bool
}

// maxLoggedObservations bounds an item-log entry's observations; a merge
// that made more logs the latest (the window is a sample of recent
// sessions either way).
const maxLoggedObservations = 20_000

// observationOf copies what the mode window reads of s and its clicked
// positions (recommend.Learner.ObserveSlate).
func observationOf(s *recommend.LoggedSlate, clicked []int) modeObservation {
	items := slices.SortedFunc(slices.Values(s.Items), func(a, b recommend.LoggedItem) int { return cmp.Compare(a.Position, b.Position) })
	o := modeObservation{user: s.UserID, session: s.SessionID, ts: s.TS, novelty: make([]float64, len(items)), clicked: make([]bool, len(items))}
	for i, it := range items {
		o.novelty[i], o.clicked[i] = it.Novelty, slices.Contains(clicked, it.Position)
	}
	return o
}

// slate is o as a logged slate and its clicked positions, as
// recommend.Learner.ObserveSlate takes them.
func (o modeObservation) slate() (*recommend.LoggedSlate, []int) {
	s := &recommend.LoggedSlate{UserID: o.user, SessionID: o.session, TS: o.ts, Items: make([]recommend.LoggedItem, len(o.novelty))}
	var clicked []int
	for i, nov := range o.novelty {
		s.Items[i] = recommend.LoggedItem{Position: i, Novelty: nov}
		if o.clicked[i] {
			clicked = append(clicked, i)
		}
	}
	return s, clicked
}

func appendObservations(b []byte, obs []modeObservation) []byte {
	b = binary.AppendUvarint(b, uint64(len(obs)))
	for _, o := range obs {
		b = appendString(b, o.user)
		b = appendString(b, o.session)
		b = binary.AppendVarint(b, o.ts)
		b = appendFloats(b, o.novelty)
		mask := make([]byte, (len(o.clicked)+7)/8)
		for i, c := range o.clicked {
			if c {
				mask[i/8] |= 1 << (i % 8)
			}
		}
		b = append(b, mask...)
	}
	return b
}

func (r *reader) observations() []modeObservation {
	n := r.count(5)
	if n == 0 || r.err != nil {
		return nil
	}
	obs := make([]modeObservation, n)
	for i := range obs {
		o := modeObservation{user: r.string(), session: r.string(), ts: r.varint(), novelty: r.floats()}
		mask := r.take((len(o.novelty) + 7) / 8)
		if r.err != nil {
			return nil
		}
		o.clicked = make([]bool, len(o.novelty))
		for j := range o.clicked {
			o.clicked[j] = mask[j/8]&(1<<(j%8)) != 0
		}
		obs[i] = o
	}
	return obs
}

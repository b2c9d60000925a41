package recommend

import (
	"slices"
	"strconv"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
)

// SlateMark starts each slate in a session's Shown list when the slate's
// request is not known: it is not an item id (ids are never empty), so the
// list keeps where each slate began and the position of every item in it,
// which the cascade needs. A slate served by recsvc starts with
// SlateMarkFor(its request id) instead.
const SlateMark = ""

// SlateMarkFor is the mark that starts the slate of request requestID: a
// NUL byte, which no item id holds (ids have no control characters), then
// the id, so that feedback without a request id can be joined to the slate
// that showed the item (ShownRequest).
func SlateMarkFor(requestID string) string {
	if requestID == "" {
		return SlateMark
	}
	return "\x00" + requestID
}

// IsSlateMark reports whether a Shown entry starts a slate.
func IsSlateMark(s string) bool { return s == "" || s[0] == 0 }

// ShownRecord is what to append to a session's Shown list for one slate of
// request requestID (may be empty), in order: its mark, then the slate's
// item ids.
func ShownRecord(requestID string, ids []string) []string {
	rec := make([]string, 0, len(ids)+1)
	rec = append(rec, SlateMarkFor(requestID))
	return append(rec, ids...)
}

// ShownRequest is the request id of the latest slate in shown that holds
// itemID, or "" when none does or its mark carries no id.
func ShownRequest(shown []string, itemID string) string {
	for k := len(shown) - 1; k >= 0; k-- {
		if shown[k] != itemID {
			continue
		}
		for m := k - 1; m >= 0; m-- {
			if IsSlateMark(shown[m]) {
				if shown[m] == SlateMark {
					return ""
				}
				return shown[m][1:]
			}
		}
		return ""
	}
	return ""
}

// modeKey identifies the session whose evidence Stats holds: its id, or
// for the implicit session (no id) its start time.
func modeKey(s *Session) string {
	if s.ID != "" {
		return s.ID
	}
	return "@" + strconv.FormatInt(s.Start, 10)
}

// slateBounds returns the slate of Shown entry j: the first item after the
// SlateMark at or before j (0 if there is none: the oldest slate may have
// been trimmed) and the end, exclusive (the next mark or the list's end).
func slateBounds(shown []string, j int) (start, end int) {
	start = 0
	for k := j; k >= 0; k-- {
		if IsSlateMark(shown[k]) {
			start = k + 1
			break
		}
	}
	end = len(shown)
	for k := j + 1; k < len(shown); k++ {
		if IsSlateMark(shown[k]) {
			end = k
			break
		}
	}
	return start, end
}

// noveltyFunc is nov(u,i) of a shown item, or false for an id the
// snapshot does not know (its evidence is not counted).
type noveltyFunc func(id string) (float64, bool)

// noveltyOf is the noveltyFunc of a user whose history is seen.
func noveltyOf(snap *catalog.Snapshot, seen *Seen) noveltyFunc {
	return func(id string) (float64, bool) {
		nov, _, known := lookupShown(snap, seen, nil, id)
		return nov, known
	}
}

// lookupShown resolves a shown id once: its novelty to the user, whether
// consumed (nil: none) holds it, and whether the snapshot knows it. The
// decision reads up to 300 shown ids, and the id map is the costly part.
func lookupShown(snap *catalog.Snapshot, seen *Seen, consumed *Filter, id string) (nov float64, isConsumed, known bool) {
	i, ok := snap.Index(id)
	if !ok {
		return 0, false, false
	}
	return lookupResolved(snap, seen, consumed, i)
}

// lookupResolved is lookupShown of an id already resolved to snapshot
// index i (-1: unknown).
func lookupResolved(snap *catalog.Snapshot, seen *Seen, consumed *Filter, i int32) (nov float64, isConsumed, known bool) {
	if i < 0 {
		return 0, false, false
	}
	nov, _ = seen.Novelty(snap, i)
	return nov, consumed != nil && consumed.Has(snap.Hash(i)), true
}

// resolveShown appends to dst the snapshot index of each entry of shown,
// -1 for a slate mark or an unknown id: a decision resolves the session's
// shown ids once, for its mode evidence and its exclusions alike.
func resolveShown(dst []int32, snap *catalog.Snapshot, shown []string) []int32 {
	dst = slices.Grow(dst, len(shown))
	for _, id := range shown {
		i := int32(-1)
		if !IsSlateMark(id) {
			if k, ok := snap.Index(id); ok {
				i = k
			}
		}
		dst = append(dst, i)
	}
	return dst
}

// evidenceFrom appends to chain the evidence of each slate of the Shown
// entries from index from on that no feedback event has accounted for,
// under the cascade: a slate
// untouched by feedback was examined to position k with weight Examine^k
// and nothing in it clicked (ModeModel.SlateEvidence). A slate with an item
// that clicked reports as consumed is left out: its feedback has not been
// accounted yet (it is on its way, or it arrived before the slate was
// recorded), and novelty against today's history, which now holds that
// item, would read the click as one on a familiar item. In a slate that
// feedback reached, the items below the last event are not counted (the
// user may have stopped there). look(j) reads entry shown[j].
func evidenceFrom(chain intent.ModeChain, mm intent.ModeModel, shown []string, from int, look func(j int) (nov float64, clicked, known bool)) intent.ModeChain {
	var novs []float64
	var none []bool
	for j := max(from, 0); j < len(shown); {
		start, end := slateBounds(shown, j)
		j = end + 1
		if start < from { // the slate feedback reached
			continue
		}
		novs = novs[:0]
		touched := false
		for j := start; j < end; j++ {
			v, clicked, known := look(j)
			if clicked {
				touched = true
				break
			}
			if known {
				novs = append(novs, v)
			}
		}
		if touched {
			continue
		}
		none = slices.Grow(none[:0], len(novs))[:len(novs)]
		chain = mm.Append(chain, mm.SlateEvidence(novs, none))
	}
	return chain
}

// account applies one feedback event on item id (clicked or skipped) to the
// session's mode evidence in st.Stats: the untouched slates shown before
// it, the items above it in its own slate (examined, and skipped unless an
// event said otherwise) and the item itself, each against the mean novelty
// of its slate. Evidence goes to the open slate (the one holding the
// latest accounted entry, in ModeEvidence) and a slate closes into
// ModeChain when an event reaches a later one; an event that arrives after
// its slate closed (out of order) counts in the open one. An item that was
// never shown in the session (found by search, say) tells nothing about
// the choice between novel and familiar and is not counted.
func account(st *UserState, snap *catalog.Snapshot, seen *Seen, id string, click bool, mm intent.ModeModel) {
	shown := st.Session.Shown
	j := -1
	for k := len(shown) - 1; k >= 0; k-- {
		if shown[k] == id {
			j = k
			break
		}
	}
	if j < 0 {
		return
	}
	nov := noveltyOf(snap, seen)
	stats := &st.Stats
	start, end := slateBounds(shown, j)
	if j < stats.ModeAccounted {
		// Already counted as examined and skipped (an event out of order,
		// or a click after an inferred skip): only a click changes it.
		if click {
			if d, f, ok := relNovelty(shown[start:end], id, nov); ok {
				stats.ModeEvidence += mm.ClickEvidence(d, f) - mm.SkipEvidence(d, f)
			}
		}
		return
	}
	if start >= stats.ModeAccounted {
		// A later slate than the open one: close that, and the slates
		// between that no event reached, and open this one.
		stats.ModeChain = evidenceFrom(sessionChain(stats, mm), mm, shown[:start], stats.ModeAccounted, func(j int) (float64, bool, bool) {
			return lookupShown(snap, seen, nil, shown[j])
		})
		stats.ModeEvidence = 0
	}
	for _, other := range shown[max(start, stats.ModeAccounted):j] {
		if d, f, ok := relNovelty(shown[start:end], other, nov); ok {
			stats.ModeEvidence += mm.SkipEvidence(d, f)
		}
	}
	if d, f, ok := relNovelty(shown[start:end], id, nov); ok {
		if click {
			stats.ModeEvidence += mm.ClickEvidence(d, f)
		} else {
			stats.ModeEvidence += mm.SkipEvidence(d, f)
		}
	}
	stats.ModeAccounted = j + 1
}

// relNovelty is nov(u, id) minus the mean novelty of the slate, and the
// slate's familiarity (1 − that mean).
func relNovelty(slate []string, id string, nov noveltyFunc) (d, f float64, ok bool) {
	v, ok := nov(id)
	if !ok {
		return 0, 0, false
	}
	sum, n := 0.0, 0
	for _, other := range slate {
		if w, ok := nov(other); ok {
			sum += w
			n++
		}
	}
	mean := sum / float64(n)
	return v - mean, 1 - mean, true
}

// sessionChain is the evidence of the session in stats slate by slate: its
// closed slates, then the open one if an event opened it.
func sessionChain(stats *Stats, mm intent.ModeModel) intent.ModeChain {
	if stats.ModeAccounted > 0 || stats.ModeEvidence != 0 {
		return mm.Append(stats.ModeChain, stats.ModeEvidence)
	}
	return stats.ModeChain
}

// openSession makes st.Stats hold the mode evidence of st.Session: when the
// evidence it holds is another (earlier) session's, that session is closed
// and folded into the user's posterior first.
func openSession(st *UserState, mm intent.ModeModel) {
	key := modeKey(&st.Session)
	if st.Stats.ModeSession == key {
		return
	}
	if st.Stats.ModeSession != "" {
		st.Stats.Rho.Fold(sessionChain(&st.Stats, mm).Evidence())
	}
	st.Stats.ModeSession, st.Stats.ModeChain, st.Stats.ModeEvidence, st.Stats.ModeAccounted = key, intent.ModeChain{}, 0, 0
}

// modeObservations returns the user's posterior (with an earlier session
// still open in Stats folded in) and the current session's evidence slate
// by slate, including what the slates shown since the last feedback event
// imply, without changing st: the decision's view of the mode. shown
// holds the entries of st.Session.Shown resolved (resolveShown).
func modeObservations(st *UserState, snap *catalog.Snapshot, seen *Seen, shown []int32, mm intent.ModeModel) (intent.RhoPosterior, intent.ModeChain) {
	rho := st.Stats.Rho
	var chain intent.ModeChain
	from := 0
	if st.Stats.ModeSession == modeKey(&st.Session) {
		chain, from = sessionChain(&st.Stats, mm), st.Stats.ModeAccounted
	} else if st.Stats.ModeSession != "" {
		rho.Fold(sessionChain(&st.Stats, mm).Evidence())
	}
	if from < len(st.Session.Shown) {
		chain = evidenceFrom(chain, mm, st.Session.Shown, from, func(j int) (float64, bool, bool) {
			return lookupResolved(snap, seen, &st.Consumed, shown[j])
		})
	}
	return rho, chain
}

package events

import "github.com/novarec/novarec/internal/plainjson"

// The trainer decodes every event on its topics, and encoding/json (with
// reflection, a Decoder and a second pass for trailing data) was a third
// of its CPU per event. The events producers write are flat objects of
// plain ASCII strings, integers and short arrays, so a small scanner reads
// them directly. It accepts only what it is sure encoding/json would read
// to the same value: anything else — an escape, a non-ASCII byte, null, a
// duplicate or unknown (or differently cased) key, a number it cannot
// read exactly as encoding/json would — makes it give up, and the strict
// encoding/json path decodes the event and names the field at fault
// (internal/plainjson). FuzzFastDecode checks the two agree on every input
// the scanner accepts.

// Keys of impressionV2, in the order of the switch in fastImpressionV2.
var impressionV2Keys = []string{"schema", "event_id", "request_id", "user_id", "session_id", "variant",
	"model_version", "ts", "degraded", "level", "p", "state", "taste", "items", "pos", "slate", "nphi"}

// fastImpressionV2 reads a schema-2 impression; false means "use
// encoding/json". Its ids share one allocation and its items' ids another
// (plainjson.Strings, StrArray), and the packed state, taste and slate are
// left in the document (impressionV2.packed) for impression to decode
// without a string each.
func fastImpressionV2(b []byte) (w impressionV2, ok bool) {
	s := plainjson.NewScanner(b)
	// The ids, in this order: event, request, user, session, variant and
	// model version.
	var ids [6][]byte
	ok = s.Object(impressionV2Keys, func(k int) bool {
		var ok bool
		var n int64
		switch k {
		case 0:
			n, ok = s.Int()
			w.Schema = int(n)
		case 1, 2, 3, 4, 5, 6:
			ids[k-1], ok = s.Raw()
		case 7:
			w.TS, ok = s.Int()
		case 8:
			w.Degraded, ok = s.Bool()
		case 9:
			n, ok = s.Int()
			w.Level = int(n)
		case 10:
			var p float64
			p, ok = s.Float(32)
			w.P = float32(p)
		case 11, 12:
			w.packed[k-11], ok = s.Raw()
		case 13:
			w.Items, ok = s.StrArray()
		case 14:
			w.Pos, ok = plainjson.Array(s, func() (int, bool) { n, ok := s.Int(); return int(n), ok })
		case 15:
			w.packed[2], ok = s.Raw()
		case 16:
			n, ok = s.Int()
			w.NPhi = int(n)
		}
		return ok
	})
	if !ok {
		return impressionV2{}, false
	}
	var strs [6]string
	plainjson.Strings(strs[:], ids[:])
	w.EventID, w.RequestID, w.UserID, w.SessionID, w.Variant, w.ModelVersion = strs[0], strs[1], strs[2], strs[3], strs[4], strs[5]
	return w, true
}

var feedbackKeys = []string{"schema", "event_id", "request_id", "user_id", "session_id", "item_id", "type", "value", "variant", "ts"}

// fastFeedback reads a feedback event; false means "use encoding/json".
// Its strings share one allocation (plainjson.Strings), but for the item
// id: consumers keep item ids for long (the collaborative learner's counts
// intern one per item), and one must not hold on to the whole event's.
func fastFeedback(b []byte) (f Feedback, ok bool) {
	s := plainjson.NewScanner(b)
	// The strings, in this order: event, request, user and session ids,
	// type, variant.
	var strs [6][]byte
	ok = s.Object(feedbackKeys, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			var n int64
			n, ok = s.Int()
			f.Schema = int(n)
		case 1, 2, 3, 4:
			strs[k-1], ok = s.Raw()
		case 5:
			f.ItemID, ok = s.Str()
		case 6:
			strs[4], ok = s.Raw()
		case 7:
			f.Value, ok = s.Float(64)
		case 8:
			strs[5], ok = s.Raw()
		case 9:
			f.TS, ok = s.Int()
		}
		return ok
	})
	if !ok {
		return Feedback{}, false
	}
	var out [6]string
	plainjson.Strings(out[:], strs[:])
	f.EventID, f.RequestID, f.UserID, f.SessionID, f.Type, f.Variant = out[0], out[1], out[2], out[3], out[4], out[5]
	return f, true
}

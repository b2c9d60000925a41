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
// encoding/json".
func fastImpressionV2(b []byte) (w impressionV2, ok bool) {
	s := plainjson.NewScanner(b)
	ok = s.Object(impressionV2Keys, func(k int) bool {
		var ok bool
		var n int64
		switch k {
		case 0:
			n, ok = s.Int()
			w.Schema = int(n)
		case 1:
			w.EventID, ok = s.Str()
		case 2:
			w.RequestID, ok = s.Str()
		case 3:
			w.UserID, ok = s.Str()
		case 4:
			w.SessionID, ok = s.Str()
		case 5:
			w.Variant, ok = s.Str()
		case 6:
			w.ModelVersion, ok = s.Str()
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
		case 11:
			w.State, ok = s.Str()
		case 12:
			w.Taste, ok = s.Str()
		case 13:
			w.Items, ok = plainjson.Array(s, s.Str)
		case 14:
			w.Pos, ok = plainjson.Array(s, func() (int, bool) { n, ok := s.Int(); return int(n), ok })
		case 15:
			w.Slate, ok = s.Str()
		case 16:
			n, ok = s.Int()
			w.NPhi = int(n)
		}
		return ok
	})
	return w, ok
}

var feedbackKeys = []string{"schema", "event_id", "request_id", "user_id", "session_id", "item_id", "type", "value", "variant", "ts"}

// fastFeedback reads a feedback event; false means "use encoding/json".
func fastFeedback(b []byte) (f Feedback, ok bool) {
	s := plainjson.NewScanner(b)
	ok = s.Object(feedbackKeys, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			var n int64
			n, ok = s.Int()
			f.Schema = int(n)
		case 1:
			f.EventID, ok = s.Str()
		case 2:
			f.RequestID, ok = s.Str()
		case 3:
			f.UserID, ok = s.Str()
		case 4:
			f.SessionID, ok = s.Str()
		case 5:
			f.ItemID, ok = s.Str()
		case 6:
			f.Type, ok = s.Str()
		case 7:
			f.Value, ok = s.Float(64)
		case 8:
			f.Variant, ok = s.Str()
		case 9:
			f.TS, ok = s.Int()
		}
		return ok
	})
	return f, ok
}

package events

import "strconv"

// The trainer decodes every event on its topics, and encoding/json (with
// reflection, a Decoder and a second pass for trailing data) was a third
// of its CPU per event. The events producers write are flat objects of
// plain ASCII strings, integers and short arrays, so a small scanner reads
// them directly. It accepts only what it is sure encoding/json would read
// to the same value: anything else — an escape, a non-ASCII byte, null, a
// duplicate or unknown (or differently cased) key, a number it cannot
// read exactly as encoding/json would — makes it give up, and the strict
// encoding/json path decodes the event and names the field at fault.
// FuzzFastDecode checks the two agree on every input the scanner accepts.

// scanner reads one JSON document from b.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c (after white space).
func (s *scanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw returns the bytes of a string of printable ASCII without escapes.
func (s *scanner) raw() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

func (s *scanner) str() (string, bool) {
	r, ok := s.raw()
	return string(r), ok
}

// number returns a number literal as JSON spells it.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	digits := func() bool {
		n := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i > n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if !digits() {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !digits() {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// int reads an integer literal that fits in 64 bits (encoding/json refuses
// fractions and exponents for integer fields).
func (s *scanner) int() (int64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	return n, err == nil
}

// float reads a number as encoding/json does for a float of bits bits.
func (s *scanner) float(bits int) (float64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	x, err := strconv.ParseFloat(string(lit), bits)
	return x, err == nil
}

func (s *scanner) bool() (bool, bool) {
	s.ws()
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		s.i += 4
		return true, true
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// array reads a JSON array, calling elem for each element; an empty array
// gives a non-nil empty result, as in encoding/json.
func array[T any](s *scanner, elem func() (T, bool)) ([]T, bool) {
	if !s.byte('[') {
		return nil, false
	}
	out := make([]T, 0, 16)
	if s.byte(']') {
		return out, true
	}
	for {
		x, ok := elem()
		if !ok {
			return nil, false
		}
		out = append(out, x)
		if s.byte(']') {
			return out, true
		}
		if !s.byte(',') {
			return nil, false
		}
	}
}

// object reads a JSON object whose members member reads; member returns
// false for an unknown key or a value it cannot read. Each key may appear
// once (bit of its index in keys). After the object only white space may
// follow.
func (s *scanner) object(keys []string, member func(k int) bool) bool {
	if !s.byte('{') {
		return false
	}
	var seen uint64
	if !s.byte('}') {
		for {
			k, ok := s.raw()
			if !ok || !s.byte(':') {
				return false
			}
			idx := -1
			for j, name := range keys {
				if string(k) == name {
					idx = j
					break
				}
			}
			if idx < 0 || seen&(1<<idx) != 0 || !member(idx) {
				return false
			}
			seen |= 1 << idx
			if s.byte('}') {
				break
			}
			if !s.byte(',') {
				return false
			}
		}
	}
	s.ws()
	return s.i == len(s.b)
}

// Keys of impressionV2, in the order of the switch in fastImpressionV2.
var impressionV2Keys = []string{"schema", "event_id", "request_id", "user_id", "session_id", "variant",
	"model_version", "ts", "degraded", "level", "p", "state", "taste", "items", "pos", "slate", "nphi"}

// fastImpressionV2 reads a schema-2 impression; false means "use
// encoding/json".
func fastImpressionV2(b []byte) (w impressionV2, ok bool) {
	s := &scanner{b: b}
	ok = s.object(impressionV2Keys, func(k int) bool {
		var ok bool
		var n int64
		switch k {
		case 0:
			n, ok = s.int()
			w.Schema = int(n)
		case 1:
			w.EventID, ok = s.str()
		case 2:
			w.RequestID, ok = s.str()
		case 3:
			w.UserID, ok = s.str()
		case 4:
			w.SessionID, ok = s.str()
		case 5:
			w.Variant, ok = s.str()
		case 6:
			w.ModelVersion, ok = s.str()
		case 7:
			w.TS, ok = s.int()
		case 8:
			w.Degraded, ok = s.bool()
		case 9:
			n, ok = s.int()
			w.Level = int(n)
		case 10:
			var p float64
			p, ok = s.float(32)
			w.P = float32(p)
		case 11:
			w.State, ok = s.str()
		case 12:
			w.Taste, ok = s.str()
		case 13:
			w.Items, ok = array(s, s.str)
		case 14:
			w.Pos, ok = array(s, func() (int, bool) { n, ok := s.int(); return int(n), ok })
		case 15:
			w.Slate, ok = s.str()
		case 16:
			n, ok = s.int()
			w.NPhi = int(n)
		}
		return ok
	})
	return w, ok
}

var feedbackKeys = []string{"schema", "event_id", "request_id", "user_id", "session_id", "item_id", "type", "value", "variant", "ts"}

// fastFeedback reads a feedback event; false means "use encoding/json".
func fastFeedback(b []byte) (f Feedback, ok bool) {
	s := &scanner{b: b}
	ok = s.object(feedbackKeys, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			var n int64
			n, ok = s.int()
			f.Schema = int(n)
		case 1:
			f.EventID, ok = s.str()
		case 2:
			f.RequestID, ok = s.str()
		case 3:
			f.UserID, ok = s.str()
		case 4:
			f.SessionID, ok = s.str()
		case 5:
			f.ItemID, ok = s.str()
		case 6:
			f.Type, ok = s.str()
		case 7:
			f.Value, ok = s.float(64)
		case 8:
			f.Variant, ok = s.str()
		case 9:
			f.TS, ok = s.int()
		}
		return ok
	})
	return f, ok
}

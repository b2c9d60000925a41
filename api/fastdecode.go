package api

// Every POST /v1/recommend body is decoded, and encoding/json's reflective
// Decoder (with a second pass for trailing data) was 2–3% of recsvc's CPU.
// Nearly every body is a flat object of a few plain fields, such as
// {"user_id":"u1","session_id":"s1","k":10}: fastRecommendRequest reads
// those directly. It accepts only what it is sure encoding/json would read
// to the same value: anything else (exclude, context, an escape or a
// non-ASCII byte in a string, null, a duplicate, unknown or differently
// cased key, a number that is not a plain integer) makes it give up, and
// decode reads the body and names the field at fault as before.
// FuzzFastRecommendRequest checks the two agree on every input it accepts.

// fastRecommendRequest decodes body into r if it is a plain request; ok is
// false (and r untouched) otherwise.
func fastRecommendRequest(body []byte, r *RecommendRequest) (ok bool) {
	s := scanner{b: body}
	var (
		out  RecommendRequest
		seen uint8
		k    int
	)
	if !s.byte('{') {
		return false
	}
	if !s.byte('}') {
		for {
			key, ok := s.raw()
			if !ok || !s.byte(':') {
				return false
			}
			var bit uint8
			switch string(key) { // no allocation: the compiler compares the bytes
			case "user_id":
				bit = 1
				out.UserID, ok = s.str()
			case "session_id":
				bit = 2
				out.SessionID, ok = s.str()
			case "k":
				bit = 4
				k, ok = s.int()
				out.K = &k
			case "deterministic":
				bit = 8
				out.Deterministic, ok = s.bool()
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			if s.byte(',') {
				continue
			}
			if s.byte('}') {
				break
			}
			return false
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return false
	}
	if seen&4 == 0 {
		out.K = nil
	}
	*r = out
	return true
}

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
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) str() (string, bool) {
	r, ok := s.raw()
	return string(r), ok
}

// int reads an integer literal as JSON spells it (no fraction, exponent or
// leading zero) that fits in an int.
func (s *scanner) int() (int, bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == digits || (s.b[digits] == '0' && s.i-digits > 1) {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	if s.i-digits > 9 { // may not fit an int (of 32 bits): let encoding/json say
		return 0, false
	}
	n := 0
	for _, c := range s.b[digits:s.i] {
		n = n*10 + int(c-'0')
	}
	if s.b[start] == '-' {
		n = -n
	}
	return n, true
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

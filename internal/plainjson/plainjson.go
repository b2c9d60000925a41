// Package plainjson reads and writes the plain JSON that novarec's hot
// paths carry, without reflection: flat objects of ASCII strings, integers,
// numbers, booleans and short arrays (events on Kafka, recommend requests
// and responses). The Scanner accepts only what it is sure encoding/json
// would read to the same value; anything else (an escape, a non-ASCII
// byte, null, a duplicate or unknown key, a number it cannot read exactly
// as encoding/json would) makes it give up, so that its caller falls back
// to encoding/json, which names the field at fault. Each caller fuzzes its
// decoder against encoding/json.
package plainjson

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Scanner reads one JSON document from a byte slice.
type Scanner struct {
	b []byte
	i int
}

// NewScanner reads b.
func NewScanner(b []byte) *Scanner { return &Scanner{b: b} }

// ws skips white space.
func (s *Scanner) ws() {
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
func (s *Scanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw returns the bytes of a string of printable ASCII without escapes.
func (s *Scanner) raw() ([]byte, bool) {
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

// Str is raw as a string.
func (s *Scanner) Str() (string, bool) {
	r, ok := s.raw()
	return string(r), ok
}

// Raw reads a string as Str does, returning its bytes in the document
// (valid as long as the document is): a decoder that reads several strings
// makes them strings at once with Strings.
func (s *Scanner) Raw() ([]byte, bool) { return s.raw() }

// Strings sets dst[i] to string(raw[i]) for every i, the strings sharing
// one allocation. The ids of one event are short and die together (or
// live as long as the event's record does), so one allocation for all of
// them is what the trainer's decoding wants: a string each was a third of
// its allocations. Empty raws leave dst's strings as they are.
func Strings(dst []string, raw [][]byte) {
	total := 0
	for _, r := range raw {
		total += len(r)
	}
	if total == 0 {
		return
	}
	var b strings.Builder
	b.Grow(total)
	for _, r := range raw {
		b.Write(r)
	}
	all, off := b.String(), 0
	for i, r := range raw {
		if len(r) > 0 {
			dst[i] = all[off : off+len(r)]
			off += len(r)
		}
	}
}

// StrArray reads an array of strings as Array(s, s.Str) does, in two
// allocations (the strings share one, as with Strings) instead of one per
// element.
func (s *Scanner) StrArray() ([]string, bool) {
	if !s.byte('[') {
		return nil, false
	}
	var buf [32][2]int // where each element is in the document
	spans, total := buf[:0], 0
	if !s.byte(']') {
		for {
			r, ok := s.raw()
			if !ok {
				return nil, false
			}
			spans = append(spans, [2]int{s.i - 1 - len(r), s.i - 1})
			total += len(r)
			if s.byte(']') {
				break
			}
			if !s.byte(',') {
				return nil, false
			}
		}
	}
	out := make([]string, len(spans))
	if total == 0 {
		return out, true
	}
	var b strings.Builder
	b.Grow(total)
	for _, sp := range spans {
		b.Write(s.b[sp[0]:sp[1]])
	}
	all, off := b.String(), 0
	for i, sp := range spans {
		n := sp[1] - sp[0]
		out[i] = all[off : off+n]
		off += n
	}
	return out, true
}

// number returns a number literal as JSON spells it.
func (s *Scanner) number() ([]byte, bool) {
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

// Int reads an integer literal that fits in 64 bits (encoding/json refuses
// fractions and exponents for integer fields).
func (s *Scanner) Int() (int64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	return n, err == nil
}

// Float reads a number as encoding/json does for a float of bits bits.
func (s *Scanner) Float(bits int) (float64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	x, err := strconv.ParseFloat(string(lit), bits)
	return x, err == nil
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, bool) {
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

// Array reads a JSON array, calling elem for each element; an empty array
// gives a non-nil empty result, as in encoding/json.
func Array[T any](s *Scanner, elem func() (T, bool)) ([]T, bool) {
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

// Object reads a JSON object whose members member reads; member returns
// false for an unknown key or a value it cannot read. Each key may appear
// once (bit of its index in keys). After the object only white space may
// follow.
func (s *Scanner) Object(keys []string, member func(k int) bool) bool {
	if !s.byte('{') {
		return false
	}
	var seen uint64
	next := 0
	if !s.byte('}') {
		for {
			k, ok := s.raw()
			if !ok || !s.byte(':') {
				return false
			}
			// Look from the key after the last one on, wrapping around:
			// encoders write keys in order, leaving some out, so the key
			// is found in a comparison or two, not half of keys.
			idx := -1
			for t := range keys {
				if j := (next + t) % len(keys); string(k) == keys[j] {
					idx = j
					break
				}
			}
			if idx < 0 || seen&(1<<idx) != 0 || !member(idx) {
				return false
			}
			seen |= 1 << idx
			next = idx + 1
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

// AppendString appends s as encoding/json writes a string. Ids are plain
// ASCII, which is copied; anything else takes encoding/json's own path, so
// its escaping (HTML characters, invalid UTF-8, U+2028) stays exactly its.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			e, _ := json.Marshal(s) // a string always encodes
			return append(b, e...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

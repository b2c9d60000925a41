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

// Package jsonpath names the field of a JSON decoding error the way the
// service's own validation does, whichever Go release decoded it.
//
// encoding/json reports the field of an *json.UnmarshalTypeError as a
// dotted path. Go 1.26 leaves array elements out ("items.score"); Go 1.27
// includes their indexes as segments ("items.0.score"). The service's
// validation errors write indexes in brackets ("items[1].item_id"), and a
// client (or a dead-letter consumer) should see one style.
package jsonpath

import "strings"

// Field rewrites numeric segments of a dotted encoding/json field path as
// bracketed indexes: "items.0.score" → "items[0].score", "taste.1" →
// "taste[1]". Paths without numeric segments are returned unchanged.
func Field(path string) string {
	if path == "" {
		return path
	}
	segs := strings.Split(path, ".")
	var b strings.Builder
	b.Grow(len(path) + 2)
	for i, s := range segs {
		switch {
		case i > 0 && index(s):
			b.WriteByte('[')
			b.WriteString(s)
			b.WriteByte(']')
		case i > 0:
			b.WriteByte('.')
			b.WriteString(s)
		default:
			b.WriteString(s)
		}
	}
	return b.String()
}

// index reports whether s is a non-empty run of decimal digits.
func index(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

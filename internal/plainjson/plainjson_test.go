package plainjson

import (
	"reflect"
	"testing"
)

// TestStrArrayMatchesArray checks that StrArray, whose strings share one
// allocation, reads what Array(s, s.Str) reads, and gives up where it does.
func TestStrArrayMatchesArray(t *testing.T) {
	for _, doc := range []string{
		`[]`, ` [ ] `, `["a"]`, `["item-1","item-22", "" ,"x"]`, `[""]`, `["",""]`,
		`["a",]`, `["a"`, `[1]`, `["\u0041"]`, `["é"]`, `null`, `["a" "b"]`,
	} {
		s1, s2 := NewScanner([]byte(doc)), NewScanner([]byte(doc))
		got, ok := s1.StrArray()
		want, wantOK := Array(s2, s2.Str)
		if ok != wantOK || !reflect.DeepEqual(got, want) || (ok && s1.i != s2.i) {
			t.Errorf("%s: StrArray %q %v (at %d), Array %q %v (at %d)", doc, got, ok, s1.i, want, wantOK, s2.i)
		}
		if ok && got == nil {
			t.Errorf("%s: nil slice; encoding/json reads an empty array as an empty slice", doc)
		}
	}
}

// TestStrings checks that Strings sets each non-empty raw as its string
// and leaves the others as they were.
func TestStrings(t *testing.T) {
	tests := []struct {
		raw  []string
		want []string
	}{
		{nil, nil},
		{[]string{"", ""}, []string{"keep", "keep"}},
		{[]string{"e1", "", "user-7", "s"}, []string{"e1", "keep", "user-7", "s"}},
	}
	for _, tc := range tests {
		raw := make([][]byte, len(tc.raw))
		dst := make([]string, len(tc.raw))
		for i, r := range tc.raw {
			raw[i], dst[i] = []byte(r), "keep"
			if r == "" {
				raw[i] = nil
			}
		}
		Strings(dst, raw)
		if len(tc.want) > 0 && !reflect.DeepEqual(dst, tc.want) {
			t.Errorf("Strings(%q) = %q, want %q", tc.raw, dst, tc.want)
		}
	}
}

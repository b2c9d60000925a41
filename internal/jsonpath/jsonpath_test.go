package jsonpath

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"score", "score"},
		{"items.score", "items.score"},
		{"items.0.score", "items[0].score"},
		{"taste.1", "taste[1]"},
		{"intent.state.12", "intent.state[12]"},
		{"a.0.1.b", "a[0][1].b"},
		{"0", "0"}, // a top-level segment is a name, not an index
		{"items.x1.score", "items.x1.score"},
	} {
		if got := Field(tc.in); got != tc.want {
			t.Errorf("Field(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever the Go release, the decoder's path comes out in one style: with
// the element's index (Go 1.27+) or without it (Go 1.26).
func TestFieldOfDecoderError(t *testing.T) {
	var v struct {
		Items []struct {
			Score float64 `json:"score"`
		} `json:"items"`
	}
	err := json.Unmarshal([]byte(`{"items":[{"score":"x"}]}`), &v)
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) {
		t.Fatalf("err = %v", err)
	}
	got := Field(typ.Field)
	if got != "items[0].score" && got != "items.score" {
		t.Errorf("Field(%q) = %q", typ.Field, got)
	}
	if strings.Contains(got, ".0") {
		t.Errorf("index left as a segment: %q", got)
	}
}

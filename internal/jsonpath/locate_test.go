package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestAt(t *testing.T) {
	doc := `{"user_id":"a","items":[{"id":"x","embedding":[1,"two",3]},{"id":"y","cats":{"k":[true]}}],"k":5}`
	for _, tc := range []struct{ at, want string }{
		{`"a"`, "user_id"},
		{`"user_id"`, "user_id"},
		{`"two"`, "items[0].embedding[1]"},
		{`3]`, "items[0].embedding[2]"},
		{`"y"`, "items[1].id"},
		{`true`, "items[1].cats.k[0]"},
		{`{"k"`, "items[1].cats"},
		{`[{"id"`, "items"},
		{`5}`, "k"},
	} {
		i := bytes.Index([]byte(doc), []byte(tc.at))
		if i < 0 {
			t.Fatalf("%q not in the document", tc.at)
		}
		if got := At([]byte(doc), int64(i)); got != tc.want {
			t.Errorf("At(%q) = %q, want %q", tc.at, got, tc.want)
		}
	}
	if got := At([]byte(`[1,{"a":[2]}]`), 9); got != "[1].a[0]" {
		t.Errorf("top-level array: %q", got)
	}
	if got := At([]byte(`{"a":1}`), 100); got != "" {
		t.Errorf("past the end: %q", got)
	}
}

// The path of a decoder's type error, found from its offset, is the same
// whatever the Go release.
func TestAtTypeErrorOffset(t *testing.T) {
	type item struct {
		ID        string    `json:"id"`
		Embedding []float32 `json:"embedding"`
	}
	var v struct {
		Items []item `json:"items"`
		K     int    `json:"k"`
	}
	for doc, want := range map[string]string{
		`{"items":[{"id":"a"},{"id":"b","embedding":[0.5,"x"]}]}`: "items[1].embedding[1]",
		`{"items":[{"id":7}]}`:                       "items[0].id",
		`{"items":[{"id":"a","embedding":{"a":1}}]}`: "items[0].embedding",
		`{"k":"ten"}`:                                "k",
		`{"items":{}}`:                               "items",
	} {
		err := json.Unmarshal([]byte(doc), &v)
		var typ *json.UnmarshalTypeError
		if !errors.As(err, &typ) {
			t.Fatalf("%s: %v", doc, err)
		}
		if got := At([]byte(doc), typ.Offset-1); got != want {
			t.Errorf("%s: At(offset %d) = %q, want %q (Field %q)", doc, typ.Offset, got, want, typ.Field)
		}
	}
}

func TestUnknown(t *testing.T) {
	type item struct {
		ID string `json:"id"`
	}
	type req struct {
		UserID string            `json:"user_id"`
		Items  []item            `json:"items"`
		Ctx    map[string]string `json:"context"`
		Ptr    *item             `json:"ptr"`
	}
	typ := reflect.TypeFor[req]()
	for doc, want := range map[string]string{
		`{"user_id":"a","foo":1}`:                   "foo",
		`{"items":[{"id":"a"},{"id":"b","foo":1}]}`: "items[1].foo",
		`{"USER_ID":"a","ptr":{"foo":2}}`:           "ptr.foo",
		`{"context":{"foo":"x"}}`:                   "",
		`{"items":[{"ID":"a"}]}`:                    "",
		`not json`:                                  "",
	} {
		if got := Unknown([]byte(doc), typ, "foo"); got != want {
			t.Errorf("Unknown(%s) = %q, want %q", doc, got, want)
		}
	}
}

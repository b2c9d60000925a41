package api

import (
	"reflect"
	"testing"
)

// TestFastRecommendRequest: plain bodies are read by the scanner, to what
// encoding/json reads; anything else is left to it.
func TestFastRecommendRequest(t *testing.T) {
	tests := []struct {
		body string
		fast bool
	}{
		{`{"user_id":"u1","session_id":"s1","k":10}`, true},
		{`{"user_id":"u1"}`, true},
		{` { "k" : -0 , "deterministic" : true , "user_id" : "a b" } `, true},
		{`{"deterministic":false,"user_id":"u"}` + "\n", true},
		{`{}`, true},
		{`{"user_id":"u","exclude":["a"]}`, false},
		{`{"user_id":"u","context":{"a":"b"}}`, false},
		{`{"USER_ID":"u"}`, false},
		{`{"user_id":"u","user_id":"v"}`, false},
		{`{"user_id":"u\u0031"}`, false},
		{`{"user_id":"é"}`, false},
		{`{"user_id":null}`, false},
		{`{"k":1.0}`, false},
		{`{"k":1e1}`, false},
		{`{"k":01}`, false},
		{`{"k":99999999999999999999}`, false},
		{`{"k":"1"}`, false},
		{`{"deterministic":1}`, false},
		{`{"user_id":"u"} {}`, false},
		{`{"user_id":"u",}`, false},
		{`{"user_id":"u"`, false},
		{``, false},
		{`[]`, false},
	}
	for _, tc := range tests {
		var got RecommendRequest
		if fast := fastRecommendRequest([]byte(tc.body), &got); fast != tc.fast {
			t.Errorf("%s: fast %v, want %v", tc.body, fast, tc.fast)
			continue
		}
		if tc.fast {
			checkFastAgrees(t, []byte(tc.body), got)
		}
	}
}

// checkFastAgrees checks that encoding/json reads body to got.
func checkFastAgrees(t *testing.T, body []byte, got RecommendRequest) {
	t.Helper()
	var want RecommendRequest
	if err := decodeBody(body, &want); err != nil {
		t.Fatalf("%q: the scanner accepted what decode refuses: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: scanner %+v (k %v), decode %+v (k %v)", body, got, deref(got.K), want, deref(want.K))
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// FuzzFastRecommendRequest: whatever the scanner accepts, encoding/json
// reads to the same request.
func FuzzFastRecommendRequest(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"u1","session_id":"s1","k":10}`, `{"k":-3,"deterministic":true}`, `{}`,
		`{"user_id":"u","exclude":["a"]}`, `{"k":1e1}`, `{"user_id":"a\"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got RecommendRequest
		if fastRecommendRequest(body, &got) {
			checkFastAgrees(t, body, got)
		}
	})
}

func BenchmarkDecodeRecommendRequest(b *testing.B) {
	body := []byte(`{"user_id":"user-4821","session_id":"s-1","k":10}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r RecommendRequest
			if err := decodeBody(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r RecommendRequest
			if !fastRecommendRequest(body, &r) {
				b.Fatal("not plain")
			}
		}
	})
}

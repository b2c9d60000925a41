package events

import (
	"reflect"
	"testing"
)

// fastCases are documents one of the scanners must read (ok) or both
// leave to encoding/json (!ok).
var fastCases = []struct {
	name, doc string
	ok        bool
}{
	{"impression", `{"schema":2,"event_id":"e1","user_id":"u1","ts":1700000000000,"level":3,"p":0.4,"state":"ADwAOA","items":["a","b"],"slate":"AADAPwAAgD5mOgAAAL/NzMw9AAA","nphi":0}`, true},
	{"spaced", " {\n\"schema\" : 2 , \"items\" : [ \"a\" , \"b\" ] , \"pos\":[ 1, 0 ], \"degraded\":true}\t", true},
	{"empty arrays", `{"schema":2,"items":[],"pos":[]}`, true},
	{"feedback", `{"schema":1,"event_id":"f1","request_id":"r1","user_id":"u1","item_id":"i1","type":"click","value":-2.5e-1,"ts":5}`, true},
	{"escape", `{"schema":2,"event_id":"e\u0031"}`, false},
	{"non-ascii", `{"schema":2,"event_id":"é"}`, false},
	{"null", `{"schema":2,"items":null}`, false},
	{"duplicate", `{"schema":2,"ts":1,"ts":2}`, false},
	{"case", `{"schema":2,"TS":1}`, false},
	{"unknown", `{"schema":2,"extra":1}`, false},
	{"fraction for int", `{"schema":2,"ts":1.0}`, false},
	{"leading zero", `{"schema":2,"ts":01}`, false},
	{"overflow", `{"schema":2,"ts":99999999999999999999}`, false},
	{"float32 overflow", `{"schema":2,"p":1e39}`, false},
	{"trailing", `{"schema":2}x`, false},
	{"truncated", `{"schema":2,"items":["a"`, false},
	{"not an object", `[1]`, false},
}

func TestFastDecodeAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case is meant for one of the two readers.
			_, okI := fastImpressionV2([]byte(tc.doc))
			_, okF := fastFeedback([]byte(tc.doc))
			if (okI || okF) != tc.ok {
				t.Errorf("read %v (impression) / %v (feedback), want either %v", okI, okF, tc.ok)
			}
			checkFast(t, []byte(tc.doc))
		})
	}
}

// checkFast fails if the scanner accepts b and encoding/json, strictly,
// does not read the same value.
func checkFast(t *testing.T, b []byte) {
	t.Helper()
	if w, ok := fastImpressionV2(b); ok {
		// The scanner leaves the packed fields in the document; as
		// strings they must be what encoding/json reads.
		for i, f := range []*string{&w.State, &w.Taste, &w.Slate} {
			if w.packed[i] != nil {
				*f = string(w.packed[i])
			}
		}
		w.packed = [3][]byte{}
		var want impressionV2
		if err := decodeStrict("impression", b, &want); err != nil || !reflect.DeepEqual(w, want) {
			t.Fatalf("impression %q: scanner read %+v, encoding/json %+v (%v)", b, w, want, err)
		}
	}
	if f, ok := fastFeedback(b); ok {
		var want Feedback
		if err := decodeStrict("feedback", b, &want); err != nil || f != want {
			t.Fatalf("feedback %q: scanner read %+v, encoding/json %+v (%v)", b, f, want, err)
		}
	}
}

// FuzzFastDecode checks that whatever the scanner reads, encoding/json
// (strict) reads to the same value.
func FuzzFastDecode(f *testing.F) {
	for _, tc := range fastCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(checkFast)
}

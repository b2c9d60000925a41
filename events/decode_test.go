package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/novarec/novarec/events"
)

const goodFeedback = `{"schema":1,"event_id":"e1","request_id":"r1","user_id":"u1","session_id":"s1","item_id":"i1","type":"rating","value":4.5,"variant":"control","ts":1700000000000}`

const goodImpression = `{"schema":1,"event_id":"e1","request_id":"r1","user_id":"u1","session_id":"s1","variant":"nov3","model_version":"m7",` +
	`"intent":{"user_propensity":0.3,"session_propensity":0.6,"level":3,"probability":0.4,"probabilities":[0.1,0.1,0.2,0.4,0.2],"state":[1,0.5]},` +
	`"items":[{"item_id":"a","position":0,"score":1.5,"propensity":0.25,"novel":true,"novelty":0.8},{"item_id":"b","position":1,"score":-0.5,"propensity":0.1,"novel":false,"novelty":0}],` +
	`"ts":1700000000000}`

// goodImpression2 is goodImpression in schema 2 (less what schema 2 leaves out).
const goodImpression2 = `{"schema":2,"event_id":"e1","request_id":"r1","user_id":"u1","session_id":"s1","variant":"nov3","model_version":"m7","ts":1700000000000,` +
	`"level":3,"p":0.4,"state":"ADwAOA","items":["a","b"],"slate":"AADAPwAAgD5mOgAAAL/NzMw9AAA","nphi":0}`

// edit returns the good document with field set to raw JSON (or removed when
// raw is "").
func edit(t *testing.T, doc, field, raw string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type decodeCase struct {
	name   string
	in     string
	field  string // DecodeError.Field wanted
	reason string // substring of the message wanted
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// unindexed drops array indexes from a field path.
func unindexed(field string) string { return indexRE.ReplaceAllString(field, "") }

func checkDecodeErr(t *testing.T, c decodeCase, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error for %s", c.name, c.in)
	}
	var de *events.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("%s: error %T %v is not a *DecodeError", c.name, err, err)
	}
	// encoding/json names the element of an array since Go 1.27
	// ("items[0].score", after jsonpath.Field), not before ("items.score"):
	// both name the field.
	if unindexed(de.Field) != unindexed(c.field) {
		t.Errorf("%s: Field = %q, want %q (%v)", c.name, de.Field, c.field, err)
	}
	if c.field != "" && !strings.Contains(err.Error(), `"`+de.Field+`"`) {
		t.Errorf("%s: message %q does not name field %q", c.name, err, de.Field)
	}
	if !strings.Contains(err.Error(), c.reason) {
		t.Errorf("%s: message %q does not contain %q", c.name, err, c.reason)
	}
	if !errors.Is(err, events.ErrPoison) {
		t.Errorf("%s: decode error does not match ErrPoison", c.name)
	}
}

func TestDecodeFeedbackErrors(t *testing.T) {
	g := goodFeedback
	cases := []decodeCase{
		{"empty", ``, "", "empty body"},
		{"whitespace", " \n\t", "", "empty body"},
		{"not json", `hello`, "", "not valid JSON"},
		{"truncated", `{"schema":1,"event_id":`, "", "truncated JSON"},
		{"array", `[1,2]`, "", "expected a JSON object"},
		{"string", `"x"`, "", "expected a JSON object"},
		{"null", `null`, "schema", "must be 1"},
		{"trailing object", g + `{}`, "", "trailing data"},
		{"trailing garbage", g + ` x`, "", "trailing data"},
		{"trailing brace", g + `}`, "", "trailing data"},
		{"unknown field", edit(t, g, "extra", `1`), "extra", "unknown field"},
		{"schema missing", edit(t, g, "schema", ""), "schema", "must be 1, got 0"},
		{"schema 2", edit(t, g, "schema", `2`), "schema", "must be 1, got 2"},
		{"schema string", edit(t, g, "schema", `"1"`), "schema", "cannot use JSON string"},
		{"event_id missing", edit(t, g, "event_id", ""), "event_id", "required"},
		{"event_id empty", edit(t, g, "event_id", `""`), "event_id", "required"},
		{"event_id number", edit(t, g, "event_id", `7`), "event_id", "cannot use JSON number"},
		{"user_id missing", edit(t, g, "user_id", ""), "user_id", "required"},
		{"item_id missing", edit(t, g, "item_id", ""), "item_id", "required"},
		{"type missing", edit(t, g, "type", ""), "type", "required"},
		{"type unknown", edit(t, g, "type", `"purchase"`), "type", "click|view|skip|rating"},
		{"type wrong case", edit(t, g, "type", `"Click"`), "type", "click|view|skip|rating"},
		{"ts missing", edit(t, g, "ts", ""), "ts", "positive"},
		{"ts zero", edit(t, g, "ts", `0`), "ts", "positive"},
		{"ts negative", edit(t, g, "ts", `-5`), "ts", "positive"},
		{"ts fractional", edit(t, g, "ts", `1.5`), "ts", "cannot use JSON number"},
		{"ts overflow", edit(t, g, "ts", `1e30`), "ts", "cannot use JSON number"},
		{"value overflow (not finite)", edit(t, g, "value", `1e999`), "value", "cannot use JSON number"},
		{"value string", edit(t, g, "value", `"4"`), "value", "cannot use JSON string"},
		{"value NaN literal", strings.Replace(g, `4.5`, `NaN`, 1), "", "not valid JSON"},
	}
	for _, c := range cases {
		_, err := events.DecodeFeedback([]byte(c.in))
		checkDecodeErr(t, c, err)
	}
}

func TestDecodeImpressionErrors(t *testing.T) {
	g := goodImpression
	item := func(raw string) string { return edit(t, g, "items", raw) }
	intent := func(raw string) string { return edit(t, g, "intent", raw) }
	cases := []decodeCase{
		{"empty", ``, "", "empty body"},
		{"truncated", g[:len(g)-10], "", "truncated JSON"},
		{"trailing", g + ` []`, "", "trailing data"},
		{"unknown field", edit(t, g, "slate", `[]`), "slate", "unknown field"},
		{"unknown nested field", item(`[{"item_id":"a","color":"red"}]`), "color", "unknown field"},
		{"schema", edit(t, g, "schema", `0`), "schema", "must be 1"},
		{"event_id", edit(t, g, "event_id", ""), "event_id", "required"},
		{"request_id", edit(t, g, "request_id", `""`), "request_id", "required"},
		{"user_id", edit(t, g, "user_id", ""), "user_id", "required"},
		{"items missing", edit(t, g, "items", ""), "items", "must not be empty"},
		{"items null", item(`null`), "items", "must not be empty"},
		{"items empty", item(`[]`), "items", "must not be empty"},
		{"items object", item(`{}`), "items", "cannot use JSON object"},
		{"item_id missing", item(`[{"item_id":"a"},{"position":1}]`), "items[1].item_id", "required"},
		{"score overflow", item(`[{"item_id":"a","score":-1e400}]`), "items.score", "cannot use JSON number"},
		{"propensity string", item(`[{"item_id":"a","propensity":"0.5"}]`), "items.propensity", "cannot use JSON string"},
		{"novel number", item(`[{"item_id":"a","novel":1}]`), "items.novel", "cannot use JSON number"},
		{"intent level fractional", intent(`{"level":1.5}`), "intent.level", "cannot use JSON number"},
		{"intent probability overflow", intent(`{"probability":1e309}`), "intent.probability", "cannot use JSON number"},
		{"intent state element", intent(`{"state":[0,1e999]}`), "intent.state", "cannot use JSON number"},
		{"taste beyond float32", edit(t, g, "taste", `[0.5,1e39]`), "taste", "cannot use JSON number"},
		{"item feature overflow", item(`[{"item_id":"a","features":[1,-1e999]}]`), "items.features", "cannot use JSON number"},
	}
	for _, c := range cases {
		_, err := events.DecodeImpression([]byte(c.in))
		checkDecodeErr(t, c, err)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	f := events.Feedback{
		Schema: events.SchemaVersion, EventID: "e", RequestID: "r", UserID: "u", SessionID: "s",
		ItemID: "i", Type: events.FeedbackSkip, Value: -1.25, Variant: "v", TS: 1,
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeFeedback(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != f {
		t.Errorf("feedback round trip: got %+v, want %+v", got, f)
	}
	// Optional fields may be absent.
	minimal := `{"schema":1,"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":9}`
	if _, err := events.DecodeFeedback([]byte(minimal)); err != nil {
		t.Errorf("minimal feedback: %v", err)
	}
	if _, err := events.DecodeFeedback([]byte(" " + goodFeedback + "\n")); err != nil {
		t.Errorf("surrounding white space: %v", err)
	}

	im := events.Impression{
		Schema: events.SchemaVersion, EventID: "e", RequestID: "r", UserID: "u", SessionID: "s",
		Variant: "v", ModelVersion: "m", Degraded: true, TS: 5,
		Intent: events.Intent{UserPropensity: 0.2, SessionPropensity: 0.7, Level: 2, Probability: 0.5,
			Probabilities: []float64{0.25, 0.5, 0.25}, State: []float64{1, 2, 3}},
		Taste: []float32{0.5, -0.25},
		Items: []events.ImpressionItem{{ItemID: "a", Position: 0, Score: 2, Propensity: 0.3, Novel: true, Novelty: 1, Features: []float64{0.1, 2}}},
	}
	b, err = json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	gotIm, err := events.DecodeImpression(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotIm, im) {
		t.Errorf("impression round trip: got %+v, want %+v", gotIm, im)
	}
	if _, err := events.DecodeImpression([]byte(goodImpression)); err != nil {
		t.Errorf("good impression: %v", err)
	}
	if im, err := events.DecodeImpression([]byte(goodImpression2)); err != nil || im.Items[1].Score != -0.5 || im.Items[0].Novelty != 0.7998046875 || im.Items[0].Novel {
		t.Errorf("good impression in schema 2: %+v, %v", im, err)
	}
	if _, err := events.DecodeFeedback([]byte(goodFeedback)); err != nil {
		t.Errorf("good feedback: %v", err)
	}
}

// FuzzDecode checks the decoders never panic and that whatever they accept
// survives a re-encode and decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{goodFeedback, goodImpression, goodImpression2, ``, `{}`, `null`, `[`, `{"schema":1}`, `{"schema":2}`,
		`{"schema":1,"items":[{}]}`, goodFeedback + `x`, `{"ts":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if fb, err := events.DecodeFeedback(b); err == nil {
			again, _ := json.Marshal(fb)
			fb2, err := events.DecodeFeedback(again)
			if err != nil || fb2 != fb {
				t.Fatalf("feedback %q re-encoded as %q: %v", b, again, err)
			}
		}
		if im, err := events.DecodeImpression(b); err == nil {
			again, _ := json.Marshal(im)
			if _, err := events.DecodeImpression(again); err != nil {
				t.Fatalf("impression %q re-encoded as %q: %v", b, again, err)
			}
		}
	})
}

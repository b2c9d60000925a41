package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// servedImpression is an impression as the service logs one at k: a 32-hex
// event id (the service's request id), user, session and item ids of 6–11
// characters, a 32-dimensional unit taste vector, the 12-number intent
// state, 5 levels, 4 ranker features per item.
func servedImpression(k int, rng *rand.Rand) Impression {
	im := Impression{
		Schema: SchemaVersion, EventID: "9f86d081884c7d659a2feaa0c55ad015", UserID: "user-483920", SessionID: "s-4821",
		Variant: "default", ModelVersion: "default-18342", TS: 1_700_000_123_456,
		Intent: Intent{UserPropensity: 0.31, SessionPropensity: 0.62, Level: 2, Probability: 0.4123,
			Probabilities: []float64{0.1, 0.2, 0.4123, 0.2, 0.0877}},
	}
	im.RequestID = im.EventID
	for range 12 {
		im.Intent.State = append(im.Intent.State, rng.Float64())
	}
	norm := 0.0
	for range 32 {
		x := rng.NormFloat64()
		im.Taste = append(im.Taste, float32(x))
		norm += x * x
	}
	for i := range im.Taste {
		im.Taste[i] /= float32(math.Sqrt(norm))
	}
	for i := range k {
		im.Items = append(im.Items, ImpressionItem{
			ItemID: fmt.Sprintf("item-%d", 10_000+rng.IntN(90_000)), Position: i,
			Score: 1 + 2*rng.Float64(), Propensity: rng.Float64(), Novel: i%3 == 0, Novelty: float64(i % 3 % 2),
			Features: []float64{2*rng.Float64() - 1, 0.01 * rng.NormFloat64(), rng.Float64(), rng.Float64()},
		})
	}
	return im
}

// TestImpressionSchema2 checks the compact schema: at most 700 bytes at
// k=10, decoded to the same impression up to the precision it documents
// (float32 for probability, scores and propensities, int8 of the largest
// component for the taste vector, float16 elsewhere), and schema 1 events
// still decoded as before.
func TestImpressionSchema2(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 10, 30} {
		im := servedImpression(k, rng)
		v1, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		im.Schema = ImpressionSchema
		v2, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("k=%d: schema 1 %d bytes, schema 2 %d bytes", k, len(v1), len(v2))
		if k == 10 && len(v2) > 700 {
			t.Errorf("k=10: %d bytes, want ≤ 700: %s", len(v2), v2)
		}
		old, err := DecodeImpression(v1)
		if err != nil || old.Schema != 1 || old.Intent.UserPropensity != im.Intent.UserPropensity || old.Items[0].Features[0] != im.Items[0].Features[0] {
			t.Fatalf("schema 1: %+v, %v", old, err)
		}
		got, err := DecodeImpression(v2)
		if err != nil {
			t.Fatalf("schema 2 does not decode: %v\n%s", err, v2)
		}
		var viaJSON Impression
		if err := json.Unmarshal(v2, &viaJSON); err != nil || viaJSON.Items[k-1].ItemID != got.Items[k-1].ItemID {
			t.Errorf("json.Unmarshal of schema 2: %+v, %v", viaJSON, err)
		}
		close := func(what string, a, b float64, rel float64) {
			t.Helper()
			if math.Abs(a-b) > rel*math.Max(math.Abs(a), 1e-3) {
				t.Errorf("k=%d %s: %v decoded as %v", k, what, a, b)
			}
		}
		const f32, f16 = 1e-7, 1e-3
		if got.EventID != im.EventID || got.RequestID != im.RequestID || got.UserID != im.UserID || got.SessionID != im.SessionID ||
			got.Variant != im.Variant || got.ModelVersion != im.ModelVersion || got.TS != im.TS || got.Intent.Level != im.Intent.Level ||
			len(got.Items) != k || len(got.Taste) != 32 || len(got.Intent.State) != 12 {
			t.Fatalf("k=%d: decoded %+v", k, got)
		}
		close("probability", im.Intent.Probability, got.Intent.Probability, f32)
		for i := range im.Intent.State {
			close("state", im.Intent.State[i], got.Intent.State[i], f16)
		}
		top := 0.0
		for _, x := range im.Taste {
			top = max(top, math.Abs(float64(x)))
		}
		for i := range im.Taste {
			if d := math.Abs(float64(im.Taste[i] - got.Taste[i])); d > top/254*1.0001 {
				t.Errorf("k=%d taste[%d]: %v decoded as %v", k, i, im.Taste[i], got.Taste[i])
			}
		}
		for i, it := range im.Items {
			g := got.Items[i]
			if g.ItemID != it.ItemID || g.Position != it.Position || len(g.Features) != len(it.Features) {
				t.Fatalf("k=%d item %d: %+v, want %+v", k, i, g, it)
			}
			close("score", it.Score, g.Score, f32)
			close("propensity", it.Propensity, g.Propensity, f32)
			close("novelty", it.Novelty, g.Novelty, f16)
			if g.Novel != it.Novel {
				t.Errorf("k=%d item %d: novel %v decoded as %v", k, i, it.Novel, g.Novel)
			}
			for j := range it.Features {
				close("feature", it.Features[j], g.Features[j], f16)
			}
		}
		// What was decoded re-encodes to as many bytes, and decodes again.
		again, err := json.Marshal(got)
		if err != nil || len(again) != len(v2) {
			t.Errorf("k=%d: re-encoded differently:\n%s\n%s", k, v2, again)
		}
		if _, err := DecodeImpression(again); err != nil {
			t.Errorf("k=%d: re-encoded does not decode: %v", k, err)
		}
	}
}

// TestImpressionSchema2Shapes covers what the compact form must still say:
// a request id other than the event id, positions other than 0..k-1, items
// with different feature counts (written as schema 1), huge values.
func TestImpressionSchema2Shapes(t *testing.T) {
	im := servedImpression(4, rand.New(rand.NewPCG(3, 3)))
	im.Schema = ImpressionSchema
	im.RequestID = "r-other"
	im.Items[0].Position, im.Items[1].Position = 1, 0
	im.Items[2].Features[0] = 1e9
	b, _ := json.Marshal(im)
	got, err := DecodeImpression(b)
	if err != nil || got.RequestID != "r-other" || got.Items[0].Position != 1 || got.Items[1].Position != 0 || got.Items[2].Features[0] != maxHalf {
		t.Errorf("decoded %+v, %v from %s", got, err, b)
	}
	im.Items[3].Features = nil
	b, _ = json.Marshal(im)
	if got, err := DecodeImpression(b); err != nil || got.Schema != SchemaVersion || got.Items[3].Features != nil {
		t.Errorf("uneven features: %+v, %v from %s", got, err, b)
	}
}

func TestImpressionSchema2Rejects(t *testing.T) {
	im := servedImpression(3, rand.New(rand.NewPCG(4, 4)))
	im.Schema = ImpressionSchema
	good, _ := json.Marshal(im)
	set := func(field, raw string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = json.RawMessage(raw)
		b, _ := json.Marshal(m)
		return strings.Replace(string(b), `{`, `{"schema":2,`, 1) // keep the schema first
	}
	for _, c := range []struct{ field, raw, reason string }{
		{"slate", `"AAAA"`, "bytes per item"},
		{"slate", `"@@"`, "base64"},
		{"slate", `""`, "bytes per item"},
		{"nphi", `3`, "= 16 bytes per item"},
		{"nphi", `-9`, "bytes per item"},
		{"pos", `[0]`, "1 position per item"},
		{"items", `[]`, "bytes per item"},
		{"extra", `1`, "unknown field"},
		{"state", `"AHw"`, "must be finite"}, // float16 infinity
		{"state", `"AHwA"`, "whole number"},
		{"taste", `"AA"`, "shorter than its scale"},
		{"taste", `"AADAfwE"`, "must be finite"}, // NaN scale
	} {
		_, err := DecodeImpression([]byte(set(c.field, c.raw)))
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrPoison) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s=%s: %v, want a DecodeError saying %q", c.field, c.raw, err, c.reason)
		}
	}
}

// BenchmarkDecodeImpression compares the schemas at k=10.
func BenchmarkDecodeImpression(b *testing.B) {
	im := servedImpression(10, rand.New(rand.NewPCG(1, 2)))
	for _, schema := range []int{1, 2} {
		im.Schema = schema
		data, _ := json.Marshal(im)
		b.Run(fmt.Sprintf("schema%d", schema), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DecodeImpression(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAppendJSONMatchesEncodingJSON checks that the hand-written encoder
// writes exactly what encoding/json writes for the same impression: the
// schema-2 wire struct marshalled by reflection (as MarshalJSON did before
// it was written by hand), and json.Marshal of the impression itself.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	served := func(k int) Impression {
		im := servedImpression(k, rng)
		im.Schema = ImpressionSchema
		return im
	}
	with := func(k int, f func(*Impression)) Impression {
		im := served(k)
		f(&im)
		return im
	}
	tests := []struct {
		name string
		im   Impression
	}{
		{"served k=10", served(10)},
		{"served k=1", served(1)},
		{"served k=30 (slate past the scratch)", served(30)},
		{"no items", served(0)},
		{"nil items", with(3, func(im *Impression) { im.Items = nil })},
		{"degraded, cold", with(10, func(im *Impression) { im.Degraded, im.Taste = true, nil })},
		{"request id of its own", with(2, func(im *Impression) { im.RequestID = "r-1" })},
		{"no request id", with(2, func(im *Impression) { im.RequestID = "" })},
		{"no session, variant, model", with(2, func(im *Impression) { im.SessionID, im.Variant, im.ModelVersion = "", "", "" })},
		{"positions out of order", with(4, func(im *Impression) { im.Items[0].Position, im.Items[3].Position = 3, 0 })},
		{"positions from 5", with(3, func(im *Impression) {
			for i := range im.Items {
				im.Items[i].Position = 5 + i
			}
		})},
		{"no state", with(2, func(im *Impression) { im.Intent.State = nil })},
		{"long state", with(2, func(im *Impression) {
			for range 300 {
				im.Intent.State = append(im.Intent.State, rng.NormFloat64()*1e5)
			}
		})},
		{"no features", with(5, func(im *Impression) {
			for i := range im.Items {
				im.Items[i].Features = nil
			}
		})},
		{"features of different lengths (schema 1)", with(3, func(im *Impression) { im.Items[1].Features = nil })},
		{"schema 1", with(3, func(im *Impression) { im.Schema = SchemaVersion })},
		{"ids to escape", with(3, func(im *Impression) {
			im.UserID, im.SessionID, im.EventID = `a"b\c`, "<script>&", "tab\there"
			im.Items[0].ItemID, im.Items[1].ItemID, im.Items[2].ItemID = "é", "\u2028x\u2029", "bad\xffutf8"
			im.Variant, im.ModelVersion = "\x00\x1f", "\x7f"
		})},
		{"p 0", with(1, func(im *Impression) { im.Intent.Probability = 0 })},
		{"p tiny", with(1, func(im *Impression) { im.Intent.Probability = 1e-7 })},
		{"p below 1e-6 as float32", with(1, func(im *Impression) { im.Intent.Probability = 9.9999997e-7 })},
		{"p subnormal float32", with(1, func(im *Impression) { im.Intent.Probability = 1e-45 })},
		{"p underflows to 0", with(1, func(im *Impression) { im.Intent.Probability = 1e-300 })},
		{"p negative", with(1, func(im *Impression) { im.Intent.Probability = -0.25 })},
		{"p negative zero", with(1, func(im *Impression) { im.Intent.Probability = math.Copysign(0, -1) })},
		{"p 1e21", with(1, func(im *Impression) { im.Intent.Probability = 1e21 })},
		{"p just below 1e21", with(1, func(im *Impression) { im.Intent.Probability = 9.99e20 })},
		{"p overflows float32", with(1, func(im *Impression) { im.Intent.Probability = 1e39 })},
		{"p NaN", with(1, func(im *Impression) { im.Intent.Probability = math.NaN() })},
		{"non-finite slate numbers", with(2, func(im *Impression) {
			im.Items[0].Score, im.Items[1].Propensity, im.Items[0].Novelty = math.Inf(1), math.NaN(), math.Inf(-1)
			im.Taste[0] = float32(math.NaN())
		})},
		{"negative level and ts", with(1, func(im *Impression) { im.Intent.Level, im.TS = -3, -1 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkAppendJSON(t, &tc.im) })
	}
}

// checkAppendJSON compares AppendJSON with encoding/json for im.
func checkAppendJSON(t *testing.T, im *Impression) {
	t.Helper()
	want, wantErr := json.Marshal(im)
	if im.Schema == ImpressionSchema && sameFeatureCount(im.Items) {
		// What MarshalJSON wrote before appendV2: the wire struct by reflection.
		ref, refErr := json.Marshal(im.wireV2())
		if (refErr != nil) != (wantErr != nil) || string(ref) != string(want) {
			t.Fatalf("json.Marshal(impression) = %s, %v\nreflection on the wire struct = %s, %v", want, wantErr, ref, refErr)
		}
	}
	prefix := []byte("prefix")
	got, err := im.AppendJSON(prefix)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendJSON error %v, encoding/json's %v", err, wantErr)
	}
	if err != nil {
		if string(got) != "prefix" {
			t.Fatalf("AppendJSON failed but appended: %q", got)
		}
		return
	}
	if string(got[:6]) != "prefix" || string(got[6:]) != string(want) {
		t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got[6:], want)
	}
}

// FuzzAppendJSON: for any ids, numbers and shapes, AppendJSON writes what
// encoding/json writes.
func FuzzAppendJSON(f *testing.F) {
	f.Add("9f86d081884c7d659a2feaa0c55ad015", "", "user-1", "s-1", "default", "m-1", "item-1", int64(1700000000000), 2, 0.4123, 1.5, 0.2, 0.5, uint8(10), uint8(4), uint8(12), uint8(32), false, false)
	f.Add("e", "r", "<u>", "", "", "", "\xff", int64(-1), -1, 1e-7, math.Inf(1), math.NaN(), 7e4, uint8(0), uint8(0), uint8(0), uint8(0), true, true)
	f.Fuzz(func(t *testing.T, eventID, requestID, userID, sessionID, variant, model, itemID string, ts int64, level int,
		p, score, propensity, x float64, k, nphi, nstate, ntaste uint8, degraded, shuffle bool) {
		im := Impression{
			Schema: ImpressionSchema, EventID: eventID, RequestID: requestID, UserID: userID, SessionID: sessionID,
			Variant: variant, ModelVersion: model, TS: ts, Degraded: degraded,
			Intent: Intent{Level: level, Probability: p},
		}
		rng := rand.New(rand.NewPCG(uint64(k), uint64(nphi)))
		for i := range int(nstate) {
			im.Intent.State = append(im.Intent.State, x*float64(i))
		}
		for i := range int(ntaste) % 65 {
			im.Taste = append(im.Taste, float32(x*rng.NormFloat64()+float64(i)))
		}
		for i := range int(k) % 40 {
			it := ImpressionItem{ItemID: itemID + strings.Repeat("x", i), Position: i, Score: score * float64(i),
				Propensity: propensity, Novelty: x, Novel: i%2 == 0}
			if shuffle {
				it.Position = int(k) - i
			}
			for j := range int(nphi) % 12 {
				it.Features = append(it.Features, x*float64(j)-score)
			}
			im.Items = append(im.Items, it)
		}
		checkAppendJSON(t, &im)
	})
}

func BenchmarkEncodeImpression(b *testing.B) {
	im := servedImpression(10, rand.New(rand.NewPCG(1, 2)))
	im.Schema = ImpressionSchema
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(im.wireV2()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			var err error
			if buf, err = im.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package api

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendResponseMatchesEncodingJSON: the hand-written encoder writes
// byte for byte what encoding/json writes, for ordinary and awkward values.
func TestAppendResponseMatchesEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, -2.5e22,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125}
	strs := []string{"", "u", "user-42", `quo"te`, `back\slash`, "<b>&amp;</b>", "tab\t", "é", "\u2028", "\xff", "a/b?c#d%e+f"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() float64 {
		if rng.IntN(2) == 0 {
			return floats[rng.IntN(len(floats))]
		}
		return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(40)-20))
	}
	str := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 2000 {
		r := RecommendResponse{
			RequestID: str(), UserID: str(), SessionID: str(), Variant: str(), ModelVersion: str(),
			CatalogVersion: rng.Uint64(),
			Intent:         IntentOut{UserPropensity: pick(), SessionPropensity: pick(), Level: rng.IntN(5) - 1, Probability: pick()},
			Degraded:       rng.IntN(2) == 0,
		}
		if i%7 != 0 {
			r.Items = make([]ItemOut, rng.IntN(12))
			for j := range r.Items {
				r.Items[j] = ItemOut{ItemID: str(), Score: pick(), Propensity: pick(), Novel: rng.IntN(2) == 0, Position: j}
			}
		}
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendResponse(nil, &r)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("appendResponse (ok=%v):\n%s\nencoding/json:\n%s", ok, got, want)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		r := RecommendResponse{Items: []ItemOut{{Score: bad}}}
		if _, ok := appendResponse(nil, &r); ok {
			t.Errorf("appendResponse accepted %v, which encoding/json refuses", bad)
		}
	}
}

func BenchmarkRecommendResponse(b *testing.B) {
	r := RecommendResponse{RequestID: "0123456789abcdef0123456789abcdef", UserID: "user-42", SessionID: "s1", Variant: "default",
		ModelVersion: "default-42", CatalogVersion: 7, Intent: IntentOut{0.4, 0.6, 1, 0.7}, Items: make([]ItemOut, 10)}
	for i := range r.Items {
		r.Items[i] = ItemOut{ItemID: "item-12345", Score: 1.2345678 * float64(i), Propensity: 0.0123 * float64(i+1), Position: i}
	}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&r)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf, _ = appendResponse(buf[:0], &r)
		}
	})
}

package half

import (
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00}, {5.960464477539063e-08, 1},
		{1e-9, 0}, {0.333333, 0x3555}, {1.0009765625, 0x3c01}, {1.00048828125, 0x3c00}, // ties to even
	} {
		if got := From(c.in); got != c.want {
			t.Errorf("From(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	// Every finite half survives the round trip.
	for h := range uint16(0x7c00) {
		for _, s := range []uint16{0, 0x8000} {
			if got := From(To32(h | s)); got != h|s {
				t.Fatalf("half %#04x → %v → %#04x", h|s, To32(h|s), got)
			}
		}
	}
	if !math.IsNaN(float64(To32(From(float32(math.NaN()))))) {
		t.Error("NaN lost")
	}
}

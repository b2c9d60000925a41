package cpuclock

import "testing"

// TestNowAdvancesWithWork: the clock is monotonic and counts this
// goroutine's work (a spin of a few million steps, whatever it takes in
// wall time).
func TestNowAdvancesWithWork(t *testing.T) {
	before := Now()
	if before <= 0 {
		t.Fatalf("Now() = %v before any work of the test; want the start-up's CPU time", before)
	}
	x := uint64(1)
	for after := Now(); after == before; after = Now() {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if after < before {
			t.Fatalf("Now() went back: %v after %v", after, before)
		}
	}
	if x == 0 {
		t.Log("x", x) // keeps the loop
	}
}

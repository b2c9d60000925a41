package recommend

import (
	"fmt"
	"testing"

	"github.com/novarec/novarec/catalog"
)

func TestFilter(t *testing.T) {
	var f Filter
	const n = 3000
	for i := 0; i < n; i++ {
		h := catalog.Hash(fmt.Sprint("in-", i))
		f.Add(h) // false when a false positive already covers it
		if f.Add(h) {
			t.Fatalf("item %d added twice", i)
		}
	}
	if f.N < n-10 || f.N > n {
		t.Errorf("N = %d after %d distinct items", f.N, n)
	}
	for i := 0; i < n; i++ {
		if !f.Has(catalog.Hash(fmt.Sprint("in-", i))) {
			t.Fatalf("false negative for item %d", i)
		}
	}
	fp := 0
	const probes = 100000
	for i := 0; i < probes; i++ {
		if f.Has(catalog.Hash(fmt.Sprint("out-", i))) {
			fp++
		}
	}
	// Slices 0..4 hold 3000 items at under 0.1% each.
	if rate := float64(fp) / probes; rate > 0.005 {
		t.Errorf("false-positive rate %.4f, want ≤ 0.005", rate)
	}
	// 16 bits per item, doubled by the slices' growth at most.
	if perItem := float64(len(f.Bits)) / n; perItem > 4.5 {
		t.Errorf("%.1f bytes per item", perItem)
	}
	var empty Filter
	if empty.Has(1) {
		t.Error("an empty filter has an item")
	}
}

// The filter's bit order is Redis's (SETBIT offset o is bit 7−o%8 of byte
// o/8), so a filter written with SETBIT reads back through GET.
func TestFilterBitOrder(t *testing.T) {
	var f Filter
	f.Add(0) // double hashing from h1 = 0, h2 = 1: bits 0..6 of slice 0
	if f.Bits[0] != 0xfe {
		t.Errorf("first byte %08b, want 11111110", f.Bits[0])
	}
}

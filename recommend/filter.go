package recommend

// Filter is a scalable Bloom filter (Almeida et al., 2007) of the items a
// user has consumed, so that a user is never recommended what they already
// watched, rated or clicked, however long ago, at a few bytes per item.
// Bits is the whole filter as stored in Redis (one string value; Redis's
// bit order, most significant bit first, so SETBIT and GETBIT agree with
// it); N counts the items added.
//
// It grows in slices: slice s has 2048·2^s bits and takes 128·2^s items
// (16 bits per item, 7 probes: a false-positive rate below 0.1% per
// slice), and an item is present if any slice has all its bits. A false
// positive hides an item the user has not consumed; a false negative
// cannot happen.
type Filter struct {
	N    int64
	Bits []byte
}

const (
	filterSliceBytes = 256 // slice 0; slice s is filterSliceBytes << s
	filterSliceItems = 128 // capacity of slice 0
	filterProbes     = 7
)

// slice returns the byte range of slice s.
func sliceRange(s int) (lo, hi int) {
	return filterSliceBytes * ((1 << s) - 1), filterSliceBytes * ((1 << (s + 1)) - 1)
}

// Has reports whether the item of hash h (catalog.Hash) was added.
func (f *Filter) Has(h uint64) bool {
	for s := 0; ; s++ {
		lo, hi := sliceRange(s)
		if hi > len(f.Bits) {
			return false
		}
		if probe(f.Bits[lo:hi], h, false) {
			return true
		}
	}
}

// Add adds the item of hash h unless it is already present, and reports
// whether it added it.
func (f *Filter) Add(h uint64) bool {
	if f.Has(h) {
		return false
	}
	s, capacity := 0, int64(filterSliceItems)
	for f.N >= capacity {
		s++
		capacity += filterSliceItems << s
	}
	lo, hi := sliceRange(s)
	if len(f.Bits) < hi {
		f.Bits = append(f.Bits, make([]byte, hi-len(f.Bits))...)
	}
	probe(f.Bits[lo:hi], h, true)
	f.N++
	return true
}

// probe tests (or, with set, sets) the filterProbes bits of h in one slice,
// by double hashing (Kirsch and Mitzenmacher, 2006). A slice's bit count is
// a power of two, so the bit index is a mask, not a division.
func probe(b []byte, h uint64, set bool) bool {
	mask64 := uint64(len(b))*8 - 1
	h1, h2 := h, (h>>33|h<<31)|1
	for i := uint64(0); i < filterProbes; i++ {
		bit := (h1 + i*h2) & mask64
		mask := byte(0x80) >> (bit % 8)
		if set {
			b[bit/8] |= mask
		} else if b[bit/8]&mask == 0 {
			return false
		}
	}
	return true
}

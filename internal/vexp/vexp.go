// Package vexp evaluates many exponentials at once, bit for bit as
// math.Exp: the slate's softmax takes one per remaining candidate and
// position, about a thousand a decision, which one call at a time cost a
// third of a decision on an AMD EPYC VM (docs/benchmarks.md, tenth pass).
//
// On amd64 with AVX2 and FMA the kernel runs the steps of the runtime's own
// assembly (math/exp_amd64.s, its FMA path, the one math.Exp takes on such
// a CPU) on four values per instruction: the same operations in the same
// order, each rounded as the scalar one is, so every result is the same
// double. A check at start-up compares it with math.Exp on a set of probes
// and falls back to math.Exp one value at a time if anything differs (a
// CPU without FMA, GODEBUG turning it off, a changed runtime), as it does
// on every other architecture.
package vexp

import "math"

// Softmax sets dst[i] to math.Exp(z) for z = (src[i]-shift)/div where z >
// cutoff, and to 0 elsewhere (NaN included), for i < len(src): a softmax's
// exponentials, stabilised by shift (the largest value) and cut where they
// vanish. dst must be at least as long as src and may be src itself.
func Softmax(dst, src []float64, shift, div, cutoff float64) {
	dst = dst[:len(src)]
	i := 0
	if useKernel {
		n4 := len(src) &^ 3
		for i < n4 {
			i += expBlocks(&dst[i], &src[i], n4-i, shift, div, cutoff)
			if i < n4 {
				// A block with a value the kernel does not take (beyond
				// ±700, where math.Exp leaves its straight path).
				softmax(dst[i:i+4], src[i:i+4], shift, div, cutoff)
				i += 4
			}
		}
	}
	softmax(dst[i:], src[i:], shift, div, cutoff)
}

// Exp sets dst[i] to math.Exp(src[i]) for i < len(src), bit for bit,
// whatever the value (±Inf and NaN included): the mode evidence's
// sigmoids, two a shown item, twenty a slate. dst must be at least as
// long as src and may be src itself.
func Exp(dst, src []float64) {
	dst = dst[:len(src)]
	for _, x := range src {
		if x != x { // NaN, which no cutoff takes: math.Exp has its own
			for i, x := range src {
				dst[i] = math.Exp(x)
			}
			return
		}
	}
	// x−0 and x/1 are x exactly (−0 included), so the kernel's argument is
	// src[i] itself, and every value but NaN is above −Inf or is −Inf,
	// whose exponential is the 0 a value not taken gets.
	Softmax(dst, src, 0, 1, math.Inf(-1))
}

// softmax is Softmax one value at a time: the reference.
func softmax(dst, src []float64, shift, div, cutoff float64) {
	dst = dst[:len(src)]
	for i, x := range src {
		z := (x - shift) / div
		e := 0.0
		if z > cutoff {
			e = math.Exp(z)
		}
		dst[i] = e
	}
}

// probes are the values the start-up check compares.
func probes() []float64 {
	p := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1e-300, -1e-300, 699.9, -699.9, 700, -700,
		math.Ln2, -math.Ln2, 0.34657359027997264, -0.34657359027997264, -29.999999999, -1e-9, 1e-9}
	x := uint64(0x9e3779b97f4a7c15)
	for range 237 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p = append(p, (float64(x>>11)/(1<<53))*60-50) // [-50, 10)
	}
	return p
}

// kernelMatches runs the kernel over the probes against math.Exp, as they
// are and as a softmax's arguments.
func kernelMatches() bool {
	p := probes()
	n := len(p) &^ 3
	got, want := make([]float64, n), make([]float64, n)
	for _, a := range [][2]float64{{0, 1}, {0.7, 1.5}} {
		if expBlocks(&got[0], &p[0], n, a[0], a[1], math.Inf(-1)) != n {
			return false
		}
		softmax(want, p[:n], a[0], a[1], math.Inf(-1))
		for i, e := range got {
			if math.Float64bits(e) != math.Float64bits(want[i]) {
				return false
			}
		}
	}
	return true
}

// Package vdot computes a matrix's products with a vector row by row, bit
// for bit as gonum's blas32.Gemv (no transpose, alpha 1, beta 0): the
// familiar pool's scan of its probed clusters, the slate's cosines with
// each chosen item and the IVF's centroid scores take one such product
// each: a sixth (over served users) to a third (one user's category
// decision) of a decision at 100k items, most of it gonum calling its dot
// product kernel once per row of 32 values.
//
// On amd64 with AVX the kernel runs the arithmetic of gonum's DotUnitary
// (internal/asm/f32/dotunitary_amd64.s) for every row in one loop: that
// kernel keeps two sums of four lanes, one for the first and third four of
// each sixteen values and one for the second and fourth; here they are the
// two halves of one eight-lane register, so every sum takes the same
// products in the same order and rounds as there. DotUnitary trims the
// values before a 16-byte boundary of the vector one at a time; the kernel
// takes only a vector on such a boundary (as Go allocates one of 32
// values), and gonum does the rest. A check at start-up compares it with
// gonum on a set of probes and leaves every product to gonum if anything
// differs, as on every other architecture.
package vdot

import (
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// MulRows sets dst[i] to the dot product of row i of the row-major matrix
// a, whose rows are len(x) long, with x, for i < len(dst): what
// blas32.Gemv(blas.NoTrans, 1, a, x, 0, dst) gives, bit for bit. It panics
// if a holds fewer than len(dst) rows.
func MulRows(dst, a, x []float32) {
	rows, n := len(dst), len(x)
	if rows == 0 || n == 0 {
		return
	}
	a = a[:rows*n]
	if useKernel && uintptr(unsafe.Pointer(&x[0]))&15 == 0 {
		mulRows(&dst[0], &a[0], &x[0], rows, n)
		return
	}
	gemv(dst, a, x)
}

// gemv is MulRows by gonum: the reference.
func gemv(dst, a, x []float32) {
	rows, n := len(dst), len(x)
	blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: rows, Cols: n, Stride: n, Data: a},
		blas32.Vector{N: n, Inc: 1, Data: x}, 0, blas32.Vector{N: rows, Inc: 1, Data: dst})
}

// kernelMatches runs the kernel against gonum on probes of every row
// length up to 40 (every tail of DotUnitary's loops) and 64, with
// values of mixed signs and magnitudes.
func kernelMatches() bool {
	const rows = 9
	x := make([]float32, 64)
	a := make([]float32, rows*64)
	s := uint64(0x9e3779b97f4a7c15)
	next := func() float32 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		v := float32(float64(s>>11)/(1<<53)*2 - 1)
		if s%7 == 0 {
			v *= 1e4
		}
		return v
	}
	for i := range x {
		x[i] = next()
	}
	for i := range a {
		a[i] = next()
	}
	got, want := make([]float32, rows), make([]float32, rows)
	for n := 1; n <= 64; n++ {
		if n > 40 && n != 64 {
			continue
		}
		mulRows(&got[0], &a[0], &x[0], rows, n)
		gemv(want, a[:rows*n], x[:n])
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(want[i]) {
				return false
			}
		}
	}
	return true
}

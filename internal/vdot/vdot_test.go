package vdot

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/sys/cpu"
)

func TestKernelInUseWhereAVX(t *testing.T) {
	if runtime.GOARCH != "amd64" || !cpu.X86.HasAVX {
		t.Skip("no AVX: MulRows calls gonum")
	}
	if !useKernel {
		t.Fatal("the kernel disagrees with gonum on the start-up probes")
	}
}

// same reports whether a and b are the same float32, any NaN matching any
// (gonum and the kernel may carry different payloads).
func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestMulRowsMatchesGonum compares MulRows with blas32.Gemv bit for bit:
// every row length to 70 (each tail of DotUnitary's loops), the catalog's
// 32, vectors on and off a 16-byte boundary (gonum trims the latter one
// value at a time), and special values.
func TestMulRowsMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-30, 3e38}
	gens := []struct {
		name string
		gen  func() float32
	}{
		{"unit-scale", func() float32 { return float32(2*r.Float64() - 1) }},
		{"mixed magnitudes", func() float32 { return float32((2*r.Float64() - 1) * math.Pow(10, float64(r.IntN(13)-6))) }},
		{"specials among ordinary", func() float32 {
			if r.IntN(6) == 0 {
				return specials[r.IntN(len(specials))]
			}
			return float32(2*r.Float64() - 1)
		}},
	}
	for _, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			for n := 1; n <= 70; n++ {
				for _, rows := range []int{0, 1, 3, 17, 64} {
					for _, off := range []int{0, 1, 2, 3, 4} { // x's offset in floats from an aligned start
						check(t, g.gen, rows, n, off)
					}
				}
			}
		})
	}
}

func check(t *testing.T, gen func() float32, rows, n, off int) {
	t.Helper()
	xbuf := make([]float32, n+8) // 32 bytes or more: on a 16-byte boundary
	x := xbuf[off : off+n]
	for i := range x {
		x[i] = gen()
	}
	a := make([]float32, rows*n+5) // longer than the rows it holds
	for i := range a {
		a[i] = gen()
	}
	want := make([]float32, rows)
	if rows > 0 {
		gemv(want, a[:rows*n], x)
	}
	got := make([]float32, rows+1)
	got[rows] = 42
	MulRows(got[:rows], a, x)
	if got[rows] != 42 {
		t.Fatalf("rows=%d n=%d: wrote past dst", rows, n)
	}
	for i := range want {
		if !same(got[i], want[i]) {
			t.Fatalf("rows=%d n=%d off=%d: row %d: %v, gonum %v", rows, n, off, i, got[i], want[i])
		}
	}
}

func FuzzMulRows(f *testing.F) {
	f.Add(float32(0.5), float32(-0.25), float32(3), float32(1e-3), uint8(32), uint8(3))
	f.Add(float32(1e30), float32(-1e30), float32(1), float32(-1), uint8(17), uint8(5))
	f.Fuzz(func(t *testing.T, p, q, u, v float32, n, rows uint8) {
		vals := []float32{p, q, u, v, p * q, u - v, p + v}
		k := 0
		gen := func() float32 { k++; return vals[k%len(vals)] * float32(k%5+1) }
		check(t, gen, int(rows%20), int(n%80)+1, 0)
	})
}

// BenchmarkMulRows takes the familiar scan's product: 632 rows of 32.
func BenchmarkMulRows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, n = 632, 32
	a := make([]float32, rows*n)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	dst := make([]float32, rows)
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			MulRows(dst, a, x)
		}
	})
	b.Run("gonum", func(b *testing.B) {
		for b.Loop() {
			gemv(dst, a, x)
		}
	})
}

package vexp

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/sys/cpu"
)

func TestKernelInUseWhereMathExpTakesItsFMAPath(t *testing.T) {
	if runtime.GOARCH != "amd64" || !(cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		t.Skip("no AVX2 and FMA: Softmax calls math.Exp")
	}
	if !useKernel {
		t.Fatal("the kernel disagrees with math.Exp on the start-up probes")
	}
}

// TestSoftmaxMatchesMathExp compares Softmax with the slate's loop before
// it, one math.Exp a value, bit for bit, on the arguments the slate gives
// it and on values the kernel must hand back (beyond ±700, NaN,
// infinities).
func TestSoftmaxMatchesMathExp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	uniform := func(lo, hi float64) func() float64 { return func() float64 { return lo + (hi-lo)*r.Float64() } }
	specials := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), -30, -30 + 1e-12, 700, -700,
		math.Nextafter(700, 1000), math.Nextafter(-700, -1000), 709.78, 709.79, 710, -745, -746, -1e300, 1e300,
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, math.MaxFloat64}
	cases := []struct {
		name               string
		n                  int
		shift, div, cutoff float64
		gen                func() float64
	}{
		{"softmax range", 1003, 0, 1, -30, uniform(-30, 0)},
		{"softmax range with cut values", 1000, 0, 1, -30, uniform(-60, 0)},
		{"slate scores", 1000, 2.5, 0.08, -30, uniform(-1, 2.5)},
		{"slate scores, hot", 1000, 1.25, 0.001, -30, uniform(1, 1.25)},
		{"slate scores, divided up", 1000, -3, 7, -30, uniform(-300, 3)},
		{"small magnitudes", 1000, 0, 1, math.Inf(-1), uniform(-1e-6, 1e-6)},
		{"whole kernel range", 4000, 0, 1, math.Inf(-1), uniform(-700, 700)},
		{"past the kernel range", 1000, 0, 1, math.Inf(-1), uniform(-800, 800)},
		{"past the kernel range by the divisor", 1000, 0.5, 0.01, math.Inf(-1), uniform(-9, 9)},
		{"past the kernel range, cut below", 1000, 0, 1, -30, uniform(-800, 800)},
		{"specials", 600, 0, 1, math.Inf(-1), func() float64 { return specials[r.IntN(len(specials))] }},
		{"specials, shifted", 600, 1, 0.08, -30, func() float64 { return specials[r.IntN(len(specials))] }},
		{"specials among ordinary", 600, 0, 1, -30, func() float64 {
			if r.IntN(5) == 0 {
				return specials[r.IntN(len(specials))]
			}
			return -30 * r.Float64()
		}},
		{"shift +Inf", 100, math.Inf(1), 0.08, -30, uniform(-5, 5)},
		{"shift NaN", 100, math.NaN(), 0.08, -30, uniform(-5, 5)},
		{"divisor 0", 100, 0, 0, -30, uniform(-5, 5)},
		{"cutoff NaN takes nothing", 100, 0, 1, math.NaN(), uniform(-5, 5)},
		{"cutoff +Inf takes nothing", 100, 0, 1, math.Inf(1), uniform(-5, 5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for n := range min(c.n, 13) + 1 { // every tail length, then the whole
				check(t, c.gen, n, c.shift, c.div, c.cutoff)
			}
			check(t, c.gen, c.n, c.shift, c.div, c.cutoff)
		})
	}
}

func check(t *testing.T, gen func() float64, n int, shift, div, cutoff float64) {
	t.Helper()
	src := make([]float64, n)
	for i := range src {
		src[i] = gen()
	}
	want := make([]float64, n)
	for i, x := range src { // the slate's loop before the kernel
		z := (x - shift) / div
		e := 0.0
		if z > cutoff {
			e = math.Exp(z)
		}
		want[i] = e
	}
	got := make([]float64, n+1)
	got[n] = 42
	Softmax(got, src, shift, div, cutoff)
	if got[n] != 42 {
		t.Fatalf("n=%d: wrote past len(src)", n)
	}
	in := append([]float64(nil), src...)
	Softmax(in, in, shift, div, cutoff) // in place, as the slate calls it
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) || math.Float64bits(in[i]) != math.Float64bits(want[i]) {
			t.Fatalf("n=%d: exp((%v-%v)/%v) (cutoff %v) = %v / %v in place, math.Exp gives %v", n, src[i], shift, div, cutoff, got[i], in[i], want[i])
		}
	}
}

// TestExpMatchesMathExp compares Exp with math.Exp bit for bit, in place
// and not, on the mode evidence's negated logits and on specials.
func TestExpMatchesMathExp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	uniform := func(lo, hi float64) func() float64 { return func() float64 { return lo + (hi-lo)*r.Float64() } }
	specials := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 700, -700,
		math.Nextafter(700, 1000), math.Nextafter(-700, -1000), 709.79, 710, -745, -746, 1e300, -1e300,
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64}
	cases := []struct {
		name string
		n    int
		gen  func() float64
	}{
		{"negated logits", 1000, uniform(-8, 8)},
		{"small magnitudes", 1000, uniform(-1e-6, 1e-6)},
		{"whole range", 1000, uniform(-800, 800)},
		{"specials", 600, func() float64 { return specials[r.IntN(len(specials))] }},
		{"specials among ordinary", 600, func() float64 {
			if r.IntN(5) == 0 {
				return specials[r.IntN(len(specials))]
			}
			return 16*r.Float64() - 8
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 20, 21, c.n} {
				src := make([]float64, n)
				for i := range src {
					src[i] = c.gen()
				}
				got := make([]float64, n+1)
				got[n] = 42
				Exp(got, src)
				if got[n] != 42 {
					t.Fatalf("n=%d: wrote past len(src)", n)
				}
				in := append([]float64(nil), src...)
				Exp(in, in)
				for i, x := range src {
					want := math.Exp(x)
					if math.Float64bits(got[i]) != math.Float64bits(want) || math.Float64bits(in[i]) != math.Float64bits(want) {
						t.Fatalf("n=%d: Exp(%v) = %v / %v in place, math.Exp gives %v", n, x, got[i], in[i], want)
					}
				}
			}
		})
	}
}

func FuzzSoftmax(f *testing.F) {
	for _, z := range []float64{0, -1, -29.9, 700, -700.5, math.NaN()} {
		f.Add(z, z/2, z*3, -z, 0.0, 1.0, -30.0)
		f.Add(z, z/2, z*3, -z, 1.5, 0.08, -30.0)
	}
	f.Fuzz(func(t *testing.T, a, b, c, d, shift, div, cutoff float64) {
		src := []float64{a, b, c, d, a, b, c}
		got := make([]float64, len(src))
		Softmax(got, src, shift, div, cutoff)
		for i, x := range src {
			z := (x - shift) / div
			want := 0.0
			if z > cutoff {
				want = math.Exp(z)
			}
			if math.Float64bits(got[i]) != math.Float64bits(want) {
				t.Fatalf("exp((%v-%v)/%v) cutoff %v = %v, math.Exp %v", x, shift, div, cutoff, got[i], want)
			}
		}
	})
}

// BenchmarkSoftmax takes a slate position's 96 exponentials.
func BenchmarkSoftmax(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float64, 96)
	for i := range src {
		src[i] = 2.4 * r.Float64()
	}
	dst := make([]float64, len(src))
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			Softmax(dst, src, 2.4, 0.08, -30)
		}
	})
	b.Run("math.Exp", func(b *testing.B) {
		for b.Loop() {
			softmax(dst, src, 2.4, 0.08, -30)
		}
	})
}

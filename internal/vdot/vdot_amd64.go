package vdot

import "golang.org/x/sys/cpu"

// useKernel: the CPU has AVX, and the kernel agrees with gonum on the
// start-up probes.
var useKernel = cpu.X86.HasAVX && kernelMatches()

// mulRows sets dst[i] to DotUnitary(a[i*n:(i+1)*n], x[:n]) for i < rows,
// x on a 16-byte boundary.
//
//go:noescape
func mulRows(dst, a, x *float32, rows, n int)

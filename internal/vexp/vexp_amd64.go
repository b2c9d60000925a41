package vexp

import "golang.org/x/sys/cpu"

// useKernel: the CPU has what the kernel uses and what makes math.Exp take
// its FMA path, and the kernel agrees with math.Exp on the probes.
var useKernel = cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasFMA && kernelMatches()

// expBlocks computes dst[i] = z > cutoff ? exp(z) : 0 for z = (src[i] -
// shift) / div and i < n (a multiple of 4), four at a time, and returns how
// many it did: it stops before a block holding a z above the cutoff whose
// magnitude exceeds 700.
//
//go:noescape
func expBlocks(dst, src *float64, n int, shift, div, cutoff float64) int

#include "textflag.h"

// The constants of math/exp_amd64.s, written as there, and what the packed
// code needs besides.
DATA expc<>+0(SB)/8, $1.4426950408889634073599246810018920 // LOG2E
DATA expc<>+8(SB)/8, $0.69314718055966295651160180568695068359375 // LN2U
DATA expc<>+16(SB)/8, $0.28235290563031577122588448175013436025525412068e-12 // LN2L
DATA expc<>+24(SB)/8, $0.0625
DATA expc<>+32(SB)/8, $2.4801587301587301587e-5
DATA expc<>+40(SB)/8, $1.9841269841269841270e-4
DATA expc<>+48(SB)/8, $1.3888888888888888889e-3
DATA expc<>+56(SB)/8, $8.3333333333333333333e-3
DATA expc<>+64(SB)/8, $4.1666666666666666667e-2
DATA expc<>+72(SB)/8, $1.6666666666666666667e-1
DATA expc<>+80(SB)/8, $0.5
DATA expc<>+88(SB)/8, $1.0
DATA expc<>+96(SB)/8, $2.0
DATA expc<>+104(SB)/8, $0x7fffffffffffffff // |x|
DATA expc<>+112(SB)/8, $700.0 // the kernel's range
DATA expc<>+120(SB)/8, $0x3ff // exponent bias
GLOBL expc<>(SB), RODATA, $128

// func expBlocks(dst, src *float64, n int, shift, div, cutoff float64) int
//
// Each step is the packed form of the scalar step of math/exp_amd64.s's
// avxfma path, in its order; the ldexp at the end takes its normal path
// only, which every value in [-700, 700] takes. The argument (x-shift)/div
// is an IEEE subtraction and division, as the scalar code's.
TEXT ·expBlocks(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD shift+24(FP), Y11
	VBROADCASTSD div+32(FP), Y10
	VBROADCASTSD cutoff+40(FP), Y15
	VBROADCASTSD expc<>+0(SB), Y14  // LOG2E
	VBROADCASTSD expc<>+8(SB), Y13  // LN2U
	VBROADCASTSD expc<>+16(SB), Y12 // LN2L
	VBROADCASTSD expc<>+96(SB), Y9  // 2.0
	VBROADCASTSD expc<>+88(SB), Y8  // 1.0
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JGE  done
	VMOVUPD (SI)(AX*8), Y0
	VSUBPD  Y11, Y0, Y0
	VDIVPD  Y10, Y0, Y0             // x = (src-shift)/div
	VCMPPD  $0x1e, Y15, Y0, Y1      // taken: x > cutoff (ordered, NaN false)
	VBROADCASTSD expc<>+104(SB), Y6
	VANDPD  Y6, Y0, Y2
	VBROADCASTSD expc<>+112(SB), Y7
	VCMPPD  $0x12, Y7, Y2, Y2       // |x| <= 700
	VANDNPD Y1, Y2, Y3              // taken and out of range
	VMOVMSKPD Y3, BX
	TESTQ   BX, BX
	JNZ     done

	VMULPD     Y14, Y0, Y4          // x*LOG2E
	VCVTPD2DQY Y4, X5               // exponent, rounded as CVTSD2SL
	VCVTDQ2PD  X5, Y4
	VFNMADD231PD Y13, Y4, Y0        // x -= e*LN2U
	VFNMADD231PD Y12, Y4, Y0        // x -= e*LN2L
	VBROADCASTSD expc<>+24(SB), Y6
	VMULPD     Y6, Y0, Y0           // x *= 0.0625

	// Taylor series
	VBROADCASTSD expc<>+32(SB), Y6
	VBROADCASTSD expc<>+40(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VBROADCASTSD expc<>+48(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VBROADCASTSD expc<>+56(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VBROADCASTSD expc<>+64(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VBROADCASTSD expc<>+72(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VBROADCASTSD expc<>+80(SB), Y7
	VFMADD213PD Y7, Y0, Y6
	VFMADD213PD Y8, Y0, Y6
	VMULPD  Y6, Y0, Y0
	VADDPD  Y9, Y0, Y6
	VMULPD  Y6, Y0, Y0
	VADDPD  Y9, Y0, Y6
	VMULPD  Y6, Y0, Y0
	VADDPD  Y9, Y0, Y6
	VMULPD  Y6, Y0, Y0
	VADDPD  Y9, Y0, Y6
	VFMADD213PD Y8, Y6, Y0

	// times 2**exponent
	VPMOVSXDQ    X5, Y7
	VPBROADCASTQ expc<>+120(SB), Y6
	VPADDQ       Y6, Y7, Y7
	VPSLLQ       $52, Y7, Y7
	VMULPD       Y7, Y0, Y0
	VANDPD       Y1, Y0, Y0         // not taken: 0
	VMOVUPD      Y0, (DI)(AX*8)
	ADDQ $4, AX
	JMP  loop

done:
	VZEROUPPER
	MOVQ AX, ret+48(FP)
	RET

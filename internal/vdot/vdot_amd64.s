#include "textflag.h"

// func mulRows(dst, a, x *float32, rows, n int)
//
// For each row, the steps of gonum's DotUnitary (internal/asm/f32/
// dotunitary_amd64.s) for a vector on a 16-byte boundary: Y0's low half
// is its SUM, its high half its P_SUM; the sixteen-value loop adds the
// products of values 0–3 and 8–11 to SUM and of 4–7 and 12–15 to P_SUM,
// in that order; then SUM += P_SUM (only if that loop ran), the four-value
// and one-value tails into SUM, and two horizontal adds.
TEXT ·mulRows(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), R8
	MOVQ n+32(FP), R9
	MOVQ R9, R10
	SHRQ $4, R10 // blocks of 16
	MOVQ R9, R12
	ANDQ $15, R12
	MOVQ R12, R11
	SHRQ $2, R12 // then blocks of 4
	ANDQ $3, R11 // then single values

row:
	TESTQ R8, R8
	JZ    done
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX
	MOVQ   R10, CX
	TESTQ  CX, CX
	JZ     tail4

loop16:
	VMOVUPS (SI)(AX*4), Y2
	VMULPS  (DX)(AX*4), Y2, Y2
	VADDPS  Y2, Y0, Y0
	VMOVUPS 32(SI)(AX*4), Y3
	VMULPS  32(DX)(AX*4), Y3, Y3
	VADDPS  Y3, Y0, Y0
	ADDQ    $16, AX
	DECQ    CX
	JNZ     loop16
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0 // SUM += P_SUM

tail4:
	MOVQ  R12, CX
	TESTQ CX, CX
	JZ    tail1

loop4:
	VMOVUPS (SI)(AX*4), X2
	VMULPS  (DX)(AX*4), X2, X2
	VADDPS  X2, X0, X0
	ADDQ    $4, AX
	DECQ    CX
	JNZ     loop4

tail1:
	MOVQ  R11, CX
	TESTQ CX, CX
	JZ    sum

loop1:
	VMOVSS (SI)(AX*4), X2
	VMULSS (DX)(AX*4), X2, X2
	VADDSS X2, X0, X0
	INCQ   AX
	DECQ   CX
	JNZ    loop1

sum:
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS  X0, (DI)
	ADDQ    $4, DI
	LEAQ    (SI)(R9*4), SI
	DECQ    R8
	JMP     row

done:
	VZEROUPPER
	RET

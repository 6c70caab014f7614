@ The ARMv6-M kernel of engine/src/dense.rs (module `v6m`: Cortex-M0, M0+, and ARMv8-M
@ Baseline), assembled with the crate through `global_asm!` (options(raw)). ARMv6-M has
@ no widening multiply, no DSP extension, and immediate offsets only on word and
@ unsigned byte loads: the weights are read a word (one tile row) at a time and their
@ bytes sign-extended by shifts; the product of the requantization is built from 16-bit
@ halves with four MULS.
    .syntax unified

@ TINYVAE_V6M_HIGH_OUT / TINYVAE_V6M_HIGH_IN: r8-r11 copied to r4-r7 / back from r4-r7
@ (ARMv6-M pushes, pops and stores low registers only).
.macro TINYVAE_V6M_HIGH_OUT
    mov r4, r8
    mov r5, r9
    mov r6, r10
    mov r7, r11
.endm

.macro TINYVAE_V6M_HIGH_IN
    mov r8, r4
    mov r9, r5
    mov r10, r6
    mov r11, r7
.endm

@ TINYVAE_V6M_ROW: one row of a tile: the word at [r0 + \off] times the four inputs
@ r2-r5, added to the accumulator \acc (a high register). r6, r7 scratch.
.macro TINYVAE_V6M_ROW off, acc
    ldr r6, [r0, #\off]
    sxtb r7, r6
    muls r7, r2, r7
    add \acc, r7
    lsls r7, r6, #16
    asrs r7, r7, #24
    muls r7, r3, r7
    add \acc, r7
    lsls r7, r6, #8
    asrs r7, r7, #24
    muls r7, r4, r7
    add \acc, r7
    asrs r6, r6, #24
    muls r6, r5, r6
    add \acc, r6
.endm

@ TINYVAE_V6M_TILES: one block of four rows: its tiles from r0 (advanced past them) times
@ the inputs from r1 to r12 (whole groups of four, read byte by byte), the four sums added
@ to r8-r11. r1 ends at r12; r2-r7 scratch.
.macro TINYVAE_V6M_TILES
2:
    ldrb r2, [r1, #0]
    sxtb r2, r2
    ldrb r3, [r1, #1]
    sxtb r3, r3
    ldrb r4, [r1, #2]
    sxtb r4, r4
    ldrb r5, [r1, #3]
    sxtb r5, r5
    adds r1, #4
    TINYVAE_V6M_ROW 0, r8
    TINYVAE_V6M_ROW 4, r9
    TINYVAE_V6M_ROW 8, r10
    TINYVAE_V6M_ROW 12, r11
    adds r0, #16
    cmp r1, r12
    bne 2b
.endm

@ TINYVAE_V6M_HIGH: r0 = (a m + 2^30) >> 31 for a in r2 and m in [0, 2^31) as its halves
@ mh (r3) and ml (r7): a = ah 2^16 + al (al unsigned), the 64-bit sum (hi, lo) =
@ ah mh 2^32 + (ah ml + al mh) 2^16 + al ml from four MULS and two carry chains, then
@ h = 2 hi + bit 31 of lo + bit 30 of lo. r2, r3, r5, r7 scratch.
.macro TINYVAE_V6M_HIGH
    asrs r0, r2, #16
    uxth r2, r2
    movs r5, r2
    muls r5, r7, r5
    muls r2, r3, r2
    muls r7, r0, r7
    muls r0, r3, r0
    lsls r3, r7, #16
    asrs r7, r7, #16
    adds r5, r5, r3
    adcs r0, r7
    lsls r3, r2, #16
    lsrs r2, r2, #16
    adds r5, r5, r3
    adcs r0, r2
    adds r5, r5, r5
    adcs r0, r0
    lsrs r5, r5, #31
    adds r0, r0, r5
.endm

@ TINYVAE_V6M_ROUND: r0 shifted right by e (the low byte of r3, 1 to 31) with d = h -
@ (h < 0), (d >> e), the last bit shifted out left in the carry for an ADCS to add (equal
@ to RoundingDivideByPOT, as the DSP kernel's TINYVAE_ROUND). r6 scratch.
.macro TINYVAE_V6M_ROUND
    asrs r6, r0, #31
    adds r0, r0, r6
    asrs r0, r3
.endm

@ TINYVAE_V6M_CLAMP: r0 = min(max(r0, r3), 127), r3 the lower bound.
.macro TINYVAE_V6M_CLAMP
    cmp r0, r3
    bge 5f
    movs r0, r3
5:
    cmp r0, #127
    ble 6f
    movs r0, #127
6:
.endm

@ TINYVAE_V6M_FINISH: an output from its high product r0 and right shift r3 (1 to 31):
@ rounded, the zero-point (word \zp of the job r1) added, clamped to the lower bound (word
@ \lo) and 127, stored at byte \i of the output pointer (word \out), read into \ptr.
@ r3, r6 and \ptr scratch.
.macro TINYVAE_V6M_FINISH zp, lo, out, ptr, i
    TINYVAE_V6M_ROUND
    ldr r3, [r1, #\zp]
    adcs r0, r3
    ldr r3, [r1, #\lo]
    TINYVAE_V6M_CLAMP
    ldr \ptr, [r1, #\out]
    strb r0, [\ptr, #\i]
.endm

@ TINYVAE_V6M_OUT: output \i of the block (its sum in \acc) plus its bias, requantized,
@ the zero-point added, clamped and stored; r1 the job (kept). The biases and multipliers
@ are read byte by byte (the format does not align them; ARMv6-M faults on an unaligned
@ word load), the multiplier straight into its halves mh (r3) and ml (r7). Off the fast
@ path (a multiplier outside [2^30, 2^31), or a shift outside [-31, -1]) it leaves the
@ routine with the block unfinished, for the caller to finish. r0, r2-r7 scratch.
.macro TINYVAE_V6M_OUT i, acc
    ldr r4, [r1, #16]
    ldrb r6, [r4, #4*\i+3]
    lsrs r0, r6, #6
    cmp r0, #1
    bne 8f
    ldrb r3, [r4, #4*\i+2]
    lsls r6, r6, #8
    orrs r3, r6
    ldrb r7, [r4, #4*\i]
    ldrb r6, [r4, #4*\i+1]
    lsls r6, r6, #8
    orrs r7, r6
    ldr r4, [r1, #12]
    ldrb r2, [r4, #4*\i]
    ldrb r6, [r4, #4*\i+1]
    lsls r6, r6, #8
    orrs r2, r6
    ldrb r6, [r4, #4*\i+2]
    lsls r6, r6, #16
    orrs r2, r6
    ldrb r6, [r4, #4*\i+3]
    lsls r6, r6, #24
    orrs r2, r6
    add r2, \acc
    TINYVAE_V6M_HIGH
    ldr r4, [r1, #20]
    ldrb r3, [r4, #\i]
    cmp r3, #225
    blo 8f
    negs r3, r3
    TINYVAE_V6M_FINISH 32, 36, 24, r4, \i
    b 7f
8:
    b 9f
7:
.endm

@ TINYVAE_V6M_BUMP: the job's word at \off (r1 the job) advanced by \by; r2 scratch.
.macro TINYVAE_V6M_BUMP off, by
    ldr r2, [r1, #\off]
    adds r2, #\by
    str r2, [r1, #\off]
.endm

@ TINYVAE_V6M_LAYER: the body of the fused int8 routines, each output of a block finished
@ by the macro \out; with \prepared, the job's bias pointer walks the prepared table
@ (16 bytes a row) and the multiplier and shift pointers are not read.
.macro TINYVAE_V6M_LAYER out, prepared
    push {r4-r7, lr}
    TINYVAE_V6M_HIGH_OUT
    push {r0, r4-r7}
    ldr r1, [r0, #28]
    cmp r1, #0
    bne 1f
    b 9f
1:
    ldr r0, [sp]
    movs r3, #0
    mov r8, r3
    mov r9, r3
    mov r10, r3
    mov r11, r3
    ldr r1, [r0, #8]
    mov r12, r1
    ldr r1, [r0, #4]
    ldr r0, [r0, #0]
    TINYVAE_V6M_TILES
    ldr r1, [sp]
    str r0, [r1, #0]
    \out 0, r8
    \out 1, r9
    \out 2, r10
    \out 3, r11
    .if \prepared
    TINYVAE_V6M_BUMP 12, 64
    .else
    TINYVAE_V6M_BUMP 12, 16
    TINYVAE_V6M_BUMP 16, 16
    TINYVAE_V6M_BUMP 20, 4
    .endif
    TINYVAE_V6M_BUMP 24, 4
    ldr r2, [r1, #28]
    subs r2, #1
    str r2, [r1, #28]
    beq 9f
    b 1b
9:
    pop {r0, r4-r7}
    TINYVAE_V6M_HIGH_IN
    pop {r4-r7, pc}
.endm

@ TINYVAE_V6M_OUTQ: TINYVAE_V6M_OUT from a prepared table (r1 the job, its word 12 the
@ block's first row): per row the bias, the multiplier's halves mh and ml, and the right
@ shift e, aligned words, every row checked on the fast path when the table was made.
@ r0, r2-r7 scratch.
.macro TINYVAE_V6M_OUTQ i, acc
    ldr r4, [r1, #12]
    ldr r2, [r4, #16*\i]
    add r2, \acc
    ldr r3, [r4, #16*\i+4]
    ldr r7, [r4, #16*\i+8]
    TINYVAE_V6M_HIGH
    ldr r3, [r4, #16*\i+12]
    TINYVAE_V6M_FINISH 32, 36, 24, r4, \i
.endm

@ tinyvae_dense_i8_v6m(job): the job's blocks of four rows, each: the tile loop over the
@ inputs (whole groups of four), then the four outputs. The job (src/dense/v6m.rs, `Job`):
@ 0 tiles (word-aligned), 4 inputs, 8 the inputs' end, 12 biases, 16 multipliers,
@ 20 shifts, 24 outputs, 28 the blocks left, 32 the zero-point, 36 the lower bound. Each finished block advances the job's pointers and counts down
@ its blocks; a block off the fast path is left with the job pointing at it (its tiles
@ pointer past it) and its blocks left nonzero.
    .section .text.tinyvae_dense_i8_v6m,"ax",%progbits
    .global tinyvae_dense_i8_v6m
    .type tinyvae_dense_i8_v6m,%function
    .thumb_func
    .p2align 1
tinyvae_dense_i8_v6m:
    TINYVAE_V6M_LAYER TINYVAE_V6M_OUT, 0
    .size tinyvae_dense_i8_v6m, . - tinyvae_dense_i8_v6m

@ tinyvae_dense_i8q_v6m(job): tinyvae_dense_i8_v6m with the requantization read from a
@ prepared table (a convolution's, made once for all its positions: src/arm/v6m.rs,
@ `Quant`) in place of the layer's unaligned arrays: about 24 instructions fewer an output.
@ Every row of the table is on the fast path, so it runs every block.
    .section .text.tinyvae_dense_i8q_v6m,"ax",%progbits
    .global tinyvae_dense_i8q_v6m
    .type tinyvae_dense_i8q_v6m,%function
    .thumb_func
    .p2align 1
tinyvae_dense_i8q_v6m:
    TINYVAE_V6M_LAYER TINYVAE_V6M_OUTQ, 1
    .size tinyvae_dense_i8q_v6m, . - tinyvae_dense_i8q_v6m

@ tinyvae_tiles_v6m(tiles, x, x_end, sums): one block of four rows, its raw sums (no bias,
@ no requantization) stored to sums[0..4]: for layers whose outputs the caller requantizes
@ (the encoder's int16 last layer). tiles word-aligned, x_end - x a nonzero multiple of 4.
    .section .text.tinyvae_tiles_v6m,"ax",%progbits
    .global tinyvae_tiles_v6m
    .type tinyvae_tiles_v6m,%function
    .thumb_func
    .p2align 1
tinyvae_tiles_v6m:
    push {r3-r7, lr}
    TINYVAE_V6M_HIGH_OUT
    push {r4-r7}
    mov r12, r2
    movs r3, #0
    mov r8, r3
    mov r9, r3
    mov r10, r3
    mov r11, r3
    TINYVAE_V6M_TILES
    ldr r3, [sp, #16]
    TINYVAE_V6M_HIGH_OUT
    stm r3!, {r4-r7}
    pop {r4-r7}
    TINYVAE_V6M_HIGH_IN
    pop {r3-r7, pc}
    .size tinyvae_tiles_v6m, . - tinyvae_tiles_v6m

@ The DSP-extension kernels of engine/src/dense.rs (module `dsp`), assembled with the
@ crate through `global_asm!` (options(raw): braces as written), after a `.cpu` line where
@ the target needs one (build.rs, src/dsp_rule.rs).

@ TINYVAE_TILE, one group of four columns of a block of four rows: r0 the tiles (4-byte
@ aligned, advanced), r1 the widened inputs (advanced), r4-r7 the 4 accumulators, r2 and
@ r8-r12, lr scratch. One LDM of the two input words, one LDM of the four rows' weight
@ words, and per row SXTB16 + SMLAD twice. The inputs of a group are stored as (x0, x2),
@ (x1, x3) to match SXTB16's byte pairs.
.macro TINYVAE_TILE
    ldm r1!, {r8, r9}
    ldm r0!, {r10, r11, r12, lr}
    sxtb16 r2, r10
    smlad r4, r2, r8, r4
    sxtb16 r2, r10, ror #8
    smlad r4, r2, r9, r4
    sxtb16 r2, r11
    smlad r5, r2, r8, r5
    sxtb16 r2, r11, ror #8
    smlad r5, r2, r9, r5
    sxtb16 r2, r12
    smlad r6, r2, r8, r6
    sxtb16 r2, r12, ror #8
    smlad r6, r2, r9, r6
    sxtb16 r2, lr
    smlad r7, r2, r8, r7
    sxtb16 r2, lr, ror #8
    smlad r7, r2, r9, r7
.endm

@ The tile loop of one block over r2 groups of four columns (at least 1): r0 the tiles,
@ r1 the widened inputs (both advanced), r4-r7 the accumulators (TINYVAE_TILE), r3
@ consumed. Two groups per iteration; an odd group first.
.macro TINYVAE_GROUPS
    lsrs r3, r2, #1
    bcc 11f
    TINYVAE_TILE
11:
    beq 13f
12:
    TINYVAE_TILE
    TINYVAE_TILE
    subs r3, r3, #1
    bne 12b
13:
.endm

@ The requantization of accumulator \a into r11, the zero-point \zp added, for the
@ multiplier in r8 and a right shift by e, r9 = e (kept); r10 scratch. h = (a m + 2^30)
@ >> 31 = (a m >> 31) + bit 30 of a m: from the product's words, 2 hi + bit 31 of lo,
@ plus bit 30 of lo (m >= 0: h fits 32 bits).
.macro TINYVAE_RQ a, zp
    smull r10, r11, \a, r8
    lsls r10, r10, #1
    adc r11, r11, r11
    add r11, r11, r10, lsr #31
    TINYVAE_ROUND \zp
.endm

@ The rounding right shift of h (r11) by e in [1, 31] (r9, kept), plus \zp: with
@ d = h - (h < 0), (d >> e) + bit e - 1 of d, the bit ASRS leaves in the carry (equal to
@ RoundingDivideByPOT, see `requant::tests`); the zero-point rides on the ADC (|d >> e|
@ <= 2^30: no overflow).
.macro TINYVAE_ROUND zp
    add r11, r11, r11, asr #31
    asrs r11, r11, r9
    adc r11, r11, \zp
.endm

@ The int8 saturation and max(., lo): r3 lo (its low byte); r10 scratch.
.macro TINYVAE_CLAMP8
    ssat r11, #8, r11
    ssub8 r10, r11, r3
    sel r11, r11, r3
.endm

@ The left-shift path: x = saturate(a * 2^s), h = (x m + 2^30) >> 31, into r11; r9 = s
@ (consumed), r10 scratch.
.macro TINYVAE_LEFT a
    mov r10, #1
    lsl r10, r10, r9
    smull r10, r9, \a, r10
    cmp r9, r10, asr #31
    beq 1f
    mvn r10, #0x80000000
    eor r10, r10, r9, asr #31
1:
    mov r11, #0x40000000
    mov r9, #0
    smlal r11, r9, r10, r8
    lsl r9, r9, #1
    orr r11, r9, r11, lsr #31
.endm

@ The general requantization of accumulator \a into r11, the zero-point (lr) added: m in
@ r8, the shift s in r9 (consumed); a right shift through TINYVAE_RQ (any multiplier), a
@ left shift (s >= 0) through TINYVAE_LEFT and a saturating zero-point. r10 scratch. For
@ the kernels' out-of-line paths.
.macro TINYVAE_GENERAL a
    negs r9, r9
    ble 4f
    TINYVAE_RQ \a, lr
    b 5f
4:
    rsb r9, r9, #0
    TINYVAE_LEFT \a
    qadd r11, r11, lr
5:
.endm

@ One row of a block (\k its place, 0 to 3): accumulator \a requantized (FORMAT.md section
@ 3), the zero-point (lr) added, saturated to int8, into byte \k of r12 (the block's four
@ outputs, clamped to [lo, 127] and stored together at the block's end). r0 the
@ multipliers, r1 the shifts (both advanced); r8-r11 scratch. The fast path wants m in
@ [2^30, 2^31) (bit 31 of 2m) and a right shift (s < 0); h = (a m + 2^30) >> 31 in one
@ SMMLAR: with 2m read as signed (2m - 2^32), (a 2^32 + a (2m - 2^32) + 2^31) >> 32 =
@ (2 a m + 2^31) >> 32. Anything else sends the whole block to \slow
@ (TINYVAE_BLOCK_SLOW).
.macro TINYVAE_REQ a, k, slow
    ldr r8, [r0], #4
    ldrsb r9, [r1], #1
    lsl r8, r8, #1
    ands r10, r8, r9
    bpl \slow
    rsb r9, r9, #0
    smmlar r11, \a, r8, \a
    TINYVAE_ROUND lr
    ssat r11, #8, r11
    bfi r12, r11, #(8 * \k), #8
.endm

@ A block of four rows one of which is not for TINYVAE_REQ (a multiplier below 2^30: 0, a
@ channel that outputs its zero-point; or a left shift, s >= 0): all four again, from the
@ block's multipliers and shifts in the frame ([sp, #16], [sp, #20]) and its accumulators
@ spilled to [sp, #44], row by row through TINYVAE_GENERAL, each output rotated into r12 from the top; then on to \done with r0, r1
@ past the block as TINYVAE_REQ leaves them. Rare (one place in the code, for flash).
.macro TINYVAE_BLOCK_SLOW slow, done
\slow:
    add r8, sp, #44
    stm r8, {r4-r7}
    ldr r0, [sp, #16]
    ldr r1, [sp, #20]
    mov r4, r8
    add r5, r8, #16
3:
    ldr r11, [r4], #4
    ldr r8, [r0], #4
    ldrsb r9, [r1], #1
    TINYVAE_GENERAL r11
    ssat r11, #8, r11
    bfi r12, r11, #0, #8
    ror r12, r12, #8
    cmp r4, r5
    bne 3b
    b \done
.endm

@ The frame both layer routines share: the function's entry and the job pointer (r0)
@ saved at [sp] (TINYVAE_BLOCKS_BEGIN); then, after any once-per-call set-up, at
@ label 10 the next block taken from the job's count at offset 12 (done: on to label
@ 19, where TINYVAE_BLOCKS_END returns) (TINYVAE_BLOCKS_NEXT).
.macro TINYVAE_BLOCKS_BEGIN name
    TINYVAE_FN \name
    push {r4-r11, lr}
    sub sp, sp, #4
    str r0, [sp]
.endm

.macro TINYVAE_FN name
.section .text.\name,"ax",%progbits
.global \name
.type \name,%function
.syntax unified
.thumb
.thumb_func
.p2align 2
\name:
.endm

.macro TINYVAE_BLOCKS_NEXT
10:
    ldr r3, [r0, #12]
    cmp r3, #0
    beq 19f
    sub r3, r3, #1
    str r3, [r0, #12]
.endm

.macro TINYVAE_BLOCKS_END
19:
    add sp, sp, #4
    pop {r4-r11, pc}
.endm

@ A whole int8 layer, `blocks` (at least 1) blocks of four rows: each block's biases, its
@ tile loop, then its four rows' requantization in line (TINYVAE_REQ) and one store of
@ the four outputs. r0: the `Job` below, copied on entry into the frame, where the block
@ loop keeps what it advances and reads the rest:
@   [sp]      tiles (advanced)      [sp, #16] multipliers (advanced)  [sp, #32] zero-point
@   [sp, #4]  widened inputs        [sp, #20] shifts (advanced)       [sp, #36] biases - multipliers
@   [sp, #8]  tile loop iterations  [sp, #24] out - shifts - 4        [sp, #40] shifts' end
@   [sp, #12] tile loop entry       [sp, #28] lo, in each byte        [sp, #44] 16 bytes for
@                                                                       TINYVAE_BLOCK_SLOW
@ (the job's word 2 holds the groups of four columns, word 3 nothing: the routine works out
@ the tile loop's iterations and entry in the frame). The biases, the outputs and the end
@ test follow the multipliers and shifts (same strides), so that a block saves only three
@ pointers. Single loads and stores, not LDM / STRD, around the block's bookkeeping: on
@ the Cortex-M4 each one that follows another takes one cycle.
.macro TINYVAE_DENSE_FN name
    TINYVAE_FN \name
    push {r4-r11, lr}
    sub sp, sp, #60
    ldm r0, {r1-r11}
    @ Eight groups per iteration (ceil(groups / 8)), entered past (8 - groups mod 8) mod 8
    @ tiles of the first (each tile is 18 four-byte instructions, 72 bytes; `dspcheck`
    @ runs every remainder).
    ands r4, r3, #7
    add r3, r3, #7
    lsr r3, r3, #3
    it ne
    rsbne r4, r4, #8
    adr.w r12, 12f
    mov r0, #72
    mla r4, r4, r0, r12
    orr r4, r4, #1
    stm sp, {r1-r11}
    mov r0, r5
    mov r8, r10
    b 11f
.p2align 2
12:
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    TINYVAE_TILE
    subs r3, r3, #1
    bne 12b
    str r0, [sp]
    ldr r0, [sp, #16]
    ldr r1, [sp, #20]
    ldr r2, [sp, #24]
    ldr r3, [sp, #28]
    ldr lr, [sp, #32]
    TINYVAE_REQ r4, 0, .L\name\()_slow
    TINYVAE_REQ r5, 1, .L\name\()_slow
    TINYVAE_REQ r6, 2, .L\name\()_slow
    TINYVAE_REQ r7, 3, .L\name\()_slow
.L\name\()_done:
    ssub8 r10, r12, r3
    sel r12, r12, r3
    str r12, [r1, r2]
    str r0, [sp, #16]
    str r1, [sp, #20]
    ldr r8, [sp, #36]
    ldr r9, [sp, #40]
    cmp r1, r9
    beq 19f
    @ The next block (the first: from the entry): its biases (at the multipliers, r0, plus
    @ r8; unaligned loads), its tile state, into the tile loop.
11:
    add r8, r0, r8
    ldr r4, [r8]
    ldr r5, [r8, #4]
    ldr r6, [r8, #8]
    ldr r7, [r8, #12]
    ldr r1, [sp, #4]
    ldr r3, [sp, #8]
    ldr r12, [sp, #12]
    ldr r0, [sp]
    bx r12
19:
    add sp, sp, #60
    pop {r4-r11, pc}
    TINYVAE_BLOCK_SLOW .L\name\()_slow, .L\name\()_done
.size \name, . - \name
.endm

    TINYVAE_DENSE_FN tinyvae_dense_i8_smlad
@ The tile loop alone over `blocks` blocks of four rows, each block's four sums stored
@ as they are (no bias, no requantization): the dot products of one input with every
@ row. r0: the `RawJob` below (advanced as it goes). Two groups per iteration; an odd
@ group first.
    TINYVAE_BLOCKS_BEGIN tinyvae_tiles_raw
    TINYVAE_BLOCKS_NEXT
    movs r4, #0
    movs r5, #0
    movs r6, #0
    movs r7, #0
    ldr r1, [r0, #4]
    ldr r2, [r0, #8]
    ldr r0, [r0]
    TINYVAE_GROUPS
    ldr r3, [sp]
    str r0, [r3]
    ldr r0, [r3, #16]
    stm r0!, {r4-r7}
    str r0, [r3, #16]
    mov r0, r3
    b 10b
    TINYVAE_BLOCKS_END
.size tinyvae_tiles_raw, . - tinyvae_tiles_raw

@ One output of tinyvae_requantize_i8 (and of tinyvae_requantize_rows): the accumulator
@ at r0 (advanced by r4 bytes) requantized on the fast path (2m in r8, e in r9, the
@ zero-point in lr, lo in r3's bytes), stored at r1 (advanced by r5); r10-r12 scratch.
.macro TINYVAE_REQ_ONE
    ldr r12, [r0]
    add r0, r0, r4
    smmlar r11, r12, r8, r12
    TINYVAE_ROUND lr
    TINYVAE_CLAMP8
    strb r11, [r1]
    add r1, r1, r5
.endm

@ One output channel's int32 accumulators requantized to int8 (the scatter form of a
@ transposed convolution with few output channels: its sums gathered first, requantized
@ once at the end): r0 the `RequantJob` of engine/src/dense.rs, `n` (at least 1)
@ accumulators `acc_stride` bytes apart, outputs `out_stride` bytes apart, the multiplier
@ as 2m (m in [2^30, 2^31)) and a right shift by e in [1, 31] (the fast path of
@ TINYVAE_REQ, which the caller checks), zero-point, lo in each byte.
    TINYVAE_FN tinyvae_requantize_i8
    push {r4-r11, lr}
    mov r12, r0
    ldm r12, {r0-r5, r8, r9, lr}
1:
    TINYVAE_REQ_ONE
    subs r2, r2, #1
    bne 1b
    pop {r4-r11, pc}
.size tinyvae_requantize_i8, . - tinyvae_requantize_i8

@ int8 to int16 pairs, four values per group: r0 source (any alignment), r1 destination
@ words, r2 groups (>= 1). Each source word becomes (x0, x2), (x1, x3), as [`widen`]
@ writes them. Two groups per iteration; an odd group first.
.section .text.tinyvae_widen_i8,"ax",%progbits
.global tinyvae_widen_i8
.type tinyvae_widen_i8,%function
.syntax unified
.thumb
.thumb_func
.p2align 2
tinyvae_widen_i8:
    push {r4, lr}
    lsrs r2, r2, #1
    bcc 1f
    ldr r3, [r0], #4
    sxtb16 r4, r3, ror #8
    sxtb16 r3, r3
    stm r1!, {r3, r4}
1:
    beq 3f
2:
    ldr r3, [r0], #4
    ldr r12, [r0], #4
    sxtb16 r4, r3, ror #8
    sxtb16 r3, r3
    sxtb16 lr, r12, ror #8
    sxtb16 r12, r12
    stm r1!, {r3, r4, r12, lr}
    subs r2, r2, #1
    bne 2b
3:
    pop {r4, pc}
.size tinyvae_widen_i8, . - tinyvae_widen_i8


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

@ The requantization of accumulator \a into r11 for the multiplier in r8 and a right shift
@ by e, r9 = e - 1 (kept); r10 scratch. h = (a m + 2^30) >> 31 = (a m >> 31) + bit 30 of
@ a m: from the product's words, 2 hi + bit 31 of lo, plus bit 30 of lo (m >= 0: h fits
@ 32 bits).
.macro TINYVAE_RQ a
    smull r10, r11, \a, r8
    lsls r10, r10, #1
    adc r11, r11, r11
    add r11, r11, r10, lsr #31
    TINYVAE_ROUND
.endm

@ The rounding right shift of h (r11) by e, r9 = e - 1: ceil((d >> (e - 1)) / 2) with
@ d = h - (h < 0); r10 scratch.
.macro TINYVAE_ROUND
    add r11, r11, r11, asr #31
    asr r11, r11, r9
    and r10, r11, #1
    add r11, r10, r11, asr #1
.endm

@ The zero-point (saturating), the int8 saturation and max(., lo): r11, lr the zero-point,
@ r3 lo; r10 scratch.
.macro TINYVAE_CLAMP8
    qadd r11, r11, lr
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

@ A whole int8 layer, four rows per block: the tile loop above, then each row's
@ requantization in line (FORMAT.md section 3; the rounding right shift as
@ ceil((d >> (e - 1)) / 2) with d = h - (h < 0), equal to RoundingDivideByPOT, see
@ `requant::tests`), the zero-point (saturating), the clamp to [lo, 127] and the store.
@ Shifts >= 0 (a saturating left shift, no rounding) take an out-of-line path.
@ r0: the `Job` below (its pointers advanced as it goes). In the epilogue: r0 multipliers,
@ r1 shifts, r2 outputs, r3 lo, lr zero-point; r8-r12 scratch.
.macro TINYVAE_REQ a, slow, back, w
    ldr r8, [r0], #4
    ldrsb r9, [r1], #1
    @ r9 = !s = e - 1 for a right shift by e = -s; negative exactly when s >= 0.
    mvns r9, r9
    bmi \slow
    TINYVAE_RQ \a
\back:
    .if \w == 8
    TINYVAE_CLAMP8
    strb r11, [r2], #1
    .else
    ssat r11, #16, r11
    strh r11, [r2], #2
    .endif
.endm

@ The left-shift path (shifts >= 0), out of line.
.macro TINYVAE_REQ_LEFT a, slow, back
\slow:
    mvn r9, r9
    TINYVAE_LEFT \a
    b \back
.endm

@ The frame both layer routines share: the function's entry and the job pointer (r0)
@ saved at [sp] (TINYVAE_BLOCKS_BEGIN); then, after any once-per-call set-up, at
@ label 10 the next block taken from the job's count at offset 12 (done: on to label
@ 19, where TINYVAE_BLOCKS_END returns) (TINYVAE_BLOCKS_NEXT).
.macro TINYVAE_BLOCKS_BEGIN name
.section .text.\name,"ax",%progbits
.global \name
.type \name,%function
.syntax unified
.thumb
.thumb_func
.p2align 2
\name:
    push {r4-r11, lr}
    sub sp, sp, #4
    str r0, [sp]
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

@ The whole layer routine, for int8 outputs (w = 8; w = 16 would make one for int16
@ outputs: no zero-point or clamp but int16 saturation, two-byte stores).
.macro TINYVAE_DENSE_FN name, w
    TINYVAE_BLOCKS_BEGIN \name
    @ Once per call: the tile loop's iterations, eight groups each (ceil(groups / 8)),
    @ and its entry, past (8 - groups mod 8) mod 8 tiles of the first (each tile is 18
    @ four-byte instructions, 72 bytes; `dspcheck` runs every remainder), into the job's
    @ last two words.
    ldr r2, [r0, #8]
    add r3, r2, #7
    lsrs r3, r3, #3
    str r3, [r0, #40]
    ands r2, r2, #7
    it ne
    rsbne r2, r2, #8
    adr.w r12, 12f
    mov r3, #72
    mla r12, r2, r3, r12
    orr r12, r12, #1
    str r12, [r0, #44]
    TINYVAE_BLOCKS_NEXT
    ldr r3, [r0, #16]
    ldr r4, [r3]
    ldr r5, [r3, #4]
    ldr r6, [r3, #8]
    ldr r7, [r3, #12]
    add r3, r3, #16
    str r3, [r0, #16]
    ldr r1, [r0, #4]
    ldr r3, [r0, #40]
    ldr r12, [r0, #44]
    ldr r0, [r0]
    bx r12
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
    ldr r3, [sp]
    str r0, [r3]
    ldr r0, [r3, #20]
    ldr r1, [r3, #24]
    ldr r2, [r3, #28]
    ldr lr, [r3, #32]
    ldr r3, [r3, #36]
    TINYVAE_REQ r4, .L\name\()_left4, .L\name\()_back4, \w
    TINYVAE_REQ r5, .L\name\()_left5, .L\name\()_back5, \w
    TINYVAE_REQ r6, .L\name\()_left6, .L\name\()_back6, \w
    TINYVAE_REQ r7, .L\name\()_left7, .L\name\()_back7, \w
    ldr r3, [sp]
    str r0, [r3, #20]
    str r1, [r3, #24]
    str r2, [r3, #28]
    mov r0, r3
    b 10b
    TINYVAE_BLOCKS_END
    TINYVAE_REQ_LEFT r4, .L\name\()_left4, .L\name\()_back4
    TINYVAE_REQ_LEFT r5, .L\name\()_left5, .L\name\()_back5
    TINYVAE_REQ_LEFT r6, .L\name\()_left6, .L\name\()_back6
    TINYVAE_REQ_LEFT r7, .L\name\()_left7, .L\name\()_back7
.size \name, . - \name
.endm

    TINYVAE_DENSE_FN tinyvae_dense_i8_smlad, 8
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
    ldr r3, [sp]
    str r0, [r3]
    ldr r0, [r3, #16]
    stm r0!, {r4-r7}
    str r0, [r3, #16]
    mov r0, r3
    b 10b
    TINYVAE_BLOCKS_END
.size tinyvae_tiles_raw, . - tinyvae_tiles_raw

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


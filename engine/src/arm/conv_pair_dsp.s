@ The convolution kernels of engine/src/dense.rs (module `dsp`) that only buy speed: the
@ two-position kernel, the gather of a patch pair and the scatter form's row of pixels
@ (one at a time, and two at a time);
@ assembled after src/dense_dsp.s (whose macros they use) except in builds for size
@ (opt-level s or z, build.rs: cfg tinyvae_small), which leave them out for flash.

@ TINYVAE_TILE2, one group of four columns of two rows (a, b) for two positions (A, B):
@ r0 the rows' weight words in a block's tiles (advanced a tile, 16 bytes), r1 the pair of
@ widened patches (per group A's (x0, x2), (x1, x3), then B's: advanced 16 bytes), r4 aA,
@ r5 aB, r6 bA, r7 bB the accumulators, r2 and r8-r12, lr scratch. Each weight's SXTB16
@ serves both positions: 14 instructions for 16 products.
.macro TINYVAE_TILE2
    ldm r1!, {r8, r9, r10, r11}
    ldrd r12, lr, [r0], #16
    sxtb16 r2, r12
    smlad r4, r2, r8, r4
    smlad r5, r2, r10, r5
    sxtb16 r2, r12, ror #8
    smlad r4, r2, r9, r4
    smlad r5, r2, r11, r5
    sxtb16 r2, lr
    smlad r6, r2, r8, r6
    smlad r7, r2, r10, r7
    sxtb16 r2, lr, ror #8
    smlad r6, r2, r9, r6
    smlad r7, r2, r11, r7
.endm

@ The two-row, two-position tile loop at label \loop: eight TINYVAE_TILE2 an iteration,
@ r3 iterations (counted down), entered at a computed entry past the groups a first
@ iteration skips (56 bytes a TINYVAE_TILE2).
.macro TINYVAE_TILE2_LOOP loop
.p2align 2
\loop:
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    TINYVAE_TILE2
    subs r3, r3, #1
    bne \loop
.endm

@ Once per call, for two TINYVAE_TILE2_LOOPs (\loop0, \loop8) over \groups (a register,
@ kept, >= 1) groups: the iterations, ceil(groups / 8), at [\base, #\iters], and each
@ loop's entry past the (8 - groups mod 8) mod 8 groups its first iteration skips (56
@ bytes a TINYVAE_TILE2, the Thumb bit set) at [\base, #\e0] and [\base, #\e8]. \t, \u and
@ r12 scratch.
.macro TINYVAE_TILE2_ENTRIES groups, t, u, base, iters, e0, e8, loop0, loop8
    add \t, \groups, #7
    lsr \t, \t, #3
    str \t, [\base, #\iters]
    ands \t, \groups, #7
    it ne
    rsbne \t, \t, #8
    mov \u, #56
    mul \t, \t, \u
    adr.w r12, \loop0
    add r12, r12, \t
    orr r12, r12, #1
    str r12, [\base, #\e0]
    adr.w r12, \loop8
    add r12, r12, \t
    orr r12, r12, #1
    str r12, [\base, #\e8]
.endm

@ One row's two outputs: accumulators \a (position A, stored at [r2]) and \b (position B,
@ at [r2 + r12]), one multiplier (r0, advanced) and shift (r1, advanced); r2 advanced.
.macro TINYVAE_REQ2 a, b, slow, back
    ldr r8, [r0], #4
    ldrsb r9, [r1], #1
    @ r8 = 2m (mod 2^32). The fast path wants m in [2^30, 2^31) (bit 31 of 2m) and a
    @ right shift (s < 0, bit 31 of s): both bits, or the out-of-line path.
    lsl r8, r8, #1
    ands r10, r8, r9
    bpl \slow
    rsb r9, r9, #0
    @ h = (a m + 2^30) >> 31 in one instruction: with 2m read as signed (2m - 2^32),
    @ (a 2^32 + a (2m - 2^32) + 2^31) >> 32 = (2 a m + 2^31) >> 32.
    smmlar r11, \a, r8, \a
    TINYVAE_ROUND lr
    TINYVAE_CLAMP8
    strb r11, [r2]
    smmlar r11, \b, r8, \b
    TINYVAE_ROUND lr
    TINYVAE_CLAMP8
    strb r11, [r2, r12]
\back:
    add r2, r2, #1
.endm

@ The out-of-line path of a row (a multiplier below 2^30, 0: a channel that outputs its
@ zero-point; or a left shift): m back from r8, both outputs through TINYVAE_GENERAL, the
@ shift read again for the second.
.macro TINYVAE_REQ2_LEFT a, b, slow, back
\slow:
    lsr r8, r8, #1
    TINYVAE_GENERAL \a
    TINYVAE_CLAMP8
    strb r11, [r2]
    ldrsb r9, [r1, #-1]
    TINYVAE_GENERAL \b
    TINYVAE_CLAMP8
    strb r11, [r2, r12]
    b \back
.endm

@ Half a block (rows \off / 4 and \off / 4 + 1 of its four) for both positions: the
@ biases, the tile loop entered at the call's entry for this half (job offset \entry),
@ the four requantized outputs. r0 the job on entry and on exit.
.macro TINYVAE_PAIR_HALF off, entry, loop, name
    ldr r3, [r0, #16]
    ldr r4, [r3, #\off]
    ldr r6, [r3, #\off + 4]
    mov r5, r4
    mov r7, r6
    ldr r1, [r0, #4]
    ldr r12, [r0, #\entry]
    ldr r3, [r0, #44]
    ldr r0, [r0]
    .if \off
    add r0, r0, #\off
    .endif
    bx r12
    TINYVAE_TILE2_LOOP \loop
    ldr r3, [sp]
    ldr r0, [r3, #20]
    ldr r1, [r3, #24]
    ldr r2, [r3, #28]
    ldr lr, [r3, #32]
    ldr r12, [r3, #40]
    ldr r3, [r3, #36]
    TINYVAE_REQ2 r4, r5, .L\name\()_l\off\()a, .L\name\()_b\off\()a
    TINYVAE_REQ2 r6, r7, .L\name\()_l\off\()b, .L\name\()_b\off\()b
    ldr r3, [sp]
    str r0, [r3, #20]
    str r1, [r3, #24]
    str r2, [r3, #28]
    mov r0, r3
.endm

@ The int8 layer for two positions at once (a convolution's patches, interleaved per
@ group: A's two words, then B's), four rows per block, each half block's tile loop over
@ both positions; outputs at `out` (A) and `out + b_offset` (B). r0: the `PairJob`, whose
@ block count (at least 1) is counted down at the end of each block.
    TINYVAE_BLOCKS_BEGIN tinyvae_dense2_i8_smlad
    @ Once per call: eight groups per iteration (ceil(groups / 8)); each half's entry past
    @ (8 - groups mod 8) mod 8 groups of its first iteration (14 four-byte instructions,
    @ 56 bytes, a group), at job offsets 44, 48 and 52.
    ldr r2, [r0, #8]
    TINYVAE_TILE2_ENTRIES r2, r3, r1, r0, 44, 48, 52, .Ltinyvae_pair_loop0, .Ltinyvae_pair_loop8
10:
    TINYVAE_PAIR_HALF 0, 48, .Ltinyvae_pair_loop0, tinyvae_dense2_i8_smlad
    TINYVAE_PAIR_HALF 8, 52, .Ltinyvae_pair_loop8, tinyvae_dense2_i8_smlad
    @ The next block, if any: its tiles (16 bytes a group) and biases.
    ldr r1, [r0]
    ldr r2, [r0, #8]
    add r1, r1, r2, lsl #4
    str r1, [r0]
    ldr r1, [r0, #16]
    add r1, r1, #16
    str r1, [r0, #16]
    ldr r1, [r0, #12]
    subs r1, r1, #1
    str r1, [r0, #12]
    bne 10b
    TINYVAE_BLOCKS_END
    TINYVAE_REQ2_LEFT r4, r5, .Ltinyvae_dense2_i8_smlad_l0a, .Ltinyvae_dense2_i8_smlad_b0a
    TINYVAE_REQ2_LEFT r6, r7, .Ltinyvae_dense2_i8_smlad_l0b, .Ltinyvae_dense2_i8_smlad_b0b
    TINYVAE_REQ2_LEFT r4, r5, .Ltinyvae_dense2_i8_smlad_l8a, .Ltinyvae_dense2_i8_smlad_b8a
    TINYVAE_REQ2_LEFT r6, r7, .Ltinyvae_dense2_i8_smlad_l8b, .Ltinyvae_dense2_i8_smlad_b8b
.size tinyvae_dense2_i8_smlad, . - tinyvae_dense2_i8_smlad

@ int8 to int16 pairs into every other pair of words (a patch of a pair for
@ `tinyvae_dense2_i8_smlad`): r0 source (any alignment), r1 destination, r2 groups (>= 1);
@ each group's (x0, x2), (x1, x3), then 8 bytes left as they are. Two groups per
@ iteration; an odd group first.
.section .text.tinyvae_widen_i8_pairs,"ax",%progbits
.global tinyvae_widen_i8_pairs
.type tinyvae_widen_i8_pairs,%function
.syntax unified
.thumb
.thumb_func
.p2align 2
tinyvae_widen_i8_pairs:
    push {r4, r5}
    lsrs r2, r2, #1
    bcc 1f
    ldr r3, [r0], #4
    sxtb16 r12, r3
    sxtb16 r3, r3, ror #8
    strd r12, r3, [r1], #16
1:
    beq 3f
2:
    ldr r3, [r0], #4
    ldr r5, [r0], #4
    sxtb16 r12, r3
    sxtb16 r3, r3, ror #8
    sxtb16 r4, r5
    sxtb16 r5, r5, ror #8
    strd r12, r3, [r1], #16
    strd r4, r5, [r1], #16
    subs r2, r2, #1
    bne 2b
3:
    pop {r4, r5}
    bx lr
.size tinyvae_widen_i8_pairs, . - tinyvae_widen_i8_pairs

@ A patch of a pair gathered from the input, its taps all inside it: r0 the first tap row's
@ first byte (any alignment), r1 the destination slot (as for `tinyvae_widen_i8_pairs`),
@ r2 groups of four bytes per tap row (>= 1), r3 tap rows (>= 1), [sp] the bytes from one
@ tap row's start to the next's (an input row). Each tap row's groups widened as
@ `tinyvae_widen_i8_pairs` widens them, one tap row after another in the destination.
.section .text.tinyvae_gather_i8_pairs,"ax",%progbits
.global tinyvae_gather_i8_pairs
.type tinyvae_gather_i8_pairs,%function
.syntax unified
.thumb
.thumb_func
.p2align 2
tinyvae_gather_i8_pairs:
    push {r4, r5, r6, lr}
    ldr r6, [sp, #16]
    sub r6, r6, r2, lsl #2
1:
    mov r4, r2
2:
    ldr r5, [r0], #4
    sxtb16 r12, r5
    sxtb16 lr, r5, ror #8
    strd r12, lr, [r1], #16
    subs r4, r4, #1
    bne 2b
    add r0, r0, r6
    subs r3, r3, #1
    bne 1b
    pop {r4, r5, r6, pc}
.size tinyvae_gather_i8_pairs, . - tinyvae_gather_i8_pairs

@ The scatter form's tile loop over a row of input pixels (a transposed convolution with
@ few output channels): for each pixel, its widened input (2 groups words, the pixels one
@ after another) against every block of the tiles as in tinyvae_tiles_raw, each block's
@ four sums added to four int32 accumulators (4-byte aligned) instead of stored: block b's
@ at the pixel's first accumulator + 4 steps[4 b] bytes; the next pixel's first
@ accumulator `pixel_step` bytes on. r0: the `RowJob`: [r0] tiles, [r0, #4] the first
@ pixel's widened input, [r0, #8] groups (>= 1), [r0, #12] blocks (>= 1), [r0, #16] the
@ first pixel's first accumulator, [r0, #20] steps, [r0, #24] pixels (>= 1, counted
@ down), [r0, #28] pixel_step. The frame: [sp] the job, [sp, #4] blocks left, [sp, #8]
@ tiles (advanced), [sp, #12] steps (advanced), [sp, #16] the pixel's first accumulator,
@ [sp, #20] the pixel's widened input.
    TINYVAE_FN tinyvae_scatter_row
    push {r4-r11, lr}
    sub sp, sp, #28
    str r0, [sp]
    ldr r1, [r0, #16]
    str r1, [sp, #16]
    ldr r1, [r0, #4]
    str r1, [sp, #20]
20:
    ldr r0, [sp]
    ldr r3, [r0, #24]
    cmp r3, #0
    beq 29f
    sub r3, r3, #1
    str r3, [r0, #24]
    ldr r2, [r0, #12]
    str r2, [sp, #4]
    ldr r2, [r0]
    str r2, [sp, #8]
    ldr r2, [r0, #20]
    str r2, [sp, #12]
21:
    ldr r3, [sp, #4]
    cmp r3, #0
    beq 28f
    sub r3, r3, #1
    str r3, [sp, #4]
    movs r4, #0
    movs r5, #0
    movs r6, #0
    movs r7, #0
    ldr r0, [sp]
    ldr r2, [r0, #8]
    ldr r1, [sp, #20]
    ldr r0, [sp, #8]
    TINYVAE_GROUPS
    str r0, [sp, #8]
    ldr r0, [sp, #12]
    ldr r1, [r0], #16
    str r0, [sp, #12]
    ldr r0, [sp, #16]
    add r0, r0, r1, lsl #2
    ldm r0, {r8-r11}
    add r8, r8, r4
    add r9, r9, r5
    add r10, r10, r6
    add r11, r11, r7
    stm r0, {r8-r11}
    b 21b
28:
    ldr r0, [sp]
    ldr r2, [r0, #8]
    ldr r1, [sp, #20]
    add r1, r1, r2, lsl #3
    str r1, [sp, #20]
    ldr r2, [r0, #28]
    ldr r1, [sp, #16]
    add r1, r1, r2
    str r1, [sp, #16]
    b 20b
29:
    add sp, sp, #28
    pop {r4-r11, pc}
.size tinyvae_scatter_row, . - tinyvae_scatter_row

@ The scatter form's tile loop over a row of input pixels taken two at a time (pixels A
@ and B, neighbours in the row): as tinyvae_scatter_row, but each weight's SXTB16 serves
@ both pixels (TINYVAE_TILE2: two rows of a block for two pixels, 16 products in 14
@ instructions), each half block's four sums (rows a and b, pixels A and B) loaded from
@ their accumulators before its tile loop and stored after it. The widened inputs come
@ as tinyvae_dense2_i8_smlad reads them: per pair, per group, A's two words then B's. r0:
@ the `PairRowJob`: [r0] tiles, [r0, #4] the first pair's widened inputs, [r0, #8] groups
@ (>= 1), [r0, #12] blocks (>= 1), [r0, #16] the first pixel's first accumulator, [r0,
@ #20] steps (block b's rows at 4 steps[4 b] bytes past a pixel's first accumulator, the
@ four rows neighbours), [r0, #24] pairs (>= 1), [r0, #28] pixel_step (bytes from one
@ pixel's first accumulator to the next's). The frame:
@   [sp]      tiles                 [sp, #28] a block's tile bytes (16 groups), also a
@   [sp, #4]  steps                           pair's widened bytes
@   [sp, #8]  blocks                [sp, #32] tile loop iterations (ceil(groups / 8))
@   [sp, #12] the pair's first      [sp, #36] the first half's loop entry
@             accumulator           [sp, #40] the second half's loop entry
@   [sp, #16] the pair's inputs     [sp, #44] blocks left
@   [sp, #20] pairs left            [sp, #48] the block's tiles
@   [sp, #24] pixel_step            [sp, #52] steps (advanced)
@                                   [sp, #56] the block's rows' accumulators for pixel A
.macro TINYVAE_SCATTER_HALF off, entry, loop
    ldr r2, [sp, #56]
    ldr r3, [sp, #24]
    ldrd r4, r6, [r2, #\off]
    add r3, r2, r3
    ldrd r5, r7, [r3, #\off]
    ldr r0, [sp, #48]
    .if \off
    add r0, r0, #\off
    .endif
    ldr r1, [sp, #16]
    ldr r3, [sp, #32]
    ldr r12, [sp, #\entry]
    bx r12
    TINYVAE_TILE2_LOOP \loop
    ldr r2, [sp, #56]
    ldr r3, [sp, #24]
    strd r4, r6, [r2, #\off]
    add r3, r2, r3
    strd r5, r7, [r3, #\off]
.endm

    TINYVAE_FN tinyvae_scatter_pairs
    push {r4-r11, lr}
    sub sp, sp, #68
    ldm r0, {r1-r8}
    str r1, [sp]
    str r6, [sp, #4]
    str r4, [sp, #8]
    str r5, [sp, #12]
    str r2, [sp, #16]
    str r7, [sp, #20]
    str r8, [sp, #24]
    lsl r9, r3, #4
    str r9, [sp, #28]
    @ Once per call: eight groups per iteration, each half's entry past (8 - groups mod 8)
    @ mod 8 groups of its first (56 bytes a group, as in tinyvae_dense2_i8_smlad).
    TINYVAE_TILE2_ENTRIES r3, r9, r10, sp, 32, 36, 40, .Ltinyvae_scatter_loop0, .Ltinyvae_scatter_loop8
1:
    @ The next pair: every block again, from the first.
    ldr r3, [sp, #20]
    cmp r3, #0
    beq 9f
    sub r3, r3, #1
    str r3, [sp, #20]
    ldr r3, [sp, #8]
    str r3, [sp, #44]
    ldr r3, [sp]
    str r3, [sp, #48]
    ldr r3, [sp, #4]
    str r3, [sp, #52]
2:
    @ The next block: its rows' accumulators for pixel A, its two halves.
    ldr r3, [sp, #44]
    cmp r3, #0
    beq 8f
    sub r3, r3, #1
    str r3, [sp, #44]
    ldr r2, [sp, #52]
    ldr r3, [r2], #16
    str r2, [sp, #52]
    ldr r2, [sp, #12]
    add r2, r2, r3, lsl #2
    str r2, [sp, #56]
    TINYVAE_SCATTER_HALF 0, 36, .Ltinyvae_scatter_loop0
    TINYVAE_SCATTER_HALF 8, 40, .Ltinyvae_scatter_loop8
    ldr r0, [sp, #48]
    ldr r1, [sp, #28]
    add r0, r0, r1
    str r0, [sp, #48]
    b 2b
8:
    @ The pair done: the next pair's accumulators two pixels on, its inputs after these.
    ldr r0, [sp, #12]
    ldr r1, [sp, #24]
    add r0, r0, r1, lsl #1
    str r0, [sp, #12]
    ldr r0, [sp, #16]
    ldr r1, [sp, #28]
    add r0, r0, r1
    str r0, [sp, #16]
    b 1b
9:
    add sp, sp, #68
    pop {r4-r11, pc}
.size tinyvae_scatter_pairs, . - tinyvae_scatter_pairs

@ A row of pixels widened in pairs for tinyvae_scatter_pairs, the input zero-point taken
@ off: r0 the row's first pixel (int8, 4 r2 channels a pixel, any alignment), r1 the
@ destination words, r2 groups of four channels a pixel (>= 1), r3 pairs (>= 1), [sp] the
@ negated zero-point -z in both halfwords. Per pair, per group: pixel A's word as (x0 - z,
@ x2 - z), (x1 - z, x3 - z) (int16: -255 to 255; SXTAB16 widens and adds in one), then
@ pixel B's (A's 4 r2 bytes on), in a pair's two slots as tinyvae_dense2_i8_smlad reads
@ them.
.macro TINYVAE_WIDEN_PAIR_GROUP
    ldr r6, [r0, r8]
    ldr r4, [r0], #4
    sxtab16 r5, r9, r4, ror #8
    sxtab16 r4, r9, r4
    sxtab16 r7, r9, r6, ror #8
    sxtab16 r6, r9, r6
    stm r1!, {r4, r5, r6, r7}
.endm

    TINYVAE_FN tinyvae_widen_row_pairs
    push {r4-r11, lr}
    ldr r9, [sp, #36]
    lsl r8, r2, #2
    push {r2}
1:
    @ Two groups an iteration (one STM of both pixels' eight words), an odd one first.
    ldr r2, [sp]
    lsrs r2, r2, #1
    bcc 3f
    TINYVAE_WIDEN_PAIR_GROUP
3:
    cbz r2, 4f
2:
    ldr r6, [r0, r8]
    ldr r4, [r0], #4
    ldr lr, [r0, r8]
    ldr r11, [r0], #4
    sxtab16 r5, r9, r4, ror #8
    sxtab16 r4, r9, r4
    sxtab16 r7, r9, r6, ror #8
    sxtab16 r6, r9, r6
    sxtab16 r10, r9, r11
    sxtab16 r11, r9, r11, ror #8
    sxtab16 r12, r9, lr
    sxtab16 lr, r9, lr, ror #8
    stm r1!, {r4, r5, r6, r7, r10, r11, r12, lr}
    subs r2, r2, #1
    bne 2b
4:
    add r0, r0, r8
    subs r3, r3, #1
    bne 1b
    add sp, sp, #4
    pop {r4-r11, pc}
.size tinyvae_widen_row_pairs, . - tinyvae_widen_row_pairs

@ TINYVAE_REQ_ONE (src/dense_dsp.s) for one output channel: accumulators 4 bytes apart,
@ outputs 1.
.macro TINYVAE_REQ_NEXT
    ldr r12, [r0], #4
    smmlar r11, r12, r8, r12
    TINYVAE_ROUND lr
    TINYVAE_CLAMP8
    strb r11, [r1], #1
.endm

@ tinyvae_requantize_i8 over a grid's rows (the scatter form's outputs where they lie):
@ r0 the `RowsJob` of engine/src/arm/dsp/conv.rs: [r0] the first accumulator, [r0, #4]
@ the first output, [r0, #8] rows (>= 1), [r0, #12] lo in each byte, [r0, #16] bytes
@ between a row's accumulators, [r0, #20] between its outputs, [r0, #24] 2m (m in
@ [2^30, 2^31)), [r0, #28] the right shift e in [1, 31], [r0, #32] the zero-point,
@ [r0, #36] outputs a row (>= 1), [r0, #40] bytes from a row's last accumulator's next
@ to the next row's first, [r0, #44] the same for the outputs. Two outputs an iteration,
@ an odd one first.
    TINYVAE_FN tinyvae_requantize_rows
    push {r0, r4-r11, lr}
    ldm r0, {r0-r5, r8, r9, lr}
    @ One output channel (accumulators 4 bytes apart, outputs 1): post-indexed loads and
    @ stores, two instructions fewer an output.
    cmp r4, #4
    it eq
    cmpeq r5, #1
    beq 5f
1:
    ldr r7, [sp]
    ldr r6, [r7, #36]
    lsrs r6, r6, #1
    bcc 3f
    TINYVAE_REQ_ONE
3:
    cmp r6, #0
    beq 4f
2:
    TINYVAE_REQ_ONE
    TINYVAE_REQ_ONE
    subs r6, r6, #1
    bne 2b
4:
    ldr r7, [sp]
    ldr r6, [r7, #40]
    add r0, r0, r6
    ldr r6, [r7, #44]
    add r1, r1, r6
    subs r2, r2, #1
    bne 1b
    pop {r0, r4-r11, pc}
5:
    ldr r7, [sp]
    ldr r6, [r7, #36]
    lsrs r6, r6, #1
    bcc 7f
    TINYVAE_REQ_NEXT
7:
    cbz r6, 8f
6:
    TINYVAE_REQ_NEXT
    TINYVAE_REQ_NEXT
    subs r6, r6, #1
    bne 6b
8:
    ldr r7, [sp]
    ldr r6, [r7, #40]
    add r0, r0, r6
    ldr r6, [r7, #44]
    add r1, r1, r6
    subs r2, r2, #1
    bne 5b
    pop {r0, r4-r11, pc}
.size tinyvae_requantize_rows, . - tinyvae_requantize_rows

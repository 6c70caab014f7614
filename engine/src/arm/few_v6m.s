@ The ARMv6-M routine of engine/src/conv/few.rs (Cortex-M0, M0+): a run of output positions
@ of a convolution with few output channels, one channel, every tap inside the input.
@ Assembled with the crate after dense_v6m.s, whose macros it uses, in one `global_asm!`
@ (options(raw); src/dense/v6m.rs).

@ tinyvae_few_run_v6m(job): for each of the job's positions, the channel's accumulator
@ (its bias, plus per row of taps one dot product of the row's weights with the pixels it
@ reads, which lie side by side in the input), requantized, the zero-point added, clamped
@ and stored; then the next position (its pixels `x_step` bytes on, its output `out_step`
@ bytes on). The job (src/conv/few.rs, `RunJob`): 0 weights (the rows of taps back to back,
@ `run` bytes each), 4 the first position's pixels (its first row of taps), 8 the bytes from
@ one row of taps' pixels to the next's (signed), 12 run (a multiple of 4, not 0), 16 the
@ rows of taps (not 0), 20 x_step (signed), 24 the output, 28 out_step (signed), 32 the
@ positions (not 0), 36 the bias, 40 the multiplier's low half, 44 its high half (the
@ multiplier in [2^30, 2^31)), 48 the right shift (1 to 31), 52 the zero-point, 56 the
@ lower bound. The job's pixels, output and count advance as it runs. The requantization
@ uses dense_v6m.s's macros: this file is assembled after it, in one `global_asm!`.
@ TINYVAE_V6M_MAC2: two products added to r8, bytes r5 and r5 + 1 from the ends r2 (the
@ weights) and r3 (the pixels), r6 and r7 those ends plus one; r5 advanced by 2 (its flags
@ end the loop at zero). r0, r1 scratch.
.macro TINYVAE_V6M_MAC2
    ldrsb r0, [r2, r5]
    ldrsb r1, [r3, r5]
    muls r0, r1, r0
    add r8, r0
    ldrsb r0, [r6, r5]
    ldrsb r1, [r7, r5]
    muls r0, r1, r0
    add r8, r0
    adds r5, #2
.endm

    .section .text.tinyvae_few_run_v6m,"ax",%progbits
    .global tinyvae_few_run_v6m
    .type tinyvae_few_run_v6m,%function
    .thumb_func
    .p2align 1
tinyvae_few_run_v6m:
    push {r4-r7, lr}
    mov r4, r8
    mov r5, r9
    mov r6, r10
    push {r0, r4-r6}
1:
    ldr r0, [sp]
    ldr r1, [r0, #36]
    mov r8, r1
    ldr r1, [r0, #16]
    mov r9, r1
    ldr r1, [r0, #8]
    mov r10, r1
    ldr r2, [r0, #0]
    ldr r3, [r0, #4]
    ldr r4, [r0, #12]
2:
    @ One row of taps: r2 its weights, r3 its pixels, r4 the bytes; from their ends with an
    @ index counting up to zero by twos, r6 and r7 the ends plus one for the odd bytes.
    adds r2, r2, r4
    adds r3, r3, r4
    negs r5, r4
    adds r6, r2, #1
    adds r7, r3, #1
3:
    TINYVAE_V6M_MAC2
    TINYVAE_V6M_MAC2
    bne 3b
    @ The next row: its weights follow (r2), its pixels a row stride from this row's start.
    subs r3, r3, r4
    add r3, r10
    mov r1, r9
    subs r1, #1
    mov r9, r1
    bne 2b
    @ The requantization of r8 (into r2), the multiplier's halves given.
    ldr r1, [sp]
    mov r2, r8
    ldr r7, [r1, #40]
    ldr r3, [r1, #44]
    TINYVAE_V6M_HIGH
    ldr r3, [r1, #48]
    TINYVAE_V6M_FINISH 52, 56, 24, r2, 0
    ldr r3, [r1, #28]
    adds r2, r2, r3
    str r2, [r1, #24]
    ldr r2, [r1, #4]
    ldr r3, [r1, #20]
    adds r2, r2, r3
    str r2, [r1, #4]
    ldr r2, [r1, #32]
    subs r2, #1
    str r2, [r1, #32]
    beq 9f
    b 1b
9:
    pop {r0, r4-r6}
    mov r8, r4
    mov r9, r5
    mov r10, r6
    pop {r4-r7, pc}
    .size tinyvae_few_run_v6m, . - tinyvae_few_run_v6m

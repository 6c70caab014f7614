/* The model file in flash, 4-byte aligned (the DSP kernel loads its weights by words).
 * MODEL_FILE is its path, given by the Makefile. */
    .section .rodata.tinyvae_model, "a"
    .balign 4
    .global tinyvae_model_start
tinyvae_model_start:
    .incbin MODEL_FILE
    .global tinyvae_model_end
tinyvae_model_end:

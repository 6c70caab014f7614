/* Generates four images with a tinyvae model from C, through the tinyvae-c library, and
 * prints them over semihosting. */
#include <stdio.h>
#include <stdlib.h>

#include "model_sizes.h" /* trainer inspect MODEL --target ... --c-header model_sizes.h */
#include "tinyvae.h"

/* The model file, 4-byte aligned in flash (model.S). */
extern const uint8_t tinyvae_model_start[], tinyvae_model_end[];

static tinyvae_model model;
static int8_t scratch[TINYVAE_SCRATCH];
static int8_t code[TINYVAE_LATENT];
static uint8_t pixels[TINYVAE_PIXELS];

static void check(tinyvae_status s, const char *what) {
    if (s != TINYVAE_OK) {
        printf("%s: %s\n", what, tinyvae_status_name(s));
        exit(1);
    }
}

int main(void) {
    size_t len = (size_t)(tinyvae_model_end - tinyvae_model_start);
    check(tinyvae_open(&model, tinyvae_model_start, len), "open"); /* validated once */
    printf("%u bytes of model, kernel %d, scratch %u bytes\n", (unsigned)len,
           (int)tinyvae_kernel(&model), (unsigned)tinyvae_scratch_len(&model));

    tinyvae_sampler rng;
    tinyvae_sampler_init(&rng, 2026);
    for (int k = 0; k < 4; k++) {
        check(tinyvae_sample_prior(&model, &rng, code, sizeof code), "sample");
        check(tinyvae_decode(&model, code, sizeof code, scratch, sizeof scratch, pixels,
                             sizeof pixels),
              "decode");
        printf("sample %d ", k);
        for (size_t i = 0; i < sizeof pixels; i++) printf("%02x", pixels[i]);
        printf("\n");
    }
    return 0;
}

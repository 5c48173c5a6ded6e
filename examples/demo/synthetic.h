/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* A synthetic linear layer whose statistics imitate an LLM's: heavy-tailed weights, and
 * calibration inputs with a decaying spectrum, correlated channels and a few outlier
 * channels. Everything follows from the seed. */
#ifndef AQDEMO_SYNTHETIC_H
#define AQDEMO_SYNTHETIC_H

#include <stdint.h>

#include <aqinit.h>

typedef struct synth_layer {
    int64_t rows, cols;
    float *W; /* rows × cols, row-major */
} synth_layer;

/* Fill @p layer->W and accumulate @p n_samples calibration rows into @p H.
 * Returns AQ_OK or a library status (message in ctx). */
int synth_make(synth_layer *layer, aq_hessian *H, aq_context *ctx, int64_t rows, int64_t cols,
               int64_t n_samples, uint64_t seed);
void synth_free(synth_layer *layer);

#endif

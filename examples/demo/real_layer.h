/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* A real layer of a llama2.c checkpoint with the Hessian of its real calibration inputs. */
#ifndef AQDEMO_REAL_LAYER_H
#define AQDEMO_REAL_LAYER_H

#include <stdint.h>

#include <aqinit.h>

typedef struct real_layer {
    int64_t rows, cols;
    float *W; /* copy of the layer's weight, rows × cols */
    aq_hessian *H;
} real_layer;

/* Load @p model_path, run the fp32 forward over the first @p max_windows windows of the token
 * file @p calib_path and accumulate the inputs of layer @p name (e.g. "layers.3.wq").
 * Returns 0, or -1 with a message in @p err. */
int real_layer_load(real_layer *out, aq_context *ctx, const char *model_path, const char *calib_path,
                    const char *name, int max_windows, char *err, size_t errlen);
void real_layer_free(real_layer *layer);

#endif

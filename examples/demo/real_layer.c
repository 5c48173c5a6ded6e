/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "real_layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "llama_model.h"
#include "tokens.h"

int real_layer_load(real_layer *out, aq_context *ctx, const char *model_path, const char *calib_path,
                    const char *name, int max_windows, char *err, size_t errlen)
{
    llm_model *m = NULL;
    uint16_t *tok = NULL;
    size_t n_tok = 0;
    int rows, cols, ret = -1;
    memset(out, 0, sizeof *out);
    if (llm_load(&m, model_path, err, errlen) != 0)
        return -1;
    if (tok_load(&tok, &n_tok, calib_path, err, errlen) != 0)
        goto done;
    const int target = llm_find_linear(m, name);
    if (target < 0) {
        snprintf(err, errlen, "no linear layer named '%s' (try layers.0.wq, layers.0.w2, ...)", name);
        goto done;
    }
    const char *unused;
    llm_linear_info(m, target, &unused, &rows, &cols);
    int st = aq_hessian_create(&out->H, ctx, cols);
    if (st != AQ_OK) {
        snprintf(err, errlen, "%s", aq_context_last_error(ctx));
        goto done;
    }
    if (llm_calibrate(m, tok, n_tok, max_windows, target, out->H) != AQ_OK) {
        snprintf(err, errlen, "Hessian: %s", aq_context_last_error(ctx));
        goto done;
    }
    out->rows = rows;
    out->cols = cols;
    out->W = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    if (!out->W) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    memcpy(out->W, llm_linear_weight(m, target), sizeof(float) * (size_t)rows * (size_t)cols);
    ret = 0;
done:
    if (ret != 0)
        real_layer_free(out);
    free(tok);
    llm_free(m);
    return ret;
}

void real_layer_free(real_layer *layer)
{
    free(layer->W);
    aq_hessian_free(layer->H);
    memset(layer, 0, sizeof *layer);
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_quantize_layer: aq_init() then aq_optimize() on a clone of the quant, copied back only
 * when both succeed (a failure or a cancellation in either leaves the quant unchanged). */
#include "objective/layer.h"

int aq_quantize_layer(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                      const aq_hessian *H, const aq_options *options)
{
    aq_quant *tmp = NULL;
    int st = aqi_opt_validate(ctx, "aq_quantize_layer", quant, W, ld, H, 0);
    if (!st)
        st = aqi_check_owners(ctx, "aq_quantize_layer", quant, H, options);
    if (st)
        return st;
    st = aq_quant_clone(&tmp, quant);
    if (st)
        return st;
    st = aq_init(ctx, tmp, W, ld, H, options);
    if (!st)
        st = aq_optimize(ctx, tmp, W, ld, H, options);
    if (!st)
        aqi_opt_quant_commit(quant, tmp);
    aq_quant_free(tmp);
    return st;
}

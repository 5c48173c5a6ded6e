/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Public entry point of the codebook and scale update (aqinit.h). */
#include "codebook/codebook.h"

int aq_update_codebooks(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                        const aq_hessian *H, const aq_options *options)
{
    aqi_layer_session s;
    int st = aqi_layer_session_open(&s, ctx, "aq_update_codebooks", quant, W, ld, H, options);
    if (st)
        return st;
    st = aqi_opt_update_codebooks(&s.layer, &s.work, &s.v);
    return aqi_layer_session_close(&s, ctx, quant, st);
}

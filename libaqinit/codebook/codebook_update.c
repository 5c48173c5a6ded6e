/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The codebook/scale update of aq_update_codebooks and aq_optimize: the codebook mode of
 * ::AQ_OPT_CODEBOOK_UPDATE (exact: codebook_exact.c, conjugate gradients: codebook_cg.c, Adam:
 * codebook_adam.c), then the closed-form scales (codebook_scales.c). Each step never increases
 * the layer objective. */
#include "codebook/codebook.h"


int aqi_opt_update_codebooks(const aqi_layer *layer, aq_quant *q, const aqi_options_values *v)
{
    int64_t mode = v->codebook_update;
    int st = AQ_OK;
    if (mode == AQ_CODEBOOK_UPDATE_AUTO)
        mode = (int64_t)q->M * q->K * q->g <= v->codebook_exact_max_dim ? AQ_CODEBOOK_UPDATE_EXACT
                                                                         : AQ_CODEBOOK_UPDATE_CG;
    if (mode == AQ_CODEBOOK_UPDATE_EXACT)
        st = aqi_opt_codebooks_exact(layer, q);
    else if (mode == AQ_CODEBOOK_UPDATE_CG)
        st = aqi_opt_codebooks_cg(layer, q, v->codebook_cg_iters);
    else if (mode == AQ_CODEBOOK_UPDATE_ADAM)
        st = aqi_opt_codebooks_adam(layer, q, v->codebook_adam_steps, v->codebook_adam_lr);
    if (!st && v->update_scales && q->fmt.scale_mode == AQ_SCALE_PER_OUTPUT_GROUP)
        st = aqi_opt_scales(layer, q);
    return st;
}

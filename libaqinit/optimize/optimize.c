/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The alternating optimiser aq_optimize (aqinit.h): epochs of codebook/scale update
 * (codebook/) and beam search (beam/) on the layer objective (objective/) until an epoch improves
 * L by less than ::AQ_OPT_REL_TOL of its value. Like every entry point it works on a copy of the
 * quant (objective/layer_session.c), committed only on success. aq_quantize_layer, which adds the
 * initialisation, is in pipeline/. */
#include "core/comm.h"
#include "beam/beam.h"
#include "codebook/codebook.h"
#include "objective/layer.h"

int aq_optimize(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                const aq_hessian *H, const aq_options *options)
{
    aqi_layer_session s;
    double L_prev, L, energy;
    int st = aqi_layer_session_open(&s, ctx, "aq_optimize", quant, W, ld, H, options);
    if (st)
        return st;
    const int32_t max_epochs = (int32_t)s.v.max_epochs;
    st = aqi_opt_loss(&s.layer, &s.work, &L_prev, &energy);
    for (int32_t epoch = 0; epoch < max_epochs && !st; epoch++) {
        aqi_beam_config cfg = {(int32_t)s.v.beam_width, (int32_t)s.v.beam_random_order,
                               (uint64_t)epoch + 1, 0, 0, NULL, NULL, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
        /* the sharded parts of the update agree inside; this catches a rank-local failure of
         * the replicated ones (the exact solve) */
        st = aqi_comm_agree(ctx, "aq_optimize", aqi_opt_update_codebooks(&s.layer, &s.work, &s.v));
        if (!st)
            st = aqi_opt_beam_pass(&s.layer, &s.work, &cfg, NULL, NULL);
        if (!st)
            st = aqi_opt_loss(&s.layer, &s.work, &L, NULL);
        if (st)
            break;
        aqi_log(ctx, AQ_LOG_INFO, "aq_optimize: epoch %d: L %.9g -> %.9g", (int)epoch, L_prev, L);
        st = aqi_comm_agree(ctx, "aq_optimize",
                            aqi_progress(ctx, "optimize", epoch, max_epochs, 0, energy > 0 ? L / energy : L));
        if (st)
            break;
        /* stop when the epoch improved L by less than rel_tol of its value */
        int converged = !(L_prev > 0) || (L_prev - L) < s.v.rel_tol * L_prev;
        L_prev = L;
        if (converged)
            break;
    }
    return aqi_layer_session_close(&s, ctx, quant, st);
}

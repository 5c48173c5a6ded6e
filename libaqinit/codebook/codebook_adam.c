/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Codebooks by Adam with the codes fixed.
 *
 * Adam (AQLM parity). AQ_OPT_CODEBOOK_ADAM_STEPS steps on the loss L/O of AQLM with
 * ∂L/∂Ŵ = −2 ΔW H and ∂L/∂C_m[k] = Σ_{tiles using (m,k)} s_p ∂L/∂Ŵ[tile]; β = (0, 0.95),
 * amsgrad, ε = 1e-8 as torch. Unlike AQLM the moments start from zero at every call, only the
 * codebooks are trained (the scales get their closed form afterwards), and the best iterate seen
 * (the loss comes free with each gradient) is kept, so this mode never increases L either. */
#include <math.h>
#include <string.h>

#include "codebook/codebook.h"
#include "core/comm.h"

int aqi_opt_codebooks_adam(const aqi_layer *layer, aq_quant *q, int64_t steps, double lr)
{
    aq_context *ctx = layer->ctx;
    const double beta2 = 0.95, eps = 1e-8, scale = 1.0 / (double)q->rows;
    const size_t n = q->codebooks_count;
    aqi_cb_product pr;
    int st = aqi_cb_product_init(&pr, layer, q);
    if (st != AQ_OK)
        return st;
    double *grad = aqi_alloc(ctx, n * sizeof(double));
    double *v = grad ? aqi_calloc(ctx, n, sizeof(double)) : NULL;
    double *vmax = v ? aqi_calloc(ctx, n, sizeof(double)) : NULL;
    float *best = vmax ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    double best_loss = INFINITY, bias2 = 1.0;
    st = aqi_comm_agree(ctx, "the codebook update", best ? AQ_OK : AQ_ERR_NOMEM);

    for (int64_t step = 0; step <= steps && !st; step++) {
        /* r = Aᵀ s (ΔW H) and L: the loss L/O and ∂(L/O)/∂C = −(2/O) r */
        double L;
        if ((st = aqi_cb_product_apply(&pr, q->codebooks, 1, grad, &L)) != AQ_OK)
            break;
        L *= scale;
        for (size_t i = 0; i < n; i++)
            grad[i] *= -2.0 * scale;
        if (L < best_loss) {
            best_loss = L;
            memcpy(best, q->codebooks, n * sizeof(float));
        }
        if (step == steps)
            break;
        /* torch Adam, β1 = 0 (m_t = g_t), amsgrad: denominator sqrt(max v)/sqrt(1 − β2^t) + ε */
        bias2 *= beta2;
        double corr = sqrt(1.0 - bias2);
        for (size_t i = 0; i < n; i++) {
            v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
            if (v[i] > vmax[i])
                vmax[i] = v[i];
            q->codebooks[i] -= (float)(lr * grad[i] / (sqrt(vmax[i]) / corr + eps));
        }
    }
    if (!st)
        memcpy(q->codebooks, best, n * sizeof(float));
    aqi_cb_product_free(&pr);
    aqi_free(ctx, grad);
    aqi_free(ctx, v);
    aqi_free(ctx, vmax);
    aqi_free(ctx, best);
    return st;
}

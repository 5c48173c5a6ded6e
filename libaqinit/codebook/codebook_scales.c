/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Scales with the codes and codebooks fixed (REFERENCE-ALGORITHMS.md §1.7).
 *
 * With V_p the unscaled tiles Σ_m C_m[b] of output group p (its g_o rows),
 *   L_p(s) = ⟨W_p H, W_p⟩ − 2 s a_p + s² c_p,   a_p = ⟨V_p H, W_p⟩,   c_p = ⟨V_p H, V_p⟩   (C3)
 * so s_p = a_p / c_p; c_p = 0 (or a non-finite ratio) keeps the old scale, as does a step the
 * model (C3) says would increase L. V H is one float sgemm per block of rows, the inner products
 * are accumulated in double (the precision of the loss aqi_opt_loss). */
#include <math.h>

#include <cblas.h>

#include "codebook/codebook.h"
#include "core/comm.h"

#define SCALE_BLOCK_ROWS 256

int aqi_opt_scales(const aqi_layer *layer, aq_quant *q)
{
    aq_context *ctx = layer->ctx;
    const int64_t P = q->n_out_groups, ncols = q->cols, go = q->go;
    int64_t chunk = SCALE_BLOCK_ROWS / go < 1 ? 1 : SCALE_BLOCK_ROWS / go;
    if (chunk > P)
        chunk = P;
    const size_t block = (size_t)(chunk * go) * (size_t)ncols;
    double *a = aqi_calloc(ctx, 2 * (size_t)P, sizeof(double));
    float *V = a ? aqi_alloc(ctx, block * sizeof(float)) : NULL;
    float *VH = V ? aqi_alloc(ctx, block * sizeof(float)) : NULL;
    int st = aqi_comm_agree(ctx, "the scale update", VH ? AQ_OK : AQ_ERR_NOMEM);
    if (st != AQ_OK) {
        aqi_free(ctx, a);
        aqi_free(ctx, V);
        aqi_free(ctx, VH);
        return st;
    }
    double *c = a + P;
    /* a_p and c_p depend on group p alone: with a communicator each rank takes whole blocks of
     * groups and the sums are gathered (core/comm.h) */
    int64_t g0, g1;
    aqi_comm_share_blocks(ctx, P, chunk, aqi_comm_rank(ctx), &g0, &g1);
    for (int64_t p0 = g0; p0 < g1; p0 += chunk) {
        const int64_t p1 = p0 + chunk < g1 ? p0 + chunk : g1, rows = (p1 - p0) * go;
        aqi_opt_reconstruct(q, p0, p1, V, ncols, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f, V,
                    (int)ncols, layer->H, (int)ncols, 0.0f, VH, (int)ncols);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t p = p0 + r / go;
            const float *w = layer->W + (p0 * go + r) * layer->ld;
            const float *vh = VH + r * ncols, *v = V + r * ncols;
            double sa = 0.0, sc = 0.0;
            for (int64_t x = 0; x < ncols; x++) {
                sa += (double)vh[x] * (double)w[x];
                sc += (double)vh[x] * (double)v[x];
            }
            a[p] += sa;
            c[p] += sc;
        }
    }
    st = aqi_comm_allgather_blocks(ctx, "the scale update", AQ_OK, a, P, chunk, sizeof(double));
    if (st == AQ_OK)
        st = aqi_comm_allgather_blocks(ctx, "the scale update", AQ_OK, c, P, chunk, sizeof(double));
    for (int64_t p = 0; p < P && st == AQ_OK; p++) {
        double s_old = q->scales[p], s_new;
        if (!(c[p] > 0.0))
            continue;
        s_new = (double)(float)(a[p] / c[p]);
        if (!isfinite(s_new))
            continue;
        /* (C3): change of L_p from s_old to s_new */
        double dL = -2.0 * (s_new - s_old) * a[p] + (s_new * s_new - s_old * s_old) * c[p];
        if (dL <= 0.0)
            q->scales[p] = (float)s_new;
    }
    aqi_free(ctx, a);
    aqi_free(ctx, V);
    aqi_free(ctx, VH);
    return st;
}

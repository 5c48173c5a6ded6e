/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The layer objective L = tr((W − Ŵ) H (W − Ŵ)ᵀ), the reconstruction Ŵ it is computed from,
 * and working copies of a quant's arrays (objective/layer.h). */
#include <string.h>

#include <cblas.h>

#include "core/comm.h"
#include "objective/layer.h"

#define LOSS_CHUNK_ROWS 256

void aqi_opt_reconstruct(const aq_quant *q, int64_t p0, int64_t p1, float *out, int64_t ldo,
                         int with_scale)
{
    const int32_t g = q->g, go = q->go, M = q->M;
    for (int64_t p = p0; p < p1; p++) {
        float s = with_scale ? q->scales[p] : 1.0f;
        for (int32_t r = 0; r < go; r++) {
            float *row = out + ((p - p0) * go + r) * ldo;
            for (int64_t j = 0; j < q->n_in_groups; j++) {
                float *dst = row + j * g;
                const float *c = aqi_codeword(q, 0, aqi_code_get(q, p, j, 0)) + r * g;
                for (int32_t d = 0; d < g; d++)
                    dst[d] = c[d];
                for (int32_t m = 1; m < M; m++) {
                    c = aqi_codeword(q, m, aqi_code_get(q, p, j, m)) + r * g;
                    for (int32_t d = 0; d < g; d++)
                        dst[d] += c[d];
                }
                for (int32_t d = 0; d < g; d++)
                    dst[d] *= s;
            }
        }
    }
}

int aqi_opt_loss(const aqi_layer *layer, const aq_quant *q, double *loss, double *w_energy)
{
    aq_context *ctx = layer->ctx;
    const int64_t ncols = q->cols, go = q->go;
    int64_t chunk_groups = LOSS_CHUNK_ROWS / go < 1 ? 1 : LOSS_CHUNK_ROWS / go;
    if (chunk_groups > q->n_out_groups)
        chunk_groups = q->n_out_groups;
    /* Sums per chunk of output groups, added in chunk order; with a communicator each rank
     * computes its share of the chunks and the partial sums are gathered (core/comm.h). */
    const int64_t n_chunks = (q->n_out_groups + chunk_groups - 1) / chunk_groups;
    size_t n = (size_t)(chunk_groups * go) * (size_t)ncols;
    float *X = aqi_alloc(ctx, n * sizeof(float));
    float *XH = X ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    double *parts = XH ? aqi_calloc(ctx, (size_t)n_chunks, 2 * sizeof(double)) : NULL;
    double L = 0.0, E = 0.0;
    int64_t c0, c1;
    int st = aqi_comm_agree(ctx, "the layer objective", parts ? AQ_OK : AQ_ERR_NOMEM);
    if (st != AQ_OK) {
        aqi_free(ctx, X);
        aqi_free(ctx, XH);
        aqi_free(ctx, parts);
        return st;
    }
    aqi_comm_my_share(ctx, n_chunks, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        int64_t p0 = c * chunk_groups;
        int64_t p1 = p0 + chunk_groups < q->n_out_groups ? p0 + chunk_groups : q->n_out_groups;
        int64_t rows = (p1 - p0) * go;
        for (int pass = 0; pass < (w_energy ? 2 : 1); pass++) {
            /* pass 0: X = ΔW = W − Ŵ; pass 1: X = W */
            if (pass == 0)
                aqi_opt_reconstruct(q, p0, p1, X, ncols, 1);
            for (int64_t r = 0; r < rows; r++) {
                const float *w = layer->W + (p0 * go + r) * layer->ld;
                float *x = X + r * ncols;
                for (int64_t col = 0; col < ncols; col++)
                    x[col] = pass == 0 ? w[col] - x[col] : w[col];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f,
                        X, (int)ncols, layer->H, (int)ncols, 0.0f, XH, (int)ncols);
            double acc = 0.0;
            for (size_t i = 0; i < (size_t)rows * (size_t)ncols; i++)
                acc += (double)X[i] * (double)XH[i];
            parts[2 * c + pass] = acc;
        }
    }
    aqi_free(ctx, X);
    aqi_free(ctx, XH);
    st = aqi_comm_allgather(ctx, "the layer objective", AQ_OK, parts, n_chunks, 2 * sizeof(double));
    for (int64_t c = 0; c < n_chunks && st == AQ_OK; c++) {
        L += parts[2 * c];
        E += parts[2 * c + 1];
    }
    aqi_free(ctx, parts);
    if (st != AQ_OK)
        return st;
    *loss = L;
    if (w_energy)
        *w_energy = E;
    return AQ_OK;
}

int aqi_opt_quant_dup(aq_context *ctx, aq_quant *copy, const aq_quant *src)
{
    *copy = *src;
    copy->codes = aqi_alloc(ctx, src->codes_bytes ? src->codes_bytes : 1);
    copy->codebooks = copy->codes ? aqi_alloc(ctx, src->codebooks_count * sizeof(float)) : NULL;
    copy->scales = copy->codebooks ? aqi_alloc(ctx, src->scales_count * sizeof(float)) : NULL;
    if (!copy->scales) {
        aqi_free(ctx, copy->codes);
        aqi_free(ctx, copy->codebooks);
        copy->codes = NULL;
        copy->codebooks = NULL;
        return AQ_ERR_NOMEM;
    }
    memcpy(copy->codes, src->codes, src->codes_bytes);
    memcpy(copy->codebooks, src->codebooks, src->codebooks_count * sizeof(float));
    memcpy(copy->scales, src->scales, src->scales_count * sizeof(float));
    return AQ_OK;
}

void aqi_opt_quant_commit(aq_quant *dst, const aq_quant *copy)
{
    memcpy(dst->codes, copy->codes, dst->codes_bytes);
    memcpy(dst->codebooks, copy->codebooks, dst->codebooks_count * sizeof(float));
    memcpy(dst->scales, copy->scales, dst->scales_count * sizeof(float));
}

void aqi_opt_quant_release(aq_context *ctx, aq_quant *copy)
{
    aqi_free(ctx, copy->codes);
    aqi_free(ctx, copy->codebooks);
    aqi_free(ctx, copy->scales);
    copy->codes = NULL;
    copy->codebooks = NULL;
    copy->scales = NULL;
}

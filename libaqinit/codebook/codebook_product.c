/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The one product both iterative codebook updates need (REFERENCE-ALGORITHMS.md §1.7): with the
 * codes and scales fixed, for codebooks cb,
 *
 *   out = Aᵀ s (X H),   X = W − Ŵ(cb) (residual) or X = Ŵ(cb)                              (C4)
 *
 * i.e. s_p·(X H)[tile (p, j)] scattered to the codeword each tile uses, layout [M·K][g_o][g].
 * With X = W − Ŵ it is b − N x, half the negative gradient of L; with X = Ŵ(d) it is N d.
 * By blocks of whole output groups: a reconstruction, one float sgemm with H, the scatter in
 * double; ⟨X, X H⟩ (L for the residual) comes along. The blocks fall into PRODUCT_SHARDS fixed
 * shards, each summed into its own partial; the partials are added in shard order. With a
 * communicator each rank computes its share of the shards and the partials are gathered, so the
 * sums are the same on any number of ranks (core/comm.h). */
#include <string.h>

#include <cblas.h>

#include "codebook/codebook.h"
#include "core/comm.h"

#define PRODUCT_BLOCK_ROWS 256
#define PRODUCT_SHARDS 8 /* ranks beyond this many share the product's work no further */

int aqi_cb_product_init(aqi_cb_product *pr, const aqi_layer *layer, const aq_quant *q)
{
    aq_context *ctx = layer->ctx;
    pr->layer = layer;
    pr->q = q;
    pr->chunk_groups = PRODUCT_BLOCK_ROWS / q->go < 1 ? 1 : PRODUCT_BLOCK_ROWS / q->go;
    if (pr->chunk_groups > q->n_out_groups)
        pr->chunk_groups = q->n_out_groups;
    const size_t block = (size_t)(pr->chunk_groups * q->go) * (size_t)q->cols;
    const int64_t n_blocks = (q->n_out_groups + pr->chunk_groups - 1) / pr->chunk_groups;
    pr->n_shards = n_blocks < PRODUCT_SHARDS ? n_blocks : PRODUCT_SHARDS;
    pr->X = aqi_alloc(ctx, block * sizeof(float));
    pr->G = pr->X ? aqi_alloc(ctx, block * sizeof(float)) : NULL;
    /* one rank adds each shard's partial as soon as it is done; ranks gather all of them */
    pr->n_partials = aqi_comm_size(ctx) > 1 ? pr->n_shards : 1;
    pr->partials = pr->G ? aqi_alloc(ctx, (size_t)pr->n_partials * (q->codebooks_count + 1) * sizeof(double)) : NULL;
    int st = aqi_comm_agree(ctx, "the codebook update", pr->partials ? AQ_OK : AQ_ERR_NOMEM);
    if (st != AQ_OK)
        aqi_cb_product_free(pr);
    return st;
}

void aqi_cb_product_free(aqi_cb_product *pr)
{
    aqi_free(pr->layer->ctx, pr->X);
    aqi_free(pr->layer->ctx, pr->G);
    aqi_free(pr->layer->ctx, pr->partials);
    pr->X = pr->G = NULL;
    pr->partials = NULL;
}

/* Blocks [b0, b1) of shard @p c into part[0 .. Q) and ⟨X, X H⟩ into part[Q]. */
static void apply_shard(aqi_cb_product *pr, const aq_quant *view, int residual, int64_t c, double *part)
{
    const aq_quant *q = pr->q;
    const aqi_layer *layer = pr->layer;
    const int64_t ncols = q->cols, go = q->go, J = q->n_in_groups, P = q->n_out_groups;
    const int64_t n_blocks = (P + pr->chunk_groups - 1) / pr->chunk_groups;
    const int64_t b0 = n_blocks * c / pr->n_shards, b1 = n_blocks * (c + 1) / pr->n_shards;
    const int32_t g = q->g;
    double xgx = 0.0;
    memset(part, 0, (q->codebooks_count + 1) * sizeof(double));
    for (int64_t p0 = b0 * pr->chunk_groups; p0 < P && p0 < b1 * pr->chunk_groups; p0 += pr->chunk_groups) {
        const int64_t p1 = p0 + pr->chunk_groups < P ? p0 + pr->chunk_groups : P;
        const int64_t rows = (p1 - p0) * go;
        aqi_opt_reconstruct(view, p0, p1, pr->X, ncols, 1);
        if (residual)
            for (int64_t r = 0; r < rows; r++) {
                const float *w = layer->W + (p0 * go + r) * layer->ld;
                float *x = pr->X + r * ncols;
                for (int64_t col = 0; col < ncols; col++)
                    x[col] = w[col] - x[col];
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f, pr->X,
                    (int)ncols, layer->H, (int)ncols, 0.0f, pr->G, (int)ncols);
        for (size_t i = 0; i < (size_t)rows * (size_t)ncols; i++)
            xgx += (double)pr->X[i] * (double)pr->G[i];
        for (int64_t p = p0; p < p1; p++) {
            const double s = q->scales[p];
            for (int64_t j = 0; j < J; j++)
                for (int32_t m = 0; m < q->M; m++) {
                    double *o = part + ((size_t)m * q->K + aqi_code_get(q, p, j, m)) * (size_t)(go * g);
                    for (int64_t i = 0; i < go; i++) {
                        const float *src = pr->G + ((p - p0) * go + i) * ncols + j * g;
                        for (int32_t d = 0; d < g; d++)
                            o[i * g + d] += s * (double)src[d];
                    }
                }
        }
    }
    part[q->codebooks_count] = xgx;
}

/* out += part[0 .. Q), *xgx += part[Q]: one shard's partial, added in shard order. */
static void add_partial(double *out, double *xgx, const double *part, size_t Q)
{
    for (size_t e = 0; e < Q; e++)
        out[e] += part[e];
    *xgx += part[Q];
}

int aqi_cb_product_apply(aqi_cb_product *pr, const float *cb, int residual, double *out, double *quad)
{
    const aq_quant *q = pr->q;
    aq_context *ctx = pr->layer->ctx;
    const size_t Q = q->codebooks_count;
    aq_quant view = *q;
    int64_t c0, c1;
    double xgx = 0.0;
    view.codebooks = (float *)cb;
    memset(out, 0, Q * sizeof(double));
    if (pr->n_partials == 1) { /* one rank: the same sums in the same shard order, one buffer */
        for (int64_t c = 0; c < pr->n_shards; c++) {
            apply_shard(pr, &view, residual, c, pr->partials);
            add_partial(out, &xgx, pr->partials, Q);
        }
        if (quad)
            *quad = xgx;
        return AQ_OK;
    }
    aqi_comm_my_share(ctx, pr->n_shards, &c0, &c1);
    for (int64_t c = c0; c < c1; c++)
        apply_shard(pr, &view, residual, c, pr->partials + (size_t)c * (Q + 1));
    int st = aqi_comm_allgather(ctx, "the codebook update", AQ_OK, pr->partials, pr->n_shards,
                                (Q + 1) * sizeof(double));
    if (st != AQ_OK)
        return st;
    for (int64_t c = 0; c < pr->n_shards; c++)
        add_partial(out, &xgx, pr->partials + (size_t)c * (Q + 1), Q);
    if (quad)
        *quad = xgx;
    return AQ_OK;
}

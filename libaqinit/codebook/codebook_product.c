/* The one product both iterative codebook updates need (REFERENCE-ALGORITHMS.md §1.7): with the
 * codes and scales fixed, for codebooks cb,
 *
 *   out = Aᵀ s (X H),   X = W − Ŵ(cb) (residual) or X = Ŵ(cb)                              (C4)
 *
 * i.e. s_p·(X H)[tile (p, j)] scattered to the codeword each tile uses, layout [M·K][g_o][g].
 * With X = W − Ŵ it is b − N x, half the negative gradient of L; with X = Ŵ(d) it is N d.
 * By blocks of whole output groups: a reconstruction, one float sgemm with H, the scatter in
 * double; ⟨X, X H⟩ (L for the residual) comes along. */
#include <string.h>

#include <cblas.h>

#include "codebook/codebook.h"

#define PRODUCT_BLOCK_ROWS 256

int aqi_cb_product_init(aqi_cb_product *pr, const aqi_layer *layer, const aq_quant *q)
{
    aq_context *ctx = layer->ctx;
    pr->layer = layer;
    pr->q = q;
    pr->chunk_groups = PRODUCT_BLOCK_ROWS / q->go < 1 ? 1 : PRODUCT_BLOCK_ROWS / q->go;
    if (pr->chunk_groups > q->n_out_groups)
        pr->chunk_groups = q->n_out_groups;
    const size_t block = (size_t)(pr->chunk_groups * q->go) * (size_t)q->cols;
    pr->X = aqi_alloc(ctx, block * sizeof(float));
    pr->G = pr->X ? aqi_alloc(ctx, block * sizeof(float)) : NULL;
    if (!pr->G) {
        aqi_free(ctx, pr->X);
        pr->X = NULL;
        return AQ_ERR_NOMEM;
    }
    return AQ_OK;
}

void aqi_cb_product_free(aqi_cb_product *pr)
{
    aqi_free(pr->layer->ctx, pr->X);
    aqi_free(pr->layer->ctx, pr->G);
    pr->X = pr->G = NULL;
}

void aqi_cb_product_apply(aqi_cb_product *pr, const float *cb, int residual, double *out, double *quad)
{
    const aq_quant *q = pr->q;
    const aqi_layer *layer = pr->layer;
    const int64_t ncols = q->cols, go = q->go, J = q->n_in_groups;
    const int32_t g = q->g;
    aq_quant view = *q;
    double xgx = 0.0;
    view.codebooks = (float *)cb;
    memset(out, 0, q->codebooks_count * sizeof(double));
    for (int64_t p0 = 0; p0 < q->n_out_groups; p0 += pr->chunk_groups) {
        const int64_t p1 = p0 + pr->chunk_groups < q->n_out_groups ? p0 + pr->chunk_groups : q->n_out_groups;
        const int64_t rows = (p1 - p0) * go;
        aqi_opt_reconstruct(&view, p0, p1, pr->X, ncols, 1);
        if (residual)
            for (int64_t r = 0; r < rows; r++) {
                const float *w = layer->W + (p0 * go + r) * layer->ld;
                float *x = pr->X + r * ncols;
                for (int64_t c = 0; c < ncols; c++)
                    x[c] = w[c] - x[c];
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f, pr->X,
                    (int)ncols, layer->H, (int)ncols, 0.0f, pr->G, (int)ncols);
        if (quad)
            for (size_t i = 0; i < (size_t)rows * (size_t)ncols; i++)
                xgx += (double)pr->X[i] * (double)pr->G[i];
        for (int64_t p = p0; p < p1; p++) {
            const double s = q->scales[p];
            for (int64_t j = 0; j < J; j++)
                for (int32_t m = 0; m < q->M; m++) {
                    double *o = out + ((size_t)m * q->K + aqi_code_get(q, p, j, m)) * (size_t)(go * g);
                    for (int64_t i = 0; i < go; i++) {
                        const float *src = pr->G + ((p - p0) * go + i) * ncols + j * g;
                        for (int32_t d = 0; d < g; d++)
                            o[i * g + d] += s * (double)src[d];
                    }
                }
        }
    }
    if (quad)
        *quad = xgx;
}

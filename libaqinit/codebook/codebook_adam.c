/* Codebooks by Adam with the codes fixed.
 *
 * Adam (AQLM parity). AQ_OPT_CODEBOOK_ADAM_STEPS steps on the loss L/O of AQLM with
 * ∂L/∂Ŵ = −2 ΔW H and ∂L/∂C_m[k] = Σ_{tiles using (m,k)} s_p ∂L/∂Ŵ[tile]; β = (0, 0.95),
 * amsgrad, ε = 1e-8 as torch. Unlike AQLM the moments start from zero at every call, only the
 * codebooks are trained (the scales get their closed form afterwards), and the best iterate seen
 * (the loss comes free with each gradient) is kept, so this mode never increases L either. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "codebook/codebook.h"

#define BLOCK_ROWS 256

/* L/O and its gradient with respect to the codebooks (double, [M][K][g_o][g]). */
static int loss_and_grad(const aqi_layer *layer, const aq_quant *q, float *X, float *G,
                         int64_t chunk_groups, double *loss, double *grad)
{
    const int64_t ncols = q->cols, go = q->go, J = q->n_in_groups;
    const int32_t g = q->g;
    const double scale = 1.0 / (double)q->rows;
    double L = 0.0;
    memset(grad, 0, q->codebooks_count * sizeof(double));
    for (int64_t p0 = 0; p0 < q->n_out_groups; p0 += chunk_groups) {
        int64_t p1 = p0 + chunk_groups < q->n_out_groups ? p0 + chunk_groups : q->n_out_groups;
        int64_t rows = (p1 - p0) * go;
        aqi_opt_reconstruct(q, p0, p1, X, ncols, 1);
        for (int64_t r = 0; r < rows; r++) {
            const float *w = layer->W + (p0 * go + r) * layer->ld;
            for (int64_t c = 0; c < ncols; c++)
                X[r * ncols + c] = w[c] - X[r * ncols + c];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f, X,
                    (int)ncols, layer->H, (int)ncols, 0.0f, G, (int)ncols);
        for (size_t i = 0; i < (size_t)rows * (size_t)ncols; i++)
            L += (double)X[i] * (double)G[i];
        /* ∂(L/O)/∂C_m[k] += s_p · (−2/O)(ΔW H)[tile] */
        for (int64_t p = p0; p < p1; p++) {
            double f = -2.0 * scale * q->scales[p];
            for (int64_t j = 0; j < J; j++)
                for (int32_t m = 0; m < q->M; m++) {
                    double *gc = grad + ((size_t)m * q->K + aqi_code_get(q, p, j, m)) * (size_t)(go * g);
                    for (int64_t r = 0; r < go; r++) {
                        const float *src = G + ((p - p0) * go + r) * ncols + j * g;
                        for (int32_t d = 0; d < g; d++)
                            gc[r * g + d] += f * src[d];
                    }
                }
        }
    }
    *loss = L * scale;
    return AQ_OK;
}

int aqi_opt_codebooks_adam(const aqi_layer *layer, aq_quant *q, int64_t steps, double lr)
{
    aq_context *ctx = layer->ctx;
    const double beta2 = 0.95, eps = 1e-8;
    const size_t n = q->codebooks_count;
    int64_t chunk_groups = BLOCK_ROWS / q->go < 1 ? 1 : BLOCK_ROWS / q->go;
    if (chunk_groups > q->n_out_groups)
        chunk_groups = q->n_out_groups;
    size_t xn = (size_t)(chunk_groups * q->go) * (size_t)q->cols;
    float *X = aqi_alloc(ctx, xn * sizeof(float));
    float *G = X ? aqi_alloc(ctx, xn * sizeof(float)) : NULL;
    double *grad = G ? aqi_alloc(ctx, n * sizeof(double)) : NULL;
    double *v = grad ? aqi_calloc(ctx, n, sizeof(double)) : NULL;
    double *vmax = v ? aqi_calloc(ctx, n, sizeof(double)) : NULL;
    float *best = vmax ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    double best_loss = INFINITY, bias2 = 1.0;
    int st = best ? AQ_OK : AQ_ERR_NOMEM;

    for (int64_t step = 0; step <= steps && !st; step++) {
        double L;
        st = loss_and_grad(layer, q, X, G, chunk_groups, &L, grad);
        if (st)
            break;
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
    aqi_free(ctx, X);
    aqi_free(ctx, G);
    aqi_free(ctx, grad);
    aqi_free(ctx, v);
    aqi_free(ctx, vmax);
    aqi_free(ctx, best);
    return st;
}

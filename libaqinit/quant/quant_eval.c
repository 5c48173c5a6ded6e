/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Dequantization and the error measures of a quantized matrix. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "hessian/hessian_internal.h"
#include "quant/quant.h"

/* Ŵ[tile (p, j)] = s_p · Σ_m C_m[b(p, j, m)]  (DESIGN.md §3). */
void aqi_quant_dequantize_groups(const aq_quant *q, float *out, int64_t ld, int64_t p0, int64_t p1)
{
    const int g = q->g, go = q->go;
    for (int64_t p = p0; p < p1; p++) {
        const float s = q->scales[p];
        for (int64_t j = 0; j < q->n_in_groups; j++) {
            for (int r = 0; r < go; r++) {
                float *dst = out + ((p - p0) * go + r) * ld + j * g;
                for (int c = 0; c < g; c++)
                    dst[c] = 0.0f;
                for (int m = 0; m < q->M; m++) {
                    const float *cw = aqi_codeword(q, m, aqi_code_get(q, p, j, m)) + (size_t)r * (size_t)g;
                    for (int c = 0; c < g; c++)
                        dst[c] += cw[c];
                }
                for (int c = 0; c < g; c++)
                    dst[c] *= s;
            }
        }
    }
}

typedef struct dequant_job { const aq_quant *q; float *out; int64_t ld; } dequant_job;

static int dequant_range(void *arg, int64_t begin, int64_t end, int worker)
{
    dequant_job *job = arg;
    (void)worker;
    aqi_quant_dequantize_groups(job->q, job->out + begin * job->q->go * job->ld, job->ld, begin, end);
    return 0;
}

int aq_quant_dequantize(const aq_quant *q, float *W_out, int64_t ld)
{
    dequant_job job;
    if (!q || !W_out)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_dequantize: NULL argument");
    int st = aqi_check_ld(q->ctx, "aq_quant_dequantize", "W_out", q->rows, q->cols, ld, sizeof(float));
    if (st != AQ_OK)
        return st;
    job.q = q;
    job.out = W_out;
    job.ld = ld;
    return aqi_parallel_for(q->ctx, q->n_out_groups, dequant_range, &job);
}

static int check_weight(const aq_quant *q, const float *W, int64_t ld, const char *fn)
{
    if (!W)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: NULL weight", fn);
    int st = aqi_check_ld(q->ctx, fn, "W", q->rows, q->cols, ld, sizeof(float));
    if (st != AQ_OK)
        return st;
    return aqi_check_weights(q->ctx, fn, "the weight", W, q->rows, q->cols, ld);
}

int aq_quant_weight_mse(double *mse, const aq_quant *q, const float *W, int64_t ld)
{
    float *What;
    double sum = 0.0;
    int st;
    if (!mse || !q)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_weight_mse: NULL argument");
    if ((st = check_weight(q, W, ld, "aq_quant_weight_mse")) != AQ_OK)
        return st;
    What = aqi_alloc(q->ctx, sizeof(float) * (size_t)q->cols * (size_t)q->go);
    if (!What)
        return AQ_ERR_NOMEM;
    for (int64_t p = 0; p < q->n_out_groups; p++) {
        aqi_quant_dequantize_groups(q, What, q->cols, p, p + 1);
        for (int64_t r = 0; r < q->go; r++)
            for (int64_t c = 0; c < q->cols; c++) {
                double d = (double)W[(p * q->go + r) * ld + c] - What[r * q->cols + c];
                sum += d * d;
            }
    }
    aqi_free(q->ctx, What);
    *mse = sum / ((double)q->rows * (double)q->cols);
    return AQ_OK;
}

/* tr(A H Aᵀ) for a block of rows A (n × ncol, ld ncol) with H float (ncol × ncol): one SGEMM into @p tmp,
 * then the row-wise dot products accumulated in double. */
static double block_quadratic(const float *A, int64_t n, int64_t ncol, const float *Hf, float *tmp)
{
    double sum = 0.0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ncol, (int)ncol, 1.0f, A, (int)ncol, Hf, (int)ncol,
                0.0f, tmp, (int)ncol);
    for (int64_t i = 0; i < n * ncol; i++)
        sum += (double)A[i] * (double)tmp[i];
    return sum;
}

#define EVAL_ROWS 256

int aq_quant_output_error(double *rel_error, const aq_quant *q, const float *W, int64_t ld, const aq_hessian *H)
{
    const int64_t ncol = q ? q->cols : 0;
    double num = 0.0, den = 0.0;
    float *Hf = NULL, *D = NULL, *Wb = NULL, *tmp = NULL;
    size_t hbytes;
    int st;
    if (!rel_error || !q || !H)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_output_error: NULL argument");
    if ((st = check_weight(q, W, ld, "aq_quant_output_error")) != AQ_OK)
        return st;
    if (aq_hessian_num_inputs(H) != ncol)
        return aqi_fail(q->ctx, AQ_ERR_SHAPE, "aq_quant_output_error: Hessian has %lld inputs, the matrix %lld columns",
                        (long long)aq_hessian_num_inputs(H), (long long)ncol);
    if ((st = aqi_bytes(q->ctx, &hbytes, ncol * ncol, sizeof(float), "aq_quant_output_error")) != AQ_OK)
        return st;
    Hf = aqi_alloc(q->ctx, hbytes);
    D = Hf ? aqi_alloc(q->ctx, sizeof(float) * (size_t)(EVAL_ROWS + q->go) * (size_t)ncol) : NULL;
    Wb = D ? aqi_alloc(q->ctx, sizeof(float) * (size_t)(EVAL_ROWS + q->go) * (size_t)ncol) : NULL;
    tmp = Wb ? aqi_alloc(q->ctx, sizeof(float) * (size_t)(EVAL_ROWS + q->go) * (size_t)ncol) : NULL;
    if (!tmp) {
        st = AQ_ERR_NOMEM;
        goto done;
    }
    /* The ratio is invariant to the scale of H: normalise by max |H| so the float copy cannot
     * overflow whatever the magnitude of the activations (converted from the handle: no double
     * copy of H). */
    const double hmax = aqi_hessian_max_abs(H);
    if ((st = aqi_hessian_copy_float(H, Hf, 0.0, hmax > 0.0 ? 1.0 / hmax : 0.0, "aq_quant_output_error")) != AQ_OK)
        goto done;
    /* Blocks of whole output groups, so each block dequantizes on its own. */
    for (int64_t p0 = 0; p0 < q->n_out_groups;) {
        int64_t p1 = p0 + (EVAL_ROWS / q->go > 0 ? EVAL_ROWS / q->go : 1);
        if (p1 > q->n_out_groups)
            p1 = q->n_out_groups;
        const int64_t r0 = p0 * q->go, n = (p1 - p0) * q->go;
        aqi_quant_dequantize_groups(q, D, ncol, p0, p1);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < ncol; c++) {
                const float w = W[(r0 + r) * ld + c];
                Wb[r * ncol + c] = w;
                D[r * ncol + c] = w - D[r * ncol + c];
            }
        num += block_quadratic(D, n, ncol, Hf, tmp);
        den += block_quadratic(Wb, n, ncol, Hf, tmp);
        p0 = p1;
    }
    if (!isfinite(num) || !isfinite(den)) {
        st = aqi_fail(q->ctx, AQ_ERR_NONFINITE,
                      "aq_quant_output_error: the error overflows float (|W| or |W - What| too large)");
        goto done;
    }
    if (!(den > 0.0)) {
        st = aqi_fail(q->ctx, AQ_ERR_INVALID_ARG,
                      "aq_quant_output_error: tr(W H W^T) = %g, the relative error is undefined", den);
        goto done;
    }
    *rel_error = num / den;
done:
    aqi_free(q->ctx, tmp);
    aqi_free(q->ctx, Wb);
    aqi_free(q->ctx, D);
    aqi_free(q->ctx, Hf);
    return st;
}

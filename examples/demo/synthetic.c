/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "synthetic.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* splitmix64: the example's own generator, independent of the library's. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return ((double)(next_u64(s) >> 11) + 0.5) * 0x1.0p-53;
}

static double normal(uint64_t *s)
{
    return sqrt(-2.0 * log(uniform01(s))) * cos(6.283185307179586 * uniform01(s));
}

/* Student-t with nu degrees of freedom: normal / sqrt(chi²_nu / nu). */
static double student_t(uint64_t *s, int nu)
{
    double chi2 = 0.0;
    for (int k = 0; k < nu; k++) {
        double z = normal(s);
        chi2 += z * z;
    }
    return normal(s) / sqrt(chi2 / nu);
}

void synth_free(synth_layer *layer)
{
    free(layer->W);
    layer->W = NULL;
}

int synth_make(synth_layer *layer, aq_hessian *H, aq_context *ctx, int64_t rows, int64_t cols,
               int64_t n_samples, uint64_t seed)
{
    const int64_t rank = cols / 2 > 0 ? cols / 2 : 1, batch = 512;
    uint64_t s = seed * 0x2545F4914F6CDD1DULL + 1;
    float *F = malloc(sizeof(float) * (size_t)(rank * cols));
    float *Z = malloc(sizeof(float) * (size_t)(batch * rank));
    float *X = malloc(sizeof(float) * (size_t)(batch * cols));
    float *gain = malloc(sizeof(float) * (size_t)cols);
    int st = AQ_OK;
    layer->rows = rows;
    layer->cols = cols;
    layer->W = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!F || !Z || !X || !gain || !layer->W) {
        st = AQ_ERR_NOMEM;
        goto done;
    }
    /* Weights: Student-t(5) entries, a log-normal scale per output row. */
    for (int64_t r = 0; r < rows; r++) {
        double row_scale = 0.02 * exp(0.3 * normal(&s));
        for (int64_t c = 0; c < cols; c++)
            layer->W[r * cols + c] = (float)(row_scale * student_t(&s, 5));
    }
    /* Inputs x = ((z ⊙ σ) F + 0.05 ε) ⊙ gain: σ_k = (k+1)^-0.8 gives a decaying spectrum,
     * the dense mixing F correlates the channels, 1% of the channels are outliers (×20). */
    for (int64_t i = 0; i < rank * cols; i++)
        F[i] = (float)(normal(&s) / sqrt((double)rank));
    for (int64_t c = 0; c < cols; c++) {
        gain[c] = (float)exp(0.5 * normal(&s));
        if (uniform01(&s) < 0.01)
            gain[c] *= 20.0f;
    }
    for (int64_t done_rows = 0; done_rows < n_samples && st == AQ_OK; done_rows += batch) {
        int64_t b = n_samples - done_rows < batch ? n_samples - done_rows : batch;
        for (int64_t i = 0; i < b; i++)
            for (int64_t k = 0; k < rank; k++)
                Z[i * rank + k] = (float)(normal(&s) * pow((double)(k + 1), -0.8));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)cols, (int)rank, 1.0f, Z,
                    (int)rank, F, (int)cols, 0.0f, X, (int)cols);
        for (int64_t i = 0; i < b; i++)
            for (int64_t c = 0; c < cols; c++)
                X[i * cols + c] = (X[i * cols + c] + 0.05f * (float)normal(&s)) * gain[c];
        st = aq_hessian_add(H, X, b, cols);
    }
    (void)ctx;
done:
    free(F);
    free(Z);
    free(X);
    free(gain);
    if (st != AQ_OK)
        synth_free(layer);
    return st;
}

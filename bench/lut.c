/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* bench-lut: aq_quant_matvec / aq_quant_matmul against fp32 BLAS of the same shape, in the
 * same run.
 *
 *   bench-lut [--reps N] [--threads T] [--small] [--no-matmul] [--formats LIST]
 *
 * Mat-vec (n = 1): shapes 4096×4096, 11008×4096, 4096×11008, 4096×14336 (rows × cols; --small
 * adds the benchmark model's 288×288, 768×288, 288×768), formats 2x8g8, 1x16g8, 4x8g8, 8x8g8
 * (or LIST, comma-separated), random codes and codebooks, scales 1, x Gaussian with every 97th
 * channel 30x larger. Median time per product of the exact kernel (aq_quant_matvec), of
 * AQ_MATVEC_INT16 and of cblas_sgemv on the dequantized fp32 matrix; GB/s = code bytes / time;
 * ratio = sgemv time / ours (> 1: faster than fp32); err = ‖y − y_sgemv‖ / ‖y_sgemv‖.
 * Batches (n = 8, 64, 512): aq_quant_matmul (exact), aq_quant_matmul_kernel(INT16), and
 * dequantize + cblas_sgemm (what a host without aq_quant_matmul would do), ratio against the
 * latter. The repetitions are interleaved, one of each kind per round in an order that rotates
 * every round, so that every kind runs equally often right after the BLAS call, whose stream
 * empties the caches. Prints; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lut/lut.h"

#include "bench_util.h"

#define MAX_REPS 101

static uint64_t lcg = 12345;
static float uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg >> 11) * 0x1.0p-53);
}

static float gaussian(void)
{
    const float u1 = uniform() + 1e-12f, u2 = uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static double rel_err(const float *y, const float *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : 0.0;
}

static aq_quant *random_quant(aq_context *ctx, int64_t rows, int64_t cols, const char *format, size_t *code_bytes)
{
    aq_format f;
    aq_quant *q = NULL;
    size_t nc, ns;
    aq_format_init(&f);
    if (aq_format_parse(&f, format) != AQ_OK || aq_quant_create(&q, ctx, &f, rows, cols) != AQ_OK) {
        fprintf(stderr, "cannot create %s %lldx%lld\n", format, (long long)rows, (long long)cols);
        return NULL;
    }
    uint8_t *codes = aq_quant_codes(q, code_bytes);
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    for (size_t i = 0; i < *code_bytes; i++)
        codes[i] = (uint8_t)(uniform() * 256); /* any byte pattern is a valid code for B = 8 or 16 */
    for (size_t i = 0; i < nc; i++)
        cb[i] = gaussian() / (float)f.num_codebooks;
    for (size_t i = 0; i < ns; i++)
        sc[i] = 1.0f;
    return q;
}

static void fill_x(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = gaussian() * (i % 97 ? 1.0f : 30.0f);
}

enum { EXACT, INT16, BLAS, N_TIMED };

/* Runs kind k of one round. */
typedef struct run {
    aq_quant *q;
    const float *W, *X;
    float *Y[N_TIMED], *Wtmp;
    int64_t rows, cols, n;
} run;

static void run_kind(run *r, int k)
{
    if (r->n == 1) {
        if (k == EXACT)
            aq_quant_matvec(r->q, r->X, r->Y[k]);
        else if (k == INT16)
            aq_quant_matvec_kernel(r->q, r->X, r->Y[k], AQ_MATVEC_INT16);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)r->rows, (int)r->cols, 1.0f, r->W, (int)r->cols, r->X, 1,
                        0.0f, r->Y[k], 1);
        return;
    }
    if (k == EXACT)
        aq_quant_matmul(r->q, r->X, r->n, r->cols, r->Y[k], r->rows);
    else if (k == INT16)
        aq_quant_matmul_kernel(r->q, r->X, r->n, r->cols, r->Y[k], r->rows, AQ_MATVEC_INT16);
    else {
        aq_quant_dequantize(r->q, r->Wtmp, r->cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r->n, (int)r->rows, (int)r->cols, 1.0f, r->X,
                    (int)r->cols, r->Wtmp, (int)r->cols, 0.0f, r->Y[k], (int)r->rows);
    }
}

static void bench_shape(aq_context *ctx, int64_t rows, int64_t cols, const char *format, int reps, int matmul)
{
    size_t code_bytes = 0;
    aq_quant *q = random_quant(ctx, rows, cols, format, &code_bytes);
    if (!q)
        return;
    static const int64_t batches[] = {1, 8, 64, 512};
    float *W = malloc(sizeof(float) * (size_t)(rows * cols)), *Wtmp = malloc(sizeof(float) * (size_t)(rows * cols));
    aq_quant_dequantize(q, W, cols);
    for (size_t bi = 0; bi < (matmul ? 4u : 1u); bi++) {
        const int64_t n = batches[bi];
        run r = {q, W, NULL, {NULL}, Wtmp, rows, cols, n};
        float *X = malloc(sizeof(float) * (size_t)(n * cols));
        fill_x(X, n * cols);
        r.X = X;
        for (int k = 0; k < N_TIMED; k++)
            r.Y[k] = malloc(sizeof(float) * (size_t)(n * rows));
        const int nr = n >= 64 ? (reps + 2) / 3 : reps; /* big batches: fewer rounds */
        double t[N_TIMED][MAX_REPS], med[N_TIMED];
        for (int rep = -1; rep < nr; rep++) /* rep = −1 warms up */
            for (int i = 0; i < N_TIMED; i++) {
                const int k = (i + (rep < 0 ? 0 : rep)) % N_TIMED;
                const double t0 = now_seconds();
                run_kind(&r, k);
                if (rep >= 0)
                    t[k][rep] = now_seconds() - t0;
            }
        for (int k = 0; k < N_TIMED; k++)
            med[k] = median(t[k], nr);
        const double gb = (double)code_bytes * 1e-9;
        printf("  %5lldx%-5lld %-7s n=%-3lld exact %9.1f us %6.1f GB/s x%5.2f | int16 %9.1f us %6.1f GB/s x%5.2f "
               "err %.1e | %s %9.1f us\n",
               (long long)rows, (long long)cols, format, (long long)n, med[EXACT] * 1e6, gb / med[EXACT],
               med[BLAS] / med[EXACT], med[INT16] * 1e6, gb / med[INT16], med[BLAS] / med[INT16],
               rel_err(r.Y[INT16], r.Y[BLAS], n * rows), n == 1 ? "sgemv" : "deq+sgemm", med[BLAS] * 1e6);
        fflush(stdout);
        free(X);
        for (int k = 0; k < N_TIMED; k++)
            free(r.Y[k]);
    }
    free(W);
    free(Wtmp);
    aq_quant_free(q);
}

int main(int argc, char **argv)
{
    int reps = 21, threads = 1, small = 0, matmul = 1;
    const char *formats = "2x8g8,1x16g8,4x8g8,8x8g8";
    aq_context *ctx = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--reps") && a + 1 < argc)
            reps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc)
            threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--formats") && a + 1 < argc)
            formats = argv[++a];
        else if (!strcmp(argv[a], "--small"))
            small = 1;
        else if (!strcmp(argv[a], "--no-matmul"))
            matmul = 0;
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 21;
    if (aq_context_create(&ctx) != AQ_OK || aq_context_set_threads(ctx, threads) != AQ_OK)
        return 1;
    const int isa = aqi_lut_best_isa();
    printf("bench-lut: %d library thread(s), OpenBLAS default threads, median of %d (n >= 64: %d); kernels %s%s\n",
           aq_context_get_threads(ctx), reps, (reps + 2) / 3,
           isa == AQI_ISA_AVX512 ? "avx512" : isa == AQI_ISA_AVX2 ? "avx2" : "portable",
           aqi_lut16_vbmi_available() ? " + int16 vbmi" : " (int16: exact fallback)");
    static const int64_t model[][2] = {{288, 288}, {768, 288}, {288, 768}};
    static const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {4096, 14336}};
    char list[256];
    for (int pass = small ? 0 : 1; pass < 2; pass++) {
        const int64_t(*sh)[2] = pass ? shapes : model;
        const size_t n_sh = pass ? 4 : 3;
        for (size_t s = 0; s < n_sh; s++) {
            snprintf(list, sizeof list, "%s", formats);
            for (char *f = strtok(list, ","); f; f = strtok(NULL, ","))
                bench_shape(ctx, sh[s][0], sh[s][1], f, reps, matmul && pass);
        }
    }
    aq_context_free(ctx);
    return 0;
}

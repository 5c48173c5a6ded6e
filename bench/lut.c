/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* bench-lut: aq_quant_matvec (LUT kernels) against fp32 cblas_sgemv of the same shape, in the
 * same run.
 *
 *   bench-lut [--reps N] [--threads T]
 *
 * Shapes: the benchmark model's layers (288×288, 768×288, 288×768), 4096×4096 and 4096×14336
 * (rows × cols), at 2x8 g8 and 1x16 g8, random codes, codebooks and scales. For each: median
 * time per mat-vec of aq_quant_matvec (best ISA, its measured choice of table-read kernel), of
 * the portable kernel, of the best ISA with the other table-read kernel (gathers vs scalar
 * loads; LUT path only), and of sgemv on the fp32 matrix; ratio = sgemv time / ours (> 1: the
 * quantized mat-vec is faster). The repetitions are interleaved (one of each per round, in an
 * order that rotates every round, so that each kind runs equally often right after sgemv, whose
 * 64-MB stream empties the caches and whose threads may still spin) and every time is a median
 * over the rounds. Prints; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lut/lut.h"

#include "bench_util.h"

#define MAX_REPS 101


static uint64_t lcg = 12345;
static float uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg >> 11) * 0x1.0p-53);
}

static void bench_shape(aq_context *ctx, int64_t rows, int64_t cols, const char *format, int reps)
{
    aq_format f;
    aq_quant *q = NULL;
    size_t nb, nc, ns;
    aq_format_init(&f);
    if (aq_format_parse(&f, format) != AQ_OK || aq_quant_create(&q, ctx, &f, rows, cols) != AQ_OK) {
        fprintf(stderr, "cannot create %s %lldx%lld\n", format, (long long)rows, (long long)cols);
        return;
    }
    uint8_t *codes = aq_quant_codes(q, &nb);
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    for (size_t i = 0; i < nb; i++)
        codes[i] = (uint8_t)(uniform() * 256); /* any byte pattern is a valid code for B = 8 or 16 */
    for (size_t i = 0; i < nc; i++)
        cb[i] = uniform() - 0.5f;
    for (size_t i = 0; i < ns; i++)
        sc[i] = 1.0f;
    float *W = malloc(sizeof(float) * (size_t)(rows * cols)), *x = malloc(sizeof(float) * (size_t)cols);
    float *y = malloc(sizeof(float) * (size_t)rows);
    aq_quant_dequantize(q, W, cols);
    for (int64_t i = 0; i < cols; i++)
        x[i] = uniform() - 0.5f;
    enum { OURS, PORTABLE, OTHER, GEMV, N_TIMED };
    double t[N_TIMED][MAX_REPS], med[N_TIMED];
    const int best = aqi_lut_best_isa(), lut = aqi_lut_uses_tables(q);
    const int gather = lut && best != AQI_ISA_PORTABLE && aqi_lut_uses_gather(best);
    const int other = lut && best != AQI_ISA_PORTABLE ? (gather ? AQI_LUT_LOADS : AQI_LUT_GATHER) : -1;
    for (int r = -1; r < reps; r++) /* interleaved, the order rotating every round; r = −1 warms up */
        for (int i = 0; i < N_TIMED; i++) {
            const int k = (i + (r < 0 ? 0 : r)) % N_TIMED;
            const double t0 = now_seconds();
            if (k == OURS)
                aq_quant_matvec(q, x, y);
            else if (k == PORTABLE)
                aqi_quant_matvec_isa(q, x, y, AQI_ISA_PORTABLE, 0);
            else if (k == OTHER && other >= 0)
                aqi_quant_matvec_isa(q, x, y, best, other);
            else if (k == GEMV)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, W, (int)cols, x, 1, 0.0f, y, 1);
            if (r >= 0)
                t[k][r] = now_seconds() - t0;
        }
    for (int k = 0; k < N_TIMED; k++)
        med[k] = median(t[k], reps);
    const char *isa = best == AQI_ISA_AVX512 ? "avx512" : best == AQI_ISA_AVX2 ? "avx2" : "portable";
    char path[32], alt[48] = "";
    snprintf(path, sizeof path, "%s %s%s", lut ? "lut" : "direct", isa,
             !lut || best == AQI_ISA_PORTABLE ? "" : gather ? "+gather" : "+loads");
    if (other >= 0)
        snprintf(alt, sizeof alt, "  (%s %9.1f us)", gather ? "loads " : "gather", med[OTHER] * 1e6);
    printf("  %5lldx%-5lld %-7s %-18s ours %9.1f us  portable %9.1f us  sgemv %9.1f us   ratio %5.2f "
           "(portable %5.2f)%s\n",
           (long long)rows, (long long)cols, format, path, med[OURS] * 1e6, med[PORTABLE] * 1e6, med[GEMV] * 1e6,
           med[GEMV] / med[OURS], med[GEMV] / med[PORTABLE], alt);
    free(W);
    free(x);
    free(y);
    aq_quant_free(q);
}

int main(int argc, char **argv)
{
    int reps = 21, threads = 1;
    aq_context *ctx = NULL;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--reps"))
            reps = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--threads"))
            threads = atoi(argv[a + 1]);
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 21;
    if (aq_context_create(&ctx) != AQ_OK || aq_context_set_threads(ctx, threads) != AQ_OK)
        return 1;
    printf("aq_quant_matvec vs cblas_sgemv (fp32), %d library thread(s), OpenBLAS default threads, median of %d\n",
           aq_context_get_threads(ctx), reps);
    static const int64_t shapes[][2] = {{288, 288}, {768, 288}, {288, 768}, {4096, 4096}, {4096, 14336}};
    static const char *formats[] = {"2x8g8", "1x16g8"};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t f = 0; f < 2; f++)
            bench_shape(ctx, shapes[s][0], shapes[s][1], formats[f], reps);
    aq_context_free(ctx);
    return 0;
}

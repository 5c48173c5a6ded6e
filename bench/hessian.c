/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Benchmark of aq_hessian_add against a bare cblas_dsyrk of the same data, in the same run.
 *
 *   bench-hessian [--quick] [--sizes I1,I2,...] [--rows R] [--reps K] [--bare-mean]
 *
 * For each input size I: batches of R (default 2048) random float rows. "ours" times
 * aq_hessian_add (finiteness check, float→double conversion, SYRK with the running-mean
 * alpha/beta, locking); "bare" times cblas_dsyrk(alpha = 1, beta = 1) of the same rows already
 * in double, and with --bare-mean also the same SYRK with a running-mean beta < 1 (which costs
 * BLAS an extra pass over C). Median of K (default 5) repetitions after a warm-up, the timings
 * interleaved so that machine noise hits them alike. GFLOP/s counts R·I·(I+1) flops per batch.
 * Prints figures and ratios; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aqinit.h"

#include "bench_util.h"

#define MAX_SIZES 16
#define MAX_REPS 101


typedef struct bench_config {
    int64_t sizes[MAX_SIZES];
    int n_sizes;
    int64_t rows;
    int reps;
    int bare_mean;
} bench_config;

static int parse_args(bench_config *cfg, int argc, char **argv)
{
    static const int64_t defaults[] = {4096, 11008, 14336}, quick[] = {512, 1024, 2048};
    const int64_t *pick = defaults;
    cfg->n_sizes = 3;
    cfg->rows = 2048;
    cfg->reps = 5;
    cfg->bare_mean = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quick")) {
            pick = quick;
        } else if (!strcmp(argv[a], "--sizes") && a + 1 < argc) {
            char *p = argv[++a];
            cfg->n_sizes = 0;
            while (*p && cfg->n_sizes < MAX_SIZES) {
                char *end;
                long long v = strtoll(p, &end, 10);
                if (end == p || v < 1 || v > 65536)
                    return 0;
                cfg->sizes[cfg->n_sizes++] = v;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    return 0;
            }
            pick = NULL;
        } else if (!strcmp(argv[a], "--bare-mean")) {
            cfg->bare_mean = 1;
        } else if (!strcmp(argv[a], "--rows") && a + 1 < argc) {
            cfg->rows = strtoll(argv[++a], NULL, 10);
        } else if (!strcmp(argv[a], "--reps") && a + 1 < argc) {
            cfg->reps = atoi(argv[++a]);
        } else {
            return 0;
        }
    }
    if (pick)
        memcpy(cfg->sizes, pick, sizeof defaults);
    return cfg->n_sizes > 0 && cfg->rows >= 1 && cfg->rows <= 1 << 20 && cfg->reps >= 1
           && cfg->reps <= MAX_REPS;
}

/* Uniform floats in [-1, 1) from a small LCG (data only has to be finite and dense). */
static void fill_random(float *X, size_t count, uint64_t seed)
{
    for (size_t k = 0; k < count; k++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        X[k] = (float)((double)(seed >> 11) * 0x1.0p-52 - 1.0);
    }
}

static double time_bare_syrk(const double *A, double *C, int n, int k, double alpha, double beta)
{
    double t0 = now_seconds();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, n, beta, C, n);
    return now_seconds() - t0;
}

/* One size; returns 0 on success. */
static int bench_size(aq_context *ctx, const bench_config *cfg, int64_t n)
{
    int64_t rows = cfg->rows;
    int reps = cfg->reps;
    size_t nx = (size_t)(rows * n), nc = (size_t)(n * n);
    float *X = malloc(sizeof(float) * nx);
    double *A = malloc(sizeof(double) * nx), *C = calloc(nc, sizeof(double));
    double t_ours[MAX_REPS], t_bare[MAX_REPS], t_mean[MAX_REPS];
    int64_t warm = rows < 256 ? rows : 256;
    aq_hessian *h = NULL;
    int st = -1;
    if (!X || !A || !C)
        goto done;
    fill_random(X, nx, (uint64_t)n);
    for (size_t k = 0; k < nx; k++)
        A[k] = X[k];
    if ((st = aq_hessian_create(&h, ctx, n)) != AQ_OK || (st = aq_hessian_add(h, X, warm, n)) != AQ_OK)
        goto done;
    time_bare_syrk(A, C, (int)n, (int)warm, 1.0, 1.0);
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        if ((st = aq_hessian_add(h, X, rows, n)) != AQ_OK)
            goto done;
        t_ours[r] = now_seconds() - t0;
        t_bare[r] = time_bare_syrk(A, C, (int)n, (int)rows, 1.0, 1.0);
        if (cfg->bare_mean)
            t_mean[r] = time_bare_syrk(A, C, (int)n, (int)rows, 1.0 / (r + 2), (r + 1.0) / (r + 2));
    }
    double flops = (double)rows * (double)n * (double)(n + 1);
    double mo = median(t_ours, reps), mb = median(t_bare, reps);
    printf("%7lld %6lld %10.1f %9.1f %10.1f %9.1f %7.3f", (long long)n, (long long)rows, 1e3 * mo,
           flops / mo * 1e-9, 1e3 * mb, flops / mb * 1e-9, mb / mo);
    if (cfg->bare_mean) {
        double mm = median(t_mean, reps);
        printf(" %12.1f %9.1f %10.3f", 1e3 * mm, flops / mm * 1e-9, mm / mo);
    }
    printf("\n");
    fflush(stdout);
done:
    if (st != AQ_OK)
        fprintf(stderr, "size %lld failed: %s (%s)\n", (long long)n, aq_strerror(st),
                ctx ? aq_context_last_error(ctx) : "");
    aq_hessian_free(h);
    free(C);
    free(A);
    free(X);
    return st != AQ_OK;
}

int main(int argc, char **argv)
{
    bench_config cfg;
    aq_context *ctx = NULL;
    int failed = 0;
    if (!parse_args(&cfg, argc, argv)) {
        fprintf(stderr, "usage: %s [--quick] [--sizes I1,I2,...] [--rows R] [--reps K (1..%d)] [--bare-mean]\n",
                argv[0], MAX_REPS);
        return 2;
    }
    if (aq_context_create(&ctx) != AQ_OK)
        return 1;
    printf("aq_hessian_add vs bare cblas_dsyrk; %lld rows per batch, median of %d after a warm-up\n",
           (long long)cfg.rows, cfg.reps);
    printf("flops per batch = rows*I*(I+1); ratio = bare time / ours (>= 0.7 is the target)\n\n");
    printf("%7s %6s %10s %9s %10s %9s %7s", "I", "rows", "ours ms", "GF/s", "bare ms", "GF/s", "ratio");
    if (cfg.bare_mean)
        printf(" %12s %9s %10s", "bare-mean ms", "GF/s", "ratio-mean");
    printf("\n");
    for (int s = 0; s < cfg.n_sizes; s++)
        failed |= bench_size(ctx, &cfg, cfg.sizes[s]);
    aq_context_free(ctx);
    return failed;
}

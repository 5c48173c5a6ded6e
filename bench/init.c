/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Benchmark of the initialisation: the fused E-step against cblas_sgemm of the same shape,
 * seconds per OA-EM round on a 4096×4096 layer, and whole aq_init runs GREEDY vs OA_EM.
 *
 *   bench-init [--quick] [--reps N] [--skip-1x16] [--layer ROWSxCOLS] [--threads N]
 *   (--threads 0 = all cores; set OPENBLAS_NUM_THREADS to the same count for the sgemm figures)
 *
 * 1. E-step: n points of D = 8 against K centroids; "ours" is the library's E-step (score
 *    table, fused score + argmin, code update) on the context's threads, "sgemm" is the bare
 *    product (n×D)·(D×K) that an unfused implementation would start with (its output alone is
 *    n·K floats). GFLOP/s counts 2·n·D·K for both; the ratio is ours / sgemm.
 * 2. One OA-EM round (M-step, E-step, objective) with the Mahalanobis metric of 512 input
 *    groups on 4096×4096 at 2x8 g8 (K = 256) and 1x16 g8 (K = 65,536).
 * 3. The k-means stage of GREEDY (Lloyd, K = 256, up to 100 rounds) on the tiles of the
 *    synthetic layer: E-step with Hamerly's bounds against full scans, same run, same result.
 * 4. aq_init on a synthetic LLM-like layer (default 2048×2048, 2x8 g8), GREEDY and OA_EM:
 *    seconds and relative output error, for comparison with the reference implementation
 *    (PyTorch on this machine: 95 s GREEDY, 217 s OA-EM).
 * Medians of N repetitions (default 3), timings interleaved. Prints figures; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "init/em.h"
#include "synthetic.h"

#include "bench_util.h"

#define MAX_REPS 31


static float *random_floats(int64_t n, uint64_t *state)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(*state >> 11) * 0x1.0p-53 - 0.5);
    }
    return x;
}

static void check(int status, aq_context *ctx, const char *what)
{
    if (status != AQ_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, aq_strerror(status), ctx ? aq_context_last_error(ctx) : "");
        exit(1);
    }
}

/* ---------------------------------------------------------------- 1. E-step vs sgemm */

static void bench_estep(aq_context *ctx, int64_t K, int reps)
{
    const int64_t D = 8, max_out = (int64_t)1 << 26; /* keep the sgemm output ≤ 256 MB */
    int64_t n = (int64_t)1 << 18;
    if (n * K > max_out)
        n = max_out / K;
    uint64_t state = 42;
    float *R = random_floats(n * D, &state), *C = random_floats(K * D, &state);
    float *out = malloc(sizeof(float) * (size_t)(n * K));
    int32_t *codes = calloc((size_t)n, sizeof(int32_t));
    aqi_em_metric metric = {n, 1, 1, D, D, NULL, NULL};
    aqi_em_work w;
    double t_ours[MAX_REPS], t_gemm[MAX_REPS];
    int64_t changed;
    check(aqi_em_work_init(&w, ctx, &metric, K), ctx, "work");
    w.use_bounds = 0; /* the fused argmin kernel of every full scan (section 3 times the bounds) */
    for (int r = -1; r < reps; r++) { /* r = −1 warms up */
        double t0 = now_seconds();
        check(aqi_em_estep(&w, R, C, codes, 0, &changed), ctx, "estep");
        double t1 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)K, (int)D, 1.0f, R, (int)D, C, (int)D,
                    0.0f, out, (int)K);
        double t2 = now_seconds();
        if (r >= 0) {
            t_ours[r] = t1 - t0;
            t_gemm[r] = t2 - t1;
        }
    }
    const double flops = 2.0 * (double)n * (double)D * (double)K;
    const double ours = flops / median(t_ours, reps) * 1e-9, gemm = flops / median(t_gemm, reps) * 1e-9;
    printf("  K=%-6lld n=%-7lld D=%lld   ours %7.1f GFLOP/s   sgemm %7.1f GFLOP/s   ratio %.2f\n",
           (long long)K, (long long)n, (long long)D, ours, gemm, ours / gemm);
    aqi_em_work_free(&w);
    free(R);
    free(C);
    free(out);
    free(codes);
}

/* ---------------------------------------------------------------- 2. one OA-EM round */

static void bench_round(aq_context *ctx, int64_t rows, int64_t cols, int64_t K, int reps)
{
    const int64_t g = 8, J = cols / g, N = rows * J;
    uint64_t state = 7;
    float *R = random_floats(N * g, &state), *C = random_floats(K * g, &state);
    double *blocks = malloc(sizeof(double) * (size_t)(J * g * g)), *weights = malloc(sizeof(double) * (size_t)rows);
    int32_t *codes = calloc((size_t)N, sizeof(int32_t));
    for (int64_t j = 0; j < J; j++) /* SPD: 0.5·I + a rank-one term */
        for (int64_t a = 0; a < g; a++)
            for (int64_t b = 0; b < g; b++)
                blocks[(j * g + a) * g + b] = (a == b ? 0.5 : 0.0) + 0.1 * (double)((a + j) % 3) * (double)((b + j) % 3);
    for (int64_t p = 0; p < rows; p++)
        weights[p] = 1.0 + 0.01 * (double)(p % 7);
    aqi_em_metric metric = {N, J, 1, g, g, blocks, weights};
    aqi_em_params params = {1, 0.0, 0, 0, 0.0, "bench", 0, 1};
    aqi_em_work w;
    double tm[MAX_REPS], te[MAX_REPS], to[MAX_REPS], objective;
    int64_t changed;
    check(aqi_em_work_init(&w, ctx, &metric, K), ctx, "work");
    check(aqi_em_estep(&w, R, C, codes, 0, &changed), ctx, "estep");
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        check(aqi_em_mstep(&w, &params, R, C, codes), ctx, "mstep");
        double t1 = now_seconds();
        check(aqi_em_estep(&w, R, C, codes, 1, &changed), ctx, "estep");
        double t2 = now_seconds();
        check(aqi_em_objective(&w, R, C, codes, &objective), ctx, "objective");
        double t3 = now_seconds();
        tm[r] = t1 - t0;
        te[r] = t2 - t1;
        to[r] = t3 - t2;
    }
    const double m = median(tm, reps), e = median(te, reps), o = median(to, reps);
    printf("  %lldx%lld K=%-6lld  round %8.3f s  (M-step %.3f, E-step %.3f = %.1f GFLOP/s, objective %.3f)\n",
           (long long)rows, (long long)cols, (long long)K, m + e + o, m, e,
           2.0 * (double)N * (double)g * (double)K / e * 1e-9, o);
    aqi_em_work_free(&w);
    free(R);
    free(C);
    free(blocks);
    free(weights);
    free(codes);
}

/* ---------------------------------------------------------------- 3. bounded k-means */

static void bench_kmeans(aq_context *ctx, int64_t rows, int64_t cols, int reps)
{
    const int64_t g = 8, J = cols / g, N = rows * J, K = 256;
    aq_hessian *H = NULL;
    synth_layer layer;
    check(aq_hessian_create(&H, ctx, cols), ctx, "hessian");
    check(synth_make(&layer, H, ctx, rows, cols, 4 * cols, 1), ctx, "synthetic layer");
    float *R = malloc(sizeof(float) * (size_t)(N * g)), *C0 = malloc(sizeof(float) * (size_t)(K * g));
    float *C = malloc(sizeof(float) * (size_t)(K * g));
    int32_t *codes = malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t p = 0; p < rows; p++) { /* tiles of W/‖W_p‖, as aq_init's first stage */
        double norm2 = 0.0;
        for (int64_t c = 0; c < cols; c++)
            norm2 += (double)layer.W[p * cols + c] * layer.W[p * cols + c];
        for (int64_t c = 0; c < cols; c++)
            R[p * cols + c] = (float)(layer.W[p * cols + c] / (sqrt(norm2) + 1e-9));
    }
    for (int64_t k = 0; k < K; k++) /* the same spread-out seed points for both */
        memcpy(C0 + k * g, R + ((k * 2654435761u) % (uint64_t)N) * g, sizeof(float) * (size_t)g);
    aqi_em_metric metric = {N, J, 1, g, g, NULL, NULL};
    aqi_em_params params = {100, 1e-6, 0, 0, 0.0, "bench", 0, 1};
    double t[2][MAX_REPS], objective[2] = {0, 0};
    int64_t scanned = 0;
    for (int r = 0; r < reps; r++)
        for (int bounded = 1; bounded >= 0; bounded--) {
            aqi_em_work w;
            check(aqi_em_work_init(&w, ctx, &metric, K), ctx, "work");
            w.use_bounds = bounded;
            memcpy(C, C0, sizeof(float) * (size_t)(K * g));
            double t0 = now_seconds();
            check(aqi_em_run(&w, &params, R, C, codes, 1, &objective[bounded]), ctx, "k-means");
            t[bounded][r] = now_seconds() - t0;
            if (bounded)
                scanned = w.last_scanned;
            aqi_em_work_free(&w);
        }
    const double tb = median(t[1], reps), tf = median(t[0], reps);
    printf("  %lldx%lld, %lld points, K=%lld: bounded %.3f s, full scans %.3f s, speed-up %.2f; objectives %s "
           "(%.9g); last round scanned %.1f %% of the points\n",
           (long long)rows, (long long)cols, (long long)N, (long long)K, tb, tf, tf / tb,
           objective[0] == objective[1] ? "equal" : "DIFFER", objective[1], 100.0 * (double)scanned / (double)N);
    free(R);
    free(C0);
    free(C);
    free(codes);
    synth_free(&layer);
    aq_hessian_free(H);
}

/* ---------------------------------------------------------------- 4. whole aq_init */

static void bench_init(aq_context *ctx, int64_t rows, int64_t cols, const char *format, int reps)
{
    aq_hessian *H = NULL;
    synth_layer layer;
    aq_format fmt;
    double seconds[2][MAX_REPS], error[2] = {0, 0};
    static const char *names[2] = {"greedy", "oaem"};
    check(aq_hessian_create(&H, ctx, cols), ctx, "hessian");
    check(synth_make(&layer, H, ctx, rows, cols, 4 * cols, 1), ctx, "synthetic layer");
    aq_format_init(&fmt);
    check(aq_format_parse(&fmt, format), ctx, "format");
    for (int r = 0; r < reps; r++)
        for (int method = 0; method < 2; method++) {
            aq_quant *q = NULL;
            aq_options *o = NULL;
            check(aq_quant_create(&q, ctx, &fmt, rows, cols), ctx, "quant");
            check(aq_options_create(&o, ctx), ctx, "options");
            check(aq_options_set_int(o, AQ_OPT_INIT_METHOD, method), ctx, "options");
            double t0 = now_seconds();
            check(aq_init(ctx, q, layer.W, cols, H, o), ctx, "aq_init");
            seconds[method][r] = now_seconds() - t0;
            check(aq_quant_output_error(&error[method], q, layer.W, cols, H), ctx, "error");
            aq_options_free(o);
            aq_quant_free(q);
        }
    for (int method = 0; method < 2; method++)
        printf("  %lldx%lld %s %-6s  %7.2f s   rel. output error %.5f\n", (long long)rows, (long long)cols, format,
               names[method], median(seconds[method], reps), error[method]);
    printf("  OA-EM / GREEDY: time %.2f, error %.3f\n", median(seconds[1], reps) / median(seconds[0], reps),
           error[1] / error[0]);
    synth_free(&layer);
    aq_hessian_free(H);
}

int main(int argc, char **argv)
{
    int reps = 3, quick = 0, skip_wide = 0, threads = 0;
    int64_t rows = 2048, cols = 2048;
    aq_context *ctx = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quick"))
            quick = 1;
        else if (!strcmp(argv[a], "--skip-1x16"))
            skip_wide = 1;
        else if (!strcmp(argv[a], "--reps") && a + 1 < argc)
            reps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc)
            threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--layer") && a + 1 < argc && sscanf(argv[a + 1], "%lldx%lld", (long long *)&rows, (long long *)&cols) == 2)
            a++;
        else {
            fprintf(stderr, "usage: bench-init [--quick] [--reps N] [--skip-1x16] [--layer ROWSxCOLS] [--threads N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 3;
    check(aq_context_create(&ctx), NULL, "context");
    check(aq_context_set_threads(ctx, threads), ctx, "threads"); /* 0: all cores, as OpenBLAS */
    printf("libaqinit %s, %d threads, medians of %d\n", aq_version_string(), aq_context_get_threads(ctx), reps);
    printf("E-step (fused score + argmin) vs cblas_sgemm of the same shape:\n");
    bench_estep(ctx, 256, reps);
    bench_estep(ctx, 4096, reps);
    bench_estep(ctx, 65536, reps);
    printf("One OA-EM round:\n");
    bench_round(ctx, quick ? 1024 : 4096, quick ? 1024 : 4096, 256, reps);
    if (!skip_wide)
        bench_round(ctx, quick ? 1024 : 4096, quick ? 1024 : 4096, 65536, 1);
    printf("k-means stage (Lloyd, up to 100 rounds), Hamerly bounds vs full scans:\n");
    bench_kmeans(ctx, quick ? 512 : rows, quick ? 512 : cols, reps);
    printf("aq_init on a synthetic layer:\n");
    bench_init(ctx, quick ? 512 : rows, quick ? 512 : cols, "2x8g8", reps);
    aq_context_free(ctx);
    return 0;
}

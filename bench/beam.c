/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* bench-beam: seconds per full beam-search pass on a 4096 × 4096 layer, and the speed of the
 * pass's two products next to cblas_sgemm of the same shapes, measured in the same run: the
 * candidate scores (states × g_o·g)·(g_o·g × K) (dominant at 1x16) and S = ΔW·H[:, J_batch]
 * (rows × I)·(I × 128) (dominant at 2x8, where I > M·K).
 *
 * Usage: bench-beam [rows cols] [threads]. Synthetic data: W ~ N(0, 1), H = XᵀX/n with
 * correlated columns, random codes and codebooks (the worst case: almost every code moves in
 * the first pass). Passes estimated to take more than ~5 minutes sweep only some input groups;
 * the full pass is then extrapolated from two partial sweeps (t(n) = a + b·n, n input groups)
 * and printed as such. Figures only: nothing is asserted. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "beam/beam_pass.h"
#include "codebook/codebook.h"

#include "bench_util.h"


static uint64_t lcg = 88172645463325252ULL;
static float randn(void)
{
    double u1, u2;
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    u1 = ((double)(lcg >> 11) + 1.0) * 0x1.0p-53;
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    u2 = (double)(lcg >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* H = XᵀX / n + 1e-3·I with X (n × cols) having correlated neighbouring columns. */
static float *synthetic_hessian(int64_t cols)
{
    int64_t n = cols;
    float *X = malloc(sizeof(float) * (size_t)(n * cols));
    float *H = malloc(sizeof(float) * (size_t)(cols * cols));
    if (!X || !H)
        exit(1);
    for (int64_t r = 0; r < n; r++) {
        float prev = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            float z = randn();
            X[r * cols + c] = (z + 0.6f * prev) * (1.0f + (float)(c % 7) * 0.2f);
            prev = z;
        }
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0f / (float)n, X,
                (int)cols, 0.0f, H, (int)cols);
    for (int64_t a = 0; a < cols; a++) {
        H[a * cols + a] += 1e-3f;
        for (int64_t b = 0; b < a; b++)
            H[a * cols + b] = H[b * cols + a];
    }
    free(X);
    return H;
}

/* A quant of format @p fmt_text filled in directly (the layout of quant.h), with random codes
 * and codebooks and unit scales. Free with free_quant(). */
static aq_quant *random_quant(aq_context *ctx, const char *fmt_text, int64_t rows, int64_t cols)
{
    aq_format f;
    aq_quant *q = calloc(1, sizeof *q);
    if (!q || aq_format_parse(&f, fmt_text) || aq_format_check(ctx, &f, rows, cols))
        exit(1);
    q->ctx = ctx;
    q->fmt = f;
    q->rows = rows;
    q->cols = cols;
    q->M = f.num_codebooks;
    q->K = 1 << f.bits_per_codebook;
    q->g = f.in_group_size;
    q->go = f.out_group_size;
    q->n_out_groups = rows / q->go;
    q->n_in_groups = cols / q->g;
    q->codes_bytes = (size_t)(q->n_out_groups * q->n_in_groups * q->M) * (f.bits_per_codebook > 8 ? 2 : 1);
    q->codebooks_count = (size_t)q->M * (size_t)q->K * (size_t)(q->go * q->g);
    q->scales_count = (size_t)q->n_out_groups;
    q->codes = malloc(q->codes_bytes);
    q->codebooks = malloc(q->codebooks_count * sizeof(float));
    q->scales = malloc(q->scales_count * sizeof(float));
    if (!q->codes || !q->codebooks || !q->scales)
        exit(1);
    for (size_t i = 0; i < q->codebooks_count; i++)
        q->codebooks[i] = randn() / sqrtf((float)q->M);
    for (size_t i = 0; i < q->scales_count; i++)
        q->scales[i] = 1.0f;
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t j = 0; j < q->n_in_groups; j++)
            for (int32_t m = 0; m < q->M; m++) {
                lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
                aqi_code_set(q, p, j, m, (uint32_t)((lcg >> 33) % (uint64_t)q->K));
            }
    return q;
}

static void free_quant(aq_quant *q)
{
    free(q->codes);
    free(q->codebooks);
    free(q->scales);
    free(q);
}

/* Seconds of one pass over @p q sweeping n_j input groups (0: all). */
static double time_pass(const aqi_layer *L, aq_quant *q, int width, int64_t n_j, double *before,
                        double *after)
{
    aqi_beam_config cfg = {width, 0, 0, n_j, 0, NULL, NULL, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
    double t0 = now_seconds();
    if (aqi_opt_beam_pass(L, q, &cfg, before, after)) {
        fprintf(stderr, "pass failed: %s\n", aq_context_last_error(L->ctx));
        exit(1);
    }
    return now_seconds() - t0;
}

/* A pass from random codes (almost every code moves: the worst case) and the pass after it. */
static void bench_pass(const aqi_layer *L, const char *fmt, int64_t rows, int64_t cols, int width,
                       double budget_s)
{
    aq_quant *q = random_quant(L->ctx, fmt, rows, cols), work;
    int64_t J = q->n_in_groups;
    double b0 = 0, a0 = 0, a1 = 0, t[5], t2;
    /* probe with a few input groups: t(n) = fixed + n·per_group */
    int64_t n1 = J / 64 > 1 ? J / 64 : 1, n2 = 2 * n1;
    aqi_opt_quant_dup(L->ctx, &work, q);
    double t1 = time_pass(L, &work, width, n1, NULL, NULL);
    aqi_opt_quant_release(L->ctx, &work);
    aqi_opt_quant_dup(L->ctx, &work, q);
    double tt2 = time_pass(L, &work, width, n2, NULL, NULL);
    aqi_opt_quant_release(L->ctx, &work);
    double per_group = (tt2 - t1) / (double)(n2 - n1), fixed = t1 - per_group * (double)n1;
    if (per_group <= 0 || fixed < 0)
        per_group = tt2 / (double)n2, fixed = 0;
    double estimate = fixed + per_group * (double)J;
    if (estimate > budget_s) {
        printf("%-7s width %2d: first pass ~%7.1f s  EXTRAPOLATED from sweeps of %lld and %lld of %lld input "
               "groups (%.2f s, %.2f s)\n", fmt, width, estimate, (long long)n1, (long long)n2, (long long)J,
               t1, tt2);
        free_quant(q);
        return;
    }
    int reps = estimate < 10 ? 3 : 1;
    aqi_opt_loss(L, q, &b0, NULL); /* the losses are computed outside the timed passes */
    for (int r = 0; r < reps; r++) {
        aqi_opt_quant_dup(L->ctx, &work, q);
        t[r] = time_pass(L, &work, width, 0, NULL, NULL);
        if (r + 1 < reps)
            aqi_opt_quant_release(L->ctx, &work);
    }
    aqi_opt_loss(L, &work, &a0, NULL);
    t2 = time_pass(L, &work, width, 0, NULL, NULL);
    aqi_opt_loss(L, &work, &a1, NULL);
    aqi_opt_quant_release(L->ctx, &work);
    printf("%-7s width %2d: first pass %7.2f s (%s of %d), second pass %7.2f s;  L %.4g -> %.4g -> %.4g\n",
           fmt, width, median(t, reps), reps > 1 ? "median" : "1 run", reps, t2, b0, a0, a1);
    free_quant(q);
}

typedef struct score_job {
    const float *U, *CT, *t;
    float *out;
    int32_t D;
    int64_t K;
    const int32_t *a;
    float *lmin, *score_a;
    int32_t *lidx;
} score_job;

/* aqi_score_tile over row blocks on the context's pool. */
static int score_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    score_job *sj = arg;
    const int64_t rb = AQI_SCORE_ROWS;
    (void)worker;
    aqi_score_tile(sj->U + begin * rb * sj->D, sj->D, (end - begin) * rb, sj->D, sj->CT, sj->K, sj->t, sj->K,
                   sj->out + begin * rb * sj->K, sj->K);
    return 0;
}

/* The fused score + lane minima as the width-1 pass runs it: sub-blocks of 64 rows, tiles of
 * AQI_BEAM_K_TILE codewords. */
static int score_min_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    score_job *sj = arg;
    (void)worker;
    for (int64_t sb = begin; sb < end; sb++) {
        float *lmin = sj->lmin + sb * AQI_BEAM_MAX_ROWS * AQI_SCORE_LANES;
        int32_t *lidx = sj->lidx + sb * AQI_BEAM_MAX_ROWS * AQI_SCORE_LANES;
        for (int i = 0; i < AQI_BEAM_MAX_ROWS * AQI_SCORE_LANES; i++) {
            lmin[i] = INFINITY;
            lidx[i] = -1;
        }
        for (int64_t k0 = 0; k0 < sj->K; k0 += AQI_BEAM_K_TILE) {
            int64_t kt = sj->K - k0 < AQI_BEAM_K_TILE ? sj->K - k0 : AQI_BEAM_K_TILE;
            aqi_score_min_tile(sj->U + sb * AQI_BEAM_MAX_ROWS * sj->D, sj->D, AQI_BEAM_MAX_ROWS, sj->D, sj->CT + k0,
                               sj->K, sj->t + k0, kt, (int32_t)k0, sj->a, lmin, lidx,
                               sj->score_a + sb * AQI_BEAM_MAX_ROWS);
        }
    }
    return 0;
}

/* GFLOP/s of scores (rows × D)·(D × K) + t: aqi_score_tile, the fused score + argmin of the
 * width-1 pass, and cblas_sgemm, all on every thread. */
static void bench_scoring(aq_context *ctx, int64_t rows, int32_t D, int64_t K, int reps)
{
    float *U = malloc(sizeof(float) * (size_t)(rows * D)), *CT = malloc(sizeof(float) * (size_t)(D * K));
    float *B = malloc(sizeof(float) * (size_t)(D * K)), *t = malloc(sizeof(float) * (size_t)K);
    float *out = malloc(sizeof(float) * (size_t)(rows * K));
    float *lmin = malloc(sizeof(float) * (size_t)(rows * AQI_SCORE_LANES)), *score_a = malloc(sizeof(float) * (size_t)rows);
    int32_t *lidx = malloc(sizeof(int32_t) * (size_t)(rows * AQI_SCORE_LANES)), a[AQI_BEAM_MAX_ROWS];
    double tk[16], ts[16], tt[16], flops = 2.0 * (double)rows * D * (double)K;
    volatile float sink = 0;
    if (!U || !CT || !B || !t || !out || !lmin || !score_a || !lidx || rows % AQI_BEAM_MAX_ROWS)
        exit(1);
    for (int64_t i = 0; i < rows * D; i++)
        U[i] = randn();
    for (int64_t i = 0; i < D * K; i++)
        B[i] = CT[i] = randn();
    for (int64_t i = 0; i < K; i++)
        t[i] = randn();
    for (int i = 0; i < AQI_BEAM_MAX_ROWS; i++)
        a[i] = i;
    for (int r = 0; r < reps; r++) {
        score_job sj = {U, CT, t, out, D, K, a, lmin, score_a, lidx};
        double t0 = now_seconds();
        aqi_parallel_for(ctx, rows / AQI_SCORE_ROWS, score_rows, &sj);
        tk[r] = now_seconds() - t0;
        sink += out[r];
        t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)K, D, 1.0f, U, D, B,
                    (int)K, 0.0f, out, (int)K);
        ts[r] = now_seconds() - t0;
        sink += out[r];
        t0 = now_seconds();
        aqi_parallel_for(ctx, rows / AQI_BEAM_MAX_ROWS, score_min_rows, &sj);
        tt[r] = now_seconds() - t0;
        sink += lmin[0];
    }
    double mk = median(tk, reps), ms = median(ts, reps), mt = median(tt, reps);
    printf("scores (%lld x %d)·(%d x %lld): aqi_score_tile %6.1f GFLOP/s, fused score+argmin %6.1f GFLOP/s, "
           "cblas_sgemm %6.1f GFLOP/s; ratios %.2f, %.2f [median of %d]\n",
           (long long)rows, D, D, (long long)K, flops / mk * 1e-9, flops / mt * 1e-9, flops / ms * 1e-9, ms / mk,
           ms / mt, reps);
    (void)sink;
    free(U);
    free(CT);
    free(B);
    free(t);
    free(out);
    free(lmin);
    free(score_a);
    free(lidx);
}

typedef struct product_job { const float *A, *B; float *C; int64_t kdim, nc; } product_job;

/* aqi_product_rows over blocks of 64 rows, as the pass's sub-blocks. */
static int product_blocks(void *arg, int64_t begin, int64_t end, int worker)
{
    product_job *pj = arg;
    (void)worker;
    for (int64_t b = begin; b < end; b++)
        aqi_product_rows(pj->A + b * 64 * pj->kdim, pj->kdim, 64, pj->kdim, pj->B, pj->nc, pj->nc,
                         pj->C + b * 64 * pj->nc, pj->nc);
    return 0;
}

/* GFLOP/s of S = ΔW·H[:, J_batch], (rows × kdim)·(kdim × nc): aqi_product_rows vs cblas_sgemm. */
static void bench_products(aq_context *ctx, int64_t rows, int64_t kdim, int64_t nc, int reps)
{
    float *A = malloc(sizeof(float) * (size_t)(rows * kdim)), *B = malloc(sizeof(float) * (size_t)(kdim * nc));
    float *C = malloc(sizeof(float) * (size_t)(rows * nc));
    double tp[16], ts[16], flops = 2.0 * (double)rows * (double)kdim * (double)nc;
    volatile float sink = 0;
    if (!A || !B || !C || rows % 64)
        exit(1);
    for (int64_t i = 0; i < rows * kdim; i++)
        A[i] = randn();
    for (int64_t i = 0; i < kdim * nc; i++)
        B[i] = randn();
    for (int r = 0; r < reps; r++) {
        product_job pj = {A, B, C, kdim, nc};
        double t0 = now_seconds();
        aqi_parallel_for(ctx, rows / 64, product_blocks, &pj);
        tp[r] = now_seconds() - t0;
        sink += C[r];
        t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)nc, (int)kdim, 1.0f, A, (int)kdim,
                    B, (int)nc, 0.0f, C, (int)nc);
        ts[r] = now_seconds() - t0;
        sink += C[r];
    }
    double mp = median(tp, reps), ms = median(ts, reps);
    printf("products (%lld x %lld)·(%lld x %lld): aqi_product_rows %6.1f GFLOP/s, cblas_sgemm %6.1f GFLOP/s, "
           "ratio %.2f [median of %d]\n", (long long)rows, (long long)kdim, (long long)kdim, (long long)nc,
           flops / mp * 1e-9, flops / ms * 1e-9, ms / mp, reps);
    (void)sink;
    free(A);
    free(B);
    free(C);
}

/* One exact codebook update (normal equations) and one closed-form scale update. */
static void bench_codebooks(const aqi_layer *L, const char *fmt, int64_t rows, int64_t cols)
{
    aq_quant *q = random_quant(L->ctx, fmt, rows, cols);
    double l0, l1, l2;
    aqi_opt_loss(L, q, &l0, NULL);
    double t0 = now_seconds();
    if (aqi_opt_codebooks_exact(L, q))
        exit(1);
    double te = now_seconds() - t0;
    aqi_opt_loss(L, q, &l1, NULL);
    t0 = now_seconds();
    if (aqi_opt_scales(L, q))
        exit(1);
    double ts = now_seconds() - t0;
    aqi_opt_loss(L, q, &l2, NULL);
    printf("%-7s exact codebook update %6.2f s, scale update %5.2f s;  L %.4g -> %.4g -> %.4g\n", fmt, te,
           ts, l0, l1, l2);
    free_quant(q);
}

int main(int argc, char **argv)
{
    int64_t rows = argc > 2 ? atoll(argv[1]) : 4096, cols = argc > 2 ? atoll(argv[2]) : 4096;
    int threads = argc > 3 ? atoi(argv[3]) : (argc == 2 ? atoi(argv[1]) : 0);
    double budget = 300.0;
    aq_context *ctx = NULL;
    if (aq_context_create(&ctx) || aq_context_set_threads(ctx, threads))
        return 1;
    printf("bench-beam: %lld x %lld, %d threads (pool), kernels level %d (2 AVX-512, 1 AVX2, 0 baseline), "
           "synthetic SPD H, random codes/codebooks\n", (long long)rows, (long long)cols,
           (int)aq_context_get_threads(ctx), aqi_kernel_level(-1));

    bench_scoring(ctx, 4096, 8, 256, 15);
    bench_scoring(ctx, 256, 8, 65536, 9);
    bench_products(ctx, rows, cols, 128, 9);

    float *H = synthetic_hessian(cols);
    float *W = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!W)
        return 1;
    for (int64_t i = 0; i < rows * cols; i++)
        W[i] = randn();
    aqi_layer L = {ctx, W, cols, H};
    bench_pass(&L, "2x8g8", rows, cols, 1, budget);
    bench_pass(&L, "2x8g8", rows, cols, 8, budget);
    bench_pass(&L, "1x16g8", rows, cols, 1, budget);
    bench_codebooks(&L, "2x8g8", rows, cols);
    free(W);
    free(H);
    aq_context_free(ctx);
    return 0;
}

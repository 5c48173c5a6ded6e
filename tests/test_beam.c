/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Layer optimisation: beam search, codebook and scale updates, the optimiser.
 * Every result is compared with a naive implementation written here (long double, full
 * re-dequantisation per evaluation: slow but obviously right). */
#include <string.h>

#include "beam/beam.h"
#include "beam/beam_kernels.h"
#include "codebook/codebook.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* Fixture: W, a random non-diagonal SPD H (double for the handle, float as the library sees
 * it), a quant with random codebooks, codes and scales. */

typedef struct problem {
    aq_context *ctx;
    int64_t rows, cols;
    float *W;
    double *Hd;
    float *Hf;
    aq_hessian *H;
    aq_quant *q;
} problem;

static void make_spd(double *H, int64_t n, uint64_t seed)
{
    /* H = XᵀX/t with correlated columns: X = Z·T, T upper bidiagonal */
    int64_t t = 3 * n;
    double *X = malloc(sizeof(double) * (size_t)(t * n));
    ck_assert_ptr_nonnull(X);
    for (int64_t r = 0; r < t; r++) {
        double prev = 0.0;
        for (int64_t c = 0; c < n; c++) {
            double z = tu_normal(&seed);
            X[r * n + c] = z + 0.6 * prev;
            prev = z;
        }
    }
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) {
            double s = 0.0;
            for (int64_t r = 0; r < t; r++)
                s += X[r * n + a] * X[r * n + b];
            H[a * n + b] = s / (double)t;
        }
    free(X);
}

static void randomize_quant(aq_quant *q, uint64_t seed)
{
    size_t nc, nb, ns;
    void *codes = aq_quant_codes(q, &nb);
    float *cb = aq_quant_codebooks(q, &nc);
    float *sc = aq_quant_scales(q, &ns);
    for (size_t i = 0; i < nc; i++)
        cb[i] = (float)(0.5 * tu_normal(&seed));
    for (size_t i = 0; i < ns; i++)
        sc[i] = q->fmt.scale_mode == AQ_SCALE_NONE ? 1.0f : (float)(0.5 + tu_uniform(&seed));
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t j = 0; j < q->n_in_groups; j++)
            for (int32_t m = 0; m < q->M; m++)
                aqi_code_set(q, p, j, m, (uint32_t)(tu_uniform(&seed) * q->K) % (uint32_t)q->K);
    (void)codes;
}

static problem make_problem(const char *fmt_text, int64_t rows, int64_t cols, uint64_t seed,
                            int threads)
{
    problem pb;
    aq_format f;
    memset(&pb, 0, sizeof pb);
    pb.ctx = tu_context(threads, 1234);
    pb.rows = rows;
    pb.cols = cols;
    pb.W = tu_random_matrix(rows, cols, seed);
    pb.Hd = malloc(sizeof(double) * (size_t)(cols * cols));
    pb.Hf = malloc(sizeof(float) * (size_t)(cols * cols));
    ck_assert_ptr_nonnull(pb.Hd);
    ck_assert_ptr_nonnull(pb.Hf);
    make_spd(pb.Hd, cols, seed + 1);
    for (int64_t i = 0; i < cols * cols; i++)
        pb.Hf[i] = (float)pb.Hd[i];
    ck_assert_int_eq(aq_hessian_create_from_matrix(&pb.H, pb.ctx, pb.Hd, cols, cols, 100), AQ_OK);
    ck_assert_int_eq(aq_format_parse(&f, fmt_text), AQ_OK);
    ck_assert_int_eq(aq_quant_create(&pb.q, pb.ctx, &f, rows, cols), AQ_OK);
    randomize_quant(pb.q, seed + 2);
    return pb;
}

static void free_problem(problem *pb)
{
    aq_quant_free(pb->q);
    aq_hessian_free(pb->H);
    aq_context_free(pb->ctx);
    free(pb->W);
    free(pb->Hd);
    free(pb->Hf);
}

static aqi_layer layer_of(const problem *pb)
{
    aqi_layer L = {pb->ctx, pb->W, pb->cols, pb->Hf};
    return L;
}

/* ------------------------------------------------------------------------------------------ */
/* Naive references */

/* Ŵ row r (long double), straight from the definition s_p Σ_m C_m[b]. */
static void naive_row(const aq_quant *q, int64_t r, long double *out)
{
    int64_t p = r / q->go, i = r % q->go;
    for (int64_t j = 0; j < q->n_in_groups; j++)
        for (int32_t d = 0; d < q->g; d++) {
            long double v = 0.0L;
            for (int32_t m = 0; m < q->M; m++)
                v += aqi_codeword(q, m, aqi_code_get(q, p, j, m))[i * q->g + d];
            out[j * q->g + d] = (long double)q->scales[p] * v;
        }
}

/* Σ over the rows of group p of (w − ŵ) H (w − ŵ)ᵀ, with H the float matrix the library uses. */
static long double naive_group_loss(const problem *pb, const aq_quant *q, int64_t p)
{
    int64_t n = pb->cols;
    long double *row = malloc(sizeof(long double) * (size_t)n), L = 0.0L;
    ck_assert_ptr_nonnull(row);
    for (int64_t r = p * q->go; r < (p + 1) * q->go; r++) {
        naive_row(q, r, row);
        for (int64_t c = 0; c < n; c++)
            row[c] = (long double)pb->W[r * n + c] - row[c];
        for (int64_t a = 0; a < n; a++) {
            long double s = 0.0L;
            for (int64_t b = 0; b < n; b++)
                s += (long double)pb->Hf[a * n + b] * row[b];
            L += row[a] * s;
        }
    }
    free(row);
    return L;
}

static long double naive_loss(const problem *pb, const aq_quant *q)
{
    long double L = 0.0L;
    for (int64_t p = 0; p < q->n_out_groups; p++)
        L += naive_group_loss(pb, q, p);
    return L;
}

/* Coordinate descent, natural order: every code moves to the strictly best candidate. */
static void naive_coordinate_descent(const problem *pb, aq_quant *q)
{
    for (int64_t j = 0; j < q->n_in_groups; j++)
        for (int32_t m = 0; m < q->M; m++)
            for (int64_t p = 0; p < q->n_out_groups; p++) {
                uint32_t a = aqi_code_get(q, p, j, m), best_k = a;
                long double best = naive_group_loss(pb, q, p);
                for (uint32_t k = 0; k < (uint32_t)q->K; k++) {
                    if (k == a)
                        continue;
                    aqi_code_set(q, p, j, m, k);
                    long double L = naive_group_loss(pb, q, p);
                    if (L < best) {
                        best = L;
                        best_k = k;
                    }
                }
                aqi_code_set(q, p, j, m, best_k);
            }
}

/* Snapshot of a quant's arrays, to check "unchanged". */
typedef struct snapshot { void *codes; float *cb, *sc; size_t nb, nc, ns; } snapshot;

static snapshot take_snapshot(aq_quant *q)
{
    snapshot s;
    void *codes = aq_quant_codes(q, &s.nb);
    float *cb = aq_quant_codebooks(q, &s.nc), *sc = aq_quant_scales(q, &s.ns);
    s.codes = malloc(s.nb);
    s.cb = malloc(s.nc * sizeof(float));
    s.sc = malloc(s.ns * sizeof(float));
    memcpy(s.codes, codes, s.nb);
    memcpy(s.cb, cb, s.nc * sizeof(float));
    memcpy(s.sc, sc, s.ns * sizeof(float));
    return s;
}

static int snapshot_equal(const snapshot *s, aq_quant *q)
{
    size_t nb, nc, ns;
    void *codes = aq_quant_codes(q, &nb);
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    return nb == s->nb && nc == s->nc && ns == s->ns && !memcmp(codes, s->codes, nb)
           && !memcmp(cb, s->cb, nc * sizeof(float)) && !memcmp(sc, s->sc, ns * sizeof(float));
}

static void free_snapshot(snapshot *s)
{
    free(s->codes);
    free(s->cb);
    free(s->sc);
}

static aq_options *options_with(aq_context *ctx, int32_t key1, int64_t v1, int32_t key2, int64_t v2)
{
    aq_options *o;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    if (key1)
        ck_assert_int_eq(aq_options_set_int(o, key1, v1), AQ_OK);
    if (key2)
        ck_assert_int_eq(aq_options_set_int(o, key2, v2), AQ_OK);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

START_TEST(score_tile_matches_naive)
{
    uint64_t seed = 5;
    const int32_t D = 6;
    const int64_t rows = 8, kt = 48, ldct = 64, ldo = 50;
    float U[8 * 6], CT[6 * 64], t[64], out[8 * 50];
    for (int i = 0; i < 8 * 6; i++)
        U[i] = (float)tu_normal(&seed);
    for (int i = 0; i < 6 * 64; i++)
        CT[i] = (float)tu_normal(&seed);
    for (int i = 0; i < 64; i++)
        t[i] = (float)tu_normal(&seed);
    aqi_score_tile(U, D, rows, D, CT, ldct, t, kt, out, ldo);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < kt; k++) {
            double s = t[k];
            for (int d = 0; d < D; d++)
                s += (double)U[r * D + d] * CT[d * ldct + k];
            ck_assert_double_eq_tol(out[r * ldo + k], s, 1e-5 * (1 + fabs(s)));
        }
}
END_TEST

START_TEST(rank_g_update_matches_naive)
{
    uint64_t seed = 6;
    const int32_t g = 3;
    const int64_t n = 5, cols = 150, ldh = 160;
    float *Hrows = malloc(sizeof(float) * g * ldh), *G = malloc(sizeof(float) * n * cols);
    float *ref = malloc(sizeof(float) * n * cols), coef[5 * 3];
    float *Gp[5];
    const float *cp[5];
    for (int64_t i = 0; i < g * ldh; i++)
        Hrows[i] = (float)tu_normal(&seed);
    for (int64_t i = 0; i < n * cols; i++)
        ref[i] = G[i] = (float)tu_normal(&seed);
    for (int i = 0; i < 15; i++)
        coef[i] = (float)tu_normal(&seed);
    for (int r = 0; r < 5; r++) {
        Gp[r] = G + r * cols;
        cp[r] = coef + r * g;
    }
    aqi_rank_g_update(Gp, cp, n, g, Hrows, ldh, cols);
    for (int64_t r = 0; r < n; r++)
        for (int64_t x = 0; x < cols; x++) {
            double v = ref[r * cols + x];
            for (int d = 0; d < g; d++)
                v += (double)coef[r * g + d] * Hrows[d * ldh + x];
            ck_assert_double_eq_tol(G[r * cols + x], v, 1e-5 * (1 + fabs(v)));
        }
    free(Hrows);
    free(G);
    free(ref);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Beam search */

/* The ΔL of every candidate, from the incremental G, equals a full recomputation. */
typedef struct trace_check { const problem *pb; aq_quant *q; long n_calls; double worst; } trace_check;

static void check_trace(void *ud, int64_t p, int32_t j, int32_t m, const uint16_t *codes,
                        const double *dl)
{
    trace_check *tc = ud;
    aq_quant *q = tc->q;
    /* the library's working copy is not q: rebuild the group's codes from the trace */
    uint32_t saved[64 * 4];
    for (int64_t jj = 0; jj < q->n_in_groups; jj++)
        for (int32_t mm = 0; mm < q->M; mm++) {
            saved[jj * q->M + mm] = aqi_code_get(q, p, jj, mm);
            aqi_code_set(q, p, jj, mm, codes[jj * q->M + mm]);
        }
    long double base = naive_group_loss(tc->pb, q, p);
    for (uint32_t k = 0; k < (uint32_t)q->K; k++) {
        aqi_code_set(q, p, j, m, k);
        long double want = naive_group_loss(tc->pb, q, p) - base;
        double err = fabs((double)(want - (long double)dl[k]));
        double rel = err / (fabs((double)want) + 1e-3 * (double)base);
        if (rel > tc->worst)
            tc->worst = rel;
    }
    for (int64_t jj = 0; jj < q->n_in_groups; jj++)
        for (int32_t mm = 0; mm < q->M; mm++)
            aqi_code_set(q, p, jj, mm, saved[jj * q->M + mm]);
    tc->n_calls++;
}

/* Every kernel variant the CPU runs (AVX-512, AVX2, baseline) gives the same bits, kernel by
 * kernel and for whole passes (fused width-1 scan, wider beams, traced scores). */
typedef struct pass_result { void *codes; size_t nbytes; double after; } pass_result;

static pass_result pass_at_level(int level, const char *fmt, int width, int trace)
{
    problem pb = make_problem(fmt, 8, 48, 1800, trace ? 1 : 2); /* the trace callback is not thread-safe */
    aqi_layer L = layer_of(&pb);
    trace_check tc = {&pb, NULL, 0, 0.0};
    aq_quant *shadow = NULL;
    ck_assert_int_eq(aq_quant_clone(&shadow, pb.q), AQ_OK);
    tc.q = shadow;
    aqi_beam_config cfg = {width, 1, 4, 0, 0, trace ? check_trace : NULL, &tc, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
    pass_result res;
    double before;
    aqi_kernel_level(level);
    ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, &before, &res.after), AQ_OK);
    aqi_kernel_level(99);
    res.nbytes = pb.q->codes_bytes;
    res.codes = malloc(pb.q->codes_bytes);
    memcpy(res.codes, pb.q->codes, pb.q->codes_bytes);
    aq_quant_free(shadow);
    free_problem(&pb);
    return res;
}

START_TEST(kernel_variants_give_the_same_bits)
{
    int best = aqi_kernel_level(-1);
    uint64_t seed = 9;
    enum { ROWS = 16, D = 12, K = 96, N = 40, KD = 300 };
    static float U[ROWS * D], CT[D * K], t[K], out[3][ROWS * K], lmin[3][ROWS * 16], score_a[3][ROWS];
    static float G[3][5 * N], Hr[12 * N], coef[5 * 12], A[7 * KD], B[KD * 32], C[3][7 * 32];
    static int32_t lidx[3][ROWS * 16], a[ROWS], idx[3][K], n_idx[3];
    static float tab[3][K], bounds[3][17];
    for (int i = 0; i < ROWS * D; i++)
        U[i] = (float)tu_normal(&seed);
    for (int i = 0; i < D * K; i++)
        CT[i] = (float)tu_normal(&seed);
    for (int i = 0; i < K; i++)
        t[i] = (float)tu_normal(&seed);
    for (int i = 0; i < ROWS; i++)
        a[i] = (i * 37) % K;
    for (int i = 0; i < 12 * N; i++)
        Hr[i] = (float)tu_normal(&seed);
    for (int i = 0; i < 5 * 12; i++)
        coef[i] = (float)tu_normal(&seed);
    for (int i = 0; i < 7 * KD; i++)
        A[i] = (float)tu_normal(&seed);
    for (int i = 0; i < KD * 32; i++)
        B[i] = (float)tu_normal(&seed);
    for (int level = 0; level <= best; level++) {
        ck_assert_int_eq(aqi_kernel_level(level), level);
        aqi_score_tile(U, D, ROWS, D, CT, K, t, K, out[level], K);
        for (int i = 0; i < ROWS * 16; i++) {
            lmin[level][i] = INFINITY;
            lidx[level][i] = -1;
        }
        aqi_score_min_tile(U, D, ROWS, D, CT, K, t, 48, 0, a, lmin[level], lidx[level], score_a[level]);
        aqi_score_min_tile(U, D, ROWS, D, CT + 48, K, t + 48, 48, 48, a, lmin[level], lidx[level], score_a[level]);
        n_idx[level] = aqi_filter_tile(out[level], K, out[level][5], idx[level]);
        for (int w = 1; w <= 16; w += 5)
            bounds[level][w] = aqi_kth_bound_tile(out[level] + K, K, w);
        float *Gp[5];
        const float *cp[5];
        for (int r = 0; r < 5; r++) {
            for (int x = 0; x < N; x++)
                G[level][r * N + x] = (float)(r + x);
            Gp[r] = G[level] + r * N;
            cp[r] = coef + r * 12;
        }
        aqi_rank_g_update(Gp, cp, 5, 12, Hr, N, N);
        aqi_product_rows(A, KD, 7, KD, B, 32, 32, C[level], 32);
        aqi_table_tile(CT, K, 3, 4, coef, 5, K, tab[level]); /* 3 tile rows of g = 4, H 4 × 4 (ld 5) */
        if (level > 0) {
            ck_assert(!memcmp(tab[level], tab[0], sizeof tab[0]));
            ck_assert(!memcmp(out[level], out[0], sizeof out[0]));
            ck_assert(!memcmp(lmin[level], lmin[0], sizeof lmin[0]));
            ck_assert(!memcmp(lidx[level], lidx[0], sizeof lidx[0]));
            ck_assert(!memcmp(score_a[level], score_a[0], sizeof score_a[0]));
            ck_assert_int_eq(n_idx[level], n_idx[0]);
            ck_assert(!memcmp(bounds[level], bounds[0], sizeof bounds[0]));
            ck_assert(!memcmp(idx[level], idx[0], sizeof(int32_t) * (size_t)n_idx[0]));
            ck_assert(!memcmp(G[level], G[0], sizeof G[0]));
            ck_assert(!memcmp(C[level], C[0], sizeof C[0]));
        }
    }
    /* the bound is at least the w-th smallest score and the filter keeps exactly those <= bound */
    for (int w = 1; w <= 16; w += 5) {
        int below = 0;
        for (int k = 0; k < K; k++)
            below += out[0][K + k] <= bounds[0][w];
        ck_assert_int_ge(below, w);
    }
    for (int i = 0, c = 0; i < K; i++)
        if (out[0][i] <= out[0][5])
            ck_assert_int_eq(idx[0][c++], i);
    /* the table: Σ_r c_rᵀ H c_r with H = coef (4 × 4, ld 5), c_r[e] = CT[r·4 + e][k] */
    for (int k = 0; k < K; k++) {
        double want = 0.0;
        for (int r = 0; r < 3; r++)
            for (int d = 0; d < 4; d++)
                for (int e = 0; e < 4; e++)
                    want += (double)CT[(r * 4 + d) * K + k] * coef[d * 5 + e] * CT[(r * 4 + e) * K + k];
        ck_assert_double_eq_tol(tab[0][k], want, 1e-4 * (1 + fabs(want)));
    }
    /* the min tile equals the score tile */
    for (int r = 0; r < ROWS; r++) {
        ck_assert(score_a[0][r] == out[0][r * K + a[r]]);
        for (int l = 0; l < 16; l++) {
            float m = INFINITY;
            for (int k = l; k < K; k += 16)
                m = out[0][r * K + k] < m ? out[0][r * K + k] : m;
            ck_assert(lmin[0][r * 16 + l] == m);
        }
    }
    aqi_kernel_level(99);
    ck_assert_int_eq(aqi_kernel_level(-1), best);
    const char *fmts[] = {"2x3g4", "1x5g3o2"};
    for (int f = 0; f < 2; f++)
        for (int cfgi = 0; cfgi < 3; cfgi++) {
            const int widths[] = {1, 3, 1}, traces[] = {0, 0, 1};
            pass_result r0 = pass_at_level(0, fmts[f], widths[cfgi], traces[cfgi]);
            for (int level = 1; level <= best; level++) {
                pass_result rl = pass_at_level(level, fmts[f], widths[cfgi], traces[cfgi]);
                ck_assert_msg(rl.after == r0.after, "%s level %d: %.17g vs %.17g", fmts[f], level, rl.after,
                              r0.after);
                ck_assert(rl.nbytes == r0.nbytes && !memcmp(rl.codes, r0.codes, r0.nbytes));
                free(rl.codes);
            }
            free(r0.codes);
        }
}
END_TEST

START_TEST(incremental_scores_match_recomputation)
{
    const char *fmts[] = {"2x3g4", "1x4g2o2", "3x2g3"};
    for (int f = 0; f < 3; f++) {
        problem pb = make_problem(fmts[f], 6, 24, 100 + f, 1);
        aqi_layer L = layer_of(&pb);
        /* window 0: automatic (whole sweep); 1 and 2: input groups split across windows */
        for (int pass = 0; pass < 3; pass++) {
            trace_check tc = {&pb, NULL, 0, 0.0};
            aq_quant *shadow = NULL;
            ck_assert_int_eq(aq_quant_clone(&shadow, pb.q), AQ_OK);
            tc.q = shadow; /* codebooks and scales as in pb.q; codes rebuilt from the trace */
            aqi_beam_config cfg = {1, pass % 2, 7, 0, pass, check_trace, &tc, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
            double before, after;
            ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, &before, &after), AQ_OK);
            ck_assert_int_eq(tc.n_calls, pb.q->n_out_groups * pb.q->n_in_groups * pb.q->M);
            ck_assert_msg(tc.worst < 1e-4, "format %s: worst relative ΔL error %g", fmts[f], tc.worst);
            /* tracked losses match the truth */
            ck_assert_double_eq_tol(before, (double)naive_loss(&pb, shadow), 1e-5 * before);
            ck_assert_double_eq_tol(after, (double)naive_loss(&pb, pb.q), 1e-4 * before);
            aq_quant_free(shadow);
        }
        free_problem(&pb);
    }
}
END_TEST

/* Wider beams: copies of states, deferred updates and window splits keep the tracked loss of
 * the chosen states equal to the truth. */
START_TEST(tracked_loss_of_beam_states_is_exact)
{
    const char *fmts[] = {"2x3g4", "1x4g2o2", "3x2g3"};
    const int widths[] = {2, 3, 8, 64};
    for (int f = 0; f < 3; f++)
        for (int w = 0; w < 4; w++)
            for (int window = 0; window < 3; window++) {
                problem pb = make_problem(fmts[f], 6, 24, 150 + f, 2);
                aqi_layer L = layer_of(&pb);
                aqi_beam_config cfg = {widths[w], 1, 3, 0, window, NULL, NULL, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
                double before, after;
                long double truth_before = naive_loss(&pb, pb.q);
                ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, &before, &after), AQ_OK);
                long double truth_after = naive_loss(&pb, pb.q);
                ck_assert_double_eq_tol(before, (double)truth_before, 1e-5 * before);
                ck_assert_msg(fabsl(after - truth_after) < 1e-4L * truth_before,
                              "%s width %d window %d: tracked %g, true %Lg", fmts[f], widths[w], window,
                              after, truth_after);
                ck_assert(truth_after <= truth_before * (1 + 1e-7L));
                free_problem(&pb);
            }
}
END_TEST

/* Width 1 is coordinate descent: the same codes as the naive one, and L never increases. */
START_TEST(width1_equals_naive_coordinate_descent)
{
    const char *fmts[] = {"2x4g4", "1x3g2o2", "3x2g2", "1x11g4", "2x2g8o1"};
    const int64_t rows[] = {8, 8, 6, 4, 4}, cols[] = {32, 16, 12, 8, 16};
    for (int f = 0; f < 5; f++) {
        problem pb = make_problem(fmts[f], rows[f], cols[f], 200 + f, f % 2 + 1);
        aq_quant *ref = NULL;
        ck_assert_int_eq(aq_quant_clone(&ref, pb.q), AQ_OK);
        for (int pass = 0; pass < 2; pass++) {
            long double before = naive_loss(&pb, pb.q);
            ck_assert_int_eq(aq_beam_search(pb.ctx, pb.q, pb.W, pb.cols, pb.H, NULL), AQ_OK);
            naive_coordinate_descent(&pb, ref);
            ck_assert_msg(!memcmp(pb.q->codes, ref->codes, pb.q->codes_bytes),
                          "format %s pass %d: codes differ from naive coordinate descent", fmts[f], pass);
            long double after = naive_loss(&pb, pb.q);
            ck_assert_msg(after <= before * (1 + 1e-9L), "L increased: %Lg -> %Lg", before, after);
        }
        aq_quant_free(ref);
        free_problem(&pb);
    }
}
END_TEST

/* With K^(M·J) <= 64·K the beam keeps every prefix, so width 64 finds the optimum of each row. */
static void brute_force_group(const problem *pb, aq_quant *q, int64_t p, long double *best,
                              uint32_t *best_codes)
{
    int64_t n_codes = q->n_in_groups * q->M, total = 1;
    for (int64_t i = 0; i < n_codes; i++)
        total *= q->K;
    *best = INFINITY;
    for (int64_t a = 0; a < total; a++) {
        int64_t x = a;
        for (int64_t i = 0; i < n_codes; i++, x /= q->K)
            aqi_code_set(q, p, i / q->M, (int32_t)(i % q->M), (uint32_t)(x % q->K));
        long double L = naive_group_loss(pb, q, p);
        if (L < *best) {
            *best = L;
            for (int64_t i = 0; i < n_codes; i++)
                best_codes[i] = aqi_code_get(q, p, i / q->M, (int32_t)(i % q->M));
        }
    }
}

START_TEST(wide_beam_reaches_brute_force_optimum)
{
    const char *fmts[] = {"2x2g3", "1x2g2o2", "2x2g2"};
    const int64_t rows[] = {6, 6, 5}, cols[] = {6, 8, 4};
    for (int f = 0; f < 3; f++) {
        problem pb = make_problem(fmts[f], rows[f], cols[f], 300 + f, 2);
        aq_options *o = options_with(pb.ctx, AQ_OPT_BEAM_WIDTH, 64, 0, 0);
        aq_quant *bf = NULL;
        ck_assert_int_eq(aq_quant_clone(&bf, pb.q), AQ_OK);
        ck_assert_int_eq(aq_beam_search(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
        for (int64_t p = 0; p < pb.q->n_out_groups; p++) {
            long double best;
            uint32_t codes[16];
            brute_force_group(&pb, bf, p, &best, codes);
            long double got = naive_group_loss(&pb, pb.q, p);
            ck_assert_msg(got <= best * (1 + 1e-6L) + 1e-12L, "format %s group %lld: beam %Lg, optimum %Lg",
                          fmts[f], (long long)p, got, best);
            for (int64_t i = 0; i < pb.q->n_in_groups * pb.q->M; i++)
                ck_assert_uint_eq(aqi_code_get(pb.q, p, i / pb.q->M, (int32_t)(i % pb.q->M)), codes[i]);
        }
        aq_quant_free(bf);
        aq_options_free(o);
        free_problem(&pb);
    }
}
END_TEST

START_TEST(beam_never_increases_loss)
{
    const char *fmts[] = {"2x4g4", "1x5g2o2", "3x3g4"};
    const int widths[] = {1, 2, 5, 16, 64};
    for (int f = 0; f < 3; f++)
        for (int w = 0; w < 5; w++)
            for (int ro = 0; ro < 2; ro++) {
                problem pb = make_problem(fmts[f], 8, 16, 400 + 10 * f + w, 2);
                aq_options *o = options_with(pb.ctx, AQ_OPT_BEAM_WIDTH, widths[w], AQ_OPT_BEAM_RANDOM_ORDER, ro);
                long double before = naive_loss(&pb, pb.q);
                for (int pass = 0; pass < 2; pass++) {
                    ck_assert_int_eq(aq_beam_search(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
                    long double after = naive_loss(&pb, pb.q);
                    ck_assert_msg(after <= before * (1 + 1e-7L), "%s width %d: %Lg -> %Lg", fmts[f],
                                  widths[w], before, after);
                    before = after;
                }
                aq_options_free(o);
                free_problem(&pb);
            }
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Exact nearest-neighbour queries (beam_nn.c) against the scan of all K */

/* LLM-like statistics on a problem: heavy-tailed W (Student t, 3 degrees of freedom), a Hessian
 * with every 8th input channel an outlier (×6) and, if asked, a dead channel (row and column 0)
 * and a nearly dependent one; codebooks drawn from tiles of W (so the queries land inside the
 * codeword cloud, as with fitted codebooks) and codes drawn at random. */
static void make_llm_like(problem *pb, uint64_t seed, int degenerate)
{
    aq_quant *q = pb->q;
    const int64_t n = pb->cols;
    for (int64_t i = 0; i < pb->rows * n; i++) {
        double z = tu_normal(&seed), c = 0.0;
        for (int v = 0; v < 3; v++) {
            double x = tu_normal(&seed);
            c += x * x;
        }
        pb->W[i] = (float)(z / sqrt(c / 3.0));
    }
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++)
            pb->Hd[a * n + b] *= (a % 8 == 3 ? 6.0 : 1.0) * (b % 8 == 3 ? 6.0 : 1.0);
    if (degenerate) {
        for (int64_t a = 0; a < n; a++)
            pb->Hd[a * n + 1] = pb->Hd[1 * n + a] = 0.0; /* input 1 never active */
        for (int64_t a = 0; a < n; a++) /* input 9 almost equal to input 8: cond(H_jj) ~ 1e12 */
            pb->Hd[a * n + 9] = pb->Hd[9 * n + a] = pb->Hd[a * n + 8];
        pb->Hd[9 * n + 9] = pb->Hd[8 * n + 8] * (1 + 1e-12);
    }
    for (int64_t i = 0; i < n * n; i++)
        pb->Hf[i] = (float)pb->Hd[i];
    aq_hessian_free(pb->H);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&pb->H, pb->ctx, pb->Hd, n, n, 100), AQ_OK);
    for (int32_t m = 0; m < q->M; m++)
        for (int64_t k = 0; k < q->K; k++) {
            int64_t p = (int64_t)(tu_uniform(&seed) * (double)q->n_out_groups) % q->n_out_groups;
            int64_t j = (int64_t)(tu_uniform(&seed) * (double)q->n_in_groups) % q->n_in_groups;
            float *c = q->codebooks + ((size_t)m * (size_t)q->K + (size_t)k) * (size_t)(q->go * q->g);
            for (int32_t r = 0; r < q->go; r++)
                for (int32_t d = 0; d < q->g; d++)
                    c[r * q->g + d] = (float)((pb->W[(p * q->go + r) * n + j * q->g + d] / q->scales[p]) / q->M
                                              + 0.05 * tu_normal(&seed));
        }
}

/* Three passes with the trees and three with the scan, from the same codes: the same codes and
 * the same tracked loss, bit for bit, after each; returns the trees' counts. nn_steps > 0 holds
 * at most that many trees at once, so a batch's steps run in several rounds. */
static void nn_equals_scan(problem *pb, int width, int64_t block_groups, int threads, int64_t nn_steps,
                           int64_t *counts, const char *what)
{
    aq_quant *scan = NULL, *tree = NULL;
    aqi_layer L = layer_of(pb);
    ck_assert_int_eq(aq_quant_clone(&scan, pb->q), AQ_OK);
    ck_assert_int_eq(aq_quant_clone(&tree, pb->q), AQ_OK);
    for (int pass = 0; pass < 3; pass++) {
        aqi_beam_config off = {width, 1, 11 + (uint64_t)pass, 0, 0, NULL, NULL, block_groups, AQI_BEAM_NN_OFF, NULL, AQI_BEAM_SELECT_AUTO, 0};
        aqi_beam_config on = off;
        double after_scan, after_tree;
        on.nn = AQI_BEAM_NN_ON;
        on.nn_counts = counts;
        on.nn_steps = nn_steps;
        ck_assert_int_eq(aq_context_set_threads(pb->ctx, 2), AQ_OK);
        ck_assert_int_eq(aqi_opt_beam_pass(&L, scan, &off, NULL, &after_scan), AQ_OK);
        ck_assert_int_eq(aq_context_set_threads(pb->ctx, threads), AQ_OK);
        ck_assert_int_eq(aqi_opt_beam_pass(&L, tree, &on, NULL, &after_tree), AQ_OK);
        ck_assert_msg(!memcmp(scan->codes, tree->codes, scan->codes_bytes), "%s width %d pass %d: codes differ",
                      what, width, pass);
        ck_assert_msg(after_scan == after_tree, "%s width %d pass %d: loss %.17g (scan) vs %.17g (trees)", what,
                      width, pass, after_scan, after_tree);
    }
    aq_quant_free(scan);
    aq_quant_free(tree);
}

START_TEST(nn_queries_give_the_scans_codes)
{
    const char *fmts[] = {"1x12g8", "1x10g4o2", "2x9g8", "1x8g16", "1x11g2", "1x16g8"};
    const int64_t rows[] = {48, 32, 32, 16, 32, 16}, cols[] = {64, 32, 64, 64, 16, 32};
    const int widths[] = {1, 4, 8};
    for (int f = 0; f < 6; f++)
        for (int data = 0; data < 2; data++)
            for (int w = 0; w < 3; w++) {
                char what[64];
                int64_t counts[2] = {0, 0};
                problem pb = make_problem(fmts[f], rows[f], cols[f], 1900 + 10 * f + w, 2);
                if (data)
                    make_llm_like(&pb, 1950 + f, 0);
                snprintf(what, sizeof what, "%s %s", fmts[f], data ? "LLM-like" : "random");
                nn_equals_scan(&pb, widths[w], w == 2 ? 2 : 0, w == 1 ? 1 : 3, data ? 1 + w : 0, counts, what);
                ck_assert_msg(counts[0] > 0, "%s: the trees were not used", what);
                free_problem(&pb);
            }
}
END_TEST

/* A dead input channel (H_jj singular) and a nearly dependent pair (cond ~ 1e12) make those
 * steps scan; zero and tiny scales (1/s overflows in ũ) make their states unprunable. The codes
 * stay the scan's. */
START_TEST(nn_degenerate_blocks_and_scales)
{
    for (int w = 0; w < 2; w++) {
        int64_t counts[2] = {0, 0};
        problem pb = make_problem("1x12g8", 16, 32, 2000 + w, 2);
        make_llm_like(&pb, 2010, 1);
        pb.q->scales[1] = 0.0f;
        pb.q->scales[2] = 1e-38f;
        nn_equals_scan(&pb, w ? 8 : 1, 0, 2, 3, counts, "degenerate");
        ck_assert_int_gt(counts[0], 0);
        free_problem(&pb);
    }
}
END_TEST

/* At K <= AQI_BEAM_K_TILE each state's candidates are selected in the group loop, bounded by
 * what can still enter the group's list (beam_step.c, select_row): three passes from the same
 * codes give the per-tile selection's codes and tracked loss, bit for bit, for widths below, at
 * and above the lane count, on random and LLM-like data, with zero and tiny scales. */
START_TEST(one_tile_selection_gives_the_scans_codes)
{
    const char *fmts[] = {"2x8g8", "1x8g4", "2x6g4o2", "3x8g8", "1x9g8", "2x4g2"};
    const int64_t rows[] = {32, 48, 32, 16, 16, 24}, cols[] = {64, 64, 32, 64, 64, 16};
    const int widths[] = {2, 8, 16, 24};
    for (int f = 0; f < 6; f++)
        for (int data = 0; data < 2; data++)
            for (int w = 0; w < 4; w++) {
                problem pb = make_problem(fmts[f], rows[f], cols[f], 2100 + 10 * f + w, 2);
                aq_quant *tiles = NULL;
                aqi_layer L;
                if (data)
                    make_llm_like(&pb, 2150 + f, 0);
                pb.q->scales[1] = 0.0f;
                pb.q->scales[2] = 1e-38f;
                L = layer_of(&pb);
                ck_assert_int_eq(aq_quant_clone(&tiles, pb.q), AQ_OK);
                for (int pass = 0; pass < 3; pass++) {
                    aqi_beam_config fast = {widths[w], 1, 21 + (uint64_t)pass, 0, 0, NULL, NULL, w == 1 ? 3 : 0,
                                            AQI_BEAM_NN_OFF, NULL, AQI_BEAM_SELECT_AUTO, 0};
                    aqi_beam_config slow = fast;
                    double after_fast, after_slow;
                    slow.select = AQI_BEAM_SELECT_TILES;
                    ck_assert_int_eq(aq_context_set_threads(pb.ctx, 1 + pass % 2), AQ_OK);
                    ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &fast, NULL, &after_fast), AQ_OK);
                    ck_assert_int_eq(aqi_opt_beam_pass(&L, tiles, &slow, NULL, &after_slow), AQ_OK);
                    ck_assert_msg(!memcmp(pb.q->codes, tiles->codes, pb.q->codes_bytes),
                                  "%s %s width %d pass %d: codes differ", fmts[f], data ? "LLM-like" : "random",
                                  widths[w], pass);
                    ck_assert_msg(after_fast == after_slow, "%s width %d pass %d: loss %.17g vs %.17g", fmts[f],
                                  widths[w], pass, after_fast, after_slow);
                }
                aq_quant_free(tiles);
                free_problem(&pb);
            }
}
END_TEST

/* Width 1 by the trees is coordinate descent: the same codes as the naive search over all K. */
START_TEST(nn_width1_equals_naive_coordinate_descent)
{
    problem pb = make_problem("1x11g4", 4, 8, 2100, 2);
    aq_quant *ref = NULL;
    aqi_layer L = layer_of(&pb);
    int64_t counts[2] = {0, 0};
    aqi_beam_config cfg = {1, 0, 0, 0, 0, NULL, NULL, 0, AQI_BEAM_NN_ON, counts, AQI_BEAM_SELECT_AUTO, 0};
    make_llm_like(&pb, 2101, 0);
    ck_assert_int_eq(aq_quant_clone(&ref, pb.q), AQ_OK);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, NULL, NULL), AQ_OK);
        naive_coordinate_descent(&pb, ref);
        ck_assert_msg(!memcmp(pb.q->codes, ref->codes, pb.q->codes_bytes), "pass %d: codes differ from naive", pass);
    }
    ck_assert_int_gt(counts[0], 0);
    aq_quant_free(ref);
    free_problem(&pb);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Codebooks and scales */

/* Solve A x = b (n × n, several right-hand sides) by Gaussian elimination with partial pivoting
 * in long double. */
static void solve_long_double(long double *A, long double *B, int64_t n, int64_t nrhs)
{
    for (int64_t c = 0; c < n; c++) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < n; r++)
            if (fabsl(A[r * n + c]) > fabsl(A[piv * n + c]))
                piv = r;
        for (int64_t x = 0; x < n; x++) {
            long double t = A[c * n + x];
            A[c * n + x] = A[piv * n + x];
            A[piv * n + x] = t;
        }
        for (int64_t x = 0; x < nrhs; x++) {
            long double t = B[c * nrhs + x];
            B[c * nrhs + x] = B[piv * nrhs + x];
            B[piv * nrhs + x] = t;
        }
        for (int64_t r = c + 1; r < n; r++) {
            long double f = A[r * n + c] / A[c * n + c];
            for (int64_t x = c; x < n; x++)
                A[r * n + x] -= f * A[c * n + x];
            for (int64_t x = 0; x < nrhs; x++)
                B[r * nrhs + x] -= f * B[c * nrhs + x];
        }
    }
    for (int64_t c = n - 1; c >= 0; c--)
        for (int64_t x = 0; x < nrhs; x++) {
            long double s = B[c * nrhs + x];
            for (int64_t y = c + 1; y < n; y++)
                s -= A[c * n + y] * B[y * nrhs + x];
            B[c * nrhs + x] = s / A[c * n + c];
        }
}

/* The exact update from an explicit design matrix: rows of ŵ_r = s_p A_p x_i, normal equations
 * with the same ridge towards the old codebooks, solved in long double. Writes the codebooks. */
static void naive_exact_codebooks(const problem *pb, aq_quant *q)
{
    const int64_t n = pb->cols, g = q->g, go = q->go, Q = (int64_t)q->M * q->K * g;
    long double *A = calloc((size_t)(n * Q), sizeof(long double));
    long double *N = calloc((size_t)(Q * Q), sizeof(long double));
    long double *B = calloc((size_t)(Q * go), sizeof(long double));
    long double *HA = calloc((size_t)(n * Q), sizeof(long double));
    ck_assert_ptr_nonnull(A);
    ck_assert_ptr_nonnull(N);
    ck_assert_ptr_nonnull(B);
    ck_assert_ptr_nonnull(HA);
    for (int64_t p = 0; p < q->n_out_groups; p++) {
        long double s = q->scales[p];
        memset(A, 0, sizeof(long double) * (size_t)(n * Q));
        for (int64_t j = 0; j < q->n_in_groups; j++)
            for (int32_t m = 0; m < q->M; m++)
                for (int64_t d = 0; d < g; d++)
                    A[(j * g + d) * Q + ((int64_t)m * q->K + aqi_code_get(q, p, j, m)) * g + d] += s;
        for (int64_t a = 0; a < n; a++)
            for (int64_t c = 0; c < Q; c++) {
                long double v = 0.0L;
                for (int64_t b = 0; b < n; b++)
                    v += (long double)pb->Hf[a * n + b] * A[b * Q + c];
                HA[a * Q + c] = v;
            }
        for (int64_t c1 = 0; c1 < Q; c1++)
            for (int64_t c2 = 0; c2 < Q; c2++) {
                long double v = 0.0L;
                for (int64_t a = 0; a < n; a++)
                    v += A[a * Q + c1] * HA[a * Q + c2];
                N[c1 * Q + c2] += v;
            }
        for (int64_t i = 0; i < go; i++)
            for (int64_t c = 0; c < Q; c++) {
                long double v = 0.0L;
                for (int64_t a = 0; a < n; a++)
                    v += HA[a * Q + c] * (long double)pb->W[(p * go + i) * n + a];
                B[c * go + i] += v;
            }
    }
    long double mean = 0.0L;
    for (int64_t c = 0; c < Q; c++)
        mean += N[c * Q + c];
    long double lambda = 1e-9L * mean / Q;
    for (int64_t c = 0; c < Q; c++) {
        N[c * Q + c] += lambda;
        for (int64_t i = 0; i < go; i++)
            B[c * go + i] += lambda * q->codebooks[((c / g) * go + i) * g + c % g];
    }
    solve_long_double(N, B, Q, go);
    for (int64_t c = 0; c < Q; c++)
        for (int64_t i = 0; i < go; i++)
            q->codebooks[((c / g) * go + i) * g + c % g] = (float)B[c * go + i];
    free(A);
    free(N);
    free(B);
    free(HA);
}

/* The least-squares problems of the exact and CG tests: format ls_formats[f]; in problem 1
 * (LS_UNUSED_PROBLEM) codeword 7 is left unused, so it must keep its old value. */
static const char *const ls_formats[] = {"1x2g2", "1x3g2o2", "2x2g2", "2x3g3o1", "2x2g2o2"};
enum { LS_PROBLEMS = 5, LS_UNUSED_PROBLEM = 1 };

static problem least_squares_problem(int f)
{
    static const int64_t rows[] = {6, 8, 6, 6, 8}, cols[] = {8, 8, 6, 9, 6};
    problem pb = make_problem(ls_formats[f], rows[f], cols[f], 500 + (uint64_t)f, 2);
    if (f == LS_UNUSED_PROBLEM)
        for (int64_t p = 0; p < pb.q->n_out_groups; p++)
            for (int64_t j = 0; j < pb.q->n_in_groups; j++)
                if (aqi_code_get(pb.q, p, j, 0) == 7)
                    aqi_code_set(pb.q, p, j, 0, 3);
    return pb;
}

START_TEST(exact_codebooks_match_naive_least_squares)
{
    const char *const *fmts = ls_formats;
    for (int f = 0; f < LS_PROBLEMS; f++) {
        problem pb = least_squares_problem(f);
        aqi_layer L = layer_of(&pb);
        aq_quant *ref = NULL;
        ck_assert_int_eq(aq_quant_clone(&ref, pb.q), AQ_OK);
        long double before = naive_loss(&pb, pb.q);
        ck_assert_int_eq(aqi_opt_codebooks_exact(&L, pb.q), AQ_OK);
        naive_exact_codebooks(&pb, ref);
        long double after = naive_loss(&pb, pb.q), after_ref = naive_loss(&pb, ref);
        ck_assert_msg(after <= before * (1 + 1e-12L), "exact update increased L: %Lg -> %Lg", before, after);
        ck_assert_msg(fabsl(after - after_ref) <= 1e-6L * after_ref, "L %Lg vs naive %Lg", after, after_ref);
        /* the reconstructions agree (codebooks themselves are unique up to the gauge of M >= 2) */
        long double *r1 = malloc(sizeof(long double) * (size_t)pb.cols);
        long double *r2 = malloc(sizeof(long double) * (size_t)pb.cols), num = 0, den = 0;
        for (int64_t r = 0; r < pb.rows; r++) {
            naive_row(pb.q, r, r1);
            naive_row(ref, r, r2);
            for (int64_t c = 0; c < pb.cols; c++) {
                num += (r1[c] - r2[c]) * (r1[c] - r2[c]);
                den += r2[c] * r2[c];
            }
        }
        ck_assert_msg(sqrtl(num / den) < 1e-6L, "format %s: reconstruction differs by %Lg", fmts[f],
                      sqrtl(num / den));
        if (pb.q->M == 1) /* nonsingular without the ridge: the codebooks themselves agree */
            for (size_t i = 0; i < pb.q->codebooks_count; i++)
                ck_assert_double_eq_tol(pb.q->codebooks[i], ref->codebooks[i],
                                        1e-6 * (1 + fabs(ref->codebooks[i])));
        if (f == LS_UNUSED_PROBLEM)
            for (int32_t d = 0; d < pb.q->go * pb.q->g; d++)
                ck_assert_float_eq(aqi_codeword(pb.q, 0, 7)[d], aqi_codeword(ref, 0, 7)[d]);
        free(r1);
        free(r2);
        aq_quant_free(ref);
        free_problem(&pb);
    }
}
END_TEST

/* A singular H (fewer samples than inputs) is fine; an indefinite one is refused. */
START_TEST(exact_codebooks_singular_and_indefinite_H)
{
    problem pb = make_problem("2x3g2", 6, 8, 550, 1);
    aqi_layer L = layer_of(&pb);
    /* rank 3: H = XᵀX/3 with X 3 × 8 */
    uint64_t seed = 551;
    double X[3 * 8];
    for (int i = 0; i < 24; i++)
        X[i] = tu_normal(&seed);
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 8; b++) {
            double v = 0;
            for (int r = 0; r < 3; r++)
                v += X[r * 8 + a] * X[r * 8 + b];
            pb.Hd[a * 8 + b] = v / 3;
            pb.Hf[a * 8 + b] = (float)(v / 3);
        }
    long double before = naive_loss(&pb, pb.q);
    ck_assert_int_eq(aqi_opt_codebooks_exact(&L, pb.q), AQ_OK);
    long double after = naive_loss(&pb, pb.q);
    ck_assert_msg(after <= before * (1 + 1e-9L), "%Lg -> %Lg", before, after);
    ck_assert(after < 0.9L * before);
    /* indefinite: eigenvalues 3 and -1 on pairs of inputs, through the public API */
    memset(pb.Hd, 0, sizeof(double) * 64);
    for (int a = 0; a < 8; a += 2) {
        pb.Hd[a * 8 + a] = pb.Hd[(a + 1) * 8 + a + 1] = 1.0;
        pb.Hd[a * 8 + a + 1] = pb.Hd[(a + 1) * 8 + a] = 2.0;
    }
    aq_hessian *h = NULL;
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, pb.ctx, pb.Hd, 8, 8, 10), AQ_OK);
    aq_options *o = options_with(pb.ctx, AQ_OPT_CODEBOOK_UPDATE, AQ_CODEBOOK_UPDATE_EXACT, 0, 0);
    snapshot s = take_snapshot(pb.q);
    ck_assert_int_eq(aq_update_codebooks(pb.ctx, pb.q, pb.W, 8, h, o), AQ_ERR_NOT_PSD);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(pb.ctx), "positive"));
    ck_assert(snapshot_equal(&s, pb.q));
    free_snapshot(&s);
    aq_options_free(o);
    aq_hessian_free(h);
    free_problem(&pb);
}
END_TEST

/* Conjugate gradients (codebook_cg.c) against the naive long-double least squares: with enough
 * iterations the loss reaches the exact minimum (the products are float sgemm, hence 1e-5); every
 * iteration count lowers L and more iterations never end higher; an unused codeword is kept. */
START_TEST(cg_codebooks_converge_to_naive_least_squares)
{
    const char *const *fmts = ls_formats;
    for (int f = 0; f < LS_PROBLEMS; f++) {
        problem pb = least_squares_problem(f);
        aqi_layer L = layer_of(&pb);
        aq_quant *ref = NULL;
        ck_assert_int_eq(aq_quant_clone(&ref, pb.q), AQ_OK);
        naive_exact_codebooks(&pb, ref);
        const long double before = naive_loss(&pb, pb.q), optimum = naive_loss(&pb, ref);
        long double prev = before;
        const int64_t iters[] = {1, 2, 3, 200};
        for (int k = 0; k < 4; k++) {
            aq_quant *c = NULL;
            ck_assert_int_eq(aq_quant_clone(&c, pb.q), AQ_OK);
            ck_assert_int_eq(aqi_opt_codebooks_cg(&L, c, iters[k]), AQ_OK);
            long double after = naive_loss(&pb, c);
            ck_assert_msg(after <= before * (1 + 1e-12L), "%s: cg %lld increased L: %Lg -> %Lg", fmts[f],
                          (long long)iters[k], before, after);
            ck_assert_msg(after <= prev * (1 + 1e-6L), "%s: cg %lld ended above fewer iterations: %Lg > %Lg",
                          fmts[f], (long long)iters[k], after, prev);
            ck_assert_msg(after >= optimum * (1 - 1e-5L), "%s: below the least-squares optimum", fmts[f]);
            if (k == 0)
                ck_assert_msg(after < before, "%s: one iteration made no progress", fmts[f]);
            if (k == 3)
                ck_assert_msg(after - optimum <= 1e-5L * optimum, "%s: cg %Lg vs least squares %Lg", fmts[f],
                              after, optimum);
            if (f == LS_UNUSED_PROBLEM)
                for (int32_t d = 0; d < c->go * c->g; d++)
                    ck_assert_float_eq(aqi_codeword(c, 0, 7)[d], aqi_codeword(pb.q, 0, 7)[d]);
            ck_assert(!memcmp(c->codes, pb.q->codes, pb.q->codes_bytes));
            prev = after;
            aq_quant_free(c);
        }
        aq_quant_free(ref);
        free_problem(&pb);
    }
}
END_TEST

/* CG on an indefinite H (eigenvalues 3 and −1 on input pairs) must not raise L: it stops on a
 * direction of negative curvature. */
START_TEST(cg_codebooks_indefinite_H_never_increase)
{
    problem pb = make_problem("2x3g2", 6, 8, 560, 1);
    memset(pb.Hf, 0, sizeof(float) * 64);
    memset(pb.Hd, 0, sizeof(double) * 64);
    for (int a = 0; a < 8; a += 2) {
        pb.Hd[a * 8 + a] = pb.Hd[(a + 1) * 8 + a + 1] = 1.0;
        pb.Hd[a * 8 + a + 1] = pb.Hd[(a + 1) * 8 + a] = 2.0;
    }
    for (int i = 0; i < 64; i++)
        pb.Hf[i] = (float)pb.Hd[i];
    aqi_layer L = layer_of(&pb);
    long double before = naive_loss(&pb, pb.q);
    ck_assert_int_eq(aqi_opt_codebooks_cg(&L, pb.q, 20), AQ_OK);
    long double after = naive_loss(&pb, pb.q);
    ck_assert_msg(after <= before + 1e-9L * fabsl(before), "%Lg -> %Lg", before, after);
    free_problem(&pb);
}
END_TEST

START_TEST(scales_closed_form_and_monotone)
{
    const char *fmts[] = {"2x3g4", "1x4g2o2"};
    for (int f = 0; f < 2; f++) {
        problem pb = make_problem(fmts[f], 8, 16, 600 + f, 2);
        aqi_layer L = layer_of(&pb);
        aq_quant *ref = NULL;
        ck_assert_int_eq(aq_quant_clone(&ref, pb.q), AQ_OK);
        long double before = naive_loss(&pb, pb.q);
        ck_assert_int_eq(aqi_opt_scales(&L, pb.q), AQ_OK);
        long double after = naive_loss(&pb, pb.q);
        ck_assert_msg(after <= before * (1 + 1e-12L), "scale update increased L: %Lg -> %Lg", before, after);
        /* s_p = ⟨W_p H, V_p⟩ / ⟨V_p H, V_p⟩ */
        long double *v = malloc(sizeof(long double) * (size_t)pb.cols);
        for (int64_t p = 0; p < ref->n_out_groups; p++) {
            long double a = 0, c = 0;
            ref->scales[p] = 1.0f;
            for (int64_t r = p * ref->go; r < (p + 1) * ref->go; r++) {
                naive_row(ref, r, v);
                for (int64_t x = 0; x < pb.cols; x++)
                    for (int64_t y = 0; y < pb.cols; y++) {
                        a += (long double)pb.W[r * pb.cols + x] * pb.Hf[x * pb.cols + y] * v[y];
                        c += v[x] * pb.Hf[x * pb.cols + y] * v[y];
                    }
            }
            ck_assert_double_eq_tol(pb.q->scales[p], (double)(a / c), 1e-6 * fabs((double)(a / c)));
        }
        free(v);
        aq_quant_free(ref);
        free_problem(&pb);
    }
}
END_TEST

START_TEST(update_codebooks_modes_monotone)
{
    const int modes[] = {AQ_CODEBOOK_UPDATE_EXACT, AQ_CODEBOOK_UPDATE_ADAM, AQ_CODEBOOK_UPDATE_NONE,
                         AQ_CODEBOOK_UPDATE_AUTO, AQ_CODEBOOK_UPDATE_CG};
    for (int i = 0; i < 5; i++)
        for (int scales = 0; scales < 2; scales++) {
            problem pb = make_problem(i % 2 ? "2x3g4o2" : "2x4g4", 8, 16, 700 + i, 2);
            aq_options *o = options_with(pb.ctx, AQ_OPT_CODEBOOK_UPDATE, modes[i], AQ_OPT_UPDATE_SCALES, scales);
            ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_CODEBOOK_ADAM_LR, 1e-2), AQ_OK);
            snapshot s0 = take_snapshot(pb.q);
            long double before = naive_loss(&pb, pb.q);
            ck_assert_int_eq(aq_update_codebooks(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
            long double after = naive_loss(&pb, pb.q);
            ck_assert_msg(after <= before * (1 + 1e-9L), "mode %d scales %d: %Lg -> %Lg", modes[i], scales,
                          before, after);
            ck_assert(!memcmp(s0.codes, pb.q->codes, s0.nb)); /* codes untouched */
            if (modes[i] == AQ_CODEBOOK_UPDATE_NONE && !scales)
                ck_assert(snapshot_equal(&s0, pb.q));
            else
                ck_assert_msg(after < before * 0.999L, "mode %d scales %d: no progress (%Lg -> %Lg)",
                              modes[i], scales, before, after);
            free_snapshot(&s0);
            aq_options_free(o);
            free_problem(&pb);
        }
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The optimiser */

typedef struct progress_log { int calls, cancel_at; double last; int decreasing; } progress_log;

static int on_progress(const aq_progress *pr, void *ud)
{
    progress_log *pl = ud;
    ck_assert_str_eq(pr->operation, "optimize");
    ck_assert_int_eq(pr->stage, pl->calls);
    if (pl->calls > 0 && pr->objective > pl->last * (1 + 1e-9))
        pl->decreasing = 0;
    pl->last = pr->objective;
    pl->calls++;
    return pl->cancel_at >= 0 && pl->calls > pl->cancel_at;
}

START_TEST(optimize_decreases_loss_and_reports)
{
    problem pb = make_problem("2x4g4", 16, 32, 800, 2);
    aq_options *o = options_with(pb.ctx, AQ_OPT_MAX_EPOCHS, 6, AQ_OPT_BEAM_WIDTH, 2);
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_REL_TOL, 1e-3), AQ_OK);
    progress_log pl = {0, -1, 0.0, 1};
    ck_assert_int_eq(aq_context_set_progress_callback(pb.ctx, on_progress, &pl), AQ_OK);
    long double before = naive_loss(&pb, pb.q), energy = 0.0L;
    ck_assert_int_eq(aq_optimize(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
    long double after = naive_loss(&pb, pb.q);
    ck_assert_int_ge(pl.calls, 1);
    ck_assert_int_le(pl.calls, 6);
    ck_assert(pl.decreasing);
    ck_assert_msg(after < 0.9L * before, "%Lg -> %Lg", before, after);
    for (int64_t r = 0; r < pb.rows; r++)
        for (int64_t x = 0; x < pb.cols; x++)
            for (int64_t y = 0; y < pb.cols; y++)
                energy += (long double)pb.W[r * pb.cols + x] * pb.Hf[x * pb.cols + y] * pb.W[r * pb.cols + y];
    ck_assert_double_eq_tol(pl.last, (double)(after / energy), 1e-5 * pl.last);
    /* max_epochs 0: nothing happens */
    snapshot s = take_snapshot(pb.q);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 0), AQ_OK);
    ck_assert_int_eq(aq_optimize(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
    ck_assert(snapshot_equal(&s, pb.q));
    free_snapshot(&s);
    aq_options_free(o);
    free_problem(&pb);
}
END_TEST

/* AQ_OPT_HESSIAN_DAMPING λ: the same result as the undamped optimiser on the handle of
 * H + λ·mean(diag H)·I, and a different one from λ = 0; out-of-range values are refused. */
START_TEST(optimize_hessian_damping_is_a_ridge)
{
    const double lambda = 0.5;
    problem pb = make_problem("2x4g4", 16, 32, 801, 2);
    aq_options *damped = options_with(pb.ctx, AQ_OPT_MAX_EPOCHS, 3, AQ_OPT_BEAM_WIDTH, 2);
    aq_options *plain = options_with(pb.ctx, AQ_OPT_MAX_EPOCHS, 3, AQ_OPT_BEAM_WIDTH, 2);
    double *Hl = malloc(sizeof(double) * (size_t)(pb.cols * pb.cols)), v = -1.0;
    aq_hessian *H_ridge = NULL;
    aq_quant *q_ridge = NULL, *q_plain = NULL;
    ck_assert_int_eq(aq_options_set_double(damped, AQ_OPT_HESSIAN_DAMPING, lambda), AQ_OK);
    ck_assert_int_eq(aq_options_get_double(&v, damped, AQ_OPT_HESSIAN_DAMPING), AQ_OK);
    ck_assert(v == lambda);
    ck_assert_int_ne(aq_options_set_double(damped, AQ_OPT_HESSIAN_DAMPING, -0.1), AQ_OK);
    ck_assert_int_ne(aq_options_set_double(damped, AQ_OPT_HESSIAN_DAMPING, NAN), AQ_OK);
    ck_assert_int_eq(aq_options_get_double(&v, damped, AQ_OPT_HESSIAN_DAMPING), AQ_OK);
    ck_assert(v == lambda); /* refused values leave the option as it was */
    /* H + λ·mean(diag H)·I built independently from the dense matrix */
    double mean = 0.0;
    for (int64_t i = 0; i < pb.cols; i++)
        mean += pb.Hd[i * pb.cols + i];
    mean /= (double)pb.cols;
    for (int64_t i = 0; i < pb.cols * pb.cols; i++)
        Hl[i] = pb.Hd[i];
    for (int64_t i = 0; i < pb.cols; i++)
        Hl[i * pb.cols + i] += lambda * mean;
    ck_assert_int_eq(aq_hessian_create_from_matrix(&H_ridge, pb.ctx, Hl, pb.cols, pb.cols, 1000), AQ_OK);
    ck_assert_int_eq(aq_quant_clone(&q_ridge, pb.q), AQ_OK);
    ck_assert_int_eq(aq_quant_clone(&q_plain, pb.q), AQ_OK);
    ck_assert_int_eq(aq_optimize(pb.ctx, pb.q, pb.W, pb.cols, pb.H, damped), AQ_OK);
    ck_assert_int_eq(aq_optimize(pb.ctx, q_ridge, pb.W, pb.cols, H_ridge, plain), AQ_OK);
    ck_assert_int_eq(aq_optimize(pb.ctx, q_plain, pb.W, pb.cols, pb.H, plain), AQ_OK);
    snapshot s = take_snapshot(q_ridge), s_plain = take_snapshot(q_plain);
    ck_assert(snapshot_equal(&s, pb.q));
    ck_assert(!snapshot_equal(&s_plain, pb.q));
    free_snapshot(&s);
    free_snapshot(&s_plain);
    aq_quant_free(q_ridge);
    aq_quant_free(q_plain);
    aq_hessian_free(H_ridge);
    free(Hl);
    aq_options_free(damped);
    aq_options_free(plain);
    free_problem(&pb);
}
END_TEST

START_TEST(optimize_cancel_leaves_quant_unchanged)
{
    for (int cancel_at = 0; cancel_at < 3; cancel_at++) {
        problem pb = make_problem("1x4g2o2", 8, 16, 900, 2);
        aq_options *o = options_with(pb.ctx, AQ_OPT_MAX_EPOCHS, 5, 0, 0);
        ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_REL_TOL, 0.0), AQ_OK);
        progress_log pl = {0, cancel_at, 0.0, 1};
        ck_assert_int_eq(aq_context_set_progress_callback(pb.ctx, on_progress, &pl), AQ_OK);
        snapshot s = take_snapshot(pb.q);
        ck_assert_int_eq(aq_optimize(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_ERR_CANCELLED);
        ck_assert_int_eq(pl.calls, cancel_at + 1);
        ck_assert(snapshot_equal(&s, pb.q));
        free_snapshot(&s);
        aq_options_free(o);
        free_problem(&pb);
    }
}
END_TEST

START_TEST(results_deterministic_across_runs_and_threads)
{
    snapshot first;
    for (int run = 0; run < 3; run++) {
        problem pb = make_problem("2x3g4o2", 16, 32, 1000, run == 2 ? 1 : 2);
        aq_options *o = options_with(pb.ctx, AQ_OPT_BEAM_WIDTH, 3, AQ_OPT_BEAM_RANDOM_ORDER, 1);
        ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 3), AQ_OK);
        ck_assert_int_eq(aq_optimize(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
        if (run == 0)
            first = take_snapshot(pb.q);
        else
            ck_assert_msg(snapshot_equal(&first, pb.q), "run %d differs", run);
        aq_options_free(o);
        free_problem(&pb);
    }
    free_snapshot(&first);
}
END_TEST

/* Blocks of output groups, thread counts and sub-block boundaries do not change a pass: the
 * same codes and the same tracked loss, bit for bit. */
START_TEST(pass_independent_of_threads_and_blocks)
{
    const char *fmts[] = {"2x3g4", "1x4g2o2"};
    const int widths[] = {1, 4};
    for (int f = 0; f < 2; f++)
        for (int w = 0; w < 2; w++) {
            void *first_codes = NULL;
            double first_after = 0.0;
            for (int variant = 0; variant < 5; variant++) {
                const int threads[] = {1, 2, 3, 2, 3};
                const int64_t blocks[] = {0, 0, 0, 1, 3};
                problem pb = make_problem(fmts[f], 12, 24, 1500 + f, threads[variant]);
                aqi_layer L = layer_of(&pb);
                aqi_beam_config cfg = {widths[w], 1, 5, 0, 0, NULL, NULL, blocks[variant], AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
                double before, after;
                ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, &before, &after), AQ_OK);
                if (variant == 0) {
                    first_codes = malloc(pb.q->codes_bytes);
                    memcpy(first_codes, pb.q->codes, pb.q->codes_bytes);
                    first_after = after;
                } else {
                    ck_assert_msg(!memcmp(first_codes, pb.q->codes, pb.q->codes_bytes),
                                  "%s width %d variant %d: codes differ", fmts[f], widths[w], variant);
                    ck_assert_msg(after == first_after, "%s width %d variant %d: tracked loss %.17g vs %.17g",
                                  fmts[f], widths[w], variant, after, first_after);
                }
                free_problem(&pb);
            }
            free(first_codes);
        }
}
END_TEST

/* Shapes away from the common case: more than one score tile (K > 1024) with a beam, input
 * groups wider than a batch, several blocks; the tracked loss stays exact and L never grows. */
START_TEST(large_K_and_wide_groups)
{
    const char *fmts[] = {"1x11g2", "2x11g1", "1x3g40", "2x2g160", "1x4g32o2"};
    const int64_t rows[] = {4, 2, 4, 2, 4}, cols[] = {8, 4, 80, 320, 64};
    const int widths[] = {3, 2, 4, 2, 5};
    for (int f = 0; f < 5; f++)
        for (int blocks = 0; blocks < 2; blocks++) {
            problem pb = make_problem(fmts[f], rows[f], cols[f], 1600 + f, 2);
            aqi_layer L = layer_of(&pb);
            aqi_beam_config cfg = {widths[f], 1, 9, 0, 0, NULL, NULL, blocks, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
            double before, after;
            long double truth_before = naive_loss(&pb, pb.q);
            ck_assert_int_eq(aqi_opt_beam_pass(&L, pb.q, &cfg, &before, &after), AQ_OK);
            long double truth_after = naive_loss(&pb, pb.q);
            ck_assert_msg(fabsl(after - truth_after) < 1e-4L * truth_before, "%s: tracked %g, true %Lg",
                          fmts[f], after, truth_after);
            ck_assert_msg(truth_after <= truth_before * (1 + 1e-7L), "%s: %Lg -> %Lg", fmts[f], truth_before,
                          truth_after);
            ck_assert_msg(truth_after < 0.99L * truth_before, "%s: no progress", fmts[f]);
            free_problem(&pb);
        }
}
END_TEST

/* A zero scale leaves its group's codes alone; a tiny one (1/s overflows in the scores) must not
 * produce NaN or a loss increase. */
START_TEST(zero_and_tiny_scales)
{
    for (int width = 1; width <= 3; width += 2) {
        problem pb = make_problem("2x3g4", 8, 16, 1700, 2);
        pb.q->scales[1] = 0.0f;
        pb.q->scales[2] = 1e-38f;
        pb.q->scales[3] = -0.7f;
        snapshot s = take_snapshot(pb.q);
        aq_options *o = options_with(pb.ctx, AQ_OPT_BEAM_WIDTH, width, 0, 0);
        long double before = naive_loss(&pb, pb.q);
        ck_assert_int_eq(aq_beam_search(pb.ctx, pb.q, pb.W, pb.cols, pb.H, o), AQ_OK);
        long double after = naive_loss(&pb, pb.q);
        ck_assert(after <= before * (1 + 1e-7L));
        for (int64_t j = 0; j < pb.q->n_in_groups; j++)
            for (int32_t m = 0; m < pb.q->M; m++) {
                size_t at = ((size_t)1 * (size_t)pb.q->n_in_groups + (size_t)j) * (size_t)pb.q->M + (size_t)m;
                ck_assert_uint_eq(((uint8_t *)pb.q->codes)[at], ((uint8_t *)s.codes)[at]);
            }
        for (int64_t p = 0; p < pb.q->n_out_groups; p++)
            ck_assert(isfinite((double)naive_group_loss(&pb, pb.q, p)));
        free_snapshot(&s);
        aq_options_free(o);
        free_problem(&pb);
    }
}
END_TEST

/* The random order depends on the seed: another seed gives another (still monotone) result. */
START_TEST(random_order_follows_seed)
{
    problem a = make_problem("2x4g2", 8, 16, 1100, 1), b = make_problem("2x4g2", 8, 16, 1100, 1);
    aq_options *oa = options_with(a.ctx, AQ_OPT_BEAM_RANDOM_ORDER, 1, 0, 0);
    aq_options *ob = options_with(b.ctx, AQ_OPT_BEAM_RANDOM_ORDER, 1, 0, 0);
    ck_assert_int_eq(aq_context_set_seed(b.ctx, 99), AQ_OK);
    ck_assert_int_eq(aq_beam_search(a.ctx, a.q, a.W, a.cols, a.H, oa), AQ_OK);
    ck_assert_int_eq(aq_beam_search(b.ctx, b.q, b.W, b.cols, b.H, ob), AQ_OK);
    ck_assert(memcmp(a.q->codes, b.q->codes, a.q->codes_bytes) != 0);
    aq_options_free(oa);
    aq_options_free(ob);
    free_problem(&a);
    free_problem(&b);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Bad input and allocation failures */

typedef int (*layer_fn)(aq_context *, aq_quant *, const float *, int64_t, const aq_hessian *,
                        const aq_options *);

START_TEST(bad_input_leaves_quant_unchanged)
{
    layer_fn fns[] = {aq_beam_search, aq_update_codebooks, aq_optimize, aq_quantize_layer};
    for (int f = 0; f < 4; f++) {
        problem pb = make_problem("2x2g4", 8, 16, 1200, 1);
        aq_hessian *h8 = NULL;
        ck_assert_int_eq(aq_hessian_create_from_matrix(&h8, pb.ctx, pb.Hd, 8, 16, 10), AQ_OK);
        snapshot s = take_snapshot(pb.q);
        ck_assert_int_eq(fns[f](NULL, pb.q, pb.W, 16, pb.H, NULL), AQ_ERR_INVALID_ARG);
        ck_assert_int_eq(fns[f](pb.ctx, NULL, pb.W, 16, pb.H, NULL), AQ_ERR_INVALID_ARG);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, NULL, 16, pb.H, NULL), AQ_ERR_INVALID_ARG);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, NULL, NULL), AQ_ERR_INVALID_ARG);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 15, pb.H, NULL), AQ_ERR_SHAPE);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, h8, NULL), AQ_ERR_SHAPE);
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(pb.ctx), "8 inputs"));
        pb.W[37] = NAN;
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, pb.H, NULL), AQ_ERR_NONFINITE);
        pb.W[37] = INFINITY;
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, pb.H, NULL), AQ_ERR_NONFINITE);
        pb.W[37] = 0.5f;
        /* a Hessian without samples, and an indefinite one (a 4 × 4 diagonal block [[1, 2], [2, 1]]) */
        aq_hessian *h0 = NULL, *hi = NULL;
        double *Hbad = malloc(sizeof(double) * 16 * 16);
        ck_assert_int_eq(aq_hessian_create(&h0, pb.ctx, 16), AQ_OK);
        memcpy(Hbad, pb.Hd, sizeof(double) * 16 * 16);
        Hbad[5 * 16 + 5] = Hbad[6 * 16 + 6] = 1.0;
        Hbad[5 * 16 + 6] = Hbad[6 * 16 + 5] = 2.0;
        ck_assert_int_eq(aq_hessian_create_from_matrix(&hi, pb.ctx, Hbad, 16, 16, 10), AQ_OK);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, h0, NULL), AQ_ERR_INVALID_ARG);
        ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, hi, NULL), AQ_ERR_NOT_PSD);
        aq_hessian_free(h0);
        aq_hessian_free(hi);
        free(Hbad);
        if (fns[f] != aq_quantize_layer) { /* quantize_layer overwrites the quant's contents */
            pb.q->codebooks[3] = NAN;
            ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, pb.H, NULL), AQ_ERR_NONFINITE);
            pb.q->codebooks[3] = s.cb[3];
            ((uint8_t *)pb.q->codes)[5] = 9; /* K = 4 */
            ck_assert_int_eq(fns[f](pb.ctx, pb.q, pb.W, 16, pb.H, NULL), AQ_ERR_INVALID_ARG);
            ((uint8_t *)pb.q->codes)[5] = ((uint8_t *)s.codes)[5];
        }
        ck_assert(snapshot_equal(&s, pb.q));
        free_snapshot(&s);
        aq_hessian_free(h8);
        free_problem(&pb);
    }
}
END_TEST

/* Fail the k-th allocation for k = 1, 2, … until the call succeeds. */
static void allocation_failure_loop(layer_fn fn, const char *fmt_text, int width, int mode)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    const int64_t rows = 8, cols = 16;
    float *W = tu_random_matrix(rows, cols, 1300);
    double *Hd = malloc(sizeof(double) * cols * cols);
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    aq_options *o = NULL;
    aq_format f;
    make_spd(Hd, cols, 1301);
    ck_assert_int_eq(aq_context_set_threads(ctx, 2), AQ_OK);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&H, ctx, Hd, cols, cols, 10), AQ_OK);
    ck_assert_int_eq(aq_format_parse(&f, fmt_text), AQ_OK);
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, rows, cols), AQ_OK);
    randomize_quant(q, 1302);
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, width), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_CODEBOOK_UPDATE, mode), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_CODEBOOK_ADAM_STEPS, 3), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 2), AQ_OK);
    snapshot s = take_snapshot(q);
    long baseline = fa.live;
    int st = AQ_ERR_NOMEM;
    long k;
    for (k = 1; k < 10000 && st == AQ_ERR_NOMEM; k++) {
        fa.fail_at = fa.n_allocs + k;
        st = fn(ctx, q, W, cols, H, o);
        fa.fail_at = 0;
        ck_assert_int_eq(fa.live, baseline);
        if (st == AQ_ERR_NOMEM)
            ck_assert_msg(snapshot_equal(&s, q), "quant changed by a failed call (k = %ld)", k);
    }
    ck_assert_int_eq(st, AQ_OK);
    ck_assert_int_gt(k, 2);
    free_snapshot(&s);
    aq_options_free(o);
    aq_quant_free(q);
    aq_hessian_free(H);
    aq_context_free(ctx);
    ck_assert_int_eq(fa.live, 0);
    free(W);
    free(Hd);
}

START_TEST(allocation_failures)
{
    allocation_failure_loop(aq_beam_search, "2x3g4", 1, AQ_CODEBOOK_UPDATE_EXACT);
    allocation_failure_loop(aq_beam_search, "1x3g4o2", 4, AQ_CODEBOOK_UPDATE_EXACT);
    allocation_failure_loop(aq_beam_search, "1x12g2", 3, AQ_CODEBOOK_UPDATE_EXACT); /* K = 4096: trees */
    allocation_failure_loop(aq_update_codebooks, "2x3g4", 1, AQ_CODEBOOK_UPDATE_EXACT);
    allocation_failure_loop(aq_update_codebooks, "2x3g4o2", 1, AQ_CODEBOOK_UPDATE_ADAM);
    allocation_failure_loop(aq_update_codebooks, "2x3g4o2", 1, AQ_CODEBOOK_UPDATE_CG);
    allocation_failure_loop(aq_optimize, "2x3g4", 2, AQ_CODEBOOK_UPDATE_CG);
    allocation_failure_loop(aq_optimize, "2x3g4", 2, AQ_CODEBOOK_UPDATE_AUTO);
    allocation_failure_loop(aq_quantize_layer, "2x3g4", 1, AQ_CODEBOOK_UPDATE_AUTO);
}
END_TEST

START_TEST(quantize_layer_improves_on_init)
{
    problem pb = make_problem("2x4g4", 16, 32, 1400, 2);
    aq_quant *init_only = NULL;
    ck_assert_int_eq(aq_quant_clone(&init_only, pb.q), AQ_OK);
    ck_assert_int_eq(aq_init(pb.ctx, init_only, pb.W, pb.cols, pb.H, NULL), AQ_OK);
    ck_assert_int_eq(aq_quantize_layer(pb.ctx, pb.q, pb.W, pb.cols, pb.H, NULL), AQ_OK);
    long double L_init = naive_loss(&pb, init_only), L = naive_loss(&pb, pb.q);
    ck_assert_msg(L < L_init, "quantize_layer %Lg, init alone %Lg", L, L_init);
    aq_quant_free(init_only);
    free_problem(&pb);
}
END_TEST

static Suite *beam_suite(void)
{
    Suite *s = suite_create("beam");
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 30);
    tcase_add_test(tk, score_tile_matches_naive);
    tcase_add_test(tk, rank_g_update_matches_naive);
    tcase_add_test(tk, kernel_variants_give_the_same_bits);
    suite_add_tcase(s, tk);

    TCase *tb = tcase_create("beam");
    tcase_set_timeout(tb, 240);
    tcase_add_test(tb, incremental_scores_match_recomputation);
    tcase_add_test(tb, tracked_loss_of_beam_states_is_exact);
    tcase_add_test(tb, width1_equals_naive_coordinate_descent);
    tcase_add_test(tb, wide_beam_reaches_brute_force_optimum);
    tcase_add_test(tb, beam_never_increases_loss);
    tcase_add_test(tb, random_order_follows_seed);
    tcase_add_test(tb, pass_independent_of_threads_and_blocks);
    tcase_add_test(tb, large_K_and_wide_groups);
    tcase_add_test(tb, zero_and_tiny_scales);
    suite_add_tcase(s, tb);

    TCase *tn = tcase_create("nn");
    tcase_set_timeout(tn, 240);
    tcase_add_test(tn, one_tile_selection_gives_the_scans_codes);
    tcase_add_test(tn, nn_queries_give_the_scans_codes);
    tcase_add_test(tn, nn_degenerate_blocks_and_scales);
    tcase_add_test(tn, nn_width1_equals_naive_coordinate_descent);
    suite_add_tcase(s, tn);

    TCase *tc = tcase_create("codebooks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, exact_codebooks_match_naive_least_squares);
    tcase_add_test(tc, exact_codebooks_singular_and_indefinite_H);
    tcase_add_test(tc, cg_codebooks_converge_to_naive_least_squares);
    tcase_add_test(tc, cg_codebooks_indefinite_H_never_increase);
    tcase_add_test(tc, scales_closed_form_and_monotone);
    tcase_add_test(tc, update_codebooks_modes_monotone);
    suite_add_tcase(s, tc);

    TCase *to = tcase_create("optimize");
    tcase_set_timeout(to, 240);
    tcase_add_test(to, optimize_decreases_loss_and_reports);
    tcase_add_test(to, optimize_cancel_leaves_quant_unchanged);
    tcase_add_test(to, optimize_hessian_damping_is_a_ridge);
    tcase_add_test(to, results_deterministic_across_runs_and_threads);
    tcase_add_test(to, quantize_layer_improves_on_init);
    suite_add_tcase(s, to);

    TCase *te = tcase_create("errors");
    tcase_set_timeout(te, 240);
    tcase_add_test(te, bad_input_leaves_quant_unchanged);
    tcase_add_test(te, allocation_failures);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    return tu_run_suite(beam_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

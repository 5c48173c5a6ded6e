/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* PV-tuning primitives: aq_quant_backward against finite differences; aq_vstep's budget,
 * monotonicity, exact recovery of a reachable target, trust ratios and bad input, and every
 * selection against a naive re-implementation written from the documented semantics. */
#include <string.h>

#include "testutil.h"

/* L = ½ Σ (Ŵ − T)² in double, so ∂L/∂Ŵ = Ŵ − T. */
static double half_sq(aq_quant *q, const float *T, float *scratch)
{
    const int64_t n = aq_quant_rows(q) * aq_quant_cols(q);
    double L = 0.0;
    aq_quant_dequantize(q, scratch, aq_quant_cols(q));
    for (int64_t i = 0; i < n; i++)
        L += 0.5 * ((double)scratch[i] - T[i]) * ((double)scratch[i] - T[i]);
    return L;
}

START_TEST(backward_equals_finite_differences)
{
    aq_context *ctx = tu_context(1, 1);
    const int64_t rows = 8, cols = 16;
    aq_quant *q = tu_random_quant(ctx, "2x3g4o2", rows, cols, 5);
    float *T = tu_random_matrix(rows, cols, 6), *W = malloc(sizeof(float) * rows * cols),
          *G = malloc(sizeof(float) * rows * cols);
    size_t nc, ns;
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    float *gc = malloc(sizeof(float) * nc), *gs = malloc(sizeof(float) * ns);
    aq_quant_dequantize(q, W, cols);
    for (int64_t i = 0; i < rows * cols; i++)
        G[i] = W[i] - T[i];
    ck_assert_int_eq(aq_quant_backward(q, G, cols, gc, gs), AQ_OK);
    /* L is quadratic in each parameter: central differences are exact up to rounding. */
    const float h = 0.01f;
    for (size_t i = 0; i < nc; i++) {
        const float keep = cb[i];
        cb[i] = keep + h;
        double up = half_sq(q, T, W);
        cb[i] = keep - h;
        double down = half_sq(q, T, W);
        cb[i] = keep;
        ck_assert_msg(fabs((up - down) / (2 * h) - gc[i]) <= 2e-3 * (1 + fabs(gc[i])), "codebook %zu: %g vs %g", i,
                      (up - down) / (2 * h), gc[i]);
    }
    for (size_t p = 0; p < ns; p++) {
        const float keep = sc[p];
        sc[p] = keep + h;
        double up = half_sq(q, T, W);
        sc[p] = keep - h;
        double down = half_sq(q, T, W);
        sc[p] = keep;
        ck_assert_msg(fabs((up - down) / (2 * h) - gs[p]) <= 2e-3 * (1 + fabs(gs[p])), "scale %zu: %g vs %g", p,
                      (up - down) / (2 * h), gs[p]);
    }
    ck_assert_int_eq(aq_quant_backward(q, G, cols, NULL, gs), AQ_OK); /* either output optional */
    G[3] = NAN;
    ck_assert_int_eq(aq_quant_backward(q, G, cols, gc, gs), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_quant_backward(q, G, cols - 1, gc, gs), AQ_ERR_SHAPE);
    free(T), free(W), free(G), free(gc), free(gs);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* Per-tile squared distances to T (weight space), in tile order i = p·J + j (g_o = 1). */
static void tile_distances(aq_quant *q, const float *T, int64_t g, double *d)
{
    const int64_t rows = aq_quant_rows(q), cols = aq_quant_cols(q), J = cols / g;
    float *W = malloc(sizeof(float) * (size_t)(rows * cols));
    aq_quant_dequantize(q, W, cols);
    for (int64_t p = 0; p < rows; p++)
        for (int64_t j = 0; j < J; j++) {
            double s = 0.0;
            for (int64_t a = 0; a < g; a++) {
                double e = (double)W[p * cols + j * g + a] - T[p * cols + j * g + a];
                s += e * e;
            }
            d[p * J + j] = s;
        }
    free(W);
}

START_TEST(vstep_respects_budget_and_never_increases_distance)
{
    aq_context *ctx = tu_context(2, 3);
    const int64_t rows = 32, cols = 32, g = 4, N = rows * cols / g;
    aq_quant *q = tu_random_quant(ctx, "2x4g4", rows, cols, 8);
    float *T = tu_random_matrix(rows, cols, 9);
    double *before = malloc(sizeof(double) * N), *after = malloc(sizeof(double) * N);
    aq_options *o = NULL;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    for (int selection = 0; selection <= 1; selection++) {
        ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_VSTEP_SELECTION, selection), AQ_OK);
        ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, 0.1), AQ_OK);
        const uint8_t *codes = aq_quant_codes(q, NULL);
        uint8_t *old = malloc(N * 2);
        memcpy(old, codes, N * 2);
        tile_distances(q, T, g, before);
        int64_t changed = -1;
        ck_assert_int_eq(aq_vstep(ctx, q, T, cols, NULL, o, &changed), AQ_OK);
        tile_distances(q, T, g, after);
        int64_t tiles_changed = 0, codes_changed = 0;
        for (int64_t i = 0; i < N; i++) {
            int diff = old[2 * i] != codes[2 * i] || old[2 * i + 1] != codes[2 * i + 1];
            tiles_changed += diff;
            codes_changed += (old[2 * i] != codes[2 * i]) + (old[2 * i + 1] != codes[2 * i + 1]);
            ck_assert(after[i] <= before[i]);
            if (diff)
                ck_assert(after[i] < before[i]);
        }
        ck_assert_int_le(tiles_changed, (int64_t)ceil(0.1 * N)); /* the budget */
        ck_assert_int_gt(tiles_changed, 0);
        ck_assert_int_eq(changed, codes_changed);
        free(old);
    }
    aq_options_free(o);
    free(T), free(before), free(after);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* M = 1 and a target that the codebook can represent exactly: a full V-step (weight space or
 * H-weighted) finds exactly the target's codes. */
START_TEST(vstep_recovers_a_reachable_target)
{
    aq_context *ctx = tu_context(2, 1);
    const int64_t rows = 16, cols = 16;
    aq_quant *q = tu_random_quant(ctx, "1x5g4", rows, cols, 11), *truth = NULL;
    ck_assert_int_eq(aq_quant_clone(&truth, q), AQ_OK);
    uint8_t *tc = aq_quant_codes(truth, NULL);
    uint64_t seed = 12;
    for (int i = 0; i < 64; i++)
        tc[i] = (uint8_t)(tu_uniform(&seed) * 32);
    float *T = malloc(sizeof(float) * rows * cols);
    aq_quant_dequantize(truth, T, cols);
    float *X = tu_random_matrix(200, cols, 13);
    aq_hessian *H = NULL;
    ck_assert_int_eq(aq_hessian_create(&H, ctx, cols), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(H, X, 200, cols), AQ_OK);
    aq_options *o = NULL;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, 1.0), AQ_OK);
    for (int weighted = 0; weighted <= 1; weighted++) {
        aq_quant *work = NULL;
        ck_assert_int_eq(aq_quant_clone(&work, q), AQ_OK);
        ck_assert_int_eq(aq_vstep(ctx, work, T, cols, weighted ? H : NULL, o, NULL), AQ_OK);
        ck_assert_mem_eq(aq_quant_codes(work, NULL), tc, 64);
        aq_quant_free(work);
    }
    /* A trust ratio of 0+ (tiny) rejects every change. */
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_TRUST_RATIO, 1e-9), AQ_OK);
    int64_t changed = -1;
    uint8_t before[64];
    memcpy(before, aq_quant_codes(q, NULL), 64);
    ck_assert_int_eq(aq_vstep(ctx, q, T, cols, NULL, o, &changed), AQ_OK);
    ck_assert_int_eq(changed, 0);
    ck_assert_mem_eq(aq_quant_codes(q, NULL), before, 64);
    /* bad input changes nothing */
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, 0.0), AQ_ERR_INVALID_ARG);
    T[5] = NAN;
    ck_assert_int_eq(aq_vstep(ctx, q, T, cols, NULL, o, &changed), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_vstep(ctx, q, T, cols - 1, NULL, o, &changed), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_vstep(ctx, NULL, T, cols, NULL, o, &changed), AQ_ERR_INVALID_ARG);
    ck_assert_mem_eq(aq_quant_codes(q, NULL), before, 64);
    aq_options_free(o);
    aq_hessian_free(H);
    free(T), free(X);
    aq_quant_free(q);
    aq_quant_free(truth);
    aq_context_free(ctx);
}
END_TEST


/* ---- naive aq_vstep, from the header's description: direct distances, no tabulation ---- */
typedef struct naive_q {
    int M, K, g, go;
    int64_t rows, cols, P, J;
    int wide;
    const void *codes;
    const float *cb, *sc;
} naive_q;

static naive_q naive_view(aq_quant *q, const char *format)
{
    aq_format f;
    naive_q n;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, format), AQ_OK);
    n.M = f.num_codebooks, n.K = 1 << f.bits_per_codebook, n.g = f.in_group_size, n.go = f.out_group_size;
    n.rows = aq_quant_rows(q), n.cols = aq_quant_cols(q), n.P = n.rows / n.go, n.J = n.cols / n.g;
    n.wide = f.bits_per_codebook > 8;
    n.codes = aq_quant_codes(q, NULL), n.cb = aq_quant_codebooks(q, NULL), n.sc = aq_quant_scales(q, NULL);
    return n;
}

static uint32_t naive_code(const naive_q *n, int64_t i, int m)
{
    size_t x = (size_t)i * (size_t)n->M + (size_t)m;
    return n->wide ? ((const uint16_t *)n->codes)[x] : ((const uint8_t *)n->codes)[x];
}

/* Distance of tile i = p·J + j with codes b; A = H (cols × cols, row-major) or NULL. */
static double naive_distance(const naive_q *n, const float *T, const double *A, int64_t i, const uint32_t *b)
{
    const int64_t p = i / n->J, j = i % n->J, g = n->g;
    double d = 0.0;
    for (int64_t t = 0; t < n->go; t++) {
        double e[64];
        for (int64_t a = 0; a < g; a++) {
            double w = 0.0;
            for (int m = 0; m < n->M; m++)
                w += n->cb[(((size_t)m * n->K + b[m]) * n->go + t) * g + a];
            e[a] = n->sc[p] * w - T[(p * n->go + t) * n->cols + j * g + a];
        }
        for (int64_t a = 0; a < g; a++)
            for (int64_t c = 0; c < g; c++)
                d += e[a] * (A ? A[(j * g + a) * n->cols + j * g + c] : (double)(a == c)) * e[c];
    }
    return d;
}

/* One coordinate pass: each code the argmin with the others fixed (ties keep the current code,
 * else the lowest); kept only if the distance decreased. Returns the decrease (0 if none). */
static double naive_pass(const naive_q *n, const float *T, const double *A, int64_t i, uint32_t *b)
{
    uint32_t old[16];
    for (int m = 0; m < n->M; m++)
        old[m] = b[m] = naive_code(n, i, m);
    const double before = naive_distance(n, T, A, i, b);
    for (int m = 0; m < n->M; m++) {
        uint32_t keep = b[m];
        double best = naive_distance(n, T, A, i, b);
        for (uint32_t k = 0; k < (uint32_t)n->K; k++) {
            b[m] = k;
            double d = naive_distance(n, T, A, i, b);
            if (d < best * (1 - 1e-12)) {
                best = d;
                keep = k;
            }
        }
        b[m] = keep;
    }
    const double after = naive_distance(n, T, A, i, b);
    if (!(after < before)) {
        memcpy(b, old, sizeof old[0] * (size_t)n->M);
        return 0.0;
    }
    return before - after;
}

typedef struct ranked { double key; int64_t i; } ranked;

static int ranked_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The codes naive aq_vstep leaves (LARGEST or GAIN), written into @p out (N × M codes). */
static void naive_vstep(const naive_q *n, const float *T, const double *A, int selection, double fraction,
                        uint32_t *out)
{
    const int64_t N = n->P * n->J;
    int64_t budget = (int64_t)ceil(fraction * (double)N);
    ranked *r = malloc(sizeof *r * (size_t)N);
    uint32_t *prop = malloc(sizeof(uint32_t) * (size_t)(N * n->M));
    for (int64_t i = 0; i < N; i++) {
        uint32_t b[16];
        for (int m = 0; m < n->M; m++)
            out[i * n->M + m] = b[m] = naive_code(n, i, m);
        r[i].i = i;
        r[i].key = selection == AQ_VSTEP_GAIN ? naive_pass(n, T, A, i, prop + i * n->M) : naive_distance(n, T, A, i, b);
    }
    qsort(r, (size_t)N, sizeof *r, ranked_desc);
    for (int64_t x = 0; x < budget && x < N; x++) {
        const int64_t i = r[x].i;
        if (selection != AQ_VSTEP_GAIN)
            naive_pass(n, T, A, i, prop + i * n->M);
        memcpy(out + i * n->M, prop + i * n->M, sizeof(uint32_t) * (size_t)n->M);
    }
    free(r), free(prop);
}

static void copy_codes(const naive_q *n, uint32_t *out)
{
    for (int64_t i = 0; i < n->P * n->J; i++)
        for (int m = 0; m < n->M; m++)
            out[i * n->M + m] = naive_code(n, i, m);
}

static double *random_hessian(aq_context *ctx, int64_t cols, uint64_t seed, aq_hessian **H)
{
    float *X = tu_random_matrix(3 * cols, cols, seed);
    double *A = malloc(sizeof(double) * (size_t)(cols * cols));
    ck_assert_int_eq(aq_hessian_create(H, ctx, cols), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(*H, X, 3 * cols, cols), AQ_OK);
    ck_assert_int_eq(aq_hessian_copy_matrix(*H, A, cols, 0.0), AQ_OK);
    free(X);
    return A;
}

/* LARGEST and GAIN against the naive version, weight space and H-weighted, on formats with
 * several codebooks, output groups and 16-bit codes; 1 and 3 threads give the same codes. */
START_TEST(vstep_matches_naive_implementation)
{
    static const char *formats[] = {"2x4g4", "3x3g2", "2x4g4o2", "1x9g2", "1x6g8"};
    const char *format = formats[_i];
    const int64_t rows = 16, cols = 32;
    for (int threads = 1; threads <= 3; threads += 2)
        for (int weighted = 0; weighted <= 1; weighted++)
            for (int selection = 0; selection <= 2; selection += 2)
                for (int f = 0; f < 3; f++) {
                    const double fraction = f == 0 ? 0.05 : f == 1 ? 0.3 : 1.0;
                    aq_context *ctx = tu_context(threads, 4);
                    aq_quant *q = tu_random_quant(ctx, format, rows, cols, 20 + (uint64_t)_i);
                    float *T = tu_random_matrix(rows, cols, 30 + (uint64_t)_i);
                    aq_hessian *H = NULL;
                    double *A = weighted ? random_hessian(ctx, cols, 40, &H) : NULL;
                    naive_q n = naive_view(q, format);
                    const int64_t N = n.P * n.J;
                    uint32_t *want = malloc(sizeof(uint32_t) * (size_t)(N * n.M)),
                             *before = malloc(sizeof(uint32_t) * (size_t)(N * n.M)),
                             *got = malloc(sizeof(uint32_t) * (size_t)(N * n.M));
                    copy_codes(&n, before);
                    naive_vstep(&n, T, A, selection, fraction, want);
                    aq_options *o = NULL;
                    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
                    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_VSTEP_SELECTION, selection), AQ_OK);
                    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, fraction), AQ_OK);
                    int64_t changed = -1, expect = 0;
                    ck_assert_int_eq(aq_vstep(ctx, q, T, cols, H, o, &changed), AQ_OK);
                    copy_codes(&n, got);
                    for (int64_t x = 0; x < N * n.M; x++) {
                        ck_assert_msg(got[x] == want[x], "%s sel %d weighted %d fraction %g threads %d: code %lld is %u, naive %u",
                                      format, selection, weighted, fraction, threads, (long long)x, got[x], want[x]);
                        expect += got[x] != before[x];
                    }
                    ck_assert_int_eq(changed, expect);
                    ck_assert_int_gt(changed, 0);
                    aq_options_free(o);
                    aq_hessian_free(H);
                    free(A), free(T), free(want), free(before), free(got);
                    aq_quant_free(q);
                    aq_context_free(ctx);
                }
}
END_TEST

static double total_distance(aq_quant *q, const char *format, const float *T)
{
    naive_q n = naive_view(q, format);
    double d = 0.0;
    uint32_t b[16];
    for (int64_t i = 0; i < n.P * n.J; i++) {
        for (int m = 0; m < n.M; m++)
            b[m] = naive_code(&n, i, m);
        d += naive_distance(&n, T, NULL, i, b);
    }
    return d;
}

/* GAIN keeps the largest decreases of the same per-tile proposals, so at an equal budget it
 * lowers the total distance at least as much as LARGEST and SAMPLED; the budget holds for all. */
START_TEST(vstep_gain_beats_other_selections_at_equal_budget)
{
    const char *format = "2x4g4";
    const int64_t rows = 32, cols = 32, N = rows * cols / 4;
    aq_context *ctx = tu_context(2, 5);
    aq_quant *q = tu_random_quant(ctx, format, rows, cols, 50);
    float *T = tu_random_matrix(rows, cols, 51);
    const double start = total_distance(q, format, T);
    double decrease[3];
    for (int selection = 0; selection <= 2; selection++) {
        aq_quant *w = NULL;
        aq_options *o = NULL;
        ck_assert_int_eq(aq_quant_clone(&w, q), AQ_OK);
        ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
        ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_VSTEP_SELECTION, selection), AQ_OK);
        ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, 0.05), AQ_OK);
        ck_assert_int_eq(aq_vstep(ctx, w, T, cols, NULL, o, NULL), AQ_OK);
        decrease[selection] = start - total_distance(w, format, T);
        const uint8_t *a = aq_quant_codes(q, NULL), *b = aq_quant_codes(w, NULL);
        int64_t tiles = 0;
        for (int64_t i = 0; i < N; i++)
            tiles += a[2 * i] != b[2 * i] || a[2 * i + 1] != b[2 * i + 1];
        ck_assert_int_le(tiles, (int64_t)ceil(0.05 * N));
        ck_assert_int_gt(tiles, 0);
        aq_options_free(o);
        aq_quant_free(w);
    }
    ck_assert(decrease[0] > 0 && decrease[1] > 0);
    ck_assert_msg(decrease[2] >= decrease[0] * (1 - 1e-9) && decrease[2] >= decrease[1] * (1 - 1e-9),
                  "GAIN %g, LARGEST %g, SAMPLED %g", decrease[2], decrease[0], decrease[1]);
    free(T);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

static double frob(const float *A, const float *B, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)A[i] - (B ? B[i] : 0.0f);
        s += d * d;
    }
    return sqrt(s);
}

/* AQ_OPT_VSTEP_MAX_CHANGE: ‖Ŵ_new − Ŵ_old‖_F <= r ‖Ŵ_old‖_F for every r; the changed tiles
 * for a smaller r are a prefix (subset) of those for a larger one; tiny r changes nothing. */
START_TEST(vstep_max_change_bounds_the_whole_matrix_change)
{
    const char *format = "2x4g4";
    const int64_t rows = 32, cols = 32, N = rows * cols / 4;
    const double ratios[] = {1e-9, 0.02, 0.05, 0.1, 0.2, 0.0};
    aq_context *ctx = tu_context(2, 6);
    aq_quant *q = tu_random_quant(ctx, format, rows, cols, 60);
    float *T = tu_random_matrix(rows, cols, 61), *W0 = malloc(sizeof(float) * rows * cols),
          *W1 = malloc(sizeof(float) * rows * cols);
    uint8_t *prev = calloc((size_t)N, 1);
    aq_quant_dequantize(q, W0, cols);
    for (int selection = 0; selection <= 2; selection += 2) {
        int64_t prev_changed = 0;
        memset(prev, 0, (size_t)N);
        for (size_t r = 0; r < sizeof ratios / sizeof ratios[0]; r++) {
            aq_quant *w = NULL;
            aq_options *o = NULL;
            int64_t changed = -1;
            ck_assert_int_eq(aq_quant_clone(&w, q), AQ_OK);
            ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
            ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_VSTEP_SELECTION, selection), AQ_OK);
            ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_FRACTION, 0.5), AQ_OK);
            ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_CHANGE, ratios[r]), AQ_OK);
            ck_assert_int_eq(aq_vstep(ctx, w, T, cols, NULL, o, &changed), AQ_OK);
            aq_quant_dequantize(w, W1, cols);
            if (ratios[r] > 0)
                ck_assert_msg(frob(W1, W0, rows * cols) <= ratios[r] * frob(W0, NULL, rows * cols) * (1 + 1e-6),
                              "ratio %g: change %g of %g", ratios[r], frob(W1, W0, rows * cols), frob(W0, NULL, rows * cols));
            if (r == 0)
                ck_assert_int_eq(changed, 0);
            ck_assert_int_ge(changed, prev_changed);
            const uint8_t *a = aq_quant_codes(q, NULL), *b = aq_quant_codes(w, NULL);
            for (int64_t i = 0; i < N; i++) {
                const uint8_t diff = a[2 * i] != b[2 * i] || a[2 * i + 1] != b[2 * i + 1];
                ck_assert(!prev[i] || diff); /* a prefix of the priority order */
                prev[i] = diff;
            }
            prev_changed = changed;
            aq_options_free(o);
            aq_quant_free(w);
        }
        ck_assert_int_gt(prev_changed, 0); /* r = 0 (off): the plain budget */
    }
    aq_options *o = NULL;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_VSTEP_MAX_CHANGE, -1.0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_VSTEP_SELECTION, 3), AQ_ERR_INVALID_ARG);
    aq_options_free(o);
    free(T), free(W0), free(W1), free(prev);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pv");
    TCase *tc = tcase_create("pv");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, backward_equals_finite_differences);
    tcase_add_test(tc, vstep_respects_budget_and_never_increases_distance);
    tcase_add_test(tc, vstep_recovers_a_reachable_target);
    tcase_add_loop_test(tc, vstep_matches_naive_implementation, 0, 5);
    tcase_add_test(tc, vstep_gain_beats_other_selections_at_equal_budget);
    tcase_add_test(tc, vstep_max_change_bounds_the_whole_matrix_change);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

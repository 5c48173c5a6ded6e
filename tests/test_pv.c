/* PV-tuning primitives: aq_quant_backward against finite differences; aq_vstep's budget,
 * monotonicity, exact recovery of a reachable target, trust ratio and bad input. */
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

int main(void)
{
    Suite *s = suite_create("pv");
    TCase *tc = tcase_create("pv");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, backward_equals_finite_differences);
    tcase_add_test(tc, vstep_respects_budget_and_never_increases_distance);
    tcase_add_test(tc, vstep_recovers_a_reachable_target);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The int16-table mat-vec (AQ_MATVEC_INT16, libaqinit/lut/lut_int16.h) against a naive product
 * in double: within the rounding bound (2) of lut_int16.h computed here independently, the
 * same bits for every thread count and (same float tables) for every kernel, the relative error
 * on LLM-like data, the public entry point, allocation failure. */
#include <stdio.h>
#include <string.h>

#include "lut/lut.h"
#include "testutil.h"

/* Ŵ x in double, and per row the bound (2) plus float rounding: the tables' entries
 * lut[s][k] = ⟨x_j, C_m[k]⟩ in double, their largest magnitude per block of 64 positions
 * (d_b ≤ that / 32767 up to float rounding), and the magnitude of the row's terms. */
static void naive_with_bound(aq_quant *q, const float *x, double *y, double *bound)
{
    aq_format f;
    aq_format_init(&f);
    aq_quant_get_format(&f, q);
    const int64_t rows = aq_quant_rows(q), cols = aq_quant_cols(q), g = f.in_group_size;
    const int64_t J = cols / g, M = f.num_codebooks, K = (int64_t)1 << f.bits_per_codebook, n = J * M;
    const int64_t n_blocks = (n + 63) / 64;
    const uint8_t *codes = aq_quant_codes(q, NULL);
    const float *cb = aq_quant_codebooks(q, NULL), *sc = aq_quant_scales(q, NULL);
    double *lut = malloc(sizeof(double) * (size_t)(n * K)), *bmax = calloc((size_t)n_blocks, sizeof(double));
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < K; k++) {
            double v = 0.0;
            for (int64_t a = 0; a < g; a++)
                v += (double)cb[((s % M) * K + k) * g + a] * x[(s / M) * g + a];
            lut[s * K + k] = v;
            bmax[s / 64] = fabs(v) > bmax[s / 64] ? fabs(v) : bmax[s / 64];
        }
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0.0, mag = 0.0, rnd = 0.0;
        for (int64_t s = 0; s < n; s++) {
            const double v = lut[s * K + codes[r * n + s]];
            acc += v;
            mag += fabs(v);
        }
        for (int64_t b = 0; b < n_blocks; b++)
            rnd += (double)(b + 1 < n_blocks ? 64 : n - 64 * b) * bmax[b] / 32767.0 / 2.0;
        y[r] = sc[r] * acc;
        /* (2) with 1e-6 slack for d_b's own rounding; float tables (g products) and (1) */
        bound[r] = fabs(sc[r]) * (rnd * (1.0 + 1e-6) + (double)(g + n_blocks + 8) * 0x1p-23 * mag * 4.0) + 1e-30;
    }
    free(lut);
    free(bmax);
}

static void check_bound(aq_quant *q, const float *y, const double *ref, const double *bound, const char *what)
{
    for (int64_t i = 0; i < aq_quant_rows(q); i++)
        ck_assert_msg(fabs(y[i] - ref[i]) <= bound[i], "%s: y[%lld] = %.9g vs %.9g (bound %.3g)", what, (long long)i,
                      y[i], ref[i], bound[i]);
}

typedef struct q16_case {
    const char *format;
    int64_t rows, cols;
} q16_case;

/* Row tails of the 64-row blocks, n = J·M below, at and above multiples of 64 and of the
 * 16-position chunks, M = 1..3, B = 4..8, g = 2..16. */
static const q16_case cases[] = {
    {"2x8g8", 64, 256},  {"2x8g8", 131, 520}, {"1x8g8", 70, 8},   {"3x8g8", 65, 344}, {"2x8g4", 100, 260},
    {"2x6g8", 33, 136},  {"1x4g2", 17, 70},   {"2x8g16", 200, 512}, {"4x8g8", 96, 128},
};

START_TEST(int16_within_bound_same_bits_for_any_threads)
{
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        aq_context *ctx = tu_context(1, 1);
        aq_quant *q = tu_random_quant(ctx, cases[c].format, cases[c].rows, cases[c].cols, 300 + c);
        const int64_t rows = cases[c].rows;
        float *x = tu_random_matrix(1, cases[c].cols, 400 + c);
        float *y1 = malloc(sizeof(float) * (size_t)rows), *yt = malloc(sizeof(float) * (size_t)rows);
        double *ref = malloc(sizeof(double) * (size_t)rows), *bound = malloc(sizeof(double) * (size_t)rows);
        char what[96];
        naive_with_bound(q, x, ref, bound);
        for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
            if (!aqi_lut_isa_available(isa))
                continue;
            ck_assert_int_eq(aq_context_set_threads(ctx, 1), AQ_OK);
            for (int64_t i = 0; i < rows; i++)
                y1[i] = NAN;
            ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y1, isa, AQI_LUT_INT16), AQ_OK);
            snprintf(what, sizeof what, "%s %lldx%lld isa %d", cases[c].format, (long long)rows,
                     (long long)cases[c].cols, isa);
            check_bound(q, y1, ref, bound, what);
            for (int threads = 2; threads <= 4; threads++) {
                ck_assert_int_eq(aq_context_set_threads(ctx, threads), AQ_OK);
                for (int64_t i = 0; i < rows; i++)
                    yt[i] = NAN;
                ck_assert_int_eq(aqi_quant_matvec_isa(q, x, yt, isa, AQI_LUT_INT16 | AQI_LUT_SPLIT), AQ_OK);
                ck_assert_msg(!memcmp(y1, yt, sizeof(float) * (size_t)rows), "%s: %d threads differ", what, threads);
            }
        }
        free(x);
        free(y1);
        free(yt);
        free(ref);
        free(bound);
        aq_quant_free(q);
        aq_context_free(ctx);
    }
}
END_TEST

/* g ≠ 8: every ISA builds its float tables with the portable code, so the VBMI and the
 * portable block kernels see the same int16 tables and must give the same bits. */
START_TEST(int16_kernels_agree_bit_for_bit)
{
    static const q16_case same[] = {{"2x8g4", 130, 272}, {"3x8g16", 64, 208}, {"1x7g2", 77, 250}};
    if (!aqi_lut_isa_available(AQI_ISA_AVX512) || !aqi_lut16_vbmi_available())
        return; /* nothing to compare on this CPU */
    aq_context *ctx = tu_context(2, 1);
    for (size_t c = 0; c < sizeof same / sizeof *same; c++) {
        aq_quant *q = tu_random_quant(ctx, same[c].format, same[c].rows, same[c].cols, 500 + c);
        float *x = tu_random_matrix(1, same[c].cols, 600 + c), y0[130], y1[130];
        ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y0, AQI_ISA_PORTABLE, AQI_LUT_INT16), AQ_OK);
        ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y1, AQI_ISA_AVX512, AQI_LUT_INT16), AQ_OK);
        ck_assert_msg(!memcmp(y0, y1, sizeof(float) * (size_t)same[c].rows), "%s: vbmi != portable",
                      same[c].format);
        free(x);
        aq_quant_free(q);
    }
    aq_context_free(ctx);
}
END_TEST

/* LLM-like data: Gaussian codebooks, scales around 1, activations with a few outlier channels
 * 30x larger (every 97th). ‖ŷ − y‖ / ‖y‖ ≤ 1e-3, the bound the documentation states (measured
 * 1.4e-4 here: an outlier's block gets a coarse scale; without outliers ~2e-5). */
START_TEST(int16_relative_error_on_llm_like_data)
{
    aq_context *ctx = tu_context(2, 1);
    const int64_t rows = 512, cols = 2048;
    aq_quant *q = tu_random_quant(ctx, "2x8g8", rows, cols, 700);
    float *x = tu_random_matrix(1, cols, 701), *y = malloc(sizeof(float) * (size_t)rows);
    double *ref = malloc(sizeof(double) * (size_t)rows), *bound = malloc(sizeof(double) * (size_t)rows);
    for (int64_t i = 0; i < cols; i += 97)
        x[i] *= 30.0f;
    naive_with_bound(q, x, ref, bound);
    for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
        if (!aqi_lut_isa_available(isa))
            continue;
        double num = 0.0, den = 0.0;
        ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, isa, AQI_LUT_INT16), AQ_OK);
        check_bound(q, y, ref, bound, "llm-like");
        for (int64_t i = 0; i < rows; i++) {
            num += (y[i] - ref[i]) * (y[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        ck_assert_msg(sqrt(num / den) <= 1e-3, "isa %d: relative error %.3g", isa, sqrt(num / den));
    }
    free(x);
    free(y);
    free(ref);
    free(bound);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* aq_quant_matvec_kernel: EXACT is aq_quant_matvec bit for bit, INT16 within the bound (the
 * exact kernel where the format or CPU has no int16 path), an unknown kernel is refused. */
START_TEST(public_kernel_choice)
{
    aq_context *ctx = tu_context(2, 1);
    aq_quant *q = tu_random_quant(ctx, "2x8g8", 300, 256, 800), *qw = tu_random_quant(ctx, "1x16g8", 40, 64, 801);
    float *x = tu_random_matrix(1, 256, 802), y0[300], y1[300];
    double ref[300], bound[300];
    int64_t v = -1;
    ck_assert_int_eq(aq_quant_matvec(q, x, y0), AQ_OK);
    ck_assert_int_eq(aq_quant_matvec_kernel(q, x, y1, AQ_MATVEC_EXACT), AQ_OK);
    ck_assert(!memcmp(y0, y1, sizeof y0));
    naive_with_bound(q, x, ref, bound);
    ck_assert_int_eq(aq_quant_matvec_kernel(q, x, y1, AQ_MATVEC_INT16), AQ_OK);
    check_bound(q, y1, ref, bound, "public int16");
    ck_assert_int_eq(aq_quant_matvec(qw, x, y0), AQ_OK); /* 16-bit codes: the exact kernel */
    ck_assert_int_eq(aq_quant_matvec_kernel(qw, x, y1, AQ_MATVEC_INT16), AQ_OK);
    ck_assert(!memcmp(y0, y1, sizeof(float) * 40));
    for (int64_t n = 3; n <= 100; n += 97) { /* int16 mat-vecs (3 rows), dequantize + sgemm (100) */
        float *X = tu_random_matrix(n, 256, 803), *Y = malloc(sizeof(float) * (size_t)(n * 300));
        ck_assert_int_eq(aq_quant_matmul_kernel(q, X, n, 256, Y, 300, AQ_MATVEC_INT16), AQ_OK);
        for (int64_t r = 0; r < n; r += 97) {
            naive_with_bound(q, X + r * 256, ref, bound);
            check_bound(q, Y + r * 300, ref, bound, "matmul int16");
        }
        free(X);
        free(Y);
    }
    ck_assert_int_eq(aq_quant_matmul_kernel(q, x, 1, 256, y1, 300, 7), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec_kernel(q, x, y1, 7), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "kernel"));
    ck_assert_int_eq(aq_quant_matvec_kernel(NULL, x, y1, AQ_MATVEC_INT16), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec_kernel(q, NULL, y1, AQ_MATVEC_INT16), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_constant(&v, "AQ_MATVEC_INT16"), AQ_OK);
    ck_assert_int_eq(v, AQ_MATVEC_INT16);
    free(x);
    aq_quant_free(q);
    aq_quant_free(qw);
    aq_context_free(ctx);
}
END_TEST

START_TEST(int16_allocation_failure_leaves_y_unwritten)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    ck_assert_int_eq(aq_context_set_threads(ctx, 2), AQ_OK);
    aq_quant *q = tu_random_quant(ctx, "2x8g8", 130, 256, 900);
    float *x = tu_random_matrix(1, 256, 901), y[130];
    for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
        if (!aqi_lut_isa_available(isa))
            continue;
        for (int i = 0; i < 130; i++)
            y[i] = 7.0f;
        fa.fail_at = fa.n_allocs + 1;
        ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, isa, AQI_LUT_INT16 | AQI_LUT_SPLIT), AQ_ERR_NOMEM);
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "memory"));
        for (int i = 0; i < 130; i++)
            ck_assert(y[i] == 7.0f);
    }
    fa.fail_at = 0;
    ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, aqi_lut_best_isa(), AQI_LUT_INT16), AQ_OK);
    free(x);
    aq_quant_free(q);
    aq_context_free(ctx);
    ck_assert_int_eq(fa.live, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lut_int16");
    TCase *tc = tcase_create("lut_int16");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, int16_within_bound_same_bits_for_any_threads);
    tcase_add_test(tc, int16_kernels_agree_bit_for_bit);
    tcase_add_test(tc, int16_relative_error_on_llm_like_data);
    tcase_add_test(tc, public_kernel_choice);
    tcase_add_test(tc, int16_allocation_failure_leaves_y_unwritten);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* LUT inference kernels against a naive dequantize + product in double, for every kernel this
 * CPU can run (ISA × table-read kernel × thread split × forced path), on shapes that leave row
 * tails, odd group sizes, both code widths and 1–3 codebooks; the code packing of large layers;
 * allocation failure; the dense batch path; bad input. */
#include <stdio.h>
#include <string.h>

#include "lut/lut.h"
#include "testutil.h"

/* Ŵ x in double straight from the layout of docs/formats.md, and per row the sum of the
 * magnitudes of its terms |s_p·C_m[k][t][a]·x[j·g + a]| (what float rounding scales with). */
static void naive_matvec(aq_quant *q, const float *x, double *y, double *mag)
{
    aq_format f;
    aq_format_init(&f);
    aq_quant_get_format(&f, q);
    const int64_t rows = aq_quant_rows(q), cols = aq_quant_cols(q), g = f.in_group_size, go = f.out_group_size;
    const int64_t J = cols / g, M = f.num_codebooks, K = (int64_t)1 << f.bits_per_codebook;
    const void *codes = aq_quant_codes(q, NULL);
    const float *cb = aq_quant_codebooks(q, NULL), *sc = aq_quant_scales(q, NULL);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t p = r / go, t = r % go;
        double acc = 0.0, abs_acc = 0.0;
        for (int64_t j = 0; j < J; j++)
            for (int64_t m = 0; m < M; m++) {
                const int64_t idx = (p * J + j) * M + m;
                const int64_t k = K > 256 ? ((const uint16_t *)codes)[idx] : ((const uint8_t *)codes)[idx];
                for (int64_t a = 0; a < g; a++) {
                    const double term = (double)cb[((m * K + k) * go + t) * g + a] * x[j * g + a];
                    acc += term;
                    abs_acc += fabs(term);
                }
            }
        y[r] = sc[p] * acc;
        mag[r] = fabs(sc[p]) * abs_acc;
    }
}

/* Float rounding bound: the table entries are sums of g products, each row a sum of J·M entries,
 * then one partial-sum addition per thread and the scale: |error| ≤ (g + J·M + 8)·2⁻²³·mag.
 * A single wrong table read is off by a whole term, far above this. */
static void check_close(aq_quant *q, const float *y, const double *ref, const double *mag, const char *what)
{
    aq_format f;
    aq_format_init(&f);
    aq_quant_get_format(&f, q);
    const int64_t rows = aq_quant_rows(q), J = aq_quant_cols(q) / f.in_group_size;
    const double n_ops = (double)f.in_group_size + (double)J * f.num_codebooks + 8.0;
    for (int64_t i = 0; i < rows; i++) {
        const double bound = n_ops * 0x1p-23 * mag[i] + 1e-30;
        ck_assert_msg(fabs(y[i] - ref[i]) <= bound, "%s: y[%lld] = %.9g vs %.9g (bound %.3g)", what, (long long)i, y[i],
                      ref[i], bound);
    }
}

static void fill_nan(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = NAN; /* an unwritten output fails check_close */
}

/* The variants aqi_quant_matvec_isa can run for one ISA. */
static const int variants[] = {
    0,
    AQI_LUT_FORCE_TABLES,
    AQI_LUT_FORCE_TABLES | AQI_LUT_GATHER,
    AQI_LUT_FORCE_TABLES | AQI_LUT_LOADS,
    AQI_LUT_FORCE_TABLES | AQI_LUT_SPLIT | AQI_LUT_GATHER,
    AQI_LUT_FORCE_TABLES | AQI_LUT_SPLIT | AQI_LUT_LOADS,
    AQI_LUT_FORCE_DIRECT,
    AQI_LUT_FORCE_DIRECT | AQI_LUT_SPLIT,
};
#define N_VARIANTS (int)(sizeof variants / sizeof *variants)

/* Every variant of every available ISA against the naive product; the two table-read kernels
 * (gathers, scalar loads) of one ISA and split must agree bit for bit; aq_quant_matvec too. */
static void check_all_variants(aq_quant *q, const float *x, const char *what)
{
    const int64_t rows = aq_quant_rows(q);
    double *ref = malloc(sizeof(double) * (size_t)rows), *mag = malloc(sizeof(double) * (size_t)rows);
    float *y[N_VARIANTS];
    char label[128];
    naive_matvec(q, x, ref, mag);
    for (int v = 0; v < N_VARIANTS; v++)
        y[v] = malloc(sizeof(float) * (size_t)rows);
    for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
        if (!aqi_lut_isa_available(isa))
            continue;
        for (int v = 0; v < N_VARIANTS; v++) {
            snprintf(label, sizeof label, "%s isa %d flags %d", what, isa, variants[v]);
            fill_nan(y[v], rows);
            ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y[v], isa, variants[v]), AQ_OK);
            check_close(q, y[v], ref, mag, label);
        }
        /* gathers (2) and loads (3), and their split versions (4, 5), give the same bits */
        ck_assert_msg(!memcmp(y[2], y[3], sizeof(float) * (size_t)rows), "%s isa %d: gather != loads", what, isa);
        ck_assert_msg(!memcmp(y[4], y[5], sizeof(float) * (size_t)rows), "%s isa %d: split gather != loads", what,
                      isa);
    }
    fill_nan(y[0], rows);
    ck_assert_int_eq(aq_quant_matvec(q, x, y[0]), AQ_OK);
    check_close(q, y[0], ref, mag, what);
    fill_nan(y[1], rows);
    ck_assert_int_eq(aq_quant_matvec(q, x, y[1]), AQ_OK); /* same inputs, same threads: same bits */
    ck_assert(!memcmp(y[0], y[1], sizeof(float) * (size_t)rows));
    for (int v = 0; v < N_VARIANTS; v++)
        free(y[v]);
    free(ref);
    free(mag);
}

typedef struct lut_case {
    const char *format;
    int64_t rows, cols;
} lut_case;

/* Small layers: row counts that leave tails of 8- and 16-row blocks, K·g_o below and above the
 * row count (direct vs tables by default), K·g_o < 8, g = 1, 2, 4, 8, 16, g_o = 1, 2, 3,
 * M = 1..3, B = 3..16 (8- and 16-bit codes). */
static const lut_case small_cases[] = {
    {"2x8g8", 60, 96},    {"2x8g8", 264, 72},  {"1x8g4", 300, 44},   {"3x8g8", 257, 40},  {"2x4g4o2", 62, 96},
    {"2x8g8o3", 27, 48},  {"3x3g2", 45, 30},   {"2x2g1", 33, 7},     {"1x8g16", 40, 64},  {"1x10g8", 1030, 48},
    {"1x12g8o2", 50, 32}, {"1x16g8", 40, 24},  {"2x16g8", 20, 16},   {"2x8g8", 64, 8},    {"2x6g8", 19, 40},
};

START_TEST(every_kernel_equals_naive)
{
    for (int threads = 1; threads <= 3; threads += 2) {
        aq_context *ctx = tu_context(threads, 1);
        for (size_t c = 0; c < sizeof small_cases / sizeof *small_cases; c++) {
            const lut_case *lc = &small_cases[c];
            aq_quant *q = tu_random_quant(ctx, lc->format, lc->rows, lc->cols, 7 + c);
            float *x = tu_random_matrix(1, lc->cols, 50 + c);
            char what[64];
            snprintf(what, sizeof what, "%s %lldx%lld, %d threads", lc->format, (long long)lc->rows,
                     (long long)lc->cols, threads);
            check_all_variants(q, x, what);
            free(x);
            aq_quant_free(q);
        }
        aq_context_free(ctx);
    }
}
END_TEST

/* Layers with ≥ 256 KB of codes: the codes of each chunk of output groups are packed; several
 * slices, sub-slices and chunks, 8- and 16-bit codes, g_o = 2, row tails. */
START_TEST(packed_codes_of_large_layers)
{
    static const lut_case cases[] = {{"2x8g8", 2052, 512}, {"1x10g8", 2052, 512}, {"2x8g8o2", 2052, 1024}};
    aq_context *ctx = tu_context(2, 1);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        aq_quant *q = tu_random_quant(ctx, cases[c].format, cases[c].rows, cases[c].cols, 70 + c);
        float *x = tu_random_matrix(1, cases[c].cols, 80 + c);
        size_t code_bytes = 0;
        aq_quant_codes(q, &code_bytes);
        ck_assert_uint_ge(code_bytes, 262144);
        check_all_variants(q, x, cases[c].format);
        free(x);
        aq_quant_free(q);
    }
    aq_context_free(ctx);
}
END_TEST

/* The partial sums of the thread parts and the row split of the direct path give results
 * within rounding of one thread's. */
START_TEST(thread_counts_agree)
{
    static const lut_case cases[] = {{"2x8g8", 300, 200}, {"1x16g8", 64, 200}, {"2x4g4o2", 40, 12}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        aq_context *ctx = tu_context(1, 1);
        aq_quant *q = tu_random_quant(ctx, cases[c].format, cases[c].rows, cases[c].cols, 90 + c);
        float *x = tu_random_matrix(1, cases[c].cols, 95 + c), y1[300], yt[300];
        double ref[300], mag[300];
        naive_matvec(q, x, ref, mag);
        ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y1, aqi_lut_best_isa(), 0), AQ_OK);
        for (int threads = 2; threads <= 5; threads++) {
            ck_assert_int_eq(aq_context_set_threads(ctx, threads), AQ_OK);
            fill_nan(yt, cases[c].rows);
            ck_assert_int_eq(aqi_quant_matvec_isa(q, x, yt, aqi_lut_best_isa(), AQI_LUT_SPLIT), AQ_OK);
            check_close(q, yt, ref, mag, cases[c].format);
            for (int64_t i = 0; i < cases[c].rows; i++)
                ck_assert(fabs(yt[i] - y1[i]) <= 1e-5 * mag[i]);
        }
        free(x);
        aq_quant_free(q);
        aq_context_free(ctx);
    }
}
END_TEST

/* A failed scratch allocation returns AQ_ERR_NOMEM with a message and leaves y unwritten; the
 * direct path allocates nothing. */
START_TEST(allocation_failure_leaves_y_unwritten)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    ck_assert_int_eq(aq_context_set_threads(ctx, 2), AQ_OK);
    aq_quant *q = tu_random_quant(ctx, "2x4g4", 64, 96, 5);      /* K = 16 ≤ 64 rows: tables */
    aq_quant *qd = tu_random_quant(ctx, "2x8g8", 64, 96, 6);     /* K = 256 > 64 rows: direct */
    aq_quant *qp = tu_random_quant(ctx, "2x8g8", 2052, 512, 7);  /* packed codes */
    float *x = tu_random_matrix(1, 512, 8), y[2052];
    const aq_quant *tables[] = {q, qp};
    for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
        if (!aqi_lut_isa_available(isa))
            continue;
        for (int k = 0; k < 2; k++)
            for (int flags = 0; flags <= AQI_LUT_SPLIT; flags += AQI_LUT_SPLIT) {
                const int64_t rows = aq_quant_rows(tables[k]);
                for (int64_t i = 0; i < rows; i++)
                    y[i] = 7.0f;
                fa.fail_at = fa.n_allocs + 1;
                ck_assert_int_eq(aqi_quant_matvec_isa(tables[k], x, y, isa, flags), AQ_ERR_NOMEM);
                ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "memory"));
                for (int64_t i = 0; i < rows; i++)
                    ck_assert(y[i] == 7.0f);
            }
    }
    fa.fail_at = fa.n_allocs + 1;
    ck_assert_int_eq(aq_quant_matmul(q, x, 1, 96, y, 64), AQ_ERR_NOMEM);
    const long before = fa.n_allocs;
    ck_assert_int_eq(aq_quant_matvec(qd, x, y), AQ_OK);
    ck_assert_int_eq(fa.n_allocs, before);
    fa.fail_at = 0;
    ck_assert_int_eq(aq_quant_matvec(q, x, y), AQ_OK); /* and works again */
    free(x);
    aq_quant_free(q);
    aq_quant_free(qd);
    aq_quant_free(qp);
    aq_context_free(ctx);
    ck_assert_int_eq(fa.live, 0);
}
END_TEST

START_TEST(matmul_small_and_dense_batches)
{
    aq_context *ctx = tu_context(2, 1);
    const int64_t rows = 48, cols = 64, ldx = 70, ldy = 50;
    aq_quant *q = tu_random_quant(ctx, "2x6g8", rows, cols, 3);
    for (int64_t n = 1; n <= 20; n += 19) { /* 1 row: LUT path; 20 rows: dequantize + sgemm */
        float *X = tu_random_matrix(n, ldx, 60 + (uint64_t)n), *Y = calloc((size_t)(n * ldy), sizeof(float));
        double ref[48], mag[48];
        ck_assert_int_eq(aq_quant_matmul(q, X, n, ldx, Y, ldy), AQ_OK);
        for (int64_t r = 0; r < n; r++) {
            naive_matvec(q, X + r * ldx, ref, mag);
            check_close(q, Y + r * ldy, ref, mag, "matmul");
            for (int64_t i = rows; i < ldy; i++)
                ck_assert(Y[r * ldy + i] == 0.0f); /* padding untouched */
        }
        free(X);
        free(Y);
    }
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* Below the crossover (16·g/M = 64 rows for 2x8 g8 on the table path) the batch is mat-vecs:
 * the same bits as aq_quant_matvec row by row; above it within rounding of the naive product. */
START_TEST(matmul_crossover)
{
    aq_context *ctx = tu_context(2, 1);
    const int64_t rows = 300, cols = 64;
    aq_quant *q = tu_random_quant(ctx, "2x8g8", rows, cols, 31);
    for (int64_t n = 63; n <= 64; n++) {
        float *X = tu_random_matrix(n, cols, 32), *Y = malloc(sizeof(float) * (size_t)(n * rows)), y[300];
        double ref[300], mag[300];
        ck_assert_int_eq(aq_quant_matmul(q, X, n, cols, Y, rows), AQ_OK);
        for (int64_t r = 0; r < n; r += 31) {
            ck_assert_int_eq(aq_quant_matvec(q, X + r * cols, y), AQ_OK);
            if (n == 63)
                ck_assert(!memcmp(y, Y + r * rows, sizeof y));
            naive_matvec(q, X + r * cols, ref, mag);
            check_close(q, Y + r * rows, ref, mag, "matmul crossover");
        }
        free(X);
        free(Y);
    }
    aq_quant_free(q);
    /* the dense path in panels of 16 MB of Ŵ: 2x8 g8 o2, 2100 × 2048 = two panels (2048 + 52 rows) */
    q = tu_random_quant(ctx, "2x8g8o2", 2100, 2048, 33);
    {
        const int64_t n = 64, r_out = 2100;
        float *X = tu_random_matrix(n, 2048, 34), *Y = malloc(sizeof(float) * (size_t)(n * r_out));
        double *ref = malloc(sizeof(double) * r_out), *mag = malloc(sizeof(double) * r_out);
        ck_assert_int_eq(aq_quant_matmul(q, X, n, 2048, Y, r_out), AQ_OK);
        for (int64_t r = 0; r < n; r += 21) {
            naive_matvec(q, X + r * 2048, ref, mag);
            check_close(q, Y + r * r_out, ref, mag, "matmul panels");
        }
        free(X);
        free(Y);
        free(ref);
        free(mag);
    }
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

START_TEST(bad_input)
{
    aq_context *ctx = tu_context(1, 1);
    aq_quant *q = tu_random_quant(ctx, "2x4g4", 8, 16, 1);
    float x[16] = {0}, y[8], Y[8 * 16];
    ck_assert_int_eq(aq_quant_matvec(NULL, x, y), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec(q, NULL, y), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec(q, x, NULL), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, -1, 0), AQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, AQI_ISA_AVX512 + 1, 0), AQ_ERR_UNSUPPORTED);
    x[3] = NAN;
    ck_assert_int_eq(aq_quant_matvec(q, x, y), AQ_ERR_NONFINITE);
    x[3] = 0.0f;
    ck_assert_int_eq(aq_quant_matmul(q, x, 1, 15, Y, 8), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_quant_matmul(q, x, 1, 16, Y, 7), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_quant_matmul(q, x, -1, 16, Y, 8), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matmul(q, x, 0, 16, Y, 8), AQ_OK);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lut");
    TCase *tc = tcase_create("lut");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, every_kernel_equals_naive);
    tcase_add_test(tc, packed_codes_of_large_layers);
    tcase_add_test(tc, thread_counts_agree);
    tcase_add_test(tc, allocation_failure_leaves_y_unwritten);
    tcase_add_test(tc, matmul_small_and_dense_batches);
    tcase_add_test(tc, matmul_crossover);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

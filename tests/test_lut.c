/* LUT inference kernels against a naive dequantize + product in double, for every kernel this
 * CPU can run, the direct path, and the dense batch path; bad input. */
#include <string.h>

#include "lut.h"
#include "testutil.h"

/* Ŵ x in double straight from the layout of docs/formats.md. */
static void naive_matvec(aq_quant *q, const float *x, double *y)
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
        double acc = 0.0;
        for (int64_t j = 0; j < J; j++)
            for (int64_t m = 0; m < M; m++) {
                const int64_t idx = (p * J + j) * M + m;
                const int64_t k = K > 256 ? ((const uint16_t *)codes)[idx] : ((const uint8_t *)codes)[idx];
                for (int64_t a = 0; a < g; a++)
                    acc += (double)cb[((m * K + k) * go + t) * g + a] * x[j * g + a];
            }
        y[r] = sc[p] * acc;
    }
}

static void check_close(const float *y, const double *ref, int64_t n, double scale, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(y[i] - ref[i]) <= 1e-4 * scale, "%s: y[%lld] = %.7g vs %.7g", what, (long long)i, y[i],
                      ref[i]);
}

START_TEST(every_kernel_equals_naive)
{
    static const char *formats[] = {"2x8g8", "1x8g4", "2x4g4o2", "3x3g2", "1x10g8", "1x16g8"};
    aq_context *ctx = tu_context(2, 1);
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++) {
        const int64_t rows = 64, cols = 96;
        aq_quant *q = tu_random_quant(ctx, formats[f], rows, cols, 7 + f);
        float *x = tu_random_matrix(1, cols, 50 + f), y[64];
        double ref[64], scale = 0.0;
        naive_matvec(q, x, ref);
        for (int64_t i = 0; i < rows; i++)
            scale = fmax(scale, fabs(ref[i]));
        for (int isa = AQI_ISA_PORTABLE; isa <= AQI_ISA_AVX512; isa++) {
            if (!aqi_lut_isa_available(isa))
                continue;
            for (int force = 0; force <= 1; force++) {
                memset(y, 0, sizeof y);
                ck_assert_int_eq(aqi_quant_matvec_isa(q, x, y, isa, force), AQ_OK);
                check_close(y, ref, rows, scale, formats[f]);
            }
        }
        memset(y, 0, sizeof y);
        ck_assert_int_eq(aq_quant_matvec(q, x, y), AQ_OK);
        check_close(y, ref, rows, scale, formats[f]);
        free(x);
        aq_quant_free(q);
    }
    aq_context_free(ctx);
}
END_TEST

START_TEST(matmul_small_and_dense_batches)
{
    aq_context *ctx = tu_context(2, 1);
    const int64_t rows = 48, cols = 64, ldx = 70, ldy = 50;
    aq_quant *q = tu_random_quant(ctx, "2x6g8", rows, cols, 3);
    for (int64_t n = 1; n <= 20; n += 19) { /* 1 row: LUT path; 20 rows: dequantize + sgemm */
        float *X = tu_random_matrix(n, ldx, 60 + (uint64_t)n), *Y = calloc((size_t)(n * ldy), sizeof(float));
        double ref[48];
        ck_assert_int_eq(aq_quant_matmul(q, X, n, ldx, Y, ldy), AQ_OK);
        for (int64_t r = 0; r < n; r++) {
            double scale = 0.0;
            naive_matvec(q, X + r * ldx, ref);
            for (int64_t i = 0; i < rows; i++)
                scale = fmax(scale, fabs(ref[i]));
            check_close(Y + r * ldy, ref, rows, scale, "matmul");
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

START_TEST(bad_input)
{
    aq_context *ctx = tu_context(1, 1);
    aq_quant *q = tu_random_quant(ctx, "2x4g4", 8, 16, 1);
    float x[16] = {0}, y[8], Y[8 * 16];
    ck_assert_int_eq(aq_quant_matvec(NULL, x, y), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec(q, NULL, y), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_matvec(q, x, NULL), AQ_ERR_INVALID_ARG);
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
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_kernel_equals_naive);
    tcase_add_test(tc, matmul_small_and_dense_batches);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Layer 0: version, status codes, constants, context, thread pool, options, format. */
#include <string.h>

#include "core/internal.h"
#include "testutil.h"

START_TEST(version_matches_header)
{
    ck_assert_uint_eq(aq_version(), AQ_VERSION_NUMBER);
    ck_assert_str_eq(aq_version_string(), AQ_VERSION_STRING);
    int64_t v = 0;
    ck_assert_int_eq(aq_constant(&v, "AQ_VERSION_NUMBER"), AQ_OK);
    ck_assert_int_eq(v, AQ_VERSION_NUMBER);
}
END_TEST

START_TEST(status_codes_pinned_and_named)
{
    /* Pinned values: changing one breaks every binding. */
    ck_assert_int_eq(AQ_ERR_INVALID_ARG, -1);
    ck_assert_int_eq(AQ_ERR_NONFINITE, -5);
    ck_assert_int_eq(AQ_ERR_THREAD, -13);
    for (int s = 0; s >= -13; s--) {
        const char *txt = aq_strerror(s);
        ck_assert_ptr_nonnull(strstr(txt, "AQ_"));
        ck_assert_ptr_null(strstr(txt, "unknown"));
    }
    ck_assert_ptr_nonnull(strstr(aq_strerror(-999), "unknown"));
    int64_t v;
    ck_assert_int_eq(aq_constant(&v, "AQ_ERR_SHAPE"), AQ_OK);
    ck_assert_int_eq(v, AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_constant(&v, "AQ_OPT_EM_MAX_ROUNDS"), AQ_OK);
    ck_assert_int_eq(v, AQ_OPT_EM_MAX_ROUNDS);
    ck_assert_int_eq(aq_constant(&v, "AQ_NO_SUCH_THING"), AQ_ERR_INVALID_ARG);
}
END_TEST

START_TEST(context_settings_and_errors)
{
    aq_context *ctx = tu_context(2, 42);
    ck_assert_int_eq(aq_context_get_threads(ctx), 2);
    ck_assert_uint_eq(aq_context_get_seed(ctx), 42);
    ck_assert_int_eq(aq_context_set_threads(ctx, -1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_context_get_threads(ctx), 2); /* unchanged */
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "-1"));
    char buf[8];
    ck_assert_int_eq(aq_context_copy_last_error(ctx, buf, sizeof buf), AQ_ERR_INVALID_ARG);
    ck_assert_uint_eq(strlen(buf), sizeof buf - 1);
    aq_context_clear_error(ctx);
    ck_assert_str_eq(aq_context_last_error(ctx), "");
    ck_assert_int_eq(aq_context_set_threads(ctx, 0), AQ_OK);
    ck_assert_int_ge(aq_context_get_threads(ctx), 1);
    ck_assert_int_eq(aq_context_set_log_callback(ctx, NULL, 7, NULL), AQ_ERR_INVALID_ARG);
    aq_context_free(ctx);
    aq_context_free(NULL);
}
END_TEST

static void count_log(int32_t level, const char *msg, void *ud)
{
    (void)msg;
    if (level == AQ_LOG_ERROR)
        (*(int *)ud)++;
}

START_TEST(log_callback_receives_errors)
{
    aq_context *ctx = tu_context(1, 0);
    int n = 0;
    ck_assert_int_eq(aq_context_set_log_callback(ctx, count_log, AQ_LOG_WARN, &n), AQ_OK);
    aq_context_set_threads(ctx, 5000);
    ck_assert_int_eq(n, 1);
    aq_context_free(ctx);
}
END_TEST

/* The pool covers [0, n) exactly once, and chunk boundaries depend only on n and threads. */
typedef struct { int64_t n; int *hits; int64_t first[8]; } cover_arg;

static int cover(void *p, int64_t b, int64_t e, int worker)
{
    cover_arg *a = p;
    a->first[worker] = b;
    for (int64_t i = b; i < e; i++)
        a->hits[i]++;
    return 0;
}

static int fail_in_chunk1(void *p, int64_t b, int64_t e, int worker)
{
    (void)p; (void)b; (void)e;
    return worker >= 1 ? -100 - worker : 0;
}

START_TEST(pool_covers_range_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        aq_context *ctx = tu_context(threads, 0);
        for (int64_t n = 1; n < 100; n += 13) {
            cover_arg a = {n, calloc((size_t)n, sizeof(int)), {0}};
            for (int rep = 0; rep < 3; rep++)
                ck_assert_int_eq(aqi_parallel_for(ctx, n, cover, &a), 0);
            for (int64_t i = 0; i < n; i++)
                ck_assert_int_eq(a.hits[i], 3);
            for (int t = 0; t < threads; t++)
                ck_assert_int_eq(a.first[t], n * t / threads);
            free(a.hits);
        }
        if (threads > 1)
            ck_assert_int_eq(aqi_parallel_for(ctx, 10, fail_in_chunk1, NULL), -101);
        aq_context_free(ctx);
    }
}
END_TEST

START_TEST(options_defaults_ranges_types)
{
    aq_context *ctx = tu_context(1, 0);
    aq_options *o;
    int64_t iv;
    double dv;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_get_int(&iv, o, AQ_OPT_INIT_METHOD), AQ_OK);
    ck_assert_int_eq(iv, AQ_INIT_GREEDY);
    ck_assert_int_eq(aq_options_get_double(&dv, o, AQ_OPT_EM_DAMPING), AQ_OK);
    ck_assert_double_eq(dv, 0.01);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_INIT_METHOD, 7), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_options_get_int(&iv, o, AQ_OPT_INIT_METHOD), AQ_OK);
    ck_assert_int_eq(iv, AQ_INIT_OA_EM); /* unchanged by the failed set */
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_INIT_METHOD, 1.0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_options_set_int(o, 99999, 1), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "unknown option"));
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_EM_TOL, NAN), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_EM_TOL, -1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_options_set_double(o, AQ_OPT_EM_TOL, 1e-3), AQ_OK);
    aq_options *c;
    ck_assert_int_eq(aq_options_clone(&c, o), AQ_OK);
    ck_assert_int_eq(aq_options_get_double(&dv, c, AQ_OPT_EM_TOL), AQ_OK);
    ck_assert_double_eq(dv, 1e-3);
    aq_options_free(c);
    aq_options_free(o);
    aq_options_free(NULL);
    aq_context_free(ctx);
}
END_TEST

START_TEST(options_allocation_failure)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    aq_options *o = (aq_options *)&fa; /* must be reset to NULL on failure */
    fa.fail_at = fa.n_allocs + 1;
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_ERR_NOMEM);
    ck_assert_ptr_null(o);
    fa.fail_at = 0;
    aq_context_free(ctx);
    ck_assert_int_eq(fa.live, 0);
}
END_TEST

/* REFERENCE-ALGORITHMS.md §1.4: 4096×4096 gives 2.504 at 1x16 g8 and 2.008 at 2x8 g8. */
START_TEST(format_bits_per_parameter_matches_aqlm)
{
    aq_format f;
    double bpp, rho;
    ck_assert_int_eq(aq_format_parse(&f, "1x16g8"), AQ_OK);
    ck_assert_int_eq(aq_format_bits_per_parameter(&bpp, &f, 4096, 4096), AQ_OK);
    ck_assert_double_eq_tol(bpp, 2.504, 5e-4);
    /* exact: codes 2 + codebook 65536*8*16/4096² + scales 16/4096 */
    ck_assert_double_eq_tol(bpp, 2.0 + 65536.0 * 8 * 16 / (4096.0 * 4096) + 16.0 / 4096, 1e-12);
    ck_assert_int_eq(aq_format_parse(&f, "2x8g8"), AQ_OK);
    ck_assert_int_eq(aq_format_bits_per_parameter(&bpp, &f, 4096, 4096), AQ_OK);
    ck_assert_double_eq_tol(bpp, 2.008, 5e-4);
    ck_assert_int_eq(aq_format_parse(&f, "3x8g8"), AQ_OK);
    ck_assert_int_eq(aq_format_bits_per_parameter(&bpp, &f, 4096, 4096), AQ_OK);
    ck_assert_double_eq_tol(bpp, 3.010, 5e-4);
    /* ρ = N / K^M: 3072×3072 at 2x8 g8 gives 18.0 (DESIGN.md §1). */
    ck_assert_int_eq(aq_format_parse(&f, "2x8g8"), AQ_OK);
    ck_assert_int_eq(aq_format_rho(&rho, &f, 3072, 3072), AQ_OK);
    ck_assert_double_eq_tol(rho, 18.0, 1e-12);
}
END_TEST

START_TEST(format_parse_and_check)
{
    aq_format f;
    ck_assert_int_eq(aq_format_parse(&f, "1x8g4o2"), AQ_OK);
    ck_assert_int_eq(f.num_codebooks, 1);
    ck_assert_int_eq(f.bits_per_codebook, 8);
    ck_assert_int_eq(f.in_group_size, 4);
    ck_assert_int_eq(f.out_group_size, 2);
    const char *bad[] = {"", "2x", "x8", "2x17", "0x8", "2x8g", "2x8q8", "2x8g0", "-1x8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(aq_format_parse(&f, bad[i]) == AQ_ERR_INVALID_ARG, "accepted '%s'", bad[i]);
    ck_assert_int_eq(f.in_group_size, 4); /* unchanged by failed parses */
    aq_context *ctx = tu_context(1, 0);
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_check(ctx, &f, 16, 12), AQ_ERR_SHAPE); /* 12 % 8 */
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "divisible"));
    ck_assert_int_eq(aq_format_check(ctx, &f, 0, 16), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_format_check(ctx, &f, INT64_C(1) << 40, INT64_C(1) << 40), AQ_ERR_OVERFLOW);
    f.bits_per_codebook = 17;
    ck_assert_int_eq(aq_format_check(ctx, &f, 16, 16), AQ_ERR_INVALID_ARG);
    aq_format_init(&f);
    f.struct_size = 0;
    ck_assert_int_eq(aq_format_check(ctx, &f, 16, 16), AQ_ERR_INVALID_ARG);
    aq_context_free(ctx);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, version_matches_header);
    tcase_add_test(tc, status_codes_pinned_and_named);
    tcase_add_test(tc, context_settings_and_errors);
    tcase_add_test(tc, log_callback_receives_errors);
    tcase_add_test(tc, pool_covers_range_once);
    tcase_add_test(tc, options_defaults_ranges_types);
    tcase_add_test(tc, options_allocation_failure);
    tcase_add_test(tc, format_bits_per_parameter_matches_aqlm);
    tcase_add_test(tc, format_parse_and_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(core_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

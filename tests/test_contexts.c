/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The rules of the header's "Contexts and handles" and "Lifetimes" sections and the API
 * additions of 0.2: a handle of another context is refused with nothing changed, a bad format
 * text leaves a message, the const views read what the writable ones do (also from put_result's
 * const quant), and the progress operation names are exactly the documented ones. */
#include <string.h>

#include "testutil.h"

enum { ROWS = 16, COLS = 32, SAMPLES = 256 };

static aq_hessian *random_hessian(aq_context *ctx, uint64_t seed)
{
    aq_hessian *H = NULL;
    float *X = tu_random_matrix(SAMPLES, COLS, seed);
    ck_assert_int_eq(aq_hessian_create(&H, ctx, COLS), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(H, X, SAMPLES, COLS), AQ_OK);
    free(X);
    return H;
}

static void snapshot(const aq_quant *q, float *books, size_t count)
{
    ck_assert_int_eq(aq_quant_copy_codebooks_out(q, books, count), AQ_OK);
}

START_TEST(foreign_handles_are_refused_and_change_nothing)
{
    aq_context *a = tu_context(1, 3), *b = tu_context(1, 3);
    aq_quant *qa = tu_random_quant(a, "2x4g8", ROWS, COLS, 5), *qb = tu_random_quant(b, "2x4g8", ROWS, COLS, 5);
    aq_hessian *Ha = random_hessian(a, 7), *Hb = random_hessian(b, 7);
    aq_options *oa = NULL, *ob = NULL;
    float *W = tu_random_matrix(ROWS, COLS, 9);
    size_t count;
    aq_quant_codebooks_const(qb, &count);
    float *before = malloc(count * sizeof *before), *after = malloc(count * sizeof *after);
    ck_assert_int_eq(aq_options_create(&oa, a), AQ_OK);
    ck_assert_int_eq(aq_options_create(&ob, b), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(ob, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM), AQ_OK);
    snapshot(qb, before, count);

    /* (quant, H, options) of each call: one foreign handle at a time, passed with context b. */
    struct { aq_quant *q; aq_hessian *H; aq_options *o; const char *what; } cases[] = {
        {qa, Hb, ob, "the quant"}, {qb, Ha, ob, "the Hessian"}, {qb, Hb, oa, "the options"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        aq_quant *q = cases[c].q;
        aq_hessian *H = cases[c].H;
        aq_options *o = cases[c].o;
        int64_t changed = -1;
        int st[6];
        st[0] = aq_init(b, q, W, COLS, H, o);
        st[1] = aq_beam_search(b, q, W, COLS, H, o);
        st[2] = aq_update_codebooks(b, q, W, COLS, H, o);
        st[3] = aq_optimize(b, q, W, COLS, H, o);
        st[4] = aq_quantize_layer(b, q, W, COLS, H, o);
        st[5] = aq_vstep(b, q, W, COLS, H, o, &changed);
        for (int i = 0; i < 6; i++)
            ck_assert_msg(st[i] == AQ_ERR_INVALID_ARG, "case %zu call %d: status %d", c, i, st[i]);
        ck_assert_int_eq(changed, -1);
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(b), cases[c].what));
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(b), "another context"));
        ck_assert_str_eq(aq_context_last_error(a), ""); /* the handle's own context is not told */
        snapshot(q, after, count);
        if (q == qb)
            ck_assert_mem_eq(before, after, count * sizeof *before);
    }

    /* Calls without a context argument use their first handle's context; the others may be of
     * any context: the error of qa with b's Hessian is computed, a failure is told to a. */
    double err = -1.0;
    aq_hessian *Hwide = NULL;
    ck_assert_int_eq(aq_quant_output_error(&err, qa, W, COLS, Hb), AQ_OK);
    ck_assert(err > 0.0);
    ck_assert_int_eq(aq_hessian_create(&Hwide, b, 2 * COLS), AQ_OK);
    aq_context_clear_error(b);
    ck_assert_int_eq(aq_quant_output_error(&err, qa, W, COLS, Hwide), AQ_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(a), "aq_quant_output_error"));
    ck_assert_str_eq(aq_context_last_error(b), "");
    aq_hessian_free(Hwide);
    aq_context_clear_error(a);

    /* The same calls with one context's handles succeed. */
    ck_assert_int_eq(aq_init(b, qb, W, COLS, Hb, ob), AQ_OK);
    snapshot(qb, after, count);
    ck_assert(memcmp(before, after, count * sizeof *before) != 0);
    ck_assert_int_eq(aq_beam_search(b, qb, W, COLS, Hb, ob), AQ_OK);

    free(before);
    free(after);
    free(W);
    aq_options_free(oa);
    aq_options_free(ob);
    aq_hessian_free(Ha);
    aq_hessian_free(Hb);
    aq_quant_free(qa);
    aq_quant_free(qb);
    aq_context_free(a);
    aq_context_free(b);
}
END_TEST

static int cb_num_layers(int32_t *n, void *ud) { (void)ud; *n = 1; return 0; }
static int cb_layer_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    (void)k, (void)ud;
    *name = "only", *rows = ROWS, *cols = COLS;
    return 0;
}
static int cb_get_weight(int32_t k, float *W, void *ud)
{
    (void)k, (void)ud;
    float *src = tu_random_matrix(ROWS, COLS, 9);
    memcpy(W, src, sizeof(float) * ROWS * COLS);
    free(src);
    return 0;
}
static int cb_calibrate(int32_t k, aq_hessian *H, void *ud)
{
    (void)k, (void)ud;
    float *X = tu_random_matrix(SAMPLES, COLS, 7);
    int st = aq_hessian_add(H, X, SAMPLES, COLS);
    free(X);
    return st;
}

/* put_result reads its const quant through the const views and compares with the copies. */
typedef struct views_seen { int calls, views_match; } views_seen;

static int cb_put_result(int32_t k, const aq_quant *q, const aq_layer_report *r, void *ud)
{
    views_seen *seen = ud;
    size_t nbytes, nbooks, nscales;
    const void *codes = aq_quant_codes_const(q, &nbytes);
    const float *books = aq_quant_codebooks_const(q, &nbooks);
    const float *scales = aq_quant_scales_const(q, &nscales);
    void *c = malloc(nbytes);
    float *b = malloc(nbooks * sizeof *b), *s = malloc(nscales * sizeof *s);
    (void)k, (void)r;
    seen->calls++;
    seen->views_match = nbytes == ROWS * (COLS / 8) * 2 && nscales == ROWS
                        && aq_quant_copy_codes_out(q, c, nbytes) == AQ_OK && !memcmp(c, codes, nbytes)
                        && aq_quant_copy_codebooks_out(q, b, nbooks) == AQ_OK && !memcmp(b, books, nbooks * sizeof *b)
                        && aq_quant_copy_scales_out(q, s, nscales) == AQ_OK && !memcmp(s, scales, nscales * sizeof *s);
    free(c), free(b), free(s);
    return 0;
}

START_TEST(const_views_match_the_writable_ones_and_the_copies)
{
    aq_context *ctx = tu_context(1, 1);
    aq_quant *q = tu_random_quant(ctx, "2x4g8", ROWS, COLS, 5);
    size_t n1 = 0, n2 = 0;
    ck_assert_ptr_eq(aq_quant_codes_const(q, &n1), aq_quant_codes(q, &n2));
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(n1, ROWS * (COLS / 8) * 2);
    ck_assert_ptr_eq(aq_quant_codebooks_const(q, &n1), aq_quant_codebooks(q, &n2));
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(n1, 2 * 16 * 8);
    ck_assert_ptr_eq(aq_quant_scales_const(q, &n1), aq_quant_scales(q, &n2));
    ck_assert_uint_eq(n1, ROWS);
    n1 = 7;
    ck_assert_ptr_null(aq_quant_codes_const(NULL, &n1));
    ck_assert_uint_eq(n1, 0);
    ck_assert_ptr_null(aq_quant_codebooks_const(NULL, NULL));
    ck_assert_ptr_null(aq_quant_scales_const(NULL, NULL));
    aq_quant_free(q);

    /* In a pipeline's put_result, on the const quant it is handed. */
    views_seen seen = {0, 0};
    aq_pipeline_callbacks cb = {sizeof cb, cb_num_layers, cb_layer_info, cb_get_weight, cb_calibrate,
                                cb_put_result, &seen};
    aq_format fmt;
    aq_pipeline *p = NULL;
    aq_format_init(&fmt);
    ck_assert_int_eq(aq_format_parse(&fmt, "2x4g8"), AQ_OK);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &fmt, NULL), AQ_OK);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_OK);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(seen.views_match, 1);
    aq_pipeline_free(p);

    /* aq_pipeline_create refuses options of another context and creates nothing. */
    aq_context *other = tu_context(1, 1);
    aq_options *foreign = NULL;
    ck_assert_int_eq(aq_options_create(&foreign, other), AQ_OK);
    p = (aq_pipeline *)&seen;
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &fmt, foreign), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "the options"));
    aq_options_free(foreign);
    aq_context_free(other);
    aq_context_free(ctx);
}
END_TEST

START_TEST(a_bad_format_text_leaves_a_message_and_the_format_unchanged)
{
    aq_context *ctx = tu_context(1, 0);
    aq_format f, ref;
    /* text, position named in the message, a word the message must contain */
    struct { const char *text; const char *pos; const char *word; } bad[] = {
        {"", "position 0", "codebooks"}, {"2y8", "position 1", "'x'"}, {"2x", "position 2", "bits"},
        {"2x8q8", "position 3", "'g' or 'o'"}, {"2x8g", "position 4", "input group"},
        {"2x8g8o", "position 6", "output group"}, {"0x8", "position 0", "codebooks"},
        {"2x99g8", "", "bits per codebook"}, {"65x8g8", "", "codebooks"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aq_format_init(&f);
        f.scale_mode = AQ_SCALE_NONE; /* a marker that parse must not overwrite */
        ref = f;
        aq_context_clear_error(ctx);
        ck_assert_int_eq(aq_format_parse_ctx(ctx, &f, bad[i].text), AQ_ERR_INVALID_ARG);
        ck_assert_mem_eq(&f, &ref, sizeof f);
        const char *msg = aq_context_last_error(ctx);
        ck_assert_msg(strstr(msg, bad[i].pos) && strstr(msg, bad[i].word), "\"%s\": %s", bad[i].text, msg);
        ck_assert_int_eq(aq_format_parse(&f, bad[i].text), AQ_ERR_INVALID_ARG); /* same verdict, no ctx */
        ck_assert_int_eq(aq_format_parse_ctx(NULL, &f, bad[i].text), AQ_ERR_INVALID_ARG);
    }
    ck_assert_int_eq(aq_format_parse_ctx(ctx, NULL, "2x8"), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "fmt is NULL"));
    ck_assert_int_eq(aq_format_parse_ctx(ctx, &f, NULL), AQ_ERR_INVALID_ARG);

    /* A good text parses as aq_format_parse does, and leaves the last error alone. */
    aq_context_clear_error(ctx);
    ck_assert_int_eq(aq_format_parse_ctx(ctx, &f, "1x16g8o2"), AQ_OK);
    ck_assert_int_eq(aq_format_parse(&ref, "1x16g8o2"), AQ_OK);
    ck_assert_mem_eq(&f, &ref, sizeof f);
    ck_assert_int_eq(f.num_codebooks, 1);
    ck_assert_int_eq(f.bits_per_codebook, 16);
    ck_assert_int_eq(f.in_group_size, 8);
    ck_assert_int_eq(f.out_group_size, 2);
    ck_assert_str_eq(aq_context_last_error(ctx), "");
    aq_context_free(ctx);
}
END_TEST

/* The names of aq_progress.operation the header lists as stable. */
static const char *const documented_operations[] = {"init.kmeans", "init.oaem", "init.joint", "optimize",
                                                    "pipeline"};
enum { N_DOCUMENTED = sizeof documented_operations / sizeof documented_operations[0] };

typedef struct operations_seen { int count[N_DOCUMENTED]; int unknown; } operations_seen;

static int record_operation(const aq_progress *pr, void *ud)
{
    operations_seen *seen = ud;
    for (int i = 0; i < N_DOCUMENTED; i++)
        if (!strcmp(pr->operation, documented_operations[i])) {
            seen->count[i]++;
            return 0;
        }
    seen->unknown++;
    return 0;
}

START_TEST(progress_operations_are_the_documented_names)
{
    aq_context *ctx = tu_context(1, 2);
    operations_seen seen;
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(aq_context_set_progress_callback(ctx, record_operation, &seen), AQ_OK);
    aq_quant *q = tu_random_quant(ctx, "2x4g8", ROWS, COLS, 5);
    aq_hessian *H = random_hessian(ctx, 7);
    aq_options *o = NULL;
    float *W = tu_random_matrix(ROWS, COLS, 9);
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_init(ctx, q, W, COLS, H, o), AQ_OK); /* GREEDY */
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_EM_JOINT_PASSES, 1), AQ_OK);
    ck_assert_int_eq(aq_init(ctx, q, W, COLS, H, o), AQ_OK);
    ck_assert_int_eq(aq_optimize(ctx, q, W, COLS, H, o), AQ_OK);
    views_seen vs = {0, 0};
    aq_pipeline_callbacks cb = {sizeof cb, cb_num_layers, cb_layer_info, cb_get_weight, cb_calibrate,
                                cb_put_result, &vs};
    aq_format fmt;
    aq_pipeline *p = NULL;
    ck_assert_int_eq(aq_format_parse(&fmt, "2x4g8"), AQ_OK);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &fmt, NULL), AQ_OK);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_OK);
    ck_assert_int_eq(seen.unknown, 0);
    for (int i = 0; i < N_DOCUMENTED; i++)
        ck_assert_msg(seen.count[i] > 0, "no progress report \"%s\"", documented_operations[i]);
    aq_pipeline_free(p);
    free(W);
    aq_options_free(o);
    aq_hessian_free(H);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("contexts");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, foreign_handles_are_refused_and_change_nothing);
    tcase_add_test(tc, const_views_match_the_writable_ones_and_the_copies);
    tcase_add_test(tc, a_bad_format_text_leaves_a_message_and_the_format_unchanged);
    tcase_add_test(tc, progress_operations_are_the_documented_names);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

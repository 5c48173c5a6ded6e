/* aq_pipeline on a synthetic two-layer model: order and true-sequential calibration, reports,
 * cancellation, host errors, resume, bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define N_CALIB 256

/* y = W1 (W0 x): layer 0 is 16 × 32, layer 1 is 8 × 16. */
typedef struct host {
    float *W[2];          /* the host's current weights (replaced by put_result) */
    float *X;             /* N_CALIB × 32 calibration inputs */
    int64_t rows[2], cols[2];
    int put_calls[2], calibrate_calls[2];
    int saw_quantized_layer0; /* calibrate(1) ran after put_result(0) */
    int resumed[2];
    double init_error[2], final_error[2];
    float *dequantized[2];
    int fail_callback;    /* 0 none, 1 get_weight, 2 calibrate, 3 put_result */
    int fail_layer, fail_code;
    int calibrate_adds_nothing;
} host;

static int num_layers(int32_t *n, void *ud)
{
    (void)ud;
    *n = 2;
    return 0;
}

static int layer_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    host *h = ud;
    *name = k ? "fc1" : "fc0";
    *rows = h->rows[k];
    *cols = h->cols[k];
    return 0;
}

static int get_weight(int32_t k, float *W, void *ud)
{
    host *h = ud;
    if (h->fail_callback == 1 && h->fail_layer == k)
        return h->fail_code;
    memcpy(W, h->W[k], sizeof(float) * (size_t)(h->rows[k] * h->cols[k]));
    return 0;
}

static int calibrate(int32_t k, aq_hessian *H, void *ud)
{
    host *h = ud;
    h->calibrate_calls[k]++;
    if (h->fail_callback == 2 && h->fail_layer == k)
        return h->fail_code;
    if (h->calibrate_adds_nothing)
        return 0;
    if (k == 0)
        return aq_hessian_add(H, h->X, N_CALIB, 32) != AQ_OK;
    /* inputs of layer 1 = outputs of the host's current layer 0 */
    float *Y = malloc(sizeof(float) * N_CALIB * 16);
    for (int n = 0; n < N_CALIB; n++)
        for (int o = 0; o < 16; o++) {
            double acc = 0.0;
            for (int i = 0; i < 32; i++)
                acc += (double)h->W[0][o * 32 + i] * h->X[n * 32 + i];
            Y[n * 16 + o] = (float)acc;
        }
    h->saw_quantized_layer0 = h->put_calls[0] > 0;
    int st = aq_hessian_add(H, Y, N_CALIB, 16);
    free(Y);
    return st != AQ_OK;
}

static int put_result(int32_t k, const aq_quant *q, const aq_layer_report *r, void *ud)
{
    host *h = ud;
    h->put_calls[k]++;
    if (h->fail_callback == 3 && h->fail_layer == k)
        return h->fail_code;
    ck_assert_int_eq(r->layer, k);
    ck_assert_uint_ge(r->struct_size, sizeof(aq_layer_report));
    h->resumed[k] = r->resumed;
    h->init_error[k] = r->init_error;
    h->final_error[k] = r->final_error;
    ck_assert_int_eq(aq_quant_dequantize(q, h->W[k], h->cols[k]), AQ_OK); /* true-sequential */
    memcpy(h->dequantized[k], h->W[k], sizeof(float) * (size_t)(h->rows[k] * h->cols[k]));
    return 0;
}

static const aq_pipeline_callbacks callbacks = {sizeof(aq_pipeline_callbacks), num_layers, layer_info, get_weight,
                                                calibrate, put_result, NULL};

static void host_init(host *h)
{
    memset(h, 0, sizeof *h);
    h->rows[0] = 16, h->cols[0] = 32, h->rows[1] = 8, h->cols[1] = 16;
    for (int k = 0; k < 2; k++) {
        h->W[k] = tu_random_matrix(h->rows[k], h->cols[k], 30 + (uint64_t)k);
        h->dequantized[k] = calloc((size_t)(h->rows[k] * h->cols[k]), sizeof(float));
    }
    h->X = tu_random_matrix(N_CALIB, 32, 40);
}

static void host_free(host *h)
{
    for (int k = 0; k < 2; k++) {
        free(h->W[k]);
        free(h->dequantized[k]);
    }
    free(h->X);
}

static aq_pipeline *make_pipeline(aq_context *ctx, host *h)
{
    aq_pipeline_callbacks cb = callbacks;
    aq_pipeline *p = NULL;
    aq_format f;
    aq_options *o = NULL;
    cb.userdata = h;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, "2x4g4"), AQ_OK);
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 2), AQ_OK);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &f, o), AQ_OK);
    aq_options_free(o); /* the pipeline keeps its own copy */
    return p;
}

START_TEST(runs_layers_in_order_true_sequentially)
{
    aq_context *ctx = tu_context(2, 1);
    host h;
    host_init(&h);
    float *W0 = malloc(sizeof(float) * 16 * 32);
    memcpy(W0, h.W[0], sizeof(float) * 16 * 32);
    aq_pipeline *p = make_pipeline(ctx, &h);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(h.put_calls[k], 1);
        ck_assert_int_eq(h.calibrate_calls[k], 1);
        ck_assert_int_eq(h.resumed[k], 0);
        ck_assert(isfinite(h.init_error[k]) && isfinite(h.final_error[k]));
        ck_assert(h.final_error[k] <= h.init_error[k] * (1 + 1e-9));
        ck_assert(h.final_error[k] > 0.0 && h.final_error[k] < 1.0);
    }
    ck_assert_int_eq(h.saw_quantized_layer0, 1);
    ck_assert(memcmp(W0, h.W[0], sizeof(float) * 16 * 32) != 0); /* layer 0 was replaced */
    ck_assert_int_eq(aq_pipeline_host_status(p), 0);
    free(W0);
    aq_pipeline_free(p);
    host_free(&h);
    aq_context_free(ctx);
}
END_TEST

static int cancel_at_layer1(const aq_progress *pr, void *ud)
{
    (void)ud;
    return strcmp(pr->operation, "pipeline") == 0 && pr->stage == 1 && pr->round == 0;
}

START_TEST(cancellation_stops_before_the_next_layer)
{
    aq_context *ctx = tu_context(1, 1);
    host h;
    host_init(&h);
    aq_pipeline *p = make_pipeline(ctx, &h);
    aq_context_set_progress_callback(ctx, cancel_at_layer1, NULL);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_ERR_CANCELLED);
    ck_assert_int_eq(h.put_calls[0], 1);
    ck_assert_int_eq(h.put_calls[1], 0);
    ck_assert_int_eq(h.calibrate_calls[1], 0);
    aq_pipeline_free(p);
    host_free(&h);
    aq_context_free(ctx);
}
END_TEST

START_TEST(host_errors_carry_the_host_code)
{
    aq_context *ctx = tu_context(1, 1);
    for (int which = 1; which <= 3; which++) {
        host h;
        host_init(&h);
        h.fail_callback = which;
        h.fail_layer = 1;
        h.fail_code = 40 + which;
        aq_pipeline *p = make_pipeline(ctx, &h);
        ck_assert_int_eq(aq_pipeline_run(p), AQ_ERR_CALLBACK);
        ck_assert_int_eq(aq_pipeline_host_status(p), 40 + which);
        const char *names[] = {"", "get_weight", "calibrate", "put_result"};
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), names[which]));
        ck_assert_int_eq(h.put_calls[0], 1);
        aq_pipeline_free(p);
        host_free(&h);
    }
    aq_context_free(ctx);
}
END_TEST

START_TEST(resume_skips_finished_layers)
{
    aq_context *ctx = tu_context(2, 1);
    char dir[] = "/tmp/aqinit-pipeline-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    host a, b;
    host_init(&a);
    host_init(&b);
    aq_pipeline *p = make_pipeline(ctx, &a);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(p, dir), AQ_OK);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_OK);
    aq_pipeline_free(p);

    /* A second host that cannot calibrate: every layer must come from the directory. */
    b.fail_callback = 2;
    b.fail_layer = 0;
    b.fail_code = 9;
    p = make_pipeline(ctx, &b);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(p, dir), AQ_OK);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(b.resumed[k], 1);
        ck_assert_int_eq(b.calibrate_calls[k], 0);
        ck_assert(isnan(b.final_error[k]));
        ck_assert_mem_eq(a.dequantized[k], b.dequantized[k], sizeof(float) * (size_t)(a.rows[k] * a.cols[k]));
    }
    aq_pipeline_free(p);

    /* A directory from another format is an error, not silently reused. */
    aq_pipeline_callbacks cb = callbacks;
    aq_format f;
    cb.userdata = &b;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, "1x4g4"), AQ_OK);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &f, NULL), AQ_OK);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(p, dir), AQ_OK);
    ck_assert_int_eq(aq_pipeline_run(p), AQ_ERR_FORMAT);
    aq_pipeline_free(p);

    for (int k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/layer-%05d.aqq", dir, k);
        ck_assert_int_eq(remove(path), 0);
    }
    ck_assert_int_eq(rmdir(dir), 0);
    host_free(&a);
    host_free(&b);
    aq_context_free(ctx);
}
END_TEST

START_TEST(bad_arguments)
{
    aq_context *ctx = tu_context(1, 1);
    host h;
    host_init(&h);
    aq_pipeline_callbacks cb = callbacks;
    aq_pipeline *p = NULL;
    aq_format f;
    cb.userdata = &h;
    aq_format_init(&f);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, NULL, &f, NULL), AQ_ERR_INVALID_ARG);
    cb.struct_size = 8;
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &f, NULL), AQ_ERR_INVALID_ARG);
    cb.struct_size = sizeof cb;
    cb.calibrate = NULL;
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &f, NULL), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(p);
    cb.calibrate = calibrate;
    ck_assert_int_eq(aq_pipeline_run(NULL), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(NULL, "/tmp"), AQ_ERR_INVALID_ARG);

    p = make_pipeline(ctx, &h);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(p, "/nonexistent/dir"), AQ_ERR_IO);
    h.calibrate_adds_nothing = 1;
    ck_assert_int_eq(aq_pipeline_run(p), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "no samples"));
    h.calibrate_adds_nothing = 0;
    h.cols[1] = 14; /* not a multiple of g = 4 */
    ck_assert_int_eq(aq_pipeline_run(p), AQ_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "fc1"));
    aq_pipeline_free(p);
    host_free(&h);
    aq_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, runs_layers_in_order_true_sequentially);
    tcase_add_test(tc, cancellation_stops_before_the_next_layer);
    tcase_add_test(tc, host_errors_carry_the_host_code);
    tcase_add_test(tc, resume_skips_finished_layers);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

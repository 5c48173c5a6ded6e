/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_pipeline on a synthetic two-layer model: order and true-sequential calibration, reports,
 * cancellation, host errors, resume, bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/provenance.h"
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

static aq_pipeline *make_pipeline_with(aq_context *ctx, host *h, int64_t method, int64_t resume);

static aq_pipeline *make_pipeline(aq_context *ctx, host *h)
{
    return make_pipeline_with(ctx, h, AQ_INIT_OA_EM, AQ_RESUME_VERIFY);
}

/* Remove the layer files (and their provenance records) of a resume directory, then it. */
static void remove_layers(const char *dir, int n)
{
    for (int k = 0; k < n; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/layer-%05d.aqq", dir, k);
        remove(path);
        snprintf(path, sizeof path, "%s/layer-%05d.prov", dir, k);
        remove(path);
    }
    ck_assert_int_eq(rmdir(dir), 0);
}

/* A pipeline over @p h at 2x4g4 with the given init method and resume policy. */
static aq_pipeline *make_pipeline_with(aq_context *ctx, host *h, int64_t method, int64_t resume)
{
    aq_pipeline_callbacks cb = callbacks;
    aq_pipeline *p = NULL;
    aq_format f;
    aq_options *o = NULL;
    cb.userdata = h;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, "2x4g4"), AQ_OK);
    ck_assert_int_eq(aq_options_create(&o, ctx), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_INIT_METHOD, method), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 2), AQ_OK);
    ck_assert_int_eq(aq_options_set_int(o, AQ_OPT_PIPELINE_RESUME, resume), AQ_OK);
    ck_assert_int_eq(aq_pipeline_create(&p, ctx, &cb, &f, o), AQ_OK);
    aq_options_free(o);
    return p;
}

/* Run a fresh host against @p dir; returns the status, *host_out keeps the host's counters. */
static int resume_run(aq_context *ctx, const char *dir, int64_t method, int64_t resume, host *h)
{
    aq_pipeline *p = make_pipeline_with(ctx, h, method, resume);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(p, dir), AQ_OK);
    int st = aq_pipeline_run(p);
    aq_pipeline_free(p);
    return st;
}

static void write_text(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, n, f), n);
    fclose(f);
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
        ck_assert(b.final_error[k] == a.final_error[k]); /* the recorded errors come back */
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

    remove_layers(dir, 2);
    host_free(&a);
    host_free(&b);
    aq_context_free(ctx);
}
END_TEST

/* Issue 13 item 4: a resumed layer must have been produced by the same settings and inputs;
 * anything else is AQ_ERR_MISMATCH (nothing reused) unless AQ_RESUME_ACCEPT is asked for. */
START_TEST(resume_checks_provenance)
{
    aq_context *ctx = tu_context(2, 1);
    char dir[] = "/tmp/aqinit-provenance-XXXXXX", path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    host a, b;
    host_init(&a);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &a), AQ_OK);

    /* another method: refused before any layer is handed over, the file and the option named */
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_GREEDY, AQ_RESUME_VERIFY, &b), AQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "layer-00000.aqq"));
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "AQ_OPT_INIT_METHOD"));
    ck_assert_int_eq(b.put_calls[0], 0);
    host_free(&b);

    /* another seed */
    host_init(&b);
    ck_assert_int_eq(aq_context_set_seed(ctx, 9), AQ_OK);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "seed 1"));
    ck_assert_int_eq(aq_context_set_seed(ctx, 1), AQ_OK);
    host_free(&b);

    /* another weight */
    host_init(&b);
    b.W[0][3] += 0.5f;
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "another weight"));
    host_free(&b);

    /* other calibration data: not checked by default (no calibration), refused when asked */
    host_init(&b);
    b.X[7] += 1.0f;
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_OK);
    ck_assert_int_eq(b.calibrate_calls[0] + b.calibrate_calls[1], 0);
    host_free(&b);
    host_init(&b);
    b.X[7] += 1.0f;
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY_HESSIAN, &b), AQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "another Hessian"));
    host_free(&b);

    /* the same host with the Hessian checked: every layer resumed, each calibrated once */
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY_HESSIAN, &b), AQ_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(b.resumed[k], 1);
        ck_assert_int_eq(b.calibrate_calls[k], 1);
        ck_assert(b.final_error[k] == a.final_error[k]);
        ck_assert(b.init_error[k] == a.init_error[k]);
        ck_assert_mem_eq(a.dequantized[k], b.dequantized[k], sizeof(float) * (size_t)(a.rows[k] * a.cols[k]));
    }
    host_free(&b);

    /* accepted on request, whatever produced it */
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_GREEDY, AQ_RESUME_ACCEPT, &b), AQ_OK);
    ck_assert_int_eq(b.resumed[0] + b.resumed[1], 2);
    host_free(&b);

    /* a layer without its record: refused unless accepted */
    snprintf(path, sizeof path, "%s/layer-00001.prov", dir);
    char *saved_record = NULL;
    size_t record_len = 0;
    {
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        saved_record = malloc(65536);
        record_len = fread(saved_record, 1, 65536, f);
        fclose(f);
    }
    ck_assert_int_eq(remove(path), 0);
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "no provenance record"));
    host_free(&b);
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_ACCEPT, &b), AQ_OK);
    ck_assert(isnan(b.final_error[1])); /* nothing recorded */
    host_free(&b);

    /* a damaged record or layer file is an error that names the file */
    write_text(path, saved_record, record_len / 2);
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "layer-00001.prov"));
    host_free(&b);
    write_text(path, saved_record, record_len);
    snprintf(path, sizeof path, "%s/layer-00001.aqq", dir);
    write_text(path, "AQQUANT", 7);
    host_init(&b);
    ck_assert_int_eq(resume_run(ctx, dir, AQ_INIT_OA_EM, AQ_RESUME_VERIFY, &b), AQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "cannot resume layer 1 from"));
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "layer-00001.aqq"));
    host_free(&b);

    free(saved_record);
    remove_layers(dir, 2);
    host_free(&a);
    aq_context_free(ctx);
}
END_TEST

/* The provenance record: format and parse are inverse; every truncation, a missing, repeated or
 * unknown key and out-of-range values are refused. */
START_TEST(provenance_records_round_trip_and_refuse_damage)
{
    aqi_provenance pv, back;
    char text[8192], bad[8192], why[160];
    memset(&pv, 0, sizeof pv);
    pv.layer = 41;
    pv.rows = 11008;
    pv.cols = 4096;
    pv.num_codebooks = 2, pv.bits_per_codebook = 8, pv.in_group_size = 8, pv.out_group_size = 1, pv.scale_mode = 1;
    pv.seed = UINT64_MAX;
    strcpy(pv.options, "AQ_OPT_INIT_METHOD=1,AQ_OPT_EM_DAMPING=0.10000000000000001");
    pv.weight_hash = 0x0123456789abcdefULL;
    pv.hessian_samples = 16384;
    pv.hessian_hash = 0xfedcba9876543210ULL;
    pv.init_error = 0.0123456789012345;
    pv.final_error = 1.0 / 3.0;
    pv.init_seconds = 2.5;
    pv.optimize_seconds = 1e-9;
    size_t n = aqi_provenance_format(&pv, text, sizeof text);
    ck_assert_uint_lt(n, sizeof text);
    ck_assert_int_eq(aqi_provenance_parse(text, n, &back, why, sizeof why), AQ_OK);
    ck_assert_int_eq(back.layer, pv.layer);
    ck_assert(back.rows == pv.rows && back.cols == pv.cols && back.seed == pv.seed);
    ck_assert(back.num_codebooks == 2 && back.bits_per_codebook == 8 && back.in_group_size == 8
              && back.out_group_size == 1 && back.scale_mode == 1);
    ck_assert_str_eq(back.options, pv.options);
    ck_assert(back.weight_hash == pv.weight_hash && back.hessian_hash == pv.hessian_hash);
    ck_assert(back.hessian_samples == pv.hessian_samples);
    ck_assert(back.init_error == pv.init_error && back.final_error == pv.final_error); /* %.17g is exact */
    ck_assert(back.init_seconds == pv.init_seconds && back.optimize_seconds == pv.optimize_seconds);
    for (size_t len = 0; len < n; len++) /* every truncation */
        ck_assert_int_eq(aqi_provenance_parse(text, len, &back, why, sizeof why), AQ_ERR_FORMAT);
    /* each line removed, and each line doubled */
    for (const char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        size_t before = (size_t)(line - text), len = (size_t)(strchr(line, '\n') - line) + 1;
        memcpy(bad, text, before);
        memcpy(bad + before, line + len, n - before - len);
        ck_assert_int_eq(aqi_provenance_parse(bad, n - len, &back, why, sizeof why), AQ_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(why, "missing"));
        memcpy(bad, text, before + len);
        memcpy(bad + before + len, line, n - before);
        ck_assert_int_eq(aqi_provenance_parse(bad, n + len, &back, why, sizeof why), AQ_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(why, "repeated"));
    }
    const char *swaps[][2] = {{"rows 11008", "rows 0"}, {"layer 41", "layer -1"}, {"cols 4096", "cols 4096x"},
                              {"weight 0123456789abcdef", "weight 0123456789ABCDEF"},
                              {"format 2 8 8 1 1", "format 2 8 8 1"}, {"seed ", "seed -"},
                              {"init_seconds 2.5", "init_seconds inf"}, {"aqinit-layer-provenance 1", "aqinit-layer-provenance 2"},
                              {"hessian_samples", "hessian_sample"}};
    for (size_t i = 0; i < sizeof swaps / sizeof swaps[0]; i++) {
        const char *at = strstr(text, swaps[i][0]);
        ck_assert_ptr_nonnull(at);
        size_t pre = (size_t)(at - text), old_len = strlen(swaps[i][0]), new_len = strlen(swaps[i][1]);
        memcpy(bad, text, pre);
        memcpy(bad + pre, swaps[i][1], new_len);
        memcpy(bad + pre + new_len, at + old_len, n - pre - old_len);
        ck_assert_msg(aqi_provenance_parse(bad, n - old_len + new_len, &back, why, sizeof why) == AQ_ERR_FORMAT,
                      "accepted '%s'", swaps[i][1]);
    }
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
    tcase_add_test(tc, resume_checks_provenance);
    tcase_add_test(tc, provenance_records_round_trip_and_refuse_damage);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

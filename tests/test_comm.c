/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The communicator (aq_comm): ranks are host threads exchanging through tests/shm_comm.h.
 * Every sharded function run on 1, 2 and 3 ranks must give every rank the bytes of the run
 * without a communicator (same thread count); aq_hessian_allreduce must equal aq_hessian_merge
 * of the ranks' partial Hessians in rank order; a failure on one rank must make every rank
 * return the same status with its handles unchanged. Threads never call ck_assert: they store
 * what they saw and the main thread asserts. */
#include "shm_comm.h" /* first: it selects POSIX 2008 for pthread barriers */

#include <stdio.h>
#include <string.h>

#include "testutil.h"

enum { ROWS = 48, COLS = 64, CALIB = 160, MAX_RANKS = 3 };

typedef enum scenario {
    SC_INIT_GREEDY, SC_INIT_OAEM, SC_INIT_OAEM_PRODUCT, SC_BEAM, SC_UPDATE, SC_OPTIMIZE, SC_QUANTIZE_LAYER,
    SC_PIPELINE, SC_BEAM_TREES, SC_COUNT
} scenario;

static const char *scenario_name[SC_COUNT] = {"init greedy", "init oaem", "init oaem product", "beam 4",
                                              "update codebooks", "optimize", "quantize_layer", "pipeline",
                                              "beam 4 at K = 4096 (nearest-neighbour trees)"};

/* The bytes a scenario produces: codes, codebooks and scales of the quant (of the last layer
 * for the pipeline, plus every layer's errors). */
typedef struct result {
    int status;
    size_t n_codes, n_books, n_scales;
    unsigned char *codes;
    float *books, *scales;
    double errors[4];
} result;

static void result_free(result *r)
{
    free(r->codes);
    free(r->books);
    free(r->scales);
    memset(r, 0, sizeof *r);
}

static void take_result(result *r, const aq_quant *q)
{
    const void *c = aq_quant_codes((aq_quant *)q, &r->n_codes);
    const float *b = aq_quant_codebooks((aq_quant *)q, &r->n_books);
    const float *s = aq_quant_scales((aq_quant *)q, &r->n_scales);
    r->codes = malloc(r->n_codes);
    r->books = malloc(sizeof(float) * r->n_books);
    r->scales = malloc(sizeof(float) * r->n_scales);
    if (r->codes && r->books && r->scales) {
        memcpy(r->codes, c, r->n_codes);
        memcpy(r->books, b, sizeof(float) * r->n_books);
        memcpy(r->scales, s, sizeof(float) * r->n_scales);
    }
}

static int same_result(const result *a, const result *b)
{
    return a->status == b->status && a->n_codes == b->n_codes && a->n_books == b->n_books
           && a->n_scales == b->n_scales && !memcmp(a->codes, b->codes, a->n_codes)
           && !memcmp(a->books, b->books, sizeof(float) * a->n_books)
           && !memcmp(a->scales, b->scales, sizeof(float) * a->n_scales)
           && !memcmp(a->errors, b->errors, sizeof a->errors);
}

/* ------------------------------------------------------------------ the pipeline host -- */

typedef enum calib_mode { CALIB_ALL_ROWS, CALIB_OWN_ROWS, CALIB_OWN_ROWS_ALLREDUCE } calib_mode;

typedef struct host {
    const float *W[2];
    const float *X;
    int fail_layer; /* calibrate of this layer fails (-1: none) */
    result *out;
    calib_mode calib;  /* every rank adds all rows, or its share (then allreduce or not) */
    int rank, size;
    int64_t layers;    /* num_layers answer (2 unless a test makes ranks disagree) */
} host;

static int h_num_layers(int32_t *n, void *ud)
{
    const host *h = ud;
    *n = (int32_t)h->layers;
    return 0;
}

static int h_layer_info(int32_t layer, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    (void)ud;
    *name = layer ? "second" : "first";
    *rows = ROWS;
    *cols = COLS;
    return 0;
}

static int h_get_weight(int32_t layer, float *W, void *ud)
{
    host *h = ud;
    memcpy(W, h->W[layer], sizeof(float) * ROWS * COLS);
    return 0;
}

static int h_calibrate(int32_t layer, aq_hessian *H, void *ud)
{
    host *h = ud;
    if (layer == h->fail_layer)
        return 7;
    if (h->calib == CALIB_ALL_ROWS)
        return aq_hessian_add(H, h->X, CALIB, COLS) != AQ_OK;
    const int r0 = CALIB * h->rank / h->size, r1 = CALIB * (h->rank + 1) / h->size;
    if (aq_hessian_add(H, h->X + (size_t)r0 * COLS, r1 - r0, COLS) != AQ_OK)
        return 1;
    return h->calib == CALIB_OWN_ROWS_ALLREDUCE && aq_hessian_allreduce(H) != AQ_OK;
}

static int h_put_result(int32_t layer, const aq_quant *q, const aq_layer_report *rep, void *ud)
{
    host *h = ud;
    h->out->errors[2 * layer] = rep->init_error;
    h->out->errors[2 * layer + 1] = rep->final_error;
    if (layer == 1)
        take_result(h->out, q);
    return 0;
}

/* ---------------------------------------------------------------------- one scenario -- */

typedef struct inputs {
    const float *W, *W2, *X;
} inputs;

static aq_options *scenario_options(aq_context *ctx, scenario sc)
{
    aq_options *o = NULL;
    if (aq_options_create(&o, ctx) != AQ_OK)
        return NULL;
    aq_options_set_int(o, AQ_OPT_INIT_METHOD, sc == SC_INIT_GREEDY ? AQ_INIT_GREEDY : AQ_INIT_OA_EM);
    aq_options_set_int(o, AQ_OPT_KMEANS_MAX_ITER, 20);
    aq_options_set_int(o, AQ_OPT_EM_MAX_ROUNDS, 5);
    if (sc == SC_INIT_OAEM_PRODUCT)
        aq_options_set_int(o, AQ_OPT_EM_SEEDING, AQ_EM_SEED_PRODUCT);
    aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, sc == SC_BEAM || sc == SC_BEAM_TREES ? 4 : 2);
    aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 2);
    aq_options_set_double(o, AQ_OPT_REL_TOL, 0.0);
    return o;
}

/* Run scenario @p sc on @p ctx (with or without a communicator) into @p r. */
static void run_scenario(aq_context *ctx, scenario sc, const inputs *in, result *r)
{
    aq_format f;
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    aq_options *o = scenario_options(ctx, sc);
    int st = o ? AQ_OK : AQ_ERR_NOMEM;
    aq_format_init(&f);
    aq_format_parse(&f, sc == SC_INIT_OAEM_PRODUCT ? "1x8g4" : sc == SC_BEAM_TREES ? "1x12g4" : "2x6g8");
    memset(r, 0, sizeof *r);
    if (sc == SC_PIPELINE) {
        host h = {{in->W, in->W2}, in->X, -1, r, CALIB_ALL_ROWS, 0, 1, 2};
        aq_pipeline_callbacks cb = {sizeof cb, h_num_layers, h_layer_info, h_get_weight, h_calibrate,
                                    h_put_result, &h};
        aq_pipeline *p = NULL;
        if (st == AQ_OK)
            st = aq_pipeline_create(&p, ctx, &cb, &f, o);
        if (st == AQ_OK)
            st = aq_pipeline_run(p);
        aq_pipeline_free(p);
        aq_options_free(o);
        r->status = st;
        return;
    }
    if (st == AQ_OK)
        st = aq_hessian_create(&H, ctx, COLS);
    if (st == AQ_OK)
        st = aq_hessian_add(H, in->X, CALIB, COLS);
    if (st == AQ_OK)
        st = aq_quant_create(&q, ctx, &f, ROWS, COLS);
    if (st == AQ_OK)
        st = aq_init(ctx, q, in->W, COLS, H, o);
    if (st == AQ_OK && (sc == SC_BEAM || sc == SC_BEAM_TREES))
        st = aq_beam_search(ctx, q, in->W, COLS, H, o);
    if (st == AQ_OK && sc == SC_UPDATE)
        st = aq_update_codebooks(ctx, q, in->W, COLS, H, o);
    if (st == AQ_OK && sc == SC_OPTIMIZE)
        st = aq_optimize(ctx, q, in->W, COLS, H, o);
    if (st == AQ_OK && sc == SC_QUANTIZE_LAYER)
        st = aq_quantize_layer(ctx, q, in->W2, COLS, H, o);
    if (st == AQ_OK)
        st = aq_quant_output_error(&r->errors[0], q, in->W, COLS, H);
    if (st == AQ_OK)
        take_result(r, q);
    r->status = st;
    aq_quant_free(q);
    aq_hessian_free(H);
    aq_options_free(o);
}

/* ------------------------------------------------------------------------- the ranks -- */

typedef struct rank_job {
    shm_rank r; /* first member (shm_run) */
    int threads;
    scenario sc;
    const inputs *in;
    int cancel_on_rank; /* the progress callback of this rank cancels (-1: none) */
    result out;
} rank_job;

static int cancel_progress(const aq_progress *p, void *ud)
{
    (void)p;
    (void)ud;
    return 1;
}

static void *rank_main(void *arg)
{
    rank_job *job = arg;
    aq_context *ctx = NULL;
    aq_comm comm = shm_comm(&job->r);
    int st = aq_context_create(&ctx);
    /* Every rank must make the same calls: a failure here is recorded and fails the test, but
     * the rank still runs the scenario so that the others do not wait forever. */
    if (st == AQ_OK) {
        aq_context_set_threads(ctx, job->threads);
        aq_context_set_seed(ctx, 5);
        st = aq_context_set_comm(ctx, &comm);
        if (job->cancel_on_rank == job->r.rank)
            aq_context_set_progress_callback(ctx, cancel_progress, NULL);
        run_scenario(ctx, job->sc, job->in, &job->out);
        if (st != AQ_OK)
            job->out.status = st;
    }
    aq_context_free(ctx);
    return NULL;
}

static void run_ranks(rank_job *jobs, int n, int threads, scenario sc, const inputs *in, int cancel_on_rank,
                      int fail_broadcasts)
{
    memset(jobs, 0, sizeof(rank_job) * (size_t)n);
    for (int t = 0; t < n; t++) {
        jobs[t].threads = threads;
        jobs[t].sc = sc;
        jobs[t].in = in;
        jobs[t].cancel_on_rank = cancel_on_rank;
    }
    ck_assert_int_eq(shm_run(n, fail_broadcasts, rank_main, jobs, sizeof(rank_job)), 0);
}

static inputs make_inputs(void)
{
    inputs in = {tu_random_matrix(ROWS, COLS, 1), tu_random_matrix(ROWS, COLS, 2), tu_random_matrix(CALIB, COLS, 3)};
    /* correlated inputs, so that OA-EM's metric differs from the Euclidean one */
    float *X = (float *)in.X;
    for (int i = 0; i < CALIB; i++)
        for (int c = 1; c < COLS; c++)
            X[i * COLS + c] += 0.7f * X[i * COLS + c - 1];
    return in;
}

static void free_inputs(inputs *in)
{
    free((void *)in->W);
    free((void *)in->W2);
    free((void *)in->X);
}

/* ------------------------------------------------------------------------------ tests -- */

START_TEST(test_bit_identical_for_any_rank_count)
{
    const scenario sc = (scenario)_i;
    inputs in = make_inputs();
    for (int threads = 1; threads <= 2; threads++) {
        aq_context *ctx = tu_context(threads, 5);
        result ref;
        run_scenario(ctx, sc, &in, &ref);
        ck_assert_msg(ref.status == AQ_OK, "%s without a communicator: %s", scenario_name[sc],
                      aq_context_last_error(ctx));
        for (int n = 1; n <= MAX_RANKS; n++) {
            rank_job jobs[MAX_RANKS];
            run_ranks(jobs, n, threads, sc, &in, -1, 0);
            for (int t = 0; t < n; t++) {
                ck_assert_msg(same_result(&jobs[t].out, &ref), "%s, %d threads: rank %d of %d differs from the "
                              "run without a communicator (status %d)", scenario_name[sc], threads, t, n,
                              jobs[t].out.status);
                if (n > 1 && sc != SC_UPDATE) /* the update is replicated: nothing to exchange */
                    ck_assert_msg(jobs[t].r.bytes_received > 0, "%s: rank %d received nothing", scenario_name[sc], t);
                result_free(&jobs[t].out);
            }
        }
        result_free(&ref);
        aq_context_free(ctx);
    }
    free_inputs(&in);
}
END_TEST

/* ----------------------------------------------------------------- Hessian allreduce -- */

typedef struct hessian_job {
    shm_rank r;
    const float *X;
    int rows_of[MAX_RANKS];
    double *H_out; /* COLS × COLS */
    int64_t samples;
    int status;
} hessian_job;

static void *hessian_rank(void *arg)
{
    hessian_job *job = arg;
    aq_context *ctx = NULL;
    aq_hessian *H = NULL;
    aq_comm comm = shm_comm(&job->r);
    int first = 0;
    for (int t = 0; t < job->r.rank; t++)
        first += job->rows_of[t];
    job->status = aq_context_create(&ctx);
    if (job->status == AQ_OK)
        job->status = aq_context_set_comm(ctx, &comm);
    if (job->status == AQ_OK)
        job->status = aq_hessian_create(&H, ctx, COLS);
    if (job->status == AQ_OK && job->rows_of[job->r.rank] > 0)
        job->status = aq_hessian_add(H, job->X + (size_t)first * COLS, job->rows_of[job->r.rank], COLS);
    int st = aq_hessian_allreduce(H); /* collective: called whatever happened */
    if (job->status == AQ_OK)
        job->status = st;
    if (job->status == AQ_OK) {
        job->samples = aq_hessian_num_samples(H);
        job->status = aq_hessian_copy_matrix(H, job->H_out, COLS, 0.0);
    }
    aq_hessian_free(H);
    aq_context_free(ctx);
    return NULL;
}

START_TEST(test_hessian_allreduce_is_rank_ordered_merge)
{
    const int splits[][MAX_RANKS] = {{CALIB, 0, 0}, {100, 60, 0}, {50, 0, 110}, {40, 70, 50}};
    const int sizes[] = {1, 2, 3, 3};
    float *X = tu_random_matrix(CALIB, COLS, 9);
    aq_context *ctx = tu_context(1, 0);
    double *ref = malloc(sizeof(double) * COLS * COLS);
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        const int n = sizes[c];
        hessian_job jobs[MAX_RANKS];
        aq_hessian *merged = NULL;
        /* the independent reference: each rank's rows in its own Hessian, merged in rank order */
        ck_assert_int_eq(aq_hessian_create(&merged, ctx, COLS), AQ_OK);
        for (int t = 0, first = 0; t < n; first += splits[c][t], t++) {
            aq_hessian *part = NULL;
            ck_assert_int_eq(aq_hessian_create(&part, ctx, COLS), AQ_OK);
            if (splits[c][t])
                ck_assert_int_eq(aq_hessian_add(part, X + (size_t)first * COLS, splits[c][t], COLS), AQ_OK);
            ck_assert_int_eq(aq_hessian_merge(merged, part), AQ_OK);
            aq_hessian_free(part);
        }
        ck_assert_int_eq(aq_hessian_copy_matrix(merged, ref, COLS, 0.0), AQ_OK);
        memset(jobs, 0, sizeof jobs);
        for (int t = 0; t < n; t++) {
            jobs[t].X = X;
            memcpy(jobs[t].rows_of, splits[c], sizeof jobs[t].rows_of);
            jobs[t].H_out = malloc(sizeof(double) * COLS * COLS);
        }
        ck_assert_int_eq(shm_run(n, 0, hessian_rank, jobs, sizeof(hessian_job)), 0);
        for (int t = 0; t < n; t++) {
            ck_assert_int_eq(jobs[t].status, AQ_OK);
            ck_assert_int_eq(jobs[t].samples, CALIB);
            ck_assert_msg(!memcmp(jobs[t].H_out, ref, sizeof(double) * COLS * COLS),
                          "split %zu: rank %d's Hessian is not the rank-order merge", c, t);
            free(jobs[t].H_out);
        }
        /* and the merge of splits is the mean of all rows up to rounding */
        aq_hessian *all = NULL;
        double *whole = malloc(sizeof(double) * COLS * COLS);
        ck_assert_int_eq(aq_hessian_create(&all, ctx, COLS), AQ_OK);
        ck_assert_int_eq(aq_hessian_add(all, X, CALIB, COLS), AQ_OK);
        ck_assert_int_eq(aq_hessian_copy_matrix(all, whole, COLS, 0.0), AQ_OK);
        for (int e = 0; e < COLS * COLS; e++)
            ck_assert_double_le(fabs(whole[e] - ref[e]), 1e-12 * (1.0 + fabs(whole[e])));
        free(whole);
        aq_hessian_free(all);
        aq_hessian_free(merged);
    }
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------------------------- failures -- */

START_TEST(test_cancel_on_one_rank_stops_every_rank)
{
    inputs in = make_inputs();
    for (int n = 2; n <= MAX_RANKS; n++)
        for (scenario sc = SC_INIT_OAEM; sc <= SC_OPTIMIZE; sc += SC_OPTIMIZE - SC_INIT_OAEM) {
            rank_job jobs[MAX_RANKS];
            run_ranks(jobs, n, 1, sc, &in, n - 1, 0);
            for (int t = 0; t < n; t++) {
                ck_assert_msg(jobs[t].out.status == AQ_ERR_CANCELLED, "%s: rank %d of %d returned %d",
                              scenario_name[sc], t, n, jobs[t].out.status);
                ck_assert_ptr_null(jobs[t].out.codes); /* no result was taken */
            }
        }
    free_inputs(&in);
}
END_TEST

typedef struct pipeline_job {
    shm_rank r;
    const inputs *in;
    calib_mode calib;
    int fail_rank;      /* calibrate of layer 1 fails on this rank (-1: none) */
    int odd_rank;       /* this rank reports 3 layers (-1: none) */
    int status, host_status;
    char message[256];
    result out;
} pipeline_job;

static void *pipeline_rank(void *arg)
{
    pipeline_job *job = arg;
    aq_context *ctx = NULL;
    aq_comm comm = shm_comm(&job->r);
    aq_format f;
    aq_pipeline *p = NULL;
    host h = {{job->in->W, job->in->W2}, job->in->X, job->r.rank == job->fail_rank ? 1 : -1, &job->out,
              job->calib, job->r.rank, job->r.world->size, job->r.rank == job->odd_rank ? 3 : 2};
    aq_pipeline_callbacks cb = {sizeof cb, h_num_layers, h_layer_info, h_get_weight, h_calibrate, h_put_result, &h};
    aq_format_init(&f);
    aq_format_parse(&f, "2x6g8");
    job->status = aq_context_create(&ctx);
    if (job->status == AQ_OK && (job->status = aq_context_set_comm(ctx, &comm)) == AQ_OK
        && (job->status = aq_pipeline_create(&p, ctx, &cb, &f, NULL)) == AQ_OK) {
        job->status = aq_pipeline_run(p);
        job->host_status = aq_pipeline_host_status(p);
        snprintf(job->message, sizeof job->message, "%s", aq_context_last_error(ctx));
    }
    aq_pipeline_free(p);
    aq_context_free(ctx);
    return NULL;
}

static void run_pipelines(pipeline_job *jobs, int n, const inputs *in, calib_mode calib, int fail_rank, int odd_rank)
{
    memset(jobs, 0, sizeof(pipeline_job) * (size_t)n);
    for (int t = 0; t < n; t++) {
        jobs[t].in = in;
        jobs[t].calib = calib;
        jobs[t].fail_rank = fail_rank;
        jobs[t].odd_rank = odd_rank;
    }
    ck_assert_int_eq(shm_run(n, 0, pipeline_rank, jobs, sizeof(pipeline_job)), 0);
}

START_TEST(test_host_failure_on_one_rank_is_callback_everywhere)
{
    inputs in = make_inputs();
    pipeline_job jobs[MAX_RANKS];
    run_pipelines(jobs, MAX_RANKS, &in, CALIB_ALL_ROWS, 1, -1);
    for (int t = 0; t < MAX_RANKS; t++) {
        ck_assert_int_eq(jobs[t].status, AQ_ERR_CALLBACK);
        ck_assert_int_eq(jobs[t].host_status, t == 1 ? 7 : 0);
        if (t != 1)
            ck_assert_msg(strstr(jobs[t].message, "rank 1") != NULL, "rank %d's message: %s", t, jobs[t].message);
        result_free(&jobs[t].out);
    }
    free_inputs(&in);
}
END_TEST

/* Each rank calibrates on its own rows: without aq_hessian_allreduce the Hessians differ and
 * every rank stops with AQ_ERR_MISMATCH; with it every rank gets the same result. Ranks that
 * disagree on the number of layers stop the same way. */
START_TEST(test_pipeline_checks_ranks_agree)
{
    inputs in = make_inputs();
    pipeline_job jobs[MAX_RANKS];
    run_pipelines(jobs, MAX_RANKS, &in, CALIB_OWN_ROWS, -1, -1);
    for (int t = 0; t < MAX_RANKS; t++) {
        ck_assert_msg(jobs[t].status == AQ_ERR_MISMATCH, "rank %d: %d (%s)", t, jobs[t].status, jobs[t].message);
        result_free(&jobs[t].out);
    }
    run_pipelines(jobs, MAX_RANKS, &in, CALIB_OWN_ROWS_ALLREDUCE, -1, -1);
    for (int t = 0; t < MAX_RANKS; t++) {
        ck_assert_msg(jobs[t].status == AQ_OK, "rank %d: %d (%s)", t, jobs[t].status, jobs[t].message);
        ck_assert(same_result(&jobs[t].out, &jobs[0].out));
    }
    for (int t = 0; t < MAX_RANKS; t++)
        result_free(&jobs[t].out);
    run_pipelines(jobs, MAX_RANKS, &in, CALIB_ALL_ROWS, -1, 2);
    for (int t = 0; t < MAX_RANKS; t++) {
        ck_assert_msg(jobs[t].status == AQ_ERR_MISMATCH, "rank %d: %d (%s)", t, jobs[t].status, jobs[t].message);
        result_free(&jobs[t].out);
    }
    free_inputs(&in);
}
END_TEST

START_TEST(test_transport_failure_is_callback)
{
    inputs in = make_inputs();
    rank_job jobs[2];
    run_ranks(jobs, 2, 1, SC_INIT_OAEM, &in, -1, 3);
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(jobs[t].out.status, AQ_ERR_CALLBACK);
    free_inputs(&in);
}
END_TEST

static int noop_f64(double *b, int64_t n, void *ud) { (void)b; (void)n; (void)ud; return 0; }
static int noop_f32(float *b, int64_t n, void *ud) { (void)b; (void)n; (void)ud; return 0; }
static int noop_bcast(void *b, int64_t n, int32_t r, void *ud) { (void)b; (void)n; (void)r; (void)ud; return 0; }
static int noop_agree(int32_t *s, int32_t *r, void *ud) { (void)s; *r = -1; (void)ud; return 0; }

START_TEST(test_set_comm_checks_and_keeps_the_old_one)
{
    aq_context *ctx = tu_context(1, 0);
    aq_comm c;
    ck_assert_int_eq(aq_context_comm_rank(ctx), 0);
    ck_assert_int_eq(aq_context_comm_size(ctx), 1);
    ck_assert_int_eq(aq_context_comm_size(NULL), 0);
    aq_comm_init(&c);
    c.rank = 1;
    c.size = 3;
    c.allreduce_sum_f64 = noop_f64;
    c.allreduce_sum_f32 = noop_f32;
    c.broadcast = noop_bcast;
    c.agree = noop_agree;
    ck_assert_int_eq(aq_context_set_comm(ctx, &c), AQ_OK);
    ck_assert_int_eq(aq_context_comm_rank(ctx), 1);
    ck_assert_int_eq(aq_context_comm_size(ctx), 3);
    aq_comm bad = c;
    bad.struct_size = 8;
    ck_assert_int_eq(aq_context_set_comm(ctx, &bad), AQ_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "struct_size"));
    bad = c;
    bad.rank = 3;
    ck_assert_int_eq(aq_context_set_comm(ctx, &bad), AQ_ERR_INVALID_ARG);
    bad = c;
    bad.size = 0;
    bad.rank = 0;
    ck_assert_int_eq(aq_context_set_comm(ctx, &bad), AQ_ERR_INVALID_ARG);
    bad = c;
    bad.agree = NULL;
    ck_assert_int_eq(aq_context_set_comm(ctx, &bad), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_context_comm_rank(ctx), 1); /* the valid one stays */
    ck_assert_int_eq(aq_context_comm_size(ctx), 3);
    ck_assert_int_eq(aq_context_set_comm(ctx, NULL), AQ_OK);
    ck_assert_int_eq(aq_context_comm_size(ctx), 1);
    ck_assert_int_eq(aq_context_set_comm(NULL, &c), AQ_ERR_INVALID_ARG);
    aq_context_free(ctx);
}
END_TEST

static Suite *comm_suite(void)
{
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("comm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_set_comm_checks_and_keeps_the_old_one);
    tcase_add_loop_test(tc, test_bit_identical_for_any_rank_count, 0, SC_COUNT);
    tcase_add_test(tc, test_hessian_allreduce_is_rank_ordered_merge);
    tcase_add_test(tc, test_cancel_on_one_rank_stops_every_rank);
    tcase_add_test(tc, test_host_failure_on_one_rank_is_callback_everywhere);
    tcase_add_test(tc, test_pipeline_checks_ranks_agree);
    tcase_add_test(tc, test_transport_failure_is_callback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(comm_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

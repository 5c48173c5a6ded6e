/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* One context shared by several host threads (the thread-safety rules of aqinit.h): concurrent
 * aq_hessian_add / aq_hessian_merge on one Hessian, aq_quant_matvec / aq_quant_matmul on one
 * shared quant, aq_init + aq_optimize on separate quants, and failures reported from several
 * threads at once. Every result is compared with a single-threaded run. The context's own pool
 * has two threads, so the host threads also take turns on it. Run under ThreadSanitizer by
 * .ci/tsan.sh. Threads never call ck_assert (Check's failure path is not thread-safe): they
 * count what they saw and the main thread asserts. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

enum { N_HOST = 4 }; /* host threads */

typedef void *(*thread_fn)(void *);

/* Start N_HOST threads on fn(args[t]) and wait for all of them. */
static void run_threads(thread_fn fn, void *args, size_t arg_size)
{
    pthread_t th[N_HOST];
    for (int t = 0; t < N_HOST; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, fn, (char *)args + (size_t)t * arg_size), 0);
    for (int t = 0; t < N_HOST; t++)
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
}

static double *hessian_matrix(const aq_hessian *h)
{
    const int64_t n = aq_hessian_num_inputs(h);
    double *m = malloc(sizeof(double) * (size_t)(n * n));
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, m, n, 0.0), AQ_OK);
    return m;
}

/* ------------------------------------------------------------------- one shared Hessian -- */

enum { H_IN = 24, H_ROWS = 40, H_BATCHES = 6 }; /* batches per thread */

typedef struct hessian_job {
    aq_hessian *h, *h_same;     /* shared destinations */
    const aq_hessian *src;      /* merged into h by every thread, read concurrently */
    const float *X;             /* N_HOST · H_BATCHES batches of H_ROWS × H_IN */
    int t;
    int failures;
} hessian_job;

static const float *batch(const float *X, int b)
{
    return X + (size_t)b * H_ROWS * H_IN;
}

static void *hessian_worker(void *p)
{
    hessian_job *job = p;
    for (int k = 0; k < H_BATCHES; k++) {
        job->failures += aq_hessian_add(job->h, batch(job->X, job->t * H_BATCHES + k), H_ROWS, H_IN) != AQ_OK;
        job->failures += aq_hessian_add(job->h_same, job->X, H_ROWS, H_IN) != AQ_OK;
        if (k == H_BATCHES / 2)
            job->failures += aq_hessian_merge(job->h, job->src) != AQ_OK;
    }
    return NULL;
}

/* The same adds and merges in one thread: with distinct batches the order of the running mean's
 * roundings differs, so the matrices agree to rounding; when every add is the same batch the
 * order cannot matter and they agree to the bit. */
START_TEST(concurrent_adds_and_merges_on_one_hessian)
{
    aq_context *ctx = tu_context(2, 1);
    float *X = tu_random_matrix((int64_t)N_HOST * H_BATCHES * H_ROWS, H_IN, 11);
    aq_hessian *src = NULL, *h = NULL, *h_same = NULL, *ref = NULL, *ref_same = NULL;
    ck_assert_int_eq(aq_hessian_create(&src, ctx, H_IN), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(src, batch(X, 1), H_ROWS, H_IN), AQ_OK);
    ck_assert_int_eq(aq_hessian_create(&h, ctx, H_IN), AQ_OK);
    ck_assert_int_eq(aq_hessian_create(&h_same, ctx, H_IN), AQ_OK);
    ck_assert_int_eq(aq_hessian_create(&ref, ctx, H_IN), AQ_OK);
    ck_assert_int_eq(aq_hessian_create(&ref_same, ctx, H_IN), AQ_OK);
    for (int t = 0; t < N_HOST; t++)
        for (int k = 0; k < H_BATCHES; k++) {
            ck_assert_int_eq(aq_hessian_add(ref, batch(X, t * H_BATCHES + k), H_ROWS, H_IN), AQ_OK);
            ck_assert_int_eq(aq_hessian_add(ref_same, X, H_ROWS, H_IN), AQ_OK);
            if (k == H_BATCHES / 2)
                ck_assert_int_eq(aq_hessian_merge(ref, src), AQ_OK);
        }

    hessian_job jobs[N_HOST];
    for (int t = 0; t < N_HOST; t++)
        jobs[t] = (hessian_job){h, h_same, src, X, t, 0};
    run_threads(hessian_worker, jobs, sizeof jobs[0]);
    for (int t = 0; t < N_HOST; t++)
        ck_assert_int_eq(jobs[t].failures, 0);

    ck_assert_int_eq(aq_hessian_num_samples(h), aq_hessian_num_samples(ref));
    ck_assert_int_eq(aq_hessian_num_samples(h_same), (int64_t)N_HOST * H_BATCHES * H_ROWS);
    double *a = hessian_matrix(h), *b = hessian_matrix(ref);
    double scale = 0.0;
    for (int i = 0; i < H_IN * H_IN; i++)
        scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < H_IN * H_IN; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= 1e-12 * scale, "H[%d]: %.17g concurrently, %.17g serially", i, a[i],
                      b[i]);
    free(a);
    free(b);
    a = hessian_matrix(h_same);
    b = hessian_matrix(ref_same);
    ck_assert_mem_eq(a, b, sizeof(double) * H_IN * H_IN);
    free(a);
    free(b);
    aq_hessian_free(src);
    aq_hessian_free(h);
    aq_hessian_free(h_same);
    aq_hessian_free(ref);
    aq_hessian_free(ref_same);
    aq_context_free(ctx);
    free(X);
}
END_TEST

/* --------------------------------------------------------------------- one shared quant -- */

enum { Q_ROWS = 64, Q_COLS = 64, N_VEC = 16, MATMUL_ROWS = 9, Q_REPS = 3 };

typedef struct matvec_job {
    const aq_quant *q;
    const float *X;           /* N_VEC inputs */
    const float *Y_ref;       /* their products, single-threaded */
    const float *matmul_ref;  /* X[0 .. MATMUL_ROWS) Ŵᵀ, single-threaded */
    int t;
    int failures, mismatches;
} matvec_job;

static void *matvec_worker(void *p)
{
    matvec_job *job = p;
    float y[Q_ROWS], *Y = malloc(sizeof(float) * MATMUL_ROWS * Q_ROWS);
    if (!Y) {
        job->failures++;
        return NULL;
    }
    for (int rep = 0; rep < Q_REPS; rep++) {
        for (int v = job->t; v < N_VEC; v += N_HOST) {
            job->failures += aq_quant_matvec(job->q, job->X + v * Q_COLS, y) != AQ_OK;
            job->mismatches += memcmp(y, job->Y_ref + v * Q_ROWS, sizeof y) != 0;
        }
        job->failures += aq_quant_matmul(job->q, job->X, MATMUL_ROWS, Q_COLS, Y, Q_ROWS) != AQ_OK;
        job->mismatches += memcmp(Y, job->matmul_ref, sizeof(float) * MATMUL_ROWS * Q_ROWS) != 0;
    }
    free(Y);
    return NULL;
}

START_TEST(concurrent_products_with_one_quant)
{
    static const char *formats[] = {"2x8g8", "1x12g4"}; /* lookup tables; codewords read directly */
    for (size_t fi = 0; fi < sizeof formats / sizeof formats[0]; fi++) {
        aq_context *ctx = tu_context(2, 2);
        aq_quant *q = tu_random_quant(ctx, formats[fi], Q_ROWS, Q_COLS, 21 + fi);
        float *X = tu_random_matrix(N_VEC, Q_COLS, 22);
        float *Y_ref = malloc(sizeof(float) * N_VEC * Q_ROWS);
        float *M_ref = malloc(sizeof(float) * MATMUL_ROWS * Q_ROWS);
        for (int v = 0; v < N_VEC; v++)
            ck_assert_int_eq(aq_quant_matvec(q, X + v * Q_COLS, Y_ref + v * Q_ROWS), AQ_OK);
        ck_assert_int_eq(aq_quant_matmul(q, X, MATMUL_ROWS, Q_COLS, M_ref, Q_ROWS), AQ_OK);

        matvec_job jobs[N_HOST];
        for (int t = 0; t < N_HOST; t++)
            jobs[t] = (matvec_job){q, X, Y_ref, M_ref, t, 0, 0};
        run_threads(matvec_worker, jobs, sizeof jobs[0]);
        for (int t = 0; t < N_HOST; t++) {
            ck_assert_msg(jobs[t].failures == 0, "%s: thread %d: %d calls failed", formats[fi], t, jobs[t].failures);
            ck_assert_msg(jobs[t].mismatches == 0, "%s: thread %d: %d products differ from the serial ones",
                          formats[fi], t, jobs[t].mismatches);
        }
        aq_quant_free(q);
        aq_context_free(ctx);
        free(X);
        free(Y_ref);
        free(M_ref);
    }
}
END_TEST

/* ---------------------------------------------------- init + optimize, separate quants -- */

enum { L_ROWS = 32, L_COLS = 32, L_CALIB = 96 };

typedef struct layer_job {
    aq_context *ctx;
    const aq_hessian *H;
    const aq_options *opts;
    const float *W;
    aq_quant *q;
    int status;
} layer_job;

static void *layer_worker(void *p)
{
    layer_job *job = p;
    job->status = aq_init(job->ctx, job->q, job->W, L_COLS, job->H, job->opts);
    if (job->status == AQ_OK)
        job->status = aq_optimize(job->ctx, job->q, job->W, L_COLS, job->H, job->opts);
    return NULL;
}

static aq_quant *new_quant(aq_context *ctx)
{
    aq_format f;
    aq_quant *q = NULL;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, "2x4g4"), AQ_OK);
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, L_ROWS, L_COLS), AQ_OK);
    return q;
}

static void assert_same_quant(aq_quant *a, aq_quant *b, int t)
{
    size_t na, nb;
    const void *ca = aq_quant_codes(a, &na), *cb = aq_quant_codes(b, &nb);
    ck_assert_msg(na == nb && memcmp(ca, cb, na) == 0, "thread %d: codes differ", t);
    const float *ka = aq_quant_codebooks(a, &na), *kb = aq_quant_codebooks(b, &nb);
    ck_assert_msg(na == nb && memcmp(ka, kb, na * sizeof(float)) == 0, "thread %d: codebooks differ", t);
    const float *sa = aq_quant_scales(a, &na), *sb = aq_quant_scales(b, &nb);
    ck_assert_msg(na == nb && memcmp(sa, sb, na * sizeof(float)) == 0, "thread %d: scales differ", t);
}

/* Threads 0 and 2 use greedy initialisation, 1 and 3 OA-EM; each its own weight. */
START_TEST(concurrent_init_and_optimize_on_separate_quants)
{
    aq_context *ctx = tu_context(2, 3);
    float *X = tu_random_matrix(L_CALIB, L_COLS, 31);
    aq_hessian *H = NULL;
    aq_options *opts[2] = {NULL, NULL};
    float *W[N_HOST];
    aq_quant *ref[N_HOST];
    layer_job jobs[N_HOST];
    ck_assert_int_eq(aq_hessian_create(&H, ctx, L_COLS), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(H, X, L_CALIB, L_COLS), AQ_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(aq_options_create(&opts[k], ctx), AQ_OK);
        ck_assert_int_eq(aq_options_set_int(opts[k], AQ_OPT_INIT_METHOD, k ? AQ_INIT_OA_EM : AQ_INIT_GREEDY), AQ_OK);
        ck_assert_int_eq(aq_options_set_int(opts[k], AQ_OPT_KMEANS_MAX_ITER, 10), AQ_OK);
        ck_assert_int_eq(aq_options_set_int(opts[k], AQ_OPT_EM_MAX_ROUNDS, 3), AQ_OK);
        ck_assert_int_eq(aq_options_set_int(opts[k], AQ_OPT_MAX_EPOCHS, 2), AQ_OK);
    }
    for (int t = 0; t < N_HOST; t++) {
        W[t] = tu_random_matrix(L_ROWS, L_COLS, 40 + (uint64_t)t);
        ref[t] = new_quant(ctx);
        jobs[t] = (layer_job){ctx, H, opts[t % 2], W[t], ref[t], AQ_ERR_INTERNAL};
        layer_worker(&jobs[t]);
        ck_assert_int_eq(jobs[t].status, AQ_OK);
        jobs[t].q = new_quant(ctx);
        jobs[t].status = AQ_ERR_INTERNAL;
    }
    run_threads(layer_worker, jobs, sizeof jobs[0]);
    for (int t = 0; t < N_HOST; t++) {
        ck_assert_msg(jobs[t].status == AQ_OK, "thread %d: %s", t, aq_strerror(jobs[t].status));
        assert_same_quant(jobs[t].q, ref[t], t);
        aq_quant_free(jobs[t].q);
        aq_quant_free(ref[t]);
        free(W[t]);
    }
    aq_options_free(opts[0]);
    aq_options_free(opts[1]);
    aq_hessian_free(H);
    aq_context_free(ctx);
    free(X);
}
END_TEST

/* ------------------------------------------------------------- failures from all threads -- */

enum { E_REPS = 200 };

/* Thread t's failure: an empty matrix (AQ_ERR_SHAPE) for even t, 17 + t bits (AQ_ERR_INVALID_ARG)
 * for odd t; the message names t's own numbers. */
static int fail_as(aq_context *ctx, int t)
{
    aq_format f;
    aq_format_init(&f);
    if (t % 2)
        f.bits_per_codebook = 17 + t;
    return aq_format_check(ctx, &f, t % 2 ? 8 : 0, 8 * (t + 1));
}

typedef struct expected_error {
    int status;
    char text[512];
} expected_error;

typedef struct error_job {
    aq_context *ctx;
    const expected_error *expected; /* N_HOST */
    int t;
    int wrong_status, torn, wrong_log;
} error_job;

static _Thread_local const char *my_message; /* what this thread's failure logs */
static _Thread_local int my_logs;

/* Called on the thread that failed: the message must be that thread's own. */
static void check_log(int32_t level, const char *message, void *ud)
{
    int *wrong = ud;
    (void)level;
    my_logs++;
    if (!my_message || strcmp(message, my_message) != 0)
        __atomic_add_fetch(wrong, 1, __ATOMIC_RELAXED);
}

static void *error_worker(void *p)
{
    error_job *job = p;
    char buf[512];
    my_message = job->expected[job->t].text;
    for (int rep = 0; rep < E_REPS; rep++) {
        job->wrong_status += fail_as(job->ctx, job->t) != job->expected[job->t].status;
        const int st = aq_context_copy_last_error(job->ctx, buf, sizeof buf);
        /* The copy is one failure's whole message with its own status, or cleared by thread 0. */
        int whole = st == AQ_OK && buf[0] == '\0';
        for (int u = 0; u < N_HOST; u++)
            whole |= st == job->expected[u].status && strcmp(buf, job->expected[u].text) == 0;
        job->torn += !whole;
        if (job->t == 0 && rep % 16 == 0)
            aq_context_clear_error(job->ctx);
    }
    job->wrong_log += my_logs != E_REPS;
    return NULL;
}

START_TEST(failures_reported_from_several_threads)
{
    aq_context *ctx = tu_context(2, 4);
    expected_error expected[N_HOST];
    error_job jobs[N_HOST];
    int wrong_log_text = 0;
    for (int t = 0; t < N_HOST; t++) {
        expected[t].status = fail_as(ctx, t);
        ck_assert_int_lt(expected[t].status, 0);
        ck_assert_int_eq(aq_context_copy_last_error(ctx, expected[t].text, sizeof expected[t].text),
                         expected[t].status);
        for (int u = 0; u < t; u++)
            ck_assert_str_ne(expected[u].text, expected[t].text);
    }
    ck_assert_int_eq(aq_context_set_log_callback(ctx, check_log, AQ_LOG_ERROR, &wrong_log_text), AQ_OK);
    for (int t = 0; t < N_HOST; t++)
        jobs[t] = (error_job){ctx, expected, t, 0, 0, 0};
    run_threads(error_worker, jobs, sizeof jobs[0]);
    for (int t = 0; t < N_HOST; t++) {
        ck_assert_msg(jobs[t].wrong_status == 0, "thread %d: %d wrong statuses", t, jobs[t].wrong_status);
        ck_assert_msg(jobs[t].torn == 0, "thread %d: %d copies were not one failure's message", t, jobs[t].torn);
        ck_assert_msg(jobs[t].wrong_log == 0, "thread %d: its failures were not all logged on it", t);
    }
    ck_assert_int_eq(wrong_log_text, 0);
    /* Quiet now: the last message is one of the failures' (or cleared). */
    const char *last = aq_context_last_error(ctx);
    int known = last[0] == '\0';
    for (int t = 0; t < N_HOST; t++)
        known |= strcmp(last, expected[t].text) == 0;
    ck_assert_msg(known, "last error '%s'", last);
    aq_context_free(ctx);
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, concurrent_adds_and_merges_on_one_hessian);
    tcase_add_test(tc, concurrent_products_with_one_quant);
    tcase_add_test(tc, concurrent_init_and_optimize_on_separate_quants);
    tcase_add_test(tc, failures_reported_from_several_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(threads_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The MPI adapter under mpirun -np 1, 2, 3 (suite "mpi"): every sharded function gives every
 * rank the bytes of the run without a communicator; aq_hessian_allreduce equals the rank-order
 * aq_hessian_merge of the ranks' partial Hessians (recomputed on every rank from the shared
 * data) and is the same on all ranks; a cancelling progress callback on the last rank makes
 * every rank return AQ_ERR_CANCELLED, a failing host callback there AQ_ERR_CALLBACK. Exit status
 * 0 only if every check passed on every rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aqinit-mpi.h"

enum { ROWS = 64, COLS = 64, CALIB = 192 };

static int failures;
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            failures++;                                    \
            fprintf(stderr, "rank %d: ", my_rank);         \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, "\n");                         \
        }                                                  \
    } while (0)
static int my_rank;

static float *random_matrix(int rows, int cols, uint64_t state)
{
    float *m = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    for (int i = 0; i < rows * cols; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        m[i] = (float)((double)(state >> 11) * 0x1.0p-53 - 0.5);
        if (i % cols)
            m[i] += 0.6f * m[i - 1]; /* correlated columns */
    }
    return m;
}

typedef struct bytes { unsigned char *codes; float *books, *scales; size_t nc, nb, ns; int status; } bytes;

static void take(bytes *b, aq_quant *q, int status)
{
    const void *c = aq_quant_codes(q, &b->nc);
    const float *k = aq_quant_codebooks(q, &b->nb), *s = aq_quant_scales(q, &b->ns);
    b->codes = malloc(b->nc);
    b->books = malloc(sizeof(float) * b->nb);
    b->scales = malloc(sizeof(float) * b->ns);
    memcpy(b->codes, c, b->nc);
    memcpy(b->books, k, sizeof(float) * b->nb);
    memcpy(b->scales, s, sizeof(float) * b->ns);
    b->status = status;
}

static int same(const bytes *a, const bytes *b)
{
    return a->status == b->status && a->nc == b->nc && !memcmp(a->codes, b->codes, a->nc)
           && !memcmp(a->books, b->books, sizeof(float) * a->nb) && !memcmp(a->scales, b->scales, sizeof(float) * a->ns);
}

static void drop(bytes *b)
{
    free(b->codes);
    free(b->books);
    free(b->scales);
}

static int cancel(const aq_progress *p, void *ud)
{
    (void)p;
    (void)ud;
    return 1;
}

/* aq_init (OA-EM) then aq_optimize (beam 4, two epochs) on @p ctx. */
static int quantize(aq_context *ctx, const float *W, const float *X, bytes *out)
{
    aq_format f;
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    aq_options *o = NULL;
    int st;
    aq_format_init(&f);
    aq_format_parse(&f, "2x6g8");
    aq_options_create(&o, ctx);
    aq_options_set_int(o, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
    aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, 4);
    aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, 2);
    st = aq_hessian_create(&H, ctx, COLS);
    if (st == AQ_OK)
        st = aq_hessian_add(H, X, CALIB, COLS);
    if (st == AQ_OK)
        st = aq_quant_create(&q, ctx, &f, ROWS, COLS);
    if (st == AQ_OK)
        st = aq_init(ctx, q, W, COLS, H, o);
    if (st == AQ_OK)
        st = aq_optimize(ctx, q, W, COLS, H, o);
    if (q)
        take(out, q, st);
    else
        memset(out, 0, sizeof *out), out->status = st;
    aq_quant_free(q);
    aq_hessian_free(H);
    aq_options_free(o);
    return st;
}

/* A two-layer pipeline host whose calibrate fails on rank fail_rank. */
typedef struct host { const float *W, *X; int fail_rank; } host;

static int h_layers(int32_t *n, void *ud)
{
    (void)ud;
    *n = 2;
    return 0;
}

static int h_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    (void)k;
    (void)ud;
    *name = "layer";
    *rows = ROWS;
    *cols = COLS;
    return 0;
}

static int h_weight(int32_t k, float *W, void *ud)
{
    (void)k;
    memcpy(W, ((host *)ud)->W, sizeof(float) * ROWS * COLS);
    return 0;
}

static int h_calibrate(int32_t k, aq_hessian *H, void *ud)
{
    const host *h = ud;
    if (k == 1 && my_rank == h->fail_rank)
        return 9;
    return aq_hessian_add(H, h->X, CALIB, COLS) != AQ_OK;
}

static int h_put(int32_t k, const aq_quant *q, const aq_layer_report *r, void *ud)
{
    (void)k;
    (void)q;
    (void)r;
    (void)ud;
    return 0;
}

int main(int argc, char **argv)
{
    aq_comm *comm = NULL;
    aq_context *alone = NULL, *ctx = NULL;
    int size, total_failures = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(aq_comm_mpi_create(&comm, MPI_COMM_WORLD) == AQ_OK, "aq_comm_mpi_create");
    CHECK(comm && comm->rank == my_rank && comm->size == size, "rank/size");
    aq_context_create(&alone);
    aq_context_create(&ctx);
    CHECK(aq_context_set_comm(ctx, comm) == AQ_OK, "set_comm: %s", aq_context_last_error(ctx));
    CHECK(aq_context_comm_size(ctx) == size, "comm size");
    float *W = random_matrix(ROWS, COLS, 1), *X = random_matrix(CALIB, COLS, 2);

    /* 0. the adapter's callbacks themselves: sums, broadcast from the last rank, agreement */
    if (comm) {
        double d[3] = {1.0 + my_rank, 0.5, -2.0 * my_rank};
        float f[2] = {(float)my_rank, 1.0f};
        unsigned char payload[5] = {0};
        int32_t status = my_rank == size - 1 ? AQ_ERR_NOMEM : 0, failed = -2;
        const double n = size;
        CHECK(comm->allreduce_sum_f64(d, 3, comm->userdata) == 0 && d[0] == n * (n + 1) / 2 && d[1] == 0.5 * n
              && d[2] == -n * (n - 1), "allreduce_sum_f64");
        CHECK(comm->allreduce_sum_f32(f, 2, comm->userdata) == 0 && f[0] == (float)(n * (n - 1) / 2) && f[1] == (float)n,
              "allreduce_sum_f32");
        if (my_rank == size - 1)
            memcpy(payload, "abcde", 5);
        CHECK(comm->broadcast(payload, 5, size - 1, comm->userdata) == 0 && !memcmp(payload, "abcde", 5), "broadcast");
        CHECK(comm->agree(&status, &failed, comm->userdata) == 0 && status == AQ_ERR_NOMEM && failed == size - 1,
              "agree: %d from rank %d", (int)status, (int)failed);
    }

    /* 1. init + optimize: every rank = the run without a communicator */
    bytes ref, got;
    CHECK(quantize(alone, W, X, &ref) == AQ_OK, "reference: %s", aq_context_last_error(alone));
    CHECK(quantize(ctx, W, X, &got) == AQ_OK, "with %d ranks: %s", size, aq_context_last_error(ctx));
    CHECK(same(&ref, &got), "init + optimize on %d ranks differs from one process", size);
    drop(&ref);
    drop(&got);

    /* 2. the Hessian: rank r adds rows [CALIB·r/size, CALIB·(r+1)/size) */
    {
        aq_hessian *H = NULL, *merged = NULL;
        double *a = malloc(sizeof(double) * COLS * COLS), *b = malloc(sizeof(double) * COLS * COLS);
        int r0 = CALIB * my_rank / size, r1 = CALIB * (my_rank + 1) / size;
        aq_hessian_create(&H, ctx, COLS);
        CHECK(aq_hessian_add(H, X + (size_t)r0 * COLS, r1 - r0, COLS) == AQ_OK, "add");
        CHECK(aq_hessian_allreduce(H) == AQ_OK, "allreduce: %s", aq_context_last_error(ctx));
        CHECK(aq_hessian_num_samples(H) == CALIB, "samples %lld", (long long)aq_hessian_num_samples(H));
        aq_hessian_create(&merged, alone, COLS);
        for (int r = 0; r < size; r++) {
            aq_hessian *part = NULL;
            int p0 = CALIB * r / size, p1 = CALIB * (r + 1) / size;
            aq_hessian_create(&part, alone, COLS);
            aq_hessian_add(part, X + (size_t)p0 * COLS, p1 - p0, COLS);
            aq_hessian_merge(merged, part);
            aq_hessian_free(part);
        }
        aq_hessian_copy_matrix(H, a, COLS, 0.0);
        aq_hessian_copy_matrix(merged, b, COLS, 0.0);
        CHECK(!memcmp(a, b, sizeof(double) * COLS * COLS), "allreduce != rank-order merge");
        /* the same bytes on every rank: compare with rank 0's */
        memcpy(b, a, sizeof(double) * COLS * COLS);
        MPI_Bcast(b, COLS * COLS, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        CHECK(!memcmp(a, b, sizeof(double) * COLS * COLS), "Hessian differs from rank 0's");
        aq_hessian_free(H);
        aq_hessian_free(merged);
        free(a);
        free(b);
    }

    /* 3. a cancellation on the last rank stops every rank */
    if (size > 1) {
        if (my_rank == size - 1)
            aq_context_set_progress_callback(ctx, cancel, NULL);
        CHECK(quantize(ctx, W, X, &got) == AQ_ERR_CANCELLED, "cancel: status %d", got.status);
        drop(&got);
    }

    /* 4. a host callback failing on the last rank: AQ_ERR_CALLBACK on every rank, host status
     * only where it failed (mpirun's timeout bounds a hang) */
    if (size > 1) {
        aq_context_set_progress_callback(ctx, NULL, NULL);
        host h = {W, X, size - 1};
        aq_pipeline_callbacks cb = {sizeof cb, h_layers, h_info, h_weight, h_calibrate, h_put, &h};
        aq_format f;
        aq_pipeline *p = NULL;
        aq_format_init(&f);
        aq_format_parse(&f, "2x6g8");
        CHECK(aq_pipeline_create(&p, ctx, &cb, &f, NULL) == AQ_OK, "pipeline_create");
        int st = aq_pipeline_run(p);
        CHECK(st == AQ_ERR_CALLBACK, "pipeline with a failing calibrate: %d", st);
        CHECK(aq_pipeline_host_status(p) == (my_rank == size - 1 ? 9 : 0), "host status %d",
              aq_pipeline_host_status(p));
        aq_pipeline_free(p);
    }

    free(W);
    free(X);
    aq_context_free(ctx);
    aq_context_free(alone);
    aq_comm_mpi_free(comm);
    MPI_Allreduce(&failures, &total_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (my_rank == 0)
        printf("%d ranks: %s (%d failed checks)\n", size, total_failures ? "FAILED" : "OK", total_failures);
    MPI_Finalize();
    return total_failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

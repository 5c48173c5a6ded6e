/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* A fixed-size pthreads pool running one statically split parallel loop at a time.
 * Chunk t of T covers [n·t/T, n·(t+1)/T): the split depends only on n and T, which keeps
 * every result independent of scheduling. The calling thread runs chunk 0. */
#include <stdlib.h>

#include "core/internal.h"

struct aqi_pool {
    int n_workers; /* threads besides the caller */
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    uint64_t generation; /* incremented for each loop */
    int pending;         /* worker chunks not yet finished */
    int shutdown;
    /* the current loop */
    aqi_range_fn fn;
    void *arg;
    int64_t n;
    int n_chunks;
    int *status; /* per chunk */
};

static _Thread_local int inside_parallel_region;

static void chunk_bounds(int64_t n, int t, int n_chunks, int64_t *begin, int64_t *end)
{
    *begin = (int64_t)((__int128)n * t / n_chunks);
    *end = (int64_t)((__int128)n * (t + 1) / n_chunks);
}

typedef struct worker_arg { aqi_pool *pool; int index; } worker_arg;

static void *worker_main(void *p)
{
    worker_arg *wa = p;
    aqi_pool *pool = wa->pool;
    int t = wa->index;
    uint64_t seen = 0;
    free(wa);
    inside_parallel_region = 1;
    pthread_mutex_lock(&pool->mutex);
    for (;;) {
        while (!pool->shutdown && pool->generation == seen)
            pthread_cond_wait(&pool->work_cv, &pool->mutex);
        if (pool->shutdown)
            break;
        seen = pool->generation;
        if (t < pool->n_chunks) {
            int64_t b, e;
            chunk_bounds(pool->n, t, pool->n_chunks, &b, &e);
            pthread_mutex_unlock(&pool->mutex);
            int st = b < e ? pool->fn(pool->arg, b, e, t) : 0;
            pthread_mutex_lock(&pool->mutex);
            pool->status[t] = st;
            if (--pool->pending == 0)
                pthread_cond_signal(&pool->done_cv);
        }
    }
    pthread_mutex_unlock(&pool->mutex);
    return NULL;
}

void aqi_pool_destroy(aqi_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mutex);
    pool->shutdown = 1;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_workers; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->work_cv);
    pthread_cond_destroy(&pool->done_cv);
    free(pool->status);
    free(pool->threads);
    free(pool);
}

/* The pool's own bookkeeping uses malloc: it is not a data allocation the host sizes. */
static int pool_create(aq_context *ctx, int n_threads, aqi_pool **out)
{
    aqi_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return aqi_fail(ctx, AQ_ERR_NOMEM, "out of memory creating the thread pool");
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    pool->status = calloc((size_t)n_threads, sizeof *pool->status);
    if (!pool->threads || !pool->status) {
        free(pool->threads);
        free(pool->status);
        free(pool);
        return aqi_fail(ctx, AQ_ERR_NOMEM, "out of memory creating the thread pool");
    }
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->work_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            aqi_pool_destroy(pool);
            return aqi_fail(ctx, AQ_ERR_NOMEM, "out of memory creating the thread pool");
        }
        /* Fill the argument before the thread starts: the worker owns and frees it. */
        wa->pool = pool;
        wa->index = i;
        if (pthread_create(&pool->threads[pool->n_workers], NULL, worker_main, wa) != 0) {
            free(wa);
            aqi_pool_destroy(pool);
            return aqi_fail(ctx, AQ_ERR_THREAD, "could not start thread %d of the pool", i);
        }
        pool->n_workers++;
    }
    *out = pool;
    return AQ_OK;
}

int aqi_num_workers(aq_context *ctx)
{
    int n;
    if (inside_parallel_region)
        return 1;
    pthread_mutex_lock(&ctx->lock);
    n = ctx->n_threads;
    pthread_mutex_unlock(&ctx->lock);
    return n;
}

static int run_serial(int64_t n, aqi_range_fn fn, void *arg, int n_chunks)
{
    /* Same split as the parallel run, so a nested or single-thread call gives the same bits. */
    for (int t = 0; t < n_chunks; t++) {
        int64_t b, e;
        chunk_bounds(n, t, n_chunks, &b, &e);
        if (b < e) {
            int st = fn(arg, b, e, t);
            if (st)
                return st;
        }
    }
    return 0;
}

int aqi_parallel_for(aq_context *ctx, int64_t n, aqi_range_fn fn, void *arg)
{
    int n_chunks, st = 0;
    aqi_pool *pool;
    if (n <= 0)
        return 0;
    if (inside_parallel_region)
        return run_serial(n, fn, arg, 1);
    pthread_mutex_lock(&ctx->pool_lock);
    pthread_mutex_lock(&ctx->lock);
    n_chunks = ctx->n_threads;
    pthread_mutex_unlock(&ctx->lock);
    if (n_chunks <= 1) {
        pthread_mutex_unlock(&ctx->pool_lock);
        return run_serial(n, fn, arg, 1);
    }
    if (ctx->pool && ctx->pool->n_workers + 1 != n_chunks) {
        aqi_pool_destroy(ctx->pool);
        ctx->pool = NULL;
    }
    if (!ctx->pool) {
        st = pool_create(ctx, n_chunks, &ctx->pool);
        if (st) {
            pthread_mutex_unlock(&ctx->pool_lock);
            return st;
        }
    }
    pool = ctx->pool;
    pthread_mutex_lock(&pool->mutex);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->n_chunks = n_chunks;
    pool->pending = n_chunks - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mutex);

    inside_parallel_region = 1;
    {
        int64_t b, e;
        chunk_bounds(n, 0, n_chunks, &b, &e);
        pool->status[0] = b < e ? fn(arg, b, e, 0) : 0;
    }
    inside_parallel_region = 0;

    pthread_mutex_lock(&pool->mutex);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done_cv, &pool->mutex);
    for (int t = 0; t < n_chunks && !st; t++)
        st = pool->status[t];
    pthread_mutex_unlock(&pool->mutex);
    pthread_mutex_unlock(&ctx->pool_lock);
    return st;
}

/* aqi_parallel_for over [begin, end): the same split of end − begin items, shifted. */
typedef struct shifted_job { aqi_range_fn fn; void *arg; int64_t offset; } shifted_job;

static int shifted_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const shifted_job *job = arg;
    return job->fn(job->arg, begin + job->offset, end + job->offset, worker);
}

int aqi_parallel_for_range(aq_context *ctx, int64_t begin, int64_t end, aqi_range_fn fn, void *arg)
{
    shifted_job job = {fn, arg, begin};
    return aqi_parallel_for(ctx, end - begin, shifted_range, &job);
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The context: allocator, thread count, seed, callbacks. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

static void *default_alloc(size_t size, void *userdata)
{
    (void)userdata;
    return malloc(size);
}

static void default_free(void *ptr, void *userdata)
{
    (void)userdata;
    free(ptr);
}

int aq_context_create_with_allocator(aq_context **out, const aq_allocator *allocator)
{
    aq_context *ctx;
    if (!out || !allocator || !allocator->alloc || !allocator->free)
        return AQ_ERR_INVALID_ARG;
    *out = NULL;
    ctx = allocator->alloc(sizeof *ctx, allocator->userdata);
    if (!ctx)
        return AQ_ERR_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->allocator = *allocator;
    ctx->n_threads = 1;
    ctx->n_threads_requested = 1;
    ctx->log_level = AQ_LOG_INFO;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->pool_lock, NULL);
    *out = ctx;
    return AQ_OK;
}

int aq_context_create(aq_context **out)
{
    aq_allocator a = {default_alloc, default_free, NULL};
    return aq_context_create_with_allocator(out, &a);
}

void aq_context_free(aq_context *ctx)
{
    if (!ctx)
        return;
    aqi_pool_destroy(ctx->pool);
    pthread_mutex_destroy(&ctx->pool_lock);
    pthread_mutex_destroy(&ctx->lock);
    ctx->allocator.free(ctx, ctx->allocator.userdata);
}

#define AQI_MAX_THREADS 1024

int aq_context_set_threads(aq_context *ctx, int32_t n_threads)
{
    int32_t resolved = n_threads;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (n_threads < 0 || n_threads > AQI_MAX_THREADS)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_context_set_threads: %d is not in 0..%d",
                        (int)n_threads, AQI_MAX_THREADS);
    if (n_threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        resolved = online < 1 ? 1 : online > AQI_MAX_THREADS ? AQI_MAX_THREADS : (int32_t)online;
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->n_threads = resolved;
    ctx->n_threads_requested = n_threads;
    pthread_mutex_unlock(&ctx->lock);
    return AQ_OK;
}

int32_t aq_context_get_threads(const aq_context *ctx)
{
    int32_t n;
    aq_context *c = (aq_context *)ctx;
    if (!ctx)
        return 0;
    pthread_mutex_lock(&c->lock);
    n = c->n_threads;
    pthread_mutex_unlock(&c->lock);
    return n;
}

int aq_context_set_seed(aq_context *ctx, uint64_t seed)
{
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    pthread_mutex_lock(&ctx->lock);
    ctx->seed = seed;
    pthread_mutex_unlock(&ctx->lock);
    return AQ_OK;
}

uint64_t aq_context_get_seed(const aq_context *ctx)
{
    uint64_t s;
    aq_context *c = (aq_context *)ctx;
    if (!ctx)
        return 0;
    pthread_mutex_lock(&c->lock);
    s = c->seed;
    pthread_mutex_unlock(&c->lock);
    return s;
}

int aq_context_set_log_callback(aq_context *ctx, aq_log_fn fn, int32_t max_level, void *userdata)
{
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (max_level < AQ_LOG_ERROR || max_level > AQ_LOG_DEBUG)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_context_set_log_callback: level %d is not in 0..3",
                        (int)max_level);
    pthread_mutex_lock(&ctx->lock);
    ctx->log_fn = fn;
    ctx->log_level = max_level;
    ctx->log_userdata = userdata;
    pthread_mutex_unlock(&ctx->lock);
    return AQ_OK;
}

int aq_context_set_progress_callback(aq_context *ctx, aq_progress_fn fn, void *userdata)
{
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    pthread_mutex_lock(&ctx->lock);
    ctx->progress_fn = fn;
    ctx->progress_userdata = userdata;
    pthread_mutex_unlock(&ctx->lock);
    return AQ_OK;
}

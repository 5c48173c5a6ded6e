/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Status strings, the context's last-error text, logging and progress reporting. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

const char *aq_strerror(int status)
{
    switch (status) {
    case AQ_OK: return "AQ_OK: success";
    case AQ_ERR_INVALID_ARG: return "AQ_ERR_INVALID_ARG: invalid argument";
    case AQ_ERR_SHAPE: return "AQ_ERR_SHAPE: sizes do not fit together";
    case AQ_ERR_OVERFLOW: return "AQ_ERR_OVERFLOW: size computation overflows";
    case AQ_ERR_NOMEM: return "AQ_ERR_NOMEM: out of memory";
    case AQ_ERR_NONFINITE: return "AQ_ERR_NONFINITE: NaN or Inf in input";
    case AQ_ERR_NOT_PSD: return "AQ_ERR_NOT_PSD: matrix is not symmetric positive (semi)definite";
    case AQ_ERR_FORMAT: return "AQ_ERR_FORMAT: malformed, truncated or foreign file";
    case AQ_ERR_IO: return "AQ_ERR_IO: file input/output failed";
    case AQ_ERR_CANCELLED: return "AQ_ERR_CANCELLED: cancelled by the progress callback";
    case AQ_ERR_CALLBACK: return "AQ_ERR_CALLBACK: a host callback reported an error";
    case AQ_ERR_UNSUPPORTED: return "AQ_ERR_UNSUPPORTED: not supported";
    case AQ_ERR_INTERNAL: return "AQ_ERR_INTERNAL: internal numerical failure";
    case AQ_ERR_THREAD: return "AQ_ERR_THREAD: could not create a thread";
    case AQ_ERR_MISMATCH: return "AQ_ERR_MISMATCH: a saved result does not match this run's inputs or settings";
    default: return "AQ_ERR_?: unknown status code";
    }
}

static void deliver_log(aq_context *ctx, int32_t level, const char *text)
{
    aq_log_fn fn;
    void *ud;
    int32_t max_level;
    pthread_mutex_lock(&ctx->lock);
    fn = ctx->log_fn;
    ud = ctx->log_userdata;
    max_level = ctx->log_level;
    pthread_mutex_unlock(&ctx->lock);
    if (fn && level <= max_level)
        fn(level, text, ud);
}

int aqi_fail(aq_context *ctx, int status, const char *fmt, ...)
{
    char text[sizeof ctx->last_error];
    va_list ap;
    if (!ctx)
        return status;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ctx->lock);
    ctx->last_status = status;
    memcpy(ctx->last_error, text, sizeof text);
    pthread_mutex_unlock(&ctx->lock);
    deliver_log(ctx, AQ_LOG_ERROR, text);
    return status;
}

void aqi_log(aq_context *ctx, int32_t level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (!ctx || !ctx->log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    deliver_log(ctx, level, text);
}

int aqi_progress(aq_context *ctx, const char *operation, int32_t stage, int32_t n_stages,
                 int32_t round, double objective)
{
    aq_progress info;
    aq_progress_fn fn;
    void *ud;
    pthread_mutex_lock(&ctx->lock);
    fn = ctx->progress_fn;
    ud = ctx->progress_userdata;
    pthread_mutex_unlock(&ctx->lock);
    aqi_log(ctx, AQ_LOG_DEBUG, "%s: stage %d/%d round %d objective %.9g", operation, stage,
            n_stages, round, objective);
    if (!fn)
        return AQ_OK;
    memset(&info, 0, sizeof info);
    info.struct_size = (uint32_t)sizeof info;
    info.operation = operation;
    info.stage = stage;
    info.n_stages = n_stages;
    info.round = round;
    info.objective = objective;
    if (fn(&info, ud) != 0)
        return aqi_fail(ctx, AQ_ERR_CANCELLED, "%s: cancelled by the progress callback at stage %d round %d",
                        operation, stage, round);
    return AQ_OK;
}

const char *aq_context_last_error(const aq_context *ctx)
{
    return ctx ? ctx->last_error : "";
}

int aq_context_copy_last_error(const aq_context *ctx, char *buf, size_t size)
{
    int status;
    aq_context *c = (aq_context *)ctx; /* the lock is not part of the logical state */
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    status = c->last_status;
    if (buf && size > 0)
        snprintf(buf, size, "%s", c->last_error);
    pthread_mutex_unlock(&c->lock);
    return status;
}

void aq_context_clear_error(aq_context *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->lock);
    ctx->last_status = AQ_OK;
    ctx->last_error[0] = '\0';
    pthread_mutex_unlock(&ctx->lock);
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The communicator: attach, shares, agreement, gathers (core/comm.h). */
#include <stddef.h>
#include <string.h>

#include "core/comm.h"

/* sizeof(aq_comm) in 0.2, the first version: everything up to userdata. */
#define AQI_COMM_SIZE_0_2 (offsetof(aq_comm, userdata) + sizeof(void *))

void aq_comm_init(aq_comm *comm)
{
    if (!comm)
        return;
    memset(comm, 0, sizeof *comm);
    comm->struct_size = (uint32_t)sizeof *comm;
    comm->size = 1;
}

int aq_context_set_comm(aq_context *ctx, const aq_comm *comm)
{
    const char *fn = "aq_context_set_comm";
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!comm) {
        pthread_mutex_lock(&ctx->lock);
        ctx->has_comm = 0;
        pthread_mutex_unlock(&ctx->lock);
        return AQ_OK;
    }
    /* The fields of 0.2 are required; a larger struct (a newer header) is read up to this
     * library's size, a later library reads this one's up to the size it declares. */
    if (comm->struct_size < AQI_COMM_SIZE_0_2)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: struct_size %u is smaller than aq_comm of libaqinit 0.2 "
                        "(%zu); call aq_comm_init() first", fn, (unsigned)comm->struct_size, AQI_COMM_SIZE_0_2);
    if (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: rank %d of size %d is not in 0..size-1", fn,
                        (int)comm->rank, (int)comm->size);
    if (!comm->allreduce_sum_f64 || !comm->allreduce_sum_f32 || !comm->broadcast || !comm->agree)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: every callback (allreduce_sum_f64, allreduce_sum_f32, "
                        "broadcast, agree) must be set", fn);
    pthread_mutex_lock(&ctx->lock);
    ctx->comm = *comm;
    ctx->comm.struct_size = (uint32_t)sizeof ctx->comm;
    ctx->has_comm = 1;
    pthread_mutex_unlock(&ctx->lock);
    return AQ_OK;
}

int32_t aqi_comm_rank(const aq_context *ctx)
{
    return ctx && ctx->has_comm ? ctx->comm.rank : 0;
}

int32_t aqi_comm_size(const aq_context *ctx)
{
    return ctx && ctx->has_comm ? ctx->comm.size : 1;
}

int32_t aq_context_comm_rank(const aq_context *ctx)
{
    return aqi_comm_rank(ctx);
}

int32_t aq_context_comm_size(const aq_context *ctx)
{
    return ctx ? aqi_comm_size(ctx) : 0;
}

void aqi_comm_share(const aq_context *ctx, int64_t n, int32_t r, int64_t *begin, int64_t *end)
{
    const int32_t size = aqi_comm_size(ctx);
    *begin = (int64_t)((__int128)n * r / size);
    *end = (int64_t)((__int128)n * (r + 1) / size);
}

void aqi_comm_my_share(const aq_context *ctx, int64_t n, int64_t *begin, int64_t *end)
{
    aqi_comm_share(ctx, n, aqi_comm_rank(ctx), begin, end);
}

void aqi_comm_share_blocks(const aq_context *ctx, int64_t n, int64_t block, int32_t r, int64_t *begin, int64_t *end)
{
    int64_t b, e;
    aqi_comm_share(ctx, (n + block - 1) / block, r, &b, &e);
    *begin = b * block < n ? b * block : n;
    *end = e * block < n ? e * block : n;
}

int aqi_comm_agree(aq_context *ctx, const char *fn, int status)
{
    int32_t agreed = status, failed_rank = -1;
    if (aqi_comm_size(ctx) == 1)
        return status;
    if (ctx->comm.agree(&agreed, &failed_rank, ctx->comm.userdata) != 0)
        return aqi_fail(ctx, AQ_ERR_CALLBACK, "%s: the communicator's agree callback failed", fn);
    if (agreed != AQ_OK && failed_rank != ctx->comm.rank)
        return aqi_fail(ctx, agreed, "%s: rank %d failed with %s", fn, (int)failed_rank, aq_strerror(agreed));
    return agreed;
}

/* Broadcasts in pieces of at most 1 GiB, so that a transport with int counts (MPI) works. */
#define AQI_COMM_PIECE (1LL << 30)

int aqi_comm_broadcast(aq_context *ctx, const char *fn, void *buf, int64_t nbytes, int32_t root)
{
    if (aqi_comm_size(ctx) == 1)
        return AQ_OK;
    for (int64_t off = 0; off < nbytes; off += AQI_COMM_PIECE) {
        int64_t n = nbytes - off < AQI_COMM_PIECE ? nbytes - off : AQI_COMM_PIECE;
        if (ctx->comm.broadcast((char *)buf + off, n, root, ctx->comm.userdata) != 0)
            return aqi_fail(ctx, AQ_ERR_CALLBACK, "%s: the communicator's broadcast from rank %d failed", fn,
                            (int)root);
    }
    return AQ_OK;
}

int aqi_comm_allgather(aq_context *ctx, const char *fn, int status, void *buf, int64_t n, size_t item_bytes)
{
    return aqi_comm_allgather_blocks(ctx, fn, status, buf, n, 1, item_bytes);
}

int aqi_comm_allgather_blocks(aq_context *ctx, const char *fn, int status, void *buf, int64_t n, int64_t block,
                              size_t item_bytes)
{
    const int32_t size = aqi_comm_size(ctx);
    int st = aqi_comm_agree(ctx, fn, status);
    for (int32_t r = 0; r < size && st == AQ_OK && size > 1; r++) {
        int64_t b, e;
        aqi_comm_share_blocks(ctx, n, block, r, &b, &e);
        if (e > b)
            st = aqi_comm_broadcast(ctx, fn, (char *)buf + (size_t)b * item_bytes, (e - b) * (int64_t)item_bytes, r);
    }
    return st;
}

int aqi_comm_sum_count(aq_context *ctx, const char *fn, int64_t *count)
{
    /* Every partial sum of non-negative integers whose total is below 2^53 is an integer below
     * 2^53, so the f64 allreduce is exact in any order. */
    double v = (double)*count;
    if (aqi_comm_size(ctx) == 1)
        return AQ_OK;
    if (ctx->comm.allreduce_sum_f64(&v, 1, ctx->comm.userdata) != 0)
        return aqi_fail(ctx, AQ_ERR_CALLBACK, "%s: the communicator's allreduce failed", fn);
    *count = (int64_t)v;
    return AQ_OK;
}

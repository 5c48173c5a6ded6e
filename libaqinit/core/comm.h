/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The context's communicator (aq_comm): shares of a range per rank, error agreement and the
 * exchanges the sharded algorithms use. Without a communicator every function is the
 * single-process identity: rank 0 of 1 owns everything and nothing is sent.
 *
 * Bit-identity rule (docs/scaling.md): a result is computed by the rank that owns it, exactly
 * as one process computes it, then broadcast; sums across ranks are formed from gathered
 * partials in a fixed order. The transport never chooses an order of floating-point adds. */
#ifndef AQINIT_CORE_COMM_H
#define AQINIT_CORE_COMM_H

#include "core/internal.h"

int32_t aqi_comm_rank(const aq_context *ctx);
int32_t aqi_comm_size(const aq_context *ctx);

/* Rank @p r's share [*begin, *end) of [0, n): [n·r/size, n·(r+1)/size), like the thread pool's
 * split, so shares depend only on n and the number of ranks. */
void aqi_comm_share(const aq_context *ctx, int64_t n, int32_t r, int64_t *begin, int64_t *end);
/* This rank's share. */
void aqi_comm_my_share(const aq_context *ctx, int64_t n, int64_t *begin, int64_t *end);
/* Rank @p r's share of [0, n) in whole blocks of @p block items (the last block may be short):
 * the blocks [nb·r/size, nb·(r+1)/size) of nb = ⌈n/block⌉, so that a loop over fixed blocks makes
 * the same calls on any number of ranks. */
void aqi_comm_share_blocks(const aq_context *ctx, int64_t n, int64_t block, int32_t r, int64_t *begin, int64_t *end);

/* Error agreement: every rank passes its status and gets the status of the lowest failing rank
 * (AQ_OK if none). On a rank that did not fail, a failure elsewhere is recorded as a message
 * naming @p fn and the failing rank. A failing agree callback is AQ_ERR_CALLBACK. */
int aqi_comm_agree(aq_context *ctx, const char *fn, int status);

/* Agree on @p status; if every rank is OK, gather: items [share of rank r) of @p buf (n items of
 * @p item_bytes) are broadcast from rank r, so every rank ends with all n items. Returns the
 * agreed status or AQ_ERR_CALLBACK if the transport fails. */
int aqi_comm_allgather(aq_context *ctx, const char *fn, int status, void *buf, int64_t n, size_t item_bytes);
/* The same with the shares of aqi_comm_share_blocks. */
int aqi_comm_allgather_blocks(aq_context *ctx, const char *fn, int status, void *buf, int64_t n, int64_t block,
                              size_t item_bytes);

/* Broadcast @p nbytes of @p buf from @p root (AQ_ERR_CALLBACK with a message if it fails). */
int aqi_comm_broadcast(aq_context *ctx, const char *fn, void *buf, int64_t nbytes, int32_t root);

/* Sum over ranks of a count (>= 0, total below 2^53, e.g. of points): exact through the f64
 * allreduce whatever its order. */
int aqi_comm_sum_count(aq_context *ctx, const char *fn, int64_t *count);

#endif

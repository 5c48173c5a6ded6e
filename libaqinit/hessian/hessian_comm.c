/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_hessian_allreduce: the ranks' partial statistics merged in rank order (core/comm.h).
 *
 * Rank r contributed n_r samples with mean H_r. The result is the sequence of merges
 * H ← (N·H + n_r·H_r)/(N + n_r), N ← N + n_r for r = 0, 1, …, size − 1 from N = 0: exactly
 * aq_hessian_merge applied in rank order, so every rank computes the same bits from the same
 * broadcast bytes. The upper triangle travels in pieces of rows of at most PIECE_DOUBLES. */
#include <string.h>

#include "core/comm.h"
#include "hessian/hessian_internal.h"

#define PIECE_DOUBLES ((int64_t)1 << 19) /* 4 MiB */

/* Rows [i0, i1) of the upper triangle of @p h packed into @p out (row i: its n − i entries from
 * the diagonal on), or @p in unpacked into them. */
static void pack_rows(const aq_hessian *h, int64_t i0, int64_t i1, double *out)
{
    const int64_t n = h->n_inputs;
    for (int64_t i = i0; i < i1; i++) {
        memcpy(out, h->matrix + i * n + i, sizeof(double) * (size_t)(n - i));
        out += n - i;
    }
}

static void unpack_rows(aq_hessian *h, int64_t i0, int64_t i1, const double *in)
{
    const int64_t n = h->n_inputs;
    for (int64_t i = i0; i < i1; i++) {
        memcpy(h->matrix + i * n + i, in, sizeof(double) * (size_t)(n - i));
        in += n - i;
    }
}

/* Last row (exclusive) of the piece starting at row i0: at least one row, at most PIECE_DOUBLES
 * entries unless one row alone is longer. */
static int64_t piece_end(int64_t n, int64_t i0, int64_t *count)
{
    int64_t i1 = i0, c = 0;
    while (i1 < n && (c == 0 || c + (n - i1) <= PIECE_DOUBLES))
        c += n - i1++;
    *count = c;
    return i1;
}

static int merge_pieces(aq_hessian *h, const int64_t *counts, double *acc, double *buf)
{
    const char *fn = "aq_hessian_allreduce";
    aq_context *ctx = h->ctx;
    const int32_t size = aqi_comm_size(ctx), me = aqi_comm_rank(ctx);
    const int64_t n = h->n_inputs;
    int st = AQ_OK;
    for (int64_t i0 = 0, i1, count; i0 < n && st == AQ_OK; i0 = i1) {
        int64_t total = 0;
        i1 = piece_end(n, i0, &count);
        memset(acc, 0, sizeof(double) * (size_t)count);
        for (int32_t r = 0; r < size && st == AQ_OK; r++) {
            if (r == me)
                pack_rows(h, i0, i1, buf);
            if ((st = aqi_comm_broadcast(ctx, fn, buf, count * (int64_t)sizeof(double), r)) != AQ_OK)
                break;
            if (counts[r] == 0)
                continue; /* merging an empty Hessian changes nothing */
            const double a = (double)total / (double)(total + counts[r]);
            const double b = (double)counts[r] / (double)(total + counts[r]);
            for (int64_t e = 0; e < count; e++)
                acc[e] = a * acc[e] + b * buf[e];
            total += counts[r];
        }
        if (st == AQ_OK)
            unpack_rows(h, i0, i1, acc);
    }
    return st;
}

int aq_hessian_allreduce(aq_hessian *h)
{
    const char *fn = "aq_hessian_allreduce";
    aq_context *ctx;
    int64_t *counts = NULL, total = 0, piece;
    double *acc = NULL, *buf = NULL;
    int st = AQ_OK;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    ctx = h->ctx;
    const int32_t size = aqi_comm_size(ctx);
    if (size == 1)
        return AQ_OK;
    piece_end(h->n_inputs, 0, &piece);
    counts = aqi_calloc(ctx, (size_t)size, sizeof(int64_t));
    acc = aqi_alloc(ctx, sizeof(double) * (size_t)piece);
    buf = aqi_alloc(ctx, sizeof(double) * (size_t)piece);
    if (!counts || !acc || !buf)
        st = AQ_ERR_NOMEM;
    aqi_hessian_lock(h);
    if (st == AQ_OK) {
        if (h->n_pending != 0)
            st = aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: an aq_hessian_add is in flight on this handle", fn);
        else
            counts[aqi_comm_rank(ctx)] = h->n_samples;
    }
    st = aqi_comm_allgather(ctx, fn, st, counts, size, sizeof(int64_t));
    for (int32_t r = 0; r < size && st == AQ_OK; r++) {
        if (counts[r] < 0 || total > INT64_MAX - counts[r])
            st = aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: the total sample count overflows", fn);
        else
            total += counts[r];
    }
    /* Identical on every rank (the counts are), so no agreement is needed here. */
    if (st == AQ_OK && total > 0)
        st = merge_pieces(h, counts, acc, buf);
    if (st == AQ_OK)
        h->n_samples = total;
    aqi_hessian_unlock(h);
    aqi_free(ctx, counts);
    aqi_free(ctx, acc);
    aqi_free(ctx, buf);
    return st;
}

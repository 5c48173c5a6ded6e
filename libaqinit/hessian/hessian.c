/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Hessian statistics H = XᵀX / n: creation, streaming accumulation (one SYRK per batch chunk)
 * and merging of partial Hessians. Copies with damping are in hessian_access.c, save/load in
 * hessian_io.c.
 *
 * Contract details beyond include/aqinit.h:
 * - n_inputs is 1 .. 2³¹−1 (BLAS sizes are int); 0 or less → AQ_ERR_SHAPE, more, or n_inputs²
 *   doubles beyond the address space → AQ_ERR_OVERFLOW before any allocation.
 * - aq_hessian_add: X may be NULL when n_rows == 0 (a no-op). Batches are converted to double
 *   in chunks of at most 2048 rows (a temporary of 2048·n_inputs doubles), one SYRK per chunk.
 *   Concurrent adds interleave chunk by chunk; the result is the mean of all rows either way.
 * - aq_hessian_merge locks both handles (in address order, so merges in opposite directions
 *   cannot deadlock): src may be added to concurrently, it is only read. merge(h, h) counts
 *   h's samples twice: the mean stays, n doubles. An empty src is a no-op.
 * - create_from_matrix keeps the symmetric part (H + Hᵀ)/2 after checking that
 *   |h_ij − h_ji| <= 1e-6·max(|h_ij|, |h_ji|, sqrt(h_ii·h_jj)); it does not test PSD beyond a
 *   non-negative diagonal.
 * - num_inputs / num_samples of NULL are 0. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "hessian/hessian_internal.h"

/* Rows converted to double per SYRK call: bounds the temporary at 2048·I doubles while keeping
 * the SYRK's inner dimension large enough for full BLAS speed. */
#define HESSIAN_CHUNK_ROWS 2048

void aqi_hessian_lock(const aq_hessian *h)
{
    pthread_mutex_lock(&((aq_hessian *)h)->lock);
}

void aqi_hessian_unlock(const aq_hessian *h)
{
    pthread_mutex_unlock(&((aq_hessian *)h)->lock);
}

int aqi_hessian_new(aq_hessian **out, aq_context *ctx, int64_t n_inputs, const char *fn)
{
    aq_hessian *h;
    size_t bytes;
    int st;
    if (n_inputs < 1)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: n_inputs %lld must be >= 1", fn, (long long)n_inputs);
    if (n_inputs > AQI_HESSIAN_MAX_INPUTS || n_inputs > INT64_MAX / n_inputs)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: n_inputs %lld is too large (at most %lld, and "
                        "n_inputs² doubles must be addressable)", fn, (long long)n_inputs,
                        (long long)AQI_HESSIAN_MAX_INPUTS);
    if ((st = aqi_bytes(ctx, &bytes, n_inputs * n_inputs, sizeof(double), fn)) != AQ_OK)
        return st;
    h = aqi_alloc(ctx, sizeof *h);
    if (!h)
        return AQ_ERR_NOMEM;
    memset(h, 0, sizeof *h);
    h->matrix = aqi_alloc(ctx, bytes);
    if (!h->matrix) {
        aqi_free(ctx, h);
        return AQ_ERR_NOMEM;
    }
    memset(h->matrix, 0, bytes);
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        aqi_free(ctx, h->matrix);
        aqi_free(ctx, h);
        return aqi_fail(ctx, AQ_ERR_THREAD, "%s: could not create a mutex", fn);
    }
    h->ctx = ctx;
    h->n_inputs = n_inputs;
    *out = h;
    return AQ_OK;
}

int aq_hessian_create(aq_hessian **out, aq_context *ctx, int64_t n_inputs)
{
    if (!out)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_hessian_create: out is NULL");
    *out = NULL;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    return aqi_hessian_new(out, ctx, n_inputs, "aq_hessian_create");
}

/* |a_ij − a_ji| within 1e-6 of max(|a_ij|, |a_ji|, sqrt(a_ii·a_jj)): the last term is the
 * Cauchy–Schwarz bound of a PSD entry, so tiny off-diagonal entries are judged against the
 * matrix's own scale rather than against themselves. */
static int symmetric_enough(double a_ij, double a_ji, double a_ii, double a_jj)
{
    double scale = fmax(fmax(fabs(a_ij), fabs(a_ji)), sqrt(a_ii) * sqrt(a_jj));
    return fabs(a_ij - a_ji) <= 1e-6 * fmax(scale, 1e-300);
}

static int check_given_matrix(aq_context *ctx, const double *H, int64_t n, int64_t ld)
{
    const char *fn = "aq_hessian_create_from_matrix";
    if (!aqi_all_finite_f64(H, n, n, ld))
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: the matrix contains NaN or Inf", fn);
    for (int64_t i = 0; i < n; i++)
        if (H[i * ld + i] < 0)
            return aqi_fail(ctx, AQ_ERR_NOT_PSD, "%s: negative diagonal entry H[%lld][%lld] = %g", fn,
                            (long long)i, (long long)i, H[i * ld + i]);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            if (!symmetric_enough(H[i * ld + j], H[j * ld + i], H[i * ld + i], H[j * ld + j]))
                return aqi_fail(ctx, AQ_ERR_NOT_PSD, "%s: not symmetric: H[%lld][%lld] = %.17g but "
                                "H[%lld][%lld] = %.17g", fn, (long long)i, (long long)j, H[i * ld + j],
                                (long long)j, (long long)i, H[j * ld + i]);
    return AQ_OK;
}

int aq_hessian_create_from_matrix(aq_hessian **out, aq_context *ctx, const double *H,
                                  int64_t n_inputs, int64_t ld, int64_t n_samples)
{
    const char *fn = "aq_hessian_create_from_matrix";
    aq_hessian *h;
    int st;
    if (!out)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!H)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: H is NULL", fn);
    if (n_samples <= 0)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: n_samples %lld must be > 0", fn, (long long)n_samples);
    if (n_inputs < 1 || ld < n_inputs)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: n_inputs %lld must be >= 1 and ld %lld >= n_inputs", fn,
                        (long long)n_inputs, (long long)ld);
    if ((st = aqi_check_ld(ctx, fn, "H", n_inputs, n_inputs, ld, sizeof(double))) != AQ_OK)
        return st;
    if ((st = check_given_matrix(ctx, H, n_inputs, ld)) != AQ_OK)
        return st;
    if ((st = aqi_hessian_new(&h, ctx, n_inputs, fn)) != AQ_OK)
        return st;
    /* Keep the upper triangle of the symmetric part: a + (b − a)/2 is exact when a == b. */
    for (int64_t i = 0; i < n_inputs; i++)
        for (int64_t j = i; j < n_inputs; j++) {
            double a = H[i * ld + j], b = H[j * ld + i];
            h->matrix[i * n_inputs + j] = a + 0.5 * (b - a);
        }
    h->n_samples = n_samples;
    *out = h;
    return AQ_OK;
}

void aq_hessian_free(aq_hessian *h)
{
    aq_context *ctx;
    if (!h)
        return;
    ctx = h->ctx;
    pthread_mutex_destroy(&h->lock);
    aqi_free(ctx, h->matrix);
    aqi_free(ctx, h);
}

int64_t aq_hessian_num_inputs(const aq_hessian *h)
{
    return h ? h->n_inputs : 0;
}

int64_t aq_hessian_num_samples(const aq_hessian *h)
{
    int64_t n;
    if (!h)
        return 0;
    aqi_hessian_lock(h);
    n = h->n_samples;
    aqi_hessian_unlock(h);
    return n;
}

/* Validate the arguments of aq_hessian_add; everything but finiteness. */
static int check_add_args(const aq_hessian *h, const float *X, int64_t n_rows, int64_t ld)
{
    const char *fn = "aq_hessian_add";
    int64_t n = h->n_inputs;
    if (n_rows < 0)
        return aqi_fail(h->ctx, AQ_ERR_SHAPE, "%s: n_rows %lld is negative", fn, (long long)n_rows);
    if (ld < n)
        return aqi_fail(h->ctx, AQ_ERR_SHAPE, "%s: ld %lld is smaller than n_inputs %lld", fn,
                        (long long)ld, (long long)n);
    if (n_rows == 0)
        return AQ_OK;
    if (!X)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: X is NULL", fn);
    return aqi_check_ld(h->ctx, fn, "X", n_rows, n, ld, sizeof(float));
}

/* Reserve @p n_rows samples for an add in flight so that the count can never overflow halfway
 * through a chunked add. */
static int reserve_samples(aq_hessian *h, int64_t n_rows)
{
    int ok;
    aqi_hessian_lock(h);
    ok = h->n_samples <= INT64_MAX - h->n_pending - n_rows;
    if (ok)
        h->n_pending += n_rows;
    aqi_hessian_unlock(h);
    if (!ok)
        return aqi_fail(h->ctx, AQ_ERR_OVERFLOW, "aq_hessian_add: the sample count would overflow");
    return AQ_OK;
}

/* Index of the first row of X holding NaN or Inf, or -1. A float is non-finite exactly when its
 * exponent bits are all ones; OR-ing that test over a row vectorises, unlike a float reduction. */
static int64_t first_nonfinite_row(const float *X, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *row = X + r * ld;
        uint32_t bad = 0;
        for (int64_t c = 0; c < cols; c++) {
            uint32_t bits;
            memcpy(&bits, &row[c], sizeof bits);
            bad |= (bits & 0x7F800000u) == 0x7F800000u;
        }
        if (bad)
            return r;
    }
    return -1;
}

static void rows_to_double(double *dst, const float *X, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            dst[r * cols + c] = X[r * ld + c];
}

/* Running mean with t new rows A (t × I): H ← (n·H + AᵀA)/(n + t), i.e. one SYRK with
 * alpha = 1/(n+t) and beta = n/(n+t) on the upper triangle. */
static void accumulate_chunk(aq_hessian *h, const double *A, int64_t t)
{
    int n_in = (int)h->n_inputs;
    aqi_hessian_lock(h);
    int64_t total = h->n_samples + t;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n_in, (int)t, 1.0 / (double)total, A, n_in,
                (double)h->n_samples / (double)total, h->matrix, n_in);
    h->n_samples = total;
    h->n_pending -= t;
    aqi_hessian_unlock(h);
}

int aq_hessian_add(aq_hessian *h, const float *X, int64_t n_rows, int64_t ld)
{
    int64_t n, chunk;
    size_t bytes;
    double *tmp;
    int st;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    if ((st = check_add_args(h, X, n_rows, ld)) != AQ_OK || n_rows == 0)
        return st;
    n = h->n_inputs;
    int64_t bad_row = first_nonfinite_row(X, n_rows, n, ld);
    if (bad_row >= 0)
        return aqi_fail(h->ctx, AQ_ERR_NONFINITE, "aq_hessian_add: row %lld contains NaN or Inf; "
                        "nothing was accumulated", (long long)bad_row);
    chunk = n_rows < HESSIAN_CHUNK_ROWS ? n_rows : HESSIAN_CHUNK_ROWS;
    if ((st = aqi_bytes(h->ctx, &bytes, chunk * n, sizeof(double), "aq_hessian_add")) != AQ_OK)
        return st;
    if (!(tmp = aqi_alloc(h->ctx, bytes)))
        return AQ_ERR_NOMEM;
    if ((st = reserve_samples(h, n_rows)) != AQ_OK) {
        aqi_free(h->ctx, tmp);
        return st;
    }
    /* Nothing below can fail: conversion outside the lock, SYRK under it. */
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        int64_t t = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        rows_to_double(tmp, X + r0 * ld, t, n, ld);
        accumulate_chunk(h, tmp, t);
    }
    aqi_free(h->ctx, tmp);
    return AQ_OK;
}

/* dst ← (n_d·dst + n_s·src)/(n_d + n_s) on the upper triangle, both handles locked. */
static int merge_locked(aq_hessian *dst, const aq_hessian *src)
{
    int64_t n_d = dst->n_samples, n_s = src->n_samples, n = dst->n_inputs;
    double a, b;
    if (n_s == 0)
        return AQ_OK;
    if (n_d > INT64_MAX - dst->n_pending - n_s)
        return aqi_fail(dst->ctx, AQ_ERR_OVERFLOW, "aq_hessian_merge: the sample count would overflow");
    a = (double)n_d / (double)(n_d + n_s);
    b = (double)n_s / (double)(n_d + n_s);
    for (int64_t i = 0; i < n; i++) {
        double *d = dst->matrix + i * n;
        const double *s = src->matrix + i * n;
        for (int64_t j = i; j < n; j++)
            d[j] = a * d[j] + b * s[j];
    }
    dst->n_samples = n_d + n_s;
    return AQ_OK;
}

int aq_hessian_merge(aq_hessian *dst, const aq_hessian *src)
{
    const aq_hessian *first, *second;
    int st = AQ_OK;
    if (!dst)
        return AQ_ERR_INVALID_ARG;
    if (!src)
        return aqi_fail(dst->ctx, AQ_ERR_INVALID_ARG, "aq_hessian_merge: src is NULL");
    if (src->n_inputs != dst->n_inputs)
        return aqi_fail(dst->ctx, AQ_ERR_SHAPE, "aq_hessian_merge: src has %lld inputs, dst %lld",
                        (long long)src->n_inputs, (long long)dst->n_inputs);
    if (src == dst) {
        /* Seeing the same samples twice leaves the mean as it is and doubles the count. */
        aqi_hessian_lock(dst);
        if (dst->n_samples > INT64_MAX - dst->n_pending - dst->n_samples)
            st = aqi_fail(dst->ctx, AQ_ERR_OVERFLOW, "aq_hessian_merge: the sample count would overflow");
        else
            dst->n_samples *= 2;
        aqi_hessian_unlock(dst);
        return st;
    }
    /* Lock both in address order so that concurrent merges in opposite directions cannot
     * deadlock. */
    first = (uintptr_t)dst < (uintptr_t)src ? dst : src;
    second = first == dst ? src : dst;
    aqi_hessian_lock(first);
    aqi_hessian_lock(second);
    st = merge_locked(dst, src);
    aqi_hessian_unlock(second);
    aqi_hessian_unlock(first);
    return st;
}

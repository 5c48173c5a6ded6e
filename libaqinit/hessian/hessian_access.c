/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Read access to a Hessian: the full symmetric matrix, its diagonal and its g×g diagonal
 * blocks, each of H + λ·mean(diag H)·I (AQLM's damping, REFERENCE-ALGORITHMS.md §2).
 * λ must be finite (else AQ_ERR_NONFINITE) and >= 0 (else AQ_ERR_INVALID_ARG). An empty
 * Hessian (n = 0) copies as zeros whatever λ, since its mean diagonal is 0. copy_block needs
 * (group + 1)·group_size <= n_inputs; a last partial group is not a block (AQ_ERR_SHAPE).
 * copy_matrix writes the n_inputs columns of each row and leaves the padding up to ld alone.
 * Copies lock the handle, so they may run while other threads add to it. */
#include <math.h>
#include <string.h>

#include "hessian/hessian_internal.h"

/* Tile edge of the blocked mirror of the upper triangle into the lower one. */
#define MIRROR_TILE 64

/* Check λ and compute the diagonal shift λ·mean(diag H); call with the handle locked. An empty
 * Hessian (n = 0) is all zeros, so its shift is 0 too. */
static int damping_shift(const aq_hessian *h, double rel_damping, const char *fn, double *shift)
{
    int64_t n = h->n_inputs;
    double sum = 0.0;
    if (!isfinite(rel_damping))
        return aqi_fail(h->ctx, AQ_ERR_NONFINITE, "%s: rel_damping is %g", fn, rel_damping);
    if (rel_damping < 0)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: rel_damping %g is negative", fn, rel_damping);
    for (int64_t i = 0; i < n; i++)
        sum += h->matrix[i * n + i];
    *shift = rel_damping * (sum / (double)n);
    return AQ_OK;
}

/* Fill the strict lower triangle of out (n × n, leading dimension ld) from its upper one, tile
 * by tile so that both the reads and the writes stay in cache; for double and float copies. */
#define DEFINE_MIRROR(name, type)                                                                   \
    static void name(type *out, int64_t n, int64_t ld)                                              \
    {                                                                                               \
        for (int64_t ib = 0; ib < n; ib += MIRROR_TILE)                                             \
            for (int64_t jb = ib; jb < n; jb += MIRROR_TILE) {                                      \
                int64_t i_end = ib + MIRROR_TILE < n ? ib + MIRROR_TILE : n;                        \
                int64_t j_end = jb + MIRROR_TILE < n ? jb + MIRROR_TILE : n;                        \
                for (int64_t i = ib; i < i_end; i++)                                                \
                    for (int64_t j = (jb > i + 1 ? jb : i + 1); j < j_end; j++)                     \
                        out[j * ld + i] = out[i * ld + j];                                          \
            }                                                                                       \
    }
DEFINE_MIRROR(mirror_upper_to_lower, double)
DEFINE_MIRROR(mirror_upper_to_lower_f32, float)

int aq_hessian_copy_matrix(const aq_hessian *h, double *out, int64_t ld, double rel_damping)
{
    const char *fn = "aq_hessian_copy_matrix";
    int64_t n;
    double shift = 0.0;
    int st;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    n = h->n_inputs;
    if (!out)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn);
    if ((st = aqi_check_ld(h->ctx, fn, "out", n, n, ld, sizeof(double))) != AQ_OK)
        return st;
    aqi_hessian_lock(h);
    st = damping_shift(h, rel_damping, fn, &shift);
    if (st == AQ_OK)
        for (int64_t i = 0; i < n; i++) {
            memcpy(out + i * ld + i, h->matrix + i * n + i, sizeof(double) * (size_t)(n - i));
            out[i * ld + i] += shift;
        }
    aqi_hessian_unlock(h);
    if (st == AQ_OK)
        mirror_upper_to_lower(out, n, ld);
    return st;
}

double aqi_hessian_max_abs(const aq_hessian *h)
{
    const int64_t n = h->n_inputs;
    double m = 0.0;
    aqi_hessian_lock(h);
    for (int64_t i = 0; i < n; i++) /* the upper triangle holds every value */
        for (int64_t j = i; j < n; j++)
            m = fabs(h->matrix[i * n + j]) > m ? fabs(h->matrix[i * n + j]) : m;
    aqi_hessian_unlock(h);
    return m;
}

int aqi_hessian_copy_float(const aq_hessian *h, float *out, double rel_damping, double scale, const char *fn)
{
    const int64_t n = h->n_inputs;
    double shift = 0.0;
    aqi_hessian_lock(h);
    int st = damping_shift(h, rel_damping, fn, &shift);
    if (st == AQ_OK)
        for (int64_t i = 0; i < n; i++) {
            const double *src = h->matrix + i * n;
            out[i * n + i] = (float)((src[i] + shift) * scale);
            for (int64_t j = i + 1; j < n; j++)
                out[i * n + j] = (float)(src[j] * scale);
        }
    aqi_hessian_unlock(h);
    if (st == AQ_OK)
        mirror_upper_to_lower_f32(out, n, n);
    return st;
}

int aq_hessian_copy_diagonal(const aq_hessian *h, double *out, double rel_damping)
{
    const char *fn = "aq_hessian_copy_diagonal";
    double shift = 0.0;
    int st;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    if (!out)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn);
    aqi_hessian_lock(h);
    st = damping_shift(h, rel_damping, fn, &shift);
    if (st == AQ_OK)
        for (int64_t i = 0; i < h->n_inputs; i++)
            out[i] = h->matrix[i * h->n_inputs + i] + shift;
    aqi_hessian_unlock(h);
    return st;
}

int aq_hessian_copy_block(const aq_hessian *h, double *out, int64_t group_size, int64_t group,
                          double rel_damping)
{
    const char *fn = "aq_hessian_copy_block";
    int64_t n, g = group_size, base;
    double shift = 0.0;
    int st;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    n = h->n_inputs;
    if (!out)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn);
    if (g < 1 || g > n || group < 0 || group > (n - g) / g)
        return aqi_fail(h->ctx, AQ_ERR_SHAPE, "%s: group %lld of size %lld is outside %lld inputs", fn,
                        (long long)group, (long long)g, (long long)n);
    base = group * g;
    aqi_hessian_lock(h);
    st = damping_shift(h, rel_damping, fn, &shift);
    if (st == AQ_OK)
        for (int64_t r = 0; r < g; r++)
            for (int64_t c = 0; c < g; c++) {
                int64_t i = base + (r < c ? r : c), j = base + (r < c ? c : r); /* upper: i <= j */
                out[r * g + c] = h->matrix[i * n + j] + (r == c ? shift : 0.0);
            }
    aqi_hessian_unlock(h);
    return st;
}

uint64_t aqi_hessian_fingerprint(const aq_hessian *h)
{
    uint64_t fp = AQI_FNV1A64_INIT;
    aqi_hessian_lock(h);
    fp = aqi_fnv1a64(fp, &h->n_inputs, sizeof h->n_inputs);
    fp = aqi_fnv1a64(fp, &h->n_samples, sizeof h->n_samples);
    for (int64_t i = 0; i < h->n_inputs; i++)
        fp = aqi_fnv1a64(fp, h->matrix + i * h->n_inputs + i, sizeof(double) * (size_t)(h->n_inputs - i));
    aqi_hessian_unlock(h);
    return fp;
}

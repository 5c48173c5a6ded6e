/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_quant: creation, accessors and validated copies of codes, codebooks and scales. */
#include <math.h>
#include <string.h>

#include "quant/quant.h"

int aqi_quant_sizes(const aq_format *fmt, int64_t rows, int64_t cols, size_t *codes_bytes,
                    size_t *codebooks_count, size_t *scales_count)
{
    size_t n_codes, n_cb;
    const int64_t P = rows / fmt->out_group_size, J = cols / fmt->in_group_size;
    const size_t K = (size_t)1 << fmt->bits_per_codebook;
    const size_t code_size = fmt->bits_per_codebook > 8 ? 2 : 1;
    if (aqi_mul3_size(&n_codes, (size_t)P, (size_t)J, (size_t)fmt->num_codebooks)
        || aqi_mul_size(&n_codes, n_codes, code_size)
        || aqi_mul3_size(&n_cb, (size_t)fmt->num_codebooks, K,
                         (size_t)fmt->out_group_size * (size_t)fmt->in_group_size)
        || n_cb > SIZE_MAX / sizeof(float) || (size_t)P > SIZE_MAX / sizeof(float))
        return 1;
    *codes_bytes = n_codes;
    *codebooks_count = n_cb;
    *scales_count = (size_t)P;
    return 0;
}

/* Allocate an empty quant of format @p fmt (already checked): codes 0, codebooks 0, scales 1. */
int aqi_quant_new(aq_quant **out, aq_context *ctx, const aq_format *fmt, int64_t rows, int64_t cols)
{
    aq_quant *q;
    size_t n_codes, n_cb, n_scales;
    const int64_t P = rows / fmt->out_group_size, J = cols / fmt->in_group_size;
    const size_t K = (size_t)1 << fmt->bits_per_codebook;
    if (aqi_quant_sizes(fmt, rows, cols, &n_codes, &n_cb, &n_scales))
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "aq_quant: sizes of a %lld x %lld matrix overflow",
                        (long long)rows, (long long)cols);
    q = aqi_calloc(ctx, 1, sizeof *q);
    if (!q)
        return AQ_ERR_NOMEM;
    q->ctx = ctx;
    q->fmt = *fmt;
    q->fmt.struct_size = (uint32_t)sizeof(aq_format);
    q->rows = rows;
    q->cols = cols;
    q->n_out_groups = P;
    q->n_in_groups = J;
    q->M = fmt->num_codebooks;
    q->K = (int32_t)K;
    q->g = fmt->in_group_size;
    q->go = fmt->out_group_size;
    q->codes_bytes = n_codes;
    q->codebooks_count = n_cb;
    q->scales_count = n_scales;
    q->codes = aqi_calloc(ctx, n_codes ? n_codes : 1, 1);
    q->codebooks = q->codes ? aqi_calloc(ctx, n_cb, sizeof(float)) : NULL;
    q->scales = q->codebooks ? aqi_alloc(ctx, sizeof(float) * (size_t)P) : NULL;
    if (!q->scales) {
        aq_quant_free(q);
        return AQ_ERR_NOMEM;
    }
    for (int64_t p = 0; p < P; p++)
        q->scales[p] = 1.0f;
    *out = q;
    return AQ_OK;
}

int aq_quant_create(aq_quant **out, aq_context *ctx, const aq_format *fmt, int64_t rows, int64_t cols)
{
    int st;
    if (!out || !ctx)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_quant_create: NULL argument");
    *out = NULL;
    if ((st = aq_format_check(ctx, fmt, rows, cols)) != AQ_OK)
        return st;
    return aqi_quant_new(out, ctx, fmt, rows, cols);
}

void aq_quant_free(aq_quant *q)
{
    if (!q)
        return;
    aqi_free(q->ctx, q->codes);
    aqi_free(q->ctx, q->codebooks);
    aqi_free(q->ctx, q->scales);
    aqi_free(q->ctx, q);
}

int aq_quant_clone(aq_quant **out, const aq_quant *q)
{
    int st;
    if (!out || !q)
        return AQ_ERR_INVALID_ARG;
    *out = NULL;
    st = aqi_quant_new(out, q->ctx, &q->fmt, q->rows, q->cols);
    if (st != AQ_OK)
        return st;
    aqi_quant_copy_arrays(*out, q);
    return AQ_OK;
}

void aqi_quant_copy_arrays(aq_quant *dst, const aq_quant *src)
{
    memcpy(dst->codes, src->codes, src->codes_bytes);
    memcpy(dst->codebooks, src->codebooks, src->codebooks_count * sizeof(float));
    memcpy(dst->scales, src->scales, src->scales_count * sizeof(float));
}

int aq_quant_get_format(aq_format *fmt, const aq_quant *q)
{
    if (!fmt || !q)
        return AQ_ERR_INVALID_ARG;
    *fmt = q->fmt;
    return AQ_OK;
}

int64_t aq_quant_rows(const aq_quant *q)
{
    return q ? q->rows : 0;
}

int64_t aq_quant_cols(const aq_quant *q)
{
    return q ? q->cols : 0;
}

/* The writable views: the const ones of quant_view.c, for callers that own the quant. */
void *aq_quant_codes(aq_quant *q, size_t *nbytes)
{
    return (void *)aq_quant_codes_const(q, nbytes);
}

float *aq_quant_codebooks(aq_quant *q, size_t *count)
{
    return (float *)aq_quant_codebooks_const(q, count);
}

float *aq_quant_scales(aq_quant *q, size_t *count)
{
    return (float *)aq_quant_scales_const(q, count);
}

static int check_size(const aq_quant *q, size_t given, size_t expected, const char *fn)
{
    if (given != expected)
        return aqi_fail(q->ctx, AQ_ERR_SHAPE, "%s: size %zu does not match the quant's %zu", fn, given,
                        expected);
    return AQ_OK;
}

int aq_quant_copy_codes_out(const aq_quant *q, void *dst, size_t nbytes)
{
    if (!q || !dst)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_codes_out: NULL argument");
    if (check_size(q, nbytes, q->codes_bytes, "aq_quant_copy_codes_out"))
        return AQ_ERR_SHAPE;
    memcpy(dst, q->codes, nbytes);
    return AQ_OK;
}

int aqi_quant_codes_valid(const aq_quant *q, const void *codes)
{
    size_t n = q->codes_bytes / (aqi_code_is_wide(q) ? 2 : 1);
    if (aqi_code_is_wide(q)) {
        const uint16_t *c = codes;
        for (size_t i = 0; i < n; i++)
            if (c[i] >= (uint32_t)q->K)
                return 0;
    } else {
        const uint8_t *c = codes;
        for (size_t i = 0; i < n; i++)
            if (c[i] >= (uint32_t)q->K)
                return 0;
    }
    return 1;
}

int aq_quant_copy_codes_in(aq_quant *q, const void *src, size_t nbytes)
{
    if (!q || !src)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_codes_in: NULL argument");
    if (check_size(q, nbytes, q->codes_bytes, "aq_quant_copy_codes_in"))
        return AQ_ERR_SHAPE;
    if (!aqi_quant_codes_valid(q, src))
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "aq_quant_copy_codes_in: a code is >= K = %d", (int)q->K);
    memcpy(q->codes, src, nbytes);
    return AQ_OK;
}

int aq_quant_copy_codebooks_out(const aq_quant *q, float *dst, size_t count)
{
    if (!q || !dst)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_codebooks_out: NULL argument");
    if (check_size(q, count, q->codebooks_count, "aq_quant_copy_codebooks_out"))
        return AQ_ERR_SHAPE;
    memcpy(dst, q->codebooks, count * sizeof(float));
    return AQ_OK;
}

int aq_quant_copy_codebooks_in(aq_quant *q, const float *src, size_t count)
{
    if (!q || !src)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_codebooks_in: NULL argument");
    if (check_size(q, count, q->codebooks_count, "aq_quant_copy_codebooks_in"))
        return AQ_ERR_SHAPE;
    if (!aqi_all_finite_f32(src, 1, (int64_t)count, (int64_t)count))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "aq_quant_copy_codebooks_in: NaN or Inf in the codebooks");
    memcpy(q->codebooks, src, count * sizeof(float));
    return AQ_OK;
}

int aq_quant_copy_scales_out(const aq_quant *q, float *dst, size_t count)
{
    if (!q || !dst)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_scales_out: NULL argument");
    if (check_size(q, count, q->scales_count, "aq_quant_copy_scales_out"))
        return AQ_ERR_SHAPE;
    memcpy(dst, q->scales, count * sizeof(float));
    return AQ_OK;
}

/* With AQ_SCALE_NONE the scales are fixed at 1: any other value is rejected. */
int aq_quant_copy_scales_in(aq_quant *q, const float *src, size_t count)
{
    if (!q || !src)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "aq_quant_copy_scales_in: NULL argument");
    if (check_size(q, count, q->scales_count, "aq_quant_copy_scales_in"))
        return AQ_ERR_SHAPE;
    if (!aqi_all_finite_f32(src, 1, (int64_t)count, (int64_t)count))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "aq_quant_copy_scales_in: NaN or Inf in the scales");
    if (q->fmt.scale_mode == AQ_SCALE_NONE)
        for (size_t i = 0; i < count; i++)
            if (src[i] != 1.0f)
                return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG,
                                "aq_quant_copy_scales_in: the format has no scales (all must be 1)");
    memcpy(q->scales, src, count * sizeof(float));
    return AQ_OK;
}

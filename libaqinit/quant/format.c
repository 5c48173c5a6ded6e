/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The shape of a quantized matrix: validation, bits per parameter, ρ (parsing: format_parse.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

void aq_format_init(aq_format *fmt)
{
    if (!fmt)
        return;
    memset(fmt, 0, sizeof *fmt);
    fmt->struct_size = (uint32_t)sizeof *fmt;
    fmt->num_codebooks = 2;
    fmt->bits_per_codebook = 8;
    fmt->in_group_size = 8;
    fmt->out_group_size = 1;
    fmt->scale_mode = AQ_SCALE_PER_OUTPUT_GROUP;
}

int aq_format_check(aq_context *ctx, const aq_format *fmt, int64_t rows, int64_t cols)
{
    if (!fmt)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: NULL");
    if (fmt->struct_size < sizeof(aq_format))
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: struct_size %u; initialise with aq_format_init()",
                        (unsigned)fmt->struct_size);
    if (fmt->num_codebooks < 1 || fmt->num_codebooks > 64)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: %d codebooks is not in 1..64", (int)fmt->num_codebooks);
    if (fmt->bits_per_codebook < 1 || fmt->bits_per_codebook > AQ_MAX_BITS_PER_CODEBOOK)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: %d bits per codebook is not in 1..16",
                        (int)fmt->bits_per_codebook);
    if (fmt->in_group_size < 1 || fmt->in_group_size > 4096 || fmt->out_group_size < 1
        || fmt->out_group_size > 4096)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: group sizes %d (in) and %d (out) must be in 1..4096",
                        (int)fmt->in_group_size, (int)fmt->out_group_size);
    if (fmt->scale_mode != AQ_SCALE_NONE && fmt->scale_mode != AQ_SCALE_PER_OUTPUT_GROUP)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "format: unknown scale mode %d", (int)fmt->scale_mode);
    if (rows < 1 || cols < 1)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "format: matrix %lld x %lld is empty", (long long)rows,
                        (long long)cols);
    if (rows % fmt->out_group_size || cols % fmt->in_group_size)
        return aqi_fail(ctx, AQ_ERR_SHAPE,
                        "format: %lld x %lld matrix is not divisible into %d x %d tiles (out x in group)",
                        (long long)rows, (long long)cols, (int)fmt->out_group_size, (int)fmt->in_group_size);
    if (rows > (INT64_C(1) << 40) / cols)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "format: %lld x %lld matrix is too large", (long long)rows,
                        (long long)cols);
    return AQ_OK;
}

/* AQLM estimate_nbits_per_parameter with codebook_value_nbits = 16 and scale_nbits = 0:
 * codes + fp16 codebooks + one fp16 scale per output group. */
int aq_format_bits_per_parameter(double *bpp, const aq_format *fmt, int64_t rows, int64_t cols)
{
    int st = aq_format_check(NULL, fmt, rows, cols);
    double params, tiles, K, bits;
    if (!bpp)
        return AQ_ERR_INVALID_ARG;
    if (st)
        return st;
    params = (double)rows * (double)cols;
    tiles = params / ((double)fmt->out_group_size * fmt->in_group_size);
    K = ldexp(1.0, fmt->bits_per_codebook);
    bits = tiles * fmt->num_codebooks * fmt->bits_per_codebook
         + fmt->num_codebooks * K * fmt->out_group_size * fmt->in_group_size * 16.0;
    if (fmt->scale_mode == AQ_SCALE_PER_OUTPUT_GROUP)
        bits += (double)(rows / fmt->out_group_size) * 16.0;
    *bpp = bits / params;
    return AQ_OK;
}

int aq_format_rho(double *rho, const aq_format *fmt, int64_t rows, int64_t cols)
{
    int st = aq_format_check(NULL, fmt, rows, cols);
    double tiles;
    if (!rho)
        return AQ_ERR_INVALID_ARG;
    if (st)
        return st;
    tiles = (double)(rows / fmt->out_group_size) * (double)(cols / fmt->in_group_size);
    *rho = tiles / pow(2.0, (double)fmt->num_codebooks * fmt->bits_per_codebook);
    return AQ_OK;
}

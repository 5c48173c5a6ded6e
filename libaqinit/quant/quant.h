/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Internal layout of aq_quant (AQLM layout, DESIGN.md §3), shared by quant.c, the I/O code
 * and the algorithms that fill it. */
#ifndef AQINIT_QUANT_H
#define AQINIT_QUANT_H

#include "core/internal.h"

struct aq_quant {
    aq_context *ctx;
    aq_format fmt;
    int64_t rows, cols;      /* O × I */
    int64_t n_out_groups;    /* P = O / g_o */
    int64_t n_in_groups;     /* J = I / g */
    int32_t M, K, g, go;     /* codebooks, entries per codebook (2^B), group sizes */
    void *codes;             /* [P][J][M], uint8_t if B <= 8 else uint16_t */
    size_t codes_bytes;
    float *codebooks;        /* [M][K][g_o][g] */
    size_t codebooks_count;
    float *scales;           /* [P]; all 1 when fmt.scale_mode == AQ_SCALE_NONE */
    size_t scales_count;
};

static inline int aqi_code_is_wide(const aq_quant *q)
{
    return q->fmt.bits_per_codebook > 8;
}

static inline uint32_t aqi_code_get(const aq_quant *q, int64_t p, int64_t j, int m)
{
    size_t idx = ((size_t)p * (size_t)q->n_in_groups + (size_t)j) * (size_t)q->M + (size_t)m;
    return aqi_code_is_wide(q) ? ((const uint16_t *)q->codes)[idx] : ((const uint8_t *)q->codes)[idx];
}

static inline void aqi_code_set(aq_quant *q, int64_t p, int64_t j, int m, uint32_t code)
{
    size_t idx = ((size_t)p * (size_t)q->n_in_groups + (size_t)j) * (size_t)q->M + (size_t)m;
    if (aqi_code_is_wide(q))
        ((uint16_t *)q->codes)[idx] = (uint16_t)code;
    else
        ((uint8_t *)q->codes)[idx] = (uint8_t)code;
}

/* Codebook entry k of codebook m: g_o × g floats. */
static inline float *aqi_codeword(const aq_quant *q, int m, uint32_t k)
{
    return q->codebooks + ((size_t)m * (size_t)q->K + k) * (size_t)q->go * (size_t)q->g;
}

/* Array sizes of a quant of an already checked format: bytes of codes, floats of codebooks and
 * of scales. Nonzero if a size overflows size_t. */
int aqi_quant_sizes(const aq_format *fmt, int64_t rows, int64_t cols, size_t *codes_bytes,
                    size_t *codebooks_count, size_t *scales_count);
/* Allocate a quant of an already checked format (codes 0, codebooks 0, scales 1). */
int aqi_quant_new(aq_quant **out, aq_context *ctx, const aq_format *fmt, int64_t rows, int64_t cols);
/* Copy codes, codebooks and scales between two quants of the same shape and format. */
void aqi_quant_copy_arrays(aq_quant *dst, const aq_quant *src);
/* 1 if every code is < K. */
int aqi_quant_codes_valid(const aq_quant *q, const void *codes);
/* Ŵ of output groups [p0, p1) into @p out, which points at row p0·g_o (leading dimension ld). */
void aqi_quant_dequantize_groups(const aq_quant *q, float *out, int64_t ld, int64_t p0, int64_t p1);

/* The rule of calls that take a context and handles (aqinit.h, "Contexts and handles"): every
 * handle given (the quant, and H and options when not NULL) must have been created from @p ctx.
 * Otherwise ::AQ_ERR_INVALID_ARG with a message on @p ctx naming the handle. */
int aqi_check_owners(aq_context *ctx, const char *fn, const aq_quant *q, const aq_hessian *H,
                     const aq_options *options);

#endif

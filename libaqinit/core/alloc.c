/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Aligned allocation through the context's allocator, and overflow-checked size arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

int aqi_mul_size(size_t *out, size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

int aqi_mul3_size(size_t *out, size_t a, size_t b, size_t c)
{
    size_t ab;
    return aqi_mul_size(&ab, a, b) || aqi_mul_size(out, ab, c);
}

int aqi_bytes(aq_context *ctx, size_t *out, int64_t count, size_t elem, const char *what)
{
    if (count < 0)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: negative size %lld", what, (long long)count);
    if ((uint64_t)count > SIZE_MAX || aqi_mul_size(out, (size_t)count, elem)
        || *out > (size_t)PTRDIFF_MAX - 2 * AQI_ALIGN)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: %lld elements of %zu bytes overflow the address space",
                        what, (long long)count, elem);
    return AQ_OK;
}

/* The block handed out is aligned to AQI_ALIGN; the allocator's own pointer is stored just
 * before it so that aqi_free can give it back. */
void *aqi_alloc(aq_context *ctx, size_t size)
{
    size_t total;
    unsigned char *raw, *aligned;
    if (size > SIZE_MAX - AQI_ALIGN - sizeof(void *)) {
        aqi_fail(ctx, AQ_ERR_NOMEM, "allocation of %zu bytes is too large", size);
        return NULL;
    }
    total = size + AQI_ALIGN + sizeof(void *);
    raw = ctx->allocator.alloc(total, ctx->allocator.userdata);
    if (!raw) {
        aqi_fail(ctx, AQ_ERR_NOMEM, "out of memory allocating %zu bytes", size);
        return NULL;
    }
    aligned = (unsigned char *)(((uintptr_t)raw + sizeof(void *) + AQI_ALIGN - 1)
                                & ~(uintptr_t)(AQI_ALIGN - 1));
    memcpy(aligned - sizeof(void *), &raw, sizeof raw);
    return aligned;
}

void *aqi_calloc(aq_context *ctx, size_t n, size_t size)
{
    size_t bytes;
    void *p;
    if (aqi_mul_size(&bytes, n, size)) {
        aqi_fail(ctx, AQ_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    p = aqi_alloc(ctx, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void aqi_free(aq_context *ctx, void *ptr)
{
    void *raw;
    if (!ptr)
        return;
    memcpy(&raw, (unsigned char *)ptr - sizeof(void *), sizeof raw);
    ctx->allocator.free(raw, ctx->allocator.userdata);
}

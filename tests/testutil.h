/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Helpers shared by the Check suites: a failing allocator, random data, naive references. */
#ifndef AQINIT_TESTUTIL_H
#define AQINIT_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "aqinit.h"

/* An allocator that fails on the k-th allocation (1-based; 0 = never) and counts live blocks.
 * Thread-safe (atomic counters), as the library requires of allocators. */
typedef struct failing_allocator {
    long fail_at;   /* allocation number that fails */
    long n_allocs;  /* allocations attempted */
    long live;      /* blocks not yet freed */
} failing_allocator;

static void *fa_alloc(size_t size, void *ud)
{
    failing_allocator *fa = ud;
    long n = __atomic_add_fetch(&fa->n_allocs, 1, __ATOMIC_SEQ_CST);
    if (fa->fail_at && n == __atomic_load_n(&fa->fail_at, __ATOMIC_SEQ_CST))
        return NULL;
    void *p = malloc(size);
    if (p)
        __atomic_add_fetch(&fa->live, 1, __ATOMIC_SEQ_CST);
    return p;
}

static void fa_free(void *p, void *ud)
{
    failing_allocator *fa = ud;
    __atomic_sub_fetch(&fa->live, 1, __ATOMIC_SEQ_CST);
    free(p);
}

/* A context that allocates through @p fa. */
static inline aq_context *tu_failing_context(failing_allocator *fa)
{
    aq_allocator a = {fa_alloc, fa_free, fa};
    aq_context *ctx = NULL;
    ck_assert_int_eq(aq_context_create_with_allocator(&ctx, &a), AQ_OK);
    return ctx;
}

/* An allocator that meters bytes: live and peak totals, and a cap above which it refuses (so a
 * test of an allocation bomb fails on its assertions instead of exhausting the machine). */
typedef struct metered_allocator {
    size_t cap;  /* refuse an allocation that would take live bytes above this */
    size_t live; /* bytes allocated and not freed */
    size_t peak; /* largest value of live */
} metered_allocator;

#define TU_METER_PREFIX 64 /* keeps the block's size; a multiple of the library's alignment */

static void *ma_alloc(size_t size, void *ud)
{
    metered_allocator *ma = ud;
    if (size > SIZE_MAX - TU_METER_PREFIX)
        return NULL;
    size_t now = __atomic_add_fetch(&ma->live, size, __ATOMIC_SEQ_CST);
    unsigned char *p = now <= ma->cap ? malloc(size + TU_METER_PREFIX) : NULL;
    if (!p) {
        __atomic_sub_fetch(&ma->live, size, __ATOMIC_SEQ_CST);
        return NULL;
    }
    size_t peak = __atomic_load_n(&ma->peak, __ATOMIC_SEQ_CST);
    while (now > peak && !__atomic_compare_exchange_n(&ma->peak, &peak, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    *(size_t *)p = size;
    return p + TU_METER_PREFIX;
}

static void ma_free(void *ptr, void *ud)
{
    metered_allocator *ma = ud;
    unsigned char *p = (unsigned char *)ptr - TU_METER_PREFIX;
    __atomic_sub_fetch(&ma->live, *(size_t *)p, __ATOMIC_SEQ_CST);
    free(p);
}

static inline aq_context *tu_metered_context(metered_allocator *ma)
{
    aq_allocator a = {ma_alloc, ma_free, ma};
    aq_context *ctx = NULL;
    ck_assert_int_eq(aq_context_create_with_allocator(&ctx, &a), AQ_OK);
    return ctx;
}

static inline aq_context *tu_context(int threads, uint64_t seed)
{
    aq_context *ctx = NULL;
    ck_assert_int_eq(aq_context_create(&ctx), AQ_OK);
    ck_assert_int_eq(aq_context_set_threads(ctx, threads), AQ_OK);
    ck_assert_int_eq(aq_context_set_seed(ctx, seed), AQ_OK);
    return ctx;
}

/* Deterministic test data: a small LCG, independent of the library's RNG. */
static inline double tu_uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) * 0x1.0p-53;
}

static inline double tu_normal(uint64_t *state)
{
    double u1 = tu_uniform(state), u2 = tu_uniform(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static inline float *tu_random_matrix(int64_t rows, int64_t cols, uint64_t seed)
{
    float *m = malloc(sizeof(float) * (size_t)(rows * cols));
    ck_assert_ptr_nonnull(m);
    for (int64_t i = 0; i < rows * cols; i++)
        m[i] = (float)tu_normal(&seed);
    return m;
}

static inline double tu_rel_diff(double a, double b)
{
    double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return s == 0 ? 0 : fabs(a - b) / s;
}

/* A quant of @p format (rows × cols) with random codes, codebooks and scales. */
static inline aq_quant *tu_random_quant(aq_context *ctx, const char *format, int64_t rows, int64_t cols, uint64_t seed)
{
    aq_format f;
    aq_quant *q = NULL;
    size_t nb, nc, ns;
    aq_format_init(&f);
    ck_assert_int_eq(aq_format_parse(&f, format), AQ_OK);
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, rows, cols), AQ_OK);
    void *codes = aq_quant_codes(q, &nb);
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    const uint32_t K = 1u << f.bits_per_codebook;
    for (size_t i = 0; i < nb / (K > 256 ? 2 : 1); i++) {
        uint32_t c = (uint32_t)(tu_uniform(&seed) * K);
        if (K > 256)
            ((uint16_t *)codes)[i] = (uint16_t)c;
        else
            ((uint8_t *)codes)[i] = (uint8_t)c;
    }
    for (size_t i = 0; i < nc; i++)
        cb[i] = (float)tu_normal(&seed);
    for (size_t i = 0; i < ns; i++)
        sc[i] = (float)(0.5 + tu_uniform(&seed));
    return q;
}

/* Run one suite with the CK_FORK default and return the number of failures. */
static inline int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

#endif

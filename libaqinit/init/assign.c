/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Fused "score + argmin" kernel of the E-step (see assign.h).
 *
 * Written with GCC/Clang vector extensions and compiled once per instruction set from
 * assign_body.h — 16 floats per vector for AVX-512, 8 for AVX2, 4 otherwise — and chosen at run
 * time. Four points share each load of a centroid block. */
/* s += q·c may fuse into one FMA: the scores only rank centroids. */
#pragma GCC optimize("fp-contract=fast")

#include <float.h>
#include <string.h>

#include "init/assign.h"

#define AQI_CAT_(a, b) a##b
#define AQI_CAT(a, b) AQI_CAT_(a, b)

void aqi_assign_transpose(float *CT, const float *C, int64_t K, int64_t Kp, int64_t D)
{
    for (int64_t d = 0; d < D; d++) {
        float *row = CT + d * Kp;
        for (int64_t k = 0; k < K; k++)
            row[k] = C[k * D + d];
        for (int64_t k = K; k < Kp; k++)
            row[k] = 0.0f;
    }
}

void aqi_assign_pad_table(float *table, int64_t K, int64_t Kp)
{
    for (int64_t k = K; k < Kp; k++)
        table[k] = FLT_MAX;
}

typedef void (*argmin_fn)(const float *, int64_t, int64_t, const float *, const float *, int64_t, int64_t,
                          int32_t *, int64_t, float *);
typedef void (*top2_fn)(const float *, const int64_t *, int64_t, int64_t, const float *, const float *, int64_t,
                        int64_t, int32_t *, float *, float *);

typedef struct kernels {
    argmin_fn argmin;
    top2_fn top2;
} kernels;

#define AQI_VL 4
#define AQI_NAME(x) AQI_CAT(x, _generic)
#define AQI_TARGET
#include "init/assign_body.h"
#undef AQI_VL
#undef AQI_NAME
#undef AQI_TARGET

#if defined(__GNUC__) && defined(__x86_64__)
#  include <immintrin.h>
#  define AQI_ASSIGN_X86 1
#  define AQI_VL 8
#  define AQI_NAME(x) AQI_CAT(x, _avx2)
#  define AQI_TARGET __attribute__((target("avx2,fma")))
#  define AQI_VMIN(a, b) _mm256_min_ps((__m256)(a), (__m256)(b))
#  define AQI_VMAX(a, b) _mm256_max_ps((__m256)(a), (__m256)(b))
#  include "init/assign_body.h"
#  undef AQI_VMIN
#  undef AQI_VMAX
#  undef AQI_VL
#  undef AQI_NAME
#  undef AQI_TARGET
#  define AQI_VL 16
#  define AQI_NAME(x) AQI_CAT(x, _avx512)
#  define AQI_TARGET __attribute__((target("avx512f")))
#  define AQI_VMIN(a, b) _mm512_min_ps((__m512)(a), (__m512)(b))
#  define AQI_VMAX(a, b) _mm512_max_ps((__m512)(a), (__m512)(b))
#  include "init/assign_body.h"
#  undef AQI_VMIN
#  undef AQI_VMAX
#  undef AQI_VL
#  undef AQI_NAME
#  undef AQI_TARGET
#endif

static kernels pick_kernels(void)
{
#ifdef AQI_ASSIGN_X86
    switch (aqi_kernel_level(-1)) { /* cpu.c */
    case 2: return (kernels){argmin_avx512, top2_avx512};
    case 1: return (kernels){argmin_avx2, top2_avx2};
    default: break;
    }
#endif
    return (kernels){argmin_generic, top2_generic};
}

void aqi_assign_argmin(const float *Q, int64_t n, int64_t ldq, const float *CT, const float *table,
                       int64_t D, int64_t Kp, int32_t *codes, int64_t code_stride, float *best)
{
    pick_kernels().argmin(Q, n, ldq, CT, table, D, Kp, codes, code_stride, best);
}

void aqi_assign_top2(const float *Q, const int64_t *index, int64_t n, int64_t ldq, const float *CT,
                     const float *table, int64_t D, int64_t Kp, int32_t *codes, float *best, float *second)
{
    pick_kernels().top2(Q, index, n, ldq, CT, table, D, Kp, codes, best, second);
}

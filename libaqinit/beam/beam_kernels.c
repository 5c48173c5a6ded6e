/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Kernels of the beam search (beam.c): candidate scores (equation B2 there), their scans, the
 * rank-g updates of S (B3, B4) and the products S = ΔW·H[:, J_batch].
 *
 * The bodies (beam_kernels_body.h) are compiled once per instruction set with vectors of the
 * target's register width — AVX-512 (16 lanes), AVX2 (8), SSE2 (4) on x86-64 with GCC; 4 lanes
 * with other GCC-compatible compilers; plain loops otherwise — and the best one the CPU runs is
 * chosen on first use. All variants give the same bits (no FMA contraction: ISO C mode). */
#include <math.h>
#include <string.h>

#include "beam/beam_kernels.h"
#include "core/internal.h"

#define PRODUCT_KB 256 /* k-block of aqi_product_rows */

/* __builtin_shufflevector (GCC 12, clang) splits vectors in registers; else through memory */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#  define AQI_SHUFFLE 1
#else
#  define AQI_SHUFFLE 0
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(AQI_NO_VECTORS)
#  include <immintrin.h> /* comparison masks straight to a register (filter_tile) */
#  define AQI_X86_MASKS 1
#  pragma GCC push_options
#  pragma GCC target("arch=x86-64-v4")
#  define VW 16
#  define KN(n) n##_v4
#  include "beam/beam_kernels_body.h"
#  undef KN
#  undef VW
#  pragma GCC pop_options

#  pragma GCC push_options
#  pragma GCC target("arch=x86-64-v3")
#  define VW 8
#  define KN(n) n##_v3
#  include "beam/beam_kernels_body.h"
#  undef KN
#  undef VW
#  pragma GCC pop_options

#  define VW 4
#  define KN(n) n##_v1
#  include "beam/beam_kernels_body.h"
#  undef KN
#  undef VW

/* f_v1, f_v3 or f_v4 by the level in use */
#  define DISPATCH(f, args)                                                                       \
    do {                                                                                         \
        int level_ = aqi_kernel_level(-1);                                                       \
        if (level_ == 2)                                                                         \
            f##_v4 args;                                                                         \
        else if (level_ == 1)                                                                    \
            f##_v3 args;                                                                         \
        else                                                                                     \
            f##_v1 args;                                                                         \
    } while (0)
#  define DISPATCH_RET(ret, f, args)                                                              \
    do {                                                                                         \
        int level_ = aqi_kernel_level(-1);                                                       \
        ret = level_ == 2 ? f##_v4 args : level_ == 1 ? f##_v3 args : f##_v1 args;               \
    } while (0)
#else
#  if defined(__GNUC__) && !defined(AQI_NO_VECTORS)
#    define VW 4
#  else
#    define VW 0
#  endif
#  define KN(n) n##_v1
#  include "beam/beam_kernels_body.h"
#  undef KN
#  undef VW

#  define DISPATCH(f, args) f##_v1 args
#  define DISPATCH_RET(ret, f, args) ret = f##_v1 args
#endif

void aqi_score_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                    int64_t ldct, const float *t, int64_t kt, float *out, int64_t ldo)
{
    DISPATCH(score_tile, (U, ldu, n_rows, D, CT, ldct, t, kt, out, ldo));
}

void aqi_score_min_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                        int64_t ldct, const float *t, int64_t kt, int32_t k_base, const int32_t *a,
                        float *lmin, int32_t *lidx, float *score_a)
{
    DISPATCH(score_min_tile, (U, ldu, n_rows, D, CT, ldct, t, kt, k_base, a, lmin, lidx, score_a));
}

void aqi_argmin_tile(const float *v, int64_t n, float *best, int32_t *best_k)
{
    float lv[AQI_SCORE_LANES];
    int32_t li[AQI_SCORE_LANES];
    DISPATCH(lane_min_tile, (v, n, lv, li));
    *best = INFINITY;
    *best_k = -1;
    for (int l = 0; l < AQI_SCORE_LANES; l++)
        if (li[l] >= 0 && (lv[l] < *best || (lv[l] == *best && li[l] < *best_k))) {
            *best = lv[l];
            *best_k = li[l];
        }
}

float aqi_kth_bound_tile(const float *v, int64_t n, int32_t w)
{
    float m;
    DISPATCH_RET(m, kth_bound_tile, (v, n, w));
    return m;
}

void aqi_table_tile(const float *CT, int64_t ldct, int32_t go, int32_t g, const float *Hjj, int64_t ldh,
                    int64_t kt, float *t)
{
    DISPATCH(table_tile, (CT, ldct, go, g, Hjj, ldh, kt, t));
}

int32_t aqi_filter_tile(const float *v, int64_t n, float bound, int32_t *idx)
{
    int32_t count;
    DISPATCH_RET(count, filter_tile, (v, n, bound, idx));
    return count;
}

void aqi_rank_g_update(float *const *G, const float *const *coef, int64_t n, int32_t g,
                       const float *Hrows, int64_t ldh, int64_t ncols)
{
    DISPATCH(rank_g_update, (G, coef, n, g, Hrows, ldh, ncols));
}

void aqi_product_rows(const float *A, int64_t lda, int64_t n, int64_t kdim, const float *B, int64_t ldb,
                      int64_t nc, float *C, int64_t ldc)
{
    DISPATCH(product_rows, (A, lda, n, kdim, B, ldb, nc, C, ldc));
}

void aqi_box_bounds8(const float *box, int32_t D, const double *qT, const double *sub, double *lb)
{
    DISPATCH(box_bounds8, (box, D, qT, sub, lb));
}

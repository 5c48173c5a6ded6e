/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Nearest-centroid assignment: the E-step shared by k-means and OA-EM.
 *
 * Both minimise a quadratic distance that expands as (docs/algorithms.md eq. 5)
 *     d(i, k) = const_i + t_k − 2 q_i·c_k,
 * with q_i = r_i, t_k = ‖c_k‖² for Euclidean k-means, and q_i = H̃_j r_i, t_k = c_kᵀ H̃_j c_k for
 * the Mahalanobis distance of input group j. The kernel computes t_k − 2 q_i·c_k for blocks of
 * points against blocks of 16 centroids in registers and keeps a running argmin, so the
 * points × K score matrix never exists. */
#ifndef AQINIT_ASSIGN_H
#define AQINIT_ASSIGN_H

#include "core/internal.h"

#define AQI_ASSIGN_KBLOCK 16 /* centroids per vector block; K is padded to a multiple of it */

/* K rounded up to a multiple of AQI_ASSIGN_KBLOCK. */
static inline int64_t aqi_assign_padded_k(int64_t K)
{
    return (K + AQI_ASSIGN_KBLOCK - 1) / AQI_ASSIGN_KBLOCK * AQI_ASSIGN_KBLOCK;
}

/* Transpose the K × D centroids C into CT (D × Kp, leading dimension Kp); padding columns
 * are zero. */
void aqi_assign_transpose(float *CT, const float *C, int64_t K, int64_t Kp, int64_t D);

/* Pad table[K..Kp) with FLT_MAX so padding centroids never win. */
void aqi_assign_pad_table(float *table, int64_t K, int64_t Kp);

/* For the n points q_i = Q[i·ldq .. i·ldq + D) write codes[i·code_stride] =
 * argmin_k (table[k] − 2 q_i·CT[:, k]) over k < Kp (ties: lowest k) and, if best is not NULL,
 * best[i] = that minimum. */
void aqi_assign_argmin(const float *Q, int64_t n, int64_t ldq, const float *CT, const float *table,
                       int64_t D, int64_t Kp, int32_t *codes, int64_t code_stride, float *best);

/* For the points q = Q[index[s]·ldq ..], s < n: codes[s] = the argmin as above, best[s] its
 * score and second[s] the smallest score of any other centroid (FLT_MAX if Kp = 1). Used by
 * the bounded E-step (em_bounds.c), which needs the runner-up distance. */
void aqi_assign_top2(const float *Q, const int64_t *index, int64_t n, int64_t ldq, const float *CT,
                     const float *table, int64_t D, int64_t Kp, int32_t *codes, float *best, float *second);

#endif

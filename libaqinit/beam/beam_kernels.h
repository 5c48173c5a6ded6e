/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Kernels of the beam search (beam_kernels.c, bodies in beam_kernels_body.h), used by beam.c and
 * beam_step.c and exposed for tests and benchmarks. */
#ifndef AQINIT_BEAM_KERNELS_H
#define AQINIT_BEAM_KERNELS_H

#include <stdint.h>

/* Each kernel exists in variants for AVX-512, AVX2 and SSE2 (x86-64 with GCC) that give the
 * same bits; the best the CPU runs is used. */
#define AQI_SCORE_ROWS 8   /* rows per register block of the score kernels */
#define AQI_SCORE_LANES 16 /* codewords per vector block; tiles are multiples of it */

/* out[r][k] = t[k] + Σ_d U[r][d]·CT[d][k] for r < n_rows (a multiple of AQI_SCORE_ROWS) and
 * k < kt (a multiple of AQI_SCORE_LANES): the candidate scores of equation (B2) in beam.c. */
void aqi_score_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                    int64_t ldct, const float *t, int64_t kt, float *out, int64_t ldo);

/* aqi_score_tile folded into running lane-wise minima: for row r and lane l, lmin[r][l] /
 * lidx[r][l] keep the smallest score so far among the codewords k ≡ l (mod lanes) and its first
 * index (k_base + tile position); score_a[r] receives the score of codeword a[r] if it lies in
 * the tile. The same bits as aqi_score_tile. The width-1 scan. */
void aqi_score_min_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                        int64_t ldct, const float *t, int64_t kt, int32_t k_base, const int32_t *a,
                        float *lmin, int32_t *lidx, float *score_a);

/* t[k] = Σ_r c_{k,r}ᵀ Hjj c_{k,r} for k < kt (a multiple of AQI_SCORE_LANES), where
 * c_{k,r}[e] = CT[r·g + e][k] (r < go, e < g) and Hjj is g × g with leading dimension ldh: the
 * tables of (B2) in beam.c. */
void aqi_table_tile(const float *CT, int64_t ldct, int32_t go, int32_t g, const float *Hjj, int64_t ldh,
                    int64_t kt, float *t);

/* Smallest of v[0..n) (n a multiple of AQI_SCORE_LANES) and its first index, or *best_k = −1
 * if no value is below +inf: the width-1 scan of the scores. */
void aqi_argmin_tile(const float *v, int64_t n, float *best, int32_t *best_k);

/* An upper bound of the w-th smallest of v[0..n) (w <= AQI_SCORE_LANES), +inf if n < w. */
float aqi_kth_bound_tile(const float *v, int64_t n, int32_t w);

/* Indices k < n with v[k] <= bound, increasing, into idx; returns their number. */
int32_t aqi_filter_tile(const float *v, int64_t n, float bound, int32_t *idx);

/* For each of n rows: G_r[0..I) += Σ_d coef_r[d]·Hrows[d][0..I) (d < g, Hrows has leading
 * dimension ldh): the rank-g corrections (B3), (B4) of beam.c. */
void aqi_rank_g_update(float *const *G, const float *const *coef, int64_t n, int32_t g,
                       const float *Hrows, int64_t ldh, int64_t ncols);

/* C = A·B for n rows (A n × kdim, B kdim × nc, nc a multiple of AQI_SCORE_LANES, leading
 * dimensions lda, ldb, ldc): the products S = ΔW·H[:, J_batch] (B4) of beam.c. A row's result
 * does not depend on n or on its position. */
void aqi_product_rows(const float *A, int64_t lda, int64_t n, int64_t kdim, const float *B, int64_t ldb,
                      int64_t nc, float *C, int64_t ldc);

/* lb[i] = Σ_d max(box[d] − qT[d][i], qT[d][i] − box[D + d], 0)² − sub[i] for i < 8 (qT is
 * [D][8]; box holds the D lower then the D upper corners): the squared distances of 8 query
 * points to a box, less sub, in double — the tree bounds (N2) of beam_nn.c. */
void aqi_box_bounds8(const float *box, int32_t D, const double *qT, const double *sub, double *lb);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Exact nearest-codeword queries for the beam search at large K (beam_nn.c has the derivation):
 * per step (j, m) a k-d tree over the codewords of codebook m transformed by the Cholesky factor
 * of H_jj, so that a state's best `width` replacements are found without scoring all K. */
#ifndef AQINIT_BEAM_NN_H
#define AQINIT_BEAM_NN_H

#include <stddef.h>
#include <stdint.h>

#include "aqinit.h"

#define AQI_NN_LEAF 32    /* most codewords of a leaf (a multiple of AQI_SCORE_LANES) */
#define AQI_NN_MAX_G 16   /* input group sizes the tree serves */
#define AQI_NN_MAX_D 16   /* tile sizes D = g_o·g the tree serves */
#define AQI_NN_MIN_K 4096 /* automatic use from this many codewords on (below, the scan is cheap) */

typedef struct aqi_beam_nn_node { int32_t start, end, right; } aqi_beam_nn_node; /* right < 0: leaf */

typedef struct aqi_beam_nn {
    int ok;                  /* 0: H_jj not safely positive definite; the step scans all K */
    int32_t D, g, go, n_nodes;
    int32_t *perm;           /* [K] codeword at each tree position (leaves are ranges of it) */
    float *cw;               /* [K/LEAF blocks][D][LEAF] codewords in tree order, block-transposed */
    float *tw;               /* [K rounded up to LEAF] their tables t_k, in tree order */
    float *box;              /* [nodes][2·D] lower then upper corner of a node's y_k = Lᵀc_k */
    aqi_beam_nn_node *node;  /* [nodes] preorder: the left child of node i is i + 1 */
    double L[AQI_NN_MAX_G * AQI_NN_MAX_G]; /* H_jj = L Lᵀ, lower triangle, row-major */
    double err_scale;        /* the margin's per-step terms, see beam_nn.c (N3) */
    double ymax[AQI_NN_MAX_D], cmax[AQI_NN_MAX_D]; /* max_k |y_k[d]|, max_k |c_k[d]| */
} aqi_beam_nn;

/* Bytes of the tree arrays of one step (perm, codewords and tables in tree order, boxes, nodes). */
size_t aqi_beam_nn_bytes(int64_t K, int32_t D);

/* Allocate / free the arrays of one step for K codewords of dimension D = go·g (D <= 16). */
int aqi_beam_nn_alloc(aq_context *ctx, aqi_beam_nn *nn, int64_t K, int32_t go, int32_t g);
void aqi_beam_nn_free(aq_context *ctx, aqi_beam_nn *nn);

/* Build the tree of one step: CT ([D][ldct], codeword k in column k) is the codebook, Hjj
 * (g × g, leading dimension ldh) the diagonal block of H, t[k] (k < K) the scan's tables of
 * (B2). @p y is scratch of K·(D + 2) floats. Sets nn->ok = 0 (and builds nothing) when the Cholesky
 * factorisation of H_jj fails or a pivot is below 1e-8 of H_jj's largest diagonal entry. */
void aqi_beam_nn_build(aqi_beam_nn *nn, const float *CT, int64_t ldct, int64_t K, const float *Hjj,
                       int64_t ldh, const float *t, float *y);

#endif

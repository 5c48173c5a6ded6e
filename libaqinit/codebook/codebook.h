/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Codebook and scale updates with the codes fixed: exact normal equations, conjugate gradients
 * or Adam for the codebooks, the closed form for the scales. Each minimises the layer objective
 * (objective/layer.h) and never increases it. */
#ifndef AQINIT_CODEBOOK_CODEBOOK_H
#define AQINIT_CODEBOOK_CODEBOOK_H

#include "objective/layer.h"

/* out = Aᵀ s (X H) with X = W − Ŵ(cb) (@p residual) or Ŵ(cb), and ⟨X, X H⟩ into *quad (may be
 * NULL): the product of the iterative updates (codebook_product.c). Buffers of one row block and
 * one partial sum per shard. Init and apply are collective with a communicator (their statuses
 * are agreed): every rank calls them in the same order. */
typedef struct aqi_cb_product {
    const aqi_layer *layer;
    const aq_quant *q;
    float *X, *G;
    int64_t chunk_groups;
    int64_t n_shards;
    int64_t n_partials; /* 1 on one rank (each shard added when done), else n_shards */
    double *partials; /* n_partials × (Q + 1) */
} aqi_cb_product;
int aqi_cb_product_init(aqi_cb_product *pr, const aqi_layer *layer, const aq_quant *q);
int aqi_cb_product_apply(aqi_cb_product *pr, const float *cb, int residual, double *out, double *quad);
void aqi_cb_product_free(aqi_cb_product *pr);

/* Codebook update of ::AQ_OPT_CODEBOOK_UPDATE, then the closed-form scales if
 * ::AQ_OPT_UPDATE_SCALES and the format has scales. */
int aqi_opt_update_codebooks(const aqi_layer *layer, aq_quant *q, const aqi_options_values *v);

/* The pieces of aqi_opt_update_codebooks, for tests and benchmarks. */
int aqi_opt_codebooks_exact(const aqi_layer *layer, aq_quant *q);
/* Preconditioned conjugate gradients on the same least squares, warm-started from the current
 * codebooks, @p iterations products with H (codebook_cg.c). */
int aqi_opt_codebooks_cg(const aqi_layer *layer, aq_quant *q, int64_t iterations);
int aqi_opt_codebooks_adam(const aqi_layer *layer, aq_quant *q, int64_t steps, double lr);
int aqi_opt_scales(const aqi_layer *layer, aq_quant *q);

#endif

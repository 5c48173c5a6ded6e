/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The layer objective shared by the optimisers (beam/, codebook/, optimize/):
 * L = tr((W − Ŵ) H (W − Ŵ)ᵀ) for one layer, the reconstruction Ŵ, the argument checks and the
 * working copies every public entry point uses. Depends on quant/ and hessian/ only. */
#ifndef AQINIT_OBJECTIVE_LAYER_H
#define AQINIT_OBJECTIVE_LAYER_H

#include "core/options.h"
#include "quant/quant.h"

/* The layer being optimised: W (rows × cols of the quant, leading dimension ld) and the
 * undamped Hessian as float, cols × cols, leading dimension cols. */
typedef struct aqi_layer {
    aq_context *ctx;
    const float *W;
    int64_t ld;
    const float *H;
} aqi_layer;

/* Argument checks of the public entry points (@p fn names the caller in messages): non-NULL
 * arguments, ld >= cols, H of the quant's width, sizes within the BLAS index range, finite W,
 * and if @p check_quant_arrays finite codebooks and scales and codes < K. */
int aqi_opt_validate(aq_context *ctx, const char *fn, const aq_quant *q, const float *W, int64_t ld,
                     const aq_hessian *H, int check_quant_arrays);

/* L (and tr(W H Wᵀ) if @p w_energy is not NULL), with float products accumulated in double. */
int aqi_opt_loss(const aqi_layer *layer, const aq_quant *q, double *loss, double *w_energy);

/* Rows of output groups [p0, p1) of Ŵ into @p out (leading dimension ldo); with_scale = 0
 * leaves out the scales (the unscaled tiles Σ_m C_m[b]). */
void aqi_opt_reconstruct(const aq_quant *q, int64_t p0, int64_t p1, float *out, int64_t ldo,
                         int with_scale);

/* Working copies of a quant's arrays: the struct is copied and the arrays duplicated through
 * @p ctx. aqi_opt_quant_commit copies them back into @p dst (same shape). */
int aqi_opt_quant_dup(aq_context *ctx, aq_quant *copy, const aq_quant *src);
void aqi_opt_quant_commit(aq_quant *dst, const aq_quant *copy);
void aqi_opt_quant_release(aq_context *ctx, aq_quant *copy);

/* Everything a public entry point (aq_beam_search, aq_update_codebooks, aq_optimize) needs: the
 * option values, the layer with H as float (damped by ::AQ_OPT_HESSIAN_DAMPING, its diagonal
 * blocks checked) and a working copy of the quant. Opening validates the arguments; closing
 * commits the copy into the quant only when st == AQ_OK, so a failure or a cancellation leaves
 * the quant exactly as it was. */
typedef struct aqi_layer_session {
    aqi_options_values v;
    aqi_layer layer;
    aq_quant work;
    float *H;
} aqi_layer_session;

int aqi_layer_session_open(aqi_layer_session *s, aq_context *ctx, const char *fn, aq_quant *quant,
                           const float *W, int64_t ld, const aq_hessian *H, const aq_options *options);
/* Returns st, agreed across ranks with a communicator (every rank commits or none does);
 * _local neither agrees nor communicates. */
int aqi_layer_session_close(aqi_layer_session *s, aq_context *ctx, aq_quant *quant, int st);
int aqi_layer_session_close_local(aqi_layer_session *s, aq_context *ctx, aq_quant *quant, int st);

#endif

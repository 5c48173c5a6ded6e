/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The options handle's contents, read by the algorithms. */
#ifndef AQINIT_OPTIONS_H
#define AQINIT_OPTIONS_H

#include "core/internal.h"

typedef struct aqi_options_values {
    int64_t init_method;
    int64_t kmeans_seeding;
    int64_t kmeans_max_iter;
    double kmeans_tol;
    int64_t em_seeding;
    int64_t em_max_rounds;
    double em_tol;
    double em_damping;
    int64_t em_scale_weighting;
    int64_t em_mstep;
    int64_t em_adam_steps;
    double em_adam_lr;
    int64_t em_joint_passes;
    int64_t beam_width;
    int64_t beam_random_order;
    int64_t codebook_update;
    int64_t codebook_exact_max_dim;
    int64_t codebook_adam_steps;
    double codebook_adam_lr;
    int64_t update_scales;
    int64_t codebook_cg_iters;
    int64_t max_epochs;
    double rel_tol;
    double hessian_damping;
    double vstep_max_fraction;
    int64_t vstep_selection;
    double vstep_trust_ratio;
    double vstep_max_change;
    int64_t pipeline_resume;
} aqi_options_values;

struct aq_options {
    aq_context *ctx;
    aqi_options_values v;
};

/* The defaults, for callers that pass options == NULL. */
void aqi_options_defaults(aqi_options_values *v);

/* The options whose values differ from their defaults, as "NAME=value,NAME=value" in key order
 * (values exact: %lld or %.17g), skipping the key @p skip_key (0: none). Truncates to @p size;
 * returns the length it needed. */
size_t aqi_options_describe(const aqi_options_values *v, int32_t skip_key, char *buf, size_t size);

#endif

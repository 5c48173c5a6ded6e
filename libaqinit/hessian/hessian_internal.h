/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Internal layout of aq_hessian, shared by hessian.c (accumulation), hessian_access.c (copies
 * with damping) and hessian_io.c (save/load). Not installed. */
#ifndef AQINIT_HESSIAN_INTERNAL_H
#define AQINIT_HESSIAN_INTERNAL_H

#include "core/internal.h"

/* H = XᵀX / n as a running mean in double. Only the upper triangle (row-major, j >= i) of the
 * n_inputs × n_inputs array is kept up to date (cblas_dsyrk with CblasUpper); the strict lower
 * triangle stays zero. */
struct aq_hessian {
    aq_context *ctx;
    int64_t n_inputs;
    int64_t n_samples;
    int64_t n_pending;    /* rows of aq_hessian_add calls in flight, counted against overflow */
    double *matrix;       /* n_inputs × n_inputs, leading dimension n_inputs */
    pthread_mutex_t lock; /* guards matrix, n_samples and n_pending */
};

/* Largest n_inputs accepted: BLAS sizes are int. */
#define AQI_HESSIAN_MAX_INPUTS 2147483647LL

/* Allocate an empty handle (n = 0, matrix zeroed) after checking n_inputs; @p fn names the
 * public function in error messages. Free it with aq_hessian_free(). */
int aqi_hessian_new(aq_hessian **out, aq_context *ctx, int64_t n_inputs, const char *fn);

/* FNV-1a 64 of n_inputs, n_samples and the upper triangle of H, bit for bit: equal for the same
 * statistics accumulated in the same order. */
uint64_t aqi_hessian_fingerprint(const aq_hessian *h);

/* scale·(H + λ·mean(diag H)·I) rounded to float, n_inputs × n_inputs (leading dimension
 * n_inputs), without a double copy: the upper triangle converted, then mirrored. Checks λ as
 * aq_hessian_copy_matrix (@p fn names the caller). */
int aqi_hessian_copy_float(const aq_hessian *h, float *out, double rel_damping, double scale, const char *fn);

/* max |H_ij| (of the undamped matrix). */
double aqi_hessian_max_abs(const aq_hessian *h);

/* Lock/unlock a handle, including one the caller sees as const (the lock is not part of
 * its logical state). */
void aqi_hessian_lock(const aq_hessian *h);
void aqi_hessian_unlock(const aq_hessian *h);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Finiteness checks of caller-supplied arrays. */
#include <math.h>

#include "core/internal.h"

int aqi_all_finite_f64(const double *x, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *row = x + r * ld;
        double acc = 0.0;
        for (int64_t c = 0; c < cols; c++)
            acc += row[c] * 0.0;
        if (acc != 0.0)
            return 0;
    }
    return 1;
}

int aqi_check_ld(aq_context *ctx, const char *fn, const char *what, int64_t rows, int64_t cols, int64_t ld,
                 size_t elem)
{
    size_t bytes;
    if (ld < cols || ld < 1)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: ld %lld of %s < %lld columns", fn, (long long)ld, what,
                        (long long)cols);
    if (ld > INT32_MAX)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: ld %lld of %s exceeds the BLAS index range (2^31 - 1)", fn,
                        (long long)ld, what);
    if (rows <= 0)
        return AQ_OK;
    if (rows - 1 > (INT64_MAX - cols) / ld)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: %lld rows of %s with ld %lld overflow", fn, (long long)rows,
                        what, (long long)ld);
    return aqi_bytes(ctx, &bytes, (rows - 1) * ld + cols, elem, fn);
}

/* Largest |x|, or −1 if some element is NaN or Inf. */
static float max_abs_or_nonfinite(const float *x, int64_t rows, int64_t cols, int64_t ld)
{
    float max_abs = 0.0f;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * ld;
        float acc = 0.0f;
        /* x*0 is 0 for finite x and NaN for NaN/Inf: one branch-free pass per row. */
        for (int64_t c = 0; c < cols; c++) {
            float a = fabsf(row[c]);
            acc += row[c] * 0.0f;
            max_abs = a > max_abs ? a : max_abs;
        }
        if (acc != 0.0f)
            return -1.0f;
    }
    return max_abs;
}

int aqi_all_finite_f32(const float *x, int64_t rows, int64_t cols, int64_t ld)
{
    return max_abs_or_nonfinite(x, rows, cols, ld) >= 0.0f;
}

int aqi_check_weights(aq_context *ctx, const char *fn, const char *what, const float *W, int64_t rows,
                      int64_t cols, int64_t ld)
{
    float max_abs = max_abs_or_nonfinite(W, rows, cols, ld);
    if (max_abs < 0.0f)
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: %s contains NaN or Inf", fn, what);
    if (max_abs > AQI_MAX_ABS_WEIGHT)
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: %s holds |value| %g, above the %g that float arithmetic "
                        "(scales, distances, W·H) can carry without overflow", fn, what, (double)max_abs,
                        AQI_MAX_ABS_WEIGHT);
    return AQ_OK;
}

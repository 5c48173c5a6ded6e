/* Finiteness checks of caller-supplied arrays. */
#include <math.h>

#include "core/internal.h"

int aqi_all_finite_f32(const float *x, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * ld;
        float acc = 0.0f;
        /* x*0 is 0 for finite x and NaN for NaN/Inf: one branch-free pass per row. */
        for (int64_t c = 0; c < cols; c++)
            acc += row[c] * 0.0f;
        if (acc != 0.0f)
            return 0;
    }
    return 1;
}

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

/* Fused "score + argmin" kernel of the E-step (see assign.h).
 *
 * Written with GCC/Clang vector extensions and compiled once per instruction set from
 * assign_body.h — 16 floats per vector for AVX-512, 8 for AVX2, 4 otherwise — and chosen at run
 * time. Four points share each load of a centroid block. */
/* s += q·c may fuse into one FMA: the scores only rank centroids. */
#pragma GCC optimize("fp-contract=fast")

#include <float.h>
#include <string.h>

#include "assign.h"

#define AQI_CAT_(a, b) a##b
#define AQI_CAT(a, b) AQI_CAT_(a, b)

void aqi_assign_transpose(float *CT, const float *C, int64_t K, int64_t Kp, int64_t D)
{
    for (int64_t d = 0; d < D; d++) {
        float *row = CT + d * Kp;
        for (int64_t k = 0; k < K; k++)
            row[k] = C[k * D + d];
        for (int64_t k = K; k < Kp; k++)
            row[k] = 0.0f;
    }
}

void aqi_assign_pad_table(float *table, int64_t K, int64_t Kp)
{
    for (int64_t k = K; k < Kp; k++)
        table[k] = FLT_MAX;
}

typedef void (*argmin_fn)(const float *, int64_t, int64_t, const float *, const float *, int64_t, int64_t,
                          int32_t *, int64_t, float *);

#define AQI_VL 4
#define AQI_NAME(x) AQI_CAT(x, _generic)
#define AQI_TARGET
#include "assign_body.h"
#undef AQI_VL
#undef AQI_NAME
#undef AQI_TARGET

#if defined(__GNUC__) && defined(__x86_64__)
#  define AQI_ASSIGN_X86 1
#  define AQI_VL 8
#  define AQI_NAME(x) AQI_CAT(x, _avx2)
#  define AQI_TARGET __attribute__((target("avx2,fma")))
#  include "assign_body.h"
#  undef AQI_VL
#  undef AQI_NAME
#  undef AQI_TARGET
#  define AQI_VL 16
#  define AQI_NAME(x) AQI_CAT(x, _avx512)
#  define AQI_TARGET __attribute__((target("avx512f")))
#  include "assign_body.h"
#  undef AQI_VL
#  undef AQI_NAME
#  undef AQI_TARGET
#endif

static argmin_fn pick_kernel(void)
{
#ifdef AQI_ASSIGN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return argmin_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return argmin_avx2;
#endif
    return argmin_generic;
}

void aqi_assign_argmin(const float *Q, int64_t n, int64_t ldq, const float *CT, const float *table,
                       int64_t D, int64_t Kp, int32_t *codes, int64_t code_stride, float *best)
{
    static argmin_fn kernel; /* chosen once; every thread computes the same value */
    argmin_fn fn = __atomic_load_n(&kernel, __ATOMIC_RELAXED);
    if (!fn) {
        fn = pick_kernel();
        __atomic_store_n(&kernel, fn, __ATOMIC_RELAXED);
    }
    fn(Q, n, ldq, CT, table, D, Kp, codes, code_stride, best);
}

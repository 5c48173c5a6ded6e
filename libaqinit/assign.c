/* Fused "score + argmin" kernel of the E-step (see assign.h).
 *
 * Written with GCC/Clang vector extensions (16 floats per vector) and compiled once per
 * instruction set with target_clones where the toolchain supports it, so one binary uses
 * AVX-512, AVX2 or SSE2 as the CPU allows. Four points share each load of a centroid block. */
/* The 64-byte vector helpers are always inlined; their nominal ABI does not matter. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* s += q·c may fuse into one FMA: the scores only rank centroids. */
#pragma GCC optimize("fp-contract=fast")

#include <float.h>
#include <string.h>

#include "assign.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#  define AQI_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define AQI_MULTIVERSION
#endif
#define AQI_INLINE static inline __attribute__((always_inline))

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

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

AQI_INLINE v16f load16(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lane-wise: where s < best, take s and its centroid index. */
AQI_INLINE void keep_min(v16f s, v16i idx, v16f *best, v16i *best_idx)
{
    v16i lt = s < *best;
    *best = (v16f)(((v16i)s & lt) | ((v16i)*best & ~lt));
    *best_idx = (idx & lt) | (*best_idx & ~lt);
}

/* Horizontal argmin over the 16 lanes; among equal values the lowest centroid index. */
AQI_INLINE void reduce_min(v16f best, v16i best_idx, int32_t *code, float *value)
{
    float v = best[0];
    int32_t k = best_idx[0];
    for (int l = 1; l < AQI_ASSIGN_KBLOCK; l++)
        if (best[l] < v || (best[l] == v && best_idx[l] < k)) {
            v = best[l];
            k = best_idx[l];
        }
    *code = k;
    *value = v;
}

static const v16i lane_index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Four points q0..q3 (already multiplied by −2) against every centroid block. */
AQI_INLINE void argmin4(const float *q0, const float *q1, const float *q2, const float *q3,
                        const float *CT, const float *table, int64_t D, int64_t Kp,
                        int32_t code[4], float value[4])
{
    v16f b0, b1, b2, b3;
    v16i i0 = {0}, i1 = {0}, i2 = {0}, i3 = {0};
    b0 = b1 = b2 = b3 = (v16f){0} + FLT_MAX;
    for (int64_t kb = 0; kb < Kp; kb += AQI_ASSIGN_KBLOCK) {
        v16f t = load16(table + kb);
        v16f s0 = t, s1 = t, s2 = t, s3 = t;
        for (int64_t d = 0; d < D; d++) {
            v16f c = load16(CT + d * Kp + kb);
            s0 += q0[d] * c;
            s1 += q1[d] * c;
            s2 += q2[d] * c;
            s3 += q3[d] * c;
        }
        v16i idx = lane_index + (int32_t)kb;
        keep_min(s0, idx, &b0, &i0);
        keep_min(s1, idx, &b1, &i1);
        keep_min(s2, idx, &b2, &i2);
        keep_min(s3, idx, &b3, &i3);
    }
    reduce_min(b0, i0, &code[0], &value[0]);
    reduce_min(b1, i1, &code[1], &value[1]);
    reduce_min(b2, i2, &code[2], &value[2]);
    reduce_min(b3, i3, &code[3], &value[3]);
}

AQI_INLINE void argmin1(const float *q0, const float *CT, const float *table, int64_t D,
                        int64_t Kp, int32_t *code, float *value)
{
    v16f b0 = (v16f){0} + FLT_MAX;
    v16i i0 = {0};
    for (int64_t kb = 0; kb < Kp; kb += AQI_ASSIGN_KBLOCK) {
        v16f s0 = load16(table + kb);
        for (int64_t d = 0; d < D; d++)
            s0 += q0[d] * load16(CT + d * Kp + kb);
        keep_min(s0, lane_index + (int32_t)kb, &b0, &i0);
    }
    reduce_min(b0, i0, code, value);
}

#define AQI_ASSIGN_MAX_STACK_D 256 /* −2·q is staged on the stack up to this dimension */

AQI_MULTIVERSION
void aqi_assign_argmin(const float *Q, int64_t n, int64_t ldq, const float *CT, const float *table,
                       int64_t D, int64_t Kp, int32_t *codes, int64_t code_stride, float *best)
{
    float qm[4][AQI_ASSIGN_MAX_STACK_D];
    int64_t step = D <= AQI_ASSIGN_MAX_STACK_D ? 4 : 1;
    for (int64_t i = 0; i < n; i += step) {
        int64_t nb = n - i < step ? n - i : step;
        int32_t code[4];
        float value[4];
        if (nb == 4) {
            for (int r = 0; r < 4; r++)
                for (int64_t d = 0; d < D; d++)
                    qm[r][d] = -2.0f * Q[(i + r) * ldq + d];
            argmin4(qm[0], qm[1], qm[2], qm[3], CT, table, D, Kp, code, value);
        } else {
            for (int64_t r = 0; r < nb; r++) {
                /* Large D (rare: g_o·g > 256) reads Q directly and scales inside. */
                if (D <= AQI_ASSIGN_MAX_STACK_D) {
                    for (int64_t d = 0; d < D; d++)
                        qm[0][d] = -2.0f * Q[(i + r) * ldq + d];
                    argmin1(qm[0], CT, table, D, Kp, &code[r], &value[r]);
                } else {
                    v16f b0 = (v16f){0} + FLT_MAX;
                    v16i i0 = {0};
                    const float *q = Q + (i + r) * ldq;
                    for (int64_t kb = 0; kb < Kp; kb += AQI_ASSIGN_KBLOCK) {
                        v16f s0 = load16(table + kb);
                        for (int64_t d = 0; d < D; d++)
                            s0 += (-2.0f * q[d]) * load16(CT + d * Kp + kb);
                        keep_min(s0, lane_index + (int32_t)kb, &b0, &i0);
                    }
                    reduce_min(b0, i0, &code[r], &value[r]);
                }
            }
        }
        for (int64_t r = 0; r < nb; r++) {
            codes[(i + r) * code_stride] = code[r];
            if (best)
                best[i + r] = value[r];
        }
    }
}

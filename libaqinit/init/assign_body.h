/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The E-step kernel for one vector width (see assign.c). Included once per instruction set with
 * AQI_VL (floats per vector: 16 for AVX-512, 8 for AVX2, 4 otherwise), AQI_NAME(x) (a suffixed
 * name) and AQI_TARGET (a function attribute selecting the instruction set). Vectors never
 * exceed the registers of their instruction set, so nothing spills to the stack. */
typedef float AQI_NAME(vf) __attribute__((vector_size(AQI_VL * 4)));
typedef int32_t AQI_NAME(vi) __attribute__((vector_size(AQI_VL * 4)));
#define VF AQI_NAME(vf)
#define VI AQI_NAME(vi)
#define INLINE AQI_TARGET static inline __attribute__((always_inline))

INLINE VF AQI_NAME(load)(const float *p)
{
    VF v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lane-wise min / max (finite scores: ties give equal values either way). The includer may
 * define AQI_VMIN / AQI_VMAX as single instructions. */
#ifdef AQI_VMIN
#  define VMIN(a, b) ((VF)AQI_VMIN(a, b))
#  define VMAX(a, b) ((VF)AQI_VMAX(a, b))
#else
#  define VMIN(a, b) ((VF)(((VI)(a) & (VI)((a) < (b))) | ((VI)(b) & ~(VI)((a) < (b)))))
#  define VMAX(a, b) ((VF)(((VI)(a) & (VI)((a) > (b))) | ((VI)(b) & ~(VI)((a) > (b)))))
#endif

/* Lane-wise: where s < best, take s and its centroid index. */
INLINE void AQI_NAME(keep_min)(VF s, VI idx, VF *best, VI *best_idx)
{
    VI lt = s < *best;
    *best = VMIN(s, *best);
    *best_idx = (idx & lt) | (*best_idx & ~lt);
}

/* Lane-wise: the second-smallest score seen, given s and the lane's best before keep_min: if
 * s < best the old best becomes a candidate, otherwise s is, i.e. max(s, best). */
INLINE void AQI_NAME(keep_second)(VF s, VF best_before, VF *second)
{
    *second = VMIN(*second, VMAX(s, best_before));
}

/* Horizontal argmin over the lanes; among equal values the lowest centroid index. With
 * @p second_lanes, *second_value is the smallest score of any centroid but the winner: the other
 * lanes' best and the winning lane's second. */
INLINE void AQI_NAME(reduce)(VF best, VI best_idx, const VF *second_lanes, int32_t *code, float *value,
                             float *second_value)
{
    float v = best[0];
    int32_t k = best_idx[0];
    int w = 0;
    for (int l = 1; l < AQI_VL; l++)
        if (best[l] < v || (best[l] == v && best_idx[l] < k)) {
            v = best[l];
            k = best_idx[l];
            w = l;
        }
    *code = k;
    *value = v;
    if (second_lanes) {
        float s2 = (*second_lanes)[w];
        for (int l = 0; l < AQI_VL; l++)
            if (l != w && best[l] < s2)
                s2 = best[l];
        *second_value = s2;
    }
}

/* Min (and, when @p top2, second-min) of s over lanes, for point r. */
#define KEEP(r, s_r, idx)                                                                         \
    do {                                                                                          \
        VF before_ = b[r];                                                                        \
        AQI_NAME(keep_min)(s_r, idx, &b[r], &bi[r]);                                              \
        if (top2)                                                                                 \
            AQI_NAME(keep_second)(s_r, before_, &b2[r]);                                          \
    } while (0)

/* Points q, nq of them (1..4), against every centroid block: s_k = t_k − 2 q·c_k. With @p top2
 * (a compile-time constant at every call) second[r] is the second-smallest score. */
INLINE void AQI_NAME(scan)(const float *const q[4], int nq, const float *CT, const float *table, int64_t D,
                           int64_t Kp, int32_t code[4], float value[4], int top2, float second[4])
{
    VF b[4], b2[4];
    VI bi[4], lane;
    for (int l = 0; l < AQI_VL; l++)
        lane[l] = l;
    for (int r = 0; r < 4; r++) {
        b[r] = b2[r] = (VF){0} + FLT_MAX;
        bi[r] = (VI){0};
    }
    if (nq == 4) {
        int64_t kb = 0;
        /* Two centroid vectors per step: each broadcast of q[r][d] feeds two FMAs, and eight
         * independent accumulator chains cover the FMA latency. The sum over d keeps its order
         * and the blocks are kept in index order, so the result equals one vector per step. */
        for (; kb + 2 * AQI_VL <= Kp; kb += 2 * AQI_VL) {
            VF s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, u0 = {0}, u1 = {0}, u2 = {0}, u3 = {0};
            for (int64_t d = 0; d < D; d++) {
                const VF c = AQI_NAME(load)(CT + d * Kp + kb), e = AQI_NAME(load)(CT + d * Kp + kb + AQI_VL);
                const float q0 = q[0][d], q1 = q[1][d], q2 = q[2][d], q3 = q[3][d];
                s0 += q0 * c;
                u0 += q0 * e;
                s1 += q1 * c;
                u1 += q1 * e;
                s2 += q2 * c;
                u2 += q2 * e;
                s3 += q3 * c;
                u3 += q3 * e;
            }
            const VF t = AQI_NAME(load)(table + kb), tu = AQI_NAME(load)(table + kb + AQI_VL);
            const VI idx = lane + (int32_t)kb, idu = idx + AQI_VL;
            KEEP(0, t - 2.0f * s0, idx);
            KEEP(0, tu - 2.0f * u0, idu);
            KEEP(1, t - 2.0f * s1, idx);
            KEEP(1, tu - 2.0f * u1, idu);
            KEEP(2, t - 2.0f * s2, idx);
            KEEP(2, tu - 2.0f * u2, idu);
            KEEP(3, t - 2.0f * s3, idx);
            KEEP(3, tu - 2.0f * u3, idu);
        }
        for (; kb < Kp; kb += AQI_VL) {
            VF t = AQI_NAME(load)(table + kb), s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (int64_t d = 0; d < D; d++) {
                VF c = AQI_NAME(load)(CT + d * Kp + kb);
                s0 += q[0][d] * c;
                s1 += q[1][d] * c;
                s2 += q[2][d] * c;
                s3 += q[3][d] * c;
            }
            s0 = t - 2.0f * s0;
            s1 = t - 2.0f * s1;
            s2 = t - 2.0f * s2;
            s3 = t - 2.0f * s3;
            VI idx = lane + (int32_t)kb;
            KEEP(0, s0, idx);
            KEEP(1, s1, idx);
            KEEP(2, s2, idx);
            KEEP(3, s3, idx);
        }
    } else {
        for (int r = 0; r < nq; r++)
            for (int64_t kb = 0; kb < Kp; kb += AQI_VL) {
                VF s = {0};
                for (int64_t d = 0; d < D; d++)
                    s += q[r][d] * AQI_NAME(load)(CT + d * Kp + kb);
                s = AQI_NAME(load)(table + kb) - 2.0f * s;
                KEEP(r, s, lane + (int32_t)kb);
            }
    }
    for (int r = 0; r < nq; r++)
        AQI_NAME(reduce)(b[r], bi[r], top2 ? &b2[r] : NULL, &code[r], &value[r], top2 ? &second[r] : NULL);
}
#undef KEEP

INLINE void AQI_NAME(argmin_d)(const float *Q, int64_t n, int64_t ldq, const float *CT, const float *table,
                               int64_t D, int64_t Kp, int32_t *codes, int64_t code_stride, float *best)
{
    for (int64_t i = 0; i < n; i += 4) {
        const int nq = n - i < 4 ? (int)(n - i) : 4;
        const float *q[4] = {Q + i * ldq, Q + (i + (nq > 1)) * ldq, Q + (i + 2 * (nq > 2)) * ldq,
                             Q + (i + 3 * (nq > 3)) * ldq};
        int32_t code[4];
        float value[4];
        AQI_NAME(scan)(q, nq, CT, table, D, Kp, code, value, 0, NULL);
        for (int r = 0; r < nq; r++) {
            codes[(i + r) * code_stride] = code[r];
            if (best)
                best[i + r] = value[r];
        }
    }
}

INLINE void AQI_NAME(top2_d)(const float *Q, const int64_t *index, int64_t n, int64_t ldq, const float *CT,
                             const float *table, int64_t D, int64_t Kp, int32_t *codes, float *best,
                             float *second)
{
    for (int64_t i = 0; i < n; i += 4) {
        const int nq = n - i < 4 ? (int)(n - i) : 4;
        const float *q[4];
        for (int r = 0; r < 4; r++)
            q[r] = Q + index[i + (r < nq ? r : 0)] * ldq;
        AQI_NAME(scan)(q, nq, CT, table, D, Kp, codes + i, best + i, 1, second + i);
    }
}

/* The common tile sizes (g = 4, 8, 16 with g_o = 1) get their own copy with D a constant, so
 * the loop over d unrolls into straight-line FMAs. */
#define AQI_FOR_COMMON_D(call)                                                                    \
    switch (D) {                                                                                  \
    case 4: call(4); break;                                                                       \
    case 8: call(8); break;                                                                       \
    case 16: call(16); break;                                                                     \
    default: call(D); break;                                                                      \
    }

AQI_TARGET static void AQI_NAME(argmin)(const float *Q, int64_t n, int64_t ldq, const float *CT,
                                       const float *table, int64_t D, int64_t Kp, int32_t *codes,
                                       int64_t code_stride, float *best)
{
#define AQI_CALL(Dc) AQI_NAME(argmin_d)(Q, n, ldq, CT, table, Dc, Kp, codes, code_stride, best)
    AQI_FOR_COMMON_D(AQI_CALL)
#undef AQI_CALL
}

AQI_TARGET static void AQI_NAME(top2)(const float *Q, const int64_t *index, int64_t n, int64_t ldq,
                                     const float *CT, const float *table, int64_t D, int64_t Kp,
                                     int32_t *codes, float *best, float *second)
{
#define AQI_CALL(Dc) AQI_NAME(top2_d)(Q, index, n, ldq, CT, table, Dc, Kp, codes, best, second)
    AQI_FOR_COMMON_D(AQI_CALL)
#undef AQI_CALL
}
#undef AQI_FOR_COMMON_D

#undef VMIN
#undef VMAX
#undef INLINE
#undef VF
#undef VI

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

/* Lane-wise: where s < best, take s and its centroid index. */
INLINE void AQI_NAME(keep_min)(VF s, VI idx, VF *best, VI *best_idx)
{
    VI lt = s < *best;
    *best = (VF)(((VI)s & lt) | ((VI)*best & ~lt));
    *best_idx = (idx & lt) | (*best_idx & ~lt);
}

/* Horizontal argmin over the lanes; among equal values the lowest centroid index. */
INLINE void AQI_NAME(reduce)(VF best, VI best_idx, int32_t *code, float *value)
{
    float v = best[0];
    int32_t k = best_idx[0];
    for (int l = 1; l < AQI_VL; l++)
        if (best[l] < v || (best[l] == v && best_idx[l] < k)) {
            v = best[l];
            k = best_idx[l];
        }
    *code = k;
    *value = v;
}

/* Points q, nq of them (1..4), against every centroid block: s_k = t_k − 2 q·c_k. */
INLINE void AQI_NAME(scan)(const float *const q[4], int nq, const float *CT, const float *table, int64_t D,
                           int64_t Kp, int32_t code[4], float value[4])
{
    VF b[4];
    VI bi[4], lane;
    for (int l = 0; l < AQI_VL; l++)
        lane[l] = l;
    for (int r = 0; r < 4; r++) {
        b[r] = (VF){0} + FLT_MAX;
        bi[r] = (VI){0};
    }
    if (nq == 4) {
        for (int64_t kb = 0; kb < Kp; kb += AQI_VL) {
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
            AQI_NAME(keep_min)(s0, idx, &b[0], &bi[0]);
            AQI_NAME(keep_min)(s1, idx, &b[1], &bi[1]);
            AQI_NAME(keep_min)(s2, idx, &b[2], &bi[2]);
            AQI_NAME(keep_min)(s3, idx, &b[3], &bi[3]);
        }
    } else {
        for (int r = 0; r < nq; r++)
            for (int64_t kb = 0; kb < Kp; kb += AQI_VL) {
                VF s = {0};
                for (int64_t d = 0; d < D; d++)
                    s += q[r][d] * AQI_NAME(load)(CT + d * Kp + kb);
                AQI_NAME(keep_min)(AQI_NAME(load)(table + kb) - 2.0f * s, lane + (int32_t)kb, &b[r], &bi[r]);
            }
    }
    for (int r = 0; r < nq; r++)
        AQI_NAME(reduce)(b[r], bi[r], &code[r], &value[r]);
}

AQI_TARGET static void AQI_NAME(argmin)(const float *Q, int64_t n, int64_t ldq, const float *CT,
                                       const float *table, int64_t D, int64_t Kp, int32_t *codes,
                                       int64_t code_stride, float *best)
{
    for (int64_t i = 0; i < n; i += 4) {
        const int nq = n - i < 4 ? (int)(n - i) : 4;
        const float *q[4] = {Q + i * ldq, Q + (i + (nq > 1)) * ldq, Q + (i + 2 * (nq > 2)) * ldq,
                             Q + (i + 3 * (nq > 3)) * ldq};
        int32_t code[4];
        float value[4];
        AQI_NAME(scan)(q, nq, CT, table, D, Kp, code, value);
        for (int r = 0; r < nq; r++) {
            codes[(i + r) * code_stride] = code[r];
            if (best)
                best[i + r] = value[r];
        }
    }
}

#undef INLINE
#undef VF
#undef VI

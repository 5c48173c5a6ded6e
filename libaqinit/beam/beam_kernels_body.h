/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Bodies of the beam-search kernels, included by beam_kernels.c once per instruction set with
 *   VW      lanes per vector: 16 (AVX-512), 8 (AVX2), 4 (SSE2, NEON), or 0 for plain loops;
 *   KN(n)   the name of this variant of n.
 * Vectors are never wider than the target's registers (GCC keeps wider generic vectors in
 * memory), and every element is computed by the same operations in the same order in every
 * variant and every path (blocks, edges, plain loops), so all variants give the same bits.
 * Equations: (B2) scores, (B3)/(B4) rank-g updates and products, in beam.c. */

#if VW
#  define NV (AQI_SCORE_LANES / VW) /* vectors per block of AQI_SCORE_LANES lanes */
typedef float KN(vf) __attribute__((vector_size(VW * 4)));
typedef int32_t KN(vi) __attribute__((vector_size(VW * 4)));
#  define VF KN(vf)
#  define VI KN(vi)
#  define LOADV(v, p) memcpy(&(v), (p), sizeof(v))
#  define STOREV(p, v) memcpy((p), &(v), sizeof(v))
/* lanes of a where the mask is set, else lanes of b */
#  define SELECT(mask, a, b) ((VF)(((VI)(a) & (mask)) | ((VI)(b) & ~(mask))))
typedef float KN(q4f) __attribute__((vector_size(16)));
typedef int32_t KN(q4i) __attribute__((vector_size(16)));
#  if VW >= 8
typedef float KN(h8f) __attribute__((vector_size(32)));
typedef int32_t KN(h8i) __attribute__((vector_size(32)));
#  endif
/* q (4 lanes) = the lane-wise minimum (OP_MIN) or bitwise or (OP_OR) of the 4-lane quarters of
 * the vector x; F: float (min) or int32 (or) flavour. Halving through 32- and 16-byte vectors. */
#  define Q4_MIN2(dst, a, b, QI) do { QI l_ = (a) < (b); (dst) = (__typeof__(dst))(((QI)(a) & l_) | ((QI)(b) & ~l_)); } while (0)
#  if VW == 16 && AQI_SHUFFLE
#    define HALVES(lo, hi, x)                                                                     \
    ((lo) = __builtin_shufflevector((x), (x), 0, 1, 2, 3, 4, 5, 6, 7),                            \
     (hi) = __builtin_shufflevector((x), (x), 8, 9, 10, 11, 12, 13, 14, 15))
#    define QUARTERS(a, b, x)                                                                     \
    ((a) = __builtin_shufflevector((x), (x), 0, 1, 2, 3), (b) = __builtin_shufflevector((x), (x), 4, 5, 6, 7))
#  elif VW == 8 && AQI_SHUFFLE
#    define QUARTERS(a, b, x)                                                                     \
    ((a) = __builtin_shufflevector((x), (x), 0, 1, 2, 3), (b) = __builtin_shufflevector((x), (x), 4, 5, 6, 7))
#  else /* through memory */
#    define HALVES(lo, hi, x) (memcpy(&(lo), &(x), 32), memcpy(&(hi), (const char *)&(x) + 32, 32))
#    define QUARTERS(a, b, x) (memcpy(&(a), &(x), 16), memcpy(&(b), (const char *)&(x) + 16, 16))
#  endif
#  if VW == 16
#    define QUARTER_MIN(q, x)                                                                     \
    do {                                                                                         \
        KN(h8f) lo_, hi_;                                                                        \
        KN(q4f) a_, b_;                                                                          \
        HALVES(lo_, hi_, x);                                                                     \
        Q4_MIN2(lo_, lo_, hi_, KN(h8i));                                                         \
        QUARTERS(a_, b_, lo_);                                                                   \
        Q4_MIN2(q, a_, b_, KN(q4i));                                                             \
    } while (0)
#    define QUARTER_OR(q, x)                                                                      \
    do {                                                                                         \
        KN(h8i) lo_, hi_;                                                                        \
        KN(q4i) a_, b_;                                                                          \
        HALVES(lo_, hi_, x);                                                                     \
        lo_ |= hi_;                                                                              \
        QUARTERS(a_, b_, lo_);                                                                   \
        (q) = a_ | b_;                                                                           \
    } while (0)
#  elif VW == 8
#    define QUARTER_MIN(q, x)                                                                     \
    do {                                                                                         \
        KN(q4f) a_, b_;                                                                          \
        QUARTERS(a_, b_, x);                                                                     \
        Q4_MIN2(q, a_, b_, KN(q4i));                                                             \
    } while (0)
#    define QUARTER_OR(q, x)                                                                      \
    do {                                                                                         \
        KN(q4i) a_, b_;                                                                          \
        QUARTERS(a_, b_, x);                                                                     \
        (q) = a_ | b_;                                                                           \
    } while (0)
#  else
#    define QUARTER_MIN(q, x) memcpy(&(q), &(x), 16)
#    define QUARTER_OR(q, x) memcpy(&(q), &(x), 16)
#  endif
#endif

/* out[r][k] = t[k] + Σ_d U[r][d]·CT[d][k], rows in blocks of 4. */
static void KN(score_tile)(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                           int64_t ldct, const float *t, int64_t kt, float *out, int64_t ldo)
{
    for (int64_t r = 0; r < n_rows; r += 4) {
        float *o = out + r * ldo;
#if VW
        const float *u0 = U + r * ldu, *u1 = u0 + ldu, *u2 = u1 + ldu, *u3 = u2 + ldu;
        for (int64_t k = 0; k < kt; k += VW) {
            VF a0, a1, a2, a3, c;
            LOADV(a0, t + k);
            a1 = a2 = a3 = a0;
            for (int32_t d = 0; d < D; d++) {
                LOADV(c, CT + d * ldct + k);
                a0 += u0[d] * c;
                a1 += u1[d] * c;
                a2 += u2[d] * c;
                a3 += u3[d] * c;
            }
            STOREV(o + k, a0);
            STOREV(o + ldo + k, a1);
            STOREV(o + 2 * ldo + k, a2);
            STOREV(o + 3 * ldo + k, a3);
        }
#else
        for (int i = 0; i < 4; i++)
            for (int64_t k = 0; k < kt; k++) {
                float acc = t[k];
                for (int32_t d = 0; d < D; d++)
                    acc += U[(r + i) * ldu + d] * CT[d * ldct + k];
                o[i * ldo + k] = acc;
            }
#endif
    }
}

/* The scores of score_tile folded into running lane-wise minima (lmin, lidx: [row][16]); the
 * score of codeword a[r] into score_a[r] when it lies in the tile. Rows in blocks of RB. */
static void KN(score_min_tile)(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                               int64_t ldct, const float *t, int64_t kt, int32_t k_base, const int32_t *a,
                               float *lmin, int32_t *lidx, float *score_a)
{
#if VW
    enum { RB = VW == 16 ? 8 : 4 }; /* 3·RB + 2 vectors stay in registers */
    for (int64_t r = 0; r < n_rows; r += RB)
        for (int v = 0; v < NV; v++) { /* lanes v·VW … v·VW + VW − 1 of every block of 16 */
            const float *u[RB];
            VF m[RB], acc[RB], c;
            VI x[RB], lane, kk;
            for (int l = 0; l < VW; l++)
                lane[l] = v * VW + l;
            for (int i = 0; i < RB; i++) {
                u[i] = U + (r + i) * ldu;
                LOADV(m[i], lmin + (r + i) * AQI_SCORE_LANES + v * VW);
                LOADV(x[i], lidx + (r + i) * AQI_SCORE_LANES + v * VW);
            }
            for (int64_t k = 0; k < kt; k += AQI_SCORE_LANES) {
                LOADV(acc[0], t + k + v * VW);
                for (int i = 1; i < RB; i++)
                    acc[i] = acc[0];
                for (int32_t d = 0; d < D; d++) {
                    LOADV(c, CT + d * ldct + k + v * VW);
                    for (int i = 0; i < RB; i++)
                        acc[i] += u[i][d] * c;
                }
                kk = lane + (int32_t)(k_base + k);
                for (int i = 0; i < RB; i++) {
                    VI less = acc[i] < m[i];
                    m[i] = SELECT(less, acc[i], m[i]);
                    x[i] = (kk & less) | (x[i] & ~less);
                }
            }
            for (int i = 0; i < RB; i++) {
                STOREV(lmin + (r + i) * AQI_SCORE_LANES + v * VW, m[i]);
                STOREV(lidx + (r + i) * AQI_SCORE_LANES + v * VW, x[i]);
            }
        }
    /* the current codeword's score, by the same operations */
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t off = (int64_t)a[r] - k_base;
        if (off >= 0 && off < kt) {
            float acc = t[off];
            for (int32_t d = 0; d < D; d++)
                acc += U[r * ldu + d] * CT[d * ldct + off];
            score_a[r] = acc;
        }
    }
#else
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t k = 0; k < kt; k += AQI_SCORE_LANES)
            for (int l = 0; l < AQI_SCORE_LANES; l++) {
                float acc = t[k + l];
                for (int32_t d = 0; d < D; d++)
                    acc += U[r * ldu + d] * CT[d * ldct + k + l];
                float *mi = lmin + r * AQI_SCORE_LANES + l;
                if (acc < *mi) {
                    *mi = acc;
                    lidx[r * AQI_SCORE_LANES + l] = (int32_t)(k_base + k + l);
                }
                if (a[r] == k_base + k + l)
                    score_a[r] = acc;
            }
#endif
}

/* t[k] = Σ_r c_{k,r}ᵀ Hjj c_{k,r} for k < kt (a multiple of 16), c_{k,r}[e] = CT[r·g + e][k]:
 * the tables of (B2). Per element: acc = 0; for r, d: y = Σ_e Hjj[d][e]·c[e] (in order);
 * acc += c[d]·y. */
static void KN(table_tile)(const float *CT, int64_t ldct, int32_t go, int32_t g, const float *Hjj,
                           int64_t ldh, int64_t kt, float *t)
{
#if VW
    for (int64_t k = 0; k < kt; k += VW) {
        VF acc = (VF){0}, y, ce, cd;
        for (int32_t r = 0; r < go; r++)
            for (int32_t d = 0; d < g; d++) {
                y = (VF){0};
                for (int32_t e = 0; e < g; e++) {
                    LOADV(ce, CT + (int64_t)(r * g + e) * ldct + k);
                    y += Hjj[d * ldh + e] * ce;
                }
                LOADV(cd, CT + (int64_t)(r * g + d) * ldct + k);
                acc += cd * y;
            }
        STOREV(t + k, acc);
    }
#else
    for (int64_t k = 0; k < kt; k++) {
        float acc = 0.0f;
        for (int32_t r = 0; r < go; r++)
            for (int32_t d = 0; d < g; d++) {
                float y = 0.0f;
                for (int32_t e = 0; e < g; e++)
                    y += Hjj[d * ldh + e] * CT[(int64_t)(r * g + e) * ldct + k];
                acc += CT[(int64_t)(r * g + d) * ldct + k] * y;
            }
        t[k] = acc;
    }
#endif
}

/* Lane-wise minima of v[0..n) (n a multiple of 16): lv[l] = min over k ≡ l, and if li is not
 * NULL its first index (−1 if no value is below +inf). NaN never wins. */
static void KN(lane_min_tile)(const float *v, int64_t n, float *lv, int32_t *li)
{
#if VW
    for (int w = 0; w < NV; w++) {
        VF vmin = (VF){0} + INFINITY, x;
        VI vidx = (VI){0} - 1, lane;
        for (int l = 0; l < VW; l++)
            lane[l] = w * VW + l;
        for (int64_t k = 0; k < n; k += AQI_SCORE_LANES) {
            LOADV(x, v + k + w * VW);
            VI less = x < vmin;
            vmin = SELECT(less, x, vmin);
            if (li)
                vidx = ((lane + (int32_t)k) & less) | (vidx & ~less);
        }
        STOREV(lv + w * VW, vmin);
        if (li)
            STOREV(li + w * VW, vidx);
    }
#else
    for (int l = 0; l < AQI_SCORE_LANES; l++) {
        lv[l] = INFINITY;
        if (li)
            li[l] = -1;
    }
    for (int64_t k = 0; k < n; k += AQI_SCORE_LANES)
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            if (v[k + l] < lv[l]) {
                lv[l] = v[k + l];
                if (li)
                    li[l] = (int32_t)(k + l);
            }
#endif
}

/* Indices k < n with v[k] <= bound, increasing, into idx; returns their number. */
static int32_t KN(filter_tile)(const float *v, int64_t n, float bound, int32_t *idx)
{
    int32_t count = 0;
#if VW == 16 && defined(AQI_X86_MASKS)
    const __m512 b = _mm512_set1_ps(bound);
    for (int64_t k = 0; k < n; k += AQI_SCORE_LANES)
        for (uint32_t bits = (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(v + k), b, _CMP_LE_OQ); bits;
             bits &= bits - 1)
            idx[count++] = (int32_t)k + __builtin_ctz(bits);
#elif VW == 8 && defined(AQI_X86_MASKS)
    const __m256 b = _mm256_set1_ps(bound);
    for (int64_t k = 0; k < n; k += AQI_SCORE_LANES) {
        uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + k), b, _CMP_LE_OQ))
                        | (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + k + 8), b, _CMP_LE_OQ)) << 8;
        for (; bits; bits &= bits - 1)
            idx[count++] = (int32_t)k + __builtin_ctz(bits);
    }
#elif VW
    VI bit;
    for (int l = 0; l < VW; l++)
        bit[l] = 1 << l;
    for (int64_t k = 0; k < n; k += AQI_SCORE_LANES) {
        uint32_t bits = 0;
        for (int w = 0; w < NV; w++) {
            VF x;
            KN(q4i) q;
            LOADV(x, v + k + w * VW);
            VI b = (x <= bound) & bit;
            QUARTER_OR(q, b);
            bits |= (uint32_t)(q[0] | q[1] | q[2] | q[3]) << (w * VW);
        }
        for (; bits; bits &= bits - 1)
            idx[count++] = (int32_t)k + __builtin_ctz(bits);
    }
#else
    for (int64_t k = 0; k < n; k++) {
        idx[count] = (int32_t)k;
        count += v[k] <= bound;
    }
#endif
    return count;
}

/* The w-th smallest of the lane minima of v[0..n) (n a multiple of 16): take out the smallest
 * w times (equal minima together, which can only raise the result); +inf if there are fewer. */
static float KN(kth_bound_tile)(const float *v, int64_t n, int32_t w)
{
#if VW
    VF lv[NV], x;
    float m = INFINITY;
    for (int q = 0; q < NV; q++) {
        lv[q] = (VF){0} + INFINITY;
        for (int64_t k = 0; k < n; k += AQI_SCORE_LANES) {
            LOADV(x, v + k + q * VW);
            VI less = x < lv[q];
            lv[q] = SELECT(less, x, lv[q]);
        }
    }
    for (int32_t i = 0; i < w; i++) {
        VF all = lv[0];
        KN(q4f) q4;
        for (int q = 1; q < NV; q++) {
            VI less = lv[q] < all;
            all = SELECT(less, lv[q], all);
        }
        QUARTER_MIN(q4, all);
        float m01 = q4[0] < q4[1] ? q4[0] : q4[1], m23 = q4[2] < q4[3] ? q4[2] : q4[3];
        m = m01 < m23 ? m01 : m23;
        for (int q = 0; q < NV; q++) {
            VI hit = lv[q] == m;
            lv[q] = SELECT(hit, (VF){0} + INFINITY, lv[q]);
        }
    }
    return m;
#else
    float lv[AQI_SCORE_LANES], m = INFINITY;
    KN(lane_min_tile)(v, n, lv, NULL);
    for (int32_t i = 0; i < w; i++) {
        m = INFINITY;
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            m = lv[l] < m ? lv[l] : m;
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            lv[l] = lv[l] == m ? INFINITY : lv[l];
    }
    return m;
#endif
}

/* For each of n rows: G_r[0..ncols) += Σ_d coef_r[d]·Hrows[d][0..ncols). */
static void KN(rank_g_update)(float *const *G, const float *const *coef, int64_t n, int32_t g,
                              const float *Hrows, int64_t ldh, int64_t ncols)
{
    enum { BATCH = 4 };
    /* Batches of rows share each chunk of H rows while it is in L1. */
    for (int64_t r0 = 0; r0 < n; r0 += BATCH) {
        int64_t nb = n - r0 < BATCH ? n - r0 : BATCH;
        int64_t x = 0;
#if VW
        for (; x + 4 * VW <= ncols; x += 4 * VW)
            for (int64_t r = r0; r < r0 + nb; r++) {
                float *gr = G[r] + x;
                const float *cf = coef[r];
                VF a0, a1, a2, a3, h0, h1, h2, h3;
                LOADV(a0, gr);
                LOADV(a1, gr + VW);
                LOADV(a2, gr + 2 * VW);
                LOADV(a3, gr + 3 * VW);
                for (int32_t d = 0; d < g; d++) {
                    const float *h = Hrows + d * ldh + x;
                    float cd = cf[d];
                    LOADV(h0, h);
                    LOADV(h1, h + VW);
                    LOADV(h2, h + 2 * VW);
                    LOADV(h3, h + 3 * VW);
                    a0 += cd * h0;
                    a1 += cd * h1;
                    a2 += cd * h2;
                    a3 += cd * h3;
                }
                STOREV(gr, a0);
                STOREV(gr + VW, a1);
                STOREV(gr + 2 * VW, a2);
                STOREV(gr + 3 * VW, a3);
            }
#endif
        for (int64_t r = r0; r < r0 + nb; r++) {
            int64_t y = x;
#if VW
            for (; y + VW <= ncols; y += VW) {
                VF acc, h;
                LOADV(acc, G[r] + y);
                for (int32_t d = 0; d < g; d++) {
                    LOADV(h, Hrows + d * ldh + y);
                    acc += coef[r][d] * h;
                }
                STOREV(G[r] + y, acc);
            }
#endif
            for (; y < ncols; y++) {
                float acc = G[r][y];
                for (int32_t d = 0; d < g; d++)
                    acc += coef[r][d] * Hrows[d * ldh + y];
                G[r][y] = acc;
            }
        }
    }
}

/* C = A·B for n rows (nc a multiple of 16): blocks of 4 rows × CB vectors in registers, k in
 * blocks of PRODUCT_KB so that B's block stays in L2; each element accumulates over k = 0, 1, …
 * in order in every path. */
static void KN(product_rows)(const float *A, int64_t lda, int64_t n, int64_t kdim, const float *B,
                             int64_t ldb, int64_t nc, float *C, int64_t ldc)
{
    for (int64_t r = 0; r < n; r++)
        memset(C + r * ldc, 0, sizeof(float) * (size_t)nc);
    for (int64_t k0 = 0; k0 < kdim; k0 += PRODUCT_KB) {
        int64_t k1 = k0 + PRODUCT_KB < kdim ? k0 + PRODUCT_KB : kdim;
#if VW
        enum { CB = VW == 16 ? 4 : 2 }; /* 4·CB accumulators + CB loads in registers */
        for (int64_t r = 0; r < n; r += 4) {
            int64_t nr = n - r < 4 ? n - r : 4, c = 0;
            if (nr == 4)
                for (; c + CB * VW <= nc; c += CB * VW) {
                    const float *a0 = A + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
                    VF x[4][CB], b[CB];
                    for (int i = 0; i < 4; i++)
                        for (int q = 0; q < CB; q++)
                            LOADV(x[i][q], C + (r + i) * ldc + c + q * VW);
                    for (int64_t k = k0; k < k1; k++) {
                        const float *bk = B + k * ldb + c;
                        float s0 = a0[k], s1 = a1[k], s2 = a2[k], s3 = a3[k];
                        for (int q = 0; q < CB; q++)
                            LOADV(b[q], bk + q * VW);
                        for (int q = 0; q < CB; q++) {
                            x[0][q] += s0 * b[q];
                            x[1][q] += s1 * b[q];
                            x[2][q] += s2 * b[q];
                            x[3][q] += s3 * b[q];
                        }
                    }
                    for (int i = 0; i < 4; i++)
                        for (int q = 0; q < CB; q++)
                            STOREV(C + (r + i) * ldc + c + q * VW, x[i][q]);
                }
            /* edges: one row and one vector at a time */
            for (int64_t i = 0; i < nr; i++)
                for (int64_t cc = c; cc < nc; cc += VW) {
                    const float *ai = A + (r + i) * lda;
                    float *ci = C + (r + i) * ldc + cc;
                    VF x, b;
                    LOADV(x, ci);
                    for (int64_t k = k0; k < k1; k++) {
                        LOADV(b, B + k * ldb + cc);
                        x += ai[k] * b;
                    }
                    STOREV(ci, x);
                }
        }
#else
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < nc; c++) {
                float x = C[r * ldc + c];
                for (int64_t k = k0; k < k1; k++)
                    x += A[r * lda + k] * B[k * ldb + c];
                C[r * ldc + c] = x;
            }
#endif
    }
}

/* lb[i] = Σ_d max(box[d] − qT[d][i], qT[d][i] − box[D + d], 0)² − sub[i] for the 8 rows i (the
 * box bounds (N2) of beam_nn.c), in double; a NaN coordinate contributes 0. */
static void KN(box_bounds8)(const float *box, int32_t D, const double *qT, const double *sub, double *lb)
{
#if VW
    typedef double vd __attribute__((vector_size(VW * 4)));
    typedef int64_t vl __attribute__((vector_size(VW * 4)));
    enum { NL = VW / 2, NB = 8 / (VW / 2) }; /* doubles per vector, vectors per 8 rows */
    vd acc[NB], q, x, y, zero = (vd){0};
    for (int b = 0; b < NB; b++)
        acc[b] = zero;
    for (int32_t d = 0; d < D; d++) {
        const double lo = (double)box[d], hi = (double)box[D + d];
        for (int b = 0; b < NB; b++) {
            memcpy(&q, qT + d * 8 + b * NL, sizeof q);
            x = lo - q;
            y = q - hi;
            vl m = x > y;
            x = (vd)(((vl)x & m) | ((vl)y & ~m));
            x = (vd)((vl)x & (x > zero));
            acc[b] += x * x;
        }
    }
    for (int b = 0; b < NB; b++) {
        memcpy(&q, sub + b * NL, sizeof q);
        acc[b] -= q;
        memcpy(lb + b * NL, &acc[b], sizeof acc[b]);
    }
#else
    for (int i = 0; i < 8; i++) {
        double acc = 0.0;
        for (int32_t d = 0; d < D; d++) {
            double x = (double)box[d] - qT[d * 8 + i], y = qT[d * 8 + i] - (double)box[D + d];
            x = x > y ? x : y;
            x = x > 0.0 ? x : 0.0;
            acc += x * x;
        }
        lb[i] = acc - sub[i];
    }
#endif
}

#if VW
#  undef NV
#  undef VF
#  undef VI
#  undef LOADV
#  undef STOREV
#  undef SELECT
#  undef Q4_MIN2
#  undef QUARTER_MIN
#  undef QUARTER_OR
#  undef HALVES
#  undef QUARTERS
#endif

/* Kernels of the beam search (beam.c): candidate scores (equation B2 there), their scans, and
 * the rank-g update of G (B3). With GCC/Clang they use generic 16-float vectors (one AVX-512
 * register, two AVX2 or four SSE registers); otherwise plain loops. Both compute every element
 * in the same order (acc = t; acc += u[0]·c[0]; acc += u[1]·c[1]; …), so all variants give
 * the same bits. */
#include <math.h>
#include <string.h>

#include "beam_internal.h"

#if AQI_VECTORS
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
#  define LOAD16(v, p) LOAD_VEC(v, p)
#  define STORE16(p, v) STORE_VEC(p, v)
#endif

AQI_KERNEL
void aqi_score_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                    int64_t ldct, const float *t, int64_t kt, float *out, int64_t ldo)
{
    for (int64_t r = 0; r < n_rows; r += AQI_SCORE_ROWS) {
        float *o = out + r * ldo;
        for (int64_t k = 0; k < kt; k += AQI_SCORE_LANES) {
#if AQI_VECTORS
            const float *u0 = U + r * ldu, *u1 = u0 + ldu, *u2 = u1 + ldu, *u3 = u2 + ldu;
            vf16 a0, a1, a2, a3, c;
            LOAD16(a0, t + k);
            a1 = a2 = a3 = a0;
            for (int32_t d = 0; d < D; d++) {
                LOAD16(c, CT + d * ldct + k);
                a0 += u0[d] * c;
                a1 += u1[d] * c;
                a2 += u2[d] * c;
                a3 += u3[d] * c;
            }
            STORE16(o + k, a0);
            STORE16(o + ldo + k, a1);
            STORE16(o + 2 * ldo + k, a2);
            STORE16(o + 3 * ldo + k, a3);
#else
            for (int i = 0; i < AQI_SCORE_ROWS; i++)
                for (int l = 0; l < AQI_SCORE_LANES; l++) {
                    float acc = t[k + l];
                    for (int32_t d = 0; d < D; d++)
                        acc += U[(r + i) * ldu + d] * CT[d * ldct + k + l];
                    o[i * ldo + k + l] = acc;
                }
#endif
        }
    }
}

/* The scores of aqi_score_tile, not stored but folded into running lane-wise minima: for
 * row r and lane l, lmin[r][l] / lidx[r][l] hold the smallest score so far among the codewords
 * k ≡ l (mod lanes) and its first index (k_base + tile position). score_a[r] receives the score
 * of codeword a[r] if it lies in this tile. Every score is computed exactly as in
 * aqi_score_tile, so the two give the same bits. */
AQI_KERNEL
void aqi_score_min_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                        int64_t ldct, const float *t, int64_t kt, int32_t k_base, const int32_t *a,
                        float *lmin, int32_t *lidx, float *score_a)
{
    for (int64_t r = 0; r < n_rows; r += AQI_SCORE_ROWS) {
#if AQI_VECTORS
        const float *u0 = U + r * ldu, *u1 = u0 + ldu, *u2 = u1 + ldu, *u3 = u2 + ldu;
        vf16 m0, m1, m2, m3, a0, a1, a2, a3, c;
        vi16 x0, x1, x2, x3, less, kk, lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        LOAD16(m0, lmin + (r + 0) * AQI_SCORE_LANES);
        LOAD16(m1, lmin + (r + 1) * AQI_SCORE_LANES);
        LOAD16(m2, lmin + (r + 2) * AQI_SCORE_LANES);
        LOAD16(m3, lmin + (r + 3) * AQI_SCORE_LANES);
        LOAD_VEC(x0, lidx + (r + 0) * AQI_SCORE_LANES);
        LOAD_VEC(x1, lidx + (r + 1) * AQI_SCORE_LANES);
        LOAD_VEC(x2, lidx + (r + 2) * AQI_SCORE_LANES);
        LOAD_VEC(x3, lidx + (r + 3) * AQI_SCORE_LANES);
        for (int64_t k = 0; k < kt; k += AQI_SCORE_LANES) {
            LOAD16(a0, t + k);
            a1 = a2 = a3 = a0;
            for (int32_t d = 0; d < D; d++) {
                LOAD16(c, CT + d * ldct + k);
                a0 += u0[d] * c;
                a1 += u1[d] * c;
                a2 += u2[d] * c;
                a3 += u3[d] * c;
            }
            kk = lane + (int32_t)(k_base + k);
#  define FOLD(ai, mi, xi)                                                                    \
            less = ai < mi;                                                                   \
            mi = (vf16)(((vi16)ai & less) | ((vi16)mi & ~less));                              \
            xi = (kk & less) | (xi & ~less);
            FOLD(a0, m0, x0)
            FOLD(a1, m1, x1)
            FOLD(a2, m2, x2)
            FOLD(a3, m3, x3)
#  undef FOLD
            for (int i = 0; i < AQI_SCORE_ROWS; i++) {
                int64_t off = (int64_t)a[r + i] - (k_base + k);
                if (off >= 0 && off < AQI_SCORE_LANES) {
                    float v[AQI_SCORE_LANES];
                    vf16 ai = i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3;
                    memcpy(v, &ai, sizeof v);
                    score_a[r + i] = v[off];
                }
            }
        }
        STORE16(lmin + (r + 0) * AQI_SCORE_LANES, m0);
        STORE16(lmin + (r + 1) * AQI_SCORE_LANES, m1);
        STORE16(lmin + (r + 2) * AQI_SCORE_LANES, m2);
        STORE16(lmin + (r + 3) * AQI_SCORE_LANES, m3);
        STORE_VEC(lidx + (r + 0) * AQI_SCORE_LANES, x0);
        STORE_VEC(lidx + (r + 1) * AQI_SCORE_LANES, x1);
        STORE_VEC(lidx + (r + 2) * AQI_SCORE_LANES, x2);
        STORE_VEC(lidx + (r + 3) * AQI_SCORE_LANES, x3);
#else
        for (int i = 0; i < AQI_SCORE_ROWS; i++)
            for (int64_t k = 0; k < kt; k += AQI_SCORE_LANES)
                for (int l = 0; l < AQI_SCORE_LANES; l++) {
                    float acc = t[k + l];
                    for (int32_t d = 0; d < D; d++)
                        acc += U[(r + i) * ldu + d] * CT[d * ldct + k + l];
                    float *mi = lmin + (r + i) * AQI_SCORE_LANES + l;
                    if (acc < *mi) {
                        *mi = acc;
                        lidx[(r + i) * AQI_SCORE_LANES + l] = (int32_t)(k_base + k + l);
                    }
                    if (a[r + i] == k_base + k + l)
                        score_a[r + i] = acc;
                }
#endif
    }
}

/* Lane-wise minima of v[0..n) (n a multiple of the lane count): lv[l] = min over k ≡ l, li[l]
 * its first index (−1 if no value is below +inf). */
AQI_KERNEL
static void lane_min_tile(const float *v, int64_t n, float *lv, int32_t *li)
{
#if AQI_VECTORS
    vf16 vmin = (vf16){0} + INFINITY, x;
    vi16 vidx = (vi16){0} - 1, lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int32_t k = 0; k < (int32_t)n; k += AQI_SCORE_LANES) {
        LOAD16(x, v + k);
        vi16 less = x < vmin;
        vmin = (vf16)(((vi16)x & less) | ((vi16)vmin & ~less));
        vidx = ((lane + k) & less) | (vidx & ~less);
    }
    memcpy(lv, &vmin, sizeof vmin);
    memcpy(li, &vidx, sizeof vidx);
#else
    for (int l = 0; l < AQI_SCORE_LANES; l++) {
        lv[l] = INFINITY;
        li[l] = -1;
    }
    for (int32_t k = 0; k < (int32_t)n; k += AQI_SCORE_LANES)
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            if (v[k + l] < lv[l]) {
                lv[l] = v[k + l];
                li[l] = k + l;
            }
#endif
}

void aqi_argmin_tile(const float *v, int64_t n, float *best, int32_t *best_k)
{
    float lv[AQI_SCORE_LANES];
    int32_t li[AQI_SCORE_LANES];
    lane_min_tile(v, n, lv, li);
    *best = INFINITY;
    *best_k = -1;
    for (int l = 0; l < AQI_SCORE_LANES; l++)
        if (li[l] >= 0 && (lv[l] < *best || (lv[l] == *best && li[l] < *best_k))) {
            *best = lv[l];
            *best_k = li[l];
        }
}

/* An upper bound of the w-th smallest value of v[0..n) (w <= lane count): the w-th smallest of
 * the lane minima, each of which is a distinct element. +inf if there are fewer than w. */
float aqi_kth_bound_tile(const float *v, int64_t n, int32_t w)
{
    float lv[AQI_SCORE_LANES], best[AQI_SCORE_LANES];
    int32_t li[AQI_SCORE_LANES], nb = 0;
    lane_min_tile(v, n, lv, li);
    for (int l = 0; l < AQI_SCORE_LANES; l++) { /* the w smallest, sorted, by insertion */
        float x = lv[l];
        if (nb == w && !(x < best[w - 1]))
            continue;
        int32_t pos = nb < w ? nb++ : w - 1;
        while (pos > 0 && x < best[pos - 1]) {
            best[pos] = best[pos - 1];
            pos--;
        }
        best[pos] = x;
    }
    return nb < w ? INFINITY : best[w - 1];
}

AQI_KERNEL
int32_t aqi_filter_tile(const float *v, int64_t n, float bound, int32_t *idx)
{
    int32_t count = 0;
    for (int32_t k = 0; k < (int32_t)n; k += AQI_SCORE_LANES) {
#if AQI_VECTORS
        vf16 x;
        int32_t lanes[AQI_SCORE_LANES], any = 0;
        LOAD16(x, v + k);
        vi16 pass = x <= bound;
        memcpy(lanes, &pass, sizeof lanes);
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            any |= lanes[l];
        if (!any)
            continue;
#endif
        for (int l = 0; l < AQI_SCORE_LANES; l++) {
            idx[count] = k + l;
            count += v[k + l] <= bound;
        }
    }
    return count;
}

AQI_KERNEL
void aqi_rank_g_update(float *const *G, const float *const *coef, int64_t n, int32_t g,
                       const float *Hrows, int64_t ldh, int64_t ncols)
{
    enum { CH = 64, BATCH = 4 };
    /* Batches of rows share each chunk of H rows while it is in L1. */
    for (int64_t r0 = 0; r0 < n; r0 += BATCH) {
        int64_t nb = n - r0 < BATCH ? n - r0 : BATCH;
        int64_t x = 0;
        for (; x + CH <= ncols; x += CH)
            for (int64_t r = r0; r < r0 + nb; r++) {
                float *gr = G[r] + x;
                const float *a = coef[r];
#if AQI_VECTORS
                vf16 a0, a1, a2, a3, h0, h1, h2, h3;
                LOAD16(a0, gr);
                LOAD16(a1, gr + 16);
                LOAD16(a2, gr + 32);
                LOAD16(a3, gr + 48);
                for (int32_t d = 0; d < g; d++) {
                    const float *h = Hrows + d * ldh + x;
                    float ad = a[d];
                    LOAD16(h0, h);
                    LOAD16(h1, h + 16);
                    LOAD16(h2, h + 32);
                    LOAD16(h3, h + 48);
                    a0 += ad * h0;
                    a1 += ad * h1;
                    a2 += ad * h2;
                    a3 += ad * h3;
                }
                STORE16(gr, a0);
                STORE16(gr + 16, a1);
                STORE16(gr + 32, a2);
                STORE16(gr + 48, a3);
#else
                for (int l = 0; l < CH; l++) {
                    float acc = gr[l];
                    for (int32_t d = 0; d < g; d++)
                        acc += a[d] * Hrows[d * ldh + x + l];
                    gr[l] = acc;
                }
#endif
            }
        for (int64_t r = r0; r < r0 + nb; r++)
            for (int64_t y = x; y < ncols; y++) {
                float acc = G[r][y];
                for (int32_t d = 0; d < g; d++)
                    acc += coef[r][d] * Hrows[d * ldh + y];
                G[r][y] = acc;
            }
    }
}


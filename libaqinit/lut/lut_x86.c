/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* AVX2 and AVX-512 kernels of the LUT mat-vec (layout and contracts: lut_kernels.h).
 *
 * Accumulation with gathers: one vector lane per output row, so a block of 8 (AVX2) or 16
 * (AVX-512) rows sums its table reads without horizontal reductions. The codes of the block's
 * rows are `stride` codes apart; one 32-bit gather at offsets of (p_l − p_0)·stride codes reads 4
 * (B ≤ 8) or 2 (B > 8) consecutive codes of every lane's row, which are shifted out and used as
 * indices of table gathers. Every lane adds its terms in the order s = 0, 1, ..., as the
 * portable kernel does, so both give the same bits (lut.c picks the faster one).
 * Table build (g = 8): 8 codebook rows transposed in registers, then one FMA per table entry.
 * Direct path: one FMA per 8 codeword floats, four chains, codewords prefetched ahead. */
#include "lut/lut_kernels.h"

#ifdef AQI_LUT_X86
#include <immintrin.h>

#define AQI_AVX2 __attribute__((target("avx2,fma")))
#define AQI_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define AQI_INLINE static inline __attribute__((always_inline))

/* Lanes of the row block [r0, r0 + w): byte offset of each lane's codes from those of group
 * p(r0), and its row within the output group. Lanes past the last row repeat row r0 (their
 * reads stay in bounds; their sums are not stored). (*p, *t) is the group and offset of r0 and
 * is advanced to those of r0 + w. */
static void block_lanes(int64_t r0, int64_t rows, int64_t go, int64_t n_bytes, int w, int64_t *p, int64_t *t,
                        int32_t *off, int32_t *tl)
{
    int64_t pl = *p, tt = *t;
    for (int l = 0; l < w; l++) {
        const int in = r0 + l < rows;
        off[l] = in ? (int32_t)((pl - *p) * n_bytes) : 0;
        tl[l] = in ? (int32_t)tt : (int32_t)*t;
        if (++tt == go) {
            tt = 0;
            pl++;
        }
    }
    *p = pl;
    *t = tt;
}

/* Code of the lane whose codes start at @p base + @p off, at position s. */
AQI_INLINE int32_t lane_code(const unsigned char *base, int32_t off, int64_t s, const int wide)
{
    return wide ? ((const uint16_t *)(base + off))[s] : (base + off)[s];
}

/* ---------------------------------------------------------------- AVX2 */

/* Table index (code·g_o + t) of every lane. */
AQI_AVX2 AQI_INLINE __m256i index_avx2(__m256i code, __m256i vgo, __m256i vt, const int go1)
{
    return go1 ? code : _mm256_add_epi32(_mm256_mullo_epi32(code, vgo), vt);
}

/* Σ_s tab[s·K·g_o + idx_l(s)] for the 8 rows of one block whose codes start at @p base. */
AQI_AVX2 AQI_INLINE __m256 block_sum_avx2(const unsigned char *base, const int32_t *off, __m256i vt, __m256i vgo,
                                          const float *tab, int64_t KG, int64_t len, const int wide, const int go1)
{
    const __m256i voff = _mm256_loadu_si256((const __m256i *)off), low = _mm256_set1_epi32(wide ? 0xFFFF : 0xFF);
    const int64_t esz = wide ? 2 : 1, step = wide ? 2 : 4;
    __m256 acc = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + step <= len; s += step) {
        /* codes s .. s + step − 1 of every lane's row in one 32-bit word */
        const __m256i w = _mm256_i32gather_epi32((const int *)(const void *)(base + s * esz), voff, 1);
        if (wide) {
            const __m256i c0 = _mm256_and_si256(w, low), c1 = _mm256_srli_epi32(w, 16);
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + s * KG, index_avx2(c0, vgo, vt, go1), 4));
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + (s + 1) * KG, index_avx2(c1, vgo, vt, go1), 4));
        } else {
            const __m256i c0 = _mm256_and_si256(w, low), c1 = _mm256_and_si256(_mm256_srli_epi32(w, 8), low);
            const __m256i c2 = _mm256_and_si256(_mm256_srli_epi32(w, 16), low), c3 = _mm256_srli_epi32(w, 24);
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + s * KG, index_avx2(c0, vgo, vt, go1), 4));
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + (s + 1) * KG, index_avx2(c1, vgo, vt, go1), 4));
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + (s + 2) * KG, index_avx2(c2, vgo, vt, go1), 4));
            acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + (s + 3) * KG, index_avx2(c3, vgo, vt, go1), 4));
        }
    }
    for (; s < len; s++) { /* last positions: codes read one by one (a word would pass the row) */
        int32_t c[8];
        for (int l = 0; l < 8; l++)
            c[l] = lane_code(base, off[l], s, wide);
        const __m256i code = _mm256_loadu_si256((const __m256i *)c);
        acc = _mm256_add_ps(acc, _mm256_i32gather_ps(tab + s * KG, index_avx2(code, vgo, vt, go1), 4));
    }
    return acc;
}

AQI_AVX2 AQI_INLINE void accumulate_avx2(const aq_quant *q, const void *codes, int64_t stride, const float *tab,
                                         int64_t len, int64_t n_groups, float *yp, const int wide, const int go1)
{
    const int64_t go = q->go, KG = (int64_t)q->K * go, rows = n_groups * go;
    const int64_t esz = wide ? 2 : 1;
    const __m256i vgo = _mm256_set1_epi32((int)go);
    int32_t off[8], tl[8];
    int64_t p = 0, t = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t pb = p;
        block_lanes(r0, rows, go, stride * esz, 8, &p, &t, off, tl);
        const unsigned char *base = (const unsigned char *)codes + pb * stride * esz;
        const __m256 acc = block_sum_avx2(base, off, _mm256_loadu_si256((const __m256i *)tl), vgo, tab, KG, len,
                                          wide, go1);
        if (r0 + 8 <= rows) {
            _mm256_storeu_ps(yp + r0, _mm256_add_ps(_mm256_loadu_ps(yp + r0), acc));
        } else {
            float a[8];
            _mm256_storeu_ps(a, acc);
            for (int64_t l = 0; l < rows - r0; l++)
                yp[r0 + l] += a[l];
        }
    }
}

AQI_AVX2 void aqi_lut_accumulate_avx2(const aq_quant *q, const void *codes, int64_t stride, const float *tab,
                                      int64_t len, int64_t n_groups, float *yp)
{
    AQI_LUT_SPECIALISE(accumulate_avx2, q, q, codes, stride, tab, len, n_groups, yp);
}

/* Columns of the 8 × 8 block r[0..8): c[a][l] = r[l][a]. */
AQI_AVX2 AQI_INLINE void transpose8(const __m256 r[8], __m256 c[8])
{
    __m256 u[8], v[8];
    for (int i = 0; i < 4; i++) { /* pairs of rows interleaved */
        u[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        u[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { /* quadruples: columns 4i'.. of rows 4i..4i+3, per 128-bit lane */
        v[4 * i] = _mm256_shuffle_ps(u[4 * i], u[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        v[4 * i + 1] = _mm256_shuffle_ps(u[4 * i], u[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        v[4 * i + 2] = _mm256_shuffle_ps(u[4 * i + 1], u[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        v[4 * i + 3] = _mm256_shuffle_ps(u[4 * i + 1], u[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) { /* rows 0..3 and 4..7 joined per column */
        c[i] = _mm256_permute2f128_ps(v[i], v[4 + i], 0x20);
        c[4 + i] = _mm256_permute2f128_ps(v[i], v[4 + i], 0x31);
    }
}

/* g = 8, straight from the codebooks: for each block of 8 codebook rows e (e = k·g_o + t),
 * transposed once in registers, out_j[e] = Σ_a C_m[e][a]·x_j[a] for every group j of the slice
 * (two chains of four FMAs). */
AQI_AVX2 static void build_g8_avx2(const aq_quant *q, const float *x, int64_t j0, int64_t j1, float *tab)
{
    const int64_t M = q->M, KG = (int64_t)q->K * q->go;
    for (int64_t m = 0; m < M; m++) {
        const float *cm = q->codebooks + m * KG * 8;
        int64_t e = 0;
        for (; e + 8 <= KG; e += 8) {
            __m256 r[8], c[8];
            for (int l = 0; l < 8; l++)
                r[l] = _mm256_loadu_ps(cm + (e + l) * 8);
            transpose8(r, c);
            for (int64_t j = j0; j < j1; j++) {
                const float *xj = x + j * 8;
                __m256 lo = _mm256_mul_ps(c[0], _mm256_broadcast_ss(xj));
                __m256 hi = _mm256_mul_ps(c[4], _mm256_broadcast_ss(xj + 4));
                for (int a = 1; a < 4; a++) {
                    lo = _mm256_fmadd_ps(c[a], _mm256_broadcast_ss(xj + a), lo);
                    hi = _mm256_fmadd_ps(c[a + 4], _mm256_broadcast_ss(xj + a + 4), hi);
                }
                _mm256_storeu_ps(tab + ((j - j0) * M + m) * KG + e, _mm256_add_ps(lo, hi));
            }
        }
        for (; e < KG; e++) /* fewer than 8 rows left (K·g_o < 8) */
            for (int64_t j = j0; j < j1; j++) {
                float s = 0.0f;
                for (int a = 0; a < 8; a++)
                    s += cm[e * 8 + a] * x[j * 8 + a];
                tab[((j - j0) * M + m) * KG + e] = s;
            }
    }
}

/* The same for any g. */
AQI_AVX2 static void build_any_avx2(const float *cm, const float *x, int64_t g, int64_t KG, float *out)
{
    int64_t e = 0;
    for (; e + 8 <= KG; e += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t a = 0; a < g; a++)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(cm + a * KG + e), _mm256_broadcast_ss(x + a), acc);
        _mm256_storeu_ps(out + e, acc);
    }
    for (; e < KG; e++) {
        float s = 0.0f;
        for (int64_t a = 0; a < g; a++)
            s += cm[a * KG + e] * x[a];
        out[e] = s;
    }
}

AQI_AVX2 void aqi_lut_build_avx2(const aq_quant *q, const float *ct, const float *x, int64_t j0, int64_t j1, float *tab)
{
    const int64_t M = q->M, g = q->g, KG = (int64_t)q->K * q->go;
    if (g == 8) {
        build_g8_avx2(q, x, j0, j1, tab);
        return;
    }
    for (int64_t j = j0; j < j1; j++)
        for (int64_t m = 0; m < M; m++)
            build_any_avx2(ct + m * g * KG, x + j * g, g, KG, tab + ((j - j0) * M + m) * KG);
}

#define AQI_DIRECT_AHEAD 16 /* codes between a codeword's prefetch and its use */

AQI_INLINE int64_t code_at(const void *codes, int64_t i, const int wide)
{
    return wide ? ((const uint16_t *)codes)[i] : ((const uint8_t *)codes)[i];
}

/* acc + Σ_m C_m[b(p, j, m)][t, :] ⊙ x_j for one group j (codes c[0..M)), prefetching the
 * codewords AQI_DIRECT_AHEAD codes later when @p ahead (codes of consecutive rows are
 * contiguous, so the look-ahead may run into the next row). */
AQI_AVX2 AQI_INLINE __m256 direct_group(__m256 acc, const void *c, int64_t M, const float *cbt, int64_t ks,
                                        int64_t cs, const float *xj, int64_t g, int ahead, const int wide)
{
    for (int64_t m = 0; m < M; m++) {
        if (ahead)
            _mm_prefetch((const char *)(cbt + m * ks + code_at(c, m + AQI_DIRECT_AHEAD, wide) * cs), _MM_HINT_T0);
        const float *cw = cbt + m * ks + code_at(c, m, wide) * cs;
        for (int64_t a = 0; a < g; a += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(cw + a), _mm256_loadu_ps(xj + a), acc);
    }
    return acc;
}

/* Σ_{j, m} ⟨C_m[b(p, j, m)][t, :], x_j⟩ over one row, in four chains over j mod 4; the codes of
 * the first @p n_ahead groups may look ahead. */
AQI_AVX2 AQI_INLINE float direct_row(const void *codes, int64_t J, int64_t M, const float *cbt, int64_t ks,
                                     int64_t cs, const float *x, int64_t g, int64_t n_ahead, const int wide)
{
    const int64_t esz = wide ? 2 : 1;
    const unsigned char *c = codes;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j + 4 <= J; j += 4) {
        const int ahead = j + 4 <= n_ahead;
        a0 = direct_group(a0, c + j * M * esz, M, cbt, ks, cs, x + j * g, g, ahead, wide);
        a1 = direct_group(a1, c + (j + 1) * M * esz, M, cbt, ks, cs, x + (j + 1) * g, g, ahead, wide);
        a2 = direct_group(a2, c + (j + 2) * M * esz, M, cbt, ks, cs, x + (j + 2) * g, g, ahead, wide);
        a3 = direct_group(a3, c + (j + 3) * M * esz, M, cbt, ks, cs, x + (j + 3) * g, g, ahead, wide);
    }
    for (; j < J; j++)
        a0 = direct_group(a0, c + j * M * esz, M, cbt, ks, cs, x + j * g, g, j < n_ahead, wide);
    const __m256 s8 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
    return _mm_cvtss_f32(s4);
}

AQI_AVX2 AQI_INLINE void direct_avx2(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1,
                                     const int wide, const int g8)
{
    const int64_t J = q->n_in_groups, M = q->M, n = J * M, go = q->go, g = g8 ? 8 : q->g, P = q->n_out_groups;
    /* codeword k of codebook m, row t: codebooks + m·ks + k·cs + t·g */
    const int64_t cs = go * g, ks = (int64_t)q->K * cs, esz = wide ? 2 : 1;
    for (int64_t p = p0; p < p1; p++) {
        const void *c = (const unsigned char *)q->codes + p * n * esz;
        /* groups j whose look-ahead, (j + 1)·M − 1 + AQI_DIRECT_AHEAD, stays inside the codes
         * (it may enter the next rows): (j + 1)·M ≤ (P − p)·n − AQI_DIRECT_AHEAD */
        const int64_t room = (P - p) * n - AQI_DIRECT_AHEAD, n_ahead = room > 0 ? room / M : 0;
        for (int64_t t = 0; t < go; t++)
            y[p * go + t] = q->scales[p] * direct_row(c, J, M, q->codebooks + t * g, ks, cs, x, g, n_ahead, wide);
    }
}

AQI_AVX2 void aqi_lut_direct_avx2(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1)
{
    const int wide = aqi_code_is_wide(q), g8 = q->g == 8;
    if (wide && g8)
        direct_avx2(q, x, y, p0, p1, 1, 1);
    else if (wide)
        direct_avx2(q, x, y, p0, p1, 1, 0);
    else if (g8)
        direct_avx2(q, x, y, p0, p1, 0, 1);
    else
        direct_avx2(q, x, y, p0, p1, 0, 0);
}

/* ---------------------------------------------------------------- AVX-512 */

AQI_AVX512 AQI_INLINE __m512i index_avx512(__m512i code, __m512i vgo, __m512i vt, const int go1)
{
    return go1 ? code : _mm512_add_epi32(_mm512_mullo_epi32(code, vgo), vt);
}

/* block_sum_avx2 with 16 lanes. */
AQI_AVX512 AQI_INLINE __m512 block_sum_avx512(const unsigned char *base, const int32_t *off, __m512i vt,
                                              __m512i vgo, const float *tab, int64_t KG, int64_t len, const int wide,
                                              const int go1)
{
    const __m512i voff = _mm512_loadu_si512(off), low = _mm512_set1_epi32(wide ? 0xFFFF : 0xFF);
    const int64_t esz = wide ? 2 : 1, step = wide ? 2 : 4;
    __m512 acc = _mm512_setzero_ps();
    int64_t s = 0;
    for (; s + step <= len; s += step) {
        const __m512i w = _mm512_i32gather_epi32(voff, (const void *)(base + s * esz), 1);
        if (wide) {
            const __m512i c0 = _mm512_and_si512(w, low), c1 = _mm512_srli_epi32(w, 16);
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c0, vgo, vt, go1), tab + s * KG, 4));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c1, vgo, vt, go1), tab + (s + 1) * KG, 4));
        } else {
            const __m512i c0 = _mm512_and_si512(w, low), c1 = _mm512_and_si512(_mm512_srli_epi32(w, 8), low);
            const __m512i c2 = _mm512_and_si512(_mm512_srli_epi32(w, 16), low), c3 = _mm512_srli_epi32(w, 24);
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c0, vgo, vt, go1), tab + s * KG, 4));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c1, vgo, vt, go1), tab + (s + 1) * KG, 4));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c2, vgo, vt, go1), tab + (s + 2) * KG, 4));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(c3, vgo, vt, go1), tab + (s + 3) * KG, 4));
        }
    }
    for (; s < len; s++) {
        int32_t c[16];
        for (int l = 0; l < 16; l++)
            c[l] = lane_code(base, off[l], s, wide);
        const __m512i code = _mm512_loadu_si512(c);
        acc = _mm512_add_ps(acc, _mm512_i32gather_ps(index_avx512(code, vgo, vt, go1), tab + s * KG, 4));
    }
    return acc;
}

AQI_AVX512 AQI_INLINE void accumulate_avx512(const aq_quant *q, const void *codes, int64_t stride,
                                             const float *tab, int64_t len, int64_t n_groups, float *yp,
                                             const int wide, const int go1)
{
    const int64_t go = q->go, KG = (int64_t)q->K * go, rows = n_groups * go;
    const int64_t esz = wide ? 2 : 1;
    const __m512i vgo = _mm512_set1_epi32((int)go);
    int32_t off[16], tl[16];
    int64_t p = 0, t = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        const int64_t pb = p;
        block_lanes(r0, rows, go, stride * esz, 16, &p, &t, off, tl);
        const unsigned char *base = (const unsigned char *)codes + pb * stride * esz;
        const __m512 acc = block_sum_avx512(base, off, _mm512_loadu_si512(tl), vgo, tab, KG, len, wide, go1);
        const __mmask16 k = r0 + 16 <= rows ? (__mmask16)0xFFFF : (__mmask16)((1u << (rows - r0)) - 1u);
        _mm512_mask_storeu_ps(yp + r0, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, yp + r0), acc));
    }
}

AQI_AVX512 void aqi_lut_accumulate_avx512(const aq_quant *q, const void *codes, int64_t stride, const float *tab,
                                          int64_t len, int64_t n_groups, float *yp)
{
    AQI_LUT_SPECIALISE(accumulate_avx512, q, q, codes, stride, tab, len, n_groups, yp);
}

#else
typedef int aqi_lut_x86_unused; /* no x86 kernels in this build */
#endif

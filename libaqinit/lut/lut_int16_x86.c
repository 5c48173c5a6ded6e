/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* AVX-512 VBMI block kernel of the int16-table mat-vec (lut_int16.h), one byte per lane.
 *
 * 64 rows × 16 code positions at a time: register i holds, in 128-bit lane l, the 16 codes of
 * row r0 + 16·l + i; an in-lane 16 × 16 byte transpose (unpacks of 8, 16, 32, 64 bits) turns
 * them into one register per position with the 64 rows' codes in order (register i holds
 * position rev4(i), rev4 reversing 4 bits). A position's 256-entry table lives in 8 registers
 * (two byte planes of 4); vpermi2b looks up 128 entries by the code's low 7 bits, a blend on
 * bit 7 picks the half, so 64 rows read their entry in 3 instructions per plane. The bytes of
 * each plane are summed by (3) in 16-bit lanes, even rows masked and odd rows shifted down (no
 * shuffles), and widened to int32 once per block (rows then in the order of aqi_lut16_perm). */
#include <math.h>

#include "lut/lut_int16.h"

#ifdef AQI_LUT_X86
#include <immintrin.h>

#define AQI_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))
#define AQI_INLINE static inline __attribute__((always_inline))
#ifndef AQI_Q16_PF
#define AQI_Q16_PF 64
#endif

/* Entry of every lane's code in a 256-byte plane held in p[0..4). */
AQI_VBMI AQI_INLINE __m512i plane_lookup(__m512i code, __mmask64 bit7, const __m512i p[4])
{
    const __m512i lo = _mm512_permutex2var_epi8(p[0], code, p[1]), hi = _mm512_permutex2var_epi8(p[2], code, p[3]);
    return _mm512_mask_blend_epi8(bit7, lo, hi);
}

/* Bytes of the two planes of the table at @p t for the 64 codes in @p code, into the four
 * 16-bit sums of (3): even and odd rows (bytes) of the low plane, of the biased high plane. */
AQI_VBMI AQI_INLINE void lookup_add(const uint8_t *t, __m512i code, __m512i acc[4])
{
    const __m512i low8 = _mm512_set1_epi16(0x00FF);
    __m512i lo[4], hi[4];
    for (int i = 0; i < 4; i++) {
        lo[i] = _mm512_loadu_si512(t + 64 * i);
        hi[i] = _mm512_loadu_si512(t + 256 + 64 * i);
    }
    const __mmask64 bit7 = _mm512_movepi8_mask(code);
    const __m512i l = plane_lookup(code, bit7, lo), h = plane_lookup(code, bit7, hi);
    acc[0] = _mm512_add_epi16(acc[0], _mm512_and_si512(l, low8));
    acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16(l, 8));
    acc[2] = _mm512_add_epi16(acc[2], _mm512_and_si512(h, low8));
    acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16(h, 8));
}

/* Register i = rows r0 + 16l + i (lanes l), 16 codes from @p col of each, the codes past @p len
 * of a row read as 0. @p row[i] points at the codes of row r0 + i (the last row for rows past
 * the last). */
AQI_VBMI AQI_INLINE void load_rows(const uint8_t *const row[AQI_Q16_ROWS], int64_t col, int64_t len, __m512i a[16])
{
    const __mmask16 m = len >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << len) - 1u);
    for (int i = 0; i < 16; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(m, row[i] + col));
        v = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row[16 + i] + col), 1);
        v = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row[32 + i] + col), 2);
        a[i] = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row[48 + i] + col), 3);
    }
}

/* In-lane 16 × 16 byte transpose: afterwards a[i] holds position rev4(i) of the 16 rows. */
AQI_VBMI AQI_INLINE void transpose16(__m512i a[16])
{
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[i] = _mm512_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        t[i + 8] = _mm512_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 8; i++) {
        a[i] = _mm512_unpacklo_epi16(t[2 * i], t[2 * i + 1]);
        a[i + 8] = _mm512_unpackhi_epi16(t[2 * i], t[2 * i + 1]);
    }
    for (int i = 0; i < 8; i++) {
        t[i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
        t[i + 8] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 8; i++) {
        a[i] = _mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]);
        a[i + 8] = _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]);
    }
}

/* position of register i after transpose16 */
static const int rev4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

AQI_VBMI void aqi_lut16_block_vbmi(const aq_quant *q, const uint8_t *tab, float d, int64_t b, int64_t r0, float *yb)
{
    const int64_t n = q->n_in_groups * q->M, s0 = b * AQI_Q16_BLOCK;
    const int64_t len = s0 + AQI_Q16_BLOCK < n ? AQI_Q16_BLOCK : n - s0;
    const uint8_t *row[AQI_Q16_ROWS];
    for (int i = 0; i < AQI_Q16_ROWS; i++) {
        const int64_t r = r0 + i < q->rows ? r0 + i : q->rows - 1;
        row[i] = (const uint8_t *)q->codes + r * n + s0;
        /* the codes of the next block of the same row, which the caller reads next */
        _mm_prefetch((const char *)(row[i] + AQI_Q16_PF), _MM_HINT_T0);
    }
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                      _mm512_setzero_si512()};
    for (int64_t c0 = 0; c0 < len; c0 += 16) {
        __m512i a[16];
        load_rows(row, c0, len - c0, a);
        transpose16(a);
        /* positions past len have zero tables (and codes 0): they add 0 */
        for (int i = 0; i < 16; i++)
            lookup_add(tab + (c0 + rev4[i]) * 512, a[i], acc);
    }
    /* (3): A = 256·(ΣH' − 128·len) + ΣL, per row in int32; slot k of yb: even rows 0..31 (k = 0)
     * and 32..63 (k = 1), odd rows (k = 2, 3) */
    const __m512 vd = _mm512_set1_ps(d);
    const __m512i bias = _mm512_set1_epi32((int)(128 * len));
    for (int k = 0; k < 4; k++) {
        const int odd = k >> 1, half = k & 1;
        const __m256i lw = half ? _mm512_extracti64x4_epi64(acc[odd], 1) : _mm512_castsi512_si256(acc[odd]);
        const __m256i hw = half ? _mm512_extracti64x4_epi64(acc[2 + odd], 1) : _mm512_castsi512_si256(acc[2 + odd]);
        const __m512i h32 = _mm512_sub_epi32(_mm512_cvtepu16_epi32(hw), bias);
        const __m512i a32 = _mm512_add_epi32(_mm512_slli_epi32(h32, 8), _mm512_cvtepu16_epi32(lw));
        _mm512_storeu_ps(yb + 16 * k, _mm512_fmadd_ps(vd, _mm512_cvtepi32_ps(a32), _mm512_loadu_ps(yb + 16 * k)));
    }
}

/* The rounding of build_block (lut_int16.c) 16 entries at a time: the same products and the same
 * round-to-nearest-even, so the same bits. */
AQI_VBMI void aqi_lut16_quantize_avx512(const float *f, int64_t n_pos, int64_t K, float inv, uint8_t *tab)
{
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i bias = _mm512_set1_epi32(128);
    for (int64_t s = 0; s < n_pos; s++) {
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(f + s * K + k), vinv));
            _mm_storeu_si128((__m128i *)(void *)(tab + s * 512 + k), _mm512_cvtepi32_epi8(v));
            _mm_storeu_si128((__m128i *)(void *)(tab + s * 512 + 256 + k), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_srai_epi32(v, 8), bias)));
        }
        for (; k < K; k++) {
            const int v = (int)nearbyintf(f[s * K + k] * inv);
            tab[s * 512 + k] = (uint8_t)(v & 0xFF);
            tab[s * 512 + 256 + k] = (uint8_t)((v >> 8) + 128);
        }
    }
}

/* max_i |f[i]| for i < n. */
AQI_VBMI float aqi_lut16_absmax_avx512(const float *f, int64_t n)
{
    __m512 m = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(f + i)));
    float r = _mm512_reduce_max_ps(m);
    for (; i < n; i++)
        r = fabsf(f[i]) > r ? fabsf(f[i]) : r;
    return r;
}

#else
typedef int aqi_lut16_x86_unused; /* no x86 kernels in this build */
#endif

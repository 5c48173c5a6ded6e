/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Approximate LUT mat-vec with int16 tables (AQ_MATVEC_INT16) for B ≤ 8 and g_o = 1.
 *
 * The n = J·M code positions s = j·M + m of a row are cut into blocks of AQI_Q16_BLOCK. Block b
 * has one scale d_b = max_{s ∈ b, k} |lut[s][k]| / 32767 and int16 tables
 *   q[s][k] = round(lut[s][k] / d_b),   lut[s][k] = ⟨x_j, C_m[k]⟩,
 * kept as two byte planes per position: 256 low bytes L = q mod 256, then 256 biased high bytes
 * H' = ⌊q / 256⌋ + 128, so q = 256·(H' − 128) + L; entries k ≥ K and positions past n are 0 (and
 * positions past n are never counted). Row r of output group p = r:
 *   y_r = s_p · Σ_b d_b · A_{b,r},   A_{b,r} = Σ_{s ∈ b} q[s][code(r, s)]            (1)
 * with A exact in int32 and the sum over b in float, fmaf in the order b = 0, 1, ...; so every
 * kernel and every thread count gives the same bits. Rounding each entry by at most d_b/2:
 *   |y_r − s_p Σ_s lut[s][code(r, s)]| ≤ |s_p| Σ_b n_b·d_b/2  (n_b positions in block b)  (2)
 * plus the float rounding of the tables and of (1). Kernels may sum the two planes apart:
 *   A_{b,r} = 256·(Σ_s H'[s][code] − 128·n_b) + Σ_s L[s][code],  both sums < 2^15 for n_b ≤ 64  (3) */
#ifndef AQINIT_LUT_INT16_H
#define AQINIT_LUT_INT16_H

#include "lut/lut_kernels.h" /* AQI_LUT_X86 */
#include "quant/quant.h"

#define AQI_Q16_BLOCK 64                          /* code positions per block (one scale) */
#define AQI_Q16_ROWS 64                           /* rows per call of a block kernel */
#define AQI_Q16_TAB_BYTES (AQI_Q16_BLOCK * 512)   /* tables of one block: 32 KB */

/* 1 if the int16 path can run @p q: codes of ≤ 8 bits and g_o = 1. */
int aqi_lut16_supported(const aq_quant *q);

/* y = Ŵ x by (1) with @p n_workers threads; the AVX-512 VBMI kernel when @p vbmi, the AVX2 table
 * build (g = 8) when @p avx2_build. AQ_ERR_NOMEM with y unwritten if the scratch cannot be had. */
int aqi_lut16_matvec(const aq_quant *q, const float *x, float *y, int vbmi, int avx2_build, int64_t n_workers);

/* Block kernels: for the rows [r0, min(r0 + AQI_Q16_ROWS, rows)), yb[i] = fmaf(d, A_{b, r}, yb[i])
 * with A from the block's tables @p tab. The portable kernel keeps row r0 + i at yb[i]; the VBMI
 * kernel at yb[aqi_lut16_perm(i)]. */
void aqi_lut16_block_portable(const aq_quant *q, const uint8_t *tab, float d, int64_t b, int64_t r0, float *yb);
/* Slot of row r0 + i in the VBMI kernel's yb: its 16-bit sums hold the even rows and the odd
 * rows (bytes) apart, each widened in two halves of 16. */
static inline int aqi_lut16_perm(int i)
{
    return 16 * ((i >> 5) + 2 * (i & 1)) + ((i >> 1) & 15);
}
#ifdef AQI_LUT_X86
void aqi_lut16_block_vbmi(const aq_quant *q, const uint8_t *tab, float d, int64_t b, int64_t r0, float *yb);
/* Helpers of the table build with the same bits as the portable code: max |f[0..n)|, and the
 * byte planes of round(f·inv) for n_pos positions of K entries. */
float aqi_lut16_absmax_avx512(const float *f, int64_t n);
void aqi_lut16_quantize_avx512(const float *f, int64_t n_pos, int64_t K, float inv, uint8_t *tab);
#endif

#endif

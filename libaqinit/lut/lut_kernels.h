/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Kernels of the LUT mat-vec; lut.c plans the work and calls them.
 *
 * A slice of input groups [j0, j1) has the table tab[(s·K + k)·g_o + t] = ⟨x_j, C_m[k][t, :]⟩
 * with s = (j − j0)·M + m, i.e. one K·g_o block per code position s of a row. Row r of the
 * output (group p = r / g_o, t = r mod g_o) adds tab[(s·K + b(p, j0·M + s))·g_o + t] over s. */
#ifndef AQINIT_LUT_KERNELS_H
#define AQINIT_LUT_KERNELS_H

#include "quant/quant.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(AQI_LUT_NO_X86) /* the latter: portable-only build */
#  define AQI_LUT_X86 1
#endif

/* ct[(m·g + a)·K·g_o + k·g_o + t] = C_m[k][t][a]: codebooks transposed for the table builds. */
void aqi_lut_transpose_codebooks(const aq_quant *q, float *ct);

/* Table of the slice [j0, j1) from the transposed codebooks @p ct, or from the codebooks
 * themselves when @p ct is NULL. */
void aqi_lut_build_portable(const aq_quant *q, const float *ct, const float *x, int64_t j0, int64_t j1,
                            float *tab);
/* Row sums of n_groups output groups whose codes are @p stride codes apart, starting at @p codes
 * (a code pointer of the codes' width): for group i and t < g_o,
 *   yp[i·g_o + t] += Σ_{s < len} tab[(s·K + code(i, s))·g_o + t],   code(i, s) = codes[i·stride + s]. */
void aqi_lut_accumulate_portable(const aq_quant *q, const void *codes, int64_t stride, const float *tab, int64_t len,
                                 int64_t n_groups, float *yp);
/* Direct path for output groups [p0, p1): y[p·g_o + t] = s_p Σ_j Σ_m ⟨x_j, C_m[b(p, j, m)][t, :]⟩. */
void aqi_lut_direct_portable(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1);

#ifdef AQI_LUT_X86
/* Vector kernels; the caller checks the CPU (aqi_lut_isa_available). The build needs @p ct
 * unless g = 8 (then it transposes the codebooks in registers); the direct kernel needs
 * g % 8 == 0. The accumulations take 8 / 16 rows per register (one lane per row, gathers) and
 * need 16·stride·2 < 2^31 for their code offsets. The AVX-512 ISA uses the AVX2 build and
 * direct kernels. */
void aqi_lut_build_avx2(const aq_quant *q, const float *ct, const float *x, int64_t j0, int64_t j1, float *tab);
void aqi_lut_accumulate_avx2(const aq_quant *q, const void *codes, int64_t stride, const float *tab, int64_t len,
                             int64_t n_groups, float *yp);
void aqi_lut_accumulate_avx512(const aq_quant *q, const void *codes, int64_t stride, const float *tab, int64_t len,
                               int64_t n_groups, float *yp);
void aqi_lut_direct_avx2(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1);
#endif

/* Calls fn(args..., wide, go1) with both flags as compile-time constants, so each kernel is
 * specialised for 8/16-bit codes and g_o = 1 / g_o > 1. */
#define AQI_LUT_SPECIALISE(fn, q, ...)                                                                 \
    do {                                                                                               \
        const int wide_ = aqi_code_is_wide(q), go1_ = (q)->go == 1;                                    \
        if (!wide_ && go1_)                                                                            \
            fn(__VA_ARGS__, 0, 1);                                                                     \
        else if (!wide_)                                                                               \
            fn(__VA_ARGS__, 0, 0);                                                                     \
        else if (go1_)                                                                                 \
            fn(__VA_ARGS__, 1, 1);                                                                     \
        else                                                                                           \
            fn(__VA_ARGS__, 1, 0);                                                                     \
    } while (0)

#endif

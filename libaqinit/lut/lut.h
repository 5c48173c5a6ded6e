/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* LUT inference (DESIGN.md §4): y = Ŵ x from the codes with per-input-group tables
 * lut[j][m][k][t] = ⟨x_j, C_m[k] row t⟩, so each code costs one table read. Kernels:
 * lut_kernels.h. */
#ifndef AQINIT_LUT_H
#define AQINIT_LUT_H

#include "quant/quant.h"

enum { AQI_ISA_PORTABLE = 0, AQI_ISA_AVX2 = 1, AQI_ISA_AVX512 = 2 };

/* 1 if this CPU and build can run the accumulate kernel @p isa. */
int aqi_lut_isa_available(int isa);
/* The best available kernel. */
int aqi_lut_best_isa(void);
/* 1 if aq_quant_matvec uses the tables for @p q (K·g_o ≤ rows), 0 if it reads the codewords. */
int aqi_lut_uses_tables(const aq_quant *q);
/* 1 if the tables of @p isa are read by its gather kernel, 0 if by scalar loads (measured once). */
int aqi_lut_uses_gather(int isa);
/* Flags of aqi_quant_matvec_isa. */
enum {
    AQI_LUT_FORCE_TABLES = 1, /* the tables even where the direct path would be chosen */
    AQI_LUT_GATHER = 2,       /* table reads by the ISA's gather kernel (else: measured choice) */
    AQI_LUT_LOADS = 4,        /* table reads by scalar loads */
    AQI_LUT_SPLIT = 8,        /* use every thread even for small layers */
    AQI_LUT_FORCE_DIRECT = 16, /* the direct path even where the tables would be chosen */
    AQI_LUT_INT16 = 32         /* int16 tables (lut_int16.h) where the format allows */
};
/* 1 if this CPU can run the AVX-512 VBMI kernel of the int16 tables. */
int aqi_lut16_vbmi_available(void);
/* aq_quant_matvec with a chosen kernel (AQ_ERR_UNSUPPORTED if unavailable) and @p flags; for
 * tests and benchmarks. */
int aqi_quant_matvec_isa(const aq_quant *q, const float *x, float *y, int isa, int flags);

#endif

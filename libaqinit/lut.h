/* LUT inference kernels (DESIGN.md §4): y = Ŵ x from the codes with per-input-group tables
 * lut[j][m][k][t] = ⟨x_j, C_m[k] row t⟩, so each code costs one table read. */
#ifndef AQINIT_LUT_H
#define AQINIT_LUT_H

#include "quant.h"

enum { AQI_ISA_PORTABLE = 0, AQI_ISA_AVX2 = 1, AQI_ISA_AVX512 = 2 };

/* 1 if this CPU and build can run the accumulate kernel @p isa. */
int aqi_lut_isa_available(int isa);
/* The best available kernel. */
int aqi_lut_best_isa(void);
/* aq_quant_matvec with a chosen kernel (AQ_ERR_UNSUPPORTED if unavailable); for tests and
 * benchmarks. @p force_lut uses the tables even when the direct path would be chosen. */
int aqi_quant_matvec_isa(const aq_quant *q, const float *x, float *y, int isa, int force_lut);

#endif

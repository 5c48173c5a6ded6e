/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Portable kernels of the LUT mat-vec (layout and contracts: lut_kernels.h). Plain C that any
 * CPU runs; written so that the compiler can keep several independent sums in flight. */
#include "lut/lut_kernels.h"

void aqi_lut_transpose_codebooks(const aq_quant *q, float *ct)
{
    const int64_t M = q->M, g = q->g, KG = (int64_t)q->K * q->go;
    for (int64_t m = 0; m < M; m++) {
        const float *c = q->codebooks + m * KG * g;
        float *out = ct + m * g * KG;
        for (int64_t e = 0; e < KG; e++)
            for (int64_t a = 0; a < g; a++)
                out[a * KG + e] = c[e * g + a];
    }
}

/* out[e] = Σ_a cm[a·KG + e]·x[a]: g passes of an axpy over one K·g_o block. */
static void build_transposed(const float *cm, const float *x, int64_t g, int64_t KG, float *restrict out)
{
    for (int64_t e = 0; e < KG; e++)
        out[e] = cm[e] * x[0];
    for (int64_t a = 1; a < g; a++) {
        const float xa = x[a], *ca = cm + a * KG;
        for (int64_t e = 0; e < KG; e++)
            out[e] += ca[e] * xa;
    }
}

/* ⟨c, x⟩ over n floats in 8 interleaved partial sums (vectorisable without reassociation). */
static float dot8(const float *c, const float *x, int64_t n)
{
    float part[8] = {0};
    int64_t a = 0;
    for (; a + 8 <= n; a += 8)
        for (int l = 0; l < 8; l++)
            part[l] += c[a + l] * x[a + l];
    for (; a < n; a++)
        part[0] += c[a] * x[a];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

void aqi_lut_build_portable(const aq_quant *q, const float *ct, const float *x, int64_t j0, int64_t j1, float *tab)
{
    const int64_t M = q->M, g = q->g, KG = (int64_t)q->K * q->go;
    for (int64_t j = j0; j < j1; j++)
        for (int64_t m = 0; m < M; m++) {
            float *out = tab + ((j - j0) * M + m) * KG;
            if (ct) {
                build_transposed(ct + m * g * KG, x + j * g, g, KG, out);
            } else {
                const float *c = q->codebooks + m * KG * g;
                for (int64_t e = 0; e < KG; e++)
                    out[e] = dot8(c + e * g, x + j * g, g);
            }
        }
}

static inline int64_t code_at(const void *codes, int64_t i, const int wide)
{
    return wide ? ((const uint16_t *)codes)[i] : ((const uint8_t *)codes)[i];
}

/* Four rows at once: lane l's codes start at codes[off[l]], its table column is t[l]. Four
 * independent sums, each in the order s = 0, 1, ... */
static inline void sum_rows4(const void *codes, const int64_t off[4], const int64_t t[4], const float *tab,
                             int64_t KG, int64_t go, int64_t len, float out[4], const int wide, const int go1)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    const float *ts = tab;
    for (int64_t s = 0; s < len; s++, ts += KG) {
        if (go1) {
            a0 += ts[code_at(codes, off[0] + s, wide)];
            a1 += ts[code_at(codes, off[1] + s, wide)];
            a2 += ts[code_at(codes, off[2] + s, wide)];
            a3 += ts[code_at(codes, off[3] + s, wide)];
        } else {
            a0 += ts[code_at(codes, off[0] + s, wide) * go + t[0]];
            a1 += ts[code_at(codes, off[1] + s, wide) * go + t[1]];
            a2 += ts[code_at(codes, off[2] + s, wide) * go + t[2]];
            a3 += ts[code_at(codes, off[3] + s, wide) * go + t[3]];
        }
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}

/* g_o = 1: the eight rows whose codes start at codes[0], codes[stride], ..., eight sums. */
static inline void sum_groups8(const void *codes, int64_t stride, const float *tab, int64_t K, int64_t len,
                               float *yp, const int wide)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
    const float *ts = tab;
    for (int64_t s = 0; s < len; s++, ts += K) {
        a0 += ts[code_at(codes, s, wide)];
        a1 += ts[code_at(codes, stride + s, wide)];
        a2 += ts[code_at(codes, 2 * stride + s, wide)];
        a3 += ts[code_at(codes, 3 * stride + s, wide)];
        a4 += ts[code_at(codes, 4 * stride + s, wide)];
        a5 += ts[code_at(codes, 5 * stride + s, wide)];
        a6 += ts[code_at(codes, 6 * stride + s, wide)];
        a7 += ts[code_at(codes, 7 * stride + s, wide)];
    }
    yp[0] += a0;
    yp[1] += a1;
    yp[2] += a2;
    yp[3] += a3;
    yp[4] += a4;
    yp[5] += a5;
    yp[6] += a6;
    yp[7] += a7;
}

static inline void accumulate(const aq_quant *q, const void *codes, int64_t stride, const float *tab, int64_t len,
                              int64_t n_groups, float *yp, const int wide, const int go1)
{
    const int64_t go = q->go, KG = (int64_t)q->K * go, rows = n_groups * go, esz = wide ? 2 : 1;
    int64_t p = 0, t = 0, r0 = 0; /* group and offset of row r0 */
    if (go1)
        for (; r0 + 8 <= rows; r0 += 8, p += 8)
            sum_groups8((const unsigned char *)codes + r0 * stride * esz, stride, tab, KG, len, yp + r0, wide);
    for (; r0 < rows; r0 += 4) {
        int64_t off[4], tt[4];
        float s[4];
        for (int l = 0; l < 4; l++) {
            if (r0 + l < rows) {
                off[l] = p * stride;
                tt[l] = t;
                if (++t == go) {
                    t = 0;
                    p++;
                }
            } else { /* past the last row: repeat row r0 (in bounds; not stored) */
                off[l] = off[0];
                tt[l] = tt[0];
            }
        }
        sum_rows4(codes, off, tt, tab, KG, go, len, s, wide, go1);
        for (int l = 0; l < 4 && r0 + l < rows; l++)
            yp[r0 + l] += s[l];
    }
}

void aqi_lut_accumulate_portable(const aq_quant *q, const void *codes, int64_t stride, const float *tab, int64_t len,
                                 int64_t n_groups, float *yp)
{
    AQI_LUT_SPECIALISE(accumulate, q, q, codes, stride, tab, len, n_groups, yp);
}

static inline void direct(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1, const int wide)
{
    const int64_t J = q->n_in_groups, M = q->M, n = J * M, go = q->go, g = q->g, K = q->K;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t t = 0; t < go; t++) {
            const float *cbt = q->codebooks + t * g;
            float acc = 0.0f;
            for (int64_t j = 0; j < J; j++)
                for (int64_t m = 0; m < M; m++)
                    acc += dot8(cbt + (m * K + code_at(q->codes, p * n + j * M + m, wide)) * go * g, x + j * g, g);
            y[p * go + t] = q->scales[p] * acc;
        }
}

void aqi_lut_direct_portable(const aq_quant *q, const float *x, float *y, int64_t p0, int64_t p1)
{
    if (aqi_code_is_wide(q))
        direct(q, x, y, p0, p1, 1);
    else
        direct(q, x, y, p0, p1, 0);
}

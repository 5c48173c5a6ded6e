/* aq_quant_matvec / aq_quant_matmul.
 *
 * LUT path: for input group j and codebook m, lut[j][m][k][t] = ⟨x_j, C_m[k][t, :]⟩ (one
 * cblas_sgemm per codebook: (J × g)·(g × K·g_o)), then y[p·g_o + t] = s_p Σ_j Σ_m
 * lut[j][m][b(p,j,m)][t]: one table read per code. The accumulation has a portable kernel and
 * AVX2 / AVX-512 kernels (gathers of 8 / 16 table entries), chosen at run time.
 * Direct path: when the tables would cost more than they save (K·g_o > rows, e.g. 1x16 on a
 * 4096-row layer) each code's codeword is read and dotted with x_j instead.
 * Batches of many rows use dequantize + cblas_sgemm. */
#include <cblas.h>
#include <string.h>

#include "lut.h"

#if defined(__x86_64__) && defined(__GNUC__)
#  include <immintrin.h>
#  define AQI_LUT_X86 1
#endif

#define AQI_MATMUL_DENSE_MIN_ROWS 8 /* from this batch size on: dequantize + sgemm */

typedef struct lut_job {
    const aq_quant *q;
    const float *lut; /* [J][M][K][g_o], or NULL on the direct path */
    const float *x;
    float *y;
    int isa;
} lut_job;

/* ---------------------------------------------------------------- accumulate kernels */

/* Σ over codes i0 ≤ i < i1 (i = j·M + m) of one output-group row: lut[(i·K + code)·g_o + t]. */
static float sum_portable(const lut_job *job, int64_t p, int t, int64_t i0, int64_t i1)
{
    const aq_quant *q = job->q;
    const int64_t n = q->n_in_groups * q->M, K = q->K, go = q->go;
    float acc = 0.0f;
    if (aqi_code_is_wide(q)) {
        const uint16_t *c = (const uint16_t *)q->codes + p * n;
        for (int64_t i = i0; i < i1; i++)
            acc += job->lut[(i * K + c[i]) * go + t];
    } else {
        const uint8_t *c = (const uint8_t *)q->codes + p * n;
        for (int64_t i = i0; i < i1; i++)
            acc += job->lut[(i * K + c[i]) * go + t];
    }
    return acc;
}

#ifdef AQI_LUT_X86
__attribute__((target("avx2"))) static float sum_avx2(const lut_job *job, int64_t p, int t, int64_t i0, int64_t i1)
{
    const aq_quant *q = job->q;
    const int64_t n = q->n_in_groups * q->M, K = q->K, go = q->go;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i stride = _mm256_set1_epi32((int)(K * go)), scale = _mm256_set1_epi32((int)go);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        __m256i code = aqi_code_is_wide(q)
                           ? _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)q->codes + p * n + i)))
                           : _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)((const uint8_t *)q->codes + p * n + i)));
        /* offset of lane l: (l·K + code)·g_o + t, relative to entry i·K·g_o */
        __m256i off = _mm256_add_epi32(_mm256_mullo_epi32(lane, stride), _mm256_mullo_epi32(code, scale));
        acc = _mm256_add_ps(acc, _mm256_i32gather_ps(job->lut + i * K * go + t, off, 4));
    }
    float part[8], total = 0.0f;
    _mm256_storeu_ps(part, acc);
    for (int l = 0; l < 8; l++)
        total += part[l];
    for (; i < i1; i++)
        total += job->lut[(i * K + aqi_code_get(q, p, i / q->M, (int)(i % q->M))) * go + t];
    return total;
}

__attribute__((target("avx512f"))) static float sum_avx512(const lut_job *job, int64_t p, int t, int64_t i0,
                                                           int64_t i1)
{
    const aq_quant *q = job->q;
    const int64_t n = q->n_in_groups * q->M, K = q->K, go = q->go;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i stride = _mm512_set1_epi32((int)(K * go)), scale = _mm512_set1_epi32((int)go);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) {
        __m512i code = aqi_code_is_wide(q)
                           ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)q->codes + p * n + i)))
                           : _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((const uint8_t *)q->codes + p * n + i)));
        __m512i off = _mm512_add_epi32(_mm512_mullo_epi32(lane, stride), _mm512_mullo_epi32(code, scale));
        acc = _mm512_add_ps(acc, _mm512_i32gather_ps(off, job->lut + i * K * go + t, 4));
    }
    float total = _mm512_reduce_add_ps(acc);
    for (; i < i1; i++)
        total += job->lut[(i * K + aqi_code_get(q, p, i / q->M, (int)(i % q->M))) * go + t];
    return total;
}
#endif

/* Direct path: Σ_j Σ_m ⟨x_j, C_m[b][t, :]⟩ reading each codeword. */
static float sum_direct(const lut_job *job, int64_t p, int t)
{
    const aq_quant *q = job->q;
    float acc = 0.0f;
    for (int64_t j = 0; j < q->n_in_groups; j++) {
        const float *xj = job->x + j * q->g;
        for (int m = 0; m < q->M; m++) {
            const float *c = aqi_codeword(q, m, aqi_code_get(q, p, j, m)) + (int64_t)t * q->g;
            for (int a = 0; a < q->g; a++)
                acc += c[a] * xj[a];
        }
    }
    return acc;
}

#define AQI_LUT_SLICE_BYTES (32 * 1024) /* table slice kept in L1 while all rows use it */

/* Rows of output groups [p0, p1): the input groups are taken in slices whose tables fit in L1,
 * and every row adds its codes of the slice, so table reads hit the cache. */
static int accumulate_range(void *arg, int64_t p0, int64_t p1, int worker)
{
    const lut_job *job = arg;
    const aq_quant *q = job->q;
    const int64_t M = q->M, go = q->go, J = q->n_in_groups;
    const int64_t per_group = M * (int64_t)q->K * go * (int64_t)sizeof(float);
    const int64_t slice = job->lut ? (per_group >= AQI_LUT_SLICE_BYTES ? 1 : AQI_LUT_SLICE_BYTES / per_group) : J;
    (void)worker;
    for (int64_t r = p0 * go; r < p1 * go; r++)
        job->y[r] = 0.0f;
    for (int64_t j0 = 0; j0 < J; j0 += slice) {
        const int64_t i0 = j0 * M, i1 = (j0 + slice < J ? j0 + slice : J) * M;
        for (int64_t p = p0; p < p1; p++)
            for (int t = 0; t < go; t++) {
                float s;
                if (!job->lut)
                    s = sum_direct(job, p, t);
#ifdef AQI_LUT_X86
                else if (job->isa == AQI_ISA_AVX512)
                    s = sum_avx512(job, p, t, i0, i1);
                else if (job->isa == AQI_ISA_AVX2)
                    s = sum_avx2(job, p, t, i0, i1);
#endif
                else
                    s = sum_portable(job, p, t, i0, i1);
                job->y[p * go + t] += s;
            }
    }
    for (int64_t p = p0; p < p1; p++)
        for (int t = 0; t < go; t++)
            job->y[p * go + t] *= q->scales[p];
    return AQ_OK;
}

/* ---------------------------------------------------------------- dispatch */

int aqi_lut_isa_available(int isa)
{
    if (isa == AQI_ISA_PORTABLE)
        return 1;
#ifdef AQI_LUT_X86
    __builtin_cpu_init();
    if (isa == AQI_ISA_AVX2)
        return __builtin_cpu_supports("avx2");
    if (isa == AQI_ISA_AVX512)
        return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

int aqi_lut_best_isa(void)
{
    static int best = -1; /* chosen once; every thread computes the same value */
    int isa = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = aqi_lut_isa_available(AQI_ISA_AVX512) ? AQI_ISA_AVX512
              : aqi_lut_isa_available(AQI_ISA_AVX2) ? AQI_ISA_AVX2
                                                     : AQI_ISA_PORTABLE;
        __atomic_store_n(&best, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

/* lut[j][m][k][t] = ⟨x_j, C_m[k][t,:]⟩: per codebook m one product (J × g)·(g × K·g_o). */
static void build_lut(const aq_quant *q, const float *x, float *lut)
{
    const int64_t J = q->n_in_groups, KG = (int64_t)q->K * q->go;
    for (int m = 0; m < q->M; m++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)J, (int)KG, q->g, 1.0f, x, q->g,
                    aqi_codeword(q, m, 0), q->g, 0.0f, lut + m * KG, (int)(q->M * KG));
}

int aqi_quant_matvec_isa(const aq_quant *q, const float *x, float *y, int isa, int force_lut)
{
    const char *fn = "aq_quant_matvec";
    lut_job job = {q, NULL, x, y, isa};
    float *lut = NULL;
    size_t bytes;
    int st;
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!x || !y)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, x ? "y" : "x");
    if (!aqi_lut_isa_available(isa))
        return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: kernel %d is not available on this CPU", fn, isa);
    if (!aqi_all_finite_f32(x, 1, q->cols, q->cols))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: x contains NaN or Inf", fn);
    const int64_t table = q->n_in_groups * q->M * (int64_t)q->K * q->go;
    if (force_lut || (int64_t)q->K * q->go <= q->rows) {
        if (table > INT32_MAX)
            return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: lookup table of %lld entries is too large", fn,
                            (long long)table);
        if ((st = aqi_bytes(q->ctx, &bytes, table, sizeof(float), "lookup table")) != AQ_OK)
            return st;
        if (!(lut = aqi_alloc(q->ctx, bytes)))
            return AQ_ERR_NOMEM;
        build_lut(q, x, lut);
        job.lut = lut;
    }
    st = aqi_parallel_for(q->ctx, q->n_out_groups, accumulate_range, &job);
    aqi_free(q->ctx, lut);
    return st;
}

int aq_quant_matvec(const aq_quant *q, const float *x, float *y)
{
    return aqi_quant_matvec_isa(q, x, y, aqi_lut_best_isa(), 0);
}

int aq_quant_matmul(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy)
{
    const char *fn = "aq_quant_matmul";
    float *W = NULL;
    size_t bytes;
    int st = AQ_OK;
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!X || !Y || n < 0)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: %s", fn, n < 0 ? "n < 0" : "X or Y is NULL");
    if (ldx < q->cols || ldy < q->rows)
        return aqi_fail(q->ctx, AQ_ERR_SHAPE, "%s: ldx %lld < %lld columns or ldy %lld < %lld rows", fn,
                        (long long)ldx, (long long)q->cols, (long long)ldy, (long long)q->rows);
    if (n > INT32_MAX || q->rows > INT32_MAX || q->cols > INT32_MAX)
        return aqi_fail(q->ctx, AQ_ERR_OVERFLOW, "%s: sizes exceed BLAS's int", fn);
    if (n < AQI_MATMUL_DENSE_MIN_ROWS) {
        for (int64_t r = 0; r < n && st == AQ_OK; r++)
            st = aq_quant_matvec(q, X + r * ldx, Y + r * ldy);
        return st;
    }
    if (!aqi_all_finite_f32(X, n, q->cols, ldx))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: X contains NaN or Inf", fn);
    if ((st = aqi_bytes(q->ctx, &bytes, q->rows * q->cols, sizeof(float), "dequantized weight")) != AQ_OK)
        return st;
    if (!(W = aqi_alloc(q->ctx, bytes)))
        return AQ_ERR_NOMEM;
    aqi_quant_dequantize_groups(q, W, q->cols, 0, q->n_out_groups);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)q->rows, (int)q->cols, 1.0f, X, (int)ldx, W,
                (int)q->cols, 0.0f, Y, (int)ldy);
    aqi_free(q->ctx, W);
    return AQ_OK;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_quant_matvec / aq_quant_matmul.
 *
 * LUT path (K·g_o ≤ rows): y[p·g_o + t] = s_p Σ_j Σ_m lut[j][m][b(p,j,m)][t] with
 * lut[j][m][k][t] = ⟨x_j, C_m[k][t, :]⟩: one table read per code instead of g multiply-adds.
 *  - The input groups are split into parts (4 per thread), which the threads claim in turn;
 *    each part adds its groups into its own partial sums of all rows, added in order at the end.
 *    So no thread repeats another's table build, the work scales with the threads, and a thread
 *    that the OS runs late takes fewer parts (small layers run on one thread).
 *  - A part walks its groups in slices whose table (≤ 64 KB, in L2) it builds itself. For each
 *    chunk of output groups the slice's codes are copied to a contiguous buffer (≤ 32 KB; the
 *    layer's row stride, often a power of two, would otherwise make the code lines collide in
 *    the caches), and the chunk's rows walk the slice in sub-slices whose table (≤ 16 KB) stays
 *    in L1 while the codes of 8 rows are summed at once.
 *  - Every row sums its terms of a sub-slice in order from 0, whichever kernel runs, so the
 *    table-read kernels give the same bits: scalar loads (portable C) or one vector lane per row
 *    with gathers (AVX2 / AVX-512). Which of the two is faster depends on the CPU's gathers
 *    (on Zen 4, gathers are 2.3x slower); it is measured once per ISA.
 * Direct path (K·g_o > rows, e.g. 1x16 on a 4096-row layer; the table would outweigh the
 * matrix): each code's codeword is read and dotted with x_j; blocks of output groups are
 * claimed by the threads in turn.
 * Batches of many rows use dequantize + cblas_sgemm (crossover: dense_min_rows). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <string.h>
#include <time.h>

#include "lut/lut.h"
#include "lut/lut_int16.h"
#include "lut/lut_kernels.h"

/* Batches: mat-vecs up to the crossover, dequantize + sgemm from it on. A mat-vec costs ∝ rows·cols·M/g
 * table reads (LUT paths) or rows·cols·M multiply-adds (direct path), the dense product's
 * dequantization ∝ rows·cols: crossover n* = c·g/M resp. c/M, c measured on 4096×4096 and
 * 4096×14336 (docs/results.md), at least 8. */
#define AQI_MATMUL_C_INT16 24  /* 2x8 g8: 96 rows */
#define AQI_MATMUL_C_TABLES 16 /* 2x8 g8: 64 rows */
#define AQI_MATMUL_C_DIRECT 16 /* 1x16 g8: 16 rows */
#define AQI_MATMUL_MIN_CROSSOVER 8
#define AQI_MATMUL_PANEL_FLOATS (1 << 22) /* dequantized panel: 16 MB ... */
#define AQI_MATMUL_PANEL_MIN_ROWS 256    /* ... and at least 256 rows, for sgemm's efficiency */
#define AQI_LUT_SUB_FLOATS 4096          /* table of a sub-slice: 16 KB, half of a 32-KB L1 */
#define AQI_LUT_SLICE_FLOATS 16384       /* table of a slice: 64 KB */
#define AQI_LUT_PACK_BYTES 32768         /* packed codes of a chunk of output groups */
#define AQI_LUT_PACK_MIN_BYTES 262144    /* layers with fewer code bytes are read in place */
#define AQI_LUT_CT_MAX_FLOATS 65536      /* transposed codebooks per part, at most 256 KB */
#define AQI_LUT_PARALLEL_MIN_WORK 500000 /* below this (table reads + build FMAs / 8): one thread */
#define AQI_LUT_PARTS_PER_THREAD 4       /* parts of the work per thread, claimed in turn */

typedef struct lut_plan {
    const aq_quant *q;
    const float *x;
    float *y;
    int isa;
    int gather;          /* table reads by vector gathers (else scalar loads) */
    int pack;            /* copy the codes of each chunk (else read them in place) */
    int64_t n_workers;   /* threads; each has a scratch slot */
    int64_t n_parts;     /* parts of the input groups, claimed by the workers in turn */
    int64_t next_part;   /* the next unclaimed part (atomic) */
    int64_t slice;       /* input groups per table build */
    int64_t sub;         /* input groups per pass over a chunk */
    int64_t chunk;       /* output groups per chunk */
    int64_t ct_floats;   /* transposed codebooks per part (0: build from the codebooks) */
    int64_t tab_floats;  /* table of a slice */
    int64_t pack_floats; /* packed codes of a chunk, in floats */
    int64_t slot_floats; /* scratch per worker: [ct | table | packed codes] */
    float *scratch;      /* n_workers slots, then the partial sums of parts 1 .. n_parts − 1 */
} lut_plan;

static int64_t round16(int64_t n)
{
    return (n + 15) & ~(int64_t)15; /* 64-byte multiples keep every scratch array aligned */
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ---------------------------------------------------------------- kernel choice */

/* The vector build reads the codebooks in place for g = 8 and needs them transposed otherwise. */
static void build_slice(const lut_plan *pl, const float *ct, int64_t j0, int64_t j1, float *tab)
{
#ifdef AQI_LUT_X86
    if (pl->isa != AQI_ISA_PORTABLE && (pl->q->g == 8 || ct)) {
        aqi_lut_build_avx2(pl->q, ct, pl->x, j0, j1, tab);
        return;
    }
#endif
    aqi_lut_build_portable(pl->q, ct, pl->x, j0, j1, tab);
}

static void accumulate(const aq_quant *q, int isa, int gather, const void *codes, int64_t stride, const float *tab,
                       int64_t len, int64_t n_groups, float *yp)
{
#ifdef AQI_LUT_X86
    if (gather && isa == AQI_ISA_AVX512) {
        aqi_lut_accumulate_avx512(q, codes, stride, tab, len, n_groups, yp);
        return;
    }
    if (gather && isa == AQI_ISA_AVX2) {
        aqi_lut_accumulate_avx2(q, codes, stride, tab, len, n_groups, yp);
        return;
    }
#endif
    (void)isa;
    (void)gather;
    aqi_lut_accumulate_portable(q, codes, stride, tab, len, n_groups, yp);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define AQI_CAL_GROUPS 256 /* calibration: 2x8 codes of 256 output groups over one 16-KB table */
#define AQI_CAL_LEN 16

/* 1 if the gather kernel of @p isa beats scalar loads by 10 % on a typical sub-slice (best of
 * seven alternating runs, so that a busy machine does not decide). The 20 KB of data live on the
 * stack: no allocation outside the context's allocator, nothing that can fail. */
static int measure_gather(int isa)
{
    aq_quant q;
    unsigned char codes[AQI_CAL_GROUPS * AQI_CAL_LEN];
    float tab[256 * AQI_CAL_LEN], y[AQI_CAL_GROUPS] = {0};
    double best[2] = {1e30, 1e30};
    memset(&q, 0, sizeof q);
    q.fmt.bits_per_codebook = 8;
    q.K = 256;
    q.go = 1;
    for (int i = 0; i < AQI_CAL_GROUPS * AQI_CAL_LEN; i++)
        codes[i] = (unsigned char)((i * 2654435761u) >> 24);
    for (int i = 0; i < 256 * AQI_CAL_LEN; i++)
        tab[i] = (float)(i % 7);
    for (int rep = 0; rep < 7; rep++)
        for (int g = 0; g < 2; g++) {
            const double t0 = seconds();
            for (int k = 0; k < 4; k++)
                accumulate(&q, isa, g, codes, AQI_CAL_LEN, tab, AQI_CAL_LEN, AQI_CAL_GROUPS, y);
            const double t = seconds() - t0;
            best[g] = t < best[g] ? t : best[g];
        }
    return best[1] < 0.9 * best[0];
}

/* Whether @p isa reads its tables by gathers: measured once per ISA (the answer only changes
 * the speed: both kernels give the same bits). */
static int use_gather(int isa, int flags)
{
    static int choice[3] = {-1, -1, -1};
    int c;
    if (flags & AQI_LUT_GATHER)
        return isa != AQI_ISA_PORTABLE;
    if ((flags & AQI_LUT_LOADS) || isa == AQI_ISA_PORTABLE)
        return 0;
    c = __atomic_load_n(&choice[isa], __ATOMIC_RELAXED);
    if (c < 0) {
        c = measure_gather(isa);
        __atomic_store_n(&choice[isa], c, __ATOMIC_RELAXED);
    }
    return c;
}

int aqi_lut_uses_gather(int isa)
{
    return isa >= AQI_ISA_PORTABLE && isa <= AQI_ISA_AVX512 && aqi_lut_isa_available(isa) && use_gather(isa, 0);
}

/* ---------------------------------------------------------------- LUT path */

#define AQI_LUT_PACK_AHEAD 16 /* rows between the prefetch of a row's codes and their copy */

/* pk[i·w_pk + s] = code i0 + s of output group p0 + i, for s < w and i < n. The rows are a
 * layer's row stride apart, so their lines are prefetched ahead. */
static void pack_codes(const aq_quant *q, int64_t p0, int64_t n, int64_t i0, int64_t w, int64_t w_pk, void *pk)
{
    const int64_t esz = aqi_code_is_wide(q) ? 2 : 1, stride = q->n_in_groups * q->M * esz;
    const unsigned char *src = (const unsigned char *)q->codes + (p0 * q->n_in_groups * q->M + i0) * esz;
    unsigned char *dst = pk;
    for (int64_t i = 0; i < n; i++) {
        if (i + AQI_LUT_PACK_AHEAD < n)
            __builtin_prefetch(src + (i + AQI_LUT_PACK_AHEAD) * stride);
        if (w * esz == 64 && w_pk * esz == 64) /* one cache line per row: a fixed-size copy */
            memcpy(dst + i * 64, src + i * stride, 64);
        else
            memcpy(dst + i * w_pk * esz, src + i * stride, (size_t)(w * esz));
    }
}

/* Output groups [p0, p1) over the slice [j0, j1) whose table is @p tab. */
static void lut_chunk(const lut_plan *pl, const float *tab, int64_t j0, int64_t j1, int64_t p0, int64_t p1,
                      unsigned char *pk, float *yp)
{
    const aq_quant *q = pl->q;
    const int64_t M = q->M, KG = (int64_t)q->K * q->go, esz = aqi_code_is_wide(q) ? 2 : 1;
    const unsigned char *codes = (const unsigned char *)q->codes + (p0 * q->n_in_groups + j0) * M * esz;
    int64_t stride = q->n_in_groups * M;
    if (pl->pack) {
        stride = pl->slice * M;
        pack_codes(q, p0, p1 - p0, j0 * M, (j1 - j0) * M, stride, pk);
        codes = pk;
    }
    for (int64_t s0 = j0; s0 < j1; s0 += pl->sub) {
        const int64_t s1 = min64(s0 + pl->sub, j1);
        accumulate(q, pl->isa, pl->gather, codes + (s0 - j0) * M * esz, stride, tab + (s0 - j0) * M * KG,
                   (s1 - s0) * M, p1 - p0, yp + p0 * q->go);
    }
}

/* Partial sums of part u ≥ 1 (rows floats; part 0 adds into y itself). */
static float *part_sums(const lut_plan *pl, int64_t u)
{
    return pl->scratch + pl->n_workers * pl->slot_floats + (u - 1) * round16(pl->q->rows);
}

/* Part u: input groups [J·u/U, J·(u+1)/U) into its partial sums, with the scratch slot @p slot
 * (whose transposed codebooks, if any, are ready). */
static void lut_part(const lut_plan *pl, int64_t u, float *slot)
{
    const aq_quant *q = pl->q;
    const int64_t J = q->n_in_groups, P = q->n_out_groups;
    const int64_t ja = J * u / pl->n_parts, jb = J * (u + 1) / pl->n_parts;
    float *tab = slot + round16(pl->ct_floats), *pk = tab + round16(pl->tab_floats);
    float *yp = u ? part_sums(pl, u) : pl->y;
    memset(yp, 0, sizeof(float) * (size_t)q->rows);
    for (int64_t j0 = ja; j0 < jb; j0 += pl->slice) {
        const int64_t j1 = min64(j0 + pl->slice, jb);
        build_slice(pl, pl->ct_floats ? slot : NULL, j0, j1, tab);
        for (int64_t p0 = 0; p0 < P; p0 += pl->chunk)
            lut_chunk(pl, tab, j0, j1, p0, min64(p0 + pl->chunk, P), (unsigned char *)pk, yp);
    }
}

/* Worker w claims parts until none is left: a thread that the OS runs late takes fewer parts
 * instead of holding up the others. Which thread runs a part changes no bits (each part has
 * its own sums, added in a fixed order). */
static int lut_worker(void *arg, int64_t w0, int64_t w1, int worker)
{
    lut_plan *pl = arg;
    (void)worker;
    for (int64_t w = w0; w < w1; w++) {
        float *slot = pl->scratch + w * pl->slot_floats;
        if (pl->ct_floats)
            aqi_lut_transpose_codebooks(pl->q, slot);
        for (int64_t u; (u = __atomic_fetch_add(&pl->next_part, 1, __ATOMIC_RELAXED)) < pl->n_parts;)
            lut_part(pl, u, slot);
    }
    return AQ_OK;
}

/* y[p·g_o + t] = s_p (y + Σ_{u ≥ 1} partial_u)[p·g_o + t]. */
static void finish_rows(const lut_plan *pl)
{
    const aq_quant *q = pl->q;
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t r = p * q->go; r < (p + 1) * q->go; r++) {
            float v = pl->y[r];
            for (int64_t u = 1; u < pl->n_parts; u++)
                v += part_sums(pl, u)[r];
            pl->y[r] = q->scales[p] * v;
        }
}

/* Threads for @p work units: all of them, or one when waking threads would cost more (unless
 * AQI_LUT_SPLIT); at most @p max. */
static int64_t n_threads_for(const aq_quant *q, double work, int64_t max, int flags)
{
    int64_t t = aqi_num_workers(q->ctx);
    if (work < AQI_LUT_PARALLEL_MIN_WORK && !(flags & AQI_LUT_SPLIT))
        t = 1;
    return t < max ? t : max > 0 ? max : 1;
}

/* Slices: a sub-slice's table ≤ AQI_LUT_SUB_FLOATS with whole 32-bit words of codes (what the
 * gather kernels read at once), a slice's ≤ AQI_LUT_SLICE_FLOATS; at least one group each. */
static void plan_slices(lut_plan *pl)
{
    const aq_quant *q = pl->q;
    const int64_t J = q->n_in_groups, M = q->M, per_group = M * (int64_t)q->K * q->go;
    const int64_t esz = aqi_code_is_wide(q) ? 2 : 1, word = 4 / esz;
    pl->sub = per_group >= AQI_LUT_SUB_FLOATS ? 1 : AQI_LUT_SUB_FLOATS / per_group;
    while (pl->sub > 1 && (pl->sub * M) % word)
        pl->sub--;
    pl->sub = min64(pl->sub, J);
    pl->slice = pl->sub * (per_group * pl->sub >= AQI_LUT_SLICE_FLOATS ? 1
                                                                       : AQI_LUT_SLICE_FLOATS / (per_group * pl->sub));
    pl->slice = min64(pl->slice, J);
    pl->tab_floats = pl->slice * per_group;
    pl->pack = (int64_t)q->codes_bytes >= AQI_LUT_PACK_MIN_BYTES;
    pl->chunk = pl->pack ? AQI_LUT_PACK_BYTES / (pl->slice * M * esz) : q->n_out_groups;
    pl->chunk = pl->chunk < 8 ? 8 : pl->chunk;
    pl->chunk = min64(pl->chunk, q->n_out_groups);
    pl->pack_floats = pl->pack ? (pl->chunk * pl->slice * M * esz + 3) / 4 : 0;
    pl->ct_floats = per_group * q->g <= AQI_LUT_CT_MAX_FLOATS ? per_group * q->g : 0;
#ifdef AQI_LUT_X86
    if (pl->isa != AQI_ISA_PORTABLE && q->g == 8) /* transposed in registers */
        pl->ct_floats = 0;
#endif
    pl->slot_floats = round16(pl->ct_floats) + round16(pl->tab_floats) + round16(pl->pack_floats);
}

static int matvec_lut(const aq_quant *q, const float *x, float *y, int isa, int flags)
{
    const char *fn = "aq_quant_matvec";
    const int64_t J = q->n_in_groups, per_group = q->M * (int64_t)q->K * q->go;
    lut_plan pl;
    size_t bytes;
    int st = AQ_OK;
    if (per_group > INT32_MAX)
        return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: lookup table of %lld entries per input group is too large",
                        fn, (long long)per_group);
    memset(&pl, 0, sizeof pl);
    pl.q = q;
    pl.x = x;
    pl.y = y;
    pl.isa = isa;
    plan_slices(&pl);
    /* the gather kernels' int32 code offsets: 16 rows of codes */
    pl.gather = 16 * (pl.pack ? pl.slice * q->M : J * q->M) * 2 <= INT32_MAX && use_gather(isa, flags);
    pl.n_workers = n_threads_for(q, (double)q->rows * J * q->M + (double)J * per_group * q->g / 8, J, flags);
    pl.n_parts = pl.n_workers > 1 ? min64(AQI_LUT_PARTS_PER_THREAD * pl.n_workers, J) : 1;
    if ((st = aqi_bytes(q->ctx, &bytes, pl.n_workers * pl.slot_floats + (pl.n_parts - 1) * round16(q->rows),
                        sizeof(float), "lookup tables")) != AQ_OK)
        return st;
    if (!(pl.scratch = aqi_alloc(q->ctx, bytes)))
        return AQ_ERR_NOMEM;
    if (pl.n_workers == 1)
        lut_worker(&pl, 0, 1, 0);
    else
        st = aqi_parallel_for(q->ctx, pl.n_workers, lut_worker, &pl);
    if (st == AQ_OK)
        finish_rows(&pl);
    aqi_free(q->ctx, pl.scratch);
    return st;
}

/* ---------------------------------------------------------------- direct path */

typedef struct direct_job {
    const aq_quant *q;
    const float *x;
    float *y;
    int isa;
    int64_t n_blocks;   /* blocks of output groups, claimed by the workers in turn */
    int64_t next_block; /* the next unclaimed block (atomic) */
} direct_job;

static void direct_groups(const direct_job *job, int64_t p0, int64_t p1)
{
#ifdef AQI_LUT_X86
    if (job->isa != AQI_ISA_PORTABLE && job->q->g % 8 == 0) {
        aqi_lut_direct_avx2(job->q, job->x, job->y, p0, p1);
        return;
    }
#endif
    aqi_lut_direct_portable(job->q, job->x, job->y, p0, p1);
}

/* Rows are independent: any thread may take any block without changing a bit. */
static int direct_worker(void *arg, int64_t w0, int64_t w1, int worker)
{
    direct_job *job = arg;
    const int64_t P = job->q->n_out_groups;
    (void)w0;
    (void)w1;
    (void)worker;
    for (int64_t b; (b = __atomic_fetch_add(&job->next_block, 1, __ATOMIC_RELAXED)) < job->n_blocks;)
        direct_groups(job, P * b / job->n_blocks, P * (b + 1) / job->n_blocks);
    return AQ_OK;
}

static int matvec_direct(const aq_quant *q, const float *x, float *y, int isa, int flags)
{
    direct_job job = {q, x, y, isa, 0, 0};
    const double work = (double)q->rows * q->n_in_groups * q->M * (1.0 + q->g / 8.0);
    const int64_t n_workers = n_threads_for(q, work, q->n_out_groups, flags);
    if (n_workers == 1) {
        direct_groups(&job, 0, q->n_out_groups);
        return AQ_OK;
    }
    job.n_blocks = min64(AQI_LUT_PARTS_PER_THREAD * n_workers, q->n_out_groups);
    return aqi_parallel_for(q->ctx, n_workers, direct_worker, &job);
}

/* ---------------------------------------------------------------- int16 tables */

/* Work as for the float tables: one read per code, the build's FMAs / 8. */
static int matvec_int16(const aq_quant *q, const float *x, float *y, int isa, int flags)
{
    const double work = (double)q->rows * q->n_in_groups * q->M + (double)q->n_in_groups * q->M * q->K * q->g / 8;
    const int vbmi = isa == AQI_ISA_AVX512 && aqi_lut16_vbmi_available();
    const int avx2_build = isa != AQI_ISA_PORTABLE && q->g == 8;
    const int64_t n_blocks = (q->n_in_groups * q->M + AQI_Q16_BLOCK - 1) / AQI_Q16_BLOCK;
    const int64_t n_workers = n_threads_for(q, work, n_blocks > q->rows ? n_blocks : q->rows, flags);
    return aqi_lut16_matvec(q, x, y, vbmi, avx2_build, n_workers);
}

/* ---------------------------------------------------------------- dispatch */

int aqi_lut_isa_available(int isa)
{
    if (isa == AQI_ISA_PORTABLE)
        return 1;
#ifdef AQI_LUT_X86
    __builtin_cpu_init();
    if (isa == AQI_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == AQI_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 0;
}

int aqi_lut16_vbmi_available(void)
{
#ifdef AQI_LUT_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
           && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
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

int aqi_lut_uses_tables(const aq_quant *q)
{
    return (int64_t)q->K * q->go <= q->rows;
}

int aqi_quant_matvec_isa(const aq_quant *q, const float *x, float *y, int isa, int flags)
{
    const char *fn = "aq_quant_matvec";
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!x || !y)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, x ? "y" : "x");
    if (isa < AQI_ISA_PORTABLE || isa > AQI_ISA_AVX512 || !aqi_lut_isa_available(isa))
        return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: kernel %d is not available on this CPU", fn, isa);
    if (!aqi_all_finite_f32(x, 1, q->cols, q->cols))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: x contains NaN or Inf", fn);
    if ((flags & AQI_LUT_INT16) && aqi_lut16_supported(q))
        return matvec_int16(q, x, y, isa, flags);
    if ((flags & AQI_LUT_FORCE_TABLES) || (aqi_lut_uses_tables(q) && !(flags & AQI_LUT_FORCE_DIRECT)))
        return matvec_lut(q, x, y, isa, flags);
    return matvec_direct(q, x, y, isa, flags);
}

int aq_quant_matvec(const aq_quant *q, const float *x, float *y)
{
    return aqi_quant_matvec_isa(q, x, y, aqi_lut_best_isa(), 0);
}

int aq_quant_matvec_kernel(const aq_quant *q, const float *x, float *y, int kernel)
{
    const int isa = aqi_lut_best_isa();
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (kernel != AQ_MATVEC_EXACT && kernel != AQ_MATVEC_INT16)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "aq_quant_matvec_kernel: unknown kernel %d", kernel);
    /* the int16 tables only where they are fast: the VBMI kernel */
    const int int16 = kernel == AQ_MATVEC_INT16 && isa == AQI_ISA_AVX512 && aqi_lut16_vbmi_available();
    return aqi_quant_matvec_isa(q, x, y, isa, int16 ? AQI_LUT_INT16 : 0);
}

/* Output groups [p0 + g0, p0 + g1) of Ŵ into the panel that starts at group p0. */
typedef struct dequant_job {
    const aq_quant *q;
    float *W;
    int64_t p0;
} dequant_job;

static int dequant_range(void *arg, int64_t g0, int64_t g1, int worker)
{
    const dequant_job *job = arg;
    (void)worker;
    aqi_quant_dequantize_groups(job->q, job->W + g0 * job->q->go * job->q->cols, job->q->cols, job->p0 + g0,
                                job->p0 + g1);
    return AQ_OK;
}

/* The crossover of matmul for @p q and @p kernel. */
static int64_t dense_min_rows(const aq_quant *q, int kernel)
{
    const int int16 = kernel == AQ_MATVEC_INT16 && aqi_lut_best_isa() == AQI_ISA_AVX512
                      && aqi_lut16_vbmi_available() && aqi_lut16_supported(q);
    const int64_t n = int16 ? AQI_MATMUL_C_INT16 * q->g / q->M
                      : aqi_lut_uses_tables(q) ? AQI_MATMUL_C_TABLES * q->g / q->M
                                               : AQI_MATMUL_C_DIRECT / q->M;
    return n > AQI_MATMUL_MIN_CROSSOVER ? n : AQI_MATMUL_MIN_CROSSOVER;
}

/* Y = X Ŵᵀ: mat-vecs of kernel @p kernel for small batches, dequantize + sgemm from dense_min_rows on. */
static int matmul(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy, int kernel,
                  const char *fn)
{
    float *W = NULL;
    size_t bytes;
    int st = AQ_OK;
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!X || !Y || n < 0)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: %s", fn, n < 0 ? "n < 0" : "X or Y is NULL");
    if ((st = aqi_check_ld(q->ctx, fn, "X", n, q->cols, ldx, sizeof(float))) != AQ_OK
        || (st = aqi_check_ld(q->ctx, fn, "Y", n, q->rows, ldy, sizeof(float))) != AQ_OK)
        return st;
    if (n > INT32_MAX || q->rows > INT32_MAX || q->cols > INT32_MAX)
        return aqi_fail(q->ctx, AQ_ERR_OVERFLOW, "%s: sizes exceed BLAS's int", fn);
    if (n < dense_min_rows(q, kernel)) {
        for (int64_t r = 0; r < n && st == AQ_OK; r++)
            st = aq_quant_matvec_kernel(q, X + r * ldx, Y + r * ldy, kernel);
        return st;
    }
    if (!aqi_all_finite_f32(X, n, q->cols, ldx))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: X contains NaN or Inf", fn);
    /* Ŵ in panels of output groups (≤ 16 MB unless that is under 256 rows), dequantized by the
     * threads: Y[:, panel] = X Ŵ_panelᵀ. One panel-sized buffer instead of the whole fp32 matrix
     * (fewer page faults of a fresh block per call; the panel stays in L3 for sgemm). */
    /* at least 2n rows too: sgemm packs X once per panel, which then costs ≤ half of Ŵ's traffic */
    const int64_t min_rows = 2 * n > AQI_MATMUL_PANEL_MIN_ROWS ? 2 * n : AQI_MATMUL_PANEL_MIN_ROWS;
    const int64_t per_group = q->go * q->cols, min_groups = (min_rows + q->go - 1) / q->go;
    int64_t panel = AQI_MATMUL_PANEL_FLOATS / per_group;
    panel = panel < min_groups ? min_groups : panel;
    panel = panel > q->n_out_groups ? q->n_out_groups : panel;
    if ((st = aqi_bytes(q->ctx, &bytes, panel * per_group, sizeof(float), "dequantized weight")) != AQ_OK)
        return st;
    if (!(W = aqi_alloc(q->ctx, bytes)))
        return AQ_ERR_NOMEM;
    for (int64_t p0 = 0; p0 < q->n_out_groups; p0 += panel) {
        const int64_t p1 = p0 + panel < q->n_out_groups ? p0 + panel : q->n_out_groups;
        dequant_job job = {q, W, p0};
        if ((st = aqi_parallel_for(q->ctx, p1 - p0, dequant_range, &job)) != AQ_OK)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)((p1 - p0) * q->go), (int)q->cols, 1.0f, X,
                    (int)ldx, W, (int)q->cols, 0.0f, Y + p0 * q->go, (int)ldy);
    }
    aqi_free(q->ctx, W);
    return st;
}

int aq_quant_matmul(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy)
{
    return matmul(q, X, n, ldx, Y, ldy, AQ_MATVEC_EXACT, "aq_quant_matmul");
}

int aq_quant_matmul_kernel(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy, int kernel)
{
    if (q && kernel != AQ_MATVEC_EXACT && kernel != AQ_MATVEC_INT16)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "aq_quant_matmul_kernel: unknown kernel %d", kernel);
    return matmul(q, X, n, ldx, Y, ldy, kernel, "aq_quant_matmul_kernel");
}

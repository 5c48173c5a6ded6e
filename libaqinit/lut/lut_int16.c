/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The int16-table mat-vec (lut_int16.h): table build and quantization, the two parallel
 * phases, and the portable block kernel.
 *  - Phase 1: the blocks' tables are built (float, as the exact path builds them), scaled by
 *    their block's d_b and rounded, the threads claiming blocks in turn. n·512 bytes in all
 *    (1.8 MB for a 4096×14336 2x8 layer: a quarter of its fp32 tables, read once per task).
 *  - Phase 2: tasks of consecutive 64-row blocks, claimed in turn; a task walks the code blocks
 *    in order b = 0, 1, ..., and for each of them all its row blocks, so a block's 32-KB table
 *    stays in L1 while the task's rows read it. Rows are independent: any thread may run any
 *    task without changing a bit. */
#include <math.h>
#include <string.h>

#include "lut/lut_int16.h"
#include "lut/lut_kernels.h" /* the float table builds */

#define AQI_Q16_TASKS_PER_THREAD 4
#ifndef AQI_Q16_GROUP
#define AQI_Q16_GROUP 8 /* blocks whose tables (256 KB, in L2) a row block walks at once */
#endif

typedef struct q16_job {
    const aq_quant *q;
    const float *x;
    float *y;
    int vbmi, avx2_build;
    int64_t n_pos, n_blocks, n_row_blocks, n_tasks;
    int64_t ftab_floats;  /* float tables of one block, per worker */
    uint8_t *tabs;        /* n_blocks × AQI_Q16_TAB_BYTES */
    float *d;             /* n_blocks scales */
    float *yacc;          /* n_row_blocks × AQI_Q16_ROWS sums of (1) */
    float *ftab;          /* n_workers × ftab_floats */
    int64_t next;         /* next unclaimed block / task (atomic) */
} q16_job;

int aqi_lut16_supported(const aq_quant *q)
{
    return q->fmt.bits_per_codebook <= 8 && q->go == 1;
}

/* Tables of block b: float tables of the groups it touches, then d_b and the rounded entries. */
static void build_block(const q16_job *job, int64_t b, float *ftab)
{
    const aq_quant *q = job->q;
    const int64_t M = q->M, K = q->K, s0 = b * AQI_Q16_BLOCK;
    const int64_t s1 = s0 + AQI_Q16_BLOCK < job->n_pos ? s0 + AQI_Q16_BLOCK : job->n_pos;
    const int64_t j0 = s0 / M, j1 = (s1 + M - 1) / M;
    const float *f = ftab + (s0 - j0 * M) * K; /* position s0's table */
    uint8_t *tab = job->tabs + b * AQI_Q16_TAB_BYTES;
    float amax = 0.0f;
#ifdef AQI_LUT_X86
    if (job->avx2_build)
        aqi_lut_build_avx2(q, NULL, job->x, j0, j1, ftab);
    else
#endif
        aqi_lut_build_portable(q, NULL, job->x, j0, j1, ftab);
#ifdef AQI_LUT_X86
    if (job->vbmi)
        amax = aqi_lut16_absmax_avx512(f, (s1 - s0) * K);
    else
#endif
        for (int64_t i = 0; i < (s1 - s0) * K; i++)
            amax = fabsf(f[i]) > amax ? fabsf(f[i]) : amax;
    const float inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
    job->d[b] = amax / 32767.0f;
    memset(tab, 0, AQI_Q16_TAB_BYTES);
#ifdef AQI_LUT_X86
    if (job->vbmi) {
        aqi_lut16_quantize_avx512(f, s1 - s0, K, inv, tab);
        return;
    }
#endif
    for (int64_t s = 0; s < s1 - s0; s++)
        for (int64_t k = 0; k < K; k++) {
            /* |f·inv| ≤ 32767 (up to rounding, which rounds back to 32767) */
            const int v = (int)nearbyintf(f[s * K + k] * inv);
            tab[s * 512 + k] = (uint8_t)(v & 0xFF);
            tab[s * 512 + 256 + k] = (uint8_t)((v >> 8) + 128);
        }
}

static int phase_tables(void *arg, int64_t w0, int64_t w1, int worker)
{
    q16_job *job = arg;
    (void)worker;
    for (int64_t w = w0; w < w1; w++)
        for (int64_t b; (b = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED)) < job->n_blocks;)
            build_block(job, b, job->ftab + w * job->ftab_floats);
    return AQ_OK;
}

static void run_task(const q16_job *job, int64_t t)
{
    const aq_quant *q = job->q;
    const int64_t rb0 = job->n_row_blocks * t / job->n_tasks, rb1 = job->n_row_blocks * (t + 1) / job->n_tasks;
    float *yb = job->yacc + rb0 * AQI_Q16_ROWS;
    memset(yb, 0, sizeof(float) * (size_t)((rb1 - rb0) * AQI_Q16_ROWS));
    for (int64_t b0 = 0; b0 < job->n_blocks; b0 += AQI_Q16_GROUP)
        for (int64_t rb = rb0; rb < rb1; rb++)
            for (int64_t b = b0; b < b0 + AQI_Q16_GROUP && b < job->n_blocks; b++) {
                const uint8_t *tab = job->tabs + b * AQI_Q16_TAB_BYTES;
#ifdef AQI_LUT_X86
                if (job->vbmi)
                    aqi_lut16_block_vbmi(q, tab, job->d[b], b, rb * AQI_Q16_ROWS, job->yacc + rb * AQI_Q16_ROWS);
                else
#endif
                    aqi_lut16_block_portable(q, tab, job->d[b], b, rb * AQI_Q16_ROWS, job->yacc + rb * AQI_Q16_ROWS);
            }
    for (int64_t r = rb0 * AQI_Q16_ROWS; r < rb1 * AQI_Q16_ROWS && r < q->rows; r++) {
        const int i = (int)(r % AQI_Q16_ROWS);
        const float v = job->yacc[r - i + (job->vbmi ? aqi_lut16_perm(i) : i)];
        job->y[r] = q->scales[r] * v; /* g_o = 1: group p = r */
    }
}

static int phase_rows(void *arg, int64_t w0, int64_t w1, int worker)
{
    q16_job *job = arg;
    (void)worker;
    for (int64_t w = w0; w < w1; w++)
        for (int64_t t; (t = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED)) < job->n_tasks;)
            run_task(job, t);
    return AQ_OK;
}

int aqi_lut16_matvec(const aq_quant *q, const float *x, float *y, int vbmi, int avx2_build, int64_t n_workers)
{
    q16_job job;
    size_t bytes;
    int st = AQ_OK;
    memset(&job, 0, sizeof job);
    job.q = q;
    job.x = x;
    job.y = y;
    job.vbmi = vbmi;
    job.avx2_build = avx2_build;
    job.n_pos = q->n_in_groups * q->M;
    job.n_blocks = (job.n_pos + AQI_Q16_BLOCK - 1) / AQI_Q16_BLOCK;
    job.n_row_blocks = (q->rows + AQI_Q16_ROWS - 1) / AQI_Q16_ROWS;
    job.n_tasks = n_workers > 1 ? AQI_Q16_TASKS_PER_THREAD * n_workers : 1;
    job.n_tasks = job.n_tasks < job.n_row_blocks ? job.n_tasks : job.n_row_blocks;
    job.ftab_floats = (AQI_Q16_BLOCK + 2 * (int64_t)q->M) * q->K;
    const int64_t n_floats = job.n_blocks * (AQI_Q16_TAB_BYTES / 4) + ((job.n_blocks + 15) & ~(int64_t)15)
                             + job.n_row_blocks * AQI_Q16_ROWS + n_workers * job.ftab_floats;
    if ((st = aqi_bytes(q->ctx, &bytes, n_floats, sizeof(float), "int16 lookup tables")) != AQ_OK)
        return st;
    if (!(job.tabs = aqi_alloc(q->ctx, bytes)))
        return AQ_ERR_NOMEM;
    job.d = (float *)(void *)(job.tabs + job.n_blocks * AQI_Q16_TAB_BYTES);
    job.yacc = job.d + ((job.n_blocks + 15) & ~(int64_t)15);
    job.ftab = job.yacc + job.n_row_blocks * AQI_Q16_ROWS;
    if (n_workers == 1) {
        phase_tables(&job, 0, 1, 0);
        job.next = 0;
        phase_rows(&job, 0, 1, 0);
    } else {
        st = aqi_parallel_for(q->ctx, n_workers, phase_tables, &job);
        job.next = 0;
        if (st == AQ_OK)
            st = aqi_parallel_for(q->ctx, n_workers, phase_rows, &job);
    }
    aqi_free(q->ctx, job.tabs);
    return st;
}

/* A_{b,r} of (1) entry by entry: q = 256·(high byte − 128) + low byte. */
void aqi_lut16_block_portable(const aq_quant *q, const uint8_t *tab, float d, int64_t b, int64_t r0, float *yb)
{
    const int64_t n = q->n_in_groups * q->M, s0 = b * AQI_Q16_BLOCK;
    const int64_t len = s0 + AQI_Q16_BLOCK < n ? AQI_Q16_BLOCK : n - s0;
    const int64_t r1 = r0 + AQI_Q16_ROWS < q->rows ? r0 + AQI_Q16_ROWS : q->rows;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *c = (const uint8_t *)q->codes + r * n + s0;
        int32_t a = 0;
        for (int64_t s = 0; s < len; s++) {
            const uint8_t *t = tab + s * 512;
            a += 256 * ((int32_t)t[256 + c[s]] - 128) + t[c[s]];
        }
        yb[r - r0] = fmaf(d, (float)a, yb[r - r0]);
    }
}

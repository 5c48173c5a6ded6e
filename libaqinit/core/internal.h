/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Internal declarations shared by the library's sources. Not installed. */
#ifndef AQINIT_INTERNAL_H
#define AQINIT_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "aqinit.h"

#if defined(__GNUC__)
#  define AQI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define AQI_PRINTF(f, a)
#endif

#define AQI_ALIGN 64 /* alignment of every internal allocation (cache line, AVX-512) */

typedef struct aqi_pool aqi_pool;

struct aq_context {
    aq_allocator allocator;
    pthread_mutex_t lock; /* guards the settings below and the error text */
    int32_t n_threads;    /* resolved (>= 1) */
    int32_t n_threads_requested;
    uint64_t seed;
    aq_log_fn log_fn;
    int32_t log_level;
    void *log_userdata;
    aq_progress_fn progress_fn;
    void *progress_userdata;
    int last_status;
    char last_error[512];
    pthread_mutex_t pool_lock; /* one parallel region at a time per context */
    aqi_pool *pool;
    int has_comm;  /* aq_context_set_comm: comm is set */
    aq_comm comm;  /* core/comm.h */
};

/* ---- errors and logging (error.c) ---- */
/* Record @p status with a printf-style message on @p ctx (may be NULL) and return status. */
int aqi_fail(aq_context *ctx, int status, const char *fmt, ...) AQI_PRINTF(3, 4);
void aqi_log(aq_context *ctx, int32_t level, const char *fmt, ...) AQI_PRINTF(3, 4);
/* Report progress; returns AQ_ERR_CANCELLED (with a message) if the callback asks to stop. */
int aqi_progress(aq_context *ctx, const char *operation, int32_t stage, int32_t n_stages,
                 int32_t round, double objective);

/* ---- memory (alloc.c): 64-byte aligned, through the context's allocator ---- */
void *aqi_alloc(aq_context *ctx, size_t size);        /* NULL + AQ_ERR_NOMEM message on failure */
void *aqi_calloc(aq_context *ctx, size_t n, size_t size); /* zeroed; overflow → NULL + message */
void aqi_free(aq_context *ctx, void *ptr);
/* Overflow-checked size arithmetic: return 0 on success, nonzero on overflow. */
int aqi_mul_size(size_t *out, size_t a, size_t b);
int aqi_mul3_size(size_t *out, size_t a, size_t b, size_t c);
/* Checked conversion of an int64_t count times element size to size_t bytes. */
int aqi_bytes(aq_context *ctx, size_t *out, int64_t count, size_t elem, const char *what);

/* ---- thread pool (pool.c) ---- */
/* Body of a parallel loop over [begin, end); @p worker is the chunk index (0..n_chunks-1). */
typedef int (*aqi_range_fn)(void *arg, int64_t begin, int64_t end, int worker);
/* Split [0, n) into ctx->n_threads contiguous chunks, run them on the pool and wait. The split
 * depends only on n and the thread count, so results are deterministic. Returns the status of
 * the lowest-numbered failing chunk (0 if none). Nested calls run serially. */
int aqi_parallel_for(aq_context *ctx, int64_t n, aqi_range_fn fn, void *arg);
int aqi_num_workers(aq_context *ctx); /* chunks aqi_parallel_for will use */
/* aqi_parallel_for over the items [begin, end) (a rank's share of a sharded loop). */
int aqi_parallel_for_range(aq_context *ctx, int64_t begin, int64_t end, aqi_range_fn fn, void *arg);

/* Vector level of the CPU kernels (cpu.c): 2 AVX-512, 1 AVX2 + FMA, 0 baseline. force >= 0
 * selects min(force, the best the CPU runs) for the whole process (tests); force < 0 only asks. */
int aqi_kernel_level(int force);
void aqi_pool_destroy(aqi_pool *pool);

/* ---- random numbers (rng.c): xoshiro256**, seeded from (seed, stream) by splitmix64 ---- */
typedef struct aqi_rng { uint64_t s[4]; } aqi_rng;
void aqi_rng_init(aqi_rng *rng, uint64_t seed, uint64_t stream);
uint64_t aqi_rng_next(aqi_rng *rng);
uint64_t aqi_rng_below(aqi_rng *rng, uint64_t n); /* uniform in [0, n), n > 0 */
double aqi_rng_uniform(aqi_rng *rng);             /* uniform in [0, 1) */

/* ---- checks (check.c) ---- */
int aqi_all_finite_f32(const float *x, int64_t rows, int64_t cols, int64_t ld);
int aqi_all_finite_f64(const double *x, int64_t rows, int64_t cols, int64_t ld);
/* A caller's matrix @p what (rows × cols of @p elem bytes, leading dimension ld): AQ_ERR_SHAPE if ld < cols,
 * AQ_ERR_OVERFLOW if ld exceeds the BLAS index range (2^31 − 1) or the extent (rows − 1)·ld + cols
 * does not fit in memory's address range; a message naming @p fn either way. */
/* Weights (or a target) the algorithms can quantize: finite and |w| <= AQI_MAX_ABS_WEIGHT, so that
 * row-group norms (the scales), squared distances of g_o·g-element tiles and products with H stay
 * finite in float; AQ_ERR_NONFINITE with a message naming @p fn and @p what otherwise. Real
 * weights are many orders of magnitude below the bound. */
#define AQI_MAX_ABS_WEIGHT 1e16
int aqi_check_weights(aq_context *ctx, const char *fn, const char *what, const float *W, int64_t rows,
                      int64_t cols, int64_t ld);
int aqi_check_ld(aq_context *ctx, const char *fn, const char *what, int64_t rows, int64_t cols, int64_t ld,
                 size_t elem);

/* ---- little-endian fields of the file formats (docs/formats.md) ---- */
static inline void aqi_put_le32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static inline void aqi_put_le64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static inline uint32_t aqi_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t aqi_get_le64(const unsigned char *p)
{
    return (uint64_t)aqi_get_le32(p) | (uint64_t)aqi_get_le32(p + 4) << 32;
}

/* ---- files (file.c) ---- */
#include <stdio.h>
/* A file written whole or not at all: aqi_file_create opens path.tmp; the caller writes to f;
 * aqi_file_commit flushes, fsyncs and renames it over path (and fsyncs the directory), or
 * removes it if @p failed or any step fails (AQ_ERR_IO with a message naming @p fn). Commit
 * always closes and frees. */
typedef struct aqi_file_out { FILE *f; char *tmp_path; const char *path; } aqi_file_out;
int aqi_file_create(aq_context *ctx, const char *fn, aqi_file_out *out, const char *path);
int aqi_file_commit(aq_context *ctx, const char *fn, aqi_file_out *out, int failed);
/* Open @p path for reading only if it is a regular file (AQ_ERR_IO otherwise: a directory, a
 * FIFO, a device), and give its size, so a loader can check the length before it allocates. */
int aqi_file_open_regular(aq_context *ctx, const char *fn, const char *path, FILE **out, uint64_t *size);

/* ---- checksums (checksum.c): CRC-32 (IEEE 802.3, reflected, as zlib), FNV-1a 64 ---- */
uint32_t aqi_crc32(uint32_t crc, const void *data, size_t n);
/* FNV-1a 64 of @p data continuing from @p h (start with AQI_FNV1A64_INIT): a fingerprint, not a
 * defence against crafted input. */
#define AQI_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t aqi_fnv1a64(uint64_t h, const void *data, size_t n);

#endif

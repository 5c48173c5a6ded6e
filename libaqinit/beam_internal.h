/* Internal interface of the layer optimiser: the beam search over codes (beam.c), the codebook
 * and scale updates (codebook_update.c) and the helpers they share (optimize.c). Every
 * function here minimises or evaluates L = tr((W − Ŵ) H (W − Ŵ)ᵀ) for one layer. */
#ifndef AQINIT_BEAM_INTERNAL_H
#define AQINIT_BEAM_INTERNAL_H

#include <string.h>

#include "options.h"
#include "quant.h"

/* The layer being optimised: W (rows × cols of the quant, leading dimension ld) and the
 * undamped Hessian as float, cols × cols, leading dimension cols. */
typedef struct aqi_layer {
    aq_context *ctx;
    const float *W;
    int64_t ld;
    const float *H;
} aqi_layer;

/* Called (tests only, width 1) once per group and step with the group's codes before the step
 * ([J][M]) and ΔL of every candidate k < K as computed by the incremental search (from the
 * worker threads: the callback must only touch data of its own group). */
typedef void (*aqi_beam_trace_fn)(void *userdata, int64_t group, int32_t j, int32_t m,
                                  const uint16_t *codes, const double *delta_loss);

typedef struct aqi_beam_config {
    int32_t width;         /* states kept per output group, 1..64 */
    int32_t random_order;  /* shuffle input groups and codebooks with (ctx seed, stream) */
    uint64_t stream;       /* RNG stream of the shuffle */
    int64_t max_in_groups; /* 0: all; > 0: sweep only the first n input groups (benchmarks) */
    int64_t batch_groups;  /* 0: automatic; > 0: at most this many input groups per batch (tests) */
    aqi_beam_trace_fn trace;
    void *trace_userdata;
    int64_t block_groups;  /* 0: automatic; > 0: at most this many output groups per block (tests) */
} aqi_beam_config;

/* One beam-search pass over the codes of @p q (codebooks and scales fixed). @p loss_before and
 * @p loss_after (may be NULL) receive L before the pass (computed only if asked) and L plus the
 * tracked change of the chosen states. On failure the codes of @p q may be partly updated: the
 * public entry points work on a copy. */
int aqi_opt_beam_pass(const aqi_layer *layer, aq_quant *q, const aqi_beam_config *cfg,
                      double *loss_before, double *loss_after);

/* Codebook update of ::AQ_OPT_CODEBOOK_UPDATE, then the closed-form scales if
 * ::AQ_OPT_UPDATE_SCALES and the format has scales. */
int aqi_opt_update_codebooks(const aqi_layer *layer, aq_quant *q, const aqi_options_values *v);

/* The pieces of aqi_opt_update_codebooks, for tests and benchmarks. */
int aqi_opt_codebooks_exact(const aqi_layer *layer, aq_quant *q);
int aqi_opt_codebooks_adam(const aqi_layer *layer, aq_quant *q, int64_t steps, double lr);
int aqi_opt_scales(const aqi_layer *layer, aq_quant *q);

/* Argument checks of the public entry points (@p fn names the caller in messages): non-NULL
 * arguments, ld >= cols, H of the quant's width, sizes within the BLAS index range, finite W,
 * and if @p check_quant_arrays finite codebooks and scales and codes < K. */
int aqi_opt_validate(aq_context *ctx, const char *fn, const aq_quant *q, const float *W, int64_t ld,
                     const aq_hessian *H, int check_quant_arrays);

/* L (and tr(W H Wᵀ) if @p w_energy is not NULL), with float products accumulated in double. */
int aqi_opt_loss(const aqi_layer *layer, const aq_quant *q, double *loss, double *w_energy);

/* Rows of output groups [p0, p1) of Ŵ into @p out (leading dimension ldo); with_scale = 0
 * leaves out the scales (the unscaled tiles Σ_m C_m[b]). */
void aqi_opt_reconstruct(const aq_quant *q, int64_t p0, int64_t p1, float *out, int64_t ldo,
                         int with_scale);

/* Working copies of a quant's arrays: the struct is copied and the arrays duplicated through
 * @p ctx. aqi_opt_quant_commit copies them back into @p dst (same shape). */
int aqi_opt_quant_dup(aq_context *ctx, aq_quant *copy, const aq_quant *src);
void aqi_opt_quant_commit(aq_quant *dst, const aq_quant *copy);
void aqi_opt_quant_release(aq_context *ctx, aq_quant *copy);

/* ---- kernels ---- */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* The same C code compiled for AVX-512 / AVX2 / baseline, chosen at load time
 * (codebook_update.c). No contraction into FMA (ISO C mode), so every variant gives the same
 * bits. */
#  define AQI_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#  define AQI_KERNEL
#endif

#if defined(__GNUC__) && !defined(AQI_NO_VECTORS)
/* Generic vectors of at most 32 bytes (one AVX2 register; wider ones GCC keeps in memory
 * without AVX-512) with unaligned loads and stores. Macros, not functions: passing vectors by
 * value would depend on the target's ABI. Without them the kernels use plain loops. */
#  define AQI_VECTORS 1
#  define LOAD_VEC(v, p) memcpy(&(v), (p), sizeof(v))
#  define STORE_VEC(p, v) memcpy((p), &(v), sizeof(v))
#else
#  define AQI_VECTORS 0
#endif

/* beam_kernels.c (used by beam.c; exposed for tests and benchmarks). Each kernel exists in
 * variants for AVX-512, AVX2 and SSE2 (x86-64 with GCC) that give the same bits; the best the
 * CPU runs is used. */
#define AQI_SCORE_ROWS 8   /* rows per register block of the score kernels */
#define AQI_SCORE_LANES 16 /* codewords per vector block; tiles are multiples of it */

/* out[r][k] = t[k] + Σ_d U[r][d]·CT[d][k] for r < n_rows (a multiple of AQI_SCORE_ROWS) and
 * k < kt (a multiple of AQI_SCORE_LANES): the candidate scores of equation (B2) in beam.c. */
void aqi_score_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                    int64_t ldct, const float *t, int64_t kt, float *out, int64_t ldo);

/* aqi_score_tile folded into running lane-wise minima: for row r and lane l, lmin[r][l] /
 * lidx[r][l] keep the smallest score so far among the codewords k ≡ l (mod lanes) and its first
 * index (k_base + tile position); score_a[r] receives the score of codeword a[r] if it lies in
 * the tile. The same bits as aqi_score_tile. The width-1 scan. */
void aqi_score_min_tile(const float *U, int64_t ldu, int64_t n_rows, int32_t D, const float *CT,
                        int64_t ldct, const float *t, int64_t kt, int32_t k_base, const int32_t *a,
                        float *lmin, int32_t *lidx, float *score_a);

/* t[k] = Σ_r c_{k,r}ᵀ Hjj c_{k,r} for k < kt (a multiple of AQI_SCORE_LANES), where
 * c_{k,r}[e] = CT[r·g + e][k] (r < go, e < g) and Hjj is g × g with leading dimension ldh: the
 * tables of (B2) in beam.c. */
void aqi_table_tile(const float *CT, int64_t ldct, int32_t go, int32_t g, const float *Hjj, int64_t ldh,
                    int64_t kt, float *t);

/* Smallest of v[0..n) (n a multiple of AQI_SCORE_LANES) and its first index, or *best_k = −1
 * if no value is below +inf: the width-1 scan of the scores. */
void aqi_argmin_tile(const float *v, int64_t n, float *best, int32_t *best_k);

/* An upper bound of the w-th smallest of v[0..n) (w <= AQI_SCORE_LANES), +inf if n < w. */
float aqi_kth_bound_tile(const float *v, int64_t n, int32_t w);

/* Indices k < n with v[k] <= bound, increasing, into idx; returns their number. */
int32_t aqi_filter_tile(const float *v, int64_t n, float bound, int32_t *idx);

/* For each of n rows: G_r[0..I) += Σ_d coef_r[d]·Hrows[d][0..I) (d < g, Hrows has leading
 * dimension ldh): the rank-g corrections (B3), (B4) of beam.c. */
void aqi_rank_g_update(float *const *G, const float *const *coef, int64_t n, int32_t g,
                       const float *Hrows, int64_t ldh, int64_t ncols);

/* C = A·B for n rows (A n × kdim, B kdim × nc, nc a multiple of AQI_SCORE_LANES, leading
 * dimensions lda, ldb, ldc): the products S = ΔW·H[:, J_batch] (B4) of beam.c. A row's result
 * does not depend on n or on its position. */
void aqi_product_rows(const float *A, int64_t lda, int64_t n, int64_t kdim, const float *B, int64_t ldb,
                      int64_t nc, float *C, int64_t ldc);

#endif

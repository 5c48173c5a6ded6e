/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/**
 * @file aqinit.h
 * @brief libaqinit — additive quantization of LLM weights to 2–3 bits per parameter,
 *        with output-aware EM (OA-EM) codebook initialisation.
 *
 * This is the only public header. It compiles alone as C99 and as C++.
 *
 * @section conventions Conventions
 * - Every function that can fail returns an `int` status: ::AQ_OK (0) or a negative
 *   `AQ_ERR_*` code. Codes are pinned forever; aq_strerror() names them and
 *   aq_context_last_error() gives the detailed message of the last failure.
 * - Handles are opaque, created by `aq_*_create` (out-parameter first) and released by
 *   `aq_*_free`, which accepts NULL. A handle created from a context keeps a pointer to it:
 *   free every handle before its context.
 * - A failing call leaves every handle exactly as it was before the call.
 * - Matrices are float32, row-major, with an explicit leading dimension `ld` (elements
 *   between the starts of consecutive rows, ld >= number of columns). Sizes are int64_t.
 * - Callbacks take `void *userdata` last.
 * - No variadic functions; every compile-time constant has a run-time twin
 *   (aq_constant()) so that FFI users (Python ctypes) need not parse this header.
 *
 * @section threads Thread safety
 * - Distinct handles may be used from distinct threads freely.
 * - One ::aq_context may be shared by several threads: its settings are read atomically
 *   with respect to the setters, its last-error message is protected by a lock (with
 *   concurrent failures it holds the latest one), and operations that use its thread pool
 *   from several host threads at once take turns.
 * - aq_hessian_add() and aq_hessian_merge() (as destination) may be called concurrently on
 *   one ::aq_hessian; every other function that modifies a handle requires exclusive use of
 *   that handle. Read-only functions (`const` handle) may run concurrently with each other.
 * - Log and progress callbacks are called from the thread that called the library
 *   function, never from a pool worker, and never concurrently for one operation.
 *
 * @section contexts Contexts and handles
 * - Every handle belongs to the context it was created from (a loaded file to the context
 *   given, a clone — aq_quant_clone(), aq_options_clone() — to its source's) and uses that
 *   context's thread pool, allocator, callbacks and last-error message.
 * - A call that takes a context (aq_init(), aq_beam_search(), aq_update_codebooks(),
 *   aq_optimize(), aq_quantize_layer(), aq_vstep(), aq_pipeline_create()) requires every handle
 *   passed to it (the quant, the Hessian, the options) to belong to that context; a handle of
 *   another context is refused with ::AQ_ERR_INVALID_ARG, a message on the context passed, and
 *   nothing changed (since 0.2; 0.1 mixed the two contexts silently).
 * - A call without a context argument uses its first handle's context (the quant of
 *   aq_quant_output_error(), the destination of aq_hessian_merge()); its other handles are only
 *   read and may belong to any context.
 *
 * @section lifetimes Lifetimes of what callbacks receive
 * Nothing a callback receives may be kept after it returns, unless copied:
 * - the @c message of an ::aq_log_fn and the ::aq_progress (with its @c operation string) of an
 *   ::aq_progress_fn are valid only during the call;
 * - the @c quant and @c report given to aq_pipeline_callbacks.put_result are the library's and are
 *   freed when put_result returns: read them there (aq_quant_dequantize(),
 *   aq_quant_codes_const(), aq_quant_clone() or aq_quant_save() to keep them);
 * - the ::aq_hessian given to aq_pipeline_callbacks.calibrate is freed after the layer; add to it
 *   only during that call (from any number of host threads, all finished before it returns).
 * What the host gives the library through callbacks is read during the call only, except the
 * @c name a layer_info callback writes: the library reads the string until the next callback of
 * that pipeline run, so it must stay valid at least that long (a string owned by the host's model
 * for the whole run is the usual choice).
 */
#ifndef AQINIT_H
#define AQINIT_H

#include <stddef.h>
#include <stdint.h>

#include "aqinit_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Marks an exported function. The library's own build defines AQ_BUILDING_LIBRARY. */
#ifndef AQ_API
#  if defined(_WIN32) && defined(AQ_BUILDING_LIBRARY)
#    define AQ_API __declspec(dllexport)
#  elif defined(__GNUC__) && defined(AQ_BUILDING_LIBRARY)
#    define AQ_API __attribute__((visibility("default")))
#  else
#    define AQ_API
#  endif
#endif

/* ------------------------------------------------------------------------------------------ */
/** @name Version */
/**@{*/
/** Run-time version number, AQ_VERSION_NUMBER of the library actually loaded. */
AQ_API uint32_t aq_version(void);
/** Run-time version string, e.g. "0.1.0". */
AQ_API const char *aq_version_string(void);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Status codes (values pinned forever; new codes get new values) */
/**@{*/
#define AQ_OK                 0   /**< success */
#define AQ_ERR_INVALID_ARG   -1   /**< NULL pointer, value out of range, unknown option */
#define AQ_ERR_SHAPE         -2   /**< sizes that do not fit together */
#define AQ_ERR_OVERFLOW      -3   /**< a size computation would overflow */
#define AQ_ERR_NOMEM         -4   /**< allocation failed */
#define AQ_ERR_NONFINITE     -5   /**< NaN or Inf in the input */
#define AQ_ERR_NOT_PSD       -6   /**< a Hessian (block) is not symmetric positive (semi)definite */
#define AQ_ERR_FORMAT        -7   /**< malformed, truncated, corrupted or foreign file */
#define AQ_ERR_IO            -8   /**< the operating system failed to read or write a file */
#define AQ_ERR_CANCELLED     -9   /**< a progress callback asked to stop */
#define AQ_ERR_CALLBACK     -10   /**< a host callback reported an error */
#define AQ_ERR_UNSUPPORTED  -11   /**< valid request this build or version cannot do */
#define AQ_ERR_INTERNAL     -12   /**< a numerical kernel failed unexpectedly */
#define AQ_ERR_THREAD       -13   /**< a thread could not be created */
#define AQ_ERR_MISMATCH     -14   /**< a saved result was produced from other inputs or settings */
/**@}*/

/** Name and short description of a status code (static string, never NULL). */
AQ_API const char *aq_strerror(int status);

/**
 * Run-time twin of every compile-time constant of this header: looks up @p name
 * (e.g. "AQ_ERR_SHAPE", "AQ_OPT_EM_MAX_ROUNDS", "AQ_VERSION_NUMBER") and writes its value.
 * @return ::AQ_OK, or ::AQ_ERR_INVALID_ARG for an unknown name.
 */
AQ_API int aq_constant(int64_t *value, const char *name);

/* ------------------------------------------------------------------------------------------ */
/** @name Context: threads, seed, allocator, callbacks, last error */
/**@{*/
typedef struct aq_context aq_context;

/** Custom allocator, fixed when the context is created. Allocations need no alignment
 *  beyond malloc's; the library aligns internally. Both functions must be thread-safe: the
 *  context's worker threads may allocate concurrently. */
typedef struct aq_allocator {
    void *(*alloc)(size_t size, void *userdata); /**< return NULL on failure */
    void (*free)(void *ptr, void *userdata);     /**< ptr is never NULL */
    void *userdata;
} aq_allocator;

#define AQ_LOG_ERROR 0
#define AQ_LOG_WARN  1
#define AQ_LOG_INFO  2
#define AQ_LOG_DEBUG 3

/** Log sink; @p message is valid only during the call. */
typedef void (*aq_log_fn)(int32_t level, const char *message, void *userdata);

/** What a progress callback is told. Read only fields below struct_size. */
typedef struct aq_progress {
    uint32_t struct_size;   /**< sizeof(aq_progress) of the library that filled it */
    int32_t stage;          /**< e.g. codebook index m during initialisation */
    int32_t n_stages;       /**< number of stages of the operation */
    int32_t round;          /**< iteration within the stage (0 = after seeding) */
    /** What reports, a stable name a host may filter on (names are only ever added):
     *  "init.kmeans" (aq_init's k-means stages: ::AQ_INIT_GREEDY, and OA-EM's Euclidean seeding),
     *  "init.oaem" (the OA-EM rounds of each codebook), "init.joint" (::AQ_OPT_EM_JOINT_PASSES),
     *  "optimize" (aq_optimize(), once per epoch), "pipeline" (aq_pipeline_run(), per layer). */
    const char *operation;
    double objective;       /**< the current objective of the stage */
} aq_progress;

/** Progress callback: return 0 to go on, non-zero to cancel (the operation then returns
 *  ::AQ_ERR_CANCELLED and leaves its handles valid and unchanged). */
typedef int (*aq_progress_fn)(const aq_progress *progress, void *userdata);

/** Create a context with the default allocator, 1 thread and seed 0. */
AQ_API int aq_context_create(aq_context **out);
/** Create a context whose every allocation goes through @p allocator (copied). */
AQ_API int aq_context_create_with_allocator(aq_context **out, const aq_allocator *allocator);
/** Free a context (NULL is fine). Its handles must have been freed. */
AQ_API void aq_context_free(aq_context *ctx);

/** Number of threads of the context's pool; 0 means the number of online CPUs.
 *  Results depend on the seed and the thread count, nothing else. */
AQ_API int aq_context_set_threads(aq_context *ctx, int32_t n_threads);
AQ_API int32_t aq_context_get_threads(const aq_context *ctx);
/** Seed of every random choice the library makes. */
AQ_API int aq_context_set_seed(aq_context *ctx, uint64_t seed);
AQ_API uint64_t aq_context_get_seed(const aq_context *ctx);
/** Messages at @p max_level or more important go to @p fn (NULL: no logging, the default). */
AQ_API int aq_context_set_log_callback(aq_context *ctx, aq_log_fn fn, int32_t max_level,
                                       void *userdata);
/** Progress callback (NULL: none). */
AQ_API int aq_context_set_progress_callback(aq_context *ctx, aq_progress_fn fn, void *userdata);
/** Message of the last failure on this context ("" if none). Valid until the next failing
 *  call on the context; copy it with aq_context_copy_last_error() when threads share it. */
AQ_API const char *aq_context_last_error(const aq_context *ctx);
/** Copy the last message into @p buf (always NUL-terminated when size > 0). Returns the
 *  status of that failure (::AQ_OK if none). */
AQ_API int aq_context_copy_last_error(const aq_context *ctx, char *buf, size_t size);
/** Forget the last failure. */
AQ_API void aq_context_clear_error(aq_context *ctx);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Communicator: one computation across processes or machines
 *
 * A host that runs several processes (MPI ranks, a framework's workers) hands the library a
 * communicator: a versioned struct of callbacks over the host's own transport. The library
 * never links MPI; `aqinit-mpi.h` (library `aqinit-mpi`) binds this struct to an MPI_Comm.
 *
 * With a communicator attached (aq_context_set_comm()), every rank calls the same functions
 * with the same arguments (the same W, H, quant, options, seed and format) and each does its
 * share of the work: aq_init (E-step over input groups or points, M-step over clusters,
 * objective blocks), aq_beam_search (output groups), and everything built on them
 * (aq_optimize, aq_quantize_layer, aq_pipeline); aq_hessian_allreduce() combines the ranks'
 * calibration statistics. Every rank ends with the same handles, **bit-identical for any
 * number of ranks and to the run without a communicator** (for the same thread count):
 * sharded results are computed by their owner exactly as one process computes them and
 * exchanged by broadcast; partial sums are gathered and added in a fixed order (block order,
 * rank order), never in an order the transport chooses. docs/scaling.md has the details.
 *
 * Errors: a failure on one rank (bad allocation, a cancelling progress callback, a failing
 * host callback) is agreed on at the next exchange, and every rank returns the status of the
 * lowest-numbered failing rank (the other ranks' messages name that rank), with its handles
 * unchanged. A callback of the communicator that returns non-zero is ::AQ_ERR_CALLBACK; the
 * transport is then in an unknown state and the host should abort the job.
 *
 * The callbacks are called from the thread that called the library function (never from the
 * context's worker threads), in the same order on every rank. */
/**@{*/
typedef struct aq_comm {
    uint32_t struct_size; /**< sizeof(aq_comm) of the caller's header: set by aq_comm_init() */
    int32_t rank;         /**< this process, 0 .. size − 1 */
    int32_t size;         /**< number of processes, >= 1 */
    /** In-place sum over all ranks of @p count doubles (every rank gets the sums). The library
     *  uses it only for sums of integers (exact in any order). */
    int (*allreduce_sum_f64)(double *buf, int64_t count, void *userdata);
    /** In-place sum over all ranks of @p count floats (reserved for hosts and later versions). */
    int (*allreduce_sum_f32)(float *buf, int64_t count, void *userdata);
    /** Broadcast @p nbytes bytes of @p buf from rank @p root to every rank. */
    int (*broadcast)(void *buf, int64_t nbytes, int32_t root, void *userdata);
    /** Error agreement: in, this rank's status; out, *status = the status of the lowest rank
     *  whose status is non-zero and *failed_rank = that rank, or 0 and −1 if every rank is OK. */
    int (*agree)(int32_t *status, int32_t *failed_rank, void *userdata);
    void *userdata;       /**< passed to every callback */
} aq_comm;

/** Zero @p comm and set struct_size, rank 0 and size 1. */
AQ_API void aq_comm_init(aq_comm *comm);
/** Attach @p comm (copied; NULL detaches) to @p ctx. Checks struct_size, 0 <= rank < size and
 *  that every callback is set (::AQ_ERR_INVALID_ARG otherwise, the context unchanged). Set it
 *  before creating the handles that use it, and do not change it during a call. */
AQ_API int aq_context_set_comm(aq_context *ctx, const aq_comm *comm);
/** This process's rank and the number of ranks of the context's communicator (0 and 1 without
 *  one; 0 and 0 for a NULL context). */
AQ_API int32_t aq_context_comm_rank(const aq_context *ctx);
AQ_API int32_t aq_context_comm_size(const aq_context *ctx);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Options: one handle, typed setters keyed by pinned enum values */
/**@{*/
typedef struct aq_options aq_options;

/** Option keys (pinned). Each algorithm reads the keys it needs and ignores the others. */
#define AQ_OPT_INIT_METHOD              100 /**< int: AQ_INIT_GREEDY (default) or AQ_INIT_OA_EM */
#define AQ_OPT_KMEANS_SEEDING           101 /**< int: AQ_SEEDING_RANDOM_ROWS (default) or AQ_SEEDING_KMEANSPP */
#define AQ_OPT_KMEANS_MAX_ITER          102 /**< int: Lloyd iterations per codebook, default 100, >= 0 */
#define AQ_OPT_KMEANS_TOL               103 /**< double: stop when the relative objective change < tol, default 1e-6 */
#define AQ_OPT_EM_SEEDING               110 /**< int: AQ_EM_SEED_KMEANS (default), AQ_EM_SEED_RANDOM_ROWS, AQ_EM_SEED_KMEANSPP, AQ_EM_SEED_PRODUCT */
#define AQ_OPT_EM_MAX_ROUNDS            111 /**< int: OA-EM rounds per codebook, default 10, >= 0 */
#define AQ_OPT_EM_TOL                   112 /**< double: stop when the relative decrease < tol, default 1e-4 */
#define AQ_OPT_EM_DAMPING               113 /**< double: λ of H_j + λ·mean(diag H)·I, default 0.01 (the reference); before aq_optimize at low ρ, 1 ends lower (docs/algorithms.md) */
#define AQ_OPT_EM_SCALE_WEIGHTING       114 /**< int: 1 (default) weights tile (p,j) by s_p², 0 as the reference */
#define AQ_OPT_EM_MSTEP                 115 /**< int: AQ_MSTEP_EXACT (default) or AQ_MSTEP_ADAM */
#define AQ_OPT_EM_ADAM_STEPS            116 /**< int: Adam steps per M-step, default 100 (reference) */
#define AQ_OPT_EM_ADAM_LR               117 /**< double: Adam learning rate, default 1e-4 (reference) */
#define AQ_OPT_EM_JOINT_PASSES          118 /**< int: joint passes over all codebooks after the residual pass, default 0 */
#define AQ_OPT_BEAM_WIDTH               200 /**< int: states kept per row in the beam search, default 1 (coordinate descent), 1..64 */
#define AQ_OPT_BEAM_RANDOM_ORDER        201 /**< int: 1 sweeps input groups and codebooks in a seeded random order, default 0 */
#define AQ_OPT_CODEBOOK_UPDATE          210 /**< int: AQ_CODEBOOK_UPDATE_AUTO (default), _EXACT, _ADAM, _NONE */
#define AQ_OPT_CODEBOOK_EXACT_MAX_DIM   211 /**< int: AUTO uses the exact solve when M·K·g <= this, conjugate gradients above, default 256 (4096 before 0.2) */
#define AQ_OPT_CODEBOOK_ADAM_STEPS      212 /**< int: Adam steps per codebook update, default 100 (AQLM steps_per_epoch) */
#define AQ_OPT_CODEBOOK_ADAM_LR         213 /**< double: Adam learning rate, default 1e-4 (AQLM) */
#define AQ_OPT_UPDATE_SCALES            214 /**< int: 1 (default) re-fits the scales in closed form after each codebook update */
#define AQ_OPT_CODEBOOK_CG_ITERS        215 /**< int: conjugate-gradient iterations of AQ_CODEBOOK_UPDATE_CG, default 4, 1..10000 (since 0.2) */
#define AQ_OPT_MAX_EPOCHS               220 /**< int: epochs of {codebook/scale update, beam pass} in aq_optimize, default 10 */
#define AQ_OPT_REL_TOL                  221 /**< double: aq_optimize stops when an epoch improves L by less than this fraction, default 0.01 */
#define AQ_OPT_HESSIAN_DAMPING          222 /**< double: λ ≥ 0: aq_beam_search, aq_update_codebooks and aq_optimize minimise L with H + λ·mean(diag H)·I (a ridge toward the plain weight error, against fitting the calibration text too closely), default 0 */
#define AQ_OPT_VSTEP_MAX_FRACTION       230 /**< double: aq_vstep revisits at most this fraction of the tiles, default 0.01, in (0, 1] */
#define AQ_OPT_VSTEP_SELECTION          231 /**< int: AQ_VSTEP_LARGEST (default), AQ_VSTEP_SAMPLED or AQ_VSTEP_GAIN */
#define AQ_OPT_VSTEP_TRUST_RATIO        232 /**< double: > 0 rejects a tile change larger than this times the tile's norm, default 0 (off) */
#define AQ_OPT_VSTEP_MAX_CHANGE         233 /**< double: > 0 keeps ‖Ŵ_new − Ŵ_old‖_F <= this times ‖Ŵ_old‖_F over the matrix (changes admitted in priority order), default 0 (off) */

#define AQ_OPT_PIPELINE_RESUME         300 /**< int: what aq_pipeline_run checks before reusing a saved layer: AQ_RESUME_VERIFY (default), AQ_RESUME_VERIFY_HESSIAN or AQ_RESUME_ACCEPT */

#define AQ_INIT_GREEDY 0 /**< AQLM's greedy residual Euclidean k-means */
#define AQ_INIT_OA_EM  1 /**< output-aware EM with the Hessian-weighted Mahalanobis distance */

#define AQ_SEEDING_RANDOM_ROWS 0 /**< K distinct random points */
#define AQ_SEEDING_KMEANSPP    1 /**< k-means++ (D² sampling) */

#define AQ_EM_SEED_KMEANS      0 /**< Euclidean k-means result, as the reference does */
#define AQ_EM_SEED_RANDOM_ROWS 1
#define AQ_EM_SEED_KMEANSPP    2
#define AQ_EM_SEED_PRODUCT     3 /**< a B-bit codebook starts as all sums of two codebooks of ⌈B/2⌉ and ⌊B/2⌋ bits fitted in turn (each seeded by k-means), then OA-EM rounds at full K: for K = 65,536 (1x16) far cheaper than k-means at full K (since 0.2) */

#define AQ_VSTEP_LARGEST 0 /**< the tiles farthest from the target */
#define AQ_VSTEP_SAMPLED 1 /**< tiles sampled without replacement with probability ∝ their distance (seeded) */
#define AQ_VSTEP_GAIN    2 /**< every tile gets a coordinate pass; the largest decreases of the distance are kept */

#define AQ_RESUME_VERIFY         0 /**< reuse a saved layer only if its format, shape, options, seed and weight match this run (the weight is asked for with get_weight) */
#define AQ_RESUME_VERIFY_HESSIAN 1 /**< as AQ_RESUME_VERIFY, and the Hessian too: resumed layers are calibrated again */
#define AQ_RESUME_ACCEPT         2 /**< reuse a saved layer whose format and shape match, whatever produced it (a warning is logged per difference) */

#define AQ_MSTEP_EXACT 0 /**< closed form: one g×g SPD solve per centroid */
#define AQ_MSTEP_ADAM  1 /**< Adam + cosine schedule, as the reference implementation */

#define AQ_CODEBOOK_UPDATE_AUTO  0 /**< exact when small enough (AQ_OPT_CODEBOOK_EXACT_MAX_DIM), else conjugate gradients (Adam before 0.2) */
#define AQ_CODEBOOK_UPDATE_EXACT 1 /**< normal equations of size M·K·g, Cholesky (never increases L) */
#define AQ_CODEBOOK_UPDATE_ADAM  2 /**< Adam with AQLM's settings (β = (0, 0.95)) on the analytic gradient */
#define AQ_CODEBOOK_UPDATE_NONE  3 /**< keep the codebooks (scales may still be re-fitted) */
#define AQ_CODEBOOK_UPDATE_CG    4 /**< the same least squares by preconditioned conjugate gradients without forming the normal equations: AQ_OPT_CODEBOOK_CG_ITERS products with H, warm-started from the current codebooks, never increases L (since 0.2) */

/** Create an options handle holding every default. */
AQ_API int aq_options_create(aq_options **out, aq_context *ctx);
AQ_API void aq_options_free(aq_options *opts);
/** Copy of @p src (same context). */
AQ_API int aq_options_clone(aq_options **out, const aq_options *src);
/** Set an integer option; unknown key, wrong type or out-of-range value → ::AQ_ERR_INVALID_ARG
 *  and the handle unchanged. */
AQ_API int aq_options_set_int(aq_options *opts, int32_t key, int64_t value);
/** Set a floating-point option (NaN/Inf → ::AQ_ERR_NONFINITE). */
AQ_API int aq_options_set_double(aq_options *opts, int32_t key, double value);
AQ_API int aq_options_get_int(int64_t *value, const aq_options *opts, int32_t key);
AQ_API int aq_options_get_double(double *value, const aq_options *opts, int32_t key);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Hessian statistics H = XᵀX / n, accumulated in double */
/**@{*/
typedef struct aq_hessian aq_hessian;

/** Create an empty Hessian (n = 0) for @p n_inputs input features. */
AQ_API int aq_hessian_create(aq_hessian **out, aq_context *ctx, int64_t n_inputs);
/** Create from a given symmetric matrix @p H (n_inputs × n_inputs, leading dimension @p ld)
 *  that stands for @p n_samples samples (> 0). Non-finite → ::AQ_ERR_NONFINITE; asymmetric
 *  or negative diagonal → ::AQ_ERR_NOT_PSD. */
AQ_API int aq_hessian_create_from_matrix(aq_hessian **out, aq_context *ctx, const double *H,
                                         int64_t n_inputs, int64_t ld, int64_t n_samples);
AQ_API void aq_hessian_free(aq_hessian *h);
/** Add @p n_rows input rows X (n_rows × n_inputs, leading dimension @p ld): the running mean
 *  becomes H ← (n·H + XᵀX)/(n + n_rows). Any NaN/Inf → ::AQ_ERR_NONFINITE and nothing is
 *  accumulated. Safe to call concurrently on one handle. */
AQ_API int aq_hessian_add(aq_hessian *h, const float *X, int64_t n_rows, int64_t ld);
/** Fold @p src into @p dst as if dst had seen src's samples too (weighted by sample counts). */
AQ_API int aq_hessian_merge(aq_hessian *dst, const aq_hessian *src);
/** Combine the partial statistics of every rank (each added its own calibration rows) through
 *  the communicator of @p h's context: afterwards every rank holds the same Hessian, the merge
 *  (as aq_hessian_merge, weighted by sample counts) of rank 0's, rank 1's, … statistics in rank
 *  order, whatever the transport. Collective: every rank calls it. Without a communicator (or
 *  with one rank) it changes nothing. Its bits depend on how the rows were split across ranks,
 *  as any floating-point sum does; everything computed from a given Hessian does not. */
AQ_API int aq_hessian_allreduce(aq_hessian *h);
AQ_API int64_t aq_hessian_num_inputs(const aq_hessian *h);
AQ_API int64_t aq_hessian_num_samples(const aq_hessian *h);
/** Copy H + λ·mean(diag H)·I (full symmetric, n_inputs × n_inputs, leading dimension @p ld). */
AQ_API int aq_hessian_copy_matrix(const aq_hessian *h, double *out, int64_t ld, double rel_damping);
/** Copy the diagonal of H + λ·mean(diag H)·I (n_inputs values). */
AQ_API int aq_hessian_copy_diagonal(const aq_hessian *h, double *out, double rel_damping);
/** Copy the g×g diagonal block of input group @p group (inputs group·g … group·g+g−1) of
 *  H + λ·mean(diag H)·I, row-major. */
AQ_API int aq_hessian_copy_block(const aq_hessian *h, double *out, int64_t group_size,
                                 int64_t group, double rel_damping);
/** Save to @p path in the format of docs/formats.md (versioned, checksummed). */
AQ_API int aq_hessian_save(const aq_hessian *h, const char *path);
/** Load a file written by aq_hessian_save(). Bad file → ::AQ_ERR_FORMAT, nothing created. */
AQ_API int aq_hessian_load(aq_hessian **out, aq_context *ctx, const char *path);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Format of a quantized matrix */
/**@{*/
#define AQ_SCALE_NONE             0 /**< no scales (s_p = 1) */
#define AQ_SCALE_PER_OUTPUT_GROUP 1 /**< one fp16-counted scale per output group (AQLM default) */

#define AQ_MAX_BITS_PER_CODEBOOK 16

/** Shape of a quantized matrix: every g_o×g tile (p, j) is s_p · Σ_m C_m[b(p,j,m)].
 *  Initialise with aq_format_init(), then change fields. */
typedef struct aq_format {
    uint32_t struct_size;      /**< set by aq_format_init() */
    int32_t num_codebooks;     /**< M >= 1 */
    int32_t bits_per_codebook; /**< B in 1..16, K = 2^B */
    int32_t in_group_size;     /**< g >= 1, divides the number of columns */
    int32_t out_group_size;    /**< g_o >= 1, divides the number of rows */
    int32_t scale_mode;        /**< AQ_SCALE_* */
} aq_format;

/** Defaults: 2x8, g = 8, g_o = 1, AQ_SCALE_PER_OUTPUT_GROUP. */
AQ_API void aq_format_init(aq_format *fmt);
/** Parse "MxB" optionally followed by "gG" and "oGO", e.g. "2x8g8", "1x16g8o1", "1x8g4".
 *  Leaves no message; aq_format_parse_ctx() does. */
AQ_API int aq_format_parse(aq_format *fmt, const char *text);
/** As aq_format_parse(); on failure (::AQ_ERR_INVALID_ARG, @p fmt unchanged) @p ctx (may be NULL)
 *  receives a message naming the text, the position and what was expected (since 0.2). */
AQ_API int aq_format_parse_ctx(aq_context *ctx, aq_format *fmt, const char *text);
/** Check @p fmt for a rows × cols matrix; @p ctx (may be NULL) receives the message. */
AQ_API int aq_format_check(aq_context *ctx, const aq_format *fmt, int64_t rows, int64_t cols);
/** Bits per parameter as AQLM's estimate_nbits_per_parameter (codes, fp16 codebooks, fp16 scales). */
AQ_API int aq_format_bits_per_parameter(double *bpp, const aq_format *fmt, int64_t rows, int64_t cols);
/** ρ = N / K^M with N = (rows/g_o)(cols/g) tiles. */
AQ_API int aq_format_rho(double *rho, const aq_format *fmt, int64_t rows, int64_t cols);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Quantized matrix (AQLM layout) */
/**@{*/
typedef struct aq_quant aq_quant;

/** Create a rows × cols quantized matrix of format @p fmt: codes 0, codebooks 0, scales 1. */
AQ_API int aq_quant_create(aq_quant **out, aq_context *ctx, const aq_format *fmt, int64_t rows,
                           int64_t cols);
AQ_API void aq_quant_free(aq_quant *q);
/** Deep copy. */
AQ_API int aq_quant_clone(aq_quant **out, const aq_quant *q);
AQ_API int aq_quant_get_format(aq_format *fmt, const aq_quant *q);
AQ_API int64_t aq_quant_rows(const aq_quant *q);
AQ_API int64_t aq_quant_cols(const aq_quant *q);

/** Codes [rows/g_o][cols/g][M], uint8_t when B <= 8 else uint16_t; *nbytes gets the size.
 *  The three writable views (codes, codebooks, scales) point into the quant: valid until it is
 *  freed, and writes through them are not validated (a code >= K or a NaN is refused by the next
 *  call that checks, not here). Prefer the copy-in functions to change a quant, and the _const
 *  views to read one, e.g. the const quant of a put_result callback. NULL for a NULL quant. */
AQ_API void *aq_quant_codes(aq_quant *q, size_t *nbytes);
/** Codebooks [M][K][g_o][g] float32; *count gets the number of floats. */
AQ_API float *aq_quant_codebooks(aq_quant *q, size_t *count);
/** Scales [rows/g_o] float32; *count gets the number of floats. */
AQ_API float *aq_quant_scales(aq_quant *q, size_t *count);
/** Read-only views of the same arrays for a const quant (since 0.2). */
AQ_API const void *aq_quant_codes_const(const aq_quant *q, size_t *nbytes);
AQ_API const float *aq_quant_codebooks_const(const aq_quant *q, size_t *count);
AQ_API const float *aq_quant_scales_const(const aq_quant *q, size_t *count);
/** Copies for FFI users: @p nbytes / @p count must equal the array's size. Copy-in validates
 *  (codes < K, finite codebooks and scales) and changes nothing on failure. */
AQ_API int aq_quant_copy_codes_out(const aq_quant *q, void *dst, size_t nbytes);
AQ_API int aq_quant_copy_codes_in(aq_quant *q, const void *src, size_t nbytes);
AQ_API int aq_quant_copy_codebooks_out(const aq_quant *q, float *dst, size_t count);
AQ_API int aq_quant_copy_codebooks_in(aq_quant *q, const float *src, size_t count);
AQ_API int aq_quant_copy_scales_out(const aq_quant *q, float *dst, size_t count);
AQ_API int aq_quant_copy_scales_in(aq_quant *q, const float *src, size_t count);

/** Ŵ as float32 rows × cols with leading dimension @p ld. */
AQ_API int aq_quant_dequantize(const aq_quant *q, float *W_out, int64_t ld);
/** Relative output error tr(ΔW H ΔWᵀ) / tr(W H Wᵀ) with ΔW = W − Ŵ (H undamped). */
AQ_API int aq_quant_output_error(double *rel_error, const aq_quant *q, const float *W, int64_t ld,
                                 const aq_hessian *H);
/** Weight-space mean squared error ‖W − Ŵ‖²_F / (rows·cols). */
AQ_API int aq_quant_weight_mse(double *mse, const aq_quant *q, const float *W, int64_t ld);
/** y = Ŵ x for one input vector x (cols floats) into y (rows floats), with per-input-group
 *  lookup tables ⟨x_j, C_m[k]⟩ so that each code costs one table read (AVX-512, AVX2 or
 *  portable kernel chosen at run time); formats whose tables would outweigh the matrix (K·g_o >
 *  rows, e.g. 1x16) read the codewords directly. Uses the quant's context for threads. */
AQ_API int aq_quant_matvec(const aq_quant *q, const float *x, float *y);
/** Kernels of aq_quant_matvec_kernel(). */
#define AQ_MATVEC_EXACT 0 /**< float tables or codewords: what aq_quant_matvec() computes */
#define AQ_MATVEC_INT16 1 /**< approximate: int16 tables, one scale per 64 code positions; relative
                               error ~1e-4 (docs/results.md); formats with B <= 8 and g_o = 1 on CPUs
                               with AVX-512 VBMI, elsewhere the exact kernel */
/** y = Ŵ x as aq_quant_matvec() with the kernel @p kernel (AQ_MATVEC_*). AQ_MATVEC_INT16 rounds
 *  each table entry ⟨x_j, C_m[k]⟩ to a multiple of d_b = (the largest |entry| of its block of 64
 *  code positions) / 32767, so |error of y_r| <= |s_p| Σ_b 64 d_b / 2; results do not depend
 *  on the thread count. */
AQ_API int aq_quant_matvec_kernel(const aq_quant *q, const float *x, float *y, int kernel);
/** Y = X Ŵᵀ for @p n input rows X (n × cols, leading dimension @p ldx) into Y (n × rows,
 *  leading dimension @p ldy): aq_quant_matvec() per row for small batches, dequantize +
 *  cblas_sgemm from a crossover on (16·g/M rows for the table path, e.g. 64 for 2x8 g8; 16/M
 *  for the direct path; at least 8). */
AQ_API int aq_quant_matmul(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy);
/** aq_quant_matmul() whose mat-vecs (small batches) use the kernel @p kernel (AQ_MATVEC_*);
 *  with the int16 tables the crossover is 24·g/M rows (96 for 2x8 g8). */
AQ_API int aq_quant_matmul_kernel(const aq_quant *q, const float *X, int64_t n, int64_t ldx, float *Y, int64_t ldy,
                                  int kernel);
/** Save / load in the format of docs/formats.md (versioned, checksummed). */
AQ_API int aq_quant_save(const aq_quant *q, const char *path);
AQ_API int aq_quant_load(aq_quant **out, aq_context *ctx, const char *path);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Codebook initialisation */
/**@{*/
/**
 * Initialise scales, codebooks and codes of @p quant for the weight W (rows × cols of the
 * quant, leading dimension @p ld) with the method of ::AQ_OPT_INIT_METHOD.
 * @p H is required for ::AQ_INIT_OA_EM and unused (may be NULL) for ::AQ_INIT_GREEDY.
 * @p options may be NULL (all defaults). Progress is reported per stage and round, and the
 * callback can cancel. On failure @p quant is unchanged.
 */
AQ_API int aq_init(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                   const aq_hessian *H, const aq_options *options);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Layer optimisation: beam search over codes, codebook and scale updates
 *  All minimise the layer's output error L = tr((W − Ŵ) H (W − Ŵ)ᵀ) with the undamped H.
 *  On failure or cancellation @p quant is unchanged. @p options may be NULL (defaults). */
/**@{*/
/** One beam-search pass over all codes (AQLM beam_search_xtx semantics): for every input group
 *  j and codebook m, every row scores all K replacements of its code by the exact change in L
 *  and keeps the best ::AQ_OPT_BEAM_WIDTH states. A pass never increases L. */
AQ_API int aq_beam_search(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                          const aq_hessian *H, const aq_options *options);
/** Minimise L over the codebooks with the codes fixed (::AQ_OPT_CODEBOOK_UPDATE), then over the
 *  scales in closed form (::AQ_OPT_UPDATE_SCALES). The exact modes never increase L. */
AQ_API int aq_update_codebooks(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                               const aq_hessian *H, const aq_options *options);
/** Epochs of {aq_update_codebooks, aq_beam_search} until an epoch improves L by less than
 *  ::AQ_OPT_REL_TOL or after ::AQ_OPT_MAX_EPOCHS. Progress "optimize" once per epoch with the
 *  relative error; cancellable. */
AQ_API int aq_optimize(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                       const aq_hessian *H, const aq_options *options);
/** aq_init() followed by aq_optimize(). */
AQ_API int aq_quantize_layer(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                             const aq_hessian *H, const aq_options *options);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name PV-tuning primitives (the host owns autograd)
 *  P-step: gradients of a loss with respect to the continuous parameters; V-step: a budgeted
 *  search of the discrete codes towards a continuous target. */
/**@{*/
/** The exact transpose of aq_quant_dequantize(): from ∂L/∂Ŵ (rows × cols, leading dimension
 *  @p ld) write ∂L/∂codebooks (codebooks_count floats, layout of aq_quant_codebooks()) and
 *  ∂L/∂scales (one per output group). Either output may be NULL. Sums run in double. */
AQ_API int aq_quant_backward(const aq_quant *quant, const float *grad_W, int64_t ld, float *grad_codebooks,
                             float *grad_scales);
/** Move the codes towards @p target (rows × cols, leading dimension @p ld): the distance of a
 *  tile is ‖Ŵ_tile − T_tile‖² (H NULL) or Σ_rows (Ŵ − T) H_jj (Ŵ − T)ᵀ (the diagonal block of its
 *  input group only, as OA-EM: the total output error can still move either way). A tile's
 *  proposal is one coordinate pass over its M codes (each the exact argmin with the others
 *  fixed); it is kept only if the tile's distance decreased. ::AQ_OPT_VSTEP_SELECTION chooses
 *  which tiles: LARGEST / SAMPLED pass over at most ::AQ_OPT_VSTEP_MAX_FRACTION of the tiles
 *  (the farthest, or sampled ∝ distance); GAIN passes over every tile and keeps the
 *  ::AQ_OPT_VSTEP_MAX_FRACTION with the largest decrease. Either way at most that fraction of
 *  the tiles change. ::AQ_OPT_VSTEP_TRUST_RATIO rejects a single tile's change that is too large;
 *  ::AQ_OPT_VSTEP_MAX_CHANGE admits changes in priority order (distance, sample key or gain)
 *  while ‖Ŵ_new − Ŵ_old‖_F <= ratio · ‖Ŵ_old‖_F. Codebooks and scales are unchanged.
 *  @p n_changed (may be NULL) receives the number of codes changed. */
AQ_API int aq_vstep(aq_context *ctx, aq_quant *quant, const float *target, int64_t ld, const aq_hessian *H,
                    const aq_options *options, int64_t *n_changed);
/**@}*/

/* ------------------------------------------------------------------------------------------ */
/** @name Whole-model pipeline driven by host callbacks
 *
 * The host owns the model and its forward pass; the library owns statistics and optimisation.
 * aq_pipeline_run() visits the layers in order (true-sequential, as GPTQ and AQLM): for layer k
 * it asks for the weight, asks the host to run calibration so that layer k's inputs reach an
 * aq_hessian (with layers < k already replaced by their quantized versions, which the host did
 * in put_result), runs aq_init + aq_optimize, and hands the result back. A callback returns 0
 * on success; any other value stops the run with ::AQ_ERR_CALLBACK, and
 * aq_pipeline_host_status() returns that value. With a resume directory, each finished layer
 * is saved there (aq_quant_save, "layer-NNNNN.aqq") with a provenance record
 * ("layer-NNNNN.prov": format, shape, seed, the options other than their defaults, fingerprints
 * of the weight and the Hessian, the layer's report; docs/formats.md), and a later run loads it
 * instead of recomputing. ::AQ_OPT_PIPELINE_RESUME says what must match first: by default
 * (::AQ_RESUME_VERIFY) the format, shape, seed, options and weight — get_weight is called for
 * the layer, calibration is skipped; ::AQ_RESUME_VERIFY_HESSIAN also calibrates the layer and
 * compares the Hessian bit for bit; ::AQ_RESUME_ACCEPT reuses any layer of the right format and
 * shape. A difference is ::AQ_ERR_MISMATCH naming the file and the first differing setting; a
 * layer file of another format or shape is ::AQ_ERR_FORMAT. put_result runs for resumed layers
 * too.
 * Progress: operation "pipeline", stage = layer, n_stages = layers, round 0 before and 1 after
 * the layer, objective = the layer's relative output error after optimisation (NaN before). */
/**@{*/
typedef struct aq_pipeline aq_pipeline;

/** What the pipeline reports for a finished layer. Read only fields below struct_size. */
typedef struct aq_layer_report {
    uint32_t struct_size;
    int32_t layer;
    int32_t resumed;         /**< 1 if loaded from the resume directory (errors and seconds are then those recorded when it was made; NaN without a record) */
    double init_error;       /**< relative output error after aq_init */
    double final_error;      /**< relative output error after aq_optimize */
    double init_seconds;
    double optimize_seconds;
} aq_layer_report;

/** Host callbacks. Set struct_size = sizeof(aq_pipeline_callbacks); userdata is passed back. */
typedef struct aq_pipeline_callbacks {
    uint32_t struct_size;
    /** Number of layers (>= 0), written to *n_layers. */
    int (*num_layers)(int32_t *n_layers, void *userdata);
    /** Shape of layer k (rows = out features, cols = in features); *name may stay NULL. The
     *  library reads the string until its next callback of the run (see @ref lifetimes). */
    int (*layer_info)(int32_t layer, const char **name, int64_t *rows, int64_t *cols, void *userdata);
    /** Copy layer k's fp32 weight (rows × cols, row-major) into W. */
    int (*get_weight)(int32_t layer, float *W, void *userdata);
    /** Run calibration and add layer k's inputs to H with aq_hessian_add(). */
    int (*calibrate)(int32_t layer, aq_hessian *H, void *userdata);
    /** Take the result of layer k (e.g. replace the layer by aq_quant_dequantize()). @p quant
     *  (of the pipeline's context) and @p report are freed when this returns: copy what is kept. */
    int (*put_result)(int32_t layer, const aq_quant *quant, const aq_layer_report *report, void *userdata);
    void *userdata;
} aq_pipeline_callbacks;

/** Create a pipeline quantizing every layer to @p fmt with @p options (copied; NULL = defaults). */
AQ_API int aq_pipeline_create(aq_pipeline **out, aq_context *ctx, const aq_pipeline_callbacks *callbacks,
                              const aq_format *fmt, const aq_options *options);
AQ_API void aq_pipeline_free(aq_pipeline *p);
/** Save finished layers to @p dir (must exist) and resume from those found there. NULL disables. */
AQ_API int aq_pipeline_set_resume_dir(aq_pipeline *p, const char *dir);
/** Run over all layers. Returns AQ_OK, ::AQ_ERR_CALLBACK, ::AQ_ERR_CANCELLED or a library error. */
AQ_API int aq_pipeline_run(aq_pipeline *p);
/** The non-zero value the failing callback returned in the last run (0 if none). */
AQ_API int aq_pipeline_host_status(const aq_pipeline *p);
/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* AQINIT_H */

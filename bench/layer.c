/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* bench-layer: the per-layer recipe on a synthetic LLM-like layer, stage by stage, for one shape
 * or for the linear shapes of one transformer block of a model.
 *
 *   bench-layer [--shape OxI | --model-shape llama2-7b|llama3-8b|llama2-70b|tiny] [--format F]
 *               [--method oaem|greedy] [--beam W] [--epochs E] [--tol T]
 *               [--update auto|exact|cg|adam|none] [--cg-iters N] [--seeding kmeans|product]
 *               [--samples N] [--threads T] [--seed S] [--json] [--log]
 *   defaults: 1024x1024, 2x8g8, oaem, update auto, seeding kmeans, N = 2·I samples,
 *   T = 0 (all cores), seed 1; --log prints the library's messages down to debug level on stderr;
 *   beam 1, epochs 2, tol 0 with --shape; beam 8, epochs 10, tol 0.01 with --model-shape.
 *   Set OPENBLAS_NUM_THREADS to T for comparable sgemm / SYRK figures.
 *
 * Single shape (--shape). Stages, in order, on one quant: Hessian accumulation (aq_hessian_add
 * of N calibration rows in batches of 512), aq_init, one aq_update_codebooks, one
 * aq_beam_search, aq_optimize with E epochs (AQ_OPT_REL_TOL = --tol, default 0, so all E epochs
 * run). Per stage: seconds, share of the sum of the stages, relative output error after it
 * (aq_quant_output_error), the stage's GFLOP/s by the flop models below and its ratio to the
 * reference. Then the reference, cblas_sgemm GFLOP/s on (O × I)·(I × 256) measured in the same
 * run, and the peak resident memory (getrusage ru_maxrss).
 *
 * Model shape (--model-shape). The linear layers of one transformer block (out × in, count):
 *   llama2-7b  (32 blocks): q,k,v,o 4096x4096 (4), gate,up 11008x4096 (2), down 4096x11008 (1)
 *   llama3-8b  (32 blocks): q,o 4096x4096 (2), k,v 1024x4096 (2), gate,up 14336x4096 (2),
 *                           down 4096x14336 (1)
 *   llama2-70b (80 blocks): q,o 8192x8192 (2), k,v 1024x8192 (2), gate,up 28672x8192 (2),
 *                           down 8192x28672 (1)
 *   tiny       (2 blocks, for quick checks): 256x256 (4), 512x256 (2), 256x512 (1)
 * Each distinct shape runs once, in a forked child process (so that the peak resident memory,
 * wait4's ru_maxrss, is that shape's), the recipe users run: Hessian accumulation, aq_init,
 * aq_optimize (beam W, AQ_OPT_REL_TOL = T, at most E epochs; the epochs that ran are counted by
 * the progress callback, operation "optimize"). Per shape: seconds of each stage, epochs, relative
 * output error after aq_init and after aq_optimize, peak RSS, the layer's own data (W fp32 O·I·4
 * + H double I·I·8 + codes + codebooks + scales) and peak / data, GFLOP/s per stage next to
 * cblas_sgemm on that shape in the same child. Then the extrapolation: seconds × count per shape,
 * their sum per block, × blocks for the whole model, and the largest peak / data.
 *
 * Flop models (nominal: the dominant kernel's arithmetic, not what a kernel skips or adds;
 * GFLOP/s = flops / stage seconds; ratio = stage GFLOP/s / sgemm GFLOP/s). O × I layer, format
 * M x B g g o g_o, K = 2^B, J = I/g input groups, W = beam width, n calibration rows:
 *   hessian           n·I² (SYRK-equivalent).
 *   aq_init           E-steps × 2·O·I·K: an E-step scores the N = (O/g_o)·J tiles of dimension
 *                     D = g_o·g against K codewords, 2·N·D·K flops (bench-init's model of the fused
 *                     assignment kernel). E-steps are counted by the progress callback: one per
 *                     round >= 1 of "init.kmeans", "init.oaem" and "init.joint", plus the first
 *                     assignment before round 0 of "init.kmeans" (and of "init.oaem" when its
 *                     seeding is not k-means). Hamerly bounds skip part of the k-means work
 *                     (the k-means share of the E-steps is reported: init_esteps_kmeans), so the
 *                     figure is an upper bound of the arithmetic done; M-steps and objectives are
 *                     not counted.
 *   update_codebooks  cg (AQ_CODEBOOK_UPDATE_CG, or AUTO when M·K·g > AQ_OPT_CODEBOOK_EXACT_MAX_DIM):
 *                     (iters + 1 + s)·2·O·I², one residual product, `iters` direction products
 *                     (AQ_OPT_CODEBOOK_CG_ITERS, default 4), s = 1 for the scale refit (formats
 *                     with scales and AQ_OPT_UPDATE_SCALES on), each a (O × I)·(I × I) product;
 *                     exact (or AUTO at or below that size): 2·M²·O·I²/g_o, the normal-equation
 *                     build only; adam: (steps + 1)·2·O·I² (AQ_OPT_CODEBOOK_ADAM_STEPS);
 *                     none: s·2·O·I² (no model, "-", when s = 0).
 *   beam_search       one pass: 2·O·I² (the ΔW·H products, whatever the width) + 2·O·J·M·K·g·W
 *                     (per step (j, m), (O/g_o)·W states × D scored against K codewords), as
 *                     bench-beam counts them.
 *   optimize          epochs run × (update_codebooks + beam_search); the loss evaluated after
 *                     each epoch is not counted.
 *
 * The layer (W and its Hessian from correlated inputs with outlier channels) comes from
 * examples/demo/synthetic.c; its generation is not timed. The timed Hessian stage accumulates
 * N rows of a fixed random 512 × I batch into a separate aq_hessian (the cost of
 * aq_hessian_add does not depend on the values); the stages after it use the synthetic H.
 * Prints figures; asserts nothing. */
#define _DEFAULT_SOURCE /* wait4 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <aqinit.h>

#include "synthetic.h"

#include "bench_util.h"

#define SGEMM_N 256
#define SGEMM_REPS 5
#define MAX_SHAPES 4
#define LEGEND_CHARS 320

/* ------------------------------------------------------------------------------------------ */
/* Presets, configuration */

typedef struct shape_spec {
    const char *names; /* the block's layers of this shape */
    int64_t rows, cols;
    int count;
} shape_spec;

typedef struct model_preset {
    const char *name;
    int blocks, n_shapes;
    shape_spec shapes[MAX_SHAPES];
} model_preset;

static const model_preset presets[] = {
    {"llama2-7b", 32, 3, {{"q,k,v,o", 4096, 4096, 4}, {"gate,up", 11008, 4096, 2}, {"down", 4096, 11008, 1}}},
    {"llama3-8b", 32, 4,
     {{"q,o", 4096, 4096, 2}, {"k,v", 1024, 4096, 2}, {"gate,up", 14336, 4096, 2}, {"down", 4096, 14336, 1}}},
    {"llama2-70b", 80, 4,
     {{"q,o", 8192, 8192, 2}, {"k,v", 1024, 8192, 2}, {"gate,up", 28672, 8192, 2}, {"down", 8192, 28672, 1}}},
    {"tiny", 2, 3, {{"q,k,v,o", 256, 256, 4}, {"gate,up", 512, 256, 2}, {"down", 256, 512, 1}}},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

static const char *update_names[] = {"auto", "exact", "adam", "none", "cg"}; /* AQ_CODEBOOK_UPDATE_* */
#define N_UPDATE_MODES 5

typedef struct bench_config {
    long long rows, cols, samples, seed; /* samples 0: 2·I of each shape */
    const char *format;
    const model_preset *model;           /* NULL: single shape */
    int method, beam, epochs, threads, json, log, update, cg_iters, seeding;
    double tol;
} bench_config;

/* ------------------------------------------------------------------------------------------ */
/* The library's live bytes: a counting allocator for the context (a 16-byte size header per
 * block), so that each stage reports the peak of what the library holds — its handles (H,
 * quant) and its working memory — apart from the process's resident memory, which also counts
 * freed memory the C library keeps. */

static _Atomic size_t lib_live, lib_peak;

static void *count_alloc(size_t size, void *userdata)
{
    (void)userdata;
    if (size > SIZE_MAX - 16)
        return NULL;
    unsigned char *p = malloc(size + 16);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    size_t live = atomic_fetch_add(&lib_live, size) + size, peak = atomic_load(&lib_peak);
    while (live > peak && !atomic_compare_exchange_weak(&lib_peak, &peak, live))
        ;
    return p + 16;
}

static void count_free(void *ptr, void *userdata)
{
    unsigned char *p = (unsigned char *)ptr - 16;
    size_t size;
    (void)userdata;
    memcpy(&size, p, sizeof size);
    atomic_fetch_sub(&lib_live, size);
    free(p);
}

/* ------------------------------------------------------------------------------------------ */
/* Stages and results */

enum { ST_HESSIAN, ST_INIT, ST_UPDATE, ST_BEAM, ST_OPTIMIZE, N_STAGES };
static const char *stage_names[N_STAGES] = {"hessian", "aq_init", "update_codebooks", "beam_search", "optimize"};
static const int single_stages[] = {ST_HESSIAN, ST_INIT, ST_UPDATE, ST_BEAM, ST_OPTIMIZE};
static const int model_stages[] = {ST_HESSIAN, ST_INIT, ST_OPTIMIZE};
#define N_SINGLE_STAGES 5
#define N_MODEL_STAGES 3

typedef struct stage_result {
    double seconds, error, flops; /* error, flops: NAN when the stage has none */
    double peak_kib;              /* peak resident memory during the stage (VmHWM), NAN if unknown */
    double lib_peak_bytes;        /* peak of the library's live allocations during the stage */
} stage_result;

/* What one shape's run reports; in model-shape mode sent from the child through a pipe. */
typedef struct shape_result {
    int64_t rows, cols, samples;
    stage_result stage[N_STAGES];
    int ran[N_STAGES];
    int epochs, threads;
    int update_mode, update_param; /* resolved AQ_CODEBOOK_UPDATE_*; cg iterations or adam steps */
    int scale_refit;
    int64_t init_esteps, init_esteps_kmeans;
    double gen_seconds, sgemm_seconds, sgemm_gflops, data_bytes, peak_kib;
} shape_result;

/* Counted by the progress callback. */
typedef struct progress_counts {
    int epochs;
    int64_t init_esteps, init_esteps_kmeans;
    int oaem_assigns_first; /* OA-EM not seeded by k-means: its round 0 follows an E-step */
} progress_counts;

/* One synthetic layer and everything the stages need. */
typedef struct layer_run {
    const bench_config *cfg;
    int64_t rows, cols, samples;
    aq_context *ctx;
    aq_options *opts;
    aq_hessian *H;
    aq_quant *q;
    aq_format fmt;
    synth_layer layer;
    progress_counts counts;
    double gen_seconds;
} layer_run;

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static void check(int status, aq_context *ctx, const char *what)
{
    if (status != AQ_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, aq_strerror(status), ctx ? aq_context_last_error(ctx) : "");
        exit(1);
    }
}

static float *alloc_floats(int64_t n)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return x;
}

static void fill_random(float *x, int64_t n, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(*state >> 11) * 0x1.0p-53 - 0.5);
    }
}

static int64_t option_int(const aq_options *o, int32_t key)
{
    int64_t v = 0;
    check(aq_options_get_int(&v, o, key), NULL, "option");
    return v;
}

/* Seconds to accumulate n rows (batches of 512 rows of a fixed random matrix) into a fresh H. */
static double time_hessian(aq_context *ctx, int64_t cols, int64_t n, uint64_t seed)
{
    const int64_t batch = 512;
    uint64_t state = seed ^ 0x5DEECE66DULL;
    float *X = alloc_floats(batch * cols);
    aq_hessian *H = NULL;
    fill_random(X, batch * cols, &state);
    check(aq_hessian_create(&H, ctx, cols), ctx, "hessian");
    double t0 = now_seconds();
    for (int64_t done = 0; done < n; done += batch)
        check(aq_hessian_add(H, X, n - done < batch ? n - done : batch, cols), ctx, "hessian add");
    double t = now_seconds() - t0;
    aq_hessian_free(H);
    free(X);
    return t;
}

/* Median seconds of cblas_sgemm (rows × cols)·(cols × n), after one warm-up. */
static double time_sgemm(const float *W, int64_t rows, int64_t cols, int64_t n, uint64_t seed)
{
    uint64_t state = seed ^ 0x9E3779B97F4A7C15ULL;
    float *B = alloc_floats(cols * n), *C = alloc_floats(rows * n);
    double t[SGEMM_REPS];
    fill_random(B, cols * n, &state);
    for (int r = -1; r < SGEMM_REPS; r++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)cols, 1.0f, W, (int)cols, B,
                    (int)n, 0.0f, C, (int)n);
        if (r >= 0)
            t[r] = now_seconds() - t0;
    }
    free(B);
    free(C);
    return median(t, SGEMM_REPS);
}

/* Counts optimiser epochs and initialisation E-steps (see the flop model of aq_init). */
static int on_progress(const aq_progress *p, void *userdata)
{
    progress_counts *c = userdata;
    if (p->struct_size < offsetof(aq_progress, operation) + sizeof p->operation || !p->operation)
        return 0;
    if (!strcmp(p->operation, "optimize"))
        c->epochs++;
    else if (!strcmp(p->operation, "init.kmeans")) {
        c->init_esteps++; /* round 0 follows the first assignment */
        c->init_esteps_kmeans++;
    } else if (!strncmp(p->operation, "init.", 5)
               && (p->round > 0 || (c->oaem_assigns_first && !strcmp(p->operation, "init.oaem"))))
        c->init_esteps++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Flop models (header comment) */

static double product_flops(const layer_run *lr) /* one (O × I)·(I × I) product */
{
    return 2.0 * (double)lr->rows * (double)lr->cols * (double)lr->cols;
}

/* The codebook update mode aq_update_codebooks runs (AUTO resolved as codebook_update.c). */
static int resolved_update(const layer_run *lr)
{
    const aq_format *f = &lr->fmt;
    if (lr->cfg->update != AQ_CODEBOOK_UPDATE_AUTO)
        return lr->cfg->update;
    return (int64_t)f->num_codebooks * ((int64_t)1 << f->bits_per_codebook) * f->in_group_size
                   <= option_int(lr->opts, AQ_OPT_CODEBOOK_EXACT_MAX_DIM)
               ? AQ_CODEBOOK_UPDATE_EXACT
               : AQ_CODEBOOK_UPDATE_CG;
}

static int scale_refit(const layer_run *lr)
{
    return lr->fmt.scale_mode == AQ_SCALE_PER_OUTPUT_GROUP && option_int(lr->opts, AQ_OPT_UPDATE_SCALES);
}

/* Iterations (cg) or steps (adam) of the update mode, 0 otherwise. */
static int update_param(const layer_run *lr)
{
    int mode = resolved_update(lr);
    return mode == AQ_CODEBOOK_UPDATE_CG     ? (int)option_int(lr->opts, AQ_OPT_CODEBOOK_CG_ITERS)
           : mode == AQ_CODEBOOK_UPDATE_ADAM ? (int)option_int(lr->opts, AQ_OPT_CODEBOOK_ADAM_STEPS)
                                             : 0;
}

static double update_flops(const layer_run *lr)
{
    const double M = lr->fmt.num_codebooks, s = scale_refit(lr);
    const int mode = resolved_update(lr), param = update_param(lr);
    if (mode == AQ_CODEBOOK_UPDATE_CG)
        return (param + 1 + s) * product_flops(lr);
    if (mode == AQ_CODEBOOK_UPDATE_EXACT)
        return M * M * product_flops(lr) / lr->fmt.out_group_size;
    if (mode == AQ_CODEBOOK_UPDATE_ADAM)
        return (param + 1) * product_flops(lr);
    return s > 0 ? product_flops(lr) : NAN;
}

static double beam_flops(const layer_run *lr)
{
    const double K = (double)((int64_t)1 << lr->fmt.bits_per_codebook), M = lr->fmt.num_codebooks;
    const double J = (double)(lr->cols / lr->fmt.in_group_size), g = lr->fmt.in_group_size;
    return product_flops(lr) + 2.0 * (double)lr->rows * J * M * K * g * (double)lr->cfg->beam;
}

static double init_flops(const layer_run *lr, int64_t esteps)
{
    const double K = (double)((int64_t)1 << lr->fmt.bits_per_codebook);
    if (lr->cfg->seeding == AQ_EM_SEED_PRODUCT)
        return NAN; /* the progress reports do not tell the small fits' E-steps from the full-K ones */
    return (double)esteps * 2.0 * (double)lr->rows * (double)lr->cols * K;
}

/* One legend line per stage; the update line names the mode this run resolved. */
static void legend_text(int stage, const shape_result *r, char *buf, size_t size)
{
    static const char *fixed[N_STAGES] = {
        "n·I² (SYRK-equivalent, n calibration rows)",
        "E-steps × 2·O·I·K (2·N·D·K per E-step as bench-init, N = O/g_o·J tiles, D = g_o·g; E-steps counted "
        "by the progress callback; the k-means ones skip work by Hamerly bounds; M-steps, objectives not counted; "
        "no figure with --seeding product)",
        NULL,
        "2·O·I² (ΔW·H products) + 2·O·J·M·K·g·W (scores of W states per step), as bench-beam",
        "epochs run × (update_codebooks + beam_search); the loss per epoch not counted",
    };
    if (stage != ST_UPDATE) {
        snprintf(buf, size, "%s", fixed[stage]);
        return;
    }
    const int s = r->scale_refit;
    switch (r->update_mode) {
    case AQ_CODEBOOK_UPDATE_CG:
        snprintf(buf, size, "cg: (iters + 1 + s)·2·O·I², iters = %d, s = %d (scale refit)", r->update_param, s);
        break;
    case AQ_CODEBOOK_UPDATE_EXACT:
        snprintf(buf, size, "exact: 2·M²·O·I²/g_o (normal-equation build only)");
        break;
    case AQ_CODEBOOK_UPDATE_ADAM:
        snprintf(buf, size, "adam: (steps + 1)·2·O·I², steps = %d", r->update_param);
        break;
    default:
        snprintf(buf, size, "none: s·2·O·I², s = %d (scale refit)%s", s, s ? "" : ": no model");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* One layer: set-up, stages, tear-down */

/* --log: the library's messages on stderr. */
static void log_to_stderr(int32_t level, const char *message, void *userdata)
{
    (void)userdata;
    fprintf(stderr, "[libaqinit %d] %s\n", (int)level, message);
}

static void layer_open(layer_run *lr, const bench_config *cfg, int64_t rows, int64_t cols)
{
    memset(lr, 0, sizeof *lr);
    lr->cfg = cfg;
    lr->rows = rows;
    lr->cols = cols;
    lr->samples = cfg->samples > 0 ? cfg->samples : 2 * cols;
    const aq_allocator counting = {count_alloc, count_free, NULL};
    check(aq_context_create_with_allocator(&lr->ctx, &counting), NULL, "context");
    aq_context *ctx = lr->ctx;
    check(aq_context_set_threads(ctx, cfg->threads), ctx, "threads");
    check(aq_context_set_seed(ctx, (uint64_t)cfg->seed), ctx, "seed");
    check(aq_context_set_progress_callback(ctx, on_progress, &lr->counts), ctx, "progress");
    if (cfg->log)
        check(aq_context_set_log_callback(ctx, log_to_stderr, AQ_LOG_DEBUG, NULL), ctx, "log");
    aq_format_init(&lr->fmt);
    check(aq_format_parse(&lr->fmt, cfg->format), ctx, "format");
    check(aq_format_check(ctx, &lr->fmt, rows, cols), ctx, "format");
    check(aq_options_create(&lr->opts, ctx), ctx, "options");
    aq_options *o = lr->opts;
    check(aq_options_set_int(o, AQ_OPT_INIT_METHOD, cfg->method), ctx, "--method");
    check(aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, cfg->beam), ctx, "--beam");
    check(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, cfg->epochs), ctx, "--epochs");
    check(aq_options_set_double(o, AQ_OPT_REL_TOL, cfg->tol), ctx, "--tol");
    check(aq_options_set_int(o, AQ_OPT_CODEBOOK_UPDATE, cfg->update), ctx, "--update");
    if (cfg->cg_iters > 0)
        check(aq_options_set_int(o, AQ_OPT_CODEBOOK_CG_ITERS, cfg->cg_iters), ctx, "--cg-iters");
    check(aq_options_set_int(o, AQ_OPT_EM_SEEDING, cfg->seeding), ctx, "--seeding");
    lr->counts.oaem_assigns_first = cfg->method == AQ_INIT_OA_EM
                                    && option_int(o, AQ_OPT_EM_SEEDING) != AQ_EM_SEED_KMEANS;

    double t0 = now_seconds();
    check(aq_hessian_create(&lr->H, ctx, cols), ctx, "hessian");
    check(synth_make(&lr->layer, lr->H, ctx, rows, cols, lr->samples, (uint64_t)cfg->seed), ctx, "synthetic layer");
    lr->gen_seconds = now_seconds() - t0;
    check(aq_quant_create(&lr->q, ctx, &lr->fmt, rows, cols), ctx, "quant");
}

static void layer_close(layer_run *lr)
{
    aq_quant_free(lr->q);
    aq_options_free(lr->opts);
    synth_free(&lr->layer);
    aq_hessian_free(lr->H);
    aq_context_free(lr->ctx);
}

/* Bytes of the layer's own data: W fp32, H double, codes, codebooks, scales. */
static double layer_data_bytes(layer_run *lr)
{
    size_t codes = 0, codebooks = 0, scales = 0;
    aq_quant_codes(lr->q, &codes);
    aq_quant_codebooks(lr->q, &codebooks);
    aq_quant_scales(lr->q, &scales);
    return 4.0 * (double)lr->rows * (double)lr->cols + 8.0 * (double)lr->cols * (double)lr->cols
           + (double)codes + 4.0 * (double)codebooks + 4.0 * (double)scales;
}

static int call_stage(layer_run *lr, int stage)
{
    const float *W = lr->layer.W;
    switch (stage) {
    case ST_INIT: return aq_init(lr->ctx, lr->q, W, lr->cols, lr->H, lr->opts);
    case ST_UPDATE: return aq_update_codebooks(lr->ctx, lr->q, W, lr->cols, lr->H, lr->opts);
    case ST_BEAM: return aq_beam_search(lr->ctx, lr->q, W, lr->cols, lr->H, lr->opts);
    default: return aq_optimize(lr->ctx, lr->q, W, lr->cols, lr->H, lr->opts);
    }
}

/* Run one stage: seconds, relative output error after it, nominal flops. */
static stage_result run_stage(layer_run *lr, int stage, shape_result *r)
{
    stage_result s = {0.0, NAN, NAN, NAN, NAN};
    if (stage == ST_HESSIAN) {
        s.seconds = time_hessian(lr->ctx, lr->cols, lr->samples, (uint64_t)lr->cfg->seed);
        s.flops = (double)lr->samples * (double)lr->cols * (double)lr->cols;
        return s;
    }
    lr->counts.epochs = 0;
    lr->counts.init_esteps = lr->counts.init_esteps_kmeans = 0;
    double t0 = now_seconds();
    int st = call_stage(lr, stage);
    s.seconds = now_seconds() - t0;
    check(st, lr->ctx, stage_names[stage]);
    check(aq_quant_output_error(&s.error, lr->q, lr->layer.W, lr->cols, lr->H), lr->ctx, "output error");
    if (stage == ST_INIT) {
        r->init_esteps = lr->counts.init_esteps;
        r->init_esteps_kmeans = lr->counts.init_esteps_kmeans;
        s.flops = init_flops(lr, r->init_esteps);
    } else if (stage == ST_UPDATE) {
        s.flops = update_flops(lr);
    } else if (stage == ST_BEAM) {
        s.flops = beam_flops(lr);
    } else {
        r->epochs = lr->counts.epochs;
        s.flops = r->epochs * (update_flops(lr) + beam_flops(lr));
    }
    return s;
}

/* Linux: reset the process's peak resident memory (VmHWM) to the current one; 0 if it cannot. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* VmHWM of /proc/self/status in KiB, or NAN. */
static double peak_rss_kib(void)
{
    char line[256];
    double kib = NAN;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return NAN;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kib = strtod(line + 6, NULL);
    fclose(f);
    return kib;
}

/* The stages of @p stages on a fresh synthetic rows × cols layer, then the sgemm reference.
 * Each library stage's peak resident memory is measured from its own start (VmHWM reset), with
 * the layer's W and H resident; r->peak_kib is the largest of them (the Hessian timing, which
 * uses a second aq_hessian, is left out): the figure to hold against the layer's own data. */
static void run_shape(const bench_config *cfg, int64_t rows, int64_t cols, const int *stages, int n_stages,
                      shape_result *r)
{
    layer_run lr;
    memset(r, 0, sizeof *r);
    layer_open(&lr, cfg, rows, cols);
    r->rows = rows;
    r->cols = cols;
    r->samples = lr.samples;
    r->gen_seconds = lr.gen_seconds;
    r->threads = (int)aq_context_get_threads(lr.ctx);
    r->update_mode = resolved_update(&lr);
    r->update_param = update_param(&lr);
    r->scale_refit = scale_refit(&lr);
    r->peak_kib = NAN;
    for (int i = 0; i < n_stages; i++) {
        /* the high-water mark restarts at each library stage, so each reports its own peak */
        int peak_reset = stages[i] != ST_HESSIAN && reset_peak_rss();
        atomic_store(&lib_peak, atomic_load(&lib_live));
        r->stage[stages[i]] = run_stage(&lr, stages[i], r);
        r->stage[stages[i]].lib_peak_bytes = (double)atomic_load(&lib_peak);
        r->ran[stages[i]] = 1;
        if (peak_reset) {
            double kib = peak_rss_kib();
            r->stage[stages[i]].peak_kib = kib;
            if (isnan(r->peak_kib) || kib > r->peak_kib)
                r->peak_kib = kib;
        }
    }
    r->sgemm_seconds = time_sgemm(lr.layer.W, rows, cols, SGEMM_N, (uint64_t)cfg->seed);
    r->sgemm_gflops = 2.0 * (double)rows * (double)cols * SGEMM_N / r->sgemm_seconds * 1e-9;
    r->data_bytes = layer_data_bytes(&lr);
    layer_close(&lr);
}

/* ------------------------------------------------------------------------------------------ */
/* Model-shape mode: one child process per distinct shape */

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Runs the model recipe on @p sp in a child; its record comes back through a pipe and its peak
 * RSS from wait4. Returns 0, or -1 (message printed) if the child failed. */
static int run_shape_in_child(const bench_config *cfg, const shape_spec *sp, shape_result *r)
{
    int fd[2], status = 0;
    struct rusage ru;
    fflush(stdout);
    fflush(stderr);
    if (pipe(fd)) {
        perror("pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        run_shape(cfg, sp->rows, sp->cols, model_stages, N_MODEL_STAGES, r);
        _exit(write_all(fd[1], r, sizeof *r) ? 1 : 0);
    }
    close(fd[1]);
    size_t got = read_all(fd[0], r, sizeof *r);
    close(fd[0]);
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("wait4");
        return -1;
    }
    if (got != sizeof *r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench-layer: shape %s %lldx%lld failed (%s %d)\n", sp->names, (long long)sp->rows,
                (long long)sp->cols, WIFSIGNALED(status) ? "signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return -1;
    }
    if (isnan(r->peak_kib)) /* no clear_refs: the child's whole peak */
        r->peak_kib = (double)ru.ru_maxrss; /* Linux: KiB */
    return 0;
}

static double shape_seconds(const shape_result *r) /* the recipe's stages that ran */
{
    double t = 0.0;
    for (int s = 0; s < N_STAGES; s++)
        if (r->ran[s])
            t += r->stage[s].seconds;
    return t;
}

static double stage_gflops(const stage_result *s)
{
    return isnan(s->flops) || s->seconds <= 0 ? NAN : s->flops / s->seconds * 1e-9;
}

static double mib(double bytes)
{
    return bytes / (1024.0 * 1024.0);
}

/* The whole-model figures. */
typedef struct extrapolation {
    double per_block, model_seconds, max_ratio;
    int max_ratio_shape;
} extrapolation;

static extrapolation extrapolate(const model_preset *m, const shape_result *r)
{
    extrapolation x = {0.0, 0.0, 0.0, 0};
    for (int i = 0; i < m->n_shapes; i++) {
        double ratio = r[i].peak_kib * 1024.0 / r[i].data_bytes;
        x.per_block += shape_seconds(&r[i]) * m->shapes[i].count;
        if (ratio > x.max_ratio) {
            x.max_ratio = ratio;
            x.max_ratio_shape = i;
        }
    }
    x.model_seconds = x.per_block * m->blocks;
    return x;
}

/* ------------------------------------------------------------------------------------------ */
/* Output */

static const char *seeding_name(const bench_config *cfg)
{
    return cfg->seeding == AQ_EM_SEED_PRODUCT ? "product" : "kmeans";
}

static const char *method_name(const bench_config *cfg)
{
    return cfg->method == AQ_INIT_OA_EM ? "oaem" : "greedy";
}

/* " %width.precf" of v, or a right-aligned "-" when v is NaN (no figure). */
static void print_number_or_dash(int width, int precision, double v)
{
    if (isnan(v))
        printf(" %*s", width, "-");
    else
        printf(" %*.*f", width, precision, v);
}

/* "key": v, or null when v is NaN. */
static void json_number(const char *key, double v)
{
    if (isnan(v))
        printf("\"%s\": null", key);
    else
        printf("\"%s\": %.9g", key, v);
}

/* Every stage's model (in model-shape mode update_codebooks and beam_search are the parts of an
 * optimize epoch). */
static void print_legend(const shape_result *r)
{
    char line[LEGEND_CHARS];
    printf("  flop models (nominal; GFLOP/s = flops / seconds, ratio = GFLOP/s / sgemm GFLOP/s;\n"
           "  O x I layer, M codebooks of K codewords, in-groups of g, out-groups of g_o, J = I/g, beam W):\n");
    for (int s = 0; s < N_STAGES; s++) {
        legend_text(s, r, line, sizeof line);
        printf("    %-17s %s\n", stage_names[s], line);
    }
}

static void json_flop_models(const shape_result *r)
{
    char line[LEGEND_CHARS];
    printf("\"flop_models\": {");
    for (int s = 0; s < N_STAGES; s++) {
        legend_text(s, r, line, sizeof line);
        printf("%s\"%s\": \"%s\"", s ? ", " : "", stage_names[s], line);
    }
    printf("}");
}

static void print_single_text(const bench_config *cfg, const shape_result *r, double peak_mib)
{
    double total = shape_seconds(r);
    printf("bench-layer: libaqinit %s, %lldx%lld %s, %s, seeding %s, beam %d, epochs %d, %lld samples, %d threads, "
           "seed %lld\n",
           aq_version_string(), (long long)r->rows, (long long)r->cols, cfg->format, method_name(cfg),
           seeding_name(cfg), cfg->beam, cfg->epochs, (long long)r->samples, r->threads, cfg->seed);
    printf("  (synthetic layer generated in %.2f s, not counted)\n", r->gen_seconds);
    printf("  %-18s %10s %7s %14s %9s %6s %9s %9s\n", "stage", "seconds", "share", "rel. out. err", "GFLOP/s", "ratio",
           "peak MiB", "lib MiB");
    for (int i = 0; i < N_SINGLE_STAGES; i++) {
        const stage_result *s = &r->stage[single_stages[i]];
        double gf = stage_gflops(s);
        printf("  %-18s %10.3f %6.1f%%", stage_names[single_stages[i]], s->seconds, 100.0 * s->seconds / total);
        print_number_or_dash(14, 6, s->error);
        print_number_or_dash(9, 1, gf);
        print_number_or_dash(6, 2, gf / r->sgemm_gflops);
        print_number_or_dash(9, 1, s->peak_kib / 1024.0);
        print_number_or_dash(9, 1, s->lib_peak_bytes / 1048576.0);
        printf("\n");
    }
    printf("  %-18s %10.3f\n", "total", total);
    printf("  reference: cblas_sgemm (%lld x %lld)·(%lld x %d) %.4f s = %.1f GFLOP/s\n", (long long)r->rows,
           (long long)r->cols, (long long)r->cols, SGEMM_N, r->sgemm_seconds, r->sgemm_gflops);
    printf("  peak resident memory: %.1f MiB\n", peak_mib);
    print_legend(r);
    printf("    this run: aq_init %lld E-steps (%lld of them k-means), optimize %d epochs\n",
           (long long)r->init_esteps, (long long)r->init_esteps_kmeans, r->epochs);
}

/* One stage's object; @p share (single-shape mode) is left out when NaN. */
static void json_stage(const shape_result *r, int stage, int first, double share)
{
    const stage_result *s = &r->stage[stage];
    double gf = stage_gflops(s);
    printf("%s{\"stage\": \"%s\", \"seconds\": %.6f, ", first ? "" : ", ", stage_names[stage], s->seconds);
    if (!isnan(share))
        printf("\"share\": %.6f, ", share);
    json_number("rel_output_error", s->error);
    if (stage == ST_HESSIAN && !isnan(share))
        printf(", \"syrk_gflops\": %.3f", gf); /* the first version's key */
    printf(", ");
    json_number("flops", s->flops);
    printf(", ");
    json_number("gflops", gf);
    printf(", ");
    json_number("ratio_to_sgemm", gf / r->sgemm_gflops);
    printf(", ");
    json_number("peak_rss_mib", s->peak_kib / 1024.0);
    printf(", ");
    json_number("library_peak_mib", s->lib_peak_bytes / 1048576.0);
    printf("}");
}

static void print_single_json(const bench_config *cfg, const shape_result *r, double peak_mib)
{
    double total = shape_seconds(r);
    printf("{\"version\": \"%s\", \"shape\": [%lld, %lld], \"format\": \"%s\", \"method\": \"%s\", \"beam\": %d, "
           "\"epochs\": %d, \"tol\": %g, \"update\": \"%s\", \"seeding\": \"%s\", \"samples\": %lld, \"threads\": %d, \"seed\": %lld, "
           "\"generation_seconds\": %.6f, \"stages\": [",
           aq_version_string(), (long long)r->rows, (long long)r->cols, cfg->format, method_name(cfg), cfg->beam,
           cfg->epochs, cfg->tol, update_names[cfg->update], seeding_name(cfg), (long long)r->samples, r->threads,
           cfg->seed, r->gen_seconds);
    for (int i = 0; i < N_SINGLE_STAGES; i++)
        json_stage(r, single_stages[i], i == 0, r->stage[single_stages[i]].seconds / total);
    printf("], \"total_seconds\": %.6f, \"init_esteps\": %lld, \"init_esteps_kmeans\": %lld, \"optimize_epochs\": %d, "
           "\"sgemm\": {\"m\": %lld, \"k\": %lld, \"n\": %d, \"seconds\": %.6f, \"gflops\": %.3f}, "
           "\"peak_rss_mib\": %.1f, ",
           total, (long long)r->init_esteps, (long long)r->init_esteps_kmeans, r->epochs, (long long)r->rows,
           (long long)r->cols, SGEMM_N, r->sgemm_seconds, r->sgemm_gflops, peak_mib);
    json_flop_models(r);
    printf("}\n");
}

static void print_model_header(const bench_config *cfg)
{
    const model_preset *m = cfg->model;
    printf("bench-layer: libaqinit %s, model shape %s (%d blocks, %d distinct shapes), %s, %s, beam %d, "
           "epochs <= %d, tol %g, update %s, seeding %s, ",
           aq_version_string(), m->name, m->blocks, m->n_shapes, cfg->format, method_name(cfg), cfg->beam,
           cfg->epochs, cfg->tol, update_names[cfg->update], seeding_name(cfg));
    if (cfg->samples > 0)
        printf("%lld samples, ", cfg->samples);
    else
        printf("2·I samples, ");
    printf("seed %lld\n", cfg->seed);
    printf("  per shape, each in its own process (seconds of one layer; errors relative to the output):\n");
    printf("  %-8s %-11s %5s %9s %9s %9s %6s %10s %10s %9s %9s %9s %-9s\n", "layers", "shape", "count", "hessian", "init",
           "optimize", "epochs", "err init", "err opt", "peak MiB", "data MiB", "peak/data", "peak in");
}

/* The library stage whose peak resident memory is r->peak_kib ("-" if none was measured). */
static const char *peak_stage_name(const shape_result *r)
{
    for (int s = ST_INIT; s < N_STAGES; s++)
        if (r->ran[s] && r->stage[s].peak_kib == r->peak_kib)
            return stage_names[s];
    return "-";
}

static void print_model_row(const shape_spec *sp, const shape_result *r)
{
    printf("  %-8s %5lldx%-5lld %5d %9.3f %9.3f %9.3f %6d %10.6f %10.6f %9.1f %9.1f %9.2f %-9s\n", sp->names,
           (long long)sp->rows, (long long)sp->cols, sp->count, r->stage[ST_HESSIAN].seconds,
           r->stage[ST_INIT].seconds, r->stage[ST_OPTIMIZE].seconds, r->epochs, r->stage[ST_INIT].error,
           r->stage[ST_OPTIMIZE].error, r->peak_kib / 1024.0, mib(r->data_bytes),
           r->peak_kib * 1024.0 / r->data_bytes, peak_stage_name(r));
    fflush(stdout);
}

static void print_model_text(const bench_config *cfg, const shape_result *r)
{
    const model_preset *m = cfg->model;
    extrapolation x = extrapolate(m, r);
    printf("  GFLOP/s per stage, and ratio to cblas_sgemm (O x I)·(I x %d) on the shape in the same process:\n",
           SGEMM_N);
    printf("  %-8s %-11s %3s %8s %9s %6s %9s %6s %9s %6s\n", "layers", "shape", "thr", "sgemm", "hessian", "ratio",
           "init", "ratio", "optimize", "ratio");
    for (int i = 0; i < m->n_shapes; i++) {
        printf("  %-8s %5lldx%-5lld %3d %8.1f", m->shapes[i].names, (long long)r[i].rows, (long long)r[i].cols,
               r[i].threads, r[i].sgemm_gflops);
        for (int k = 0; k < N_MODEL_STAGES; k++) {
            double gf = stage_gflops(&r[i].stage[model_stages[k]]);
            print_number_or_dash(9, 1, gf);
            print_number_or_dash(6, 2, gf / r[i].sgemm_gflops);
        }
        printf("\n");
    }
    printf("  extrapolation (seconds = hessian + init + optimize of one layer):\n");
    printf("  %-8s %-11s %10s %5s %12s\n", "layers", "shape", "seconds", "count", "x count");
    for (int i = 0; i < m->n_shapes; i++)
        printf("  %-8s %5lldx%-5lld %10.3f %5d %12.3f\n", m->shapes[i].names, (long long)r[i].rows,
               (long long)r[i].cols, shape_seconds(&r[i]), m->shapes[i].count,
               shape_seconds(&r[i]) * m->shapes[i].count);
    printf("  per block: %.3f s; whole model: %d blocks x %.3f s = %.1f s = %.3f h\n", x.per_block, m->blocks,
           x.per_block, x.model_seconds, x.model_seconds / 3600.0);
    printf("  largest peak / data: %.2f (%s %lldx%lld)\n", x.max_ratio, m->shapes[x.max_ratio_shape].names,
           (long long)m->shapes[x.max_ratio_shape].rows, (long long)m->shapes[x.max_ratio_shape].cols);
    print_legend(&r[0]);
}

static void json_model_shape(const shape_spec *sp, const shape_result *r)
{
    double secs = shape_seconds(r);
    printf("{\"layers\": \"%s\", \"shape\": [%lld, %lld], \"count\": %d, \"samples\": %lld, \"threads\": %d, "
           "\"generation_seconds\": %.6f, \"stages\": [",
           sp->names, (long long)r->rows, (long long)r->cols, sp->count, (long long)r->samples, r->threads,
           r->gen_seconds);
    for (int k = 0; k < N_MODEL_STAGES; k++)
        json_stage(r, model_stages[k], k == 0, NAN);
    printf("], \"epochs\": %d, \"init_esteps\": %lld, \"init_esteps_kmeans\": %lld, ", r->epochs,
           (long long)r->init_esteps, (long long)r->init_esteps_kmeans);
    json_number("rel_output_error_init", r->stage[ST_INIT].error);
    printf(", ");
    json_number("rel_output_error_optimize", r->stage[ST_OPTIMIZE].error);
    printf(", \"sgemm\": {\"m\": %lld, \"k\": %lld, \"n\": %d, \"seconds\": %.6f, \"gflops\": %.3f}, "
           "\"peak_rss_mib\": %.1f, \"data_bytes\": %.0f, \"peak_to_data\": %.4f, \"seconds\": %.6f, "
           "\"seconds_times_count\": %.6f}",
           (long long)r->rows, (long long)r->cols, SGEMM_N, r->sgemm_seconds, r->sgemm_gflops, r->peak_kib / 1024.0,
           r->data_bytes, r->peak_kib * 1024.0 / r->data_bytes, secs, secs * sp->count);
}

static void print_model_json(const bench_config *cfg, const shape_result *r)
{
    const model_preset *m = cfg->model;
    extrapolation x = extrapolate(m, r);
    printf("{\"version\": \"%s\", \"model\": \"%s\", \"blocks\": %d, \"format\": \"%s\", \"method\": \"%s\", "
           "\"beam\": %d, \"max_epochs\": %d, \"tol\": %g, \"update\": \"%s\", \"seeding\": \"%s\", \"seed\": %lld, "
           "\"shapes\": [",
           aq_version_string(), m->name, m->blocks, cfg->format, method_name(cfg), cfg->beam, cfg->epochs, cfg->tol,
           update_names[cfg->update], seeding_name(cfg), cfg->seed);
    for (int i = 0; i < m->n_shapes; i++) {
        printf("%s", i ? ", " : "");
        json_model_shape(&m->shapes[i], &r[i]);
    }
    printf("], \"extrapolation\": {\"seconds_per_block\": %.6f, \"blocks\": %d, \"model_seconds\": %.3f, "
           "\"model_hours\": %.6f, \"max_peak_to_data\": %.4f, \"max_peak_to_data_layers\": \"%s\"}, ",
           x.per_block, m->blocks, x.model_seconds, x.model_seconds / 3600.0, x.max_ratio,
           m->shapes[x.max_ratio_shape].names);
    json_flop_models(&r[0]);
    printf("}\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Modes, arguments */

static int run_single(const bench_config *cfg)
{
    shape_result r;
    struct rusage ru;
    run_shape(cfg, cfg->rows, cfg->cols, single_stages, N_SINGLE_STAGES, &r);
    getrusage(RUSAGE_SELF, &ru);
    const double peak_mib = (isnan(r.peak_kib) ? (double)ru.ru_maxrss : r.peak_kib) / 1024.0; /* KiB */
    if (cfg->json)
        print_single_json(cfg, &r, peak_mib);
    else
        print_single_text(cfg, &r, peak_mib);
    return 0;
}

static int run_model(const bench_config *cfg)
{
    const model_preset *m = cfg->model;
    shape_result r[MAX_SHAPES];
    aq_format fmt;
    aq_format_init(&fmt);
    if (aq_format_parse(&fmt, cfg->format) != AQ_OK) {
        fprintf(stderr, "bench-layer: bad format %s\n", cfg->format);
        return 1;
    }
    for (int i = 0; i < m->n_shapes; i++)
        if (aq_format_check(NULL, &fmt, m->shapes[i].rows, m->shapes[i].cols) != AQ_OK) {
            fprintf(stderr, "bench-layer: format %s does not fit %s %lldx%lld\n", cfg->format, m->shapes[i].names,
                    (long long)m->shapes[i].rows, (long long)m->shapes[i].cols);
            return 1;
        }
    if (!cfg->json)
        print_model_header(cfg);
    for (int i = 0; i < m->n_shapes; i++) {
        if (run_shape_in_child(cfg, &m->shapes[i], &r[i]))
            return 1;
        if (!cfg->json)
            print_model_row(&m->shapes[i], &r[i]);
    }
    if (cfg->json)
        print_model_json(cfg, r);
    else
        print_model_text(cfg, r);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-layer [--shape OxI | --model-shape NAME] [--format F] [--method oaem|greedy]\n"
                    "                   [--beam W] [--epochs E] [--tol T] [--update auto|exact|cg|adam|none]\n"
                    "                   [--cg-iters N] [--seeding kmeans|product] [--samples N] [--threads T]\n"
                    "                   [--seed S] [--json] [--log]\n"
                    "  NAME: ");
    for (int i = 0; i < N_PRESETS; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", presets[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

static const model_preset *find_preset(const char *name)
{
    for (int i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, presets[i].name))
            return &presets[i];
    return NULL;
}

static int parse_update(const char *val)
{
    for (int u = 0; u < N_UPDATE_MODES; u++)
        if (!strcmp(val, update_names[u]))
            return u;
    usage();
    return 0;
}

/* Parse the command line; defaults by mode (header comment). Bad input: usage, exit 2. */
static void parse_args(bench_config *cfg, int argc, char **argv)
{
    int shape_given = 0, beam_given = 0, epochs_given = 0, tol_given = 0;
    *cfg = (bench_config){.rows = 1024, .cols = 1024, .seed = 1, .format = "2x8g8", .method = AQ_INIT_OA_EM,
                          .update = AQ_CODEBOOK_UPDATE_AUTO};
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
        char *end = NULL;
        if (!strcmp(arg, "--json")) {
            cfg->json = 1;
            continue;
        }
        if (!strcmp(arg, "--log")) {
            cfg->log = 1;
            continue;
        }
        if (!val)
            usage();
        a++;
        if (!strcmp(arg, "--shape") && sscanf(val, "%lldx%lld", &cfg->rows, &cfg->cols) == 2)
            shape_given = 1;
        else if (!strcmp(arg, "--model-shape") && find_preset(val))
            cfg->model = find_preset(val);
        else if (!strcmp(arg, "--format"))
            cfg->format = val;
        else if (!strcmp(arg, "--method") && (!strcmp(val, "oaem") || !strcmp(val, "greedy")))
            cfg->method = !strcmp(val, "oaem") ? AQ_INIT_OA_EM : AQ_INIT_GREEDY;
        else if (!strcmp(arg, "--beam"))
            cfg->beam = atoi(val), beam_given = 1;
        else if (!strcmp(arg, "--epochs"))
            cfg->epochs = atoi(val), epochs_given = 1;
        else if (!strcmp(arg, "--tol") && (cfg->tol = strtod(val, &end), end != val && !*end))
            tol_given = 1;
        else if (!strcmp(arg, "--update"))
            cfg->update = parse_update(val);
        else if (!strcmp(arg, "--cg-iters"))
            cfg->cg_iters = atoi(val);
        else if (!strcmp(arg, "--seeding") && (!strcmp(val, "kmeans") || !strcmp(val, "product")))
            cfg->seeding = !strcmp(val, "kmeans") ? AQ_EM_SEED_KMEANS : AQ_EM_SEED_PRODUCT;
        else if (!strcmp(arg, "--samples"))
            cfg->samples = atoll(val);
        else if (!strcmp(arg, "--threads"))
            cfg->threads = atoi(val);
        else if (!strcmp(arg, "--seed"))
            cfg->seed = atoll(val);
        else
            usage();
    }
    if (shape_given && cfg->model)
        usage();
    if (!beam_given)
        cfg->beam = cfg->model ? 8 : 1;
    if (!epochs_given)
        cfg->epochs = cfg->model ? 10 : 2;
    if (!tol_given)
        cfg->tol = cfg->model ? 0.01 : 0.0;
    if (cfg->rows < 1 || cfg->cols < 1 || cfg->epochs < 0 || !(cfg->tol >= 0.0) || isinf(cfg->tol))
        usage();
}

int main(int argc, char **argv)
{
    bench_config cfg;
    parse_args(&cfg, argc, argv);
    return cfg.model ? run_model(&cfg) : run_single(&cfg);
}

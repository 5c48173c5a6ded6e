/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Allocation-failure sweep over the public API. For a representative call of every public
 * function that takes a context or a handle, count the allocations the call makes through the
 * context's allocator, then for each i make exactly the i-th of them fail, on a fresh fixture
 * each time, and check that the call returns AQ_ERR_NOMEM, that every handle of the fixture is
 * as it was, that a handle the call would create is NULL, that no file was left behind and that
 * every block the call allocated was freed (and every block at all once the handles and the
 * context are freed). Small sizes: the suite also runs under valgrind and the sanitizers. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { ROWS = 16, COLS = 16, N_CALIB = 48, PIPE_ROWS = 8, MATMUL_FEW = 3, MATMUL_MANY = 9 };

/* The host of the pipeline cases: two layers of PIPE_ROWS × COLS, one calibration batch. */
typedef struct tiny_host {
    const float *W;
    const float *X;
} tiny_host;

typedef struct fixture {
    failing_allocator fa;
    aq_context *ctx;
    aq_options *opts; /* the options of the call; a case's prepare sets keys */
    aq_hessian *h;    /* H of the calibration inputs X */
    aq_hessian *h2;   /* the same statistics from the matrix, fewer samples */
    aq_quant *q;      /* random codes, codebooks and scales */
    aq_pipeline *p;   /* the pipeline of the run cases */
    tiny_host host;
    float *W, *X, *out, *grad;
    double *hm;
    char dir[64];
    char saved[128];              /* where the save cases write (no file there before) */
    char h_path[128], q_path[128]; /* files prepare_files writes for the load cases */
    /* what a call creates; must stay NULL when it fails */
    aq_context *new_ctx;
    aq_options *new_opts;
    aq_hessian *new_h;
    aq_quant *new_q;
    aq_pipeline *new_p;
} fixture;

/* ------------------------------------------------------------------ pipeline callbacks -- */

static int host_num_layers(int32_t *n, void *ud)
{
    (void)ud;
    *n = 2;
    return 0;
}

static int host_layer_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    (void)k, (void)ud;
    *name = "fc";
    *rows = PIPE_ROWS;
    *cols = COLS;
    return 0;
}

static int host_get_weight(int32_t k, float *W, void *ud)
{
    const tiny_host *h = ud;
    memcpy(W, h->W + (size_t)k * PIPE_ROWS * COLS, sizeof(float) * PIPE_ROWS * COLS);
    return 0;
}

/* Allocates through the run's context too: its failure comes back as the host's status. */
static int host_calibrate(int32_t k, aq_hessian *H, void *ud)
{
    const tiny_host *h = ud;
    (void)k;
    return aq_hessian_add(H, h->X, N_CALIB, COLS);
}

static int host_put_result(int32_t k, const aq_quant *q, const aq_layer_report *r, void *ud)
{
    (void)k, (void)q, (void)r, (void)ud;
    return 0;
}

static const aq_pipeline_callbacks host_callbacks = {sizeof(aq_pipeline_callbacks), host_num_layers,
                                                     host_layer_info, host_get_weight, host_calibrate,
                                                     host_put_result, NULL};

/* ------------------------------------------------------------------------------ fixture -- */

static void fixture_setup(fixture *f, const char *format)
{
    memset(f, 0, sizeof *f);
    f->ctx = tu_failing_context(&f->fa);
    ck_assert_int_eq(aq_options_create(&f->opts, f->ctx), AQ_OK);
    f->W = tu_random_matrix(ROWS, COLS, 1);
    f->X = tu_random_matrix(N_CALIB, COLS, 2);
    f->out = calloc((size_t)MATMUL_MANY * ROWS * COLS, sizeof(float));
    f->grad = tu_random_matrix(ROWS, COLS, 3);
    f->hm = calloc((size_t)COLS * COLS, sizeof(double));
    ck_assert_ptr_nonnull(f->out);
    ck_assert_ptr_nonnull(f->hm);
    ck_assert_int_eq(aq_hessian_create(&f->h, f->ctx, COLS), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(f->h, f->X, N_CALIB, COLS), AQ_OK);
    ck_assert_int_eq(aq_hessian_copy_matrix(f->h, f->hm, COLS, 0.0), AQ_OK);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&f->h2, f->ctx, f->hm, COLS, COLS, 7), AQ_OK);
    f->q = tu_random_quant(f->ctx, format ? format : "2x4g4", ROWS, COLS, 4);
    f->host = (tiny_host){f->W, f->X};
    snprintf(f->dir, sizeof f->dir, "/tmp/aq-alloc-fail-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    snprintf(f->saved, sizeof f->saved, "%s/saved", f->dir);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[sizeof ((fixture *)0)->dir + sizeof e->d_name + 1];
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            ck_assert_int_eq(remove(path), 0);
        }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}

/* Free everything; every block allocated through the context must be back. */
static void fixture_teardown(fixture *f)
{
    aq_pipeline_free(f->new_p);
    aq_quant_free(f->new_q);
    aq_hessian_free(f->new_h);
    aq_options_free(f->new_opts);
    aq_context_free(f->new_ctx);
    aq_pipeline_free(f->p);
    aq_quant_free(f->q);
    aq_hessian_free(f->h2);
    aq_hessian_free(f->h);
    aq_options_free(f->opts);
    aq_context_free(f->ctx);
    ck_assert_int_eq(f->fa.live, 0);
    remove_dir(f->dir);
    free(f->W);
    free(f->X);
    free(f->out);
    free(f->grad);
    free(f->hm);
}

/* Set @p path to @p name in the fixture's directory. */
static void in_dir(const fixture *f, char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", f->dir, name);
}

/* ------------------------------------------------------------------------------ snapshot -- */

/* The state of every handle a call could change, and the names of the directory's files. */
typedef struct snapshot {
    void *codes;
    float *codebooks, *scales;
    size_t n_codes, n_codebooks, n_scales;
    double *h[2];
    int64_t n_samples[2];
    char files[1024];
} snapshot;

static void list_dir(const char *dir, char *out, size_t size)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            ck_assert_uint_lt(strlen(out) + strlen(names[i]->d_name) + 2, size);
            strcat(out, names[i]->d_name);
            strcat(out, "/");
        }
        free(names[i]);
    }
    free(names);
}

static snapshot take_snapshot(const fixture *f)
{
    snapshot s;
    const aq_hessian *hs[2] = {f->h, f->h2};
    memset(&s, 0, sizeof s);
    aq_quant_codes(f->q, &s.n_codes);
    aq_quant_codebooks(f->q, &s.n_codebooks);
    aq_quant_scales(f->q, &s.n_scales);
    s.codes = malloc(s.n_codes);
    s.codebooks = malloc(s.n_codebooks * sizeof(float));
    s.scales = malloc(s.n_scales * sizeof(float));
    ck_assert_int_eq(aq_quant_copy_codes_out(f->q, s.codes, s.n_codes), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_codebooks_out(f->q, s.codebooks, s.n_codebooks), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_scales_out(f->q, s.scales, s.n_scales), AQ_OK);
    for (int k = 0; k < 2; k++) {
        s.h[k] = malloc(sizeof(double) * COLS * COLS);
        ck_assert_int_eq(aq_hessian_copy_matrix(hs[k], s.h[k], COLS, 0.0), AQ_OK);
        s.n_samples[k] = aq_hessian_num_samples(hs[k]);
    }
    list_dir(f->dir, s.files, sizeof s.files);
    return s;
}

static void free_snapshot(snapshot *s)
{
    free(s->codes);
    free(s->codebooks);
    free(s->scales);
    free(s->h[0]);
    free(s->h[1]);
}

/* Byte equality: a failing call must not touch the handles at all. */
static void assert_same(const snapshot *a, const snapshot *b, const char *name, long i, int files_may_change)
{
    ck_assert_msg(memcmp(a->codes, b->codes, a->n_codes) == 0, "%s, allocation %ld: codes changed", name, i);
    ck_assert_msg(memcmp(a->codebooks, b->codebooks, a->n_codebooks * sizeof(float)) == 0,
                  "%s, allocation %ld: codebooks changed", name, i);
    ck_assert_msg(memcmp(a->scales, b->scales, a->n_scales * sizeof(float)) == 0,
                  "%s, allocation %ld: scales changed", name, i);
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(memcmp(a->h[k], b->h[k], sizeof(double) * COLS * COLS) == 0,
                      "%s, allocation %ld: Hessian %d changed", name, i, k);
        ck_assert_msg(a->n_samples[k] == b->n_samples[k], "%s, allocation %ld: Hessian %d's count changed", name,
                      i, k);
    }
    ck_assert_msg(strstr(b->files, ".tmp/") == NULL, "%s, allocation %ld: a temporary file is left: %s", name, i,
                  b->files);
    if (!files_may_change)
        ck_assert_msg(strcmp(a->files, b->files) == 0, "%s, allocation %ld: files %s became %s", name, i,
                      a->files, b->files);
}

/* ---------------------------------------------------------------------------- the calls -- */

static int call_context_create(fixture *f)
{
    aq_allocator a = {fa_alloc, fa_free, &f->fa};
    return aq_context_create_with_allocator(&f->new_ctx, &a);
}

static int call_options_create(fixture *f) { return aq_options_create(&f->new_opts, f->ctx); }
static int call_options_clone(fixture *f) { return aq_options_clone(&f->new_opts, f->opts); }

static int call_format_check(fixture *f)
{
    aq_format fmt;
    aq_format_init(&fmt);
    return aq_format_check(f->ctx, &fmt, ROWS, COLS);
}

static int call_hessian_create(fixture *f) { return aq_hessian_create(&f->new_h, f->ctx, COLS); }

static int call_hessian_from_matrix(fixture *f)
{
    return aq_hessian_create_from_matrix(&f->new_h, f->ctx, f->hm, COLS, COLS, 3);
}

static int call_hessian_add(fixture *f) { return aq_hessian_add(f->h, f->X, N_CALIB, COLS); }
static int call_hessian_merge(fixture *f) { return aq_hessian_merge(f->h, f->h2); }

static int call_hessian_copies(fixture *f)
{
    double *d = (double *)f->out;
    int st = aq_hessian_copy_matrix(f->h, d, COLS, 0.1);
    if (!st)
        st = aq_hessian_copy_diagonal(f->h, d, 0.1);
    if (!st)
        st = aq_hessian_copy_block(f->h, d, 4, 1, 0.1);
    return st;
}

/* The fixture's Hessian and quant as files, for the load cases. */
static void prepare_files(fixture *f)
{
    in_dir(f, f->h_path, sizeof f->h_path, "h.aqh");
    in_dir(f, f->q_path, sizeof f->q_path, "q.aqq");
    ck_assert_int_eq(aq_hessian_save(f->h, f->h_path), AQ_OK);
    ck_assert_int_eq(aq_quant_save(f->q, f->q_path), AQ_OK);
}

static int call_hessian_save(fixture *f) { return aq_hessian_save(f->h, f->saved); }
static int call_hessian_load(fixture *f) { return aq_hessian_load(&f->new_h, f->ctx, f->h_path); }

static int call_quant_create(fixture *f)
{
    aq_format fmt;
    aq_format_init(&fmt);
    ck_assert_int_eq(aq_format_parse(&fmt, "2x4g4"), AQ_OK);
    return aq_quant_create(&f->new_q, f->ctx, &fmt, ROWS, COLS);
}

static int call_quant_clone(fixture *f) { return aq_quant_clone(&f->new_q, f->q); }

static int call_quant_save(fixture *f) { return aq_quant_save(f->q, f->saved); }
static int call_quant_load(fixture *f) { return aq_quant_load(&f->new_q, f->ctx, f->q_path); }
static int call_dequantize(fixture *f) { return aq_quant_dequantize(f->q, f->out, COLS); }

static int call_output_error(fixture *f)
{
    double e;
    return aq_quant_output_error(&e, f->q, f->W, COLS, f->h);
}

static int call_weight_mse(fixture *f)
{
    double e;
    return aq_quant_weight_mse(&e, f->q, f->W, COLS);
}

static int call_matvec(fixture *f) { return aq_quant_matvec(f->q, f->X, f->out); }

static int call_matmul_few(fixture *f)
{
    return aq_quant_matmul(f->q, f->X, MATMUL_FEW, COLS, f->out, ROWS);
}

static int call_matmul_many(fixture *f)
{
    return aq_quant_matmul(f->q, f->X, MATMUL_MANY, COLS, f->out, ROWS);
}

static int call_backward(fixture *f)
{
    return aq_quant_backward(f->q, f->grad, COLS, f->out, f->out + ROWS * COLS);
}

static void set_int(fixture *f, int32_t key, int64_t value)
{
    ck_assert_int_eq(aq_options_set_int(f->opts, key, value), AQ_OK);
}

static void prepare_short_runs(fixture *f)
{
    set_int(f, AQ_OPT_KMEANS_MAX_ITER, 5);
    set_int(f, AQ_OPT_EM_MAX_ROUNDS, 2);
    set_int(f, AQ_OPT_MAX_EPOCHS, 1); /* every allocation site of an epoch */
    set_int(f, AQ_OPT_CODEBOOK_ADAM_STEPS, 3);
    set_int(f, AQ_OPT_EM_ADAM_STEPS, 3);
    ck_assert_int_eq(aq_options_set_double(f->opts, AQ_OPT_REL_TOL, 0.0), AQ_OK);
}

static void prepare_oaem(fixture *f)
{
    prepare_short_runs(f);
    set_int(f, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
    set_int(f, AQ_OPT_EM_JOINT_PASSES, 1);
}

static void prepare_oaem_adam(fixture *f)
{
    prepare_short_runs(f);
    set_int(f, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
    set_int(f, AQ_OPT_EM_MSTEP, AQ_MSTEP_ADAM);
    set_int(f, AQ_OPT_EM_SEEDING, AQ_EM_SEED_KMEANSPP);
}

static void prepare_oaem_product(fixture *f)
{
    prepare_short_runs(f);
    set_int(f, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
    set_int(f, AQ_OPT_EM_SEEDING, AQ_EM_SEED_PRODUCT);
}

static void prepare_cg(fixture *f) { set_int(f, AQ_OPT_CODEBOOK_UPDATE, AQ_CODEBOOK_UPDATE_CG); }

static void prepare_beam4(fixture *f)
{
    set_int(f, AQ_OPT_BEAM_WIDTH, 4);
    set_int(f, AQ_OPT_BEAM_RANDOM_ORDER, 1);
}

static void prepare_greedy_kmeanspp(fixture *f)
{
    prepare_short_runs(f);
    set_int(f, AQ_OPT_KMEANS_SEEDING, AQ_SEEDING_KMEANSPP);
}

static void prepare_exact(fixture *f) { set_int(f, AQ_OPT_CODEBOOK_UPDATE, AQ_CODEBOOK_UPDATE_EXACT); }

static void prepare_adam(fixture *f)
{
    prepare_short_runs(f);
    set_int(f, AQ_OPT_CODEBOOK_UPDATE, AQ_CODEBOOK_UPDATE_ADAM);
}

static void prepare_vstep_gain(fixture *f)
{
    set_int(f, AQ_OPT_VSTEP_SELECTION, AQ_VSTEP_GAIN);
    ck_assert_int_eq(aq_options_set_double(f->opts, AQ_OPT_VSTEP_MAX_FRACTION, 0.5), AQ_OK);
    ck_assert_int_eq(aq_options_set_double(f->opts, AQ_OPT_VSTEP_MAX_CHANGE, 0.5), AQ_OK);
}

static void prepare_vstep_sampled(fixture *f)
{
    set_int(f, AQ_OPT_VSTEP_SELECTION, AQ_VSTEP_SAMPLED);
    ck_assert_int_eq(aq_options_set_double(f->opts, AQ_OPT_VSTEP_MAX_FRACTION, 0.5), AQ_OK);
    ck_assert_int_eq(aq_options_set_double(f->opts, AQ_OPT_VSTEP_TRUST_RATIO, 2.0), AQ_OK);
}

static int call_init(fixture *f) { return aq_init(f->ctx, f->q, f->W, COLS, f->h, f->opts); }
static int call_beam(fixture *f) { return aq_beam_search(f->ctx, f->q, f->W, COLS, f->h, f->opts); }
static int call_update(fixture *f) { return aq_update_codebooks(f->ctx, f->q, f->W, COLS, f->h, f->opts); }
static int call_optimize(fixture *f) { return aq_optimize(f->ctx, f->q, f->W, COLS, f->h, f->opts); }
static int call_quantize_layer(fixture *f) { return aq_quantize_layer(f->ctx, f->q, f->W, COLS, f->h, f->opts); }

/* The target is W; with H (LARGEST) and without (GAIN, SAMPLED). */
static int call_vstep_h(fixture *f) { return aq_vstep(f->ctx, f->q, f->W, COLS, f->h, f->opts, NULL); }

static int call_vstep(fixture *f)
{
    int64_t changed;
    return aq_vstep(f->ctx, f->q, f->W, COLS, NULL, f->opts, &changed);
}

static int call_pipeline_create(fixture *f)
{
    aq_pipeline_callbacks cb = host_callbacks;
    aq_format fmt;
    aq_format_init(&fmt);
    ck_assert_int_eq(aq_format_parse(&fmt, "1x4g4"), AQ_OK);
    cb.userdata = &f->host;
    return aq_pipeline_create(&f->new_p, f->ctx, &cb, &fmt, f->opts);
}

/* The pipeline's own allocations are few; aq_init and aq_optimize have their own cases. */
static void prepare_pipeline(fixture *f)
{
    set_int(f, AQ_OPT_KMEANS_MAX_ITER, 1);
    set_int(f, AQ_OPT_MAX_EPOCHS, 0);
    ck_assert_int_eq(call_pipeline_create(f), AQ_OK);
    f->p = f->new_p;
    f->new_p = NULL;
}

static int call_set_resume_dir(fixture *f) { return aq_pipeline_set_resume_dir(f->p, f->dir); }
static int call_pipeline_run(fixture *f) { return aq_pipeline_run(f->p); }

static void prepare_pipeline_resume(fixture *f)
{
    prepare_pipeline(f);
    ck_assert_int_eq(aq_pipeline_set_resume_dir(f->p, f->dir), AQ_OK);
}

/* Layer 0 finished by an earlier run: this run loads it and quantizes layer 1. */
static void prepare_pipeline_resumed(fixture *f)
{
    char from[128], to[128];
    prepare_pipeline_resume(f);
    ck_assert_int_eq(aq_pipeline_run(f->p), AQ_OK);
    in_dir(f, from, sizeof from, "layer-00001.aqq");
    in_dir(f, to, sizeof to, "layer-00001.old");
    ck_assert_int_eq(rename(from, to), 0);
}

/* ------------------------------------------------------------------------------- sweep -- */

enum {
    ALLOCATES_NOTHING = 1, /* the count must be 0 (the case pins that down) */
    HOST_ALLOCATES = 2,    /* a host callback allocates: its failure may come back as AQ_ERR_CALLBACK */
    WRITES_FILES = 4,      /* finished pipeline layers are saved even when a later one fails */
};

typedef struct sweep_case {
    const char *name;
    const char *format; /* of the fixture's quant; NULL: 2x4g4 */
    void (*prepare)(fixture *f); /* before the count, may be NULL */
    int (*call)(fixture *f);
    int flags;
} sweep_case;

static const sweep_case cases[] = {
    {"aq_context_create_with_allocator", NULL, NULL, call_context_create, 0},
    {"aq_options_create", NULL, NULL, call_options_create, 0},
    {"aq_options_clone", NULL, NULL, call_options_clone, 0},
    {"aq_format_check", NULL, NULL, call_format_check, ALLOCATES_NOTHING},
    {"aq_hessian_create", NULL, NULL, call_hessian_create, 0},
    {"aq_hessian_create_from_matrix", NULL, NULL, call_hessian_from_matrix, 0},
    {"aq_hessian_add", NULL, NULL, call_hessian_add, 0},
    {"aq_hessian_merge", NULL, NULL, call_hessian_merge, ALLOCATES_NOTHING},
    {"aq_hessian_copy_matrix/diagonal/block", NULL, NULL, call_hessian_copies, ALLOCATES_NOTHING},
    {"aq_hessian_save", NULL, NULL, call_hessian_save, 0},
    {"aq_hessian_load", NULL, prepare_files, call_hessian_load, 0},
    {"aq_quant_create", NULL, NULL, call_quant_create, 0},
    {"aq_quant_clone", NULL, NULL, call_quant_clone, 0},
    {"aq_quant_save", NULL, NULL, call_quant_save, 0},
    {"aq_quant_load", NULL, prepare_files, call_quant_load, 0},
    {"aq_quant_load (1x9g4o2: 16-bit codes)", "1x9g4o2", prepare_files, call_quant_load, 0},
    {"aq_quant_dequantize", NULL, NULL, call_dequantize, ALLOCATES_NOTHING},
    {"aq_quant_output_error", NULL, NULL, call_output_error, 0},
    {"aq_quant_weight_mse", NULL, NULL, call_weight_mse, 0},
    {"aq_quant_matvec", NULL, NULL, call_matvec, 0},
    {"aq_quant_matvec (1x9g4: codewords read directly)", "1x9g4", NULL, call_matvec, ALLOCATES_NOTHING},
    {"aq_quant_matmul (3 rows: matvec)", NULL, NULL, call_matmul_few, 0},
    {"aq_quant_matmul (9 rows: sgemm)", NULL, NULL, call_matmul_many, 0},
    {"aq_quant_backward", NULL, NULL, call_backward, 0},
    {"aq_init (greedy)", NULL, prepare_short_runs, call_init, 0},
    {"aq_init (greedy, k-means++ seeds, 2x3g4o2)", "2x3g4o2", prepare_greedy_kmeanspp, call_init, 0},
    {"aq_init (OA-EM, exact M-step, joint pass)", NULL, prepare_oaem, call_init, 0},
    {"aq_init (OA-EM, Adam M-step, k-means++ seeds)", NULL, prepare_oaem_adam, call_init, 0},
    {"aq_init (OA-EM, product seeds)", NULL, prepare_oaem_product, call_init, 0},
    {"aq_beam_search (width 1)", NULL, NULL, call_beam, 0},
    {"aq_beam_search (width 4)", NULL, prepare_beam4, call_beam, 0},
    {"aq_update_codebooks (exact)", NULL, prepare_exact, call_update, 0},
    {"aq_update_codebooks (Adam)", NULL, prepare_adam, call_update, 0},
    {"aq_update_codebooks (conjugate gradients)", NULL, prepare_cg, call_update, 0},
    {"aq_optimize", NULL, prepare_short_runs, call_optimize, 0},
    {"aq_optimize (2x3g4o2)", "2x3g4o2", prepare_short_runs, call_optimize, 0},
    {"aq_quantize_layer", NULL, prepare_short_runs, call_quantize_layer, 0},
    {"aq_vstep (largest, H)", NULL, NULL, call_vstep_h, 0},
    {"aq_vstep (gain, max change)", NULL, prepare_vstep_gain, call_vstep, 0},
    {"aq_vstep (sampled, trust ratio, 2x3g4o2)", "2x3g4o2", prepare_vstep_sampled, call_vstep, 0},
    {"aq_pipeline_create", NULL, prepare_short_runs, call_pipeline_create, 0},
    {"aq_pipeline_set_resume_dir", NULL, prepare_pipeline, call_set_resume_dir, 0},
    {"aq_pipeline_run (saving layers)", NULL, prepare_pipeline_resume, call_pipeline_run,
     HOST_ALLOCATES | WRITES_FILES},
    {"aq_pipeline_run (resuming a layer)", NULL, prepare_pipeline_resumed, call_pipeline_run,
     HOST_ALLOCATES | WRITES_FILES},
};

enum { N_CASES = sizeof cases / sizeof cases[0] };

/* A fresh fixture with the case's format, thread count and preparation. */
static void prepared_fixture(fixture *f, const sweep_case *c, int threads)
{
    fixture_setup(f, c->format);
    ck_assert_int_eq(aq_context_set_threads(f->ctx, threads), AQ_OK);
    if (c->prepare)
        c->prepare(f);
}

/* Allocations the call makes on a fresh fixture (it must succeed). */
static long count_allocations(const sweep_case *c, int threads)
{
    fixture f;
    prepared_fixture(&f, c, threads);
    const long before = f.fa.n_allocs;
    ck_assert_msg(c->call(&f) == AQ_OK, "%s: %s", c->name, aq_context_last_error(f.ctx));
    const long n = f.fa.n_allocs - before;
    fixture_teardown(&f);
    return n;
}

/* Make allocation i (0-based) of the call fail; returns whether it was reached. */
static int fail_one(const sweep_case *c, int threads, long i)
{
    fixture f;
    prepared_fixture(&f, c, threads);
    snapshot before = take_snapshot(&f);
    const long live = f.fa.live, start = f.fa.n_allocs;
    f.fa.fail_at = start + i + 1;
    const int st = c->call(&f);
    f.fa.fail_at = 0;
    const int reached = f.fa.n_allocs - start > i;
    if (reached) {
        const int host_failed = (c->flags & HOST_ALLOCATES) && st == AQ_ERR_CALLBACK
                                && aq_pipeline_host_status(f.p) == AQ_ERR_NOMEM;
        ck_assert_msg(st == AQ_ERR_NOMEM || host_failed, "%s, allocation %ld of the call failed: status %d (%s)",
                      c->name, i, st, aq_context_last_error(f.ctx));
        ck_assert_msg(!f.new_ctx && !f.new_opts && !f.new_h && !f.new_q && !f.new_p,
                      "%s, allocation %ld: a handle was created by a failing call", c->name, i);
        ck_assert_msg(f.fa.live == live, "%s, allocation %ld: %ld blocks not freed", c->name, i, f.fa.live - live);
        snapshot after = take_snapshot(&f);
        assert_same(&before, &after, c->name, i, c->flags & WRITES_FILES);
        free_snapshot(&after);
    }
    free_snapshot(&before);
    fixture_teardown(&f);
    return reached;
}

static void sweep(int index, int threads)
{
    const sweep_case *c = &cases[index];
    const long n = count_allocations(c, threads);
    if (c->flags & ALLOCATES_NOTHING)
        ck_assert_msg(n == 0, "%s allocates %ld blocks: drop ALLOCATES_NOTHING", c->name, n);
    else
        ck_assert_msg(n > 0, "%s allocates nothing: mark it ALLOCATES_NOTHING", c->name);
    for (long i = 0; i < n; i++)
        ck_assert_msg(fail_one(c, threads, i) || threads > 1,
                      "%s: allocation %ld of %ld was not reached on the second run", c->name, i, n);
}

/* One thread: the allocations come in the same order every run. */
START_TEST(every_allocation_fails_cleanly)
{
    sweep(_i, 1);
}
END_TEST

/* Two threads: the pool's workers allocate too, in an order that may vary between runs, so an
 * allocation index the failing run does not reach is skipped. */
START_TEST(every_allocation_fails_cleanly_with_two_threads)
{
    sweep(_i, 2);
}
END_TEST

static Suite *alloc_fail_suite(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("alloc_fail");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, every_allocation_fails_cleanly, 0, N_CASES);
    tcase_add_loop_test(tc, every_allocation_fails_cleanly_with_two_threads, 0, N_CASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(alloc_fail_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

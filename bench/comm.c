/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* bench-comm: one layer on 1 and N ranks (issue 16's scaling measurement). Ranks are host
 * threads of this process exchanging through the in-process communicator of the tests
 * (tests/shm_comm.h), each rank with its own context of --threads threads, so that on this
 * machine 2 ranks × 1 thread use the same 2 cores as 2 MPI processes would, without an MPI
 * install. For each stage — aq_init (OA-EM), one beam pass (aq_beam_search), one codebook
 * update (aq_update_codebooks) — it prints the seconds on 1 rank and on N ranks, the speedup,
 * the bytes each rank received, and whether the N-rank result is byte-identical to 1 rank. Also
 * each rank's thread CPU time (its own work, blocking waits excluded): with --threads 1 and
 * OPENBLAS_NUM_THREADS=1 a rank computes on its thread alone, so the ratio of CPU times, 1 rank
 * against the busiest of N, is the speedup the split allows, whatever else loads the machine.
 *
 *   bench-comm [--shape 4096x4096] [--format 2x8g8] [--ranks 2] [--threads 1] [--beam 8] [--seed 1]
 *
 * The synthetic layer (examples/demo/synthetic.c) and its Hessian are built once, not timed. */
#include "../tests/shm_comm.h" /* first: POSIX 2008 for pthread barriers */

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "synthetic.h"

enum { ST_INIT, ST_BEAM, ST_UPDATE, N_STAGES };
static const char *stage_names[N_STAGES] = {"aq_init (OA-EM)", "beam pass", "codebook update"};

typedef struct config {
    int64_t rows, cols;
    const char *format;
    int ranks, threads, beam;
    uint64_t seed;
} config;

typedef struct shared_input {
    const config *cfg;
    const float *W;
    aq_context *main_ctx;      /* where the stages' starting quants and results live */
    const double *H_matrix;    /* cols × cols: each rank makes its own aq_hessian of it */
    int64_t H_samples;
    aq_quant *start[N_STAGES]; /* the quant each stage starts from (from the 1-rank run) */
} shared_input;

typedef struct rank_job {
    shm_rank r; /* first member (shm_run) */
    shared_input *in;
    int stage;
    double seconds, cpu_seconds;
    int status;
    int64_t bytes;
    aq_quant *out;
} rank_job;

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

/* A copy of @p src made in @p ctx: a library call refuses handles of another context, so each
 * rank works on its own copies, and results come back as copies in the main context. */
static int quant_copy_in_context(aq_quant **out, aq_context *ctx, const aq_quant *src)
{
    aq_format f;
    size_t nc, nb, ns;
    int st;
    aq_format_init(&f);
    if ((st = aq_quant_get_format(&f, src)) != AQ_OK
        || (st = aq_quant_create(out, ctx, &f, aq_quant_rows(src), aq_quant_cols(src))) != AQ_OK)
        return st;
    const void *codes = aq_quant_codes_const(src, &nc);
    const float *books = aq_quant_codebooks_const(src, &nb), *scales = aq_quant_scales_const(src, &ns);
    if ((st = aq_quant_copy_codes_in(*out, codes, nc)) == AQ_OK
        && (st = aq_quant_copy_codebooks_in(*out, books, nb)) == AQ_OK)
        st = aq_quant_copy_scales_in(*out, scales, ns);
    return st;
}

static void *rank_main(void *arg)
{
    rank_job *job = arg;
    const config *cfg = job->in->cfg;
    aq_context *ctx = NULL;
    aq_options *o = NULL;
    aq_hessian *H = NULL;
    aq_comm comm = shm_comm(&job->r);
    int st = aq_context_create(&ctx);
    if (st == AQ_OK) {
        aq_context_set_threads(ctx, cfg->threads);
        aq_context_set_seed(ctx, cfg->seed);
        if (job->r.world->size > 1)
            st = aq_context_set_comm(ctx, &comm);
    }
    if (st == AQ_OK)
        st = aq_options_create(&o, ctx);
    if (st == AQ_OK) {
        aq_options_set_int(o, AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
        aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, cfg->beam);
        st = aq_hessian_create_from_matrix(&H, ctx, job->in->H_matrix, cfg->cols, cfg->cols, job->in->H_samples);
        if (st == AQ_OK)
            st = quant_copy_in_context(&job->out, ctx, job->in->start[job->stage]);
    }
    /* a rank that failed above still makes the collective call, so that no rank waits forever */
    const double t0 = now(), c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    int st_call = job->stage == ST_INIT     ? aq_init(ctx, job->out, job->in->W, cfg->cols, H, o)
                  : job->stage == ST_BEAM ? aq_beam_search(ctx, job->out, job->in->W, cfg->cols, H, o)
                                          : aq_update_codebooks(ctx, job->out, job->in->W, cfg->cols, H, o);
    job->seconds = now() - t0;
    job->cpu_seconds = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
    job->status = st != AQ_OK ? st : st_call;
    job->bytes = job->r.bytes_received;
    aq_options_free(o);
    aq_hessian_free(H);
    /* the result must outlive the rank's context: a copy in the main one */
    aq_quant *keep = NULL;
    if (job->out && quant_copy_in_context(&keep, job->in->main_ctx, job->out) != AQ_OK)
        job->status = AQ_ERR_NOMEM;
    aq_quant_free(job->out);
    job->out = keep;
    aq_context_free(ctx);
    return NULL;
}

static int same_quant(const aq_quant *a, const aq_quant *b)
{
    size_t na, nb;
    const void *ca = aq_quant_codes((aq_quant *)a, &na), *cb = aq_quant_codes((aq_quant *)b, &nb);
    size_t ka, kb, sa, sb;
    const float *ba = aq_quant_codebooks((aq_quant *)a, &ka), *bb = aq_quant_codebooks((aq_quant *)b, &kb);
    const float *xa = aq_quant_scales((aq_quant *)a, &sa), *xb = aq_quant_scales((aq_quant *)b, &sb);
    return na == nb && !memcmp(ca, cb, na) && !memcmp(ba, bb, sizeof(float) * ka) && !memcmp(xa, xb, sizeof(float) * sa);
}

/* Run @p stage on @p n ranks; the result of rank 0 in *out (the caller frees). */
static int run_stage(shared_input *in, int stage, int n, double *seconds, double *cpu, int64_t *bytes, aq_quant **out)
{
    rank_job jobs[SHM_MAX_RANKS];
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < n; t++) {
        jobs[t].in = in;
        jobs[t].stage = stage;
    }
    if (shm_run(n, 0, rank_main, jobs, sizeof(rank_job)) != 0)
        return -1;
    *seconds = *cpu = 0;
    *bytes = 0;
    int st = AQ_OK;
    for (int t = 0; t < n; t++) {
        if (jobs[t].seconds > *seconds)
            *seconds = jobs[t].seconds; /* the stage ends when its slowest rank does */
        if (jobs[t].cpu_seconds > *cpu)
            *cpu = jobs[t].cpu_seconds;
        if (jobs[t].bytes > *bytes)
            *bytes = jobs[t].bytes;
        if (jobs[t].status != AQ_OK)
            st = jobs[t].status;
        if (t > 0 && st == AQ_OK && !same_quant(jobs[t].out, jobs[0].out))
            st = AQ_ERR_INTERNAL;
        if (t > 0)
            aq_quant_free(jobs[t].out);
    }
    *out = jobs[0].out;
    return st;
}

static int parse(config *c, int argc, char **argv)
{
    *c = (config){4096, 4096, "2x8g8", 2, 1, 8, 1};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--shape") && v && sscanf(v, "%" SCNd64 "x%" SCNd64, &c->rows, &c->cols) == 2)
            i++;
        else if (!strcmp(argv[i], "--format") && v)
            c->format = argv[++i];
        else if (!strcmp(argv[i], "--ranks") && v)
            c->ranks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && v)
            c->threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--beam") && v)
            c->beam = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && v)
            c->seed = (uint64_t)strtoull(argv[++i], NULL, 10);
        else
            return -1;
    }
    return c->ranks >= 1 && c->ranks <= SHM_MAX_RANKS && c->threads >= 1 && c->rows > 0 && c->cols > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    config cfg;
    aq_context *ctx = NULL;
    aq_hessian *H = NULL;
    aq_format fmt;
    synth_layer layer;
    shared_input in;
    if (parse(&cfg, argc, argv) != 0) {
        fprintf(stderr, "usage: bench-comm [--shape OxI] [--format 2x8g8] [--ranks 2] [--threads 1] [--beam 8] [--seed 1]\n");
        return 2;
    }
    aq_format_init(&fmt);
    if (aq_format_parse(&fmt, cfg.format) != AQ_OK || aq_context_create(&ctx) != AQ_OK
        || aq_context_set_threads(ctx, 2) != AQ_OK || aq_hessian_create(&H, ctx, cfg.cols) != AQ_OK
        || synth_make(&layer, H, ctx, cfg.rows, cfg.cols, 2 * cfg.cols, cfg.seed) != AQ_OK) {
        fprintf(stderr, "bench-comm: setup failed: %s\n", aq_context_last_error(ctx));
        return 1;
    }
    memset(&in, 0, sizeof in);
    in.cfg = &cfg;
    in.W = layer.W;
    in.main_ctx = ctx;
    in.H_samples = aq_hessian_num_samples(H);
    double *H_matrix = malloc(sizeof(double) * (size_t)(cfg.cols * cfg.cols));
    if (!H_matrix || aq_hessian_copy_matrix(H, H_matrix, cfg.cols, 0.0) != AQ_OK)
        return 1;
    in.H_matrix = H_matrix;
    if (aq_quant_create(&in.start[ST_INIT], ctx, &fmt, cfg.rows, cfg.cols) != AQ_OK)
        return 1;
    printf("bench-comm: %" PRId64 "x%" PRId64 " %s, beam %d, %d thread(s) per rank, 1 vs %d ranks (in-process)\n",
           cfg.rows, cfg.cols, cfg.format, cfg.beam, cfg.threads, cfg.ranks);
    printf("%-18s %10s %10s %8s %10s %10s %8s %14s %s\n", "stage", "1 rank s", "N ranks s", "speedup", "cpu 1 s",
           "cpu max N", "ratio", "MiB recv/rank", "bits");
    double total1 = 0, totalN = 0, cpu1 = 0, cpuN = 0;
    for (int stage = 0; stage < N_STAGES; stage++) {
        double s1, sN, c1, cN;
        int64_t b1, bN;
        aq_quant *q1 = NULL, *qN = NULL;
        int st1 = run_stage(&in, stage, 1, &s1, &c1, &b1, &q1);
        int stN = run_stage(&in, stage, cfg.ranks, &sN, &cN, &bN, &qN);
        if (st1 != AQ_OK || stN != AQ_OK) {
            fprintf(stderr, "bench-comm: %s failed (%d / %d)\n", stage_names[stage], st1, stN);
            return 1;
        }
        printf("%-18s %10.2f %10.2f %7.2fx %10.2f %10.2f %7.2fx %14.2f %s\n", stage_names[stage], s1, sN, s1 / sN, c1,
               cN, c1 / cN, (double)bN / (1 << 20), same_quant(q1, qN) ? "identical" : "DIFFERENT");
        fflush(stdout);
        total1 += s1;
        totalN += sN;
        cpu1 += c1;
        cpuN += cN;
        if (stage + 1 < N_STAGES)
            in.start[stage + 1] = q1; /* the next stage starts from this one's result */
        else
            aq_quant_free(q1);
        aq_quant_free(qN);
    }
    printf("%-18s %10.2f %10.2f %7.2fx %10.2f %10.2f %7.2fx\n", "all three", total1, totalN, total1 / totalN, cpu1,
           cpuN, cpu1 / cpuN);
    for (int stage = 0; stage < N_STAGES; stage++)
        aq_quant_free(in.start[stage]);
    synth_free(&layer);
    free(H_matrix);
    aq_hessian_free(H);
    aq_context_free(ctx);
    return 0;
}

/* bench-layer: the per-layer recipe on a synthetic LLM-like layer, stage by stage.
 *
 *   bench-layer [--shape OxI] [--format F] [--method oaem|greedy] [--beam W] [--epochs E]
 *               [--samples N] [--threads T] [--seed S] [--json]
 *   defaults: 1024x1024, 2x8g8, oaem, beam 1, epochs 2, N = 2·I samples, T = 0 (all cores),
 *   seed 1. Set OPENBLAS_NUM_THREADS to T for comparable sgemm / SYRK figures.
 *
 * Stages, in order, on one quant: Hessian accumulation (aq_hessian_add of N calibration rows
 * in batches of 512), aq_init, one aq_update_codebooks, one aq_beam_search, aq_optimize with
 * E epochs (AQ_OPT_REL_TOL = 0, so all E epochs run). Per stage: seconds, share of the sum of
 * the stages, relative output error after it (aq_quant_output_error). Then the peak resident
 * memory (getrusage ru_maxrss) and, as the reference figure, cblas_sgemm GFLOP/s on
 * (O × I)·(I × 256) measured in the same run; the Hessian stage's GFLOP/s counts n·I² (SYRK).
 *
 * The layer (W and its Hessian from correlated inputs with outlier channels) comes from
 * examples/demo/synthetic.c; its generation is not timed. The timed Hessian stage accumulates
 * N rows of a fixed random 512 × I batch into a separate aq_hessian (the cost of
 * aq_hessian_add does not depend on the values); the stages after it use the synthetic H.
 * Prints figures; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <aqinit.h>

#include "synthetic.h"

#include "bench_util.h"

#define N_STAGES 5
#define SGEMM_N 256
#define SGEMM_REPS 5

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

static void usage(void)
{
    fprintf(stderr, "usage: bench-layer [--shape OxI] [--format F] [--method oaem|greedy] [--beam W] [--epochs E]\n"
                    "                   [--update auto|exact|cg|adam|none] [--cg-iters N] [--samples N] [--threads T]\n"
                    "                   [--seed S] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long long rows = 1024, cols = 1024, samples = 0, seed = 1;
    const char *format = "2x8g8";
    int method = AQ_INIT_OA_EM, beam = 1, epochs = 2, threads = 0, json = 0, update = AQ_CODEBOOK_UPDATE_AUTO;
    int cg_iters = 0;
    static const char *update_names[] = {"auto", "exact", "adam", "none", "cg"};
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(arg, "--json"))
            json = 1;
        else if (!val)
            usage();
        else if (!strcmp(arg, "--shape") && sscanf(val, "%lldx%lld", &rows, &cols) == 2)
            a++;
        else if (!strcmp(arg, "--format"))
            format = argv[++a];
        else if (!strcmp(arg, "--method") && (!strcmp(val, "oaem") || !strcmp(val, "greedy"))) {
            method = !strcmp(val, "oaem") ? AQ_INIT_OA_EM : AQ_INIT_GREEDY;
            a++;
        } else if (!strcmp(arg, "--beam"))
            beam = atoi(argv[++a]);
        else if (!strcmp(arg, "--epochs"))
            epochs = atoi(argv[++a]);
        else if (!strcmp(arg, "--update")) {
            for (update = 0; update < 5 && strcmp(val, update_names[update]); update++)
                ;
            if (update == 5)
                usage();
            a++;
        } else if (!strcmp(arg, "--cg-iters"))
            cg_iters = atoi(argv[++a]);
        else if (!strcmp(arg, "--samples"))
            samples = atoll(argv[++a]);
        else if (!strcmp(arg, "--threads"))
            threads = atoi(argv[++a]);
        else if (!strcmp(arg, "--seed"))
            seed = atoll(argv[++a]);
        else
            usage();
    }
    if (rows < 1 || cols < 1 || epochs < 0)
        usage();
    if (samples <= 0)
        samples = 2 * cols;

    aq_context *ctx = NULL;
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    aq_options *o = NULL;
    aq_format fmt;
    synth_layer layer;
    check(aq_context_create(&ctx), NULL, "context");
    check(aq_context_set_threads(ctx, threads), ctx, "threads");
    check(aq_context_set_seed(ctx, (uint64_t)seed), ctx, "seed");
    aq_format_init(&fmt);
    check(aq_format_parse(&fmt, format), ctx, "format");
    check(aq_format_check(ctx, &fmt, rows, cols), ctx, "format");
    check(aq_options_create(&o, ctx), ctx, "options");
    check(aq_options_set_int(o, AQ_OPT_INIT_METHOD, method), ctx, "--method");
    check(aq_options_set_int(o, AQ_OPT_BEAM_WIDTH, beam), ctx, "--beam");
    check(aq_options_set_int(o, AQ_OPT_MAX_EPOCHS, epochs), ctx, "--epochs");
    check(aq_options_set_double(o, AQ_OPT_REL_TOL, 0.0), ctx, "rel tol");
    check(aq_options_set_int(o, AQ_OPT_CODEBOOK_UPDATE, update), ctx, "--update");
    if (cg_iters > 0)
        check(aq_options_set_int(o, AQ_OPT_CODEBOOK_CG_ITERS, cg_iters), ctx, "--cg-iters");

    double t_gen = now_seconds();
    check(aq_hessian_create(&H, ctx, cols), ctx, "hessian");
    check(synth_make(&layer, H, ctx, rows, cols, samples, (uint64_t)seed), ctx, "synthetic layer");
    t_gen = now_seconds() - t_gen;

    static const char *names[N_STAGES] = {"hessian", "aq_init", "update_codebooks", "beam_search", "optimize"};
    double sec[N_STAGES], err[N_STAGES];
    int have_err[N_STAGES] = {0, 1, 1, 1, 1};
    err[0] = 0.0;
    sec[0] = time_hessian(ctx, cols, samples, (uint64_t)seed);
    check(aq_quant_create(&q, ctx, &fmt, rows, cols), ctx, "quant");
    for (int s = 1; s < N_STAGES; s++) {
        double t0 = now_seconds();
        int st = s == 1 ? aq_init(ctx, q, layer.W, cols, H, o)
               : s == 2 ? aq_update_codebooks(ctx, q, layer.W, cols, H, o)
               : s == 3 ? aq_beam_search(ctx, q, layer.W, cols, H, o)
                        : aq_optimize(ctx, q, layer.W, cols, H, o);
        sec[s] = now_seconds() - t0;
        check(st, ctx, names[s]);
        check(aq_quant_output_error(&err[s], q, layer.W, cols, H), ctx, "output error");
    }
    double t_sgemm = time_sgemm(layer.W, rows, cols, SGEMM_N, (uint64_t)seed);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    double total = 0.0;
    for (int s = 0; s < N_STAGES; s++)
        total += sec[s];
    const double sgemm_gflops = 2.0 * (double)rows * (double)cols * SGEMM_N / t_sgemm * 1e-9;
    const double syrk_gflops = (double)samples * (double)cols * (double)cols / sec[0] * 1e-9;
    const double peak_mib = (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
    const char *method_name = method == AQ_INIT_OA_EM ? "oaem" : "greedy";
    const int nthreads = (int)aq_context_get_threads(ctx);

    if (json) {
        printf("{\"version\": \"%s\", \"shape\": [%lld, %lld], \"format\": \"%s\", \"method\": \"%s\", \"beam\": %d, "
               "\"epochs\": %d, \"samples\": %lld, \"threads\": %d, \"seed\": %lld, \"generation_seconds\": %.6f, "
               "\"stages\": [",
               aq_version_string(), rows, cols, format, method_name, beam, epochs, samples, nthreads, seed, t_gen);
        for (int s = 0; s < N_STAGES; s++) {
            printf("%s{\"stage\": \"%s\", \"seconds\": %.6f, \"share\": %.6f, \"rel_output_error\": ", s ? ", " : "",
                   names[s], sec[s], sec[s] / total);
            if (have_err[s])
                printf("%.9g", err[s]);
            else
                printf("null");
            if (s == 0)
                printf(", \"syrk_gflops\": %.3f", syrk_gflops);
            printf("}");
        }
        printf("], \"total_seconds\": %.6f, \"sgemm\": {\"m\": %lld, \"k\": %lld, \"n\": %d, \"seconds\": %.6f, "
               "\"gflops\": %.3f}, \"peak_rss_mib\": %.1f}\n",
               total, rows, cols, SGEMM_N, t_sgemm, sgemm_gflops, peak_mib);
    } else {
        printf("bench-layer: libaqinit %s, %lldx%lld %s, %s, beam %d, epochs %d, %lld samples, %d threads, seed %lld\n",
               aq_version_string(), rows, cols, format, method_name, beam, epochs, samples, nthreads, seed);
        printf("  (synthetic layer generated in %.2f s, not counted)\n", t_gen);
        printf("  %-18s %10s %7s %14s\n", "stage", "seconds", "share", "rel. out. err");
        for (int s = 0; s < N_STAGES; s++) {
            printf("  %-18s %10.3f %6.1f%% ", names[s], sec[s], 100.0 * sec[s] / total);
            if (have_err[s])
                printf("%14.6f", err[s]);
            else
                printf("%14s", "-");
            if (s == 0)
                printf("   (SYRK-equivalent %.1f GFLOP/s, n·I² flops)", syrk_gflops);
            printf("\n");
        }
        printf("  %-18s %10.3f\n", "total", total);
        printf("  reference: cblas_sgemm (%lld x %lld)·(%lld x %d) %.4f s = %.1f GFLOP/s\n", rows, cols, cols, SGEMM_N,
               t_sgemm, sgemm_gflops);
        printf("  peak resident memory: %.1f MiB\n", peak_mib);
    }
    aq_quant_free(q);
    aq_options_free(o);
    synth_free(&layer);
    aq_hessian_free(H);
    aq_context_free(ctx);
    return 0;
}

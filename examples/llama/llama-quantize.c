/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* llama-quantize: quantize every linear layer of a llama2.c checkpoint through aq_pipeline,
 * true-sequentially, and measure perplexity before and after.
 *
 *   llama-quantize MODEL CALIB TEST [--format 2x8g8] [--method greedy|oaem] [--beam 1]
 *                  [--epochs 10] [--threads 0] [--seed 1] [--calib-windows 128] [--em-damping 1]
 *                  [--hessian-damping 0]
 *                  [--ppl-windows 40] [--heldout-windows 0] [--out DIR [--resume verify|verify-hessian|accept]]
 *                  [--json] [--max-ppl-ratio R]
 *                  [--generate N [--tokenizer tokenizer.bin] [--temperature 0.8]]
 *
 * The host side of the pipeline lives here: the model and its forward pass (examples/common),
 * calibration on CALIB, and replacing each finished layer by its dequantized weights so that
 * later layers are calibrated on the quantized model. --out DIR keeps the quantized layers
 * (docs/formats.md, "Quantized model directory") and resumes from them. Perplexity follows
 * ../shared/bench/README.md on the first --ppl-windows windows of TEST (0 = all). One progress
 * line per layer goes to stderr; --json prints one JSON object on stdout. --generate N then
 * writes N tokens of text sampled from the quantized model, every linear layer computed from
 * the codes by aq_quant_matvec (the LUT kernels), with a key/value cache, and times greedy
 * decoding with the fp32 weights, aq_quant_matvec and AQ_MATVEC_INT16. --heldout-windows N
 * then measures each layer's relative output error under Hessians of text it was not fitted to:
 * the N calibration windows after the --calib-windows used, and the N test windows after the
 * --ppl-windows scored (an overfitting and distribution-shift check).
 *
 * Built a second time with AQEX_MPI as examples/mpi/aqinit-mpi-quantize: under mpirun every
 * rank runs the same program, the calibration forward passes are shared (calibrate_mpi.h), the
 * library shards its work over the ranks (aq_comm), rank 0 alone prints and writes --out, and
 * the quantized layers are byte-identical to llama-quantize's. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <aqinit.h>

#include "calibrate.h"
#include "llama_model.h"
#ifdef AQEX_MPI
#include <aqinit-mpi.h>

#include "calibrate_mpi.h"
#define PROGRAM "aqinit-mpi-quantize"
#else
#define PROGRAM "llama-quantize"
#endif
#include "tokenizer.h"
#include "tokens.h"

typedef struct args {
    const char *model, *calib, *test, *format, *out;
    int method, beam, epochs, threads, calib_windows, ppl_windows, heldout_windows, check_heldout, json;
    double max_ppl_ratio; /* > 0: exit 1 if quantized / fp32 perplexity exceeds it (tests) */
    double em_damping;    /* AQ_OPT_EM_DAMPING for OA-EM (docs/algorithms.md); < 0: the library's 0.01 */
    double hessian_damping; /* AQ_OPT_HESSIAN_DAMPING: ridge of the optimiser's H */
    int generate;
    double temperature;
    const char *tokenizer;
    uint64_t seed;
    int resume;           /* AQ_OPT_PIPELINE_RESUME: what --out's finished layers must match */
} args;

/* The host: model, calibration tokens, and a cache of the Hessian of the last input seen (wq,
 * wk, wv share one input, as do w1 and w3: quantizing wq does not change wk's input). */
typedef struct host {
    llm_model *model;
    const uint16_t *calib;
    size_t n_calib;
    int calib_windows;
    aq_context *ctx;
    aq_hessian *shared;   /* Hessian of the input of shared_for */
    int shared_for;       /* first linear of the input group cached in shared, or −1 */
    double error_sum, seconds;
    int error_count;      /* layers whose error is known (a layer resumed without a record has none) */
    aq_quant **quants;    /* every finished layer, for generation with the LUT kernels */
} host;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Linears that read the same activation: wq/wk/wv (0,1,2) and w1/w3 (4,5) of a block. */
static int input_group(int linear)
{
    const int block = linear / 7, kind = linear % 7;
    static const int first_of_kind[7] = {0, 0, 0, 3, 4, 4, 6};
    return block * 7 + first_of_kind[kind];
}

static int cb_num_layers(int32_t *n, void *ud)
{
    *n = llm_num_linears(((host *)ud)->model);
    return 0;
}

static int cb_layer_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
{
    int r, c;
    llm_linear_info(((host *)ud)->model, k, name, &r, &c);
    *rows = r;
    *cols = c;
    return 0;
}

static int cb_get_weight(int32_t k, float *W, void *ud)
{
    host *h = ud;
    int r, c;
    llm_linear_info(h->model, k, NULL, &r, &c);
    memcpy(W, llm_linear_weight(h->model, k), sizeof(float) * (size_t)r * (size_t)c);
    return 0;
}

static int cb_calibrate(int32_t k, aq_hessian *H, void *ud)
{
    host *h = ud;
    const int group = input_group(k);
    if (h->shared_for != group) {
        aq_hessian_free(h->shared);
        h->shared = NULL;
        h->shared_for = -1;
        if (aq_hessian_create(&h->shared, h->ctx, aq_hessian_num_inputs(H)) != AQ_OK)
            return 1;
#ifdef AQEX_MPI
        if (llm_calibrate_mpi(h->model, h->calib, h->n_calib, h->calib_windows, group, h->shared, MPI_COMM_WORLD)
            != AQ_OK)
            return 2;
#else
        if (llm_calibrate(h->model, h->calib, h->n_calib, h->calib_windows, group, h->shared) != AQ_OK)
            return 2;
#endif
        h->shared_for = group;
    }
    return aq_hessian_merge(H, h->shared) == AQ_OK ? 0 : 3;
}

/* True-sequential: the model continues with the dequantized layer. */
static int cb_put_result(int32_t k, const aq_quant *q, const aq_layer_report *r, void *ud)
{
    host *h = ud;
    const char *name;
    int rows, cols;
    llm_linear_info(h->model, k, &name, &rows, &cols);
    if (aq_quant_dequantize(q, llm_linear_weight(h->model, k), cols) != AQ_OK)
        return 4;
    aq_quant_free(h->quants[k]);
    h->quants[k] = NULL;
    if (aq_quant_clone(&h->quants[k], q) != AQ_OK)
        return 5;
    if (isfinite(r->final_error)) { /* a resumed layer reports the error recorded when it was made */
        h->error_sum += r->final_error;
        h->error_count++;
    }
    h->seconds += r->init_seconds + r->optimize_seconds;
    fprintf(stderr, "  [%2d/%2d] %-12s %4dx%-4d %s init %.5f  final %.5f  %.2f s\n", k + 1, llm_num_linears(h->model),
            name, rows, cols, r->resumed ? "(resumed)" : "", r->init_error, r->final_error,
            r->init_seconds + r->optimize_seconds);
    return 0;
}

/* Mean relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) of the finished layers (ΔW against the
 * fp32 weights of @p fp32) under the Hessians of @p windows windows of @p tokens starting at
 * window @p first, run through the quantized model. Layer k's input depends on layers < k only,
 * so this is the training objective of each layer measured on other text. Returns 0, with
 * *mean = −1 and a message if the token file has fewer windows there; 1 (with a message) on
 * failure. */
static int heldout_error(host *h, llm_model *fp32, const uint16_t *tokens, size_t n_tokens, int first,
                         int windows, const char *what, double *mean)
{
    const size_t seq = (size_t)llm_get_config(h->model)->seq_len, skip = (size_t)first * seq;
    aq_hessian *H = NULL;
    double sum = 0.0;
    int have = -1;
    *mean = -1.0;
    if (windows <= 0 || n_tokens < skip + (size_t)windows * seq) {
        fprintf(stderr, "held-out %s: fewer than %d windows after window %d, skipped\n", what, windows, first);
        return 0;
    }
    for (int k = 0; k < llm_num_linears(h->model); k++) {
        int rows, cols;
        double e;
        llm_linear_info(h->model, k, NULL, &rows, &cols);
        if (have != input_group(k)) {
            aq_hessian_free(H);
            H = NULL;
            if (aq_hessian_create(&H, h->ctx, cols) != AQ_OK
                || llm_calibrate(h->model, tokens + skip, n_tokens - skip, windows, k, H) != AQ_OK)
                goto fail;
            have = input_group(k);
        }
        if (aq_quant_output_error(&e, h->quants[k], llm_linear_weight(fp32, k), cols, H) != AQ_OK)
            goto fail;
        sum += e;
    }
    aq_hessian_free(H);
    *mean = sum / llm_num_linears(h->model);
    fprintf(stderr, "held-out %s (%d windows from window %d): mean layer rel. error %.5f\n", what, windows, first,
            *mean);
    return 0;
fail:
    fprintf(stderr, PROGRAM ": held-out %s error: %s\n", what, aq_context_last_error(h->ctx));
    aq_hessian_free(H);
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: llama-quantize MODEL CALIB TEST [--format 2x8g8] [--method greedy|oaem] [--beam 1]\n"
                    "       [--epochs 10] [--threads 0] [--seed 1] [--calib-windows 128] [--em-damping 1]\n"
                    "       [--hessian-damping 0]\n"
                    "       [--ppl-windows 40] [--heldout-windows 0]\n"
                    "       [--out DIR [--resume verify|verify-hessian|accept]] [--json] [--max-ppl-ratio R]\n"
                    "       [--generate N [--tokenizer tokenizer.bin] [--temperature 0.8]]\n");
}

static int parse(args *a, int argc, char **argv)
{
    if (argc < 4)
        return -1;
    memset(a, 0, sizeof *a);
    a->model = argv[1], a->calib = argv[2], a->test = argv[3];
    a->format = "2x8g8", a->method = AQ_INIT_OA_EM, a->beam = 1, a->epochs = 10;
    a->calib_windows = 128, a->ppl_windows = 40, a->em_damping = 1.0, a->seed = 1, a->temperature = 0.8;
    for (int i = 4; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(o, "--check-heldout")) { /* tests: the held-out path on the training windows */
            a->check_heldout = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(o, "--format")) a->format = v;
        else if (!strcmp(o, "--method")) {
            if (strcmp(v, "greedy") && strcmp(v, "oaem")) return -1;
            a->method = strcmp(v, "oaem") ? AQ_INIT_GREEDY : AQ_INIT_OA_EM;
        } else if (!strcmp(o, "--beam")) a->beam = atoi(v);
        else if (!strcmp(o, "--epochs")) a->epochs = atoi(v);
        else if (!strcmp(o, "--threads")) a->threads = atoi(v);
        else if (!strcmp(o, "--seed")) a->seed = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--calib-windows")) a->calib_windows = atoi(v);
        else if (!strcmp(o, "--em-damping")) a->em_damping = atof(v);
        else if (!strcmp(o, "--hessian-damping")) a->hessian_damping = atof(v);
        else if (!strcmp(o, "--ppl-windows")) a->ppl_windows = atoi(v);
        else if (!strcmp(o, "--heldout-windows")) a->heldout_windows = atoi(v);
        else if (!strcmp(o, "--out")) a->out = v;
        else if (!strcmp(o, "--resume")) {
            if (!strcmp(v, "verify")) a->resume = AQ_RESUME_VERIFY;
            else if (!strcmp(v, "verify-hessian")) a->resume = AQ_RESUME_VERIFY_HESSIAN;
            else if (!strcmp(v, "accept")) a->resume = AQ_RESUME_ACCEPT;
            else return -1;
        }
        else if (!strcmp(o, "--max-ppl-ratio")) a->max_ppl_ratio = atof(v);
        else if (!strcmp(o, "--generate")) a->generate = atoi(v);
        else if (!strcmp(o, "--temperature")) a->temperature = atof(v);
        else if (!strcmp(o, "--tokenizer")) a->tokenizer = v;
        else return -1;
    }
    return 0;
}

/* manifest.txt of the quantized model directory (docs/formats.md): written to manifest.txt.tmp,
 * flushed to disk and renamed, so the directory holds the old manifest or the complete new one.
 * Returns 0, or −1 with a message. */
static int write_manifest(const args *a, llm_model *m, double bpp)
{
    char path[4096], tmp[4112];
    snprintf(path, sizeof path, "%s/manifest.txt", a->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int failed = !f;
    if (f) {
        failed |= fprintf(f, "aqinit-quantized-llama 1\nbase %s\nformat %s\nmethod %s\nbeam %d\nbits_per_parameter %.4f\n"
                          "layers %d\n", a->model, a->format, a->method == AQ_INIT_OA_EM ? "oaem" : "greedy", a->beam,
                          bpp, llm_num_linears(m)) < 0;
        for (int k = 0; k < llm_num_linears(m); k++) {
            const char *name;
            llm_linear_info(m, k, &name, NULL, NULL);
            failed |= fprintf(f, "layer %d %s layer-%05d.aqq\n", k, name, k) < 0;
        }
        failed |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        failed |= fclose(f) != 0;
    }
    if (failed || rename(tmp, path) != 0) {
        fprintf(stderr, PROGRAM ": writing %s failed: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Bits per parameter of all linear layers together (codes, codebooks and scales). */
static double model_bpp(const aq_format *fmt, llm_model *m)
{
    double bits = 0.0, params = 0.0;
    for (int k = 0; k < llm_num_linears(m); k++) {
        int r, c;
        double bpp;
        llm_linear_info(m, k, NULL, &r, &c);
        aq_format_bits_per_parameter(&bpp, fmt, r, c);
        bits += bpp * r * c;
        params += (double)r * c;
    }
    return bits / params;
}

static int lut_linear(int index, const float *x, float *y, void *ud)
{
    return aq_quant_matvec(((host *)ud)->quants[index], x, y) == AQ_OK ? 0 : 1;
}

static int int16_linear(int index, const float *x, float *y, void *ud)
{
    return aq_quant_matvec_kernel(((host *)ud)->quants[index], x, y, AQ_MATVEC_INT16) == AQ_OK ? 0 : 1;
}

/* Greedy decoding of n tokens from BOS with @p fn (NULL: the model's fp32 weights): tokens/s,
 * best of three runs. */
static double decode_rate(host *h, int n, llm_linear_fn fn, float *logits)
{
    const int vocab = llm_get_config(h->model)->vocab_size;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        int token = 1;
        const double t0 = now_seconds();
        for (int pos = 0; pos < n; pos++) {
            if (llm_decode(h->model, token, pos, logits, fn, h) != 0)
                return 0.0;
            int next = 0;
            for (int i = 1; i < vocab; i++)
                next = logits[i] > logits[next] ? i : next;
            token = next;
        }
        const double rate = n / (now_seconds() - t0);
        best = rate > best ? rate : best;
    }
    return best;
}

/* Sample from softmax(logits / T) (T = 0: the argmax) with a small LCG seeded by --seed. */
static int sample(const float *logits, int n, double temperature, uint64_t *state)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = logits[i] > logits[best] ? i : best;
    if (temperature <= 0.0)
        return best;
    double sum = 0.0, r;
    for (int i = 0; i < n; i++)
        sum += exp((logits[i] - logits[best]) / temperature);
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    r = (double)(*state >> 11) * 0x1.0p-53 * sum;
    for (int i = 0; i < n; i++) {
        r -= exp((logits[i] - logits[best]) / temperature);
        if (r <= 0.0)
            return i;
    }
    return best;
}

/* Text from BOS with the quantized layers through aq_quant_matvec. */
static int generate(const args *a, host *h)
{
    char path[4096], err[512];
    tokenizer *tk = NULL;
    const llm_config *c = llm_get_config(h->model);
    uint64_t state = a->seed;
    int token = 1, n = a->generate < c->seq_len ? a->generate : c->seq_len;
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (a->tokenizer)
        snprintf(path, sizeof path, "%s", a->tokenizer);
    else { /* tokenizer.bin next to the model */
        const char *slash = strrchr(a->model, '/');
        snprintf(path, sizeof path, "%.*stokenizer.bin", slash ? (int)(slash - a->model + 1) : 0, a->model);
    }
    if (!logits || tokenizer_load(&tk, path, c->vocab_size, err, sizeof err) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", logits ? err : "out of memory");
        free(logits);
        return 1;
    }
    double t0 = now_seconds();
    fprintf(stderr, "--- %d tokens from the quantized model (LUT kernels, temperature %.2f):\n", n, a->temperature);
    for (int pos = 0; pos < n; pos++) {
        if (llm_decode(h->model, token, pos, logits, lut_linear, h) != 0) {
            fprintf(stderr, PROGRAM ": decoding failed\n");
            break;
        }
        int next = sample(logits, c->vocab_size, a->temperature, &state);
        fputs(tokenizer_piece(tk, token, next), stderr);
        token = next;
    }
    fprintf(stderr, "\n--- %.1f tokens/s\n", n / (now_seconds() - t0));
    /* decode speed alone (greedy, best of 3): fp32 weights, the exact LUT kernels, int16 tables */
    fprintf(stderr, "--- decode %d tokens: fp32 %.1f tokens/s, aq_quant_matvec %.1f tokens/s, AQ_MATVEC_INT16 %.1f tokens/s\n",
            n, decode_rate(h, n, NULL, logits), decode_rate(h, n, lut_linear, logits),
            decode_rate(h, n, int16_linear, logits));
    tokenizer_free(tk);
    free(logits);
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    host h;
    char err[512];
    uint16_t *calib = NULL, *test = NULL;
    size_t n_calib = 0, n_test = 0, n_pred = 0;
    aq_context *ctx = NULL;
    aq_options *opts = NULL;
    aq_pipeline *pipe = NULL;
    aq_format fmt;
    double nll_fp32 = 0, nll_q = 0;
    int st, rc;
    memset(&h, 0, sizeof h);
#ifdef AQEX_MPI
    aq_comm *comm = NULL;
    int mpi_rank = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    if (mpi_rank != 0) { /* one voice: rank 0 prints */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            return 1;
    }
#endif
    if (parse(&a, argc, argv) != 0) {
        usage();
        return 2;
    }
    if (llm_load(&h.model, a.model, err, sizeof err) != 0 || tok_load(&calib, &n_calib, a.calib, err, sizeof err) != 0
        || tok_load(&test, &n_test, a.test, err, sizeof err) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        return 1;
    }
    aq_format_init(&fmt);
    if (aq_format_parse(&fmt, a.format) != AQ_OK) {
        fprintf(stderr, PROGRAM ": bad format '%s'\n", a.format);
        return 2;
    }
    const double bpp = model_bpp(&fmt, h.model);
    double t0 = now_seconds();
    if (llm_perplexity(h.model, test, n_test, a.ppl_windows, &nll_fp32, &n_pred) != 0) {
        fprintf(stderr, PROGRAM ": the forward pass failed (out of memory for the activations?)\n");
        return 1;
    }
    fprintf(stderr, "fp32 perplexity %.3f (%zu tokens, %.1f s)\n", exp(nll_fp32), n_pred, now_seconds() - t0);

    if ((st = aq_context_create(&ctx)) != AQ_OK || (st = aq_context_set_threads(ctx, a.threads)) != AQ_OK
        || (st = aq_context_set_seed(ctx, a.seed)) != AQ_OK || (st = aq_options_create(&opts, ctx)) != AQ_OK
        || (st = aq_options_set_int(opts, AQ_OPT_INIT_METHOD, a.method)) != AQ_OK
        || (st = aq_options_set_int(opts, AQ_OPT_BEAM_WIDTH, a.beam)) != AQ_OK
        || (st = aq_options_set_int(opts, AQ_OPT_MAX_EPOCHS, a.epochs)) != AQ_OK
        || (a.em_damping >= 0 && (st = aq_options_set_double(opts, AQ_OPT_EM_DAMPING, a.em_damping)) != AQ_OK)
        || (st = aq_options_set_double(opts, AQ_OPT_HESSIAN_DAMPING, a.hessian_damping)) != AQ_OK
        || (st = aq_options_set_int(opts, AQ_OPT_PIPELINE_RESUME, a.resume)) != AQ_OK)
        goto fail;
#ifdef AQEX_MPI
    if ((st = aq_comm_mpi_create(&comm, MPI_COMM_WORLD)) != AQ_OK || (st = aq_context_set_comm(ctx, comm)) != AQ_OK)
        goto fail;
    fprintf(stderr, "%d MPI ranks\n", aq_context_comm_size(ctx));
#endif
    double em_damping;
    aq_options_get_double(&em_damping, opts, AQ_OPT_EM_DAMPING);
    h.calib = calib, h.n_calib = n_calib, h.calib_windows = a.calib_windows, h.ctx = ctx, h.shared_for = -1;
    if (!(h.quants = calloc((size_t)llm_num_linears(h.model), sizeof *h.quants))) {
        st = AQ_ERR_NOMEM;
        goto fail;
    }
    aq_pipeline_callbacks cb = {sizeof cb, cb_num_layers, cb_layer_info, cb_get_weight, cb_calibrate, cb_put_result, &h};
    if ((st = aq_pipeline_create(&pipe, ctx, &cb, &fmt, opts)) != AQ_OK)
        goto fail;
    if (a.out) {
        mkdir(a.out, 0777);
        if ((st = aq_pipeline_set_resume_dir(pipe, a.out)) != AQ_OK)
            goto fail;
    }
    fprintf(stderr, "quantizing %d layers to %s (%.3f bits per parameter), %s, beam %d\n", llm_num_linears(h.model),
            a.format, bpp, a.method == AQ_INIT_OA_EM ? "OA-EM" : "GREEDY", a.beam);
    t0 = now_seconds();
    if ((st = aq_pipeline_run(pipe)) != AQ_OK)
        goto fail;
    const double quant_seconds = now_seconds() - t0;
#ifdef AQEX_MPI
    if (a.out && mpi_rank == 0 && write_manifest(&a, h.model, bpp) != 0) {
#else
    if (a.out && write_manifest(&a, h.model, bpp) != 0) {
#endif
        st = AQ_ERR_IO;
        goto fail;
    }
    if (llm_perplexity(h.model, test, n_test, a.ppl_windows, &nll_q, &n_pred) != 0) {
        st = AQ_ERR_NOMEM;
        goto fail;
    }
    const double mean_err = h.error_count ? h.error_sum / h.error_count : NAN;
    double heldout_calib = -1.0, heldout_test = -1.0;
    if (a.heldout_windows > 0) {
        llm_model *fp32 = NULL;
        if (llm_load(&fp32, a.model, err, sizeof err) != 0) {
            fprintf(stderr, PROGRAM ": %s\n", err);
            st = AQ_ERR_IO;
            goto fail;
        }
        rc = heldout_error(&h, fp32, calib, n_calib, a.calib_windows, a.heldout_windows, "calibration text",
                           &heldout_calib)
             || (a.ppl_windows > 0 && heldout_error(&h, fp32, test, n_test, a.ppl_windows, a.heldout_windows,
                                                    "test text", &heldout_test));
        /* --check-heldout: the same measurement on the calibration windows themselves must give
         * the pipeline's own mean error (the layer objective it minimised) */
        double train = -1.0;
        if (!rc && a.check_heldout
            && !(rc = heldout_error(&h, fp32, calib, n_calib, 0, a.calib_windows, "training text", &train))
            && !(fabs(train - mean_err) <= 1e-4 * mean_err)) {
            fprintf(stderr, PROGRAM ": training error re-measured %.7g, pipeline %.7g\n", train, mean_err);
            rc = 1;
        }
        llm_free(fp32);
        if (rc) {
            st = AQ_ERR_CALLBACK;
            goto fail;
        }
    }
    if (a.json)
        printf("{\"version\": \"%s\", \"model\": \"%s\", \"format\": \"%s\", \"bpp\": %.4f, \"method\": \"%s\", "
               "\"beam\": %d, \"epochs\": %d, \"seed\": %llu, \"em_damping\": %g, \"hessian_damping\": %g, "
               "\"calib_windows\": %d, \"ppl_windows\": %d, "
               "\"ppl_fp32\": %.4f, \"ppl_quantized\": %.4f, \"mean_layer_rel_error\": %.6g, \"heldout_windows\": %d, "
               "\"heldout_calib_rel_error\": %.6g, \"heldout_test_rel_error\": %.6g, \"seconds\": %.1f}\n",
               aq_version_string(), a.model, a.format, bpp, a.method == AQ_INIT_OA_EM ? "oaem" : "greedy", a.beam,
               a.epochs, (unsigned long long)a.seed, em_damping, a.hessian_damping, a.calib_windows, a.ppl_windows, exp(nll_fp32), exp(nll_q),
               mean_err, a.heldout_windows, heldout_calib, heldout_test, quant_seconds);
    else
        printf("%s %s beam %d: %.3f bits/param, perplexity fp32 %.3f -> quantized %.3f, mean layer error %.5f, "
               "%.1f s\n", a.format, a.method == AQ_INIT_OA_EM ? "oaem" : "greedy", a.beam, bpp, exp(nll_fp32),
               exp(nll_q), mean_err, quant_seconds);
    if (a.generate > 0)
        generate(&a, &h);
    const int too_high = a.max_ppl_ratio > 0 && !(exp(nll_q) <= a.max_ppl_ratio * exp(nll_fp32));
    if (too_high)
        fprintf(stderr, PROGRAM ": quantized perplexity %.3f exceeds %.2f x fp32 %.3f\n", exp(nll_q),
                a.max_ppl_ratio, exp(nll_fp32));
    rc = too_high ? 1 : 0;
    goto cleanup;
fail:
    fprintf(stderr, PROGRAM ": %s (%s)\n", aq_strerror(st), ctx ? aq_context_last_error(ctx) : "");
    rc = 1;
cleanup:
    for (int k = 0; h.quants && k < llm_num_linears(h.model); k++)
        aq_quant_free(h.quants[k]);
    free(h.quants);
    aq_pipeline_free(pipe);
    aq_options_free(opts);
    aq_hessian_free(h.shared);
    aq_context_free(ctx);
    llm_free(h.model);
    free(calib);
    free(test);
#ifdef AQEX_MPI
    aq_comm_mpi_free(comm);
    MPI_Finalize();
#endif
    return rc;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* llama-ppl: perplexity of a llama2.c checkpoint on a token file, with the protocol of
 * ../shared/bench/README.md. Validates the examples' Llama forward.
 *
 *   llama-ppl MODEL TOKENS [--windows N] [--expect PPL --tol T] [--check-decode]
 *
 * With --expect, exits 1 unless |perplexity − PPL| ≤ T. With --check-decode, also runs the first
 * 64 tokens through single-token decoding (llm_decode, KV cache) and exits 1 unless its logits
 * equal the window forward's within 1e-3 (relative to the largest logit). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama_model.h"
#include "tokens.h"

typedef struct args {
    const char *model, *tokens;
    int windows, check, check_decode;
    double expect, tol;
} args;

static int usage(void)
{
    fprintf(stderr, "usage: llama-ppl MODEL TOKENS [--windows N] [--expect PPL --tol T] [--check-decode]\n");
    return 2;
}

/* Returns 0, or 2 after a message for a bad command line. */
static int parse_args(args *a, int argc, char **argv)
{
    *a = (args){.model = argc > 1 ? argv[1] : NULL, .tokens = argc > 2 ? argv[2] : NULL};
    if (argc < 3)
        return usage();
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--check-decode")) {
            a->check_decode = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--windows"))
            a->windows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--expect"))
            a->expect = atof(argv[++i]), a->check = 1;
        else if (!strcmp(argv[i], "--tol"))
            a->tol = atof(argv[++i]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return usage();
        }
    }
    return 0;
}

/* Every token must be a row of the embedding. */
static int check_tokens(const uint16_t *tok, size_t n, int vocab, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (tok[i] >= vocab) {
            fprintf(stderr, "llama-ppl: %s: token %zu is %u, but the vocabulary has %d entries\n", path, i,
                    (unsigned)tok[i], vocab);
            return -1;
        }
    return 0;
}

/* Single-token decoding (KV cache) over the first min(seq_len, 64) tokens must give the window
 * forward's logits within 1e-3 of the largest logit. Returns 0 or 1. */
static int check_decode(llm_model *m, const uint16_t *tok, size_t n_tok)
{
    const llm_config *c = llm_get_config(m);
    const size_t first = c->seq_len < 64 ? (size_t)c->seq_len : 64;
    const int n = (int)(first < n_tok ? first : n_tok);
    const size_t V = (size_t)c->vocab_size;
    float *ref = malloc(sizeof(float) * (size_t)n * V), *one = malloc(sizeof(float) * V);
    double worst = 0.0, scale = 0.0;
    int bad = !ref || !one || llm_forward(m, tok, n, ref, NULL, NULL) != 0;
    for (int t = 0; t < n && !bad; t++) {
        bad = llm_decode(m, tok[t], t, one, NULL, NULL) != 0;
        for (size_t v = 0; v < V && !bad; v++) {
            worst = fmax(worst, fabs(one[v] - ref[(size_t)t * V + v]));
            scale = fmax(scale, fabs(ref[(size_t)t * V + v]));
        }
    }
    free(ref);
    free(one);
    if (bad) {
        fprintf(stderr, "llama-ppl: decoding check failed to run\n");
        return 1;
    }
    printf("decode vs forward: max |Δlogit| %.3g (largest logit %.3g)\n", worst, scale);
    if (!(worst <= 1e-3 * scale)) {
        fprintf(stderr, "llama-ppl: single-token decoding disagrees with the window forward\n");
        return 1;
    }
    return 0;
}

/* Runs the protocol, prints the figures; returns 0, or 1 if the run fails or misses --expect. */
static int run(llm_model *m, const uint16_t *tok, size_t n_tok, const args *a)
{
    double nll;
    size_t n_pred = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = llm_perplexity(m, tok, n_tok, a->windows, &nll, &n_pred);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != 0) {
        fprintf(stderr, "llama-ppl: forward failed (%d)\n", st);
        return 1;
    }
    if (n_pred == 0) {
        fprintf(stderr, "llama-ppl: %s holds fewer than seq_len = %d tokens\n", a->tokens, llm_get_config(m)->seq_len);
        return 1;
    }
    const double ppl = exp(nll), secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("windows %zu  predicted %zu  mean NLL %.5f  perplexity %.3f  (%.2f s)\n",
           n_pred / (size_t)(llm_get_config(m)->seq_len - 1), n_pred, nll, ppl, secs);
    if (a->check_decode && check_decode(m, tok, n_tok) != 0)
        return 1;
    if (a->check && !(fabs(ppl - a->expect) <= a->tol)) {
        fprintf(stderr, "llama-ppl: perplexity %.3f differs from the expected %.3f by more than %g\n", ppl,
                a->expect, a->tol);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    uint16_t *tok = NULL;
    size_t n_tok = 0;
    llm_model *m = NULL;
    char err[512];
    int rc = parse_args(&a, argc, argv);
    if (rc != 0)
        return rc;
    if (llm_load(&m, a.model, err, sizeof err) != 0 || tok_load(&tok, &n_tok, a.tokens, err, sizeof err) != 0) {
        fprintf(stderr, "llama-ppl: %s\n", err);
        rc = 1;
    } else
        rc = check_tokens(tok, n_tok, llm_get_config(m)->vocab_size, a.tokens) != 0 ? 1 : run(m, tok, n_tok, &a);
    free(tok);
    llm_free(m);
    return rc;
}

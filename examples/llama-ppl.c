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

int main(int argc, char **argv)
{
    int windows = 0, check = 0, check_decode = 0;
    double expect = 0.0, tol = 0.0, nll;
    size_t n_tok = 0, n_pred = 0;
    uint16_t *tok = NULL;
    llm_model *m = NULL;
    char err[512];
    struct timespec t0, t1;
    if (argc < 3) {
        fprintf(stderr, "usage: llama-ppl MODEL TOKENS [--windows N] [--expect PPL --tol T]\n");
        return 2;
    }
    for (int a = 3; a < argc; a += 2) {
        if (!strcmp(argv[a], "--check-decode")) {
            check_decode = 1;
            a--;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "%s needs a value\n", argv[a]);
            return 2;
        }
        if (!strcmp(argv[a], "--windows"))
            windows = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--expect"))
            expect = atof(argv[a + 1]), check = 1;
        else if (!strcmp(argv[a], "--tol"))
            tol = atof(argv[a + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[a]);
            return 2;
        }
    }
    if (llm_load(&m, argv[1], err, sizeof err) != 0 || tok_load(&tok, &n_tok, argv[2], err, sizeof err) != 0) {
        fprintf(stderr, "llama-ppl: %s\n", err);
        llm_free(m);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = llm_perplexity(m, tok, n_tok, windows, &nll, &n_pred);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != 0) {
        fprintf(stderr, "llama-ppl: forward failed (%d)\n", st);
        return 1;
    }
    const double ppl = exp(nll), secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("windows %zu  predicted %zu  mean NLL %.5f  perplexity %.3f  (%.2f s)\n",
           n_pred / (size_t)(llm_get_config(m)->seq_len - 1), n_pred, nll, ppl, secs);
 if (check_decode) {
        const llm_config *c = llm_get_config(m);
        const int n = c->seq_len < 64 ? c->seq_len : 64;
        float *ref = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab_size);
        float *one = malloc(sizeof(float) * (size_t)c->vocab_size);
        double worst = 0.0, scale = 0.0;
        if (!ref || !one || llm_forward(m, tok, n, ref, NULL, NULL) != 0)
            return 1;
        for (int t = 0; t < n; t++) {
            if (llm_decode(m, tok[t], t, one, NULL, NULL) != 0)
                return 1;
            for (int v = 0; v < c->vocab_size; v++) {
                worst = fmax(worst, fabs(one[v] - ref[(size_t)t * c->vocab_size + v]));
                scale = fmax(scale, fabs(ref[(size_t)t * c->vocab_size + v]));
            }
        }
        printf("decode vs forward: max |Δlogit| %.3g (largest logit %.3g)\n", worst, scale);
        free(ref);
        free(one);
        if (!(worst <= 1e-3 * scale)) {
            fprintf(stderr, "llama-ppl: single-token decoding disagrees with the window forward\n");
            return 1;
        }
    }
    free(tok);
    llm_free(m);
    if (check && !(fabs(ppl - expect) <= tol)) {
        fprintf(stderr, "llama-ppl: perplexity %.3f differs from the expected %.3f by more than %g\n", ppl, expect, tol);
        return 1;
    }
    return 0;
}

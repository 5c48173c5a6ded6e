/* llama-ppl: perplexity of a llama2.c checkpoint on a token file, with the protocol of
 * ../shared/bench/README.md. Validates the examples' Llama forward.
 *
 *   llama-ppl MODEL TOKENS [--windows N] [--expect PPL --tol T]
 *
 * With --expect, exits 1 unless |perplexity − PPL| ≤ T. */
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
    int windows = 0, check = 0;
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
    for (int a = 3; a + 1 < argc; a += 2) {
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
    free(tok);
    llm_free(m);
    if (check && !(fabs(ppl - expect) <= tol)) {
        fprintf(stderr, "llama-ppl: perplexity %.3f differs from the expected %.3f by more than %g\n", ppl, expect, tol);
        return 1;
    }
    return 0;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: llm_load (examples/common/llama_model.c, a llama2.c "version 0" checkpoint)
 * on arbitrary bytes.
 *
 * The loader is compiled into this file with its malloc family counted (FUZZ_COUNT_MALLOC), so
 * the rule of fuzz_support.h holds for it too: at most 16 × size + 64 KiB while it runs.
 * Checks: no crash, leak or UB; a failure creates nothing; a model that loads maps every array
 * inside the floats it read, and those arrays end exactly where the file does. */
#define FUZZ_COUNT_MALLOC
#include "fuzz_support.h"

#include "llama_model.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

/* Read n floats (ASan reports any of them outside the model's data). */
static void touch(const float *p, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    sink = s;
}

static void check_model(const llm_model *m, size_t size)
{
    const llm_config *c = llm_get_config(m);
    const size_t d = (size_t)c->dim, V = (size_t)c->vocab_size, half = (size_t)c->seq_len * m->head_size / 2;
    const float *end = m->data + (size - 28) / sizeof(float);
    touch(m->embedding, V * d);
    for (int i = 0; i < llm_num_linears(m); i++) {
        int rows, cols;
        const char *name;
        llm_linear_info(m, i, &name, &rows, &cols);
        if (!name || llm_find_linear(m, name) != i || rows <= 0 || cols <= 0)
            abort();
        touch(m->blocks[i / LLM_LINEARS_PER_BLOCK].linear[i % LLM_LINEARS_PER_BLOCK], (size_t)rows * cols);
    }
    for (int l = 0; l < c->n_layers; l++) {
        touch(m->blocks[l].rms_att, d);
        touch(m->blocks[l].rms_ffn, d);
    }
    touch(m->rms_final, d);
    touch(m->freq_re, half);
    touch(m->freq_im, half);
    touch(m->classifier, V * d);
    if ((c->shared_classifier ? m->freq_im + half : m->classifier + V * d) != end) {
        fprintf(stderr, "fuzz_llama_model: the arrays do not end where the file does\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[256];
    const int fd = fuzz_file_open(data, size, path, sizeof path);
    llm_model *m = (llm_model *)&sink; /* must be set to NULL on failure */

    fuzz_alloc_begin(size, 1);
    const int st = llm_load(&m, path, err, sizeof err);
    fuzz_alloc_end();

    if (st == 0)
        check_model(m, size);
    else if (st != -1 || m != NULL)
        abort();
    llm_free(m);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_llama_model: %zu bytes still allocated\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

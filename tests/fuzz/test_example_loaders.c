/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Regression test of issue 13, item 6: the examples' loaders (examples/common/) on crafted
 * inputs built in memory. Each loader must return an error (or load) without holding more than
 * 16 × (file size) + 64 KiB (the rule of fuzz_support.h), and with no undefined behaviour (run
 * under -Db_sanitize=address,undefined too). The loaders are compiled into this file with their
 * malloc family counted; an allocation beyond the limit fails and is recorded.
 *
 * Prints one line per check and "N passed, N failed"; exits 1 if any failed. */
#define FUZZ_COUNT_MALLOC
#include "fuzz_support.h"

#include "llama_model.c"
#include "tokenizer.c"
#include "tokens.c"

static int n_passed, n_failed;

#define CHECK(cond) check((cond), #cond, __LINE__)
static void check(int ok, const char *what, int line)
{
    if (ok)
        n_passed++;
    else {
        n_failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}

static uint32_t rng_state = 1;
static float rnd(void) /* in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 23) - 1.0f;
}

/* ---------------------------------------------------------------- llama2.c checkpoints */

/* A checkpoint with header @p h, 28 + 4 × (floats the header describes) bytes: small random
 * weights and cos/sin rotary tables. With @p n_bytes >= 0 instead: the header and n_bytes - 28
 * bytes of random floats (for headers the loader must reject, whose sizes mean nothing). */
static unsigned char *model_file(const int32_t h[7], int64_t n_bytes, size_t *size)
{
    int64_t n_floats = (n_bytes - 28) / 4, before_freq = n_floats, seq_hs = 0;
    if (n_bytes < 0) {
        const int64_t d = h[0], hd = h[1], L = h[2], kv = h[0] / h[3] * h[4], V = h[5] < 0 ? -(int64_t)h[5] : h[5];
        seq_hs = (int64_t)h[6] * (h[0] / h[3]);
        before_freq = V * d + 2 * L * d + L * (2 * d * d + 2 * kv * d + 3 * d * hd) + d;
        n_floats = before_freq + seq_hs + (h[5] < 0 ? V * d : 0);
        n_bytes = 28 + 4 * n_floats;
    }
    unsigned char *b = calloc(1, (size_t)n_bytes);
    if (!b)
        abort();
    memcpy(b, h, n_bytes < 28 ? (size_t)n_bytes : 28);
    for (int64_t i = 0; i < n_floats; i++) {
        float v = 0.2f * rnd();
        const int64_t fi = i - before_freq, half = seq_hs / 2;
        if (fi >= 0 && fi < seq_hs) { /* freq_re[pos][k], then freq_im */
            const int64_t hs = h[0] / h[3], j = fi % half, pos = j / (hs / 2), k = j % (hs / 2);
            const double angle = (double)pos * pow(10000.0, -2.0 * (double)k / (double)hs);
            v = (float)(fi < half ? cos(angle) : sin(angle));
        }
        memcpy(b + 28 + 4 * i, &v, 4);
    }
    *size = (size_t)n_bytes;
    return b;
}

/* llm_load on the bytes, with the allocation rule enforced; *within_limit tells if it held. */
static int load_model(const unsigned char *b, size_t size, llm_model **m, int *within_limit)
{
    char path[64], err[256];
    const int fd = fuzz_file_open(b, size, path, sizeof path);
    fuzz_alloc_begin(size, 0);
    const int st = llm_load(m, path, err, sizeof err);
    fuzz_alloc_end();
    *within_limit = !fuzz_alloc.exceeded;
    printf("llm_load, %zu bytes: %s (peak %zu bytes, limit %zu)\n", size, st == 0 ? "loaded" : err,
           fuzz_alloc.peak, FUZZ_ALLOC_FACTOR * size + FUZZ_ALLOC_SLACK);
    close(fd);
    return st;
}

/* The header must fail (or load) within the limit, and leave nothing allocated when freed. */
static void expect_model(const int32_t h[7], int64_t n_bytes, int expect_status)
{
    size_t size;
    unsigned char *b = model_file(h, n_bytes, &size);
    llm_model *m = (llm_model *)b;
    int within_limit;
    const int st = load_model(b, size, &m, &within_limit);
    CHECK(st == expect_status);
    CHECK(within_limit);
    CHECK((st == 0) == (m != NULL));
    llm_free(m);
    CHECK(fuzz_alloc.live == size); /* only b itself */
    free(b);
}

static void test_llama_model_crafted(void)
{
    /* vocab_size INT32_MIN (a 28-byte file): -INT32_MIN was undefined behaviour. */
    const int32_t int_min_vocab[7] = {8, 12, 1, 2, 2, INT32_MIN, 4};
    expect_model(int_min_vocab, 28, -1);
    /* Every size at its maximum and 4 bytes of data: must fail before allocating. */
    const int32_t huge[7] = {65536, 262144, 1024, 2, 2, 1000000, 65536};
    expect_model(huge, 32, -1);
    const int32_t huge_unshared[7] = {65536, 262144, 1024, 2, 2, -1000000, 65536};
    expect_model(huge_unshared, 28, -1);
    /* Out of range or inconsistent fields. */
    const int32_t bad[][7] = {
        {0, 12, 1, 2, 2, 10, 4},  {8, 12, 1, 2, 4, 10, 4},      {8, 12, 1, 2, 2, 10, 1},
        {6, 12, 1, 2, 2, 10, 4},  {8, 12, 1, 3, 3, 10, 4},      {8, -1, 1, 2, 2, 10, 4},
        {8, 12, 0, 2, 2, 10, 4},  {8, 12, 1, 2, 2, 0, 4},       {8, 12, 1, 2, 2, 1000001, 4},
        {8, 12, 1, 2, 2, 10, 65537}, {INT32_MIN, 12, 1, 2, 2, 10, 4}, {8, 12, 1, INT32_MIN, 1, 10, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_model(bad[i], 28 + 4096, -1);
    /* A valid header with a file one float short, one float long, or only the header. */
    const int32_t ok[7] = {8, 12, 2, 4, 2, 10, 6};
    size_t full;
    free(model_file(ok, -1, &full));
    expect_model(ok, (int64_t)full - 4, -1);
    expect_model(ok, (int64_t)full + 4, -1);
    expect_model(ok, 28, -1);
    /* Valid lengths whose activations are far larger than the file: 6.8 MB with seq_len 65536 ×
     * hidden_dim 262144 (2 × 64 GiB), and 33 KB with seq_len² = 4096² floats (64 MiB). They are
     * valid checkpoints; loading must not allocate the activations (the first forward does). */
    const int32_t bomb[7] = {2, 262144, 1, 1, 1, 1, 65536};
    expect_model(bomb, -1, 0);
    const int32_t attention_bomb[7] = {2, 1, 1, 1, 1, 1, 4096};
    expect_model(attention_bomb, -1, 0);
}

/* A valid model loads within the limit, and the lazily allocated activations work in either
 * order: the window forward's logits equal single-token decoding's. */
static void test_llama_model_valid(int32_t vocab_sign)
{
    const int32_t h[7] = {8, 12, 2, 4, 2, 10 * vocab_sign, 6};
    const uint16_t tok[3] = {1, 7, 3};
    float window[3 * 10], worst = 0.0f;
    size_t size;
    unsigned char *b = model_file(h, -1, &size);
    llm_model *m = NULL;
    int within_limit;
    CHECK(load_model(b, size, &m, &within_limit) == 0);
    CHECK(within_limit);
    if (!m) {
        free(b);
        return;
    }
    CHECK(llm_get_config(m)->shared_classifier == (vocab_sign > 0) && llm_get_config(m)->vocab_size == 10);
    CHECK(llm_num_linears(m) == 14 && llm_find_linear(m, "layers.1.w2") == 13);
    for (int pass = 0; pass < 2; pass++) { /* pass 0: decode allocates first; pass 1: forward does */
        float decoded[3 * 10];
        if (pass == 1) {
            llm_free(m);
            CHECK(load_model(b, size, &m, &within_limit) == 0 && within_limit);
            CHECK(llm_forward(m, tok, 3, window, NULL, NULL) == 0);
        }
        for (int t = 0; t < 3; t++)
            CHECK(llm_decode(m, tok[t], t, decoded + t * 10, NULL, NULL) == 0);
        if (pass == 0)
            CHECK(llm_forward(m, tok, 3, window, NULL, NULL) == 0);
        for (int i = 0; i < 3 * 10; i++)
            worst = fmaxf(worst, fabsf(decoded[i] - window[i]));
    }
    CHECK(worst < 1e-4f);
    CHECK(llm_forward(m, tok, 7, window, NULL, NULL) == -1); /* n > seq_len */
    llm_free(m);
    CHECK(fuzz_alloc.live == size);
    free(b);
}

/* ---------------------------------------------------------------- tokenizer.bin */

static int load_tokenizer(const unsigned char *b, size_t size, int vocab_size, tokenizer **t, int *within_limit)
{
    char path[64], err[256];
    const int fd = fuzz_file_open(b, size, path, sizeof path);
    fuzz_alloc_begin(size, 0);
    const int st = tokenizer_load(t, path, vocab_size, err, sizeof err);
    fuzz_alloc_end();
    *within_limit = !fuzz_alloc.exceeded;
    printf("tokenizer_load, %zu bytes, vocab_size %d: %s (peak %zu bytes)\n", size, vocab_size,
           st == 0 ? "loaded" : err, fuzz_alloc.peak);
    close(fd);
    return st;
}

static void expect_tokenizer_rejected(const unsigned char *b, size_t size, int vocab_size)
{
    tokenizer *t = (tokenizer *)b; /* must be set to NULL */
    int within_limit;
    CHECK(load_tokenizer(b, size, vocab_size, &t, &within_limit) == -1);
    CHECK(within_limit && t == NULL);
    if (t != (tokenizer *)b)
        tokenizer_free(t);
}

static void test_tokenizer(void)
{
    static const char *const pieces[4] = {"<unk>", "<s>", " hi", "<0x41>"};
    unsigned char b[256];
    size_t n = 0;
    const int32_t max_len = 6;
    tokenizer *t = NULL;
    int within_limit;
    memcpy(b, &max_len, 4);
    n = 4;
    for (int i = 0; i < 4; i++) {
        const float score = (float)-i;
        const int32_t len = (int32_t)strlen(pieces[i]);
        memcpy(b + n, &score, 4);
        memcpy(b + n + 4, &len, 4);
        memcpy(b + n + 8, pieces[i], (size_t)len);
        n += 8 + (size_t)len;
    }
    CHECK(load_tokenizer(b, n, 4, &t, &within_limit) == 0 && within_limit);
    if (t) {
        CHECK(strcmp(tokenizer_piece(t, 1, 2), "hi") == 0 && strcmp(tokenizer_piece(t, 0, 2), " hi") == 0);
        CHECK(strcmp(tokenizer_piece(t, 0, 3), "A") == 0 && strcmp(tokenizer_piece(t, 0, 4), "") == 0);
        tokenizer_free(t);
    }
    /* vocab_size 1000000 with this 4-token file, or with only max_len: the table of pieces
     * (8 MB) was allocated before the file was read. */
    expect_tokenizer_rejected(b, n, 1000000);
    expect_tokenizer_rejected(b, 4, 1000000);
    expect_tokenizer_rejected(b, n, 5); /* truncated */
    expect_tokenizer_rejected(b, n, 0);
    expect_tokenizer_rejected(b, n, -1);
    expect_tokenizer_rejected(b, n, INT32_MIN);
    const int32_t bad_len = -1; /* a negative piece length */
    memcpy(b + 8, &bad_len, 4);
    expect_tokenizer_rejected(b, n, 4);
    CHECK(fuzz_alloc.live == 0);
}

/* ---------------------------------------------------------------- token streams */

static void test_tokens(void)
{
    const unsigned char b[6] = {1, 0, 0xFF, 0xFF, 0x34, 0x12};
    char path[64], err[256];
    for (size_t size = 0; size <= sizeof b; size++) {
        uint16_t *tok = (uint16_t *)path;
        size_t n = 1;
        const int fd = fuzz_file_open(b, size, path, sizeof path);
        fuzz_alloc_begin(size, 0);
        const int st = tok_load(&tok, &n, path, err, sizeof err);
        fuzz_alloc_end();
        CHECK(!fuzz_alloc.exceeded);
        if (size == 0 || size % 2) {
            CHECK(st == -1 && tok == NULL && n == 0);
        } else {
            CHECK(st == 0 && n == size / 2);
            CHECK(n < 3 || (tok[0] == 1 && tok[1] == 0xFFFF && tok[2] == 0x1234));
        }
        free(tok);
        close(fd);
    }
    CHECK(fuzz_alloc.live == 0);
}

int main(void)
{
    test_llama_model_crafted();
    test_llama_model_valid(1);
    test_llama_model_valid(-1);
    test_tokenizer();
    test_tokens();
    printf("test_example_loaders: %d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Writes the fuzzers' inputs, so that no binary file is committed:
 *
 *   gen_corpus OUT [TINY_DIR]
 *
 * OUT/seeds/<target>/ small valid files of each format (the starting corpus), plus, if TINY_DIR
 *                     is given, its tokenizer.bin and the first 4 KB of its calib.tok.bin;
 * OUT/once/<target>/  inputs each harness runs once, unmutated: crafted inputs of the known
 *                     findings (issue 13), which must be handled without a crash or an allocation
 *                     beyond the harness's limit, and TINY_DIR's model.bin (932 KB: too large to
 *                     mutate quickly), which must load.
 *
 * Targets: hessian, quant, llama_model, tokenizer (input = int32 vocab_size + file), tokens,
 * provenance. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <aqinit.h>

#include "pipeline/provenance.h"

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s\n", what);
    exit(1);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
}

/* OUT/<kind>/<target>/<name>, creating the folders. */
static const char *out_path(const char *kind, const char *target, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, kind);
    make_dir(path);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, kind, target);
    make_dir(path);
    snprintf(path, sizeof path, "%s/%s/%s/%s", out_dir, kind, target, name);
    return path;
}

static uint32_t rng_state = 12345;
static float rnd(void) /* in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 23) - 1.0f;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        die(path);
}

/* ---------------------------------------------------------------- library formats */

static void hessian_seed(aq_context *ctx, const char *name, int64_t n_inputs, int64_t n_rows)
{
    aq_hessian *h;
    float *X = malloc(sizeof(float) * (size_t)(n_rows * n_inputs + 1));
    if (!X || aq_hessian_create(&h, ctx, n_inputs) != AQ_OK)
        die("aq_hessian_create");
    for (int64_t i = 0; i < n_rows * n_inputs; i++)
        X[i] = rnd();
    if ((n_rows > 0 && aq_hessian_add(h, X, n_rows, n_inputs) != AQ_OK)
        || aq_hessian_save(h, out_path("seeds", "hessian", name)) != AQ_OK)
        die("aq_hessian_save");
    aq_hessian_free(h);
    free(X);
}

static void quant_seed(aq_context *ctx, const char *name, const char *format, int scale_mode, int64_t rows,
                       int64_t cols)
{
    aq_format fmt;
    aq_quant *q;
    size_t n;
    if (aq_format_parse(&fmt, format) != AQ_OK)
        die(format);
    fmt.scale_mode = scale_mode;
    if (aq_quant_create(&q, ctx, &fmt, rows, cols) != AQ_OK)
        die("aq_quant_create");
    unsigned char *codes = aq_quant_codes(q, &n);
    const size_t below = fmt.bits_per_codebook < 8 ? (size_t)1 << fmt.bits_per_codebook : 256;
    for (size_t i = 0; i < n; i++) /* u16 codes: low byte any, high byte 0, so < 256 < K */
        codes[i] = fmt.bits_per_codebook > 8 && i % 2 ? 0 : (unsigned char)(i * 7 % below);
    float *cb = aq_quant_codebooks(q, &n);
    for (size_t i = 0; i < n; i++)
        cb[i] = rnd();
    float *sc = aq_quant_scales(q, &n);
    for (size_t i = 0; i < n; i++)
        sc[i] = 1.0f + 0.5f * rnd();
    if (aq_quant_save(q, out_path("seeds", "quant", name)) != AQ_OK)
        die("aq_quant_save");
    aq_quant_free(q);
}

/* Finding 1 of issue 13: a 60-byte file (header + CRC, valid checksum) whose header describes a
 * 32768 x 32768 1x8g1o1 matrix: 1 GiB of codes that the file does not hold. */
static void quant_regressions(void)
{
    unsigned char b[60] = {'A', 'Q', 'Q', 'U', 'A', 'N', 'T', 0};
    put_le32(b + 8, 1);
    put_le64(b + 16, 32768);
    put_le64(b + 24, 32768);
    put_le32(b + 32, 1);  /* M */
    put_le32(b + 36, 8);  /* B */
    put_le32(b + 40, 1);  /* g */
    put_le32(b + 44, 1);  /* g_o */
    put_le32(b + 48, 1);  /* per-output-group scales */
    put_le32(b + 56, crc32_ieee(b, 56));
    write_bytes(out_path("once", "quant", "huge-header-60B"), b, sizeof b);
}

/* The Hessian loader checks the length first; keep it that way: n_inputs 2^31 - 1, 36 bytes. */
static void hessian_regressions(void)
{
    unsigned char b[36] = {'A', 'Q', 'H', 'E', 'S', 'S', 0, 1};
    put_le32(b + 8, 1);
    put_le64(b + 16, 0x7FFFFFFFu);
    put_le64(b + 24, 1);
    put_le32(b + 32, crc32_ieee(b, 32));
    write_bytes(out_path("once", "hessian", "huge-n-36B"), b, sizeof b);
}

/* ---------------------------------------------------------------- llama2.c checkpoints */

/* Header, then the floats in file order: random weights, zeros if @p zeros, and the rotary
 * tables as cos/sin. Writes n_floats floats, or fewer (truncated) if @p truncate_to > 0. */
static void llama_file(const char *kind, const char *name, int dim, int hidden, int layers, int heads, int kv_heads,
                       int vocab, int seq, int zeros, long truncate_to)
{
    const int32_t h[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
    const int64_t d = dim, L = layers, V = vocab < 0 ? -(int64_t)vocab : vocab, hs = dim / heads;
    const int64_t kv = d / heads * kv_heads;
    const int64_t before_freq = V * d + 2 * L * d + L * (2 * d * d + 2 * kv * d + 3 * d * hidden) + d;
    const int64_t n_floats = before_freq + seq * hs + (vocab < 0 ? V * d : 0);
    FILE *f = fopen(out_path(kind, "llama_model", name), "wb");
    if (!f || fwrite(h, sizeof h, 1, f) != 1)
        die(name);
    for (int64_t i = 0; i < n_floats && (truncate_to <= 0 || 28 + 4 * i < truncate_to); i++) {
        float v = zeros ? 0.0f : 0.2f * rnd();
        const int64_t fi = i - before_freq; /* index into freq_re then freq_im */
        if (fi >= 0 && fi < seq * hs) {
            const int64_t half = seq * hs / 2, j = fi % half, pos = j / (hs / 2), k = j % (hs / 2);
            const double angle = (double)pos * pow(10000.0, -2.0 * (double)k / (double)hs);
            v = (float)(fi < half ? cos(angle) : sin(angle));
        }
        if (fwrite(&v, sizeof v, 1, f) != 1)
            die(name);
    }
    if (fclose(f) != 0)
        die(name);
}

static void llama_seeds(void)
{
    llama_file("seeds", "gqa-shared", 8, 12, 2, 4, 2, 10, 6, 0, 0);
    llama_file("seeds", "unshared", 4, 6, 1, 2, 2, -5, 3, 0, 0);
    llama_file("seeds", "minimal", 2, 1, 1, 1, 1, 1, 2, 0, 0);
}

/* Item 6 of issue 13 and relatives: each must fail (or load) within the allocation limit. */
static void llama_regressions(void)
{
    /* vocab_size INT32_MIN: its negation was undefined behaviour (28-byte file). */
    const int32_t h[7] = {8, 12, 1, 2, 2, INT32_MIN, 4};
    write_bytes(out_path("once", "llama_model", "vocab-int32-min-28B"), h, sizeof h);
    /* Every size at its maximum, 4 bytes of data. */
    llama_file("once", "huge-header-32B", 65536, 262144, 1024, 2, 2, 1000000, 65536, 1, 32);
    /* Valid length, 6.8 MB: seq_len 65536 × hidden_dim 262144 asked 2 × 64 GiB of activations. */
    llama_file("once", "activations-6.8MB", 2, 262144, 1, 1, 1, 1, 65536, 1, 0);
    /* The same with seq_len²: 33 KB that asked 64 MiB for the attention scores. */
    llama_file("once", "activations-33KB", 2, 1, 1, 1, 1, 1, 4096, 1, 0);
}

/* ---------------------------------------------------------------- tokenizer and tokens */

/* Tokenizer input of the harness: int32 vocab_size, then a tokenizer.bin. */
static void tokenizer_seed(const char *kind, const char *name, int32_t vocab_size, int n_pieces,
                           const char *const *pieces)
{
    FILE *f = fopen(out_path(kind, "tokenizer", name), "wb");
    int32_t max_len = 1;
    for (int i = 0; i < n_pieces; i++)
        max_len = (int32_t)strlen(pieces[i]) > max_len ? (int32_t)strlen(pieces[i]) : max_len;
    if (!f || fwrite(&vocab_size, 4, 1, f) != 1 || fwrite(&max_len, 4, 1, f) != 1)
        die(name);
    for (int i = 0; i < n_pieces; i++) {
        const float score = -(float)i;
        const int32_t len = (int32_t)strlen(pieces[i]);
        if (fwrite(&score, 4, 1, f) != 1 || fwrite(&len, 4, 1, f) != 1 || fwrite(pieces[i], 1, (size_t)len, f) != (size_t)len)
            die(name);
    }
    if (fclose(f) != 0)
        die(name);
}

static void tokenizer_files(void)
{
    static const char *const pieces[] = {"<unk>", "<s>", "</s>", "<0x0A>", "<0x41>", " the", "e", "", " hello", "wor"};
    tokenizer_seed("seeds", "ten", 10, 10, pieces);
    tokenizer_seed("seeds", "first-four", 4, 10, pieces);
    /* vocab_size 1000000 with a 4-byte file: the table of pieces (8 MB) was allocated first. */
    tokenizer_seed("once", "vocab-1e6-4B", 1000000, 0, pieces);
    tokenizer_seed("once", "vocab-negative", -1, 3, pieces);
}

static void tokens_files(void)
{
    const uint16_t tok[8] = {1, 2, 3, 500, 65535, 0, 42, 1};
    const unsigned char odd[3] = {1, 0, 2};
    write_bytes(out_path("seeds", "tokens", "eight"), tok, sizeof tok);
    write_bytes(out_path("once", "tokens", "odd-3B"), odd, sizeof odd);
}

/* Provenance records: a full one, one with default options, and one whose reports are NaN. */
static void provenance_files(void)
{
    aqi_provenance pv;
    char text[8192];
    memset(&pv, 0, sizeof pv);
    pv.layer = 6, pv.rows = 288, pv.cols = 768;
    pv.num_codebooks = 2, pv.bits_per_codebook = 8, pv.in_group_size = 8, pv.out_group_size = 1, pv.scale_mode = 1;
    pv.seed = 1;
    strcpy(pv.options, "AQ_OPT_INIT_METHOD=1,AQ_OPT_EM_DAMPING=1,AQ_OPT_MAX_EPOCHS=3");
    pv.weight_hash = 0xd972ac2c327d10aaULL, pv.hessian_samples = 16384, pv.hessian_hash = 0x989523dcf9dfe3e6ULL;
    pv.init_error = 0.0020616967904993851, pv.final_error = 0.00069183235341008405;
    pv.init_seconds = 0.0049, pv.optimize_seconds = 0.268;
    write_bytes(out_path("seeds", "provenance", "full"), text, aqi_provenance_format(&pv, text, sizeof text));
    pv.options[0] = '\0';
    pv.seed = UINT64_MAX;
    write_bytes(out_path("seeds", "provenance", "defaults"), text, aqi_provenance_format(&pv, text, sizeof text));
    pv.init_error = pv.final_error = NAN;
    write_bytes(out_path("seeds", "provenance", "nan-report"), text, aqi_provenance_format(&pv, text, sizeof text));
    write_bytes(out_path("once", "provenance", "empty"), "", 0);
}

/* ---------------------------------------------------------------- files of TINY_DIR */

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0
        && (buf = malloc((size_t)size + 4 + 1)) && fread(buf + 4, 1, (size_t)size, f) == (size_t)size)
        *n = (size_t)size;
    else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf; /* 4 free bytes before the contents, for the tokenizer's vocab_size */
}

static void tiny_seeds(const char *dir)
{
    char path[4096];
    size_t n;
    unsigned char *b;
    int32_t vocab = 0;
    snprintf(path, sizeof path, "%s/model.bin", dir);
    if ((b = read_all(path, &n))) {
        if (n >= 28)
            memcpy(&vocab, b + 4 + 20, 4);
        write_bytes(out_path("once", "llama_model", "tiny-model.bin"), b + 4, n);
        free(b);
    }
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    if (vocab != INT32_MIN && (b = read_all(path, &n))) {
        vocab = vocab < 0 ? -vocab : vocab;
        memcpy(b, &vocab, 4);
        write_bytes(out_path("seeds", "tokenizer", "tiny-tokenizer.bin"), b, n + 4);
        free(b);
    }
    snprintf(path, sizeof path, "%s/calib.tok.bin", dir);
    if ((b = read_all(path, &n))) {
        write_bytes(out_path("seeds", "tokens", "tiny-calib-4KB"), b + 4, n < 4096 ? n : 4096);
        free(b);
    }
}

int main(int argc, char **argv)
{
    aq_context *ctx;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: gen_corpus OUT [TINY_DIR]\n");
        return 2;
    }
    out_dir = argv[1];
    make_dir(out_dir);
    if (aq_context_create(&ctx) != AQ_OK)
        die("aq_context_create");
    hessian_seed(ctx, "n1-empty", 1, 0);
    hessian_seed(ctx, "n3", 3, 5);
    hessian_seed(ctx, "n8", 8, 20);
    quant_seed(ctx, "1x8g4", "1x8g4", AQ_SCALE_PER_OUTPUT_GROUP, 4, 8);
    quant_seed(ctx, "2x4g2o2-noscale", "2x4g2o2", AQ_SCALE_NONE, 4, 4);
    quant_seed(ctx, "1x10g1-u16", "1x10g1", AQ_SCALE_PER_OUTPUT_GROUP, 2, 3);
    quant_seed(ctx, "3x2g4o2", "3x2g4o2", AQ_SCALE_PER_OUTPUT_GROUP, 8, 8);
    aq_context_free(ctx);
    hessian_regressions();
    quant_regressions();
    llama_seeds();
    llama_regressions();
    tokenizer_files();
    tokens_files();
    provenance_files();
    if (argc == 3)
        tiny_seeds(argv[2]);
    return 0;
}

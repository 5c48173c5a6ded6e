/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "llama_model.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLM_LINEARS_PER_BLOCK 7
/* Index order = the order the forward uses the layers, so a host that quantizes layers by index
 * is true-sequential: w2 reads silu(w1 x)·(w3 x) and comes after both. */
static const char *const linear_names[LLM_LINEARS_PER_BLOCK] = {"wq", "wk", "wv", "wo", "w1", "w3", "w2"};
enum { L_WQ, L_WK, L_WV, L_WO, L_W1, L_W3, L_W2 };

typedef struct llm_block {
    float *rms_att, *rms_ffn;
    float *linear[LLM_LINEARS_PER_BLOCK];
} llm_block;

struct llm_model {
    llm_config cfg;
    int kv_dim, head_size;
    float *data; /* every weight, as read from the file */
    float *embedding, *rms_final, *freq_re, *freq_im, *classifier;
    llm_block *blocks;
    char (*names)[32]; /* "layers.l.wq", ... for every linear, in index order */
    /* activations of one window */
    float *x, *xb, *xb2, *q, *k, *v, *h1, *h3, *att;
    /* key/value cache of llm_decode: [n_layers][seq_len][kv_dim], allocated on first use */
    float *k_cache, *v_cache;
};

/* ---------------------------------------------------------------- loading */

static size_t linear_rows(const llm_model *m, int kind)
{
    switch (kind) {
    case L_WK: case L_WV: return (size_t)m->kv_dim;
    case L_W1: case L_W3: return (size_t)m->cfg.hidden_dim;
    default: return (size_t)m->cfg.dim;
    }
}

static size_t linear_cols(const llm_model *m, int kind)
{
    return kind == L_W2 ? (size_t)m->cfg.hidden_dim : (size_t)m->cfg.dim;
}

/* acc += a·b; returns -1 (acc unchanged) if that overflows size_t. */
static int add_product(size_t *acc, size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    if (a * b > SIZE_MAX - *acc)
        return -1;
    *acc += a * b;
    return 0;
}

/* Number of floats the header promises, in file order; -1 if that overflows size_t. */
static int expected_floats(const llm_model *m, size_t *out)
{
    const size_t d = (size_t)m->cfg.dim, L = (size_t)m->cfg.n_layers, V = (size_t)m->cfg.vocab_size;
    size_t n = 0;
    int bad = add_product(&n, V, d) || add_product(&n, 2 * L, d) || add_product(&n, 1, d)
              || add_product(&n, (size_t)m->cfg.seq_len, (size_t)m->head_size)
              || (!m->cfg.shared_classifier && add_product(&n, V, d));
    for (int kind = 0; kind < LLM_LINEARS_PER_BLOCK && !bad; kind++) {
        size_t size = 0;
        bad = add_product(&size, linear_rows(m, kind), linear_cols(m, kind)) || add_product(&n, L, size);
    }
    *out = n;
    return bad ? -1 : 0;
}

/* Every header field is range-checked before anything is derived from it. */
static int check_config(llm_model *m, const int32_t h[7], char *err, size_t errlen)
{
    llm_config *c = &m->cfg;
    /* The sign of vocab_size says whether the classifier is shared; negate in 64 bits, since
     * -INT32_MIN overflows an int. */
    const int64_t vocab = h[5] > 0 ? (int64_t)h[5] : -(int64_t)h[5];
    if (h[0] <= 0 || h[0] > 65536 || h[1] <= 0 || h[1] > 262144 || h[2] <= 0 || h[2] > 1024 || h[3] <= 0
        || h[4] <= 0 || h[4] > h[3] || h[3] % h[4] != 0 || h[0] % h[3] != 0 || (h[0] / h[3]) % 2 != 0
        || vocab <= 0 || vocab > 1000000 || h[6] <= 1 || h[6] > 65536) {
        snprintf(err, errlen, "not a llama2.c version-0 checkpoint (header %d %d %d %d %d %d %d)", h[0], h[1], h[2],
                 h[3], h[4], h[5], h[6]);
        return -1;
    }
    c->dim = h[0], c->hidden_dim = h[1], c->n_layers = h[2], c->n_heads = h[3], c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = (int)vocab;
    c->seq_len = h[6];
    m->head_size = c->dim / c->n_heads;
    m->kv_dim = c->dim / c->n_heads * c->n_kv_heads;
    return 0;
}

/* Point the named arrays into the flat data, in the file's order. */
static void map_weights(llm_model *m)
{
    const size_t d = (size_t)m->cfg.dim, L = (size_t)m->cfg.n_layers;
    float *p = m->data;
    m->embedding = p;
    p += (size_t)m->cfg.vocab_size * d;
    for (size_t l = 0; l < L; l++)
        m->blocks[l].rms_att = p + l * d;
    p += L * d;
    for (int kind = 0; kind < L_W1; kind++) { /* wq wk wv wo */
        const size_t size = linear_rows(m, kind) * linear_cols(m, kind);
        for (size_t l = 0; l < L; l++)
            m->blocks[l].linear[kind] = p + l * size;
        p += L * size;
    }
    for (size_t l = 0; l < L; l++)
        m->blocks[l].rms_ffn = p + l * d;
    p += L * d;
    static const int ffn_file_order[3] = {L_W1, L_W2, L_W3};
    for (int f = 0; f < 3; f++) { /* the file stores w1, w2, w3 */
        const int kind = ffn_file_order[f];
        const size_t size = linear_rows(m, kind) * linear_cols(m, kind);
        for (size_t l = 0; l < L; l++)
            m->blocks[l].linear[kind] = p + l * size;
        p += L * size;
    }
    m->rms_final = p;
    p += d;
    m->freq_re = p;
    p += (size_t)m->cfg.seq_len * (size_t)m->head_size / 2;
    m->freq_im = p;
    p += (size_t)m->cfg.seq_len * (size_t)m->head_size / 2;
    m->classifier = m->cfg.shared_classifier ? m->embedding : p;
}

/* malloc of a·b floats, NULL if the size overflows. */
static float *alloc_floats(size_t a, size_t b)
{
    size_t n = 0;
    if (add_product(&n, a, b) || n > SIZE_MAX / sizeof(float))
        return NULL;
    return malloc(n * sizeof(float));
}

/* The activations of one window, allocated on the first forward or decode rather than by
 * llm_load: their size follows from the header alone (seq_len × hidden_dim, seq_len², ...), not
 * from the file, so a loader that allocated them would let a small file ask for any amount. */
static int ensure_activations(llm_model *m)
{
    const size_t n = (size_t)m->cfg.seq_len, d = (size_t)m->cfg.dim, hd = (size_t)m->cfg.hidden_dim;
    if (m->att)
        return 0;
    if (!(m->x = alloc_floats(n, d)) || !(m->xb = alloc_floats(n, d)) || !(m->xb2 = alloc_floats(n, d))
        || !(m->q = alloc_floats(n, d)) || !(m->k = alloc_floats(n, (size_t)m->kv_dim))
        || !(m->v = alloc_floats(n, (size_t)m->kv_dim)) || !(m->h1 = alloc_floats(n, hd))
        || !(m->h3 = alloc_floats(n, hd)) || !(m->att = alloc_floats(n, n))) {
        float **bufs[] = {&m->x, &m->xb, &m->xb2, &m->q, &m->k, &m->v, &m->h1, &m->h3, &m->att};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            free(*bufs[i]);
            *bufs[i] = NULL;
        }
        return -1;
    }
    return 0;
}

/* Loading checks the header's fields and the file length before it allocates anything but the
 * model struct; then it holds the file's floats, the per-layer tables, and nothing else. */
int llm_load(llm_model **out, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    int32_t header[7];
    long size;
    size_t n_floats = 0;
    llm_model *m = NULL;
    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fread(header, sizeof header, 1, f) != 1 || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, (long)sizeof header, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: too short for a llama2.c checkpoint", path);
        goto fail;
    }
    if (!(m = calloc(1, sizeof *m)) || check_config(m, header, err, errlen) != 0)
        goto fail;
    if (expected_floats(m, &n_floats) != 0 || n_floats > (SIZE_MAX - sizeof header) / sizeof(float)) {
        snprintf(err, errlen, "%s: the header's sizes overflow", path);
        goto fail;
    }
    if ((unsigned long)size != sizeof header + n_floats * sizeof(float)) {
        snprintf(err, errlen, "%s: %ld bytes, but the header describes %zu", path, size,
                 sizeof header + n_floats * sizeof(float));
        goto fail;
    }
    m->data = malloc(n_floats * sizeof(float));
    m->blocks = calloc((size_t)m->cfg.n_layers, sizeof *m->blocks);
    m->names = calloc((size_t)m->cfg.n_layers * LLM_LINEARS_PER_BLOCK, sizeof *m->names);
    if (!m->data || !m->blocks || !m->names) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (fread(m->data, sizeof(float), n_floats, f) != n_floats) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    map_weights(m);
    for (int i = 0; i < llm_num_linears(m); i++)
        snprintf(m->names[i], sizeof m->names[i], "layers.%d.%s", i / LLM_LINEARS_PER_BLOCK,
                 linear_names[i % LLM_LINEARS_PER_BLOCK]);
    *out = m;
    return 0;
fail:
    fclose(f);
    llm_free(m);
    return -1;
}

void llm_free(llm_model *m)
{
    if (!m)
        return;
    free(m->data);
    free(m->blocks);
    free(m->names);
    free(m->x);
    free(m->xb);
    free(m->xb2);
    free(m->q);
    free(m->k);
    free(m->v);
    free(m->h1);
    free(m->h3);
    free(m->att);
    free(m->k_cache);
    free(m->v_cache);
    free(m);
}

const llm_config *llm_get_config(const llm_model *m)
{
    return &m->cfg;
}

/* ---------------------------------------------------------------- linear layers */

int llm_num_linears(const llm_model *m)
{
    return m->cfg.n_layers * LLM_LINEARS_PER_BLOCK;
}

void llm_linear_info(const llm_model *m, int index, const char **name, int *rows, int *cols)
{
    const int valid = index >= 0 && index < llm_num_linears(m), kind = index % LLM_LINEARS_PER_BLOCK;
    if (name)
        *name = valid ? m->names[index] : NULL;
    if (rows)
        *rows = valid ? (int)linear_rows(m, kind) : 0;
    if (cols)
        *cols = valid ? (int)linear_cols(m, kind) : 0;
}

int llm_find_linear(const llm_model *m, const char *name)
{
    for (int i = 0; name && i < llm_num_linears(m); i++)
        if (strcmp(m->names[i], name) == 0)
            return i;
    return -1;
}

float *llm_linear_weight(llm_model *m, int index)
{
    if (index < 0 || index >= llm_num_linears(m))
        return NULL;
    return m->blocks[index / LLM_LINEARS_PER_BLOCK].linear[index % LLM_LINEARS_PER_BLOCK];
}

/* ---------------------------------------------------------------- forward */

/* out[t] = x[t] / sqrt(mean(x[t]²) + 1e-5) ⊙ w for each of the n rows. */
static void rmsnorm(float *out, const float *x, const float *w, int n, int d)
{
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        double ss = 0.0;
        for (int i = 0; i < d; i++)
            ss += (double)xt[i] * xt[i];
        const float inv = (float)(1.0 / sqrt(ss / d + 1e-5));
        for (int i = 0; i < d; i++)
            out[(size_t)t * d + i] = xt[i] * inv * w[i];
    }
}

/* Y (n × rows) = X (n × cols) · Wᵀ, after the hook has seen X. */
static int linear(llm_model *m, int block, int kind, const float *X, float *Y, int n, llm_linear_hook hook,
                  void *ud)
{
    const int rows = (int)linear_rows(m, kind), cols = (int)linear_cols(m, kind);
    if (hook) {
        int st = hook(block * LLM_LINEARS_PER_BLOCK + kind, X, n, cols, ud);
        if (st != 0)
            return st;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, X, cols,
                m->blocks[block].linear[kind], cols, 0.0f, Y, rows);
    return 0;
}

/* Rotary embedding on consecutive pairs (x_{2i}, x_{2i+1}) of every head; row t of x is at
 * position pos0 + t: a rotation by the angle whose cosine and sine are
 * freq_re/freq_im[pos0 + t][i mod head_size/2]. */
static void rope(const llm_model *m, float *x, int n, int width, int pos0)
{
    const int half = m->head_size / 2;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < width; i += 2) {
            const int f = (i % m->head_size) / 2;
            const size_t at = (size_t)(pos0 + t) * half + f;
            const float c = m->freq_re[at], s = m->freq_im[at];
            float *p = x + (size_t)t * width + i;
            const float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
}

/* Causal multi-head attention of q, k, v (GQA: query head h reads key/value head
 * h / (n_heads / n_kv_heads)); the result goes to m->xb2 (n × dim). */
static void attention(llm_model *m, int n)
{
    const int d = m->cfg.dim, hs = m->head_size, kvd = m->kv_dim;
    const int group = m->cfg.n_heads / m->cfg.n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < m->cfg.n_heads; h++) {
        const float *Q = m->q + h * hs, *K = m->k + (h / group) * hs, *V = m->v + (h / group) * hs;
        /* att = Q Kᵀ / sqrt(hs), n × n */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hs, scale, Q, d, K, kvd, 0.0f, m->att, n);
        for (int t = 0; t < n; t++) { /* softmax over positions 0..t */
            float *row = m->att + (size_t)t * n, mx = row[0];
            double sum = 0.0;
            for (int u = 1; u <= t; u++)
                mx = row[u] > mx ? row[u] : mx;
            for (int u = 0; u <= t; u++) {
                row[u] = expf(row[u] - mx);
                sum += row[u];
            }
            for (int u = 0; u <= t; u++)
                row[u] = (float)(row[u] / sum);
            for (int u = t + 1; u < n; u++)
                row[u] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hs, n, 1.0f, m->att, n, V, kvd, 0.0f,
                    m->xb2 + h * hs, d);
    }
}

static int block_forward(llm_model *m, int l, int n, llm_linear_hook hook, void *ud)
{
    const int d = m->cfg.dim, hd = m->cfg.hidden_dim;
    const llm_block *b = &m->blocks[l];
    int st;
    rmsnorm(m->xb, m->x, b->rms_att, n, d);
    if ((st = linear(m, l, L_WQ, m->xb, m->q, n, hook, ud)) || (st = linear(m, l, L_WK, m->xb, m->k, n, hook, ud))
        || (st = linear(m, l, L_WV, m->xb, m->v, n, hook, ud)))
        return st;
    rope(m, m->q, n, d, 0);
    rope(m, m->k, n, m->kv_dim, 0);
    attention(m, n);
    if ((st = linear(m, l, L_WO, m->xb2, m->xb, n, hook, ud)))
        return st;
    for (size_t i = 0; i < (size_t)n * d; i++)
        m->x[i] += m->xb[i];
    rmsnorm(m->xb, m->x, b->rms_ffn, n, d);
    if ((st = linear(m, l, L_W1, m->xb, m->h1, n, hook, ud)) || (st = linear(m, l, L_W3, m->xb, m->h3, n, hook, ud)))
        return st;
    for (size_t i = 0; i < (size_t)n * hd; i++) { /* SwiGLU: silu(w1 x) ⊙ (w3 x) */
        const float a = m->h1[i];
        m->h1[i] = a / (1.0f + expf(-a)) * m->h3[i];
    }
    if ((st = linear(m, l, L_W2, m->h1, m->xb, n, hook, ud)))
        return st;
    for (size_t i = 0; i < (size_t)n * d; i++)
        m->x[i] += m->xb[i];
    return 0;
}

int llm_forward(llm_model *m, const uint16_t *tokens, int n, float *logits, llm_linear_hook hook,
                void *userdata)
{
    const int d = m->cfg.dim;
    if (n <= 0 || n > m->cfg.seq_len || ensure_activations(m) != 0)
        return -1;
    for (int t = 0; t < n; t++) {
        if (tokens[t] >= m->cfg.vocab_size)
            return -1;
        memcpy(m->x + (size_t)t * d, m->embedding + (size_t)tokens[t] * d, sizeof(float) * (size_t)d);
    }
    for (int l = 0; l < m->cfg.n_layers; l++) {
        int st = block_forward(m, l, n, hook, userdata);
        if (st)
            return st;
    }
    if (logits) {
        rmsnorm(m->xb, m->x, m->rms_final, n, d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m->cfg.vocab_size, d, 1.0f, m->xb, d,
                    m->classifier, d, 0.0f, logits, m->cfg.vocab_size);
    }
    return 0;
}

/* ---------------------------------------------------------------- perplexity */

int llm_perplexity(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows,
                   double *mean_nll, size_t *n_predicted)
{
    const int seq = m->cfg.seq_len, V = m->cfg.vocab_size;
    size_t windows = n_tokens / (size_t)seq, count = 0;
    double total = 0.0;
    float *logits = alloc_floats((size_t)seq, (size_t)V);
    if (!logits)
        return -1;
    if (max_windows > 0 && (size_t)max_windows < windows)
        windows = (size_t)max_windows;
    for (size_t w = 0; w < windows; w++) {
        const uint16_t *win = tokens + w * (size_t)seq;
        int st = llm_forward(m, win, seq, logits, NULL, NULL);
        if (st) {
            free(logits);
            return st;
        }
        for (int t = 0; t + 1 < seq; t++) { /* position t predicts token t+1: −log softmax */
            const float *row = logits + (size_t)t * V;
            double mx = row[0], sum = 0.0;
            for (int v = 1; v < V; v++)
                mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++)
                sum += exp((double)row[v] - mx);
            total += mx + log(sum) - (double)row[win[t + 1]];
            count++;
        }
    }
    free(logits);
    *mean_nll = count ? total / (double)count : 0.0;
    *n_predicted = count;
    return 0;
}

/* ---------------------------------------------------------------- single-token decoding */

static int apply_linear(llm_model *m, int index, const float *x, float *y, llm_linear_fn linear_fn, void *ud)
{
    if (linear_fn)
        return linear_fn(index, x, y, ud);
    const int kind = index % LLM_LINEARS_PER_BLOCK;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)linear_rows(m, kind), (int)linear_cols(m, kind), 1.0f,
                llm_linear_weight(m, index), (int)linear_cols(m, kind), x, 1, 0.0f, y, 1);
    return 0;
}

int llm_decode(llm_model *m, int token, int pos, float *logits, llm_linear_fn linear_fn, void *userdata)
{
    const int d = m->cfg.dim, hd = m->cfg.hidden_dim, hs = m->head_size, kvd = m->kv_dim, seq = m->cfg.seq_len;
    const int group = m->cfg.n_heads / m->cfg.n_kv_heads;
    int st;
    if (token < 0 || token >= m->cfg.vocab_size || pos < 0 || pos >= seq || !logits || ensure_activations(m) != 0)
        return -1;
    if (!m->k_cache || !m->v_cache) {
        const size_t n = (size_t)m->cfg.n_layers * (size_t)seq;
        free(m->k_cache);
        free(m->v_cache);
        m->k_cache = alloc_floats(n, (size_t)kvd);
        m->v_cache = alloc_floats(n, (size_t)kvd);
        if (!m->k_cache || !m->v_cache)
            return -1;
    }
    float *x = m->x, *xb = m->xb, *xb2 = m->xb2, *q = m->q, *att = m->att, *h1 = m->h1, *h3 = m->h3;
    memcpy(x, m->embedding + (size_t)token * d, sizeof(float) * (size_t)d);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        float *kc = m->k_cache + ((size_t)l * seq + pos) * kvd, *vc = m->v_cache + ((size_t)l * seq + pos) * kvd;
        const int base = l * LLM_LINEARS_PER_BLOCK;
        rmsnorm(xb, x, m->blocks[l].rms_att, 1, d);
        if ((st = apply_linear(m, base + L_WQ, xb, q, linear_fn, userdata))
            || (st = apply_linear(m, base + L_WK, xb, kc, linear_fn, userdata))
            || (st = apply_linear(m, base + L_WV, xb, vc, linear_fn, userdata)))
            return st;
        rope(m, q, 1, d, pos);
        rope(m, kc, 1, kvd, pos);
        for (int h = 0; h < m->cfg.n_heads; h++) { /* softmax(q·k / sqrt(hs)) over positions 0..pos */
            const float *qh = q + h * hs;
            const int kv = (h / group) * hs;
            float mx = -INFINITY;
            double sum = 0.0;
            for (int t = 0; t <= pos; t++) {
                const float *kt = m->k_cache + ((size_t)l * seq + t) * kvd + kv;
                float dot = 0.0f;
                for (int i = 0; i < hs; i++)
                    dot += qh[i] * kt[i];
                att[t] = dot / sqrtf((float)hs);
                mx = att[t] > mx ? att[t] : mx;
            }
            for (int t = 0; t <= pos; t++) {
                att[t] = expf(att[t] - mx);
                sum += att[t];
            }
            for (int i = 0; i < hs; i++)
                xb2[h * hs + i] = 0.0f;
            for (int t = 0; t <= pos; t++) {
                const float *vt = m->v_cache + ((size_t)l * seq + t) * kvd + kv, a = (float)(att[t] / sum);
                for (int i = 0; i < hs; i++)
                    xb2[h * hs + i] += a * vt[i];
            }
        }
        if ((st = apply_linear(m, base + L_WO, xb2, xb, linear_fn, userdata)))
            return st;
        for (int i = 0; i < d; i++)
            x[i] += xb[i];
        rmsnorm(xb, x, m->blocks[l].rms_ffn, 1, d);
        if ((st = apply_linear(m, base + L_W1, xb, h1, linear_fn, userdata))
            || (st = apply_linear(m, base + L_W3, xb, h3, linear_fn, userdata)))
            return st;
        for (int i = 0; i < hd; i++)
            h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
        if ((st = apply_linear(m, base + L_W2, h1, xb, linear_fn, userdata)))
            return st;
        for (int i = 0; i < d; i++)
            x[i] += xb[i];
    }
    rmsnorm(xb, x, m->rms_final, 1, d);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m->cfg.vocab_size, d, 1.0f, m->classifier, d, xb, 1, 0.0f, logits, 1);
    return 0;
}

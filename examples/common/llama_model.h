/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* A small Llama forward pass for llama2.c "version 0" fp32 checkpoints, on cblas_sgemm.
 *
 * The model owns writable copies of its weights, so a host can replace a linear layer by its
 * dequantized version in place (llm_linear_weight) and run the next layers on the quantized
 * model, as true-sequential quantization needs. One forward at a time per model. */
#ifndef AQEX_LLAMA_MODEL_H
#define AQEX_LLAMA_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct llm_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier; /* 1: the output layer is the token embedding */
} llm_config;

typedef struct llm_model llm_model;

/* Called before each linear layer with its input X (rows × cols, leading dimension cols), in
 * index order (the order the forward uses them).
 * Return 0 to continue; any other value stops the forward, which returns it. */
typedef int (*llm_linear_hook)(int linear_index, const float *X, int rows, int cols, void *userdata);

/* Load a checkpoint. Every header field is range-checked and the file length must match the
 * sizes the header implies before anything is allocated; the model then holds the file's floats
 * and per-layer tables only. The activation buffers of a window (seq_len × dim, seq_len ×
 * hidden_dim, seq_len², ...) are allocated by the first llm_forward or llm_decode. Returns 0, or
 * -1 with a message in @p err. */
int llm_load(llm_model **out, const char *path, char *err, size_t errlen);
void llm_free(llm_model *m);
const llm_config *llm_get_config(const llm_model *m);

/* Linear layers in the order the forward uses them: for each block l,
 * layers.l.{wq, wk, wv, wo, w1, w3, w2}, index = 7 l + position in that list (w2 last: it reads
 * the product of w1's and w3's outputs, so quantizing by index is true-sequential). The name stays valid as long as the model; an index out of range gives
 * name NULL, rows = cols = 0 and a NULL weight. */
int llm_num_linears(const llm_model *m);
void llm_linear_info(const llm_model *m, int index, const char **name, int *rows, int *cols);
int llm_find_linear(const llm_model *m, const char *name); /* index, or -1 */
float *llm_linear_weight(llm_model *m, int index);        /* rows × cols, row-major [out][in], writable */

/* Run tokens[0..n) (n ≤ seq_len) as one window. If @p logits is not NULL it receives
 * n × vocab_size logits. Returns 0, a hook's non-zero value, or -1 for bad arguments or when
 * the activation buffers cannot be allocated. */
int llm_forward(llm_model *m, const uint16_t *tokens, int n, float *logits, llm_linear_hook hook,
                void *userdata);

/* One linear layer applied to one vector: y = W_index x (rows values from cols values). */
typedef int (*llm_linear_fn)(int linear_index, const float *x, float *y, void *userdata);

/* Single-token decoding with a key/value cache: feed @p token at position @p pos (0, 1, 2, ...;
 * pos 0 starts a new sequence) and get vocab_size logits. Every linear layer goes through
 * @p linear_fn (NULL: the model's fp32 weights), e.g. aq_quant_matvec on a quantized model.
 * Returns 0, the linear function's non-zero value, or -1 (bad arguments, or no memory for the
 * activations or the cache). */
int llm_decode(llm_model *m, int token, int pos, float *logits, llm_linear_fn linear_fn, void *userdata);

/* Perplexity protocol of ../shared/bench/README.md: consecutive windows of seq_len tokens
 * (remainder dropped; at most @p max_windows if > 0), predicting tokens 2..seq_len of each.
 * Writes the mean negative log-likelihood and the number of predicted tokens. */
int llm_perplexity(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows,
                   double *mean_nll, size_t *n_predicted);

#endif

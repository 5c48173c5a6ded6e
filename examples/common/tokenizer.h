/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Decoding token ids to text with a llama2.c tokenizer.bin (for printing generated text). */
#ifndef AQEX_TOKENIZER_H
#define AQEX_TOKENIZER_H

#include <stddef.h>

typedef struct tokenizer tokenizer;

/* Load the first @p vocab_size (>= 1) pieces of a tokenizer.bin. Returns 0, or -1 with a message
 * in @p err (also when the file is too short for vocab_size tokens: nothing is allocated then). */
int tokenizer_load(tokenizer **out, const char *path, int vocab_size, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);
/* The text of @p token following @p prev: byte-fallback pieces <0xXX> become that byte, and the
 * leading space of the first piece after BOS (token 1) is dropped. Valid until the next call. */
const char *tokenizer_piece(tokenizer *t, int prev, int token);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tokenizer {
    int vocab_size;
    char **pieces;
    char byte_piece[2];
};

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; t->pieces && i < t->vocab_size; i++)
        free(t->pieces[i]);
    free(t->pieces);
    free(t);
}

/* File: int32 max_token_length, then per token: float32 score, int32 length, the bytes. The
 * file length is checked against vocab_size (8 bytes per token at least) before the table of
 * pieces is allocated, and each piece is at most max_token_length <= 4096 bytes. */
int tokenizer_load(tokenizer **out, const char *path, int vocab_size, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    tokenizer *t = NULL;
    int32_t max_len, len;
    float score;
    long size;
    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (vocab_size <= 0 || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0
        || (unsigned long)size < 4 || ((unsigned long)size - 4) / 8 < (unsigned long)vocab_size)
        goto bad;
    if (!(t = calloc(1, sizeof *t)) || !(t->pieces = calloc((size_t)vocab_size, sizeof *t->pieces))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    t->vocab_size = vocab_size;
    if (fread(&max_len, sizeof max_len, 1, f) != 1 || max_len <= 0 || max_len > 4096)
        goto bad;
    for (int i = 0; i < vocab_size; i++) {
        if (fread(&score, sizeof score, 1, f) != 1 || fread(&len, sizeof len, 1, f) != 1 || len < 0 || len > max_len
            || !(t->pieces[i] = malloc((size_t)len + 1)) || fread(t->pieces[i], 1, (size_t)len, f) != (size_t)len)
            goto bad;
        t->pieces[i][len] = '\0';
    }
    fclose(f);
    *out = t;
    return 0;
bad:
    snprintf(err, errlen, "%s: not a llama2.c tokenizer for %d tokens", path, vocab_size);
fail:
    fclose(f);
    tokenizer_free(t);
    return -1;
}

const char *tokenizer_piece(tokenizer *t, int prev, int token)
{
    unsigned int byte;
    const char *p;
    if (token < 0 || token >= t->vocab_size)
        return "";
    p = t->pieces[token];
    if (prev == 1 && p[0] == ' ')
        p++;
    if (sscanf(p, "<0x%02X>", &byte) == 1 && strlen(p) == 6) {
        t->byte_piece[0] = (char)byte;
        t->byte_piece[1] = '\0';
        return t->byte_piece;
    }
    return p;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tok_load(uint16_t **out, size_t *n_tokens, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    long size;
    uint16_t *tok = NULL;
    unsigned char pair[2];
    *out = NULL;
    *n_tokens = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot determine the size", path);
        fclose(f);
        return -1;
    }
    if (size % 2 != 0 || size == 0) {
        snprintf(err, errlen, "%s: %ld bytes is not a stream of uint16 tokens", path, size);
        fclose(f);
        return -1;
    }
    tok = malloc((size_t)size);
    if (!tok) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    for (size_t i = 0; i < (size_t)size / 2; i++) {
        if (fread(pair, 1, 2, f) != 2) {
            snprintf(err, errlen, "%s: truncated", path);
            free(tok);
            fclose(f);
            return -1;
        }
        tok[i] = (uint16_t)(pair[0] | (pair[1] << 8)); /* little-endian on any host */
    }
    fclose(f);
    *out = tok;
    *n_tokens = (size_t)size / 2;
    return 0;
}

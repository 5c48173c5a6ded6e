/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Token streams: uint16 little-endian files (the calibration and perplexity data). */
#ifndef AQEX_TOKENS_H
#define AQEX_TOKENS_H

#include <stddef.h>
#include <stdint.h>

/* Read every token of @p path into a malloc'd array (*out, *n_tokens). Returns 0, or -1 with a
 * message in @p err. */
int tok_load(uint16_t **out, size_t *n_tokens, const char *path, char *err, size_t errlen);

#endif

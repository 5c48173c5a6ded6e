/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: tok_load (examples/common/tokens.c, a uint16 little-endian token stream) on
 * arbitrary bytes.
 *
 * The loader is compiled into this file with its malloc family counted (FUZZ_COUNT_MALLOC): at
 * most 16 × size + 64 KiB while it runs (fuzz_support.h).
 * Checks: no crash, leak or UB; a file of even, non-zero length loads as exactly its tokens; any
 * other file fails and creates nothing. */
#define FUZZ_COUNT_MALLOC
#include "fuzz_support.h"

#include "tokens.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[256];
    const int fd = fuzz_file_open(data, size, path, sizeof path);
    uint16_t *tok = (uint16_t *)err; /* must be set to NULL on failure */
    size_t n = 1;

    fuzz_alloc_begin(size, 1);
    const int st = tok_load(&tok, &n, path, err, sizeof err);
    fuzz_alloc_end();

    if (size == 0 || size % 2 != 0) {
        if (st != -1 || tok != NULL || n != 0)
            abort();
    } else {
        if (st != 0 || n != size / 2)
            abort();
        for (size_t i = 0; i < n; i++)
            if (tok[i] != (uint16_t)(data[2 * i] | data[2 * i + 1] << 8))
                abort();
    }
    free(tok);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_tokens: %zu bytes still allocated\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

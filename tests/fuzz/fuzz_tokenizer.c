/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: tokenizer_load (examples/common/tokenizer.c, llama2.c's tokenizer.bin) and
 * tokenizer_piece on arbitrary bytes.
 *
 * Input: a little-endian int32 vocab_size (the caller's argument, any value), then the file.
 * The loader is compiled into this file with its malloc family counted (FUZZ_COUNT_MALLOC): at
 * most 16 × (file size) + 64 KiB while it runs (fuzz_support.h).
 * Checks: no crash, leak or UB; a failure creates nothing; every piece of a loaded tokenizer
 * decodes to a NUL-terminated string. */
#define FUZZ_COUNT_MALLOC
#include "fuzz_support.h"

#include "tokenizer.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[256];
    tokenizer *t = (tokenizer *)&err; /* must be set to NULL on failure */
    if (size < 4)
        return 0;
    const int32_t vocab_size = (int32_t)((uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16
                                         | (uint32_t)data[3] << 24);
    const int fd = fuzz_file_open(data + 4, size - 4, path, sizeof path);

    fuzz_alloc_begin(size - 4, 1);
    const int st = tokenizer_load(&t, path, vocab_size, err, sizeof err);
    fuzz_alloc_end();

    if (st == 0) {
        size_t total = 0;
        for (int i = -1; i <= vocab_size; i++) /* out of range on both sides too */
            total += strlen(tokenizer_piece(t, 1, i)) + strlen(tokenizer_piece(t, 0, i));
        if (total > 2 * (size - 4))
            abort();
    } else if (st != -1 || t != NULL) {
        abort();
    }
    tokenizer_free(t);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_tokenizer: %zu bytes still allocated\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

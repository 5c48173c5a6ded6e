/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: aq_quant_load on arbitrary bytes (docs/formats.md, "Quantized matrix file").
 *
 * Checks: no crash, leak or UB; the loader holds at most 16 × size + 64 KiB (fuzz_support.h);
 * a failure is AQ_ERR_FORMAT and creates nothing; a file that loads is saved back byte for byte. */
#include "fuzz_support.h"

#include <aqinit.h>

static char save_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_scratch_path(save_path, sizeof save_path, "quant.aqq");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const aq_allocator counting = {fuzz_aq_alloc, fuzz_aq_free, NULL};
    char path[64];
    const int fd = fuzz_file_open(data, size, path, sizeof path);
    aq_context *ctx = NULL;
    aq_quant *q = (aq_quant *)&ctx; /* must be set to NULL on failure */

    fuzz_alloc_begin(size, 1);
    if (aq_context_create_with_allocator(&ctx, &counting) != AQ_OK)
        abort();
    const int st = aq_quant_load(&q, ctx, path);
    fuzz_alloc_end();

    if (st == AQ_OK) {
        aq_format fmt;
        if (aq_quant_get_format(&fmt, q) != AQ_OK
            || aq_format_check(NULL, &fmt, aq_quant_rows(q), aq_quant_cols(q)) != AQ_OK)
            abort();
        if (aq_quant_save(q, save_path) != AQ_OK)
            abort();
        fuzz_expect_file(save_path, data, size, "fuzz_quant");
    } else if (st != AQ_ERR_FORMAT || q != NULL) {
        fprintf(stderr, "fuzz_quant: status %d (%s), handle %p\n", st, aq_context_last_error(ctx), (void *)q);
        abort();
    }
    aq_quant_free(q);
    aq_context_free(ctx);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_quant: %zu bytes still allocated through the context\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: aq_hessian_load on arbitrary bytes (docs/formats.md, "Hessian file").
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
    fuzz_scratch_path(save_path, sizeof save_path, "hessian.bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const aq_allocator counting = {fuzz_aq_alloc, fuzz_aq_free, NULL};
    char path[64];
    const int fd = fuzz_file_open(data, size, path, sizeof path);
    aq_context *ctx = NULL;
    aq_hessian *h = (aq_hessian *)&ctx; /* must be set to NULL on failure */

    fuzz_alloc_begin(size, 1);
    if (aq_context_create_with_allocator(&ctx, &counting) != AQ_OK)
        abort();
    const int st = aq_hessian_load(&h, ctx, path);
    fuzz_alloc_end();

    if (st == AQ_OK) {
        const int64_t n = aq_hessian_num_inputs(h);
        if (n < 1 || aq_hessian_num_samples(h) < 0)
            abort();
        if (aq_hessian_save(h, save_path) != AQ_OK)
            abort();
        fuzz_expect_file(save_path, data, size, "fuzz_hessian");
    } else if (st != AQ_ERR_FORMAT || h != NULL) {
        fprintf(stderr, "fuzz_hessian: status %d (%s), handle %p\n", st, aq_context_last_error(ctx), (void *)h);
        abort();
    }
    aq_hessian_free(h);
    aq_context_free(ctx);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_hessian: %zu bytes still allocated through the context\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

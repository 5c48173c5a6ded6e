/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libFuzzer target: the provenance record of a pipeline's resume directory
 * (docs/formats.md, "Layer provenance"), through aqi_provenance_load (a file, as the pipeline
 * reads it) and aqi_provenance_parse (the bytes).
 *
 * Checks: no crash, leak or UB; the loader holds at most 16 × size + 64 KiB (fuzz_support.h); a failure is
 * AQ_ERR_FORMAT with a message naming the file; what parses formats to a record that parses to
 * itself (format ∘ parse is a fixed point after one round). */
#include "fuzz_support.h"

#include <aqinit.h>

#include "pipeline/provenance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* parse(format(pv)) formats to the same text. */
static void check_fixed_point(const aqi_provenance *pv)
{
    static char text[AQI_PROVENANCE_MAX_BYTES], again[AQI_PROVENANCE_MAX_BYTES];
    char why[160];
    aqi_provenance back;
    size_t n = aqi_provenance_format(pv, text, sizeof text);
    if (n >= sizeof text || aqi_provenance_parse(text, n, &back, why, sizeof why) != AQ_OK) {
        fprintf(stderr, "fuzz_provenance: a parsed record does not parse once formatted (%s)\n", why);
        abort();
    }
    size_t m = aqi_provenance_format(&back, again, sizeof again);
    if (m != n || memcmp(text, again, n) != 0) {
        fprintf(stderr, "fuzz_provenance: format/parse is not a fixed point:\n%s---\n%s", text, again);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const aq_allocator counting = {fuzz_aq_alloc, fuzz_aq_free, NULL};
    char path[64], why[160];
    const int fd = fuzz_file_open(data, size, path, sizeof path);
    aq_context *ctx = NULL;
    aqi_provenance from_file, from_bytes;

    if (aq_context_create_with_allocator(&ctx, &counting) != AQ_OK)
        abort();
    fuzz_alloc_begin(size, 1);
    const int st = aqi_provenance_load(ctx, path, &from_file);
    fuzz_alloc_end();
    const int st_bytes = aqi_provenance_parse((const char *)data, size, &from_bytes, why, sizeof why);
    if (st != st_bytes && !(st == AQ_ERR_FORMAT && size > AQI_PROVENANCE_MAX_BYTES)) {
        fprintf(stderr, "fuzz_provenance: load gave %d, parse %d\n", st, st_bytes);
        abort();
    }
    if (st == AQ_OK)
        check_fixed_point(&from_file);
    else if (st != AQ_ERR_FORMAT || !strstr(aq_context_last_error(ctx), path)) {
        fprintf(stderr, "fuzz_provenance: status %d (%s)\n", st, aq_context_last_error(ctx));
        abort();
    }
    aq_context_free(ctx);
    if (fuzz_alloc.live != 0) {
        fprintf(stderr, "fuzz_provenance: %zu bytes still allocated through the context\n", fuzz_alloc.live);
        abort();
    }
    close(fd);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* What produced a layer saved in a pipeline's resume directory: the record
 * layer-NNNNN.prov written beside layer-NNNNN.aqq (docs/formats.md, "Layer provenance"). A run
 * compares it with its own before reusing the layer. */
#ifndef AQINIT_PIPELINE_PROVENANCE_H
#define AQINIT_PIPELINE_PROVENANCE_H

#include "core/internal.h"

#define AQI_PROVENANCE_MAX_BYTES 65536 /* a record is refused beyond this size */

typedef struct aqi_provenance {
    int32_t layer;
    int64_t rows, cols;
    int32_t num_codebooks, bits_per_codebook, in_group_size, out_group_size, scale_mode;
    uint64_t seed;              /* the context's seed */
    char options[4096];         /* options other than their defaults (aqi_options_describe) */
    uint64_t weight_hash;       /* FNV-1a 64 of W, rows × cols floats, row-major */
    int64_t hessian_samples;
    uint64_t hessian_hash;      /* aqi_hessian_fingerprint */
    double init_error, final_error, init_seconds, optimize_seconds; /* the layer's report */
} aqi_provenance;

/* The record as text, "key value" lines after a magic line; returns the length it needed
 * (truncated to @p size). */
size_t aqi_provenance_format(const aqi_provenance *pv, char *buf, size_t size);

/* Parse @p n bytes of a record (they need not end in NUL). AQ_ERR_FORMAT with the reason in
 * @p why (at least 128 bytes) for anything but a complete, well-formed record of a known version:
 * every key exactly once, every number in range, no unknown key. */
int aqi_provenance_parse(const char *text, size_t n, aqi_provenance *out, char *why, size_t why_size);

/* Write atomically (path.tmp, fsync, rename). */
int aqi_provenance_save(aq_context *ctx, const char *path, const aqi_provenance *pv);
/* Read and parse; AQ_ERR_IO if it cannot be read, AQ_ERR_FORMAT if malformed (the message names
 * the file). */
int aqi_provenance_load(aq_context *ctx, const char *path, aqi_provenance *out);

/* The first setting or input in which @p saved differs from @p now — format, shape, seed,
 * options, weight, and with @p check_hessian the Hessian — written as a sentence into @p what;
 * 0 if they agree. The report fields are not compared. */
int aqi_provenance_differs(const aqi_provenance *saved, const aqi_provenance *now, int check_hessian,
                           char *what, size_t what_size);

#endif

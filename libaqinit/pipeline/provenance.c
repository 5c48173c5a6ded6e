/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Provenance records of saved layers (provenance.h): text "key value" lines, written atomically,
 * parsed strictly (the loader reads files from outside: every key once, every value in range). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/provenance.h"

#define MAGIC_LINE "aqinit-layer-provenance 1"
#define LINE_MAX_BYTES (sizeof(((aqi_provenance *)0)->options) + 64)

size_t aqi_provenance_format(const aqi_provenance *pv, char *buf, size_t size)
{
    int n = snprintf(buf, size,
                     MAGIC_LINE "\n"
                     "layer %" PRId32 "\nrows %" PRId64 "\ncols %" PRId64 "\n"
                     "format %" PRId32 " %" PRId32 " %" PRId32 " %" PRId32 " %" PRId32 "\n"
                     "seed %" PRIu64 "\noptions %s\n"
                     "weight %016" PRIx64 "\nhessian_samples %" PRId64 "\nhessian %016" PRIx64 "\n"
                     "init_error %.17g\nfinal_error %.17g\ninit_seconds %.17g\noptimize_seconds %.17g\n",
                     pv->layer, pv->rows, pv->cols, pv->num_codebooks, pv->bits_per_codebook, pv->in_group_size,
                     pv->out_group_size, pv->scale_mode, pv->seed, pv->options[0] ? pv->options : "-",
                     pv->weight_hash, pv->hessian_samples, pv->hessian_hash, pv->init_error, pv->final_error,
                     pv->init_seconds, pv->optimize_seconds);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- parsing ---- */

enum { K_LAYER, K_ROWS, K_COLS, K_FORMAT, K_SEED, K_OPTIONS, K_WEIGHT, K_HSAMPLES, K_HESSIAN, K_INIT_ERROR,
       K_FINAL_ERROR, K_INIT_SECONDS, K_OPT_SECONDS, N_KEYS };
static const char *const key_names[N_KEYS] = {
    "layer", "rows", "cols", "format", "seed", "options", "weight", "hessian_samples", "hessian",
    "init_error", "final_error", "init_seconds", "optimize_seconds"};

/* A decimal integer filling all of @p s, within [lo, hi]. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v;
    if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Exactly 16 lowercase hexadecimal digits. */
static int parse_hash(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    if (s[16] != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A number for a report field: finite, or nan (a layer whose error was not measured). */
static int parse_real(const char *s, double *out)
{
    char *end;
    double v;
    if (*s == '\0' || *s == ' ' || *s == '\t')
        return -1;
    v = strtod(s, &end);
    if (*end != '\0' || isinf(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_format(const char *s, aqi_provenance *pv)
{
    int32_t *fields[5] = {&pv->num_codebooks, &pv->bits_per_codebook, &pv->in_group_size, &pv->out_group_size,
                          &pv->scale_mode};
    char item[24];
    for (int k = 0; k < 5; k++) {
        size_t len = strcspn(s, " ");
        int64_t v;
        if (len == 0 || len >= sizeof item || (k < 4 && s[len] != ' ') || (k == 4 && s[len] != '\0'))
            return -1;
        memcpy(item, s, len);
        item[len] = '\0';
        if (parse_int(item, 0, INT32_MAX, &v))
            return -1;
        *fields[k] = (int32_t)v;
        s += len + (k < 4);
    }
    return 0;
}

/* The options text: printable ASCII without spaces ("-" for none). */
static int parse_options(const char *s, aqi_provenance *pv)
{
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof pv->options)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return -1;
    if (strcmp(s, "-") == 0)
        pv->options[0] = '\0';
    else
        memcpy(pv->options, s, len + 1);
    return 0;
}

static int parse_value(int key, const char *value, aqi_provenance *pv)
{
    int64_t v;
    switch (key) {
    case K_LAYER: if (parse_int(value, 0, INT32_MAX, &v)) return -1; pv->layer = (int32_t)v; return 0;
    case K_ROWS: return parse_int(value, 1, INT64_MAX, &pv->rows);
    case K_COLS: return parse_int(value, 1, INT64_MAX, &pv->cols);
    case K_FORMAT: return parse_format(value, pv);
    case K_SEED: {
        char *end;
        if (*value < '0' || *value > '9')
            return -1;
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (errno || *end != '\0')
            return -1;
        pv->seed = u;
        return 0;
    }
    case K_OPTIONS: return parse_options(value, pv);
    case K_WEIGHT: return parse_hash(value, &pv->weight_hash);
    case K_HSAMPLES: return parse_int(value, 0, INT64_MAX, &pv->hessian_samples);
    case K_HESSIAN: return parse_hash(value, &pv->hessian_hash);
    case K_INIT_ERROR: return parse_real(value, &pv->init_error);
    case K_FINAL_ERROR: return parse_real(value, &pv->final_error);
    case K_INIT_SECONDS: return parse_real(value, &pv->init_seconds);
    default: return parse_real(value, &pv->optimize_seconds);
    }
}

int aqi_provenance_parse(const char *text, size_t n, aqi_provenance *out, char *why, size_t why_size)
{
    char line[LINE_MAX_BYTES];
    int seen[N_KEYS] = {0};
    aqi_provenance pv;
    size_t pos = 0;
    int line_no = 0;
    memset(&pv, 0, sizeof pv);
    if (n > AQI_PROVENANCE_MAX_BYTES) {
        snprintf(why, why_size, "%zu bytes, more than a record can hold", n);
        return AQ_ERR_FORMAT;
    }
    while (pos < n) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
        if (!nl) {
            snprintf(why, why_size, "line %d does not end in a newline (truncated?)", line_no + 1);
            return AQ_ERR_FORMAT;
        }
        if (len >= sizeof line || memchr(text + pos, '\0', len)) {
            snprintf(why, why_size, "line %d is too long or holds a NUL byte", line_no + 1);
            return AQ_ERR_FORMAT;
        }
        memcpy(line, text + pos, len);
        line[len] = '\0';
        pos += len + 1;
        if (line_no++ == 0) {
            if (strcmp(line, MAGIC_LINE) != 0) {
                snprintf(why, why_size, "not a provenance record of version 1 (first line '%.60s')", line);
                return AQ_ERR_FORMAT;
            }
            continue;
        }
        char *space = strchr(line, ' ');
        int key = -1;
        if (space) {
            *space = '\0';
            for (int k = 0; k < N_KEYS; k++)
                if (strcmp(line, key_names[k]) == 0)
                    key = k;
        }
        if (key < 0 || seen[key]++) {
            snprintf(why, why_size, "line %d: %s key '%.40s'", line_no, key < 0 ? "unknown" : "repeated", line);
            return AQ_ERR_FORMAT;
        }
        if (parse_value(key, space + 1, &pv)) {
            snprintf(why, why_size, "line %d: bad value for '%s'", line_no, key_names[key]);
            return AQ_ERR_FORMAT;
        }
    }
    for (int k = 0; k < N_KEYS; k++)
        if (!seen[k]) {
            snprintf(why, why_size, "key '%s' is missing", key_names[k]);
            return AQ_ERR_FORMAT;
        }
    *out = pv;
    return AQ_OK;
}

/* ---- files ---- */

int aqi_provenance_save(aq_context *ctx, const char *path, const aqi_provenance *pv)
{
    const char *fn = "aq_pipeline_run";
    const size_t n = aqi_provenance_format(pv, NULL, 0); /* a few KiB: on the heap, not the host's stack */
    aqi_file_out out;
    char *text;
    int st;
    if (n == 0 || n > AQI_PROVENANCE_MAX_BYTES)
        return aqi_fail(ctx, AQ_ERR_INTERNAL, "%s: the provenance record of %s cannot be formatted", fn, path);
    if (!(text = aqi_alloc(ctx, n + 1)))
        return AQ_ERR_NOMEM;
    aqi_provenance_format(pv, text, n + 1);
    if ((st = aqi_file_create(ctx, fn, &out, path)) == AQ_OK)
        st = aqi_file_commit(ctx, fn, &out, fwrite(text, 1, n, out.f) != n);
    aqi_free(ctx, text);
    return st;
}

int aqi_provenance_load(aq_context *ctx, const char *path, aqi_provenance *out)
{
    const char *fn = "aq_pipeline_run";
    char *text, why[160];
    uint64_t size;
    FILE *f;
    int st = aqi_file_open_regular(ctx, fn, path, &f, &size);
    if (st != AQ_OK)
        return st;
    if (size > AQI_PROVENANCE_MAX_BYTES) {
        fclose(f);
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: %s: %llu bytes, more than a provenance record can hold", fn, path,
                        (unsigned long long)size);
    }
    if (!(text = aqi_alloc(ctx, size ? (size_t)size : 1))) { /* at most the file's size */
        fclose(f);
        return AQ_ERR_NOMEM;
    }
    size_t got = fread(text, 1, (size_t)size, f);
    int failed = ferror(f) || got != size;
    fclose(f);
    if (!failed)
        st = aqi_provenance_parse(text, got, out, why, sizeof why);
    aqi_free(ctx, text);
    if (failed)
        return aqi_fail(ctx, AQ_ERR_IO, "%s: reading %s failed", fn, path);
    if (st != AQ_OK)
        return aqi_fail(ctx, st, "%s: %s is not a valid provenance record: %s", fn, path, why);
    return AQ_OK;
}

/* ---- comparison ---- */

int aqi_provenance_differs(const aqi_provenance *saved, const aqi_provenance *now, int check_hessian,
                           char *what, size_t what_size)
{
    if (saved->layer != now->layer || saved->rows != now->rows || saved->cols != now->cols)
        snprintf(what, what_size, "it is layer %d of %lld x %lld, this run's is layer %d of %lld x %lld",
                 (int)saved->layer, (long long)saved->rows, (long long)saved->cols, (int)now->layer,
                 (long long)now->rows, (long long)now->cols);
    else if (saved->num_codebooks != now->num_codebooks || saved->bits_per_codebook != now->bits_per_codebook
             || saved->in_group_size != now->in_group_size || saved->out_group_size != now->out_group_size
             || saved->scale_mode != now->scale_mode)
        snprintf(what, what_size, "it has format %dx%dg%do%d (scales %d), this run %dx%dg%do%d (scales %d)",
                 (int)saved->num_codebooks, (int)saved->bits_per_codebook, (int)saved->in_group_size,
                 (int)saved->out_group_size, (int)saved->scale_mode, (int)now->num_codebooks,
                 (int)now->bits_per_codebook, (int)now->in_group_size, (int)now->out_group_size,
                 (int)now->scale_mode);
    else if (saved->seed != now->seed)
        snprintf(what, what_size, "it was made with seed %llu, this run has seed %llu",
                 (unsigned long long)saved->seed, (unsigned long long)now->seed);
    else if (strcmp(saved->options, now->options) != 0)
        snprintf(what, what_size, "it was made with options {%.300s}, this run has {%.300s}",
                 saved->options[0] ? saved->options : "defaults", now->options[0] ? now->options : "defaults");
    else if (saved->weight_hash != now->weight_hash)
        snprintf(what, what_size, "it was made from another weight (fingerprint %016llx, this run's %016llx)",
                 (unsigned long long)saved->weight_hash, (unsigned long long)now->weight_hash);
    else if (check_hessian && (saved->hessian_samples != now->hessian_samples
                               || saved->hessian_hash != now->hessian_hash))
        snprintf(what, what_size, "it was made from another Hessian (%lld samples, fingerprint %016llx; this "
                 "run's %lld, %016llx)", (long long)saved->hessian_samples,
                 (unsigned long long)saved->hessian_hash, (long long)now->hessian_samples,
                 (unsigned long long)now->hessian_hash);
    else
        return 0;
    return 1;
}

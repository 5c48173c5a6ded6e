/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Save and load a Hessian in the format of docs/formats.md ("Hessian file"): magic, version,
 * sizes, the packed upper triangle as little-endian doubles, CRC-32 of everything before it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hessian/hessian_internal.h"

static const unsigned char hessian_magic[8] = {'A', 'Q', 'H', 'E', 'S', 'S', 0x00, 0x01};
#define HESSIAN_FILE_VERSION 1u
#define HESSIAN_HEADER_BYTES 32
#define HESSIAN_CRC_BYTES 4
#define IO_BUFFER_DOUBLES 1024

/* File size implied by the header: 32 + 8·n(n+1)/2 + 4 bytes; 0 if it does not fit. */
static uint64_t expected_file_bytes(uint64_t n)
{
    uint64_t tri = n % 2 == 0 ? (n / 2) * (n + 1) : n * ((n + 1) / 2); /* n ≤ 2^31: no overflow */
    if (tri > (UINT64_MAX - HESSIAN_HEADER_BYTES - HESSIAN_CRC_BYTES) / 8)
        return 0;
    return HESSIAN_HEADER_BYTES + 8 * tri + HESSIAN_CRC_BYTES;
}

/* ---- save ---- */

/* Write the header and the packed upper triangle; return 0 on success, errno-like otherwise. */
static int write_body(FILE *f, const aq_hessian *h)
{
    unsigned char buf[8 * IO_BUFFER_DOUBLES];
    uint32_t crc = 0;
    size_t used = 0;
    int64_t n = h->n_inputs;
    memcpy(buf, hessian_magic, 8);
    aqi_put_le32(buf + 8, HESSIAN_FILE_VERSION);
    aqi_put_le32(buf + 12, 0);
    aqi_put_le64(buf + 16, (uint64_t)n);
    aqi_put_le64(buf + 24, (uint64_t)h->n_samples);
    crc = aqi_crc32(crc, buf, HESSIAN_HEADER_BYTES);
    if (fwrite(buf, 1, HESSIAN_HEADER_BYTES, f) != HESSIAN_HEADER_BYTES)
        return 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            uint64_t bits;
            memcpy(&bits, &h->matrix[i * n + j], sizeof bits);
            aqi_put_le64(buf + used, bits);
            used += 8;
            if (used == sizeof buf || (i == n - 1 && j == n - 1)) {
                crc = aqi_crc32(crc, buf, used);
                if (fwrite(buf, 1, used, f) != used)
                    return 1;
                used = 0;
            }
        }
    aqi_put_le32(buf, crc);
    return fwrite(buf, 1, HESSIAN_CRC_BYTES, f) != HESSIAN_CRC_BYTES;
}

int aq_hessian_save(const aq_hessian *h, const char *path)
{
    const char *fn = "aq_hessian_save";
    aqi_file_out out;
    int st, failed;
    if (!h)
        return AQ_ERR_INVALID_ARG;
    if (!path)
        return aqi_fail(h->ctx, AQ_ERR_INVALID_ARG, "%s: path is NULL", fn);
    /* Write path.tmp completely, then rename: the path holds either the old file or the new one. */
    if ((st = aqi_file_create(h->ctx, fn, &out, path)) != AQ_OK)
        return st;
    aqi_hessian_lock(h);
    failed = write_body(out.f, h);
    aqi_hessian_unlock(h);
    return aqi_file_commit(h->ctx, fn, &out, failed);
}

/* ---- load ---- */

typedef struct file_header {
    uint64_t n_inputs, n_samples;
} file_header;

/* Check magic, version and sizes against the file length; no allocation happens before this. */
static int parse_header(aq_context *ctx, const char *path, const unsigned char *buf, size_t got,
                        uint64_t file_bytes, file_header *hdr)
{
    const char *fn = "aq_hessian_load";
    uint32_t version;
    uint64_t want;
    if (got < 8 || memcmp(buf, hessian_magic, 8) != 0)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' is not a Hessian file (bad magic or shorter than 8 bytes)",
                        fn, path);
    if (got < HESSIAN_HEADER_BYTES)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' is truncated inside the header", fn, path);
    version = aqi_get_le32(buf + 8);
    if (version != HESSIAN_FILE_VERSION)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has format version %u; this library reads version %u",
                        fn, path, (unsigned)version, HESSIAN_FILE_VERSION);
    if (aqi_get_le32(buf + 12) != 0)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has non-zero reserved header bits", fn, path);
    hdr->n_inputs = aqi_get_le64(buf + 16);
    hdr->n_samples = aqi_get_le64(buf + 24);
    if (hdr->n_inputs < 1 || hdr->n_inputs > (uint64_t)AQI_HESSIAN_MAX_INPUTS
        || hdr->n_samples > (uint64_t)INT64_MAX)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has invalid sizes (n_inputs %llu, n_samples %llu)",
                        fn, path, (unsigned long long)hdr->n_inputs, (unsigned long long)hdr->n_samples);
    want = expected_file_bytes(hdr->n_inputs);
    if (want != file_bytes)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has %llu bytes but its header (n_inputs %llu) implies "
                        "%llu: truncated or inconsistent", fn, path, (unsigned long long)file_bytes,
                        (unsigned long long)hdr->n_inputs, (unsigned long long)want);
    return AQ_OK;
}

/* Read the packed upper triangle into h and check the trailing CRC. */
static int read_body(FILE *f, aq_hessian *h, uint32_t crc, const char *path)
{
    const char *fn = "aq_hessian_load";
    unsigned char buf[8 * IO_BUFFER_DOUBLES];
    int64_t n = h->n_inputs, i = 0, j = 0;
    uint64_t left = expected_file_bytes((uint64_t)n) - HESSIAN_HEADER_BYTES - HESSIAN_CRC_BYTES;
    while (left > 0) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, want, f) != want)
            break;
        crc = aqi_crc32(crc, buf, want);
        for (size_t k = 0; k < want; k += 8) {
            uint64_t bits = aqi_get_le64(buf + k);
            memcpy(&h->matrix[i * n + j], &bits, sizeof bits);
            if (++j == n)
                j = ++i;
        }
        left -= want;
    }
    if (left > 0 || fread(buf, 1, HESSIAN_CRC_BYTES, f) != HESSIAN_CRC_BYTES)
        return ferror(f) ? aqi_fail(h->ctx, AQ_ERR_IO, "%s: reading '%s' failed", fn, path)
                         : aqi_fail(h->ctx, AQ_ERR_FORMAT, "%s: '%s' is truncated", fn, path);
    if (aqi_get_le32(buf) != crc)
        return aqi_fail(h->ctx, AQ_ERR_FORMAT, "%s: '%s' is corrupted (CRC-32 %08x, stored %08x)", fn, path,
                        (unsigned)crc, (unsigned)aqi_get_le32(buf));
    return AQ_OK;
}

/* Values a valid file cannot hold even with a correct checksum. */
static int check_values(const aq_hessian *h, const char *path)
{
    int64_t n = h->n_inputs;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            double v = h->matrix[i * n + j];
            if (!isfinite(v) || (i == j && v < 0) || (h->n_samples == 0 && v != 0))
                return aqi_fail(h->ctx, AQ_ERR_FORMAT, "aq_hessian_load: '%s' holds an invalid value "
                                "H[%lld][%lld] = %g (non-finite, negative diagonal, or non-zero with "
                                "0 samples)", path, (long long)i, (long long)j, v);
        }
    return AQ_OK;
}

int aq_hessian_load(aq_hessian **out, aq_context *ctx, const char *path)
{
    const char *fn = "aq_hessian_load";
    unsigned char header[HESSIAN_HEADER_BYTES];
    file_header hdr = {0, 0};
    uint64_t file_bytes;
    aq_hessian *h = NULL;
    size_t got;
    FILE *f;
    int st;
    if (!out)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!path)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: path is NULL", fn);
    if ((st = aqi_file_open_regular(ctx, fn, path, &f, &file_bytes)) != AQ_OK)
        return st;
    got = fread(header, 1, sizeof header, f);
    if (ferror(f))
        st = aqi_fail(ctx, AQ_ERR_IO, "%s: reading '%s' failed", fn, path);
    else
        st = parse_header(ctx, path, header, got, file_bytes, &hdr);
    if (st == AQ_OK)
        st = aqi_hessian_new(&h, ctx, (int64_t)hdr.n_inputs, fn);
    if (st == AQ_OK) {
        h->n_samples = (int64_t)hdr.n_samples;
        st = read_body(f, h, aqi_crc32(0, header, sizeof header), path);
    }
    if (st == AQ_OK)
        st = check_values(h, path);
    fclose(f);
    if (st != AQ_OK) {
        aq_hessian_free(h);
        return st;
    }
    *out = h;
    return AQ_OK;
}

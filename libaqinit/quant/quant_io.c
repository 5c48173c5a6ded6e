/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Save/load of aq_quant in the format of docs/formats.md ("Quantized matrix file"):
 * the file is assembled in memory, checksummed, written to path.tmp and renamed. */
#include <stdio.h>
#include <string.h>

#include "quant/quant.h"

static const unsigned char QUANT_MAGIC[8] = {'A', 'Q', 'Q', 'U', 'A', 'N', 'T', 0};
#define QUANT_VERSION 1u
#define QUANT_HEADER_BYTES 56u

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Sizes of the three arrays that follow the header. */
static size_t payload_bytes(const aq_quant *q)
{
    return q->codes_bytes + (q->codebooks_count + q->scales_count) * sizeof(float);
}

int aq_quant_save(const aq_quant *q, const char *path)
{
    const char *fn = "aq_quant_save";
    unsigned char *buf, *p;
    aqi_file_out out;
    size_t total;
    int st, failed;
    if (!q || !path)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (!host_is_little_endian())
        return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported yet", fn);
    /* never write a file that aq_quant_load refuses */
    if (!aqi_all_finite_f32(q->codebooks, 1, (int64_t)q->codebooks_count, (int64_t)q->codebooks_count)
        || !aqi_all_finite_f32(q->scales, 1, (int64_t)q->scales_count, (int64_t)q->scales_count))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: the codebooks or scales hold NaN or Inf", fn);
    total = QUANT_HEADER_BYTES + payload_bytes(q) + 4;
    if (!(buf = aqi_alloc(q->ctx, total)))
        return AQ_ERR_NOMEM;
    memset(buf, 0, QUANT_HEADER_BYTES);
    memcpy(buf, QUANT_MAGIC, 8);
    aqi_put_le32(buf + 8, QUANT_VERSION);
    aqi_put_le64(buf + 16, (uint64_t)q->rows);
    aqi_put_le64(buf + 24, (uint64_t)q->cols);
    aqi_put_le32(buf + 32, (uint32_t)q->fmt.num_codebooks);
    aqi_put_le32(buf + 36, (uint32_t)q->fmt.bits_per_codebook);
    aqi_put_le32(buf + 40, (uint32_t)q->fmt.in_group_size);
    aqi_put_le32(buf + 44, (uint32_t)q->fmt.out_group_size);
    aqi_put_le32(buf + 48, (uint32_t)q->fmt.scale_mode);
    p = buf + QUANT_HEADER_BYTES;
    memcpy(p, q->codes, q->codes_bytes);
    p += q->codes_bytes;
    memcpy(p, q->codebooks, q->codebooks_count * sizeof(float));
    p += q->codebooks_count * sizeof(float);
    memcpy(p, q->scales, q->scales_count * sizeof(float));
    p += q->scales_count * sizeof(float);
    aqi_put_le32(p, aqi_crc32(0, buf, total - 4));
    /* path.tmp written whole, then renamed: path holds the old file or the new one */
    if ((st = aqi_file_create(q->ctx, fn, &out, path)) == AQ_OK) {
        failed = fwrite(buf, 1, total, out.f) != total;
        st = aqi_file_commit(q->ctx, fn, &out, failed);
    }
    aqi_free(q->ctx, buf);
    return st;
}

/* The header's format and shape, checked, and the file length they imply; nothing is allocated
 * before the caller has compared that length with the file's. */
static int parse_header(aq_context *ctx, const char *path, const unsigned char *hdr, aq_format *fmt,
                        int64_t *rows, int64_t *cols, uint64_t *file_bytes)
{
    const char *fn = "aq_quant_load";
    uint64_t r, c;
    size_t n_codes, n_cb, n_scales;
    uint32_t version;
    if (memcmp(hdr, QUANT_MAGIC, 8) != 0)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' is not a libaqinit quantized-matrix file", fn, path);
    if ((version = aqi_get_le32(hdr + 8)) != QUANT_VERSION)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has version %u (this library reads %u)", fn, path,
                        (unsigned)version, QUANT_VERSION);
    if (aqi_get_le32(hdr + 12) != 0 || aqi_get_le32(hdr + 52) != 0)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has non-zero reserved header fields", fn, path);
    r = aqi_get_le64(hdr + 16);
    c = aqi_get_le64(hdr + 24);
    aq_format_init(fmt);
    fmt->num_codebooks = (int32_t)aqi_get_le32(hdr + 32);
    fmt->bits_per_codebook = (int32_t)aqi_get_le32(hdr + 36);
    fmt->in_group_size = (int32_t)aqi_get_le32(hdr + 40);
    fmt->out_group_size = (int32_t)aqi_get_le32(hdr + 44);
    fmt->scale_mode = (int32_t)aqi_get_le32(hdr + 48);
    if (r > INT64_MAX || c > INT64_MAX || aqi_get_le32(hdr + 32) > INT32_MAX
        || aqi_get_le32(hdr + 36) > INT32_MAX || aqi_get_le32(hdr + 40) > INT32_MAX
        || aqi_get_le32(hdr + 44) > INT32_MAX || aqi_get_le32(hdr + 48) > INT32_MAX
        || aq_format_check(NULL, fmt, (int64_t)r, (int64_t)c) != AQ_OK)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has an invalid shape or format in its header", fn, path);
    if (aqi_quant_sizes(fmt, (int64_t)r, (int64_t)c, &n_codes, &n_cb, &n_scales)
        || (uint64_t)n_codes > UINT64_MAX - QUANT_HEADER_BYTES - 4 || n_cb + n_scales < n_cb
        || (n_cb + n_scales) > (UINT64_MAX - n_codes - QUANT_HEADER_BYTES - 4) / 4)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has header sizes that overflow", fn, path);
    *rows = (int64_t)r;
    *cols = (int64_t)c;
    *file_bytes = QUANT_HEADER_BYTES + (uint64_t)n_codes + 4 * ((uint64_t)n_cb + n_scales) + 4;
    return AQ_OK;
}

/* The payload after the header, checksummed, into a new quant. */
static int read_payload(aq_context *ctx, const char *path, FILE *f, const unsigned char *hdr,
                        const aq_format *fmt, int64_t rows, int64_t cols, aq_quant **out)
{
    const char *fn = "aq_quant_load";
    aq_quant *q = NULL;
    unsigned char crc_bytes[4];
    uint32_t crc = aqi_crc32(0, hdr, QUANT_HEADER_BYTES);
    int st = aqi_quant_new(&q, ctx, fmt, rows, cols);
    if (st != AQ_OK)
        return st;
    struct { void *data; size_t bytes; } part[3] = {
        {q->codes, q->codes_bytes},
        {q->codebooks, q->codebooks_count * sizeof(float)},
        {q->scales, q->scales_count * sizeof(float)}};
    for (int i = 0; i < 3 && st == AQ_OK; i++) {
        if (fread(part[i].data, 1, part[i].bytes, f) != part[i].bytes)
            st = AQ_ERR_IO;
        else
            crc = aqi_crc32(crc, part[i].data, part[i].bytes);
    }
    if (st == AQ_OK && fread(crc_bytes, 1, 4, f) != 4)
        st = AQ_ERR_IO;
    if (st != AQ_OK)
        st = aqi_fail(ctx, AQ_ERR_IO, "%s: reading '%s' failed (changed while read?)", fn, path);
    else if (aqi_get_le32(crc_bytes) != crc)
        st = aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' is corrupted (CRC-32 mismatch)", fn, path);
    else if (!aqi_quant_codes_valid(q, q->codes)
             || !aqi_all_finite_f32(q->codebooks, 1, (int64_t)q->codebooks_count, (int64_t)q->codebooks_count)
             || !aqi_all_finite_f32(q->scales, 1, (int64_t)q->scales_count, (int64_t)q->scales_count))
        st = aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' holds a code >= K or a value that is not finite", fn, path);
    if (st != AQ_OK) {
        aq_quant_free(q);
        return st;
    }
    *out = q;
    return AQ_OK;
}

int aq_quant_load(aq_quant **out, aq_context *ctx, const char *path)
{
    const char *fn = "aq_quant_load";
    unsigned char hdr[QUANT_HEADER_BYTES];
    uint64_t size = 0, want = 0;
    aq_format fmt;
    int64_t rows = 0, cols = 0;
    FILE *f;
    int st;
    if (!out || !ctx || !path)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: NULL argument", fn);
    *out = NULL;
    if (!host_is_little_endian())
        return aqi_fail(ctx, AQ_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported yet", fn);
    if ((st = aqi_file_open_regular(ctx, fn, path, &f, &size)) != AQ_OK)
        return st;
    if (size < QUANT_HEADER_BYTES + 4 || fread(hdr, 1, QUANT_HEADER_BYTES, f) != QUANT_HEADER_BYTES)
        st = aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' is too short (%llu bytes) for a quantized-matrix file", fn,
                      path, (unsigned long long)size);
    if (st == AQ_OK)
        st = parse_header(ctx, path, hdr, &fmt, &rows, &cols, &want);
    if (st == AQ_OK && want != size)
        st = aqi_fail(ctx, AQ_ERR_FORMAT, "%s: '%s' has %llu bytes but its header implies %llu: truncated or "
                      "inconsistent", fn, path, (unsigned long long)size, (unsigned long long)want);
    if (st == AQ_OK)
        st = read_payload(ctx, path, f, hdr, &fmt, rows, cols, out);
    fclose(f);
    return st;
}

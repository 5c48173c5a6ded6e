/* Save/load of aq_quant in the format of docs/formats.md ("Quantized matrix file"):
 * the file is assembled in memory, checksummed, written to path.tmp and renamed. */
#include <errno.h>
#include <math.h>
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
    size_t total, len;
    char *tmp_path;
    FILE *f;
    int failed, err = 0;
    if (!q || !path)
        return aqi_fail(q ? q->ctx : NULL, AQ_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (!host_is_little_endian())
        return aqi_fail(q->ctx, AQ_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported yet", fn);
    total = QUANT_HEADER_BYTES + payload_bytes(q) + 4;
    len = strlen(path);
    buf = aqi_alloc(q->ctx, total);
    tmp_path = buf ? aqi_alloc(q->ctx, len + 5) : NULL;
    if (!tmp_path) {
        aqi_free(q->ctx, buf);
        return AQ_ERR_NOMEM;
    }
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

    memcpy(tmp_path, path, len);
    memcpy(tmp_path + len, ".tmp", 5);
    f = fopen(tmp_path, "wb");
    failed = !f || fwrite(buf, 1, total, f) != total;
    if (!failed && fflush(f) != 0)
        failed = 1;
    if (failed)
        err = errno;
    if (f && fclose(f) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    if (!failed && rename(tmp_path, path) != 0) {
        failed = 1;
        err = errno;
    }
    if (failed) {
        remove(tmp_path);
        aqi_fail(q->ctx, AQ_ERR_IO, "%s: writing '%s' failed: %s", fn, path, strerror(err));
    }
    aqi_free(q->ctx, tmp_path);
    aqi_free(q->ctx, buf);
    return failed ? AQ_ERR_IO : AQ_OK;
}

/* Read a whole file into a context allocation. */
static int read_file(aq_context *ctx, const char *path, unsigned char **out, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long end;
    unsigned char *buf;
    if (!f)
        return aqi_fail(ctx, AQ_ERR_IO, "aq_quant_load: cannot open '%s': %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return aqi_fail(ctx, AQ_ERR_IO, "aq_quant_load: cannot size '%s'", path);
    }
    buf = aqi_alloc(ctx, (size_t)end + 1);
    if (!buf) {
        fclose(f);
        return AQ_ERR_NOMEM;
    }
    if (fread(buf, 1, (size_t)end, f) != (size_t)end) {
        fclose(f);
        aqi_free(ctx, buf);
        return aqi_fail(ctx, AQ_ERR_IO, "aq_quant_load: reading '%s' failed", path);
    }
    fclose(f);
    *out = buf;
    *size = (size_t)end;
    return AQ_OK;
}

static int parse(aq_context *ctx, const unsigned char *buf, size_t size, aq_quant **out)
{
    aq_format fmt;
    aq_quant *q = NULL;
    uint64_t rows, cols;
    uint32_t version;
    int st;
    if (size < QUANT_HEADER_BYTES + 4 || memcmp(buf, QUANT_MAGIC, 8) != 0)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: not a libaqinit quantized-matrix file");
    if ((version = aqi_get_le32(buf + 8)) != QUANT_VERSION)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: unsupported version %u (this library reads %u)",
                        (unsigned)version, QUANT_VERSION);
    if (aqi_crc32(0, buf, size - 4) != aqi_get_le32(buf + size - 4))
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: checksum mismatch (corrupted or truncated file)");
    rows = aqi_get_le64(buf + 16);
    cols = aqi_get_le64(buf + 24);
    aq_format_init(&fmt);
    fmt.num_codebooks = (int32_t)aqi_get_le32(buf + 32);
    fmt.bits_per_codebook = (int32_t)aqi_get_le32(buf + 36);
    fmt.in_group_size = (int32_t)aqi_get_le32(buf + 40);
    fmt.out_group_size = (int32_t)aqi_get_le32(buf + 44);
    fmt.scale_mode = (int32_t)aqi_get_le32(buf + 48);
    if (rows > INT64_MAX || cols > INT64_MAX
        || aq_format_check(NULL, &fmt, (int64_t)rows, (int64_t)cols) != AQ_OK)
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: invalid shape or format in the header");
    st = aqi_quant_new(&q, ctx, &fmt, (int64_t)rows, (int64_t)cols);
    if (st == AQ_ERR_OVERFLOW)
        st = aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: header sizes overflow");
    if (st != AQ_OK)
        return st;
    if (size != QUANT_HEADER_BYTES + payload_bytes(q) + 4) {
        aq_quant_free(q);
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: file length %zu does not match its header", size);
    }
    const unsigned char *p = buf + QUANT_HEADER_BYTES;
    memcpy(q->codes, p, q->codes_bytes);
    p += q->codes_bytes;
    memcpy(q->codebooks, p, q->codebooks_count * sizeof(float));
    p += q->codebooks_count * sizeof(float);
    memcpy(q->scales, p, q->scales_count * sizeof(float));
    if (!aqi_quant_codes_valid(q, q->codes)
        || !aqi_all_finite_f32(q->codebooks, 1, (int64_t)q->codebooks_count, (int64_t)q->codebooks_count)
        || !aqi_all_finite_f32(q->scales, 1, (int64_t)q->scales_count, (int64_t)q->scales_count)) {
        aq_quant_free(q);
        return aqi_fail(ctx, AQ_ERR_FORMAT, "aq_quant_load: a code is >= K or a value is not finite");
    }
    *out = q;
    return AQ_OK;
}

int aq_quant_load(aq_quant **out, aq_context *ctx, const char *path)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    int st;
    if (!out || !ctx || !path)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_quant_load: NULL argument");
    *out = NULL;
    if (!host_is_little_endian())
        return aqi_fail(ctx, AQ_ERR_UNSUPPORTED, "aq_quant_load: big-endian hosts are not supported yet");
    if ((st = read_file(ctx, path, &buf, &size)) != AQ_OK)
        return st;
    st = parse(ctx, buf, size, out);
    aqi_free(ctx, buf);
    return st;
}

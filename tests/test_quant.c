/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Layer 2: aq_quant — layout, dequantize and error measures against naive loops, validated
 * copies, save/load with every kind of bad file, allocation failure. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* Fill a quant with random codes, codebooks and scales through the public copy-in API. */
static void randomize(aq_quant *q, uint64_t seed)
{
    aq_format f;
    size_t nb, nc, ns;
    aq_quant_get_format(&f, q);
    aq_quant_codes(q, &nb);
    aq_quant_codebooks(q, &nc);
    aq_quant_scales(q, &ns);
    const uint32_t K = 1u << f.bits_per_codebook;
    unsigned char *codes = malloc(nb);
    float *cb = malloc(nc * sizeof(float)), *sc = malloc(ns * sizeof(float));
    for (size_t i = 0; i < nb / (f.bits_per_codebook > 8 ? 2 : 1); i++) {
        uint32_t c = (uint32_t)(tu_uniform(&seed) * K);
        if (f.bits_per_codebook > 8)
            ((uint16_t *)codes)[i] = (uint16_t)c;
        else
            codes[i] = (uint8_t)c;
    }
    for (size_t i = 0; i < nc; i++)
        cb[i] = (float)tu_normal(&seed);
    for (size_t i = 0; i < ns; i++)
        sc[i] = f.scale_mode == AQ_SCALE_NONE ? 1.0f : (float)(0.5 + tu_uniform(&seed));
    ck_assert_int_eq(aq_quant_copy_codes_in(q, codes, nb), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_codebooks_in(q, cb, nc), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_scales_in(q, sc, ns), AQ_OK);
    free(codes);
    free(cb);
    free(sc);
}

/* Independent reference: Ŵ[r][c] = s_{r/go} Σ_m C_m[code(r/go, c/g, m)][r%go][c%g]. */
static double naive_entry(aq_quant *q, int64_t r, int64_t c)
{
    aq_format f;
    size_t nb;
    aq_quant_get_format(&f, q);
    const void *codes = aq_quant_codes(q, &nb);
    const float *cb = aq_quant_codebooks(q, NULL), *sc = aq_quant_scales(q, NULL);
    const int64_t J = aq_quant_cols(q) / f.in_group_size, K = 1 << f.bits_per_codebook;
    const int64_t p = r / f.out_group_size, j = c / f.in_group_size;
    double sum = 0;
    for (int m = 0; m < f.num_codebooks; m++) {
        int64_t idx = (p * J + j) * f.num_codebooks + m;
        int64_t k = f.bits_per_codebook > 8 ? ((const uint16_t *)codes)[idx] : ((const uint8_t *)codes)[idx];
        sum += cb[((m * K + k) * f.out_group_size + r % f.out_group_size) * f.in_group_size + c % f.in_group_size];
    }
    return sum * sc[p];
}

static const char *formats[] = {"2x8g8", "3x4g4", "1x1g2", "1x12g4", "2x6g4o2", "1x8g8o4"};

START_TEST(dequantize_matches_naive)
{
    for (size_t fi = 0; fi < sizeof formats / sizeof formats[0]; fi++) {
        aq_context *ctx = tu_context((int)(fi % 3) + 1, 0);
        aq_format f;
        aq_quant *q;
        const int64_t O = 16, I = 24;
        ck_assert_int_eq(aq_format_parse(&f, formats[fi]), AQ_OK);
        if (fi == 2)
            f.scale_mode = AQ_SCALE_NONE;
        ck_assert_int_eq(aq_quant_create(&q, ctx, &f, O, I), AQ_OK);
        randomize(q, 17 + fi);
        const int64_t ld = I + 3;
        float *W = calloc((size_t)(O * ld), sizeof(float));
        ck_assert_int_eq(aq_quant_dequantize(q, W, ld), AQ_OK);
        for (int64_t r = 0; r < O; r++)
            for (int64_t c = 0; c < I; c++)
                ck_assert_msg(fabs(W[r * ld + c] - naive_entry(q, r, c)) <= 1e-5 * (1 + fabs(naive_entry(q, r, c))),
                              "%s: entry %lld,%lld", formats[fi], (long long)r, (long long)c);
        ck_assert_int_eq(aq_quant_dequantize(q, W, I - 1), AQ_ERR_SHAPE);
        free(W);
        aq_quant_free(q);
        aq_context_free(ctx);
    }
}
END_TEST

START_TEST(errors_match_naive)
{
    aq_context *ctx = tu_context(2, 0);
    aq_format f;
    aq_quant *q;
    aq_hessian *H;
    const int64_t O = 12, I = 16, n = 40;
    aq_format_parse(&f, "2x4g4o2");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, O, I), AQ_OK);
    randomize(q, 5);
    float *W = tu_random_matrix(O, I, 9), *X = tu_random_matrix(n, I, 11);
    ck_assert_int_eq(aq_hessian_create(&H, ctx, I), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(H, X, n, I), AQ_OK);
    /* naive H, ΔW, traces in double */
    double Hn[16 * 16], num = 0, den = 0, sq = 0;
    for (int a = 0; a < I; a++)
        for (int b = 0; b < I; b++) {
            double s = 0;
            for (int t = 0; t < n; t++)
                s += (double)X[t * I + a] * X[t * I + b];
            Hn[a * I + b] = s / n;
        }
    for (int r = 0; r < O; r++)
        for (int a = 0; a < I; a++) {
            double da = W[r * I + a] - naive_entry(q, r, a);
            sq += da * da;
            for (int b = 0; b < I; b++) {
                double db = W[r * I + b] - naive_entry(q, r, b);
                num += da * Hn[a * I + b] * db;
                den += (double)W[r * I + a] * Hn[a * I + b] * W[r * I + b];
            }
        }
    double rel, mse;
    ck_assert_int_eq(aq_quant_output_error(&rel, q, W, I, H), AQ_OK);
    ck_assert_msg(tu_rel_diff(rel, num / den) < 1e-5, "rel %g vs naive %g", rel, num / den);
    ck_assert_int_eq(aq_quant_weight_mse(&mse, q, W, I), AQ_OK);
    ck_assert_msg(tu_rel_diff(mse, sq / (O * I)) < 1e-9, "mse %g vs %g", mse, sq / (O * I));
    /* bad inputs */
    aq_hessian *H2;
    ck_assert_int_eq(aq_hessian_create(&H2, ctx, I + 4), AQ_OK);
    ck_assert_int_eq(aq_quant_output_error(&rel, q, W, I, H2), AQ_ERR_SHAPE);
    W[5] = NAN;
    ck_assert_int_eq(aq_quant_output_error(&rel, q, W, I, H), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_quant_weight_mse(&mse, q, W, I), AQ_ERR_NONFINITE);
    aq_hessian_free(H2);
    aq_hessian_free(H);
    aq_quant_free(q);
    free(W);
    free(X);
    aq_context_free(ctx);
}
END_TEST

START_TEST(copies_validate_and_leave_unchanged)
{
    aq_context *ctx = tu_context(1, 0);
    aq_format f;
    aq_quant *q;
    aq_format_parse(&f, "2x3g4");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, 8, 8), AQ_OK);
    randomize(q, 3);
    size_t nb, nc, ns;
    unsigned char before_codes[64];
    float before_cb[256], before_sc[8];
    aq_quant_codes(q, &nb);
    aq_quant_codebooks(q, &nc);
    aq_quant_scales(q, &ns);
    ck_assert_uint_eq(nb, 8 * 2 * 2);
    ck_assert_uint_eq(nc, 2 * 8 * 4);
    ck_assert_uint_eq(ns, 8);
    ck_assert_int_eq(aq_quant_copy_codes_out(q, before_codes, nb), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_codebooks_out(q, before_cb, nc), AQ_OK);
    ck_assert_int_eq(aq_quant_copy_scales_out(q, before_sc, ns), AQ_OK);
    unsigned char bad_codes[64];
    memcpy(bad_codes, before_codes, nb);
    bad_codes[7] = 8; /* K = 8 */
    ck_assert_int_eq(aq_quant_copy_codes_in(q, bad_codes, nb), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_quant_copy_codes_in(q, before_codes, nb - 1), AQ_ERR_SHAPE);
    float bad_cb[256];
    memcpy(bad_cb, before_cb, nc * sizeof(float));
    bad_cb[nc - 1] = INFINITY;
    ck_assert_int_eq(aq_quant_copy_codebooks_in(q, bad_cb, nc), AQ_ERR_NONFINITE);
    float bad_sc[8];
    memcpy(bad_sc, before_sc, sizeof bad_sc);
    bad_sc[0] = NAN;
    ck_assert_int_eq(aq_quant_copy_scales_in(q, bad_sc, ns), AQ_ERR_NONFINITE);
    ck_assert_int_eq(memcmp(aq_quant_codes(q, NULL), before_codes, nb), 0);
    ck_assert_int_eq(memcmp(aq_quant_codebooks(q, NULL), before_cb, nc * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(aq_quant_scales(q, NULL), before_sc, ns * sizeof(float)), 0);
    aq_quant_free(q);
    /* shapes */
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, 8, 10), AQ_ERR_SHAPE);
    ck_assert_ptr_null(q);
    ck_assert_int_ne(aq_quant_create(&q, ctx, &f, INT64_C(1) << 40, INT64_C(1) << 40), AQ_OK);
    aq_context_free(ctx);
}
END_TEST

/* Each path gets its own buffer: a shared static one made two names alias (and one file leak). */
typedef struct temp_path { char s[256]; } temp_path;

static temp_path temp_path_for(const char *tag)
{
    temp_path p;
    snprintf(p.s, sizeof p.s, "/tmp/aqinit-test-%s-%ld.aqq", tag, (long)getpid());
    return p;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* CRC-32 of the test's own, bit by bit, to forge files whose checksum is right. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void fix_crc(unsigned char *b, size_t n)
{
    uint32_t c = crc32_bitwise(b, n - 4);
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

START_TEST(save_load_round_trip_and_bad_files)
{
    aq_context *ctx = tu_context(1, 0);
    aq_format f;
    aq_quant *q, *r = NULL;
    const temp_path rt_path = temp_path_for("rt");
    const char *path = rt_path.s;
    aq_format_parse(&f, "2x9g2o2");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, 8, 16), AQ_OK);
    randomize(q, 77);
    ck_assert_int_eq(aq_quant_save(q, path), AQ_OK);
    ck_assert_int_eq(aq_quant_load(&r, ctx, path), AQ_OK);
    size_t nb, nc, ns;
    aq_quant_codes(q, &nb);
    aq_quant_codebooks(q, &nc);
    aq_quant_scales(q, &ns);
    ck_assert_int_eq(memcmp(aq_quant_codes(q, NULL), aq_quant_codes(r, NULL), nb), 0);
    ck_assert_int_eq(memcmp(aq_quant_codebooks(q, NULL), aq_quant_codebooks(r, NULL), nc * 4), 0);
    ck_assert_int_eq(memcmp(aq_quant_scales(q, NULL), aq_quant_scales(r, NULL), ns * 4), 0);
    aq_format g;
    aq_quant_get_format(&g, r);
    ck_assert_int_eq(g.out_group_size, 2);
    ck_assert_int_eq(g.bits_per_codebook, 9);
    aq_quant_free(r);

    size_t n;
    unsigned char *good = read_bytes(path, &n), *b = malloc(n);
    const temp_path bad_path = temp_path_for("bad");
    const char *bad = bad_path.s;
    for (size_t len = 0; len < n; len += len < 128 ? 1 : 61) { /* truncations: every header length, then a stride */
        write_bytes(bad, good, len);
        r = (aq_quant *)good;
        ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
        ck_assert_ptr_null(r);
    }
    memcpy(b, good, n);
    b[n / 2] ^= 0x40; /* flipped bit */
    write_bytes(bad, b, n);
    ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
    memcpy(b, good, n);
    b[0] = 'X'; /* foreign */
    fix_crc(b, n);
    write_bytes(bad, b, n);
    ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
    memcpy(b, good, n);
    b[8] = 2; /* future version */
    fix_crc(b, n);
    write_bytes(bad, b, n);
    ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "version"));
    memcpy(b, good, n);
    b[56] = 0xFF; /* first code (uint16) = 0xFFFF ≥ K = 512 once the high byte is set too */
    b[57] = 0xFF;
    fix_crc(b, n);
    write_bytes(bad, b, n);
    ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
    memcpy(b, good, n);
    b[36] = 17; /* B = 17 */
    fix_crc(b, n);
    write_bytes(bad, b, n);
    ck_assert_int_eq(aq_quant_load(&r, ctx, bad), AQ_ERR_FORMAT);
    ck_assert_int_eq(aq_quant_load(&r, ctx, "/nonexistent/dir/file"), AQ_ERR_IO);
    ck_assert_int_eq(aq_quant_save(q, "/nonexistent/dir/file"), AQ_ERR_IO);
    remove(bad);
    remove(path);
    free(b);
    free(good);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* A 56-byte header + CRC describing a rows × cols matrix of format @p fmt_text with no payload
 * (its checksum right): what a crafted file looks like. Writes 60 bytes to @p path. */
static void write_header_only(const char *path, const char *fmt_text, uint64_t rows, uint64_t cols)
{
    unsigned char b[60] = {'A', 'Q', 'Q', 'U', 'A', 'N', 'T', 0};
    aq_format f;
    ck_assert_int_eq(aq_format_parse(&f, fmt_text), AQ_OK);
    const uint32_t v32[] = {(uint32_t)f.num_codebooks, (uint32_t)f.bits_per_codebook, (uint32_t)f.in_group_size,
                            (uint32_t)f.out_group_size, (uint32_t)f.scale_mode};
    b[8] = 1;
    for (int i = 0; i < 8; i++) {
        b[16 + i] = (unsigned char)(rows >> (8 * i));
        b[24 + i] = (unsigned char)(cols >> (8 * i));
    }
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < 4; i++)
            b[32 + 4 * k + i] = (unsigned char)(v32[k] >> (8 * i));
    fix_crc(b, sizeof b);
    write_bytes(path, b, sizeof b);
}

/* Load @p path through a metered context and return the status; *extra receives the peak bytes
 * allocated by the load above what the context held before. */
static int load_metered(const char *path, size_t *extra)
{
    metered_allocator ma = {(size_t)1 << 30, 0, 0}; /* a cap, so a bomb fails fast */
    aq_context *ctx = tu_metered_context(&ma);
    aq_quant *r = NULL;
    size_t base = ma.live;
    ma.peak = base;
    int st = aq_quant_load(&r, ctx, path);
    *extra = ma.peak - base;
    if (st != AQ_OK)
        ck_assert_ptr_null(r);
    aq_quant_free(r);
    aq_context_free(ctx);
    ck_assert_uint_eq(ma.live, 0);
    return st;
}

/* Issue 13 item 1: the loader checks the file length against the header before it allocates
 * the arrays; it may allocate at most a small multiple of the file's size. */
START_TEST(crafted_headers_allocate_no_more_than_the_file)
{
    const temp_path bomb_path = temp_path_for("bomb");
    const char *bomb = bomb_path.s;
    size_t extra;
    /* 1x16 g64 o64 on 64 x 64: the codebooks alone would be 2^16·64·64 floats = 1 GiB */
    write_header_only(bomb, "1x16g64o64", 64, 64);
    ck_assert_int_eq(load_metered(bomb, &extra), AQ_ERR_FORMAT);
    ck_assert_uint_le(extra, 16 * 60 + 65536);
    /* M = 8 would be 8 GiB: above the cap, so before the fix this was AQ_ERR_NOMEM */
    write_header_only(bomb, "8x16g64o64", 64, 64);
    ck_assert_int_eq(load_metered(bomb, &extra), AQ_ERR_FORMAT);
    ck_assert_uint_le(extra, 16 * 60 + 65536);

    /* a valid file with one bit flipped in `rows`, checksum recomputed */
    aq_context *ctx = tu_context(1, 0);
    aq_format f;
    aq_quant *q;
    const temp_path good_path = temp_path_for("good");
    aq_format_parse(&f, "2x8g8");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, 64, 64), AQ_OK);
    ck_assert_int_eq(aq_quant_save(q, good_path.s), AQ_OK);
    size_t n;
    unsigned char *b = read_bytes(good_path.s, &n);
    ck_assert_int_eq(load_metered(good_path.s, &extra), AQ_OK);
    ck_assert_uint_le(extra, 4 * n + 65536); /* the quant itself and the read buffer */
    b[16 + 3] ^= 0x10; /* rows 64 -> 64 + 2^28 */
    fix_crc(b, n);
    write_bytes(bomb, b, n);
    ck_assert_int_eq(load_metered(bomb, &extra), AQ_ERR_FORMAT);
    ck_assert_uint_le(extra, 16 * n + 65536);
    free(b);
    remove(bomb);
    remove(good_path.s);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* Issue 13 item 7: a directory is an I/O error (not an allocation of 2^63 bytes), and a
 * non-zero reserved field is refused as the Hessian loader refuses it. */
START_TEST(directory_and_reserved_fields_are_refused)
{
    aq_context *ctx = tu_context(1, 0);
    aq_quant *q, *r = NULL;
    aq_format f;
    ck_assert_int_eq(aq_quant_load(&r, ctx, "/tmp"), AQ_ERR_IO);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "regular file"));

    const temp_path good_path = temp_path_for("resv"), bad_path = temp_path_for("resv-bad");
    aq_format_parse(&f, "1x8g4");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, 8, 16), AQ_OK);
    ck_assert_int_eq(aq_quant_save(q, good_path.s), AQ_OK);
    size_t n;
    unsigned char *good = read_bytes(good_path.s, &n), *b = malloc(n);
    const size_t reserved[] = {12, 15, 52, 55};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        memcpy(b, good, n);
        b[reserved[i]] = 1;
        fix_crc(b, n);
        write_bytes(bad_path.s, b, n);
        ck_assert_int_eq(aq_quant_load(&r, ctx, bad_path.s), AQ_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "reserved"));
    }
    ck_assert_int_eq(aq_quant_load(&r, ctx, good_path.s), AQ_OK);
    aq_quant_free(r);
    remove(good_path.s);
    remove(bad_path.s);
    free(b);
    free(good);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

/* Issue 13 item 2: every function taking a leading dimension refuses one beyond the BLAS index
 * range or whose extent overflows, before it reads or writes anything (the buffers here are
 * small: a call that went ahead would read or write far outside them). */
START_TEST(leading_dimensions_out_of_range_are_refused)
{
    aq_context *ctx = tu_context(1, 0);
    aq_format f;
    aq_quant *q;
    aq_hessian *H;
    const int64_t rows = 16, cols = 16, n = 16;
    const int64_t huge[] = {INT64_MAX / 8, ((int64_t)1 << 32) + 64, (int64_t)INT32_MAX + 1};
    float *W = tu_random_matrix(rows, cols, 5), *Y = malloc(sizeof(float) * (size_t)(n * rows));
    float grad_cb[2 * 256 * 8], grad_s[16];
    double err;
    int64_t changed;
    aq_format_parse(&f, "2x8g8");
    ck_assert_int_eq(aq_quant_create(&q, ctx, &f, rows, cols), AQ_OK);
    randomize(q, 3);
    ck_assert_int_eq(aq_hessian_create(&H, ctx, cols), AQ_OK);
    ck_assert_int_eq(aq_hessian_add(H, W, rows, cols), AQ_OK);
    size_t nb;
    const void *codes0 = aq_quant_codes(q, &nb);
    unsigned char *before = malloc(nb);
    memcpy(before, codes0, nb);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        const int64_t ld = huge[i];
        for (int64_t k = 0; k < n * rows; k++)
            Y[k] = -7.0f;
        ck_assert_int_eq(aq_quant_matmul(q, W, n, ld, Y, rows), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_quant_matmul(q, W, n, cols, Y, ld), AQ_ERR_OVERFLOW);
        for (int64_t k = 0; k < n * rows; k++)
            ck_assert(Y[k] == -7.0f); /* nothing written */
        ck_assert_int_eq(aq_quant_dequantize(q, Y, ld), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_quant_output_error(&err, q, W, ld, H), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_quant_weight_mse(&err, q, W, ld), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_init(ctx, q, W, ld, H, NULL), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_beam_search(ctx, q, W, ld, H, NULL), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_update_codebooks(ctx, q, W, ld, H, NULL), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_optimize(ctx, q, W, ld, H, NULL), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_quantize_layer(ctx, q, W, ld, H, NULL), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_quant_backward(q, W, ld, grad_cb, grad_s), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_vstep(ctx, q, W, ld, H, NULL, &changed), AQ_ERR_OVERFLOW);
        ck_assert_int_eq(aq_hessian_add(H, W, rows, ld), AQ_ERR_OVERFLOW);
        ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "ld"));
        ck_assert_int_eq(memcmp(aq_quant_codes(q, NULL), before, nb), 0);
    }
    ck_assert_int_eq(aq_hessian_num_samples(H), rows);
    free(before);
    free(W);
    free(Y);
    aq_hessian_free(H);
    aq_quant_free(q);
    aq_context_free(ctx);
}
END_TEST

START_TEST(allocation_failures)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    aq_format f;
    aq_quant *q = NULL, *c = NULL;
    const temp_path alloc_path = temp_path_for("alloc");
    const char *path = alloc_path.s;
    const long base = fa.live;
    aq_format_parse(&f, "2x4g4");
    int st = AQ_ERR_NOMEM;
    for (long k = 1; st != AQ_OK; k++) {
        fa.fail_at = fa.n_allocs + k;
        st = aq_quant_create(&q, ctx, &f, 8, 8);
        if (st != AQ_OK) {
            ck_assert_int_eq(st, AQ_ERR_NOMEM);
            ck_assert_ptr_null(q);
            ck_assert_int_eq(fa.live, base);
        }
    }
    fa.fail_at = 0;
    randomize(q, 1);
    ck_assert_int_eq(aq_quant_save(q, path), AQ_OK);
    const long with_q = fa.live;
    st = AQ_ERR_NOMEM;
    for (long k = 1; st != AQ_OK; k++) {
        fa.fail_at = fa.n_allocs + k;
        st = aq_quant_clone(&c, q);
        if (st != AQ_OK) {
            ck_assert_int_eq(st, AQ_ERR_NOMEM);
            ck_assert_int_eq(fa.live, with_q);
        }
    }
    fa.fail_at = 0;
    aq_quant_free(c);
    st = AQ_ERR_NOMEM;
    for (long k = 1; st != AQ_OK; k++) {
        fa.fail_at = fa.n_allocs + k;
        st = aq_quant_load(&c, ctx, path);
        if (st != AQ_OK) {
            ck_assert_int_eq(st, AQ_ERR_NOMEM);
            ck_assert_int_eq(fa.live, with_q);
        }
    }
    fa.fail_at = 0;
    aq_quant_free(c);
    aq_quant_free(q);
    remove(path);
    aq_context_free(ctx);
    ck_assert_int_eq(fa.live, 0);
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dequantize_matches_naive);
    tcase_add_test(tc, errors_match_naive);
    tcase_add_test(tc, copies_validate_and_leave_unchanged);
    tcase_add_test(tc, save_load_round_trip_and_bad_files);
    tcase_add_test(tc, crafted_headers_allocate_no_more_than_the_file);
    tcase_add_test(tc, directory_and_reserved_fields_are_refused);
    tcase_add_test(tc, leading_dimensions_out_of_range_are_refused);
    tcase_add_test(tc, allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(quant_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

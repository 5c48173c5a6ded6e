/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Layer 1: Hessian statistics H = XᵀX/n — accumulation against a naive reference, merging,
 * concurrency, damped copies, save/load, bad inputs and allocation failures. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "testutil.h"

/* ---------------------------------------------------------------- reference and helpers -- */

/* H_ij = Σ_r x_ri x_rj / rows, summed in long double: the independent reference. */
static double *naive_hessian(const float *X, int64_t rows, int64_t n, int64_t ld)
{
    double *H = malloc(sizeof(double) * (size_t)(n * n));
    ck_assert_ptr_nonnull(H);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            long double s = 0;
            for (int64_t r = 0; r < rows; r++)
                s += (long double)X[r * ld + i] * (long double)X[r * ld + j];
            H[i * n + j] = rows ? (double)(s / rows) : 0.0;
        }
    return H;
}

/* The Hessian's full matrix (undamped), malloc'd. */
static double *matrix_of(const aq_hessian *h)
{
    int64_t n = aq_hessian_num_inputs(h);
    double *M = malloc(sizeof(double) * (size_t)(n * n));
    ck_assert_ptr_nonnull(M);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, M, n, 0.0), AQ_OK);
    return M;
}

/* |A_ij − B_ij| <= tol·sqrt(B_ii·B_jj) for all i, j: relative to the Cauchy–Schwarz scale of
 * each entry, so that near-zero off-diagonal entries are not judged against themselves. */
static void assert_close(const double *A, const double *B, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double scale = sqrt(B[i * n + i] * B[j * n + j]);
            ck_assert_msg(fabs(A[i * n + j] - B[i * n + j]) <= tol * (scale > 1e-300 ? scale : 1e-300),
                          "H[%lld][%lld]: %.17g vs %.17g", (long long)i, (long long)j, A[i * n + j],
                          B[i * n + j]);
        }
}

static void assert_matches(const aq_hessian *h, const double *ref, double tol)
{
    double *M = matrix_of(h);
    assert_close(M, ref, aq_hessian_num_inputs(h), tol);
    free(M);
}

/* A snapshot of a handle's observable state, to assert that a failed call changed nothing. */
typedef struct snapshot {
    double *matrix;
    int64_t n_samples;
} snapshot;

static snapshot take_snapshot(const aq_hessian *h)
{
    snapshot s = {matrix_of(h), aq_hessian_num_samples(h)};
    return s;
}

static void assert_unchanged(const aq_hessian *h, snapshot s)
{
    int64_t n = aq_hessian_num_inputs(h);
    double *M = matrix_of(h);
    ck_assert_int_eq(aq_hessian_num_samples(h), s.n_samples);
    ck_assert_msg(memcmp(M, s.matrix, sizeof(double) * (size_t)(n * n)) == 0, "matrix changed");
    free(M);
    free(s.matrix);
}

static aq_hessian *new_hessian(aq_context *ctx, int64_t n)
{
    aq_hessian *h = NULL;
    ck_assert_int_eq(aq_hessian_create(&h, ctx, n), AQ_OK);
    ck_assert_ptr_nonnull(h);
    return h;
}

/* Add rows [r0, r0 + t) of X. */
static void add_rows(aq_hessian *h, const float *X, int64_t r0, int64_t t, int64_t ld)
{
    ck_assert_int_eq(aq_hessian_add(h, X + r0 * ld, t, ld), AQ_OK);
}

/* X (rows × ld) with random normal entries in the first n columns and NaN padding, so that
 * reading the padding would show. */
static float *padded_data(int64_t rows, int64_t n, int64_t ld, uint64_t seed)
{
    float *X = malloc(sizeof(float) * (size_t)(rows * ld));
    ck_assert_ptr_nonnull(X);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++)
            X[r * ld + c] = c < n ? (float)tu_normal(&seed) : NAN;
    return X;
}

/* A private directory for the files of one test; remove_temp_dir() deletes it (empty) at the
 * end of the test. */
static char temp_dir[64];

static void temp_path(char *buf, size_t size, const char *name)
{
    char *dir = temp_dir;
    if (!dir[0]) {
        snprintf(dir, sizeof temp_dir, "/tmp/aq_test_hessian_XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
    }
    snprintf(buf, size, "%s/%s", dir, name);
}

static void remove_temp_dir(void)
{
    if (temp_dir[0])
        ck_assert_int_eq(rmdir(temp_dir), 0);
    temp_dir[0] = '\0';
}

static unsigned char *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

static void write_whole(const char *path, const unsigned char *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

/* Bitwise CRC-32 (IEEE, reflected, as zlib), independent of the library's table version. */
static uint32_t test_crc32(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_le32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* Recompute the trailing CRC after editing a file image, so that only the edit is wrong. */
static void fix_crc(unsigned char *buf, size_t size)
{
    set_le32(buf + size - 4, test_crc32(buf, size - 4));
}

/* Load must fail with @p expected, create nothing and leak nothing. */
static void assert_load_fails(const char *path, int expected)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    long base = fa.live;
    aq_hessian *h = (aq_hessian *)&fa;
    ck_assert_int_eq(aq_hessian_load(&h, ctx, path), expected);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(fa.live, base);
    ck_assert_str_ne(aq_context_last_error(ctx), "");
    aq_context_free(ctx);
}

/* ------------------------------------------------------------------------ accumulation -- */

START_TEST(crc_reference_is_zlib)
{
    ck_assert_uint_eq(test_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(aqi_crc32(0, "123456789", 9), 0xCBF43926u);
}
END_TEST

START_TEST(add_matches_naive_for_every_split)
{
    enum { N = 37, LD = 41, ROWS = 301 };
    aq_context *ctx = tu_context(2, 0);
    float *X = padded_data(ROWS, N, LD, 11);
    double *ref = naive_hessian(X, ROWS, N, LD);
    /* Batch sizes of each split; they sum to ROWS. Zero-row batches are no-ops. */
    static const int64_t uneven[] = {1, 100, 0, 57, 0, 143};
    aq_hessian *one = new_hessian(ctx, N), *split = new_hessian(ctx, N), *rows = new_hessian(ctx, N);
    add_rows(one, X, 0, ROWS, LD);
    int64_t r0 = 0;
    for (size_t b = 0; b < sizeof uneven / sizeof uneven[0]; b++) {
        add_rows(split, X, r0, uneven[b], LD);
        r0 += uneven[b];
    }
    ck_assert_int_eq(r0, ROWS);
    for (int64_t r = 0; r < ROWS; r++) {
        add_rows(rows, X, r, 1, LD);
        add_rows(rows, X, r, 0, LD);
    }
    ck_assert_int_eq(aq_hessian_add(rows, NULL, 0, LD), AQ_OK); /* no rows: X may be NULL */
    aq_hessian *all[] = {one, split, rows};
    double *M[3];
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(aq_hessian_num_samples(all[k]), ROWS);
        ck_assert_int_eq(aq_hessian_num_inputs(all[k]), N);
        assert_matches(all[k], ref, 1e-12);
        M[k] = matrix_of(all[k]);
    }
    assert_close(M[1], M[0], N, 1e-12);
    assert_close(M[2], M[0], N, 1e-12);
    /* The full matrix is exactly symmetric. */
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            ck_assert(M[0][i * N + j] == M[0][j * N + i]);
    for (int k = 0; k < 3; k++) {
        free(M[k]);
        aq_hessian_free(all[k]);
    }
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* More rows than one internal chunk (2048): the add is split into several SYRK calls. */
START_TEST(add_large_batch_in_chunks)
{
    enum { N = 6, ROWS = 5000 };
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 5);
    double *ref = naive_hessian(X, ROWS, N, N);
    aq_hessian *h = new_hessian(ctx, N);
    add_rows(h, X, 0, ROWS, N);
    ck_assert_int_eq(aq_hessian_num_samples(h), ROWS);
    assert_matches(h, ref, 1e-12);
    aq_hessian_free(h);
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

START_TEST(merge_equals_one_accumulation)
{
    enum { N = 23, ROWS = 250 };
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 3);
    double *ref = naive_hessian(X, ROWS, N, N);
    aq_hessian *a = new_hessian(ctx, N), *b = new_hessian(ctx, N), *c = new_hessian(ctx, N);
    aq_hessian *empty = new_hessian(ctx, N);
    add_rows(a, X, 0, 17, N);
    add_rows(b, X, 17, 150, N);
    add_rows(c, X, 167, ROWS - 167, N);
    ck_assert_int_eq(aq_hessian_merge(a, b), AQ_OK);
    ck_assert_int_eq(aq_hessian_merge(a, c), AQ_OK);
    ck_assert_int_eq(aq_hessian_num_samples(a), ROWS);
    assert_matches(a, ref, 1e-12);
    ck_assert_int_eq(aq_hessian_num_samples(b), 150); /* src untouched */

    /* An empty src changes nothing; an empty dst becomes an exact copy of src. */
    snapshot s = take_snapshot(a);
    ck_assert_int_eq(aq_hessian_merge(a, empty), AQ_OK);
    assert_unchanged(a, s);
    ck_assert_int_eq(aq_hessian_merge(empty, a), AQ_OK);
    s = take_snapshot(a);
    assert_unchanged(empty, s);

    /* Merging a handle into itself counts its samples twice and keeps the mean. */
    s = take_snapshot(a);
    ck_assert_int_eq(aq_hessian_merge(a, a), AQ_OK);
    ck_assert_int_eq(aq_hessian_num_samples(a), 2 * ROWS);
    s.n_samples *= 2;
    assert_unchanged(a, s);

    aq_hessian *other = new_hessian(ctx, N + 1);
    s = take_snapshot(a);
    ck_assert_int_eq(aq_hessian_merge(a, other), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_merge(a, NULL), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_merge(NULL, a), AQ_ERR_INVALID_ARG);
    assert_unchanged(a, s);
    aq_hessian_free(other);
    aq_hessian_free(a);
    aq_hessian_free(b);
    aq_hessian_free(c);
    aq_hessian_free(empty);
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------------------------- concurrency -- */

enum { CONC_THREADS = 4, CONC_N = 29, CONC_ROWS = 4 * 211 };

typedef struct adder_arg {
    aq_hessian *h;
    const float *X;
    int64_t first, count;
    int status;
} adder_arg;

static void *adder(void *p)
{
    adder_arg *a = p;
    a->status = AQ_OK;
    /* Batches of 1..9 rows so that the threads interleave many times. */
    for (int64_t r = a->first, t = 1; r < a->first + a->count && a->status == AQ_OK; r += t, t = t % 9 + 1) {
        int64_t left = a->first + a->count - r;
        a->status = aq_hessian_add(a->h, a->X + r * CONC_N, t < left ? t : left, CONC_N);
    }
    return NULL;
}

START_TEST(concurrent_adds_equal_serial)
{
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(CONC_ROWS, CONC_N, 21);
    double *ref = naive_hessian(X, CONC_ROWS, CONC_N, CONC_N);
    aq_hessian *h = new_hessian(ctx, CONC_N), *serial = new_hessian(ctx, CONC_N);
    pthread_t tid[CONC_THREADS];
    adder_arg args[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        args[t] = (adder_arg){h, X, t * (CONC_ROWS / CONC_THREADS), CONC_ROWS / CONC_THREADS, -1};
        ck_assert_int_eq(pthread_create(&tid[t], NULL, adder, &args[t]), 0);
    }
    for (int t = 0; t < CONC_THREADS; t++) {
        ck_assert_int_eq(pthread_join(tid[t], NULL), 0);
        ck_assert_int_eq(args[t].status, AQ_OK);
    }
    add_rows(serial, X, 0, CONC_ROWS, CONC_N);
    ck_assert_int_eq(aq_hessian_num_samples(h), CONC_ROWS);
    /* The order of the running-mean updates differs from run to run: compare to the naive. */
    assert_matches(h, ref, 1e-12);
    assert_matches(serial, ref, 1e-12);
    aq_hessian_free(h);
    aq_hessian_free(serial);
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

typedef struct merger_arg {
    aq_hessian *dst;
    const aq_hessian *src;
    int status;
} merger_arg;

static void *merger(void *p)
{
    merger_arg *m = p;
    m->status = AQ_OK;
    for (int k = 0; k < 20 && m->status == AQ_OK; k++)
        m->status = aq_hessian_merge(m->dst, m->src);
    return NULL;
}

/* merge(a, b) and merge(b, a) at the same time neither deadlock (the TCase timeout would catch
 * it) nor change the mean when both hold the same statistics. */
START_TEST(opposite_concurrent_merges)
{
    enum { N = 16, ROWS = 64 };
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 8);
    double *ref = naive_hessian(X, ROWS, N, N);
    aq_hessian *a = new_hessian(ctx, N), *b = new_hessian(ctx, N);
    add_rows(a, X, 0, ROWS, N);
    add_rows(b, X, 0, ROWS, N);
    merger_arg ma = {a, b, -1}, mb = {b, a, -1};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, merger, &ma), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, merger, &mb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(ma.status, AQ_OK);
    ck_assert_int_eq(mb.status, AQ_OK);
    ck_assert_int_gt(aq_hessian_num_samples(a), 20 * ROWS);
    assert_matches(a, ref, 1e-12);
    assert_matches(b, ref, 1e-12);
    aq_hessian_free(a);
    aq_hessian_free(b);
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* ---------------------------------------------------------------------- damped copies -- */

START_TEST(copies_with_damping_match_naive)
{
    enum { N = 37, ROWS = 120, LD = 40 };
    const double lambda = 0.01;
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 99);
    double *ref = naive_hessian(X, ROWS, N, N);
    aq_hessian *h = new_hessian(ctx, N);
    add_rows(h, X, 0, ROWS, N);
    double mean_diag = 0;
    for (int64_t i = 0; i < N; i++)
        mean_diag += ref[i * N + i] / N;
    double shift = lambda * mean_diag;

    /* Full matrix with a leading dimension: padding untouched, both triangles. */
    double *out = malloc(sizeof(double) * N * LD);
    for (int64_t k = 0; k < N * LD; k++)
        out[k] = -12345.0;
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, LD, lambda), AQ_OK);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j < N; j++) {
            double want = ref[i * N + j] + (i == j ? shift : 0.0);
            double scale = sqrt(ref[i * N + i] * ref[j * N + j]);
            ck_assert_msg(fabs(out[i * LD + j] - want) <= 1e-12 * scale, "[%lld][%lld]", (long long)i,
                          (long long)j);
        }
        for (int64_t j = N; j < LD; j++)
            ck_assert(out[i * LD + j] == -12345.0);
    }
    double diag[N];
    ck_assert_int_eq(aq_hessian_copy_diagonal(h, diag, lambda), AQ_OK);
    for (int64_t i = 0; i < N; i++) {
        ck_assert_double_eq_tol(diag[i], ref[i * N + i] + shift, 1e-12 * ref[i * N + i]);
        ck_assert(diag[i] == out[i * LD + i]);
    }

    /* g = 4 does not divide 37: groups 0..8 exist, 9 does not. */
    double block[16];
    for (int64_t grp = 0; grp < N / 4; grp++) {
        ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, grp, lambda), AQ_OK);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                ck_assert(block[r * 4 + c] == out[(grp * 4 + r) * LD + grp * 4 + c]);
    }
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, N / 4, lambda), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, -1, lambda), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 0, 0, lambda), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, N + 1, 0, lambda), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, INT64_MAX / 2, lambda), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_block(h, NULL, 4, 0, lambda), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, 0, -0.1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 4, 0, NAN), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_hessian_copy_diagonal(h, diag, INFINITY), AQ_ERR_NONFINITE);
    ck_assert_int_eq(aq_hessian_copy_diagonal(h, NULL, 0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, N - 1, 0), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, INT64_MAX / 2, 0), AQ_ERR_OVERFLOW);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, NULL, N, 0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_matrix(NULL, out, N, 0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, N, -1e-9), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, N, NAN), AQ_ERR_NONFINITE);
    aq_hessian_free(h);
    free(out);
    free(ref);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* An empty Hessian copies as zeros whatever the damping (the mean diagonal is 0). */
START_TEST(empty_hessian_copies_zeros)
{
    enum { N = 5 };
    aq_context *ctx = tu_context(1, 0);
    aq_hessian *h = new_hessian(ctx, N);
    double out[N * N], diag[N], block[4];
    ck_assert_int_eq(aq_hessian_num_samples(h), 0);
    ck_assert_int_eq(aq_hessian_copy_matrix(h, out, N, 1.0), AQ_OK);
    ck_assert_int_eq(aq_hessian_copy_diagonal(h, diag, 1.0), AQ_OK);
    ck_assert_int_eq(aq_hessian_copy_block(h, block, 2, 1, 1.0), AQ_OK);
    for (int k = 0; k < N * N; k++)
        ck_assert(out[k] == 0.0);
    for (int k = 0; k < N; k++)
        ck_assert(diag[k] == 0.0);
    for (int k = 0; k < 4; k++)
        ck_assert(block[k] == 0.0);
    aq_hessian_free(h);
    aq_context_free(ctx);
}
END_TEST

/* -------------------------------------------------------------------- from a matrix -- */

START_TEST(create_from_matrix_checks_and_continues)
{
    enum { N = 9, LD = 11, ROWS = 40 };
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(2 * ROWS, N, 4);
    double *h0 = naive_hessian(X, ROWS, N, N);
    double given[N * LD];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < LD; j++)
            given[i * LD + j] = j < N ? h0[i * N + j] : NAN; /* padding is never read */
    aq_hessian *h = (aq_hessian *)ctx;
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, N, LD, ROWS), AQ_OK);
    ck_assert_int_eq(aq_hessian_num_samples(h), ROWS);
    double *M = matrix_of(h);
    ck_assert(memcmp(M, h0, sizeof(double) * N * N) == 0); /* symmetric input: stored exactly */
    free(M);
    /* Adding the next ROWS rows gives the Hessian of all 2·ROWS rows (counts weight the mean). */
    add_rows(h, X, ROWS, ROWS, N);
    double *ref = naive_hessian(X, 2 * ROWS, N, N);
    assert_matches(h, ref, 1e-12);
    aq_hessian_free(h);

    /* Asymmetry within the tolerance is accepted; the symmetric part (the mean) is kept. */
    given[0 * LD + 1] *= 1 + 1e-9;
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, N, LD, ROWS), AQ_OK);
    M = matrix_of(h);
    ck_assert(M[1] == M[N]);
    ck_assert(M[1] != given[0 * LD + 1] && M[1] != given[1 * LD + 0]);
    ck_assert_double_eq_tol(M[1], 0.5 * (given[0 * LD + 1] + given[1 * LD + 0]), 1e-15 * fabs(M[1]));
    free(M);
    aq_hessian_free(h);

    struct { int64_t i, j; double v; int status; } bad[] = {
        {0, 1, 0.5, AQ_ERR_NOT_PSD},        /* clearly asymmetric */
        {3, 3, -1e-3, AQ_ERR_NOT_PSD},      /* negative diagonal */
        {2, 5, NAN, AQ_ERR_NONFINITE},
        {8, 8, INFINITY, AQ_ERR_NONFINITE},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        double save = given[bad[k].i * LD + bad[k].j];
        given[bad[k].i * LD + bad[k].j] = bad[k].v;
        h = (aq_hessian *)ctx;
        ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, N, LD, ROWS), bad[k].status);
        ck_assert_ptr_null(h);
        given[bad[k].i * LD + bad[k].j] = save;
    }
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, N, LD, 0), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, N, N - 1, 1), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, 0, LD, 1), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, NULL, N, LD, 1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, NULL, given, N, LD, 1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_create_from_matrix(NULL, ctx, given, N, LD, 1), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_create_from_matrix(&h, ctx, given, 3, INT64_MAX / 2, 1), AQ_ERR_OVERFLOW);
    ck_assert_ptr_null(h);
    free(ref);
    free(h0);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* -------------------------------------------------------------------------- bad input -- */

START_TEST(add_rejects_bad_input_unchanged)
{
    enum { N = 8, ROWS = 12 };
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 2);
    aq_hessian *h = new_hessian(ctx, N);
    add_rows(h, X, 0, 5, N);
    const float bad_values[] = {NAN, INFINITY, -INFINITY};
    const int64_t bad_rows[] = {0, 6, ROWS - 1};
    for (int v = 0; v < 3; v++)
        for (int r = 0; r < 3; r++) {
            float *Y = tu_random_matrix(ROWS, N, 7);
            Y[bad_rows[r] * N + (v + r) % N] = bad_values[v];
            snapshot s = take_snapshot(h);
            ck_assert_int_eq(aq_hessian_add(h, Y, ROWS, N), AQ_ERR_NONFINITE);
            ck_assert_ptr_nonnull(strstr(aq_context_last_error(ctx), "NaN or Inf"));
            assert_unchanged(h, s);
            free(Y);
        }
    snapshot s = take_snapshot(h);
    ck_assert_int_eq(aq_hessian_add(h, X, ROWS, N - 1), AQ_ERR_SHAPE);   /* ld < n_inputs */
    ck_assert_int_eq(aq_hessian_add(h, X, -1, N), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_add(h, NULL, 3, N), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_add(NULL, X, 3, N), AQ_ERR_INVALID_ARG);
    /* rows × ld beyond the address space: rejected before any element is read. */
    ck_assert_int_eq(aq_hessian_add(h, X, INT64_MAX / 4, INT64_MAX / 4), AQ_ERR_OVERFLOW);
    ck_assert_int_eq(aq_hessian_add(h, X, (int64_t)1 << 62, N), AQ_ERR_OVERFLOW);
    assert_unchanged(h, s);
    aq_hessian_free(h);
    free(X);
    aq_context_free(ctx);
}
END_TEST

/* Sizes whose I×I doubles cannot exist fail with OVERFLOW and never reach the allocator. */
START_TEST(create_rejects_huge_and_empty_sizes)
{
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    long allocs = fa.n_allocs;
    const int64_t huge[] = {(int64_t)1 << 40, (int64_t)3 << 30, 2147483647, INT64_MAX, (int64_t)1 << 32};
    aq_hessian *h;
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        h = (aq_hessian *)&fa;
        ck_assert_int_eq(aq_hessian_create(&h, ctx, huge[k]), AQ_ERR_OVERFLOW);
        ck_assert_ptr_null(h);
    }
    ck_assert_int_eq(aq_hessian_create(&h, ctx, 0), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_create(&h, ctx, -5), AQ_ERR_SHAPE);
    ck_assert_int_eq(aq_hessian_create(&h, NULL, 5), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_create(NULL, ctx, 5), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(fa.n_allocs, allocs);
    ck_assert_int_eq(aq_hessian_num_inputs(NULL), 0);
    ck_assert_int_eq(aq_hessian_num_samples(NULL), 0);
    aq_hessian_free(NULL);
    aq_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------------------------- save / load -- */

START_TEST(save_load_round_trip_bit_exact)
{
    enum { N = 13, ROWS = 77 };
    char path[256], tmp[300];
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(ROWS, N, 17);
    aq_hessian *h = new_hessian(ctx, N), *back = NULL;
    temp_path(path, sizeof path, "round.aqh");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* Empty first, then overwritten by the filled one. */
    ck_assert_int_eq(aq_hessian_save(h, path), AQ_OK);
    ck_assert_int_eq(aq_hessian_load(&back, ctx, path), AQ_OK);
    ck_assert_int_eq(aq_hessian_num_samples(back), 0);
    aq_hessian_free(back);

    add_rows(h, X, 0, ROWS, N);
    ck_assert_int_eq(aq_hessian_save(h, path), AQ_OK);
    ck_assert_int_eq(access(tmp, F_OK), -1); /* no temporary left behind */
    ck_assert_int_eq(aq_hessian_load(&back, ctx, path), AQ_OK);
    ck_assert_int_eq(aq_hessian_num_inputs(back), N);
    snapshot s = take_snapshot(h);
    assert_unchanged(back, s);
    aq_hessian_free(back);
    back = NULL;

    /* The layout of docs/formats.md: magic, version 1, sizes, packed upper triangle, CRC. */
    size_t size;
    unsigned char *img = read_whole(path, &size);
    ck_assert_uint_eq(size, 32 + 8 * N * (N + 1) / 2 + 4);
    ck_assert(memcmp(img, "AQHESS\0\1", 8) == 0);
    ck_assert_uint_eq(le32(img + 8), 1);
    ck_assert_uint_eq(le32(img + 16), N);
    ck_assert_uint_eq(le32(img + 24), ROWS);
    ck_assert_uint_eq(le32(img + size - 4), test_crc32(img, size - 4));
    double *M = matrix_of(h), v01;
    uint64_t bits = 0;
    for (int k = 7; k >= 0; k--)
        bits = bits << 8 | img[32 + 8 + k]; /* second packed value: H[0][1] */
    memcpy(&v01, &bits, sizeof v01);
    ck_assert(v01 == M[1]);
    free(M);
    free(img);

    /* Failures: missing directory on save (nothing created), missing file on load. */
    char nodir[300];
    temp_path(nodir, sizeof nodir, "no/such/dir/h.aqh");
    ck_assert_int_eq(aq_hessian_save(h, nodir), AQ_ERR_IO);
    ck_assert_int_eq(access(nodir, F_OK), -1);
    ck_assert_int_eq(aq_hessian_save(h, NULL), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_save(NULL, path), AQ_ERR_INVALID_ARG);
    assert_load_fails(nodir, AQ_ERR_IO);
    /* Renaming over a directory fails after the temporary was written: it must be removed. */
    char busy[256], busy_tmp[300], inside[300];
    temp_path(busy, sizeof busy, "busy");
    snprintf(busy_tmp, sizeof busy_tmp, "%s.tmp", busy);
    snprintf(inside, sizeof inside, "%s/keep", busy);
    ck_assert_int_eq(mkdir(busy, 0700), 0);
    write_whole(inside, (const unsigned char *)"x", 1);
    ck_assert_int_eq(aq_hessian_save(h, busy), AQ_ERR_IO);
    ck_assert_int_eq(access(busy_tmp, F_OK), -1);
    ck_assert_int_eq(access(inside, F_OK), 0);
    remove(inside);
    remove(busy);
    char dirpath[256];
    temp_path(dirpath, sizeof dirpath, "");
    assert_load_fails(dirpath, AQ_ERR_IO);
    ck_assert_int_eq(aq_hessian_load(&back, ctx, NULL), AQ_ERR_INVALID_ARG);
    ck_assert_int_eq(aq_hessian_load(NULL, ctx, path), AQ_ERR_INVALID_ARG);
    aq_hessian_free(back);
    aq_hessian_free(h);
    remove(path);
    free(X);
    aq_context_free(ctx);
    remove_temp_dir();
}
END_TEST

START_TEST(load_rejects_bad_files)
{
    enum { N = 5 };
    char path[256], bad[256];
    aq_context *ctx = tu_context(1, 0);
    float *X = tu_random_matrix(10, N, 1);
    aq_hessian *h = new_hessian(ctx, N);
    add_rows(h, X, 0, 10, N);
    temp_path(path, sizeof path, "good.aqh");
    temp_path(bad, sizeof bad, "bad.aqh");
    ck_assert_int_eq(aq_hessian_save(h, path), AQ_OK);
    size_t size;
    unsigned char *img = read_whole(path, &size);
    unsigned char *edit = malloc(size + 1);

    /* Every truncation length. */
    for (size_t len = 0; len < size; len++) {
        write_whole(bad, img, len);
        assert_load_fails(bad, AQ_ERR_FORMAT);
    }
    /* One extra byte. */
    memcpy(edit, img, size);
    edit[size] = 0;
    write_whole(bad, edit, size + 1);
    assert_load_fails(bad, AQ_ERR_FORMAT);
    /* A flipped byte anywhere (the middle, the header, the CRC itself). */
    const size_t flips[] = {size / 2, 3, 20, 28, size - 1};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        memcpy(edit, img, size);
        edit[flips[k]] ^= 0x10;
        write_whole(bad, edit, size);
        assert_load_fails(bad, AQ_ERR_FORMAT);
    }
    /* A foreign file of the same length. */
    memset(edit, 'x', size);
    write_whole(bad, edit, size);
    assert_load_fails(bad, AQ_ERR_FORMAT);
    /* A future version, a non-zero reserved field, inconsistent sizes: with a valid CRC. */
    struct { size_t offset; uint32_t value; } edits[] = {{8, 2}, {12, 1}, {16, N + 1}, {16, 0}, {20, 1}, {28, 1u << 31}};
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        memcpy(edit, img, size);
        set_le32(edit + edits[k].offset, edits[k].value);
        fix_crc(edit, size);
        write_whole(bad, edit, size);
        assert_load_fails(bad, AQ_ERR_FORMAT);
    }
    /* Valid CRC over invalid values: NaN off the diagonal, negative diagonal, and a non-zero
     * matrix that claims zero samples. */
    const double nan = NAN, neg = -1.0;
    memcpy(edit, img, size);
    memcpy(edit + 32 + 8 * 2, &nan, 8);
    fix_crc(edit, size);
    write_whole(bad, edit, size);
    assert_load_fails(bad, AQ_ERR_FORMAT);
    memcpy(edit, img, size);
    memcpy(edit + 32, &neg, 8);
    fix_crc(edit, size);
    write_whole(bad, edit, size);
    assert_load_fails(bad, AQ_ERR_FORMAT);
    memcpy(edit, img, size);
    memset(edit + 24, 0, 8);
    fix_crc(edit, size);
    write_whole(bad, edit, size);
    assert_load_fails(bad, AQ_ERR_FORMAT);
    /* The unedited image still loads (the edits above were what broke it). */
    write_whole(bad, img, size);
    aq_hessian *back = NULL;
    ck_assert_int_eq(aq_hessian_load(&back, ctx, bad), AQ_OK);
    aq_hessian_free(back);
    remove(bad);
    remove(path);
    free(edit);
    free(img);
    aq_hessian_free(h);
    free(X);
    aq_context_free(ctx);
    remove_temp_dir();
}
END_TEST

/* ------------------------------------------------------------------ allocation failure -- */

START_TEST(allocation_failures_leave_everything_unchanged)
{
    enum { N = 10, ROWS = 30 };
    failing_allocator fa = {0, 0, 0};
    aq_context *ctx = tu_failing_context(&fa);
    float *X = tu_random_matrix(ROWS, N, 6);
    double *H0 = naive_hessian(X, ROWS, N, N);
    char path[256];
    temp_path(path, sizeof path, "alloc.aqh");
    long base = fa.live;
    int st;
    aq_hessian *h;

    for (long k = 1;; k++) { /* create */
        h = (aq_hessian *)&fa;
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_create(&h, ctx, N);
        fa.fail_at = 0;
        if (st == AQ_OK)
            break;
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
        ck_assert_ptr_null(h);
        ck_assert_int_eq(fa.live, base);
    }
    aq_hessian_free(h);
    ck_assert_int_eq(fa.live, base);

    for (long k = 1;; k++) { /* create_from_matrix */
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_create_from_matrix(&h, ctx, H0, N, N, ROWS);
        fa.fail_at = 0;
        if (st == AQ_OK)
            break;
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
        ck_assert_ptr_null(h);
        ck_assert_int_eq(fa.live, base);
    }

    long with_h = fa.live;
    for (long k = 1;; k++) { /* add */
        snapshot s = take_snapshot(h);
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_add(h, X, ROWS, N);
        fa.fail_at = 0;
        ck_assert_int_eq(fa.live, with_h);
        if (st == AQ_OK) {
            free(s.matrix);
            break;
        }
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
        assert_unchanged(h, s);
    }
    ck_assert_int_eq(aq_hessian_num_samples(h), 2 * ROWS);

    aq_hessian *other = NULL;
    ck_assert_int_eq(aq_hessian_create_from_matrix(&other, ctx, H0, N, N, 5), AQ_OK);
    with_h = fa.live;
    for (long k = 1;; k++) { /* merge (allocates nothing today; the loop pins that down) */
        snapshot s = take_snapshot(h);
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_merge(h, other);
        fa.fail_at = 0;
        ck_assert_int_eq(fa.live, with_h);
        free(s.matrix);
        if (st == AQ_OK)
            break;
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
    }
    ck_assert_int_eq(aq_hessian_num_samples(h), 2 * ROWS + 5);
    aq_hessian_free(other);
    with_h = fa.live;

    for (long k = 1;; k++) { /* save: a failure leaves no file */
        remove(path);
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_save(h, path);
        fa.fail_at = 0;
        ck_assert_int_eq(fa.live, with_h);
        if (st == AQ_OK)
            break;
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
        ck_assert_int_eq(access(path, F_OK), -1);
    }
    aq_hessian *back;
    long before_load = fa.live;
    for (long k = 1;; k++) { /* load */
        back = (aq_hessian *)&fa;
        fa.fail_at = fa.n_allocs + k;
        st = aq_hessian_load(&back, ctx, path);
        fa.fail_at = 0;
        if (st == AQ_OK)
            break;
        ck_assert_int_eq(st, AQ_ERR_NOMEM);
        ck_assert_ptr_null(back);
        ck_assert_int_eq(fa.live, before_load);
    }
    snapshot s = take_snapshot(h);
    assert_unchanged(back, s);
    aq_hessian_free(back);
    aq_hessian_free(h);
    ck_assert_int_eq(fa.live, base);
    remove(path);
    free(H0);
    free(X);
    aq_context_free(ctx);
    remove_temp_dir();
    ck_assert_int_eq(fa.live, 0);
}
END_TEST

static Suite *hessian_suite(void)
{
    Suite *s = suite_create("hessian");
    struct { const char *name; const TTest *tests[6]; } cases[] = {
        {"accumulate", {crc_reference_is_zlib, add_matches_naive_for_every_split, add_large_batch_in_chunks,
                        merge_equals_one_accumulation, NULL}},
        {"concurrency", {concurrent_adds_equal_serial, opposite_concurrent_merges, NULL}},
        {"copies", {copies_with_damping_match_naive, empty_hessian_copies_zeros,
                    create_from_matrix_checks_and_continues, NULL}},
        {"bad_input", {add_rejects_bad_input_unchanged, create_rejects_huge_and_empty_sizes, NULL}},
        {"files", {save_load_round_trip_bit_exact, load_rejects_bad_files, NULL}},
        {"alloc_failure", {allocation_failures_leave_everything_unchanged, NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        TCase *tc = tcase_create(cases[c].name);
        tcase_set_timeout(tc, 120);
        for (int t = 0; cases[c].tests[t]; t++)
            tcase_add_test(tc, cases[c].tests[t]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return tu_run_suite(hessian_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

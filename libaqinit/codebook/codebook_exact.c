/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Exact codebooks with the codes fixed (REFERENCE-ALGORITHMS.md §1.7, §6 item 5): the normal
 * equations built and solved by Cholesky.
 *
 * Exact codebooks. Row r of output group p (tile row i = r mod g_o) is
 *   Ŵ_r = s_p A_p x_i,
 * where x_i ∈ R^Q, Q = M·K·g, stacks row i of every codeword (slot (m, k, d) = (m·K + k)·g + d)
 * and A_p (I × Q) puts x_i[(m, b(p,j,m), ·)] on the columns J_j, for every j and m. The loss
 * L = Σ_r (w_r − Ŵ_r) H (w_r − Ŵ_r)ᵀ is a quadratic in each x_i; its normal equations are
 *
 *   N x_i = b_i,   N = Σ_p s_p² A_pᵀ H A_p,   b_i = Σ_p s_p A_pᵀ H w_{p·g_o+i}          (C1)
 *   N[(m,k,d), (m',k',e)] = Σ_p s_p² Σ_{j,j'} [b(p,j,m) = k][b(p,j',m') = k'] H[jg+d, j'g+e]
 *   b_i[(m,k,d)]          = Σ_{(p,j): b(p,j,m) = k} s_p (W H)[p·g_o+i, jg+d]
 *
 * N does not depend on i: one factorisation serves the g_o right-hand sides. N is singular in
 * general (a codeword no tile uses gives a zero row; for M ≥ 2 adding v to every codeword of one
 * codebook and subtracting it from every codeword of another leaves Ŵ unchanged), so we solve
 *
 *   (N + λI) x_i = b_i + λ x_i^old,   λ = 1e-9 · mean diag(N)                              (C2)
 *
 * i.e. least squares with a tiny ridge towards the old codebooks: an unused codeword keeps its
 * old value exactly and the gauge directions stay where they were. (C2) minimises
 * L + λ‖x − x_old‖², so L(x_new) ≤ L(x_old); the change is re-checked in double through the
 * Cholesky factor U of N + λI (xᵀNx = ‖Ux‖² − λ‖x‖²) after rounding x to float, and a row i
 * whose loss would grow keeps its old codebook row.
 * Cost and layout of the build: each tile (p, j) using (m, k) adds s_p²·H_{jj'} at the block
 * (m, k)×(m', b(p,j',m')) for every j' and m' — P·J²·M² blocks of g² (≈ M²·O·I²/g_o
 * multiply-adds), scattered. N is built per codeword row block (threads own disjoint row
 * blocks, so the sums are deterministic), from an inverted index of the tiles using each
 * codeword listed by input group j (each block H_{jj'} is read once for all the tiles sharing
 * j); only the blocks of codewords (m', k') >= (m, k) are built and the lower triangle is
 * their mirror. If the
 * Cholesky factorisation fails, λ grows ×1000 (twice, to 1e-3·mean diag) before
 * AQ_ERR_NOT_PSD (H indefinite).
 * */
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "codebook/codebook.h"
#include "core/kernel.h"

#if AQI_VECTORS && (defined(__clang__) || __GNUC__ >= 9) /* __builtin_convertvector */
#  define CONVERT_VECTORS 1
typedef double vd4 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
#else
#  define CONVERT_VECTORS 0
#endif

#define RIDGE_REL 1e-9
#define PANEL_COLS 512
#define BLOCK_ROWS 256

/* ------------------------------------------------------------------------------------------ */
/* X·H in double, by column panels of H and row blocks of X */

typedef void (*rows_fill_fn)(void *arg, int64_t r0, int64_t r1, double *dst, int64_t ldd);
/* Receives rows [r0, r1) × columns [c0, c1) of X·H (leading dimension ldxh) and the same rows
 * of X (leading dimension ldx, all columns). */
typedef void (*xh_consume_fn)(void *arg, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                              const double *XH, int64_t ldxh, const double *X, int64_t ldx);

static int gemm_xh_double(aq_context *ctx, const float *H, int64_t ncols, int64_t n_rows,
                          int64_t row_multiple, int64_t col_multiple, rows_fill_fn fill,
                          xh_consume_fn consume, void *arg)
{
    int64_t pw = PANEL_COLS / col_multiple * col_multiple;
    int64_t rb = BLOCK_ROWS / row_multiple * row_multiple;
    if (pw < col_multiple)
        pw = col_multiple;
    if (pw > ncols)
        pw = ncols;
    if (rb < row_multiple)
        rb = row_multiple;
    if (rb > n_rows)
        rb = n_rows;
    double *Hd = aqi_alloc(ctx, (size_t)ncols * (size_t)pw * sizeof(double));
    double *Xd = Hd ? aqi_alloc(ctx, (size_t)rb * (size_t)ncols * sizeof(double)) : NULL;
    double *out = Xd ? aqi_alloc(ctx, (size_t)rb * (size_t)pw * sizeof(double)) : NULL;
    if (!out) {
        aqi_free(ctx, Hd);
        aqi_free(ctx, Xd);
        return AQ_ERR_NOMEM;
    }
    for (int64_t c0 = 0; c0 < ncols; c0 += pw) {
        int64_t c1 = c0 + pw < ncols ? c0 + pw : ncols;
        for (int64_t a = 0; a < ncols; a++)
            for (int64_t c = c0; c < c1; c++)
                Hd[a * pw + (c - c0)] = H[a * ncols + c];
        for (int64_t r0 = 0; r0 < n_rows; r0 += rb) {
            int64_t r1 = r0 + rb < n_rows ? r0 + rb : n_rows;
            fill(arg, r0, r1, Xd, ncols);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)(c1 - c0),
                        (int)ncols, 1.0, Xd, (int)ncols, Hd, (int)pw, 0.0, out, (int)pw);
            consume(arg, r0, r1, c0, c1, out, pw, Xd, ncols);
        }
    }
    aqi_free(ctx, Hd);
    aqi_free(ctx, Xd);
    aqi_free(ctx, out);
    return AQ_OK;
}

typedef struct fill_arg {
    const aqi_layer *layer;
    const aq_quant *q;
    double *acc;  /* consumer output: the right-hand sides b_i */
} fill_arg;

static void fill_W(void *arg, int64_t r0, int64_t r1, double *dst, int64_t ldd)
{
    fill_arg *fa = arg;
    const aq_quant *q = fa->q;
    for (int64_t r = r0; r < r1; r++) {
        const float *w = fa->layer->W + r * fa->layer->ld;
        for (int64_t c = 0; c < q->cols; c++)
            dst[(r - r0) * ldd + c] = w[c];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Exact codebooks */

typedef struct exact_ws {
    const aqi_layer *layer;
    const aq_quant *q;
    int64_t Q;
    double *N;            /* Q × Q */
    int32_t *slot_of;     /* [P][J][M]: (m·K + b(p,j,m))·g, the column of a tile's codeword */
    float *Hb;            /* H block-major: [J][J][g][g] */
    double *tmp;          /* [n_workers][g·Q] per-worker transposition buffers */
    int n_workers;
    double *rhs;          /* [g_o][Q]: b_i */
    int64_t *offsets;     /* [M·K + 1] into tile_p / tile_j */
    int32_t *tile_p;      /* output group p of each use of a codeword, grouped by codeword */
    int32_t *tile_j;      /* its input group j (increasing within a codeword) */
    int64_t *task_begin;  /* [n_tasks + 1] codeword ranges of equal work */
} exact_ws;

/* dst[0..n) += w · src[0..n) (double += double · float): the block additions of (C1). */
static inline void axpy_f32(double *dst, double w, const float *src, int64_t n)
{
    int64_t x = 0;
#if CONVERT_VECTORS
    vd4 wv = (vd4){0} + w, dv;
    vf4 fv;
    for (; x + 4 <= n; x += 4) {
        LOAD_VEC(fv, src + x);
        LOAD_VEC(dv, dst + x);
        dv += wv * __builtin_convertvector(fv, vd4);
        STORE_VEC(dst + x, dv);
    }
#endif
    for (; x < n; x++)
        dst[x] += w * (double)src[x];
}

/* N rows of codewords [cw0, cw1) (C1): every tile (p, j) using codeword (m, k) adds
 * s_p² H_{j j'} (the g × g block of H at input groups j, j') to the block (m', b(p,j',m')) of
 * the codeword's g rows, for every j' and m', if (m', k') >= (m, k): the upper triangle, the
 * rest is its mirror.
 * A codeword's tiles are listed by input group j, so each block H_{j j'} is loaded once (from
 * the block-major copy Hb) and added to the blocks of all tiles sharing j. While a codeword's
 * rows are built they are held block-major ([codeword][g][g], every addition g² contiguous
 * values); they are transposed to N's row-major layout at the end. @p tmp holds g·Q doubles. */
AQI_KERNEL
static void build_normal_rows(const exact_ws *ew, int64_t cw0, int64_t cw1, double *tmp)
{
    const aq_quant *q = ew->q;
    const int64_t J = q->n_in_groups, Q = ew->Q, JM = J * q->M;
    const int32_t g = q->g, M = q->M;
    const int64_t gg = (int64_t)g * g;
    for (int64_t cw = cw0; cw < cw1; cw++) {
        const int32_t m = (int32_t)(cw / q->K);
        double *rows = ew->N + cw * g * Q; /* block-major while building */
        for (int64_t u = ew->offsets[cw], u_end; u < ew->offsets[cw + 1]; u = u_end) {
            const int64_t j = ew->tile_j[u];
            for (u_end = u + 1; u_end < ew->offsets[cw + 1] && ew->tile_j[u_end] == j; u_end++)
                ;
            for (int64_t j2 = 0; j2 < J; j2++) {
                const float *hb = ew->Hb + (j * J + j2) * gg;
                for (int64_t t = u; t < u_end; t++) {
                    const int64_t p = ew->tile_p[t];
                    const double w = (double)q->scales[p] * (double)q->scales[p];
                    const int32_t *slot = ew->slot_of + p * JM + j2 * M;
                    /* upper triangle only: blocks of codewords >= cw */
                    if (slot[m] >= cw * g)
                        axpy_f32(rows + (int64_t)slot[m] * g, w, hb, gg);
                    for (int32_t m2 = m + 1; m2 < M; m2++)
                        axpy_f32(rows + (int64_t)slot[m2] * g, w, hb, gg);
                }
            }
        }
        /* block-major [codeword c][d][e] → row-major [d][c·g + e] */
        memcpy(tmp, rows, sizeof(double) * (size_t)(g * Q));
        for (int64_t c = 0; c < Q / g; c++)
            for (int32_t d = 0; d < g; d++)
                memcpy(rows + d * Q + c * g, tmp + (c * g + d) * g, sizeof(double) * (size_t)g);
    }
}

static int build_normal_range(void *arg, int64_t begin, int64_t end, int worker)
{
    exact_ws *ew = arg;
    if (worker >= ew->n_workers)
        return AQ_ERR_INTERNAL; /* the context's thread count grew during the call */
    build_normal_rows(ew, ew->task_begin[begin], ew->task_begin[end],
                      ew->tmp + (size_t)worker * (size_t)ew->Q * (size_t)ew->q->g);
    return 0;
}

/* b_i[(m,k,d)] += s_p (W H)[p·g_o+i, jg+d] (C1) for the rows and columns of one chunk. */
static void consume_rhs(void *arg, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                        const double *XH, int64_t ldxh, const double *X, int64_t ldx)
{
    fill_arg *fa = arg;
    const aq_quant *q = fa->q;
    const int32_t g = q->g, go = q->go;
    const int64_t Q = (int64_t)q->M * q->K * g;
    (void)X;
    (void)ldx;
    for (int64_t r = r0; r < r1; r++) {
        int64_t p = r / go, i = r % go;
        double s = q->scales[p];
        for (int64_t j = c0 / g; j < c1 / g; j++)
            for (int32_t m = 0; m < q->M; m++) {
                int64_t base = ((int64_t)m * q->K + aqi_code_get(q, p, j, m)) * g;
                const double *src = XH + (r - r0) * ldxh + (j * g - c0);
                for (int32_t d = 0; d < g; d++)
                    fa->acc[i * Q + base + d] += s * src[d];
            }
    }
}

/* Inverted index of the tiles using each codeword, and codeword ranges of equal work. */
static int build_index(aq_context *ctx, exact_ws *ew, int n_tasks)
{
    const aq_quant *q = ew->q;
    const int64_t MK = (int64_t)q->M * q->K, J = q->n_in_groups;
    size_t n_uses = (size_t)q->n_out_groups * (size_t)J * (size_t)q->M;
    ew->offsets = aqi_calloc(ctx, (size_t)MK + 1, sizeof(int64_t));
    ew->tile_p = ew->offsets ? aqi_alloc(ctx, (n_uses ? n_uses : 1) * sizeof(int32_t)) : NULL;
    ew->tile_j = ew->tile_p ? aqi_alloc(ctx, (n_uses ? n_uses : 1) * sizeof(int32_t)) : NULL;
    ew->task_begin = ew->tile_j ? aqi_alloc(ctx, ((size_t)n_tasks + 1) * sizeof(int64_t)) : NULL;
    ew->slot_of = ew->task_begin ? aqi_alloc(ctx, (n_uses ? n_uses : 1) * sizeof(int32_t)) : NULL;
    if (!ew->slot_of)
        return AQ_ERR_NOMEM;
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t j = 0; j < J; j++)
            for (int32_t m = 0; m < q->M; m++)
                ew->slot_of[(p * J + j) * q->M + m] = (int32_t)(((int64_t)m * q->K + aqi_code_get(q, p, j, m)) * q->g);
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t j = 0; j < J; j++)
            for (int32_t m = 0; m < q->M; m++)
                ew->offsets[(int64_t)m * q->K + aqi_code_get(q, p, j, m) + 1]++;
    for (int64_t c = 0; c < MK; c++)
        ew->offsets[c + 1] += ew->offsets[c];
    {
        int64_t *fill = aqi_alloc(ctx, (size_t)MK * sizeof(int64_t));
        if (!fill)
            return AQ_ERR_NOMEM;
        memcpy(fill, ew->offsets, (size_t)MK * sizeof(int64_t));
        for (int64_t j = 0; j < J; j++) /* by input group, then output group */
            for (int64_t p = 0; p < q->n_out_groups; p++)
                for (int32_t m = 0; m < q->M; m++) {
                    int64_t at = fill[(int64_t)m * q->K + aqi_code_get(q, p, j, m)]++;
                    ew->tile_p[at] = (int32_t)p;
                    ew->tile_j[at] = (int32_t)j;
                }
        aqi_free(ctx, fill);
    }
    /* task t starts at the first codeword whose uses begin at or after t/n_tasks of the total */
    for (int t = 0, cw = 0; t <= n_tasks; t++) {
        int64_t target = (int64_t)((double)ew->offsets[MK] * t / n_tasks);
        while (cw < MK && ew->offsets[cw] < target)
            cw++;
        ew->task_begin[t] = t == n_tasks ? MK : cw;
    }
    return AQ_OK;
}

/* q(x) = xᵀ N x − 2 bᵀx via the factor U of N + λI (upper, row-major). */
static double quad_value(const double *U, int64_t Q, double lambda, const double *x,
                         const double *b, double *tmp)
{
    double xx = 0.0, bx = 0.0, ux = 0.0;
    memcpy(tmp, x, (size_t)Q * sizeof(double));
    cblas_dtrmv(CblasRowMajor, CblasUpper, CblasNoTrans, CblasNonUnit, (int)Q, U, (int)Q, tmp, 1);
    for (int64_t i = 0; i < Q; i++) {
        ux += tmp[i] * tmp[i];
        xx += x[i] * x[i];
        bx += b[i] * x[i];
    }
    return ux - lambda * xx - 2.0 * bx;
}

static void free_exact(aq_context *ctx, exact_ws *ew, double *diag, double *xold, double *work)
{
    aqi_free(ctx, ew->N);
    aqi_free(ctx, ew->rhs);
    aqi_free(ctx, ew->offsets);
    aqi_free(ctx, ew->tile_p);
    aqi_free(ctx, ew->tile_j);
    aqi_free(ctx, ew->task_begin);
    aqi_free(ctx, ew->slot_of);
    aqi_free(ctx, ew->tmp);
    aqi_free(ctx, ew->Hb);
    aqi_free(ctx, diag);
    aqi_free(ctx, xold);
    aqi_free(ctx, work);
}

int aqi_opt_codebooks_exact(const aqi_layer *layer, aq_quant *q)
{
    aq_context *ctx = layer->ctx;
    exact_ws ew;
    const int32_t g = q->g, go = q->go;
    const int64_t Q = (int64_t)q->M * q->K * g;
    size_t nn;
    double *diag = NULL, *xold = NULL, *work = NULL;
    int st, n_tasks = 4 * aqi_num_workers(ctx);

    memset(&ew, 0, sizeof ew);
    ew.layer = layer;
    ew.q = q;
    ew.Q = Q;
    if (Q > INT32_MAX || aqi_mul_size(&nn, (size_t)Q, (size_t)Q) || aqi_bytes(ctx, &nn, (int64_t)nn, sizeof(double), "exact codebook update"))
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "exact codebook update: %lld x %lld normal equations overflow",
                        (long long)Q, (long long)Q);
    ew.N = aqi_calloc(ctx, (size_t)Q * (size_t)Q, sizeof(double));
    ew.rhs = ew.N ? aqi_calloc(ctx, (size_t)Q * (size_t)go, sizeof(double)) : NULL;
    diag = ew.rhs ? aqi_alloc(ctx, (size_t)Q * sizeof(double)) : NULL;
    xold = diag ? aqi_alloc(ctx, (size_t)Q * (size_t)go * sizeof(double)) : NULL;
    work = xold ? aqi_alloc(ctx, (size_t)Q * sizeof(double)) : NULL;
    st = work ? build_index(ctx, &ew, n_tasks) : AQ_ERR_NOMEM;
    if (!st) {
        size_t n = (size_t)q->cols;
        ew.n_workers = aqi_num_workers(ctx);
        ew.tmp = aqi_alloc(ctx, (size_t)ew.n_workers * (size_t)Q * (size_t)g * sizeof(double));
        ew.Hb = ew.tmp ? aqi_alloc(ctx, n * n * sizeof(float)) : NULL;
        if (!ew.Hb)
            st = AQ_ERR_NOMEM;
        else /* Hb[j][j2][d][e] = H[jg+d][j2·g+e] */
            for (size_t r = 0; r < n; r++)
                for (size_t c = 0; c < n; c++)
                    ew.Hb[(((r / (size_t)g) * (n / (size_t)g) + c / (size_t)g) * (size_t)g + r % (size_t)g)
                          * (size_t)g + c % (size_t)g] = layer->H[r * n + c];
    }
    if (st) {
        free_exact(ctx, &ew, diag, xold, work);
        return st;
    }
    st = aqi_parallel_for(ctx, n_tasks, build_normal_range, &ew);
    if (st == AQ_ERR_INTERNAL)
        st = aqi_fail(ctx, st, "exact codebook update: the context's thread count changed during the call");
    aqi_free(ctx, ew.Hb);
    ew.Hb = NULL;
    if (!st) {
        fill_arg fa = {layer, q, ew.rhs};
        st = gemm_xh_double(ctx, layer->H, q->cols, q->rows, 1, g, fill_W, consume_rhs, &fa);
    }
    if (st) {
        free_exact(ctx, &ew, diag, xold, work);
        return st;
    }

    /* the lower triangle mirrors the upper one (only codewords (m', k') >= (m, k) were built) */
    for (int64_t i = 0; i < Q; i++)
        for (int64_t c = i + 1; c < Q; c++)
            ew.N[c * Q + i] = ew.N[i * Q + c];
    double mean_diag = 0.0;
    for (int64_t i = 0; i < Q; i++) {
        diag[i] = ew.N[i * Q + i];
        mean_diag += diag[i];
    }
    mean_diag /= (double)Q;
    if (!(mean_diag > 0.0) || !isfinite(mean_diag)) {
        /* H = 0 or every scale 0: L does not depend on the codebooks */
        free_exact(ctx, &ew, diag, xold, work);
        return AQ_OK;
    }
    for (int64_t c = 0; c < Q / g; c++)
        for (int32_t i = 0; i < go; i++)
            for (int32_t d = 0; d < g; d++)
                xold[i * Q + c * g + d] = q->codebooks[(c * go + i) * g + d];

    /* factor N + λI (C2); on failure restore the upper triangle from the lower one and
     * retry with a larger ridge. Row-major upper = column-major lower, so LAPACK works on N in
     * place (no transposed copy); the factor U (row-major upper) has N + λI = UᵀU. */
    double lambda = RIDGE_REL * mean_diag;
    lapack_int info = -1;
    for (int attempt = 0; attempt < 3 && info != 0; attempt++, lambda *= 1e3) {
        for (int64_t i = 0; i < Q; i++) {
            for (int64_t c = i + 1; c < Q; c++)
                ew.N[i * Q + c] = ew.N[c * Q + i];
            ew.N[i * Q + i] = diag[i] + lambda;
        }
        info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)Q, ew.N, (lapack_int)Q);
        if (info == 0)
            break;
    }
    if (info != 0) {
        free_exact(ctx, &ew, diag, xold, work);
        return aqi_fail(ctx, AQ_ERR_NOT_PSD, "exact codebook update: the normal equations are not "
                        "positive definite (LAPACK dpotrf info %d); is H positive semidefinite?", (int)info);
    }
    /* solve into a copy of b + λ x_old, keep b for the checks */
    double *xnew = aqi_alloc(ctx, (size_t)Q * (size_t)go * sizeof(double));
    if (!xnew) {
        free_exact(ctx, &ew, diag, xold, work);
        return AQ_ERR_NOMEM;
    }
    for (int64_t i = 0; i < Q * go; i++)
        xnew[i] = ew.rhs[i] + lambda * xold[i];
    info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)Q, (lapack_int)go, ew.N, (lapack_int)Q,
                          xnew, (lapack_int)Q);
    if (info != 0) {
        aqi_free(ctx, xnew);
        free_exact(ctx, &ew, diag, xold, work);
        return aqi_fail(ctx, AQ_ERR_INTERNAL, "exact codebook update: dpotrs info %d", (int)info);
    }
    /* per codeword row i: accept the float-rounded solution only if it does not increase L */
    for (int32_t i = 0; i < go; i++) {
        const double *xo = xold + i * Q, *bi = ew.rhs + i * Q;
        double *xn = xnew + i * Q;
        int finite = 1;
        for (int64_t c = 0; c < Q; c++) {
            xn[c] = (double)(float)xn[c];
            finite &= isfinite(xn[c]);
        }
        if (!finite || quad_value(ew.N, Q, lambda, xn, bi, work) > quad_value(ew.N, Q, lambda, xo, bi, work)) {
            aqi_log(ctx, AQ_LOG_DEBUG, "exact codebook update: row %d kept (no decrease)", (int)i);
            continue;
        }
        for (int64_t c = 0; c < Q / g; c++)
            for (int32_t d = 0; d < g; d++)
                q->codebooks[(c * go + i) * g + d] = (float)xn[c * g + d];
    }
    aqi_free(ctx, xnew);
    free_exact(ctx, &ew, diag, xold, work);
    return AQ_OK;
}


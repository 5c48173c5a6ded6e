/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Codebooks by preconditioned conjugate gradients on the normal equations (C1) of
 * codebook_exact.c, without forming N (REFERENCE-ALGORITHMS.md §1.7; issue 15).
 *
 * With x the codebooks (layout [M·K codewords][g_o rows i][g]; the g_o rows are independent
 * problems sharing N), both products CG needs are one pass over the layer's rows:
 *
 *   r = b − N x = Aᵀ s (W − Ŵ) H          scatter of s_p·((W − Ŵ) H)[tile] to its codewords  (C4)
 *   N d = Aᵀ s (Ŵ(d) H)                   the same with W = 0 and the codebooks replaced by d
 *
 * where Ŵ(d) is the scaled reconstruction with codebooks d (aqi_cb_product_apply, codebook_product.c):
 * O·I² multiply-adds at sgemm speed against the O·I²·M² scattered ones of building N, and no
 * Q × Q matrix (Q = M·K·g, 524,288 at 1x16 g8).
 *
 * Preconditioner: block Jacobi with one g × g block per codeword,
 *   B_c = Σ_{tiles (p, j) using c} s_p² H_jj   (+ a 1e-9·tr/g ridge; identity if unused)     (C5)
 * i.e. the diagonal block of N without the cross terms of a codeword used twice in a row or of
 * two codebooks; Cholesky per block.
 *
 * Per row i, PCG from the current codebooks (warm start): z = B⁻¹r, d = z + β d,
 * α = rᵀz / dᵀNd. The loss is L(x) = xᵀNx − 2bᵀx + const, so a step α d changes it by
 *   ΔL = −2α rᵀd + α² dᵀNd = −α rᵀz  (≤ 0)                                                  (C6)
 * A row stops when dᵀNd ≤ 0 (H not positive on that direction) or rᵀz vanishes. At the end the
 * new codebooks are rounded to float and the change of L for the rounded step δ is evaluated
 * from the quadratic, ΔL = −2 r₀ᵀδ + δᵀ(Nδ) with Nδ = Σ α_k N d_k tracked in double; a row whose
 * change is not negative keeps its old codebooks. The products use float sgemm (as the loss
 * aqi_opt_loss does), so the check is exact up to float-GEMM rounding (relative ~1e-6 of the
 * change). */
#include <math.h>
#include <string.h>


#include "codebook/codebook.h"
#include "core/comm.h"

typedef struct cg_ws {
    const aq_quant *q;
    const aqi_layer *layer;
    double *Binv; /* [M·K][g][g]: Cholesky factors of (C5), lower, row-major */
} cg_ws;

/* In-place Cholesky of a g × g block (lower, row-major); 0 if not positive definite. */
static int small_cholesky(double *A, int32_t g)
{
    for (int32_t c = 0; c < g; c++) {
        double d = A[c * g + c];
        for (int32_t k = 0; k < c; k++)
            d -= A[c * g + k] * A[c * g + k];
        if (!(d > 0.0) || !isfinite(d))
            return 0;
        A[c * g + c] = sqrt(d);
        for (int32_t r = c + 1; r < g; r++) {
            double v = A[r * g + c];
            for (int32_t k = 0; k < c; k++)
                v -= A[r * g + k] * A[c * g + k];
            A[r * g + c] = v / A[c * g + c];
        }
        for (int32_t k = c + 1; k < g; k++)
            A[c * g + k] = 0.0;
    }
    return 1;
}

/* The factors of (C5). */
static void build_preconditioner(cg_ws *ws)
{
    const aq_quant *q = ws->q;
    const int32_t g = q->g;
    const int64_t gg = (int64_t)g * g, MK = (int64_t)q->M * q->K, n = q->cols;
    memset(ws->Binv, 0, (size_t)(MK * gg) * sizeof(double));
    for (int64_t p = 0; p < q->n_out_groups; p++) {
        const double w = (double)q->scales[p] * (double)q->scales[p];
        for (int64_t j = 0; j < q->n_in_groups; j++) {
            const float *Hjj = ws->layer->H + j * g * n + j * g;
            for (int32_t m = 0; m < q->M; m++) {
                double *B = ws->Binv + ((int64_t)m * q->K + aqi_code_get(q, p, j, m)) * gg;
                for (int32_t a = 0; a < g; a++)
                    for (int32_t b = 0; b < g; b++)
                        B[a * g + b] += w * (double)Hjj[a * n + b];
            }
        }
    }
    for (int64_t c = 0; c < MK; c++) {
        double *B = ws->Binv + c * gg, tr = 0.0;
        for (int32_t a = 0; a < g; a++)
            tr += B[a * g + a];
        int ok = tr > 0.0 && isfinite(tr);
        if (ok) {
            for (int32_t a = 0; a < g; a++)
                B[a * g + a] += 1e-9 * tr / g;
            ok = small_cholesky(B, g);
        }
        if (!ok) { /* unused codeword or a block H does not make positive: identity */
            memset(B, 0, (size_t)gg * sizeof(double));
            for (int32_t a = 0; a < g; a++)
                B[a * g + a] = 1.0;
        }
    }
}

/* z = B⁻¹ r per codeword and row (two triangular solves with the factor L, B = L Lᵀ). */
static void apply_preconditioner(const cg_ws *ws, const double *r, double *z)
{
    const aq_quant *q = ws->q;
    const int32_t g = q->g, go = q->go;
    const int64_t gg = (int64_t)g * g, MK = (int64_t)q->M * q->K;
    for (int64_t c = 0; c < MK; c++) {
        const double *Lc = ws->Binv + c * gg;
        for (int32_t i = 0; i < go; i++) {
            const double *rv = r + (c * go + i) * g;
            double *zv = z + (c * go + i) * g;
            for (int32_t a = 0; a < g; a++) { /* L y = r */
                double v = rv[a];
                for (int32_t k = 0; k < a; k++)
                    v -= Lc[a * g + k] * zv[k];
                zv[a] = v / Lc[a * g + a];
            }
            for (int32_t a = g - 1; a >= 0; a--) { /* Lᵀ z = y */
                double v = zv[a];
                for (int32_t k = a + 1; k < g; k++)
                    v -= Lc[k * g + a] * zv[k];
                zv[a] = v / Lc[a * g + a];
            }
        }
    }
}

/* Per row i of the codewords: Σ_{c,d} a[c][i][d]·b[c][i][d] into out[i]. */
static void row_dots(const aq_quant *q, const double *a, const double *b, double *out)
{
    const int64_t MK = (int64_t)q->M * q->K;
    const int32_t g = q->g, go = q->go;
    for (int32_t i = 0; i < go; i++)
        out[i] = 0.0;
    for (int64_t c = 0; c < MK; c++)
        for (int32_t i = 0; i < go; i++) {
            const double *x = a + (c * go + i) * g, *y = b + (c * go + i) * g;
            double s = 0.0;
            for (int32_t d = 0; d < g; d++)
                s += x[d] * y[d];
            out[i] += s;
        }
}

/* Rows i whose rounded codebooks are finite and lower L by (C6): copied into q. */
static void commit_rows(aq_context *ctx, aq_quant *q, const double *x, const double *r0,
                        const double *Ndelta, double *delta, double *lin, double *quad)
{
    const size_t n = q->codebooks_count, MK = (size_t)q->M * (size_t)q->K;
    const int32_t g = q->g, go = q->go;
    for (size_t k = 0; k < n; k++)
        delta[k] = (double)(float)x[k] - (double)q->codebooks[k];
    row_dots(q, r0, delta, lin);
    row_dots(q, delta, Ndelta, quad);
    for (int32_t i = 0; i < go; i++) {
        double dL = -2.0 * lin[i] + quad[i];
        int finite = 1;
        for (size_t c = 0; c < MK; c++)
            for (int32_t e = 0; e < g; e++)
                finite &= isfinite((float)x[(c * (size_t)go + (size_t)i) * (size_t)g + (size_t)e]);
        if (!finite || !(dL < 0.0)) {
            aqi_log(ctx, AQ_LOG_DEBUG, "cg codebook update: row %d kept (change %g)", (int)i, dL);
            continue;
        }
        for (size_t c = 0; c < MK; c++)
            for (int32_t e = 0; e < g; e++) {
                size_t k = (c * (size_t)go + (size_t)i) * (size_t)g + (size_t)e;
                q->codebooks[k] = (float)x[k];
            }
    }
}

int aqi_opt_codebooks_cg(const aqi_layer *layer, aq_quant *q, int64_t iterations)
{
    aq_context *ctx = layer->ctx;
    const int32_t g = q->g, go = q->go;
    const size_t n = q->codebooks_count, gg = (size_t)g * (size_t)g;
    const size_t MK = (size_t)q->M * (size_t)q->K;
    cg_ws ws = {q, layer, NULL};
    aqi_cb_product pr;

    if (iterations <= 0)
        return AQ_OK;
    int st = aqi_cb_product_init(&pr, layer, q);
    if (st != AQ_OK)
        return st;
    /* vectors in double, layout [M·K][g_o][g]: x, r, r₀, z, d, Nd, Nδ = Σ α·Nd; per row i:
     * rᵀz (old and new), dᵀNd, rᵀd, δᵀNδ; the direction as float codebooks; rows still iterating */
    double *x = aqi_alloc(ctx, 7 * n * sizeof(double));
    double *scal = x ? aqi_alloc(ctx, 5 * (size_t)go * sizeof(double)) : NULL;
    float *dirf = scal ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    unsigned char *active = dirf ? aqi_alloc(ctx, (size_t)go) : NULL;
    ws.Binv = active ? aqi_alloc(ctx, MK * gg * sizeof(double)) : NULL;
    st = aqi_comm_agree(ctx, "the codebook update", ws.Binv ? AQ_OK : AQ_ERR_NOMEM);
    if (st)
        goto done;
    double *r = x + n, *r0 = r + n, *z = r0 + n, *d = z + n, *Nd = d + n, *Ndelta = Nd + n;
    double *rz = scal, *rz_new = rz + go, *dNd = rz_new + go, *rd = dNd + go, *quad = rd + go;

    for (size_t k = 0; k < n; k++)
        x[k] = q->codebooks[k];
    memset(Ndelta, 0, n * sizeof(double));
    build_preconditioner(&ws);
    if ((st = aqi_cb_product_apply(&pr, q->codebooks, 1, r, NULL)) != AQ_OK) /* r₀ = b − N x₀ */
        goto done;
    memcpy(r0, r, n * sizeof(double));
    apply_preconditioner(&ws, r, z);
    memcpy(d, z, n * sizeof(double));
    row_dots(q, r, z, rz);
    for (int32_t i = 0; i < go; i++)
        active[i] = rz[i] > 0.0 && isfinite(rz[i]);

    for (int64_t it = 0; it < iterations; it++) {
        int any = 0;
        for (int32_t i = 0; i < go; i++)
            any |= active[i];
        if (!any)
            break;
        /* the product sees the direction in float: use exactly that direction; rows that
         * stopped get a zero direction */
        for (size_t c = 0; c < MK; c++)
            for (int32_t i = 0; i < go; i++)
                for (int32_t e = 0; e < g; e++) {
                    size_t k = (c * (size_t)go + (size_t)i) * (size_t)g + (size_t)e;
                    dirf[k] = active[i] ? (float)d[k] : 0.0f;
                    d[k] = dirf[k];
                }
        if ((st = aqi_cb_product_apply(&pr, dirf, 0, Nd, NULL)) != AQ_OK)
            goto done;
        row_dots(q, d, Nd, dNd);
        row_dots(q, r, d, rd);
        for (int32_t i = 0; i < go; i++)
            if (active[i] && !(dNd[i] > 0.0 && isfinite(dNd[i]) && rd[i] > 0.0))
                active[i] = 0; /* H not positive on d, or nothing left to gain */
        /* exact line minimum along d: α = rᵀd / dᵀNd, ΔL = −(rᵀd)²/dᵀNd (C6); then the
         * preconditioned residual and the next conjugate direction d = z + β d */
        for (size_t c = 0; c < MK; c++)
            for (int32_t i = 0; i < go; i++) {
                if (!active[i])
                    continue;
                const double a = rd[i] / dNd[i];
                const size_t o = (c * (size_t)go + (size_t)i) * (size_t)g;
                for (int32_t e = 0; e < g; e++) {
                    x[o + e] += a * d[o + e];
                    r[o + e] -= a * Nd[o + e];
                    Ndelta[o + e] += a * Nd[o + e];
                }
            }
        apply_preconditioner(&ws, r, z);
        row_dots(q, r, z, rz_new);
        for (size_t c = 0; c < MK; c++)
            for (int32_t i = 0; i < go; i++) {
                if (!active[i])
                    continue;
                const double beta = rz_new[i] / rz[i];
                const size_t o = (c * (size_t)go + (size_t)i) * (size_t)g;
                for (int32_t e = 0; e < g; e++)
                    d[o + e] = z[o + e] + beta * d[o + e];
            }
        for (int32_t i = 0; i < go; i++) {
            if (!(rz_new[i] > 0.0 && isfinite(rz_new[i])))
                active[i] = 0;
            rz[i] = rz_new[i];
        }
    }
    commit_rows(ctx, q, x, r0, Ndelta, z, rd, quad);
done:
    aqi_cb_product_free(&pr);
    aqi_free(ctx, x);
    aqi_free(ctx, scal);
    aqi_free(ctx, dirf);
    aqi_free(ctx, active);
    aqi_free(ctx, ws.Binv);
    return st;
}

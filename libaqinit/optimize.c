/* Layer optimisation, public entry points: aq_beam_search, aq_update_codebooks and
 * aq_optimize (aq_quantize_layer is in quantize_layer.c), plus the helpers shared by beam.c and
 * codebook_update.c (validation, reconstruction, the loss, working copies of a quant).
 *
 * Every entry point validates its arguments, copies H to float once, works on a duplicate of
 * the quant's arrays and copies them back only when everything succeeded, so a failure or a
 * cancellation leaves the quant exactly as it was. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "beam_internal.h"

#define LOSS_CHUNK_ROWS 256

/* ------------------------------------------------------------------------------------------ */
/* Shared helpers */

void aqi_opt_reconstruct(const aq_quant *q, int64_t p0, int64_t p1, float *out, int64_t ldo,
                         int with_scale)
{
    const int32_t g = q->g, go = q->go, M = q->M;
    for (int64_t p = p0; p < p1; p++) {
        float s = with_scale ? q->scales[p] : 1.0f;
        for (int32_t r = 0; r < go; r++) {
            float *row = out + ((p - p0) * go + r) * ldo;
            for (int64_t j = 0; j < q->n_in_groups; j++) {
                float *dst = row + j * g;
                const float *c = aqi_codeword(q, 0, aqi_code_get(q, p, j, 0)) + r * g;
                for (int32_t d = 0; d < g; d++)
                    dst[d] = c[d];
                for (int32_t m = 1; m < M; m++) {
                    c = aqi_codeword(q, m, aqi_code_get(q, p, j, m)) + r * g;
                    for (int32_t d = 0; d < g; d++)
                        dst[d] += c[d];
                }
                for (int32_t d = 0; d < g; d++)
                    dst[d] *= s;
            }
        }
    }
}

int aqi_opt_loss(const aqi_layer *layer, const aq_quant *q, double *loss, double *w_energy)
{
    aq_context *ctx = layer->ctx;
    const int64_t ncols = q->cols, go = q->go;
    int64_t chunk_groups = LOSS_CHUNK_ROWS / go < 1 ? 1 : LOSS_CHUNK_ROWS / go;
    if (chunk_groups > q->n_out_groups)
        chunk_groups = q->n_out_groups;
    size_t n = (size_t)(chunk_groups * go) * (size_t)ncols;
    float *X = aqi_alloc(ctx, n * sizeof(float));
    float *XH = X ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    double L = 0.0, E = 0.0;
    if (!XH) {
        aqi_free(ctx, X);
        return AQ_ERR_NOMEM;
    }
    for (int64_t p0 = 0; p0 < q->n_out_groups; p0 += chunk_groups) {
        int64_t p1 = p0 + chunk_groups < q->n_out_groups ? p0 + chunk_groups : q->n_out_groups;
        int64_t rows = (p1 - p0) * go;
        for (int pass = 0; pass < (w_energy ? 2 : 1); pass++) {
            /* pass 0: X = ΔW = W − Ŵ; pass 1: X = W */
            if (pass == 0)
                aqi_opt_reconstruct(q, p0, p1, X, ncols, 1);
            for (int64_t r = 0; r < rows; r++) {
                const float *w = layer->W + (p0 * go + r) * layer->ld;
                float *x = X + r * ncols;
                for (int64_t c = 0; c < ncols; c++)
                    x[c] = pass == 0 ? w[c] - x[c] : w[c];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ncols, (int)ncols, 1.0f,
                        X, (int)ncols, layer->H, (int)ncols, 0.0f, XH, (int)ncols);
            double acc = 0.0;
            for (size_t i = 0; i < (size_t)rows * (size_t)ncols; i++)
                acc += (double)X[i] * (double)XH[i];
            if (pass == 0)
                L += acc;
            else
                E += acc;
        }
    }
    aqi_free(ctx, X);
    aqi_free(ctx, XH);
    *loss = L;
    if (w_energy)
        *w_energy = E;
    return AQ_OK;
}

int aqi_opt_quant_dup(aq_context *ctx, aq_quant *copy, const aq_quant *src)
{
    *copy = *src;
    copy->codes = aqi_alloc(ctx, src->codes_bytes ? src->codes_bytes : 1);
    copy->codebooks = copy->codes ? aqi_alloc(ctx, src->codebooks_count * sizeof(float)) : NULL;
    copy->scales = copy->codebooks ? aqi_alloc(ctx, src->scales_count * sizeof(float)) : NULL;
    if (!copy->scales) {
        aqi_free(ctx, copy->codes);
        aqi_free(ctx, copy->codebooks);
        copy->codes = NULL;
        copy->codebooks = NULL;
        return AQ_ERR_NOMEM;
    }
    memcpy(copy->codes, src->codes, src->codes_bytes);
    memcpy(copy->codebooks, src->codebooks, src->codebooks_count * sizeof(float));
    memcpy(copy->scales, src->scales, src->scales_count * sizeof(float));
    return AQ_OK;
}

void aqi_opt_quant_commit(aq_quant *dst, const aq_quant *copy)
{
    memcpy(dst->codes, copy->codes, dst->codes_bytes);
    memcpy(dst->codebooks, copy->codebooks, dst->codebooks_count * sizeof(float));
    memcpy(dst->scales, copy->scales, dst->scales_count * sizeof(float));
}

void aqi_opt_quant_release(aq_context *ctx, aq_quant *copy)
{
    aqi_free(ctx, copy->codes);
    aqi_free(ctx, copy->codebooks);
    aqi_free(ctx, copy->scales);
    copy->codes = NULL;
    copy->codebooks = NULL;
    copy->scales = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation and setup of the public entry points */

int aqi_opt_validate(aq_context *ctx, const char *fn, const aq_quant *q, const float *W, int64_t ld,
                     const aq_hessian *H, int check_quant_arrays)
{
    size_t bytes;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!q || !W || !H)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: NULL %s", fn, !q ? "quant" : !W ? "W" : "H");
    if (ld < q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: leading dimension %lld < %lld columns", fn,
                        (long long)ld, (long long)q->cols);
    if (aq_hessian_num_inputs(H) != q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: H has %lld inputs but the quant has %lld columns", fn,
                        (long long)aq_hessian_num_inputs(H), (long long)q->cols);
    if (aq_hessian_num_samples(H) <= 0)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: the Hessian has no samples", fn);
    if (q->rows > INT_MAX || q->cols > INT_MAX || ld > INT_MAX)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: %lld x %lld (ld %lld) exceeds the BLAS index range",
                        fn, (long long)q->rows, (long long)q->cols, (long long)ld);
    if (aqi_bytes(ctx, &bytes, q->cols, (size_t)q->cols * sizeof(double), fn))
        return AQ_ERR_OVERFLOW;
    if (!aqi_all_finite_f32(W, q->rows, q->cols, ld))
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: W contains NaN or Inf", fn);
    if (!check_quant_arrays)
        return AQ_OK;
    if (!aqi_all_finite_f32(q->codebooks, 1, (int64_t)q->codebooks_count, (int64_t)q->codebooks_count)
        || !aqi_all_finite_f32(q->scales, 1, (int64_t)q->scales_count, (int64_t)q->scales_count))
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: the quant's codebooks or scales contain NaN or Inf", fn);
    for (int64_t p = 0; p < q->n_out_groups; p++)
        for (int64_t j = 0; j < q->n_in_groups; j++)
            for (int32_t m = 0; m < q->M; m++)
                if (aqi_code_get(q, p, j, m) >= (uint32_t)q->K)
                    return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: code %u at (%lld, %lld, %d) is >= K = %d",
                                    fn, aqi_code_get(q, p, j, m), (long long)p, (long long)j, (int)m,
                                    (int)q->K);
    return AQ_OK;
}

/* A PSD H has PSD diagonal blocks: each g × g block H_jj must admit a Cholesky factorisation
 * after a relative jitter of 1e-6·mean(diag H_jj) (plus the smallest normal number, for a zero
 * block). A cheap necessary check that catches indefinite input; @p blk holds g² doubles. */
static int check_blocks(aq_context *ctx, const char *fn, const double *hd, int64_t ncols, int32_t g,
                        double *blk)
{
    for (int64_t j = 0; j < ncols / g; j++) {
        double mean = 0.0;
        for (int32_t d = 0; d < g; d++)
            mean += hd[(j * g + d) * ncols + j * g + d];
        mean /= g;
        for (int32_t d = 0; d < g; d++)
            for (int32_t e = 0; e < g; e++)
                blk[d * g + e] = hd[(j * g + d) * ncols + j * g + e] + (d == e ? 1e-6 * mean + DBL_MIN : 0.0);
        if (LAPACKE_dpotrf_work(LAPACK_ROW_MAJOR, 'U', (lapack_int)g, blk, (lapack_int)g) != 0)
            return aqi_fail(ctx, AQ_ERR_NOT_PSD, "%s: the Hessian's diagonal block %lld (inputs %lld..%lld) "
                            "is not positive semidefinite", fn, (long long)j, (long long)(j * g),
                            (long long)(j * g + g - 1));
    }
    return AQ_OK;
}

/* H + λ·mean(diag H)·I as float, cols × cols (λ = AQ_OPT_HESSIAN_DAMPING, 0 = the matrix of the
 * handle), its diagonal blocks of the quant's input group size checked. */
static int float_hessian(aq_context *ctx, const char *fn, const aq_hessian *H, int64_t ncols, int32_t g,
                         double damping, float **out)
{
    size_t n = (size_t)ncols * (size_t)ncols;
    double *hd = aqi_alloc(ctx, n * sizeof(double));
    double *blk = hd ? aqi_alloc(ctx, (size_t)g * (size_t)g * sizeof(double)) : NULL;
    float *hf = blk ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    int st;
    *out = NULL;
    if (!hf) {
        aqi_free(ctx, hd);
        aqi_free(ctx, blk);
        return AQ_ERR_NOMEM;
    }
    st = aq_hessian_copy_matrix(H, hd, ncols, damping);
    if (st)
        st = aqi_fail(ctx, st, "%s: copying H failed (%s)", fn, aq_strerror(st));
    else
        st = check_blocks(ctx, fn, hd, ncols, g, blk);
    aqi_free(ctx, blk);
    if (st) {
        aqi_free(ctx, hd);
        aqi_free(ctx, hf);
        return st;
    }
    for (size_t i = 0; i < n; i++)
        hf[i] = (float)hd[i];
    aqi_free(ctx, hd);
    if (!aqi_all_finite_f32(hf, ncols, ncols, ncols)) {
        aqi_free(ctx, hf);
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: H does not fit in float", fn);
    }
    *out = hf;
    return AQ_OK;
}

/* Everything an entry point needs: options, the float H and a working copy of the quant. */
typedef struct session {
    aqi_options_values v;
    aqi_layer layer;
    aq_quant work;
    float *H;
} session;

static int session_open(session *s, aq_context *ctx, const char *fn, aq_quant *quant,
                        const float *W, int64_t ld, const aq_hessian *H, const aq_options *options)
{
    int st;
    memset(s, 0, sizeof *s);
    st = aqi_opt_validate(ctx, fn, quant, W, ld, H, 1);
    if (st)
        return st;
    if (options)
        s->v = options->v;
    else
        aqi_options_defaults(&s->v);
    st = float_hessian(ctx, fn, H, quant->cols, quant->g, s->v.hessian_damping, &s->H);
    if (st)
        return st;
    st = aqi_opt_quant_dup(ctx, &s->work, quant);
    if (st) {
        aqi_free(ctx, s->H);
        s->H = NULL;
        return st;
    }
    s->layer.ctx = ctx;
    s->layer.W = W;
    s->layer.ld = ld;
    s->layer.H = s->H;
    return AQ_OK;
}

/* Commit the working copy into @p quant if st == AQ_OK, then free everything. */
static int session_close(session *s, aq_context *ctx, aq_quant *quant, int st)
{
    if (!st)
        aqi_opt_quant_commit(quant, &s->work);
    aqi_opt_quant_release(ctx, &s->work);
    aqi_free(ctx, s->H);
    s->H = NULL;
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API */

int aq_beam_search(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                   const aq_hessian *H, const aq_options *options)
{
    session s;
    int st = session_open(&s, ctx, "aq_beam_search", quant, W, ld, H, options);
    if (st)
        return st;
    aqi_beam_config cfg = {(int32_t)s.v.beam_width, (int32_t)s.v.beam_random_order, 0, 0, 0, NULL, NULL, 0};
    st = aqi_opt_beam_pass(&s.layer, &s.work, &cfg, NULL, NULL);
    return session_close(&s, ctx, quant, st);
}

int aq_update_codebooks(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                        const aq_hessian *H, const aq_options *options)
{
    session s;
    int st = session_open(&s, ctx, "aq_update_codebooks", quant, W, ld, H, options);
    if (st)
        return st;
    st = aqi_opt_update_codebooks(&s.layer, &s.work, &s.v);
    return session_close(&s, ctx, quant, st);
}

int aq_optimize(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                const aq_hessian *H, const aq_options *options)
{
    session s;
    double L_prev, L, energy;
    int st = session_open(&s, ctx, "aq_optimize", quant, W, ld, H, options);
    if (st)
        return st;
    const int32_t max_epochs = (int32_t)s.v.max_epochs;
    st = aqi_opt_loss(&s.layer, &s.work, &L_prev, &energy);
    for (int32_t epoch = 0; epoch < max_epochs && !st; epoch++) {
        aqi_beam_config cfg = {(int32_t)s.v.beam_width, (int32_t)s.v.beam_random_order,
                               (uint64_t)epoch + 1, 0, 0, NULL, NULL, 0};
        st = aqi_opt_update_codebooks(&s.layer, &s.work, &s.v);
        if (!st)
            st = aqi_opt_beam_pass(&s.layer, &s.work, &cfg, NULL, NULL);
        if (!st)
            st = aqi_opt_loss(&s.layer, &s.work, &L, NULL);
        if (st)
            break;
        aqi_log(ctx, AQ_LOG_INFO, "aq_optimize: epoch %d: L %.9g -> %.9g", (int)epoch, L_prev, L);
        st = aqi_progress(ctx, "optimize", epoch, max_epochs, 0, energy > 0 ? L / energy : L);
        if (st)
            break;
        /* stop when the epoch improved L by less than rel_tol of its value */
        int converged = !(L_prev > 0) || (L_prev - L) < s.v.rel_tol * L_prev;
        L_prev = L;
        if (converged)
            break;
    }
    return session_close(&s, ctx, quant, st);
}

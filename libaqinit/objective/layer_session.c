/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Argument checks and setup shared by the public entry points of the optimisers
 * (aq_beam_search, aq_update_codebooks, aq_optimize): each validates its arguments, copies H to
 * float once, works on a duplicate of the quant's arrays and copies them back only when
 * everything succeeded, so a failure or a cancellation leaves the quant exactly as it was. */
#include <float.h>
#include <limits.h>
#include <string.h>

#include <lapacke.h>

#include "hessian/hessian_internal.h"
#include "core/comm.h"
#include "objective/layer.h"


int aqi_opt_validate(aq_context *ctx, const char *fn, const aq_quant *q, const float *W, int64_t ld,
                     const aq_hessian *H, int check_quant_arrays)
{
    size_t bytes;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!q || !W || !H)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: NULL %s", fn, !q ? "quant" : !W ? "W" : "H");
    int st = aqi_check_ld(ctx, fn, "W", q->rows, q->cols, ld, sizeof(float));
    if (st != AQ_OK)
        return st;
    if (aq_hessian_num_inputs(H) != q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: H has %lld inputs but the quant has %lld columns", fn,
                        (long long)aq_hessian_num_inputs(H), (long long)q->cols);
    if (aq_hessian_num_samples(H) <= 0)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: the Hessian has no samples", fn);
    if (q->rows > INT_MAX || q->cols > INT_MAX) /* ld: aqi_check_ld above */
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "%s: %lld x %lld (ld %lld) exceeds the BLAS index range",
                        fn, (long long)q->rows, (long long)q->cols, (long long)ld);
    if (aqi_bytes(ctx, &bytes, q->cols, (size_t)q->cols * sizeof(double), fn))
        return AQ_ERR_OVERFLOW;
    if ((st = aqi_check_weights(ctx, fn, "W", W, q->rows, q->cols, ld)) != AQ_OK)
        return st;
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

/* A PSD H has PSD diagonal blocks: each g × g block H_jj (damped as the session's H) must admit a
 * Cholesky factorisation after a relative jitter of 1e-6·mean(diag H_jj) (plus the smallest
 * normal number, for a zero block). A cheap necessary check that catches indefinite input;
 * @p blk holds g² doubles. */
static int check_blocks(aq_context *ctx, const char *fn, const aq_hessian *H, int64_t ncols, int32_t g,
                        double damping, double *blk)
{
    for (int64_t j = 0; j < ncols / g; j++) {
        int st = aq_hessian_copy_block(H, blk, g, j, damping);
        if (st)
            return aqi_fail(ctx, st, "%s: copying H failed (%s)", fn, aq_strerror(st));
        double mean = 0.0;
        for (int32_t d = 0; d < g; d++)
            mean += blk[d * g + d];
        mean /= g;
        for (int32_t d = 0; d < g; d++)
            blk[d * g + d] += 1e-6 * mean + DBL_MIN;
        if (LAPACKE_dpotrf_work(LAPACK_ROW_MAJOR, 'U', (lapack_int)g, blk, (lapack_int)g) != 0)
            return aqi_fail(ctx, AQ_ERR_NOT_PSD, "%s: the Hessian's diagonal block %lld (inputs %lld..%lld) "
                            "is not positive semidefinite", fn, (long long)j, (long long)(j * g),
                            (long long)(j * g + g - 1));
    }
    return AQ_OK;
}

/* H + λ·mean(diag H)·I as float, cols × cols (λ = AQ_OPT_HESSIAN_DAMPING, 0 = the matrix of the
 * handle), its diagonal blocks of the quant's input group size checked. Converted straight from
 * the handle: no double copy of H (for I = 11008 that is 924 MiB). */
static int float_hessian(aq_context *ctx, const char *fn, const aq_hessian *H, int64_t ncols, int32_t g,
                         double damping, float **out)
{
    size_t n = (size_t)ncols * (size_t)ncols;
    double *blk = aqi_alloc(ctx, (size_t)g * (size_t)g * sizeof(double));
    float *hf = blk ? aqi_alloc(ctx, n * sizeof(float)) : NULL;
    *out = NULL;
    if (!hf) {
        aqi_free(ctx, blk);
        return AQ_ERR_NOMEM;
    }
    int st = check_blocks(ctx, fn, H, ncols, g, damping, blk);
    aqi_free(ctx, blk);
    if (!st)
        st = aqi_hessian_copy_float(H, hf, damping, 1.0, fn);
    if (!st && !aqi_all_finite_f32(hf, ncols, ncols, ncols))
        st = aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: H does not fit in float", fn);
    if (st) {
        aqi_free(ctx, hf);
        return st;
    }
    *out = hf;
    return AQ_OK;
}

static int open_local(aqi_layer_session *s, aq_context *ctx, const char *fn, aq_quant *quant,
                      const float *W, int64_t ld, const aq_hessian *H, const aq_options *options)
{
    int st;
    memset(s, 0, sizeof *s);
    st = aqi_opt_validate(ctx, fn, quant, W, ld, H, 1);
    if (!st)
        st = aqi_check_owners(ctx, fn, quant, H, options);
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

int aqi_layer_session_open(aqi_layer_session *s, aq_context *ctx, const char *fn, aq_quant *quant,
                           const float *W, int64_t ld, const aq_hessian *H, const aq_options *options)
{
    int st = open_local(s, ctx, fn, quant, W, ld, H, options);
    int agreed = ctx ? aqi_comm_agree(ctx, fn, st) : st;
    if (agreed != AQ_OK && st == AQ_OK)
        aqi_layer_session_close_local(s, ctx, quant, agreed);
    return agreed;
}

/* Commit the working copy into @p quant if st == AQ_OK, then free everything. */
int aqi_layer_session_close_local(aqi_layer_session *s, aq_context *ctx, aq_quant *quant, int st)
{
    if (!st)
        aqi_opt_quant_commit(quant, &s->work);
    aqi_opt_quant_release(ctx, &s->work);
    aqi_free(ctx, s->H);
    s->H = NULL;
    return st;
}

int aqi_layer_session_close(aqi_layer_session *s, aq_context *ctx, aq_quant *quant, int st)
{
    /* Every rank commits, or none does. */
    return aqi_layer_session_close_local(s, ctx, quant, aqi_comm_agree(ctx, "the layer session", st));
}

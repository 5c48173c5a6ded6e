/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_init: scales, then one codebook per stage on the residual (docs/algorithms.md,
 * "Initialisation"). GREEDY fits each stage with Euclidean k-means (AQLM); OA_EM refines the
 * stage with Mahalanobis EM rounds (eq. 3–5) and may re-fit each codebook with the others
 * fixed afterwards (joint passes). Everything happens on a scratch quant that replaces the
 * caller's arrays only on success. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/comm.h"
#include "init/em.h"
#include "core/options.h"
#include "quant/quant.h"

typedef struct init_state {
    aq_context *ctx;
    const aqi_options_values *opt;
    aq_quant *out;          /* scratch quant being filled */
    uint64_t seed;
    float *R;               /* N × D residual tiles of W/s */
    int32_t *codes;         /* N codes of the current stage */
    double *blocks;         /* J × g × g damped Hessian blocks (OA_EM) */
    double *weights;        /* P weights s_p² (OA_EM with scale weighting) */
    aqi_em_metric euclid, mahalanobis;
    aqi_em_work work_euclid, work_mahalanobis;
} init_state;

/* ---------------------------------------------------------------- validation */

static int check_arguments(aq_context *ctx, const aq_quant *q, const float *W, int64_t ld,
                           const aq_hessian *H, const aqi_options_values *opt)
{
    const char *fn = "aq_init";
    if (!q || !W)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, q ? "W" : "quant");
    int st = aqi_check_ld(ctx, fn, "W", q->rows, q->cols, ld, sizeof(float));
    if (st != AQ_OK)
        return st;
    if (opt->init_method == AQ_INIT_OA_EM) {
        if (!H)
            return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: AQ_INIT_OA_EM needs a Hessian", fn);
        if (aq_hessian_num_inputs(H) != q->cols)
            return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: Hessian has %lld inputs, the matrix %lld columns", fn,
                            (long long)aq_hessian_num_inputs(H), (long long)q->cols);
        if (aq_hessian_num_samples(H) <= 0)
            return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: the Hessian has no samples", fn);
    }
    if ((st = aqi_check_weights(ctx, fn, "W", W, q->rows, q->cols, ld)) != AQ_OK)
        return st;
    return AQ_OK;
}

/* The message for a damped block H_jj that Cholesky refused. Damping adds λ·mean(diag H)·I,
 * which makes every block of a non-zero PSD H definite, but cannot lift a Hessian that is zero
 * altogether (calibration inputs that were all zero): then a larger λ is no remedy. */
static int block_not_pd(init_state *s, const aq_hessian *H, double *scratch, int64_t j, int64_t g)
{
    double diag = 0.0;
    for (int64_t jj = 0; jj < aq_hessian_num_inputs(H) / g && diag == 0.0; jj++)
        if (aq_hessian_copy_block(H, scratch, g, jj, 0.0) == AQ_OK)
            for (int64_t d = 0; d < g; d++)
                diag += fabs(scratch[d * g + d]);
    if (diag == 0.0)
        return aqi_fail(s->ctx, AQ_ERR_NOT_PSD, "aq_init: the Hessian is zero, so no block is positive "
                        "definite (every calibration input was zero); OA-EM needs inputs that carry signal, and "
                        "damping, relative to diag H, cannot help");
    return aqi_fail(s->ctx, AQ_ERR_NOT_PSD, "aq_init: Hessian block %lld is not positive definite after damping "
                    "%g (raise AQ_OPT_EM_DAMPING)", (long long)j, s->opt->em_damping);
}

/* H̃_j = H_jj + λ·mean(diag H)·I for every input group, each checked positive definite. */
static int load_blocks(init_state *s, const aq_hessian *H)
{
    const int64_t J = s->out->n_in_groups, g = s->out->g;
    size_t bytes;
    double *chol;
    int st = aqi_bytes(s->ctx, &bytes, J * g * g + g * g, sizeof(double), "Hessian blocks");
    if (st != AQ_OK)
        return st;
    if (!(s->blocks = aqi_alloc(s->ctx, bytes)))
        return AQ_ERR_NOMEM;
    chol = s->blocks + J * g * g;
    for (int64_t j = 0; j < J; j++) {
        double *blk = s->blocks + j * g * g;
        if ((st = aq_hessian_copy_block(H, blk, g, j, s->opt->em_damping)) != AQ_OK)
            return aqi_fail(s->ctx, st, "aq_init: cannot read Hessian block %lld", (long long)j);
        if (!aqi_all_finite_f64(blk, g, g, g))
            return aqi_fail(s->ctx, AQ_ERR_NONFINITE, "aq_init: Hessian block %lld is not finite", (long long)j);
        memcpy(chol, blk, sizeof(double) * (size_t)(g * g));
        if (LAPACKE_dpotrf_work(LAPACK_ROW_MAJOR, 'U', (lapack_int)g, chol, (lapack_int)g) != 0)
            return block_not_pd(s, H, blk, j, g);
    }
    return AQ_OK;
}

/* ---------------------------------------------------------------- scales and residual */

/* s_p = ‖W[rows of group p]‖_F + 1e-9 (AQLM), then R = tiles of W/s. */
static void scale_and_tile(init_state *s, const float *W, int64_t ld)
{
    aq_quant *q = s->out;
    const int64_t J = q->n_in_groups, g = q->g, go = q->go, D = go * g;
    for (int64_t p = 0; p < q->n_out_groups; p++) {
        double norm2 = 0.0, inv;
        for (int64_t t = 0; t < go; t++)
            for (int64_t c = 0; c < q->cols; c++) {
                double v = W[(p * go + t) * ld + c];
                norm2 += v * v;
            }
        q->scales[p] = q->fmt.scale_mode == AQ_SCALE_NONE ? 1.0f : (float)(sqrt(norm2) + 1e-9);
        inv = 1.0 / (double)q->scales[p];
        for (int64_t j = 0; j < J; j++)
            for (int64_t t = 0; t < go; t++)
                for (int64_t a = 0; a < g; a++)
                    s->R[(p * J + j) * D + t * g + a] = (float)(W[(p * go + t) * ld + j * g + a] * inv);
    }
}

/* R ← R + sign · C[codes] for a codebook C of D-float codewords. */
static void add_codewords(init_state *s, const float *C, const int32_t *codes, float sign)
{
    const int64_t D = (int64_t)s->out->go * s->out->g, N = s->out->n_out_groups * s->out->n_in_groups;
    for (int64_t i = 0; i < N; i++)
        for (int64_t a = 0; a < D; a++)
            s->R[i * D + a] += sign * C[(int64_t)codes[i] * D + a];
}

/* R ← R + sign · C_m[codes], and the codes of stage m to/from the quant. */
static void apply_codebook(init_state *s, int m, float sign)
{
    add_codewords(s, aqi_codeword(s->out, m, 0), s->codes, sign);
}

static void store_codes(init_state *s, int m)
{
    const int64_t J = s->out->n_in_groups, N = s->out->n_out_groups * J;
    for (int64_t i = 0; i < N; i++)
        aqi_code_set(s->out, i / J, i % J, m, (uint32_t)s->codes[i]);
}

static void load_codes(init_state *s, int m)
{
    const int64_t J = s->out->n_in_groups, N = s->out->n_out_groups * J;
    for (int64_t i = 0; i < N; i++)
        s->codes[i] = (int32_t)aqi_code_get(s->out, i / J, i % J, m);
}

/* R ← R + sign · C[the codes of stage m held in the output quant]. */
static void add_stage_codewords(init_state *s, const float *C, int m, float sign)
{
    const int64_t D = (int64_t)s->out->go * s->out->g, J = s->out->n_in_groups, N = s->out->n_out_groups * J;
    for (int64_t i = 0; i < N; i++) {
        const float *c = C + (int64_t)aqi_code_get(s->out, i / J, i % J, m) * D;
        for (int64_t a = 0; a < D; a++)
            s->R[i * D + a] += sign * c[a];
    }
}

/* ---------------------------------------------------------------- stages */

static aqi_em_params kmeans_params(const init_state *s, int m)
{
    aqi_em_params p = {s->opt->kmeans_max_iter, s->opt->kmeans_tol, 0, 0, 0.0, "init.kmeans", m, s->out->M};
    return p;
}

static aqi_em_params oaem_params(const init_state *s, int m, const char *operation)
{
    aqi_em_params p = {s->opt->em_max_rounds, s->opt->em_tol, s->opt->em_mstep == AQ_MSTEP_ADAM,
                       s->opt->em_adam_steps, s->opt->em_adam_lr, operation, m, s->out->M};
    return p;
}

/* Seed a codebook: random points or k-means++ (Euclidean), from the random stream @p stream. */
static int seed_stage(init_state *s, uint64_t stream, int kmeanspp, float *C)
{
    return kmeanspp ? aqi_seed_kmeanspp(&s->work_euclid, s->R, C, s->seed, stream)
                    : aqi_seed_random_points(&s->work_euclid, s->R, C, s->seed, stream);
}

/* Fit the codebook C of stage m (K of the work buffers) to the residual: seeding, k-means,
 * OA-EM rounds as the options say; the codes end in s->codes. */
static int fit_codebook(init_state *s, int m, uint64_t stream, float *C)
{
    const aqi_options_values *o = s->opt;
    const int oaem = o->init_method == AQ_INIT_OA_EM;
    double objective;
    int st;
    if (!oaem || o->em_seeding == AQ_EM_SEED_KMEANS || o->em_seeding == AQ_EM_SEED_PRODUCT) {
        aqi_em_params kp = kmeans_params(s, m);
        if ((st = aqi_comm_agree(s->ctx, "aq_init", seed_stage(s, stream, o->kmeans_seeding == AQ_SEEDING_KMEANSPP, C))) != AQ_OK
            || (st = aqi_em_run(&s->work_euclid, &kp, s->R, C, s->codes, 1, &objective)) != AQ_OK)
            return st;
        if (oaem) {
            aqi_em_params ep = oaem_params(s, m, "init.oaem");
            if ((st = aqi_em_run(&s->work_mahalanobis, &ep, s->R, C, s->codes, 0, &objective)) != AQ_OK)
                return st;
        }
    } else {
        aqi_em_params ep = oaem_params(s, m, "init.oaem");
        if ((st = aqi_comm_agree(s->ctx, "aq_init", seed_stage(s, stream, o->em_seeding == AQ_EM_SEED_KMEANSPP, C))) != AQ_OK
            || (st = aqi_em_run(&s->work_mahalanobis, &ep, s->R, C, s->codes, 1, &objective)) != AQ_OK)
            return st;
    }
    return AQ_OK;
}

/* AQ_EM_SEED_PRODUCT: stage m (B bits) starts from two stages of B_a = ⌈B/2⌉ and B_b = ⌊B/2⌋
 * bits fitted one after the other to its residual; codeword k_a·K_b + k_b = C_a[k_a] + C_b[k_b]
 * reproduces their sum exactly, so the full-K rounds that follow start from the two-stage
 * error and only lower it. Both small fits use the buffers of the large one. */
static int seed_product(init_state *s, int m, float *C)
{
    const aq_quant *q = s->out;
    const int B = q->fmt.bits_per_codebook;
    const int64_t Ka = (int64_t)1 << ((B + 1) / 2), Kb = (int64_t)1 << (B / 2);
    const int64_t D = (int64_t)q->go * q->g, N = q->n_out_groups * q->n_in_groups;
    float *Ca = aqi_alloc(s->ctx, sizeof(float) * (size_t)((Ka + Kb) * D));
    int st = aqi_comm_agree(s->ctx, "aq_init", Ca ? AQ_OK : AQ_ERR_NOMEM);
    float *Cb = Ca ? Ca + Ka * D : NULL;
    const uint64_t stream = (uint64_t)m << 32;
    for (int half = 0; half < 2 && st == AQ_OK; half++) {
        aqi_em_work_resize(&s->work_euclid, half ? Kb : Ka);
        aqi_em_work_resize(&s->work_mahalanobis, half ? Kb : Ka);
        st = fit_codebook(s, m, stream | (uint64_t)(half + 1), half ? Cb : Ca);
        if (st == AQ_OK && !half) { /* the first stage's codes wait in the quant's slot m */
            store_codes(s, m);
            add_stage_codewords(s, Ca, m, -1.0f);
        }
    }
    aqi_em_work_resize(&s->work_euclid, q->K);
    aqi_em_work_resize(&s->work_mahalanobis, q->K);
    if (st == AQ_OK) {
        const int64_t J = q->n_in_groups;
        add_stage_codewords(s, Ca, m, 1.0f);
        for (int64_t ka = 0; ka < Ka; ka++)
            for (int64_t kb = 0; kb < Kb; kb++)
                for (int64_t a = 0; a < D; a++)
                    C[(ka * Kb + kb) * D + a] = Ca[ka * D + a] + Cb[kb * D + a];
        for (int64_t i = 0; i < N; i++)
            s->codes[i] = (int32_t)((int64_t)aqi_code_get(q, i / J, i % J, m) * Kb + s->codes[i]);
    }
    aqi_free(s->ctx, Ca);
    return st;
}

static int run_stage(init_state *s, int m)
{
    float *C = aqi_codeword(s->out, m, 0);
    int st;
    if (s->opt->init_method == AQ_INIT_OA_EM && s->opt->em_seeding == AQ_EM_SEED_PRODUCT
        && s->out->fmt.bits_per_codebook >= 2) {
        aqi_em_params ep = oaem_params(s, m, "init.oaem");
        double objective;
        if ((st = seed_product(s, m, C)) != AQ_OK
            || (st = aqi_em_run(&s->work_mahalanobis, &ep, s->R, C, s->codes, 0, &objective)) != AQ_OK)
            return st;
    } else if ((st = fit_codebook(s, m, (uint64_t)m, C)) != AQ_OK)
        return st;
    store_codes(s, m);
    apply_codebook(s, m, -1.0f);
    return AQ_OK;
}

/* Joint pass: re-fit codebook m to W/s − Σ_{m'≠m} C_{m'}[b_{m'}] with the others fixed. Each
 * stage is an exact coordinate step on Σ_m-stage objective, so it cannot increase it. */
static int joint_pass(init_state *s)
{
    for (int m = 0; m < s->out->M; m++) {
        aqi_em_params ep = oaem_params(s, m, "init.joint");
        double objective;
        int st;
        load_codes(s, m);
        apply_codebook(s, m, 1.0f);
        if ((st = aqi_em_run(&s->work_mahalanobis, &ep, s->R, aqi_codeword(s->out, m, 0), s->codes, 0,
                             &objective)) != AQ_OK)
            return st;
        store_codes(s, m);
        apply_codebook(s, m, -1.0f);
    }
    return AQ_OK;
}

/* ---------------------------------------------------------------- entry point */

static int allocate(init_state *s, const aq_hessian *H)
{
    const aq_quant *q = s->out;
    const int64_t N = q->n_out_groups * q->n_in_groups, D = (int64_t)q->go * q->g;
    size_t bytes_r, bytes_codes;
    int st;
    if ((st = aqi_bytes(s->ctx, &bytes_r, N * D, sizeof(float), "residual")) != AQ_OK
        || (st = aqi_bytes(s->ctx, &bytes_codes, N, sizeof(int32_t), "codes")) != AQ_OK)
        return st;
    if (!(s->R = aqi_alloc(s->ctx, bytes_r)) || !(s->codes = aqi_alloc(s->ctx, bytes_codes)))
        return AQ_ERR_NOMEM;
    s->euclid = (aqi_em_metric){N, q->n_in_groups, q->go, q->g, D, NULL, NULL};
    if ((st = aqi_em_work_init(&s->work_euclid, s->ctx, &s->euclid, q->K)) != AQ_OK)
        return st;
    if (s->opt->init_method != AQ_INIT_OA_EM)
        return AQ_OK;
    if ((st = load_blocks(s, H)) != AQ_OK)
        return st;
    if (s->opt->em_scale_weighting) {
        if (!(s->weights = aqi_alloc(s->ctx, sizeof(double) * (size_t)q->n_out_groups)))
            return AQ_ERR_NOMEM;
    }
    s->mahalanobis = (aqi_em_metric){N, q->n_in_groups, q->go, q->g, D, s->blocks, s->weights};
    if ((st = aqi_em_work_init(&s->work_mahalanobis, s->ctx, &s->mahalanobis, q->K)) != AQ_OK)
        return st;
    aqi_em_work_share_proposals(&s->work_mahalanobis, &s->work_euclid); /* the stages alternate */
    return AQ_OK;
}

static void release(init_state *s)
{
    if (s->work_euclid.ctx)
        aqi_em_work_free(&s->work_euclid);
    if (s->work_mahalanobis.ctx)
        aqi_em_work_free(&s->work_mahalanobis);
    aqi_free(s->ctx, s->R);
    aqi_free(s->ctx, s->codes);
    aqi_free(s->ctx, s->blocks);
    aqi_free(s->ctx, s->weights);
    aq_quant_free(s->out);
}

int aq_init(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld, const aq_hessian *H,
            const aq_options *options)
{
    aqi_options_values defaults;
    init_state s;
    int st;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    aqi_options_defaults(&defaults);
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.opt = options ? &options->v : &defaults;
    st = aqi_check_owners(ctx, "aq_init", quant, H, options);
    if ((st = aqi_comm_agree(ctx, "aq_init", st ? st : check_arguments(ctx, quant, W, ld, H, s.opt))) != AQ_OK)
        return st;
    pthread_mutex_lock(&ctx->lock);
    s.seed = ctx->seed;
    pthread_mutex_unlock(&ctx->lock);
    st = aqi_quant_new(&s.out, ctx, &quant->fmt, quant->rows, quant->cols);
    if (st == AQ_OK)
        st = allocate(&s, H);
    if ((st = aqi_comm_agree(ctx, "aq_init", st)) == AQ_OK) {
        scale_and_tile(&s, W, ld);
        if (s.weights)
            for (int64_t p = 0; p < s.out->n_out_groups; p++)
                s.weights[p] = (double)s.out->scales[p] * (double)s.out->scales[p];
        for (int m = 0; m < s.out->M && st == AQ_OK; m++)
            st = run_stage(&s, m);
        if (s.opt->init_method == AQ_INIT_OA_EM)
            for (int64_t pass = 0; pass < s.opt->em_joint_passes && st == AQ_OK; pass++)
                st = joint_pass(&s);
        if (st == AQ_OK)
            aqi_quant_copy_arrays(quant, s.out);
    }
    release(&s);
    return st;
}

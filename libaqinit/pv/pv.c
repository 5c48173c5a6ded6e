/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* PV-tuning primitives: aq_quant_backward (P-step gradients) and aq_vstep (budgeted code
 * search towards a target). Ŵ[p·g_o + t, j·g + a] = s_p Σ_m C_m[b(p,j,m)][t][a], so
 *   ∂L/∂C_m[k][t][a] = Σ_{(p,j): b(p,j,m) = k} s_p G[p·g_o + t, j·g + a]
 *   ∂L/∂s_p          = Σ_{t,j,a} G[p·g_o + t, j·g + a] · Σ_m C_m[b(p,j,m)][t][a]       (P1)
 * with G = ∂L/∂Ŵ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "quant/quant.h"

int aq_quant_backward(const aq_quant *q, const float *G, int64_t ld, float *grad_codebooks, float *grad_scales)
{
    const char *fn = "aq_quant_backward";
    double *acc = NULL;
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!G)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: grad_W is NULL", fn);
    int st = aqi_check_ld(q->ctx, fn, "grad_W", q->rows, q->cols, ld, sizeof(float));
    if (st != AQ_OK)
        return st;
    if (!aqi_all_finite_f32(G, q->rows, q->cols, ld))
        return aqi_fail(q->ctx, AQ_ERR_NONFINITE, "%s: grad_W contains NaN or Inf", fn);
    if (grad_codebooks && !(acc = aqi_calloc(q->ctx, q->codebooks_count, sizeof(double))))
        return AQ_ERR_NOMEM;
    const int64_t g = q->g, go = q->go, D = go * g;
    for (int64_t p = 0; p < q->n_out_groups; p++) {
        const double s = q->scales[p];
        double ds = 0.0;
        for (int64_t j = 0; j < q->n_in_groups; j++)
            for (int m = 0; m < q->M; m++) {
                const uint32_t k = aqi_code_get(q, p, j, m);
                const float *c = aqi_codeword(q, m, k);
                double *a = acc ? acc + ((int64_t)m * q->K + k) * D : NULL;
                for (int64_t t = 0; t < go; t++) {
                    const float *grow = G + (p * go + t) * ld + j * g;
                    for (int64_t e = 0; e < g; e++) {
                        if (a)
                            a[t * g + e] += s * grow[e];
                        ds += (double)grow[e] * c[t * g + e];
                    }
                }
            }
        if (grad_scales)
            grad_scales[p] = q->fmt.scale_mode == AQ_SCALE_NONE ? 0.0f : (float)ds;
    }
    if (acc) {
        for (size_t i = 0; i < q->codebooks_count; i++)
            grad_codebooks[i] = (float)acc[i];
        aqi_free(q->ctx, acc);
    }
    return AQ_OK;
}

/* ---------------------------------------------------------------- V-step
 * The distance of a tile (p, j) with codes b is d(b) = Σ_t e_t A e_tᵀ, e_t = s_p Σ_m C_m[b_m][t] − T_t
 * over its g_o rows t, with A = H_jj (undamped) or I. One coordinate pass sets each code in turn
 * to the exact argmin with the others fixed: with the residual R_t = T_t − s_p Σ_{m'≠m} C_m'[b_m'][t],
 *   d(k) = s_p² Q[m][k] − 2 s_p Σ_t C_m[k][t]·(A R_t) + const,   Q[m][k] = Σ_t C_m[k][t] A C_m[k][t]ᵀ,
 * so Q is tabulated once per input group and each candidate costs one g_o·g dot product. The
 * current code is a candidate, and a tile keeps its proposal only if its distance, recomputed
 * directly, went down: no tile's distance increases. */

typedef struct vstep_job {
    const aq_quant *q;
    const float *target;
    int64_t ld;
    const double *blocks;  /* J × g × g of H (undamped), or NULL for the weight-space metric */
    const int64_t *start;  /* tiles of input group j: list[start[j] .. start[j+1]) */
    const int64_t *list;   /* output group p of each listed tile */
    uint32_t *codes;       /* proposals, M per listed tile */
    double *before, *after; /* distance before / after the pass, per listed tile */
    double *scratch;       /* per worker: M·K (Q) + 3·g_o·g doubles */
    int n_workers;
} vstep_job;

/* out = A v for one tile row (g values), or v when A is NULL (the weight-space metric). */
static void apply_block(const double *A, const double *v, double *out, int64_t g)
{
    for (int64_t a = 0; a < g; a++) {
        double r = 0.0;
        if (!A) {
            out[a] = v[a];
            continue;
        }
        for (int64_t e = 0; e < g; e++)
            r += A[a * g + e] * v[e];
        out[a] = r;
    }
}

static double tile_distance(const aq_quant *q, const float *target, int64_t ld, const double *A, int64_t p,
                            int64_t j, const uint32_t *b)
{
    const int64_t g = q->g, go = q->go;
    const double s = q->scales[p];
    double d = 0.0, e[256];
    for (int64_t t = 0; t < go; t++) {
        const float *T = target + (p * go + t) * ld + j * g;
        for (int64_t a = 0; a < g; a++) {
            double w = 0.0;
            for (int m = 0; m < q->M; m++)
                w += aqi_codeword(q, m, b[m])[t * g + a];
            e[a] = s * w - T[a];
            if (!A)
                d += e[a] * e[a];
        }
        if (A) {
            double Ae[256];
            apply_block(A, e, Ae, g);
            for (int64_t a = 0; a < g; a++)
                d += e[a] * Ae[a];
        }
    }
    return d;
}

static int vstep_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const vstep_job *job = arg;
    const aq_quant *q = job->q;
    const int64_t g = q->g, go = q->go, D = go * g, K = q->K;
    if (worker < 0 || worker >= job->n_workers)
        return AQ_ERR_INTERNAL;
    double *Q = job->scratch + (size_t)worker * (size_t)(q->M * K + 3 * D), *w = Q + q->M * K, *R = w + D,
           *U = R + D;
    for (int64_t j = begin; j < end; j++) {
        if (job->start[j] == job->start[j + 1])
            continue;
        const double *A = job->blocks ? job->blocks + j * g * g : NULL;
        for (int m = 0; m < q->M; m++) /* Q[m][k] = Σ_t c A cᵀ (R, U as scratch) */
            for (int64_t k = 0; k < K; k++) {
                const float *c = aqi_codeword(q, m, (uint32_t)k);
                double v = 0.0;
                for (int64_t x = 0; x < D; x++)
                    R[x] = c[x];
                for (int64_t t = 0; t < go; t++)
                    apply_block(A, R + t * g, U + t * g, g);
                for (int64_t x = 0; x < D; x++)
                    v += R[x] * U[x];
                Q[m * K + k] = v;
            }
        for (int64_t n = job->start[j]; n < job->start[j + 1]; n++) {
            const int64_t p = job->list[n];
            const double s = q->scales[p];
            uint32_t *b = job->codes + n * q->M, old[64];
            for (int m = 0; m < q->M; m++)
                old[m] = b[m] = aqi_code_get(q, p, j, m);
            job->before[n] = tile_distance(q, job->target, job->ld, A, p, j, b);
            for (int64_t x = 0; x < D; x++) { /* w = Σ_m C_m[b_m] (unscaled) */
                double v = 0.0;
                for (int m = 0; m < q->M; m++)
                    v += aqi_codeword(q, m, b[m])[x];
                w[x] = v;
            }
            for (int m = 0; m < q->M; m++) {
                const float *cur = aqi_codeword(q, m, b[m]);
                for (int64_t t = 0; t < go; t++) { /* R = T − s (w − C_m[b_m]), U = A R */
                    const float *T = job->target + (p * go + t) * job->ld + j * g;
                    for (int64_t a = 0; a < g; a++)
                        R[t * g + a] = T[a] - s * (w[t * g + a] - cur[t * g + a]);
                    apply_block(A, R + t * g, U + t * g, g);
                }
                uint32_t keep = b[m];
                double best = 0.0;
                for (int pass = 0; pass < 2; pass++) /* the current code first, then every k */
                    for (int64_t k = pass ? 0 : (int64_t)b[m]; k < (pass ? K : (int64_t)b[m] + 1); k++) {
                        const float *c = aqi_codeword(q, m, (uint32_t)k);
                        double dot = 0.0;
                        for (int64_t x = 0; x < D; x++)
                            dot += c[x] * U[x];
                        const double d = s * s * Q[m * K + k] - 2.0 * s * dot;
                        if (!pass)
                            best = d;
                        else if (d < best) { /* strict: ties keep the current code, else the lowest k */
                            best = d;
                            keep = (uint32_t)k;
                        }
                    }
                if (keep != b[m]) {
                    const float *nw = aqi_codeword(q, m, keep);
                    for (int64_t x = 0; x < D; x++)
                        w[x] += (double)nw[x] - cur[x];
                    b[m] = keep;
                }
            }
            double after = tile_distance(q, job->target, job->ld, A, p, j, b);
            if (!(after < job->before[n])) { /* no gain (or rounding): keep the old codes */
                memcpy(b, old, sizeof(uint32_t) * (size_t)q->M);
                after = job->before[n];
            }
            job->after[n] = after;
        }
    }
    return AQ_OK;
}

typedef struct scored { double key; int64_t i; } scored;

static int by_key_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i); /* ties: lower index first, deterministic */
}

/* ‖Σ_m C_m[new_m] − Σ_m C_m[old_m]‖² and ‖Σ_m C_m[old_m]‖² over a tile (unscaled). */
static void tile_change(const aq_quant *q, const uint32_t *nb, const uint32_t *ob, double *diff, double *norm)
{
    *diff = *norm = 0.0;
    for (int64_t e = 0; e < (int64_t)q->go * q->g; e++) {
        double wn = 0.0, wo = 0.0;
        for (int m = 0; m < q->M; m++) {
            wn += aqi_codeword(q, m, nb[m])[e];
            wo += aqi_codeword(q, m, ob[m])[e];
        }
        *diff += (wn - wo) * (wn - wo);
        *norm += wo * wo;
    }
}

int aq_vstep(aq_context *ctx, aq_quant *q, const float *target, int64_t ld, const aq_hessian *H,
             const aq_options *options, int64_t *n_changed)
{
    const char *fn = "aq_vstep";
    aqi_options_values defaults;
    const aqi_options_values *o;
    vstep_job job;
    int st = AQ_OK;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!q || !target)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, q ? "target" : "quant");
    if ((st = aqi_check_owners(ctx, fn, q, H, options)) != AQ_OK)
        return st;
    if ((st = aqi_check_ld(ctx, fn, "target", q->rows, q->cols, ld, sizeof(float))) != AQ_OK)
        return st;
    if (q->M > 64 || (int64_t)q->g > 256)
        return aqi_fail(ctx, AQ_ERR_UNSUPPORTED, "%s: more than 64 codebooks or groups wider than 256", fn);
    if (H && aq_hessian_num_inputs(H) != q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: Hessian has %lld inputs, the matrix %lld columns", fn,
                        (long long)aq_hessian_num_inputs(H), (long long)q->cols);
    if ((st = aqi_check_weights(ctx, fn, "target", target, q->rows, q->cols, ld)) != AQ_OK)
        return st;
    aqi_options_defaults(&defaults);
    o = options ? &options->v : &defaults;
    memset(&job, 0, sizeof job);
    job.q = q, job.target = target, job.ld = ld;
    const int64_t P = q->n_out_groups, J = q->n_in_groups, N = P * J, g = q->g, M = q->M;
    const int gain = o->vstep_selection == AQ_VSTEP_GAIN;
    const double max_change = o->vstep_max_change;
    int64_t budget = (int64_t)ceil(o->vstep_max_fraction * (double)N);
    if (budget > N)
        budget = N;
    const int64_t listed = gain ? N : budget; /* tiles the coordinate pass visits */
    double *blocks = NULL;
    scored *all = NULL;
    int64_t *start = NULL, *list = NULL, *pos = NULL;
    if (H) {
        if (!(blocks = aqi_alloc(ctx, sizeof(double) * (size_t)(J * g * g))))
            return AQ_ERR_NOMEM;
        for (int64_t j = 0; j < J && st == AQ_OK; j++)
            st = aq_hessian_copy_block(H, blocks + j * g * g, g, j, 0.0);
        job.blocks = blocks;
    }
    job.n_workers = aqi_num_workers(ctx);
    const size_t n1 = (size_t)(listed ? listed : 1);
    if (st == AQ_OK
        && (!(all = aqi_alloc(ctx, sizeof(scored) * (size_t)(N ? N : 1)))
            || !(start = aqi_calloc(ctx, (size_t)J + 1, sizeof(int64_t)))
            || !(list = aqi_alloc(ctx, sizeof(int64_t) * n1)) || !(pos = aqi_alloc(ctx, sizeof(int64_t) * n1))
            || !(job.codes = aqi_alloc(ctx, sizeof(uint32_t) * n1 * (size_t)M))
            || !(job.before = aqi_alloc(ctx, sizeof(double) * n1)) || !(job.after = aqi_alloc(ctx, sizeof(double) * n1))
            || !(job.scratch = aqi_alloc(ctx, sizeof(double) * (size_t)job.n_workers
                                                  * (size_t)(M * q->K + 3 * (int64_t)q->go * g)))))
        st = AQ_ERR_NOMEM;
    if (st == AQ_OK && !gain) { /* rank every tile by its distance to the target */
        uint32_t b[64];
        for (int64_t i = 0; i < N; i++) {
            const int64_t p = i / J, j = i % J;
            for (int m = 0; m < M; m++)
                b[m] = aqi_code_get(q, p, j, m);
            all[i].key = tile_distance(q, target, ld, blocks ? blocks + j * g * g : NULL, p, j, b);
            all[i].i = i;
        }
        if (o->vstep_selection == AQ_VSTEP_SAMPLED) {
            /* Weighted sampling without replacement: keys u^(1/d) (Efraimidis–Spirakis), largest win. */
            aqi_rng rng;
            uint64_t seed;
            pthread_mutex_lock(&ctx->lock);
            seed = ctx->seed;
            pthread_mutex_unlock(&ctx->lock);
            aqi_rng_init(&rng, seed, 0x5653u);
            for (int64_t i = 0; i < N; i++) {
                double u = aqi_rng_uniform(&rng);
                all[i].key = all[i].key > 0.0 && u > 0.0 ? log(u) / all[i].key : -INFINITY;
            }
        }
        qsort(all, (size_t)N, sizeof *all, by_key_desc);
    }
    if (st == AQ_OK) { /* the visited tiles, grouped by input group (counting sort on j) */
        for (int64_t r = 0; r < listed; r++)
            start[(gain ? r : all[r].i) % J + 1]++;
        for (int64_t j = 0; j < J; j++)
            start[j + 1] += start[j];
        int64_t *fill = pos; /* reused: next free slot of each group while filling, then rank → slot */
        int64_t *next = aqi_alloc(ctx, sizeof(int64_t) * (size_t)(J ? J : 1));
        if (!next)
            st = AQ_ERR_NOMEM;
        else {
            memcpy(next, start, sizeof(int64_t) * (size_t)J);
            for (int64_t r = 0; r < listed; r++) {
                const int64_t i = gain ? r : all[r].i, n = next[i % J]++;
                list[n] = i / J;
                fill[r] = n;
            }
            aqi_free(ctx, next);
        }
        job.start = start, job.list = list;
    }
    if (st == AQ_OK)
        st = aqi_parallel_for(ctx, J, vstep_range, &job);
    if (st == AQ_OK && gain) { /* rank the proposals by their decrease of the distance */
        int64_t n_gain = 0;
        for (int64_t r = 0; r < N; r++) {
            const int64_t n = pos[r];
            if (job.after[n] < job.before[n] && o->vstep_trust_ratio > 0.0) { /* drop what the trust ratio rejects */
                uint32_t ob[64];
                double diff, norm;
                for (int m = 0; m < M; m++)
                    ob[m] = aqi_code_get(q, r / J, r % J, m);
                tile_change(q, job.codes + n * M, ob, &diff, &norm);
                if (!(sqrt(diff) <= o->vstep_trust_ratio * sqrt(norm)))
                    continue;
            }
            if (job.after[n] < job.before[n]) {
                all[n_gain].key = job.before[n] - job.after[n];
                all[n_gain++].i = r;
            }
        }
        qsort(all, (size_t)n_gain, sizeof *all, by_key_desc);
        budget = budget < n_gain ? budget : n_gain;
    }
    if (st == AQ_OK) { /* commit in priority order: budget, trust ratios */
        double limit2 = 0.0, used2 = 0.0;
        if (max_change > 0.0) { /* (r ‖Ŵ‖_F)² with the current codes */
            double norm2 = 0.0, d, nrm;
            uint32_t b[64];
            for (int64_t i = 0; i < N; i++) {
                for (int m = 0; m < M; m++)
                    b[m] = aqi_code_get(q, i / J, i % J, m);
                tile_change(q, b, b, &d, &nrm);
                norm2 += (double)q->scales[i / J] * q->scales[i / J] * nrm;
            }
            limit2 = max_change * max_change * norm2;
        }
        int64_t changed = 0;
        for (int64_t r = 0; r < budget; r++) {
            const int64_t i = all[r].i, n = pos[gain ? i : r];
            const int64_t p = i / J, j = i % J;
            const uint32_t *nb = job.codes + n * M;
            uint32_t ob[64];
            if (!(job.after[n] < job.before[n]))
                continue;
            for (int m = 0; m < M; m++)
                ob[m] = aqi_code_get(q, p, j, m);
            double diff, norm;
            tile_change(q, nb, ob, &diff, &norm);
            if (o->vstep_trust_ratio > 0.0 && !(sqrt(diff) <= o->vstep_trust_ratio * sqrt(norm)))
                continue; /* ‖Ŵ_new − Ŵ_old‖ ≤ trust · ‖Ŵ_old‖ on the tile */
            if (max_change > 0.0) { /* ‖ΔŴ‖_F ≤ r ‖Ŵ‖_F over the matrix: a prefix of the order */
                const double add = (double)q->scales[p] * q->scales[p] * diff;
                if (used2 + add > limit2)
                    break;
                used2 += add;
            }
            for (int m = 0; m < M; m++) {
                changed += ob[m] != nb[m];
                aqi_code_set(q, p, j, m, nb[m]);
            }
        }
        if (n_changed)
            *n_changed = changed;
    }
    aqi_free(ctx, blocks);
    aqi_free(ctx, all);
    aqi_free(ctx, start);
    aqi_free(ctx, list);
    aqi_free(ctx, pos);
    aqi_free(ctx, job.codes);
    aqi_free(ctx, job.before);
    aqi_free(ctx, job.after);
    aqi_free(ctx, job.scratch);
    return st;
}

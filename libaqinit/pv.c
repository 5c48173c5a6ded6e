/* PV-tuning primitives: aq_quant_backward (P-step gradients) and aq_vstep (budgeted code
 * search towards a target). Ŵ[p·g_o + t, j·g + a] = s_p Σ_m C_m[b(p,j,m)][t][a], so
 *   ∂L/∂C_m[k][t][a] = Σ_{(p,j): b(p,j,m) = k} s_p G[p·g_o + t, j·g + a]
 *   ∂L/∂s_p          = Σ_{t,j,a} G[p·g_o + t, j·g + a] · Σ_m C_m[b(p,j,m)][t][a]       (P1)
 * with G = ∂L/∂Ŵ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "quant.h"

int aq_quant_backward(const aq_quant *q, const float *G, int64_t ld, float *grad_codebooks, float *grad_scales)
{
    const char *fn = "aq_quant_backward";
    double *acc = NULL;
    if (!q)
        return AQ_ERR_INVALID_ARG;
    if (!G)
        return aqi_fail(q->ctx, AQ_ERR_INVALID_ARG, "%s: grad_W is NULL", fn);
    if (ld < q->cols)
        return aqi_fail(q->ctx, AQ_ERR_SHAPE, "%s: ld %lld < %lld columns", fn, (long long)ld, (long long)q->cols);
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

/* ---------------------------------------------------------------- V-step */

typedef struct vstep_job {
    const aq_quant *q;
    const float *target;
    int64_t ld;
    const double *blocks; /* J × g × g of H (undamped), or NULL for the weight-space metric */
    double trust;
    const int64_t *tiles; /* selected tile indices i = p·J + j */
    uint32_t *codes;      /* n_selected × M proposals, written by the workers */
    uint8_t *accepted;
} vstep_job;

/* Σ_t eᵀ A e for e = s Σ_m C_m[b_m] − T over the tile's rows (A = H_jj or I). */
static double tile_distance(const vstep_job *job, int64_t p, int64_t j, const uint32_t *b)
{
    const aq_quant *q = job->q;
    const int64_t g = q->g, go = q->go;
    const double s = q->scales[p];
    const double *A = job->blocks ? job->blocks + j * g * g : NULL;
    double d = 0.0, e[256];
    for (int64_t t = 0; t < go; t++) {
        const float *T = job->target + (p * go + t) * job->ld + j * g;
        for (int64_t a = 0; a < g; a++) {
            double w = 0.0;
            for (int m = 0; m < q->M; m++)
                w += aqi_codeword(q, m, b[m])[t * g + a];
            e[a] = s * w - T[a];
            if (!A)
                d += e[a] * e[a];
        }
        if (A)
            for (int64_t a = 0; a < g; a++)
                for (int64_t c = 0; c < g; c++)
                    d += e[a] * A[a * g + c] * e[c];
    }
    return d;
}

/* One coordinate pass over the M codes of a tile, each code the exact argmin with the others
 * fixed (the current code is a candidate, so no step increases the distance). */
static int vstep_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const vstep_job *job = arg;
    const aq_quant *q = job->q;
    (void)worker;
    for (int64_t n = begin; n < end; n++) {
        const int64_t i = job->tiles[n], p = i / q->n_in_groups, j = i % q->n_in_groups;
        uint32_t *b = job->codes + n * q->M, old[64];
        for (int m = 0; m < q->M; m++)
            old[m] = b[m] = aqi_code_get(q, p, j, m);
        const double before = tile_distance(job, p, j, b);
        double best = before;
        for (int m = 0; m < q->M; m++) {
            uint32_t keep = b[m];
            for (uint32_t k = 0; k < (uint32_t)q->K; k++) {
                b[m] = k;
                double d = tile_distance(job, p, j, b);
                if (d < best) {
                    best = d;
                    keep = k;
                }
            }
            b[m] = keep;
        }
        int ok = best < before;
        if (ok && job->trust > 0.0) { /* ‖Ŵ_new − Ŵ_old‖ ≤ trust · ‖Ŵ_old‖ on the tile */
            double diff = 0.0, norm = 0.0;
            for (int64_t e = 0; e < (int64_t)q->go * q->g; e++) {
                double wn = 0.0, wo = 0.0;
                for (int m = 0; m < q->M; m++) {
                    wn += aqi_codeword(q, m, b[m])[e];
                    wo += aqi_codeword(q, m, old[m])[e];
                }
                diff += (wn - wo) * (wn - wo);
                norm += wo * wo;
            }
            ok = sqrt(diff) <= job->trust * sqrt(norm);
        }
        job->accepted[n] = (uint8_t)ok;
    }
    return AQ_OK;
}

typedef struct scored { double d; int64_t i; } scored;

static int by_distance_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i); /* ties: lower index first, deterministic */
}

int aq_vstep(aq_context *ctx, aq_quant *q, const float *target, int64_t ld, const aq_hessian *H,
             const aq_options *options, int64_t *n_changed)
{
    const char *fn = "aq_vstep";
    aqi_options_values defaults;
    const aqi_options_values *o;
    vstep_job job;
    scored *all = NULL;
    int st = AQ_OK;
    if (!ctx)
        return AQ_ERR_INVALID_ARG;
    if (!q || !target)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, q ? "target" : "quant");
    if (ld < q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: ld %lld < %lld columns", fn, (long long)ld, (long long)q->cols);
    if (q->M > 64 || (int64_t)q->g > 256)
        return aqi_fail(ctx, AQ_ERR_UNSUPPORTED, "%s: more than 64 codebooks or groups wider than 256", fn);
    if (H && aq_hessian_num_inputs(H) != q->cols)
        return aqi_fail(ctx, AQ_ERR_SHAPE, "%s: Hessian has %lld inputs, the matrix %lld columns", fn,
                        (long long)aq_hessian_num_inputs(H), (long long)q->cols);
    if (!aqi_all_finite_f32(target, q->rows, q->cols, ld))
        return aqi_fail(ctx, AQ_ERR_NONFINITE, "%s: target contains NaN or Inf", fn);
    aqi_options_defaults(&defaults);
    o = options ? &options->v : &defaults;
    memset(&job, 0, sizeof job);
    job.q = q, job.target = target, job.ld = ld, job.trust = o->vstep_trust_ratio;
    const int64_t N = q->n_out_groups * q->n_in_groups, g = q->g;
    int64_t budget = (int64_t)ceil(o->vstep_max_fraction * (double)N);
    if (budget > N)
        budget = N;
    double *blocks = NULL;
    if (H) {
        if (!(blocks = aqi_alloc(ctx, sizeof(double) * (size_t)(q->n_in_groups * g * g))))
            return AQ_ERR_NOMEM;
        for (int64_t j = 0; j < q->n_in_groups && st == AQ_OK; j++)
            st = aq_hessian_copy_block(H, blocks + j * g * g, g, j, 0.0);
        job.blocks = blocks;
    }
    if (st == AQ_OK && !(all = aqi_alloc(ctx, sizeof(scored) * (size_t)N)))
        st = AQ_ERR_NOMEM;
    if (st == AQ_OK) { /* distance of every tile with its current codes */
        uint32_t b[64];
        for (int64_t i = 0; i < N; i++) {
            const int64_t p = i / q->n_in_groups, j = i % q->n_in_groups;
            for (int m = 0; m < q->M; m++)
                b[m] = aqi_code_get(q, p, j, m);
            all[i].d = tile_distance(&job, p, j, b);
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
                all[i].d = all[i].d > 0.0 && u > 0.0 ? log(u) / all[i].d : -INFINITY;
            }
        }
        qsort(all, (size_t)N, sizeof *all, by_distance_desc);
    }
    int64_t *tiles = NULL;
    if (st == AQ_OK && (!(tiles = aqi_alloc(ctx, sizeof(int64_t) * (size_t)(budget ? budget : 1)))
                        || !(job.codes = aqi_alloc(ctx, sizeof(uint32_t) * (size_t)((budget ? budget : 1) * q->M)))
                        || !(job.accepted = aqi_alloc(ctx, (size_t)(budget ? budget : 1)))))
        st = AQ_ERR_NOMEM;
    if (st == AQ_OK) {
        for (int64_t n = 0; n < budget; n++)
            tiles[n] = all[n].i;
        job.tiles = tiles;
        st = aqi_parallel_for(ctx, budget, vstep_range, &job);
    }
    if (st == AQ_OK) { /* commit: only accepted tiles change */
        int64_t changed = 0;
        for (int64_t n = 0; n < budget; n++) {
            if (!job.accepted[n])
                continue;
            const int64_t p = tiles[n] / q->n_in_groups, j = tiles[n] % q->n_in_groups;
            for (int m = 0; m < q->M; m++) {
                changed += aqi_code_get(q, p, j, m) != job.codes[n * q->M + m];
                aqi_code_set(q, p, j, m, job.codes[n * q->M + m]);
            }
        }
        if (n_changed)
            *n_changed = changed;
    }
    aqi_free(ctx, blocks);
    aqi_free(ctx, all);
    aqi_free(ctx, tiles);
    aqi_free(ctx, job.codes);
    aqi_free(ctx, job.accepted);
    return st;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Lloyd / EM rounds of one codebook stage (see em.h and docs/algorithms.md eq. 3–5).
 *
 * Determinism: the E-step treats every point independently, the M-step every cluster
 * independently (its points in increasing index order, whatever the split), and the objective is summed over
 * fixed blocks in order; so the results do not depend on the number of threads. With a
 * communicator (core/comm.h) each rank takes its share of the input groups or points (E-step),
 * clusters (M-step) and blocks (objective), computed exactly as above, and the shares are
 * broadcast: the same bits for any number of ranks. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/comm.h"
#include "init/assign.h"
#include "init/em.h"

#define AQI_EM_OBJECTIVE_BLOCK 4096 /* points per partial sum of the objective */
#define AQI_EM_PROPOSAL_CHUNK 4096  /* points per committed batch of Euclidean proposals */
#define AQI_PI 3.14159265358979323846

static int is_mahalanobis(const aqi_em_metric *m)
{
    return m->blocks != NULL;
}

static const double *group_block(const aqi_em_metric *m, int64_t j)
{
    return m->blocks + j * m->g * m->g;
}

static double point_weight(const aqi_em_metric *m, int64_t i)
{
    return m->weights ? m->weights[i / m->n_groups] : 1.0;
}

/* eᵀ H e for e = r − c of one tile row (g values). */
static double row_quadratic(const double *H, const float *r, const float *c, int64_t g)
{
    double acc = 0.0;
    for (int64_t a = 0; a < g; a++) {
        double ea = (double)r[a] - (double)c[a], h_e = 0.0;
        for (int64_t b = 0; b < g; b++)
            h_e += H[a * g + b] * ((double)r[b] - (double)c[b]);
        acc += ea * h_e;
    }
    return acc;
}

/* w_i d(r_i, c): eq. (3) for one point, or the weighted squared Euclidean distance. */
static double point_distance(const aqi_em_metric *m, int64_t i, const float *r, const float *c)
{
    double d = 0.0;
    if (is_mahalanobis(m)) {
        const double *H = group_block(m, i % m->n_groups);
        for (int64_t t = 0; t < m->go; t++)
            d += row_quadratic(H, r + t * m->g, c + t * m->g, m->g);
    } else {
        for (int64_t a = 0; a < m->D; a++) {
            double e = (double)r[a] - (double)c[a];
            d += e * e;
        }
    }
    return point_weight(m, i) * d;
}

/* ---------------------------------------------------------------- work buffers */

/* Clusters whose statistics a worker holds at once: its share of K, at most MSTEP_BYTES of
 * them (at 1x16 g8 the Mahalanobis statistics are 65,536 × 73 doubles, 37 MiB). A worker's range
 * is taken in chunks of this size, each from one more read of the codes. */
#define MSTEP_BYTES ((int64_t)4 << 20)
static int64_t mstep_chunk(const aqi_em_metric *metric, int64_t K, int n_workers)
{
    const int64_t per_cluster = 1 + metric->D + (is_mahalanobis(metric) ? metric->g * metric->g : 0);
    int64_t share = (K + n_workers - 1) / n_workers, cap = MSTEP_BYTES / (per_cluster * (int64_t)sizeof(double));
    cap = cap < 1 ? 1 : cap;
    return share < cap ? share : cap;
}

int aqi_em_work_init(aqi_em_work *w, aq_context *ctx, const aqi_em_metric *metric, int64_t K)
{
    const int64_t N = metric->n_points, D = metric->D;
    const int64_t n_blocks = (N + AQI_EM_OBJECTIVE_BLOCK - 1) / AQI_EM_OBJECTIVE_BLOCK;
    size_t bytes_q = 0, bytes_ct, bytes_tables, bytes_codes, bytes_changed, bytes_partials, bytes_mstep;
    int64_t n_tasks;
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
    w->metric = metric;
    w->K = K;
    w->Kp = aqi_assign_padded_k(K);
    w->n_workers = aqi_num_workers(ctx);
    n_tasks = metric->n_groups > w->n_workers ? metric->n_groups : w->n_workers;
    /* proposals are committed per group (Mahalanobis) or per chunk of points (Euclidean), so a
     * worker needs room for the larger of the two, not N */
    w->proposal_stride = N / metric->n_groups > AQI_EM_PROPOSAL_CHUNK ? N / metric->n_groups : AQI_EM_PROPOSAL_CHUNK;
    /* M-step chunk: weight, Y (D) and A (g×g, Mahalanobis) per cluster; then A for the
     * Euclidean metric, L (g×g), X (D), the Adam state (3D) and a float candidate (≤ D). */
    w->mstep_max_clusters = mstep_chunk(metric, K, w->n_workers);
    w->mstep_stride = w->mstep_max_clusters * (1 + D + (is_mahalanobis(metric) ? metric->g * metric->g : 0))
                      + 2 * metric->g * metric->g + 5 * D;
    if ((is_mahalanobis(metric)
         && aqi_bytes(ctx, &bytes_q, (int64_t)w->n_workers * (N / metric->n_groups) * D, sizeof(float), "queries"))
        || aqi_bytes(ctx, &bytes_ct, D * w->Kp, sizeof(float), "centroids")
        || aqi_bytes(ctx, &bytes_tables, (int64_t)w->n_workers * w->Kp, sizeof(float), "tables")
        || aqi_bytes(ctx, &bytes_codes, (int64_t)w->n_workers * w->proposal_stride, sizeof(int32_t), "proposals")
        || aqi_bytes(ctx, &bytes_changed, n_tasks, sizeof(int64_t), "counters")
        || aqi_bytes(ctx, &bytes_partials, n_blocks, sizeof(double), "partial sums")
        || aqi_bytes(ctx, &bytes_mstep, w->mstep_stride * w->n_workers, sizeof(double), "M-step scratch"))
        return AQ_ERR_OVERFLOW;
    if ((bytes_q && !(w->Q = aqi_alloc(ctx, bytes_q)))
        || !(w->CT = aqi_alloc(ctx, bytes_ct))
        || !(w->tables = aqi_alloc(ctx, bytes_tables))
        || !(w->codes_new = aqi_alloc(ctx, bytes_codes))
        || !(w->changed = aqi_calloc(ctx, (size_t)n_tasks, sizeof(int64_t)))
        || !(w->partials = aqi_alloc(ctx, bytes_partials ? bytes_partials : sizeof(double)))
        || !(w->mstep = aqi_alloc(ctx, bytes_mstep))) {
        aqi_em_work_free(w);
        return AQ_ERR_NOMEM;
    }
    if (!is_mahalanobis(metric)) {
        int st = aqi_em_bounds_init(w);
        if (st != AQ_OK) {
            aqi_em_work_free(w);
            return st;
        }
    }
    return AQ_OK;
}

void aqi_em_work_resize(aqi_em_work *w, int64_t K)
{
    w->K = K;
    w->Kp = aqi_assign_padded_k(K);
    w->mstep_max_clusters = mstep_chunk(w->metric, K, w->n_workers); /* <= the allocated one: K only shrinks back */
    w->bounds_valid = w->prev_valid = 0;
}

void aqi_em_work_share_proposals(aqi_em_work *w, aqi_em_work *owner)
{
    if (!w->borrowed_proposals)
        aqi_free(w->ctx, w->codes_new);
    w->codes_new = owner->codes_new;
    w->borrowed_proposals = 1;
}

void aqi_em_work_free(aqi_em_work *w)
{
    aq_context *ctx = w->ctx;
    if (w->borrowed_proposals)
        w->codes_new = NULL;
    aqi_free(ctx, w->Q);
    aqi_free(ctx, w->CT);
    aqi_free(ctx, w->tables);
    aqi_free(ctx, w->codes_new);
    aqi_free(ctx, w->changed);
    aqi_free(ctx, w->partials);
    aqi_free(ctx, w->mstep);
    aqi_em_bounds_free(w);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- Q = H̃_j r_i */

typedef struct em_job {
    aqi_em_work *w;
    const aqi_em_params *params;
    const float *R;
    const float *C;
    float *C_out;
    int32_t *codes;
    int guard;
} em_job;

/* Q ← H̃_j r_i for the P points i = p·J + j of group j, contiguous (Mahalanobis only). */
static void group_queries(const aqi_em_metric *m, const float *R, int64_t j, float *Q)
{
    const int64_t g = m->g, D = m->D, J = m->n_groups, P = m->n_points / J;
    const double *H = group_block(m, j);
    for (int64_t p = 0; p < P; p++) {
        const float *r = R + (p * J + j) * D;
        float *q = Q + p * D;
        for (int64_t t = 0; t < m->go; t++)
            for (int64_t a = 0; a < g; a++) {
                double acc = 0.0;
                for (int64_t b = 0; b < g; b++)
                    acc += H[a * g + b] * (double)r[t * g + b];
                q[t * g + a] = (float)acc;
            }
    }
}

/* ---------------------------------------------------------------- objective */

static int objective_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const em_job *job = arg;
    const aqi_em_metric *m = job->w->metric;
    (void)worker;
    for (int64_t b = begin; b < end; b++) {
        int64_t i0 = b * AQI_EM_OBJECTIVE_BLOCK, i1 = i0 + AQI_EM_OBJECTIVE_BLOCK;
        double acc = 0.0;
        if (i1 > m->n_points)
            i1 = m->n_points;
        for (int64_t i = i0; i < i1; i++)
            acc += point_distance(m, i, job->R + i * m->D, job->C + (int64_t)job->codes[i] * m->D);
        job->w->partials[b] = acc;
    }
    return AQ_OK;
}

int aqi_em_objective(aqi_em_work *w, const float *R, const float *C, const int32_t *codes,
                     double *objective)
{
    const int64_t n_blocks = (w->metric->n_points + AQI_EM_OBJECTIVE_BLOCK - 1) / AQI_EM_OBJECTIVE_BLOCK;
    em_job job = {w, NULL, R, C, NULL, (int32_t *)codes, 0};
    double total = 0.0;
    int64_t b0, b1;
    aqi_comm_my_share(w->ctx, n_blocks, &b0, &b1);
    int st = aqi_parallel_for_range(w->ctx, b0, b1, objective_range, &job);
    st = aqi_comm_allgather(w->ctx, "aq_init", st, w->partials, n_blocks, sizeof(double));
    if (st != AQ_OK)
        return st;
    for (int64_t b = 0; b < n_blocks; b++)
        total += w->partials[b];
    *objective = total;
    return AQ_OK;
}

/* ---------------------------------------------------------------- E-step */

/* t_k = Σ_rows c_kᵀ H c_k for one block H (or ‖c_k‖² when H is NULL), padded. */
static void score_table(const aqi_em_work *w, const double *H, const float *C, float *table)
{
    const aqi_em_metric *m = w->metric;
    for (int64_t k = 0; k < w->K; k++) {
        const float *c = C + k * m->D;
        double acc = 0.0;
        if (H) {
            for (int64_t t = 0; t < m->go; t++)
                for (int64_t a = 0; a < m->g; a++) {
                    double h_c = 0.0;
                    for (int64_t b = 0; b < m->g; b++)
                        h_c += H[a * m->g + b] * (double)c[t * m->g + b];
                    acc += (double)c[t * m->g + a] * h_c;
                }
        } else {
            for (int64_t a = 0; a < m->D; a++)
                acc += (double)c[a] * (double)c[a];
        }
        table[k] = (float)acc;
    }
    aqi_assign_pad_table(table, w->K, w->Kp);
}

/* Accept the proposals[s] for the points i = first + s·stride, s < n. */
static int64_t commit_codes(const em_job *job, const int32_t *proposals, int64_t first, int64_t n,
                            int64_t stride)
{
    const aqi_em_metric *m = job->w->metric;
    int64_t changed = 0;
    for (int64_t s = 0; s < n; s++) {
        int64_t i = first + s * stride;
        int32_t proposed = proposals[s], current = job->codes[i];
        if (proposed == current)
            continue;
        if (job->guard) {
            const float *r = job->R + i * m->D;
            if (!(point_distance(m, i, r, job->C + (int64_t)proposed * m->D)
                  < point_distance(m, i, r, job->C + (int64_t)current * m->D)))
                continue;
        }
        job->codes[i] = proposed;
        changed++;
    }
    return changed;
}

/* Euclidean: one table for all points; tasks are ranges of points. */
static int estep_points_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const em_job *job = arg;
    aqi_em_work *w = job->w;
    const int64_t D = w->metric->D;
    if (worker >= w->n_workers)
        return aqi_fail(w->ctx, AQ_ERR_INTERNAL, "E-step: the thread count changed during the call");
    int32_t *proposals = w->codes_new + (int64_t)worker * w->proposal_stride;
    for (int64_t b = begin; b < end; b += AQI_EM_PROPOSAL_CHUNK) {
        const int64_t n = end - b < AQI_EM_PROPOSAL_CHUNK ? end - b : AQI_EM_PROPOSAL_CHUNK;
        aqi_assign_argmin(job->R + b * D, n, D, w->CT, w->tables, D, w->Kp, proposals, 1, NULL);
        w->changed[worker] += commit_codes(job, proposals, b, n, 1);
    }
    return AQ_OK;
}

/* Mahalanobis: tasks are input groups j, each with its own table; the worker's Q holds the
 * queries H̃_j r_i of the points i = p·J + j of group j contiguously, proposals likewise
 * (computed per group and round: N·D·g multiply-adds against the scan's N·D·K, and no N × D
 * copy of the residual). */
static int estep_groups_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const em_job *job = arg;
    aqi_em_work *w = job->w;
    const aqi_em_metric *m = w->metric;
    const int64_t J = m->n_groups, P = m->n_points / J;
    float *table = w->tables + (int64_t)worker * w->Kp;
    if (worker >= w->n_workers)
        return aqi_fail(w->ctx, AQ_ERR_INTERNAL, "E-step: the thread count changed during the call");
    float *Q = w->Q + (int64_t)worker * P * m->D;
    int32_t *proposals = w->codes_new + (int64_t)worker * w->proposal_stride;
    for (int64_t j = begin; j < end; j++) {
        score_table(w, group_block(m, j), job->C, table);
        group_queries(m, job->R, j, Q);
        aqi_assign_argmin(Q, P, m->D, w->CT, table, m->D, w->Kp, proposals, 1, NULL);
        w->changed[j] = commit_codes(job, proposals, j, P, J);
    }
    return AQ_OK;
}

int aqi_em_estep(aqi_em_work *w, const float *R, const float *C, int32_t *codes, int guard,
                 int64_t *n_changed)
{
    const aqi_em_metric *m = w->metric;
    em_job job = {w, NULL, R, C, NULL, codes, guard};
    int64_t n_tasks = is_mahalanobis(m) ? m->n_groups : w->n_workers;
    int st;
    aqi_assign_transpose(w->CT, C, w->K, w->Kp, m->D);
    if (!is_mahalanobis(m) && w->upper && w->use_bounds) {
        score_table(w, NULL, C, w->tables);
        return aqi_em_estep_bounded(w, R, C, codes, guard, n_changed);
    }
    w->bounds_valid = 0; /* the codes may change without the bounds */
    memset(w->changed, 0, sizeof(int64_t) * (size_t)n_tasks);
    if (is_mahalanobis(m)) {
        int64_t j0, j1;
        aqi_comm_my_share(w->ctx, m->n_groups, &j0, &j1);
        st = aqi_parallel_for_range(w->ctx, j0, j1, estep_groups_range, &job);
        st = aqi_em_share_group_codes(w, st, codes, j0, j1);
    } else {
        int64_t i0, i1;
        score_table(w, NULL, C, w->tables);
        aqi_comm_my_share(w->ctx, m->n_points, &i0, &i1);
        st = aqi_parallel_for_range(w->ctx, i0, i1, estep_points_range, &job);
        st = aqi_em_share_point_codes(w, st, codes, i0, i1);
    }
    if (st != AQ_OK)
        return st;
    *n_changed = 0;
    for (int64_t t = 0; t < n_tasks; t++)
        *n_changed += w->changed[t];
    /* The per-group counts were exchanged with the codes; the per-worker ones are summed. */
    return is_mahalanobis(m) ? AQ_OK : aqi_comm_sum_count(w->ctx, "aq_init", n_changed);
}

/* ---------------------------------------------------------------- M-step */

/* Sufficient statistics of clusters [k0, k1) in one sequential pass over the points, so every
 * cluster's sums run in increasing point order whatever the split: the weight W_k = Σ w_i,
 * Y_k,t = Σ w_i H̃_j(i) r_i,t for each tile row t (go×g) and, for the Mahalanobis metric,
 * A_k = Σ w_i H̃_j(i) (g×g; for the Euclidean metric A_k = W_k·I is implicit). */
static void cluster_statistics(const aqi_em_work *w, const float *R, const int32_t *codes, int64_t k0,
                               int64_t k1, double *weight, double *A, double *Y)
{
    const aqi_em_metric *m = w->metric;
    const int64_t g = m->g, D = m->D, J = m->n_groups, P = m->n_points / J;
    memset(weight, 0, sizeof(double) * (size_t)(k1 - k0));
    memset(Y, 0, sizeof(double) * (size_t)((k1 - k0) * D));
    if (A)
        memset(A, 0, sizeof(double) * (size_t)((k1 - k0) * g * g));
    for (int64_t p = 0, i = 0; p < P; p++) {
        const double wt = m->weights ? m->weights[p] : 1.0;
        for (int64_t j = 0; j < J; j++, i++) {
            const int64_t k = codes[i];
            if (k < k0 || k >= k1)
                continue;
            const float *r = R + i * D;
            double *y = Y + (k - k0) * D;
            weight[k - k0] += wt;
            if (!is_mahalanobis(m)) {
                for (int64_t a = 0; a < D; a++)
                    y[a] += wt * (double)r[a];
                continue;
            }
            const double *H = group_block(m, j);
            double *Ak = A + (k - k0) * g * g;
            for (int64_t e = 0; e < g * g; e++)
                Ak[e] += wt * H[e];
            for (int64_t t = 0; t < m->go; t++)
                for (int64_t a = 0; a < g; a++) {
                    double h_r = 0.0;
                    for (int64_t b = 0; b < g; b++)
                        h_r += H[a * g + b] * (double)r[t * g + b];
                    y[t * g + a] += wt * h_r;
                }
        }
    }
}

/* Σ_t c_tᵀ A c_t − 2 Y·c: the cluster's objective up to a constant. */
static double cluster_cost(const double *A, const double *Y, const float *c, int64_t go, int64_t g)
{
    double cost = 0.0;
    for (int64_t t = 0; t < go; t++)
        for (int64_t a = 0; a < g; a++) {
            double a_c = 0.0;
            for (int64_t b = 0; b < g; b++)
                a_c += A[a * g + b] * (double)c[t * g + b];
            cost += (double)c[t * g + a] * (a_c - 2.0 * Y[t * g + a]);
        }
    return cost;
}

/* Exact M-step (eq. 4): A c_t = Y_t for every tile row, by Cholesky. Returns 0 if A is not
 * numerically positive definite (the centroid is then kept). */
static int solve_centroid(const aqi_em_metric *m, const double *A, const double *Y, double *L,
                          double *X, float *c)
{
    const int64_t g = m->g;
    memcpy(L, A, sizeof(double) * (size_t)(g * g));
    memcpy(X, Y, sizeof(double) * (size_t)m->D);
    /* Column-major g × go right-hand sides: column t is tile row t, as stored. */
    if (LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)g, L, (lapack_int)g) != 0)
        return 0;
    if (LAPACKE_dpotrs_work(LAPACK_COL_MAJOR, 'U', (lapack_int)g, (lapack_int)m->go, L, (lapack_int)g, X,
                            (lapack_int)g) != 0)
        return 0;
    for (int64_t a = 0; a < m->D; a++) {
        if (!isfinite(X[a]))
            return 0;
        c[a] = (float)X[a];
    }
    return 1;
}

/* The reference's partial M-step: Adam (β = 0.9, 0.999, ε = 1e-8) on
 * L(C) = (1/N) Σ_i w_i d(r_i, c_{b_i}) with a cosine schedule from lr to 0.1·lr; the gradient
 * for centroid k is (2/N)(A c_t − Y_t) per tile row. Adam acts per coordinate, so running it
 * cluster by cluster is the same as on the whole codebook. */
static void adam_centroid(const aqi_em_metric *m, const aqi_em_params *p, const double *A,
                          const double *Y, double *state, float *c)
{
    const int64_t g = m->g, D = m->D;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, lr_min = 0.1 * p->adam_lr;
    const double scale = 2.0 / (double)m->n_points;
    double *x = state, *mom = state + D, *vel = state + 2 * D;
    for (int64_t a = 0; a < D; a++) {
        x[a] = c[a];
        mom[a] = vel[a] = 0.0;
    }
    for (int64_t s = 0; s < p->adam_steps; s++) {
        const double lr = lr_min + (p->adam_lr - lr_min) * 0.5 * (1.0 + cos(AQI_PI * (double)s / (double)p->adam_steps));
        const double bc1 = 1.0 - pow(b1, (double)(s + 1)), bc2 = 1.0 - pow(b2, (double)(s + 1));
        for (int64_t t = 0; t < m->go; t++)
            for (int64_t a = 0; a < g; a++) {
                double grad = -Y[t * g + a];
                for (int64_t b = 0; b < g; b++)
                    grad += A[a * g + b] * x[t * g + b];
                grad *= scale;
                mom[t * g + a] = b1 * mom[t * g + a] + (1.0 - b1) * grad;
                vel[t * g + a] = b2 * vel[t * g + a] + (1.0 - b2) * grad * grad;
            }
        for (int64_t a = 0; a < D; a++)
            x[a] -= lr * (mom[a] / bc1) / (sqrt(vel[a] / bc2) + eps);
    }
    for (int64_t a = 0; a < D; a++)
        c[a] = (float)x[a];
}

static int mstep_range(void *arg, int64_t k0, int64_t k1, int worker)
{
    const em_job *job = arg;
    const aqi_em_work *w = job->w;
    const aqi_em_metric *m = w->metric;
    const int64_t g = m->g, D = m->D, n = w->mstep_max_clusters;
    if (worker >= w->n_workers)
        return aqi_fail(w->ctx, AQ_ERR_INTERNAL, "M-step: the thread count changed during the call");
    double *stats = w->mstep + (int64_t)worker * w->mstep_stride;
    double *weight = stats, *Y = weight + n, *A_all = is_mahalanobis(m) ? Y + n * D : NULL;
    double *A_unit = Y + n * D + (A_all ? n * g * g : 0), *L = A_unit + g * g, *X = L + g * g, *state = X + D;
    float *cand = (float *)(state + 3 * D);
    /* chunks of at most n clusters; a cluster's sums run over the points in order either way */
    for (int64_t c0 = k0; c0 < k1; c0 += n) {
        const int64_t c1 = k1 - c0 < n ? k1 : c0 + n;
        cluster_statistics(w, job->R, job->codes, c0, c1, weight, A_all, Y);
        for (int64_t k = c0; k < c1; k++) {
            float *c = job->C_out + k * D;
            const double *y = Y + (k - c0) * D, *A;
            if (weight[k - c0] == 0.0)
                continue; /* empty cluster keeps its centroid */
            if (A_all) {
                A = A_all + (k - c0) * g * g;
            } else { /* Euclidean: A = W_k·I */
                memset(A_unit, 0, sizeof(double) * (size_t)(g * g));
                for (int64_t a = 0; a < g; a++)
                    A_unit[a * g + a] = weight[k - c0];
                A = A_unit;
            }
            if (job->params->adam_mstep) {
                adam_centroid(m, job->params, A, y, state, c);
                continue;
            }
            if (!solve_centroid(m, A, y, L, X, cand))
                continue;
            /* Keep the old centroid unless the rounded solution is at least as good. */
            if (cluster_cost(A, y, cand, m->go, g) <= cluster_cost(A, y, c, m->go, g))
                memcpy(c, cand, sizeof(float) * (size_t)D);
        }
    }
    return AQ_OK;
}

int aqi_em_mstep(aqi_em_work *w, const aqi_em_params *params, const float *R, float *C,
                 const int32_t *codes)
{
    em_job job = {w, params, R, NULL, C, (int32_t *)codes, 0};
    int64_t k0, k1;
    aqi_comm_my_share(w->ctx, w->K, &k0, &k1);
    int st = aqi_parallel_for_range(w->ctx, k0, k1, mstep_range, &job);
    return aqi_comm_allgather(w->ctx, "aq_init", st, C, w->K, sizeof(float) * (size_t)w->metric->D);
}

/* ---------------------------------------------------------------- driver */

int aqi_em_run(aqi_em_work *w, const aqi_em_params *params, const float *R, float *C,
               int32_t *codes, int assign_first, double *final_objective)
{
    double objective, next;
    int64_t changed;
    int st;
    w->bounds_valid = w->prev_valid = 0; /* R or the codes may have changed since the last run */
    if (assign_first) {
        for (int64_t i = 0; i < w->metric->n_points; i++)
            codes[i] = 0;
        if ((st = aqi_em_estep(w, R, C, codes, 0, &changed)) != AQ_OK)
            return st;
    }
    if ((st = aqi_em_objective(w, R, C, codes, &objective)) != AQ_OK
        || (st = aqi_comm_agree(w->ctx, "aq_init", aqi_progress(w->ctx, params->operation, params->stage,
                                                                  params->n_stages, 0, objective))) != AQ_OK)
        return st;
    for (int64_t round = 1; round <= params->max_rounds; round++) {
        aqi_em_bounds_mark(w, C);
        if ((st = aqi_em_mstep(w, params, R, C, codes)) != AQ_OK
            || (st = aqi_em_estep(w, R, C, codes, 1, &changed)) != AQ_OK
            || (st = aqi_em_objective(w, R, C, codes, &next)) != AQ_OK
            || (st = aqi_comm_agree(w->ctx, "aq_init", aqi_progress(w->ctx, params->operation, params->stage,
                                                                      params->n_stages, (int32_t)round, next))) != AQ_OK)
            return st;
        const double decrease = objective > 0.0 ? (objective - next) / objective : 0.0;
        objective = next;
        if (changed == 0 || decrease < params->tol)
            break;
    }
    *final_objective = objective;
    return AQ_OK;
}

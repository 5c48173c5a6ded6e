/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Bounded Euclidean E-step (Hamerly's bounds): Lloyd rounds without a full scan of the points
 * whose nearest centroid provably did not change.
 *
 * Each point keeps an upper bound u_i ≥ ‖r_i − c_{a_i}‖ on the distance to its centroid and a
 * lower bound l_i ≤ min_{k≠a_i} ‖r_i − c_k‖ on the distance to any other. When the M-step moves
 * centroid k by δ_k = ‖c_k' − c_k‖, the triangle inequality gives
 *     u_i' = u_i + δ_{a_i},   l_i' = l_i − max_{k≠a_i} δ_k,
 * and if u_i' ≤ l_i' no centroid is closer than a_i: the point is skipped. Otherwise u_i is
 * tightened to the exact distance and, if still above l_i, the point is scanned with the fused
 * top-2 kernel (assign.h), which also yields the new l_i from the runner-up score.
 *
 * The decisions equal the full E-step's: a skipped point has no strictly closer centroid in exact
 * arithmetic, and a scanned point goes through the same kernel and the same double-precision
 * guard. Every bound is rounded outwards when stored as float, and the lower bound from a
 * float score subtracts that score's rounding error bound, so the bounds stay valid. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "init/assign.h"
#include "core/comm.h"
#include "init/em.h"

#define AQI_BOUNDS_CHUNK 256 /* points per scan batch, on the worker's stack */

/* ‖r − c‖ in double. */
static double euclid_distance(const float *r, const float *c, int64_t D)
{
    double acc = 0.0;
    for (int64_t a = 0; a < D; a++) {
        double e = (double)r[a] - (double)c[a];
        acc += e * e;
    }
    return sqrt(acc);
}

static double squared_norm(const float *r, int64_t D)
{
    double acc = 0.0;
    for (int64_t a = 0; a < D; a++)
        acc += (double)r[a] * (double)r[a];
    return acc;
}

/* The float one ulp away, by its bit pattern (inlined: nextafterf is a library call and these
 * run once per point per round): up for 0 ≤ f < FLT_MAX, down for 0 < f ≤ +inf. */
static float float_step(float f, int32_t ulps)
{
    int32_t bits;
    memcpy(&bits, &f, sizeof bits);
    bits += ulps;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Smallest float ≥ v for v ≥ 0 (distances), +inf stays. */
static float round_up(double v)
{
    const float f = (float)v;
    return f < FLT_MAX ? float_step(f > 0.0f ? f : 0.0f, 1) : f;
}

/* A float ≤ v, ≥ 0. */
static float round_down(double v)
{
    const float f = (float)v;
    return f > 0.0f ? float_step(f, -1) : 0.0f;
}

int aqi_em_bounds_init(aqi_em_work *w)
{
    const int64_t N = w->metric->n_points, K = w->K, D = w->metric->D;
    size_t bytes_b, bytes_prev, bytes_drift;
    if (aqi_bytes(w->ctx, &bytes_b, N, sizeof(float), "E-step bounds")
        || aqi_bytes(w->ctx, &bytes_prev, K * D, sizeof(float), "previous centroids")
        || aqi_bytes(w->ctx, &bytes_drift, K, sizeof(double), "centroid drift"))
        return AQ_ERR_OVERFLOW;
    if (!(w->upper = aqi_alloc(w->ctx, bytes_b)) || !(w->lower = aqi_alloc(w->ctx, bytes_b))
        || !(w->C_prev = aqi_alloc(w->ctx, bytes_prev)) || !(w->drift = aqi_alloc(w->ctx, bytes_drift))
        || !(w->scanned = aqi_calloc(w->ctx, (size_t)w->n_workers, sizeof(int64_t))))
        return AQ_ERR_NOMEM;
    w->use_bounds = 1;
    return AQ_OK;
}

void aqi_em_bounds_free(aqi_em_work *w)
{
    aqi_free(w->ctx, w->upper);
    aqi_free(w->ctx, w->lower);
    aqi_free(w->ctx, w->C_prev);
    aqi_free(w->ctx, w->drift);
    aqi_free(w->ctx, w->scanned);
}

void aqi_em_bounds_mark(aqi_em_work *w, const float *C)
{
    if (!w->upper || !w->use_bounds || !w->bounds_valid)
        return;
    memcpy(w->C_prev, C, sizeof(float) * (size_t)(w->K * w->metric->D));
    w->prev_valid = 1;
}

typedef struct bounds_job {
    aqi_em_work *w;
    const float *R, *C;
    int32_t *codes;
    int guard, full;
    int64_t k_max;          /* centroid that moved most */
    double drift_max, drift_second; /* largest and second-largest δ_k */
    double score_slack;     /* per unit of (‖r‖² + 2 max_k ‖c_k‖²): rounding bound of a float score */
    double two_cc_max;      /* 2 max_k ‖c_k‖² */
} bounds_job;

/* Scan the batch idx[0..n) with the top-2 kernel and update codes and bounds. */
static int64_t scan_batch(const bounds_job *job, const int64_t *idx, int64_t n)
{
    aqi_em_work *w = job->w;
    const int64_t D = w->metric->D;
    int32_t code[AQI_BOUNDS_CHUNK];
    float best[AQI_BOUNDS_CHUNK], second[AQI_BOUNDS_CHUNK];
    int64_t changed = 0;
    aqi_assign_top2(job->R, idx, n, D, w->CT, w->tables, D, w->Kp, code, best, second);
    for (int64_t s = 0; s < n; s++) {
        const int64_t i = idx[s];
        const float *r = job->R + i * D;
        const int32_t current = job->codes[i], proposed = code[s];
        const double rr = squared_norm(r, D), slack = job->score_slack * (rr + job->two_cc_max);
        double runner_up = (double)second[s]; /* score of the best centroid other than the result */
        int32_t result = current;
        if (proposed != current) {
            int accept = !job->guard
                         || euclid_distance(r, job->C + (int64_t)proposed * D, D)
                                < euclid_distance(r, job->C + (int64_t)current * D, D);
            if (accept) {
                result = proposed;
                changed++;
            } else {
                runner_up = (double)best[s]; /* the rejected proposal competes with current */
            }
        }
        job->codes[i] = result;
        w->upper[i] = round_up(euclid_distance(r, job->C + (int64_t)result * D, D));
        /* ‖r − c_k‖² = ‖r‖² + (t_k − 2 r·c_k) */
        const double low2 = rr + runner_up - slack;
        w->lower[i] = (double)second[s] >= (double)FLT_MAX ? FLT_MAX : round_down(low2 > 0.0 ? sqrt(low2) : 0.0);
    }
    return changed;
}

static int bounds_range(void *arg, int64_t begin, int64_t end, int worker)
{
    const bounds_job *job = arg;
    aqi_em_work *w = job->w;
    const int64_t D = w->metric->D;
    int64_t idx[AQI_BOUNDS_CHUNK], n = 0, changed = 0, scanned = 0;
    if (worker >= w->n_workers)
        return aqi_fail(w->ctx, AQ_ERR_INTERNAL, "E-step: the thread count changed during the call");
    for (int64_t i = begin; i < end; i++) {
        if (!job->full) {
            const int32_t a = job->codes[i];
            double u = (double)w->upper[i] + w->drift[a];
            const double l = (double)w->lower[i] - (a == job->k_max ? job->drift_second : job->drift_max);
            if (u > l) /* tighten u to the exact distance before scanning */
                u = euclid_distance(job->R + i * D, job->C + (int64_t)a * D, D);
            if (u <= l) {
                w->upper[i] = round_up(u);
                w->lower[i] = round_down(l > 0.0 ? l : 0.0);
                continue;
            }
        }
        idx[n++] = i;
        if (n == AQI_BOUNDS_CHUNK) {
            changed += scan_batch(job, idx, n);
            scanned += n;
            n = 0;
        }
    }
    if (n) {
        changed += scan_batch(job, idx, n);
        scanned += n;
    }
    w->changed[worker] += changed;
    w->scanned[worker] += scanned;
    return AQ_OK;
}

/* δ_k = ‖c_k − c_k^prev‖, rounded up, and the two largest. */
static void centroid_drift(bounds_job *job)
{
    aqi_em_work *w = job->w;
    const int64_t D = w->metric->D;
    job->k_max = -1;
    job->drift_max = job->drift_second = 0.0;
    for (int64_t k = 0; k < w->K; k++) {
        const double d = euclid_distance(job->C + k * D, w->C_prev + k * D, D) * (1.0 + 1e-12);
        w->drift[k] = d;
        if (d > job->drift_max) {
            job->drift_second = job->drift_max;
            job->drift_max = d;
            job->k_max = k;
        } else if (d > job->drift_second) {
            job->drift_second = d;
        }
    }
}

int aqi_em_estep_bounded(aqi_em_work *w, const float *R, const float *C, int32_t *codes, int guard,
                         int64_t *n_changed)
{
    bounds_job job = {w, R, C, codes, guard, !(w->bounds_valid && w->prev_valid), 0, 0.0, 0.0, 0.0, 0.0};
    const int64_t D = w->metric->D;
    int st;
    /* a float score t − 2 Σ_d q_d c_d carries at most ~(D + 2)·u_f·(‖r‖² + 2‖c‖²) of rounding */
    job.score_slack = (double)(D + 4) * 2.0 * (double)FLT_EPSILON;
    for (int64_t k = 0; k < w->K; k++) /* tables[k] = ‖c_k‖² */
        if (2.0 * (double)w->tables[k] > job.two_cc_max)
            job.two_cc_max = 2.0 * (double)w->tables[k];
    if (!job.full)
        centroid_drift(&job);
    memset(w->changed, 0, sizeof(int64_t) * (size_t)w->n_workers);
    memset(w->scanned, 0, sizeof(int64_t) * (size_t)w->n_workers);
    w->prev_valid = 0;
    w->bounds_valid = 0;
    /* With a communicator each rank scans and bounds its own share of the points, the same
     * share every round, so its bounds stay valid for exactly the points it owns. */
    int64_t i0, i1;
    aqi_comm_my_share(w->ctx, w->metric->n_points, &i0, &i1);
    st = aqi_parallel_for_range(w->ctx, i0, i1, bounds_range, &job);
    if ((st = aqi_em_share_point_codes(w, st, codes, i0, i1)) != AQ_OK)
        return st;
    w->bounds_valid = 1;
    *n_changed = 0;
    w->last_scanned = 0;
    for (int t = 0; t < w->n_workers; t++) {
        *n_changed += w->changed[t];
        w->last_scanned += w->scanned[t];
    }
    if ((st = aqi_comm_sum_count(w->ctx, "aq_init", n_changed)) != AQ_OK)
        return st;
    return aqi_comm_sum_count(w->ctx, "aq_init", &w->last_scanned);
}

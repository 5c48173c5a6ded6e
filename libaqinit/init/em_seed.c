/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Seeding of a codebook stage: K random distinct points, or k-means++ (D² sampling). */
#include <math.h>
#include <string.h>

#include "init/em.h"

static void copy_point(const aqi_em_work *w, const float *R, int64_t i, float *c)
{
    memcpy(c, R + i * w->metric->D, sizeof(float) * (size_t)w->metric->D);
}

/* The permutation of a partial Fisher–Yates shuffle of 0..N−1 kept sparsely: only the positions
 * a swap touched are stored (open addressing, linear probing; at most 2 per draw), every other
 * position i holds i. Memory O(K) instead of N indices (45 MiB at 11008×4096). */
typedef struct sparse_perm {
    int64_t *keys, *vals; /* key −1: empty */
    uint64_t mask;
} sparse_perm;

static int64_t *perm_slot(sparse_perm *p, int64_t i, int insert)
{
    uint64_t h = ((uint64_t)i * 0x9E3779B97F4A7C15ULL) & p->mask;
    while (p->keys[h] != -1 && p->keys[h] != i)
        h = (h + 1) & p->mask;
    if (p->keys[h] == -1) {
        if (!insert)
            return NULL;
        p->keys[h] = i;
        p->vals[h] = i;
    }
    return &p->vals[h];
}

static int64_t perm_get(sparse_perm *p, int64_t i)
{
    int64_t *v = perm_slot(p, i, 0);
    return v ? *v : i;
}

int aqi_seed_random_points(aqi_em_work *w, const float *R, float *C, uint64_t seed, uint64_t stream)
{
    const int64_t N = w->metric->n_points, D = w->metric->D;
    const int64_t distinct = w->K < N ? w->K : N;
    sparse_perm perm;
    uint64_t size = 4;
    while (size < 4 * (uint64_t)distinct) /* load factor <= 1/2 with 2 entries per draw */
        size *= 2;
    perm.mask = size - 1;
    perm.keys = aqi_alloc(w->ctx, sizeof(int64_t) * (size_t)size);
    perm.vals = perm.keys ? aqi_alloc(w->ctx, sizeof(int64_t) * (size_t)size) : NULL;
    aqi_rng rng;
    if (!perm.vals) {
        aqi_free(w->ctx, perm.keys);
        return AQ_ERR_NOMEM;
    }
    for (uint64_t h = 0; h < size; h++)
        perm.keys[h] = -1;
    aqi_rng_init(&rng, seed, stream);
    /* Partial Fisher–Yates: positions 0..distinct) become a uniform sample without replacement. */
    for (int64_t t = 0; t < distinct; t++) {
        int64_t s = t + (int64_t)aqi_rng_below(&rng, (uint64_t)(N - t));
        int64_t at_t = perm_get(&perm, t), at_s = perm_get(&perm, s);
        *perm_slot(&perm, t, 1) = at_s;
        *perm_slot(&perm, s, 1) = at_t;
        copy_point(w, R, at_s, C + t * D);
    }
    /* K > N: the extra centroids repeat points; their clusters stay empty and keep them. */
    for (int64_t k = distinct; k < w->K; k++)
        copy_point(w, R, (int64_t)aqi_rng_below(&rng, (uint64_t)N), C + k * D);
    aqi_free(w->ctx, perm.keys);
    aqi_free(w->ctx, perm.vals);
    return AQ_OK;
}

typedef struct pp_job {
    const aqi_em_work *w;
    const float *R;
    const float *c;
    double *d2;
} pp_job;

/* d2[i] ← min(d2[i], ‖r_i − c‖²) */
static int update_distances(void *arg, int64_t begin, int64_t end, int worker)
{
    const pp_job *job = arg;
    const int64_t D = job->w->metric->D;
    (void)worker;
    for (int64_t i = begin; i < end; i++) {
        const float *r = job->R + i * D;
        double d = 0.0;
        for (int64_t a = 0; a < D; a++) {
            double e = (double)r[a] - (double)job->c[a];
            d += e * e;
        }
        if (d < job->d2[i])
            job->d2[i] = d;
    }
    return AQ_OK;
}

int aqi_seed_kmeanspp(aqi_em_work *w, const float *R, float *C, uint64_t seed, uint64_t stream)
{
    const int64_t N = w->metric->n_points, D = w->metric->D;
    double *d2 = aqi_alloc(w->ctx, sizeof(double) * (size_t)N);
    aqi_rng rng;
    int st = AQ_OK;
    if (!d2)
        return AQ_ERR_NOMEM;
    aqi_rng_init(&rng, seed, stream);
    for (int64_t i = 0; i < N; i++)
        d2[i] = HUGE_VAL;
    copy_point(w, R, (int64_t)aqi_rng_below(&rng, (uint64_t)N), C);
    for (int64_t k = 1; k < w->K && st == AQ_OK; k++) {
        pp_job job = {w, R, C + (k - 1) * D, d2};
        double total = 0.0, target, acc = 0.0;
        int64_t pick = N - 1;
        st = aqi_parallel_for(w->ctx, N, update_distances, &job);
        for (int64_t i = 0; i < N; i++)
            total += d2[i];
        if (!(total > 0.0)) { /* every point is already a centroid: repeat one */
            copy_point(w, R, (int64_t)aqi_rng_below(&rng, (uint64_t)N), C + k * D);
            continue;
        }
        /* Sample i with probability d2[i] / total by inverting the running sum. */
        target = aqi_rng_uniform(&rng) * total;
        for (int64_t i = 0; i < N; i++) {
            acc += d2[i];
            if (acc > target && d2[i] > 0.0) {
                pick = i;
                break;
            }
        }
        copy_point(w, R, pick, C + k * D);
    }
    aqi_free(w->ctx, d2);
    return st;
}

/* Seeding of a codebook stage: K random distinct points, or k-means++ (D² sampling). */
#include <math.h>
#include <string.h>

#include "init/em.h"

static void copy_point(const aqi_em_work *w, const float *R, int64_t i, float *c)
{
    memcpy(c, R + i * w->metric->D, sizeof(float) * (size_t)w->metric->D);
}

int aqi_seed_random_points(aqi_em_work *w, const float *R, float *C, uint64_t seed, uint64_t stream)
{
    const int64_t N = w->metric->n_points, D = w->metric->D;
    const int64_t distinct = w->K < N ? w->K : N;
    int64_t *idx = aqi_alloc(w->ctx, sizeof(int64_t) * (size_t)N);
    aqi_rng rng;
    if (!idx)
        return AQ_ERR_NOMEM;
    aqi_rng_init(&rng, seed, stream);
    for (int64_t i = 0; i < N; i++)
        idx[i] = i;
    /* Partial Fisher–Yates: idx[0..distinct) is a uniform sample without replacement. */
    for (int64_t t = 0; t < distinct; t++) {
        int64_t s = t + (int64_t)aqi_rng_below(&rng, (uint64_t)(N - t));
        int64_t tmp = idx[t];
        idx[t] = idx[s];
        idx[s] = tmp;
        copy_point(w, R, idx[t], C + t * D);
    }
    /* K > N: the extra centroids repeat points; their clusters stay empty and keep them. */
    for (int64_t k = distinct; k < w->K; k++)
        copy_point(w, R, (int64_t)aqi_rng_below(&rng, (uint64_t)N), C + k * D);
    aqi_free(w->ctx, idx);
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

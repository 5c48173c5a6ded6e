/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* One codebook stage of the initialisation: Lloyd / EM rounds that fit K centroids to N
 * points under either the Euclidean distance (k-means, GREEDY) or the Hessian-weighted
 * Mahalanobis distance of OA-EM (docs/algorithms.md eq. 3–5).
 *
 * Points are the g_o × g tiles of the residual, flattened to D = g_o·g floats, in the codes'
 * order: point i = p·J + j (output group p, input group j). */
#ifndef AQINIT_EM_H
#define AQINIT_EM_H

#include "core/internal.h"

typedef struct aqi_em_metric {
    int64_t n_points;      /* N = P·J */
    int64_t n_groups;      /* J: input groups; point i lies in group i mod J */
    int64_t go, g, D;      /* tile rows, tile columns, D = go·g */
    const double *blocks;  /* J row-major g×g damped blocks H̃_j; NULL = Euclidean */
    const double *weights; /* P weights w_p of output group p (s_p²); NULL = all 1 */
} aqi_em_metric;

typedef struct aqi_em_params {
    int64_t max_rounds;   /* rounds of {M-step, E-step} after the start */
    double tol;           /* stop when (J_prev − J)/J_prev < tol */
    int adam_mstep;       /* 0: exact M-step, 1: Adam as the reference implementation */
    int64_t adam_steps;
    double adam_lr;
    const char *operation; /* progress: operation name, stage and number of stages */
    int32_t stage, n_stages;
} aqi_em_params;

/* Scratch buffers for one stage, allocated once per aq_init call. */
typedef struct aqi_em_work {
    aq_context *ctx;
    const aqi_em_metric *metric;
    int64_t K, Kp;
    float *Q;        /* per worker P × D: H̃_j r_i of one group's points (Mahalanobis); NULL for Euclidean */
    float *CT;       /* D × Kp transposed centroids */
    float *tables;   /* per worker: Kp scores t_k */
    int32_t *codes_new; /* per worker proposal_stride proposals of the E-step (borrowed: owned by another work) */
    int64_t proposal_stride; /* max(points of a group, AQI_EM_PROPOSAL_CHUNK) */
    int borrowed_proposals;
    int64_t *changed; /* per E-step task */
    double *partials; /* per objective block */
    double *mstep;    /* per worker: statistics of its clusters and solver scratch */
    int64_t mstep_stride, mstep_max_clusters;
    int n_workers;    /* chunks of a parallel loop; ranges check their chunk index against it */
    /* Euclidean only: Hamerly's bounds (em_bounds.c) */
    float *upper, *lower; /* N bounds on the distance to the own / any other centroid */
    float *C_prev;        /* K × D centroids before the last M-step */
    double *drift;        /* K distances moved by the centroids */
    int64_t *scanned;     /* per worker: points scanned in the last E-step */
    int64_t last_scanned; /* points the last bounded E-step scanned (the rest were skipped) */
    int use_bounds;       /* 1 (default): skip points the bounds prove unchanged; 0: scan all */
    int bounds_valid, prev_valid;
} aqi_em_work;

int aqi_em_work_init(aqi_em_work *w, aq_context *ctx, const aqi_em_metric *metric, int64_t K);
/* Use the buffers of @p w for a codebook of K clusters, at most the K they were allocated for
 * (the product seeding fits two small codebooks with the buffers of the large one). */
void aqi_em_work_resize(aqi_em_work *w, int64_t K);
/* Let @p w use the proposal buffer of @p owner (same number of points; the two never run at the
 * same time): N int32 less. @p w never frees the buffer; @p owner must outlive its use. */
void aqi_em_work_share_proposals(aqi_em_work *w, aqi_em_work *owner);
void aqi_em_work_free(aqi_em_work *w);

/* Σ_i w_i d(r_i, c_{codes[i]}) in double, summed in a fixed order (thread-count independent). */
int aqi_em_objective(aqi_em_work *w, const float *R, const float *C, const int32_t *codes,
                     double *objective);

/* codes[i] ← argmin_k d(r_i, c_k). With @p guard, a code only changes if the new centroid is
 * strictly closer in exact (double) arithmetic, so the objective cannot increase. */
int aqi_em_estep(aqi_em_work *w, const float *R, const float *C, int32_t *codes, int guard,
                 int64_t *n_changed);

/* Centroids ← minimisers of the objective with the codes fixed (exact: eq. 4, keeping the old
 * centroid when it is not worse; Adam: the reference's partial M-step). Empty clusters keep
 * their centroid. */
int aqi_em_mstep(aqi_em_work *w, const aqi_em_params *params, const float *R, float *C,
                 const int32_t *codes);

/* Rounds of {M-step, E-step} from consistent (C, codes), reporting progress after each
 * round; if @p assign_first, codes are first computed from C. Stops at max_rounds, when no
 * code changes, or when the relative decrease is below tol. */
int aqi_em_run(aqi_em_work *w, const aqi_em_params *params, const float *R, float *C,
               int32_t *codes, int assign_first, double *final_objective);

/* Bounded Euclidean E-step (em_bounds.c). aqi_em_run calls aqi_em_bounds_mark before every
 * M-step; aqi_em_estep then uses the bounds for the Euclidean metric when use_bounds is set and
 * scans every point otherwise (or when the bounds are not valid for the current codes). */
int aqi_em_bounds_init(aqi_em_work *w);
void aqi_em_bounds_free(aqi_em_work *w);
void aqi_em_bounds_mark(aqi_em_work *w, const float *C);
int aqi_em_estep_bounded(aqi_em_work *w, const float *R, const float *C, int32_t *codes, int guard,
                         int64_t *n_changed);
/* The exchanges after a sharded E-step (em_share.c): over input groups [j0, j1) (Mahalanobis) or
 * points [i0, i1) (Euclidean); codes travel as 16 bits. */
int aqi_em_share_group_codes(aqi_em_work *w, int status, int32_t *codes, int64_t j0, int64_t j1);
int aqi_em_share_point_codes(aqi_em_work *w, int status, int32_t *codes, int64_t i0, int64_t i1);

/* Seeding: K centroids from K distinct random points (all points and repeats if K > N), or
 * k-means++ (D² sampling, Euclidean). */
int aqi_seed_random_points(aqi_em_work *w, const float *R, float *C, uint64_t seed, uint64_t stream);
int aqi_seed_kmeanspp(aqi_em_work *w, const float *R, float *C, uint64_t seed, uint64_t stream);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* State of one beam-search pass, shared by beam.c (the driver: blocks of output groups, batches
 * of input groups, the products S = ΔW·H[:, J_batch]) and beam_step.c (one step (j, m) for a
 * sub-block of output groups: scores, selection of the children, their updates). The equations
 * (B1)–(B4) are derived at the top of beam.c. */
#ifndef AQINIT_BEAM_PASS_H
#define AQINIT_BEAM_PASS_H

#include "beam/beam.h"
#include "beam/beam_kernels.h"
#include "beam/beam_nn.h"

#define AQI_BEAM_MAX_ROWS 64  /* states scored together by one worker (a multiple of AQI_SCORE_ROWS) */
#define AQI_BEAM_K_TILE 512   /* codewords per score tile (its codebook slice stays in L1) */
#define AQI_BEAM_MAX_WIDTH 64

typedef struct aqi_beam_top { float score; int32_t k; } aqi_beam_top;
typedef struct aqi_beam_cand { double loss; int32_t b, k, changed; } aqi_beam_cand;
typedef struct aqi_beam_step { int32_t j, m; } aqi_beam_step;

/* Scratch of one worker (sized for AQI_BEAM_MAX_ROWS states). */
typedef struct aqi_beam_ws {
    float *U;              /* [rows][D] ũ of each state (B2) */
    float *scores;         /* [rows][K_TILE] */
    float *score_a;        /* [rows] score of the current code */
    aqi_beam_top *tops;    /* [rows][width] best candidates of each state */
    int32_t *n_top;        /* [rows] */
    int32_t *row_grp;      /* [rows] block-relative group of each row */
    int32_t *row_state;    /* [rows] state index of each row */
    int32_t *row_a;        /* [rows] current code of each row (width 1) */
    float *lmin;           /* [rows][lanes] running lane minima (width 1) */
    int32_t *lidx;         /* [rows][lanes] their indices */
    int32_t *pass_idx;     /* [K_TILE] candidates at or below the bound */
    float *hc;             /* [D] H_jj c_a */
    float *coef;           /* [D] coefficients of (B3) or (B4) */
    float *tile;           /* [2·g] tile rows of two states (B4) */
    float *S_first;        /* [sub-block groups·g_o][ldb] S of the first states of a sub-block */
    float **upd_S;         /* [g_o] rows of S to update */
    const float **upd_coef;/* [g_o] their coefficients */
    aqi_beam_cand *list;   /* [width] children of one group */
    int32_t *ibuf;         /* [3·width + width²] owners, new slots, used slots, new distances */
    double *dbuf;          /* [width] new losses */
    float *nn_y;           /* [K][D + 2] transformed codewords and split keys while a tree is built */
    float *nn_tile;        /* [D + 1][AQI_NN_LEAF] a leaf's codewords and tables (NN steps) */
    int64_t nn_rows, nn_scored; /* states queried by trees, codewords they scored */
    float *trace;          /* [rows][Kpad] scores (tests) */
    double *trace_dl;      /* [K] ΔL (tests) */
} aqi_beam_ws;

typedef struct aqi_beam_pass {
    const aqi_layer *layer;
    aq_quant *q;
    const aqi_beam_config *cfg;
    int32_t width, M, g, go, D;
    int64_t ncols, J, P, K, Kpad, JM;
    float *CT;                /* [M][D][Kpad] codebooks transposed, zero padded */
    aqi_beam_step *steps;     /* [n_steps] the sweep: input groups outer, codebooks inner */
    int64_t n_steps;
    /* the current batch: steps [s0, s1), i.e. input groups steps[s0 + i·M].j, i < n_batch */
    int64_t s0, s1;
    int32_t n_batch;
    int32_t ldb;              /* leading dimension of S rows and HT: batch_max · g rounded up to 16 */
    int64_t batch_max;        /* input groups per batch */
    float *HT;                /* [ncols][ldb] H[:, J_batch]: column i·g + e is input j_i·g + e */
    float *tables;            /* [batch_max·M][Kpad] t_k of each step of the batch, +inf on the padding */
    float *hc_tables;         /* [batch_max·M][K][D] H_jj c_k of each step (aqi_beam_hc), or NULL:
                               * kept when K fits one score tile, where states outnumber codewords */
    aqi_beam_nn *nn;          /* [n_nn] trees of the steps [t0, t1) of the batch, or NULL: scan (beam_nn.c) */
    int64_t n_nn;             /* trees held at once: a batch's steps run in rounds of at most n_nn */
    int64_t t0, t1;           /* the current round of steps, s0 <= t0 < t1 <= s1 (one round without trees) */
    int select_in_groups;     /* all K in one score tile, width > 1, no trace: each state's candidates
                               * are selected in the group loop (beam_step.c, select_row) */
    /* the current block of output groups [p0, p0 + R) */
    int64_t p0, R, R_max;
    uint16_t *codes;          /* [R][width] slots of J·M codes */
    float *S;                 /* [R][width] slots of g_o × ldb floats: ΔW·H[:, J_batch] (B4) */
    double *loss;             /* [R][width] by state: L minus the group's L at the start */
    int32_t *slot;            /* [R][width] slot of each state */
    int32_t *n_states;        /* [R] */
    int32_t *dist;            /* [R][width][width] number of differing codes between states */
    float *dW;                /* [R][g_o][ncols] ΔW = W − Ŵ for the codes dW_codes */
    uint16_t *dW_codes;       /* [R][J·M] kept equal to the first state's codes at batch starts */
    int32_t groups_per_sub;   /* output groups a worker takes through the batch at once */
    aqi_beam_ws *ws;
    int n_workers;
} aqi_beam_pass;

static inline uint16_t *aqi_beam_codes(const aqi_beam_pass *ps, int64_t p, int32_t slot)
{
    return ps->codes + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->JM;
}

static inline float *aqi_beam_S(const aqi_beam_pass *ps, int64_t p, int32_t slot)
{
    return ps->S + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->go * (size_t)ps->ldb;
}

/* hc = H_jj c per tile row r < go (c is a codeword, g_o × g; H symmetric, so column e of H_jj,
 * leading dimension ldb, is its row e), summed over e in increasing order from 0: the term
 * −2 H_jj c_a of ũ in (B2). One function for the per-step tables and the per-state fallback, so
 * both give the same bits. */
static inline void aqi_beam_hc(const float *c, const float *Hjj, int64_t ldb, int32_t go, int32_t g, float *hc)
{
    for (int32_t r = 0; r < go; r++) {
        float *h_r = hc + r * g;
        for (int32_t d = 0; d < g; d++)
            h_r[d] = 0.0f;
        for (int32_t e = 0; e < g; e++) {
            const float ce = c[r * g + e], *h = Hjj + (size_t)e * (size_t)ldb;
            for (int32_t d = 0; d < g; d++)
                h_r[d] += ce * h[d];
        }
    }
}

/* Keep the best `width` (score, k) of one state; key (score, changed, k) as cand_less. */
static inline void aqi_beam_top_offer(aqi_beam_top *top, int32_t *n, int32_t width, float score, int32_t k, int32_t a)
{
    int32_t pos;
    if (score != score)
        return; /* NaN never competes */
    if (*n == width) {
        const aqi_beam_top *w = &top[width - 1];
        if (score > w->score)
            return;
        if (score == w->score && ((k != a) > (w->k != a) || ((k != a) == (w->k != a) && k > w->k)))
            return;
        pos = width - 1;
    } else {
        pos = (*n)++;
    }
    while (pos > 0) {
        const aqi_beam_top *y = &top[pos - 1];
        int less = score < y->score
                   || (score == y->score && ((k != a) < (y->k != a) || ((k != a) == (y->k != a) && k < y->k)));
        if (!less)
            break;
        top[pos] = top[pos - 1];
        pos--;
    }
    top[pos].score = score;
    top[pos].k = k;
}

/* The best `width` candidates of the first `rows` states of ws (ws->U filled, rows padded to
 * AQI_SCORE_ROWS with zeros) at step position pos, from the tree of the step instead of a scan
 * of all K: the same ws->tops, ws->n_top and ws->score_a as the scan (beam_nn.c). */
void aqi_beam_nn_scan(aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t rows, const float *CTm, const float *t,
                      int64_t pos, const aqi_beam_nn *nn);

/* The step s (s0 <= s < s1) for the block groups [sb, se): scores of every state, the best
 * `width` distinct children of each group, and their updates (beam_step.c). */
void aqi_beam_run_step(aqi_beam_pass *ps, aqi_beam_ws *ws, int64_t sb, int64_t se, int64_t s);

#endif

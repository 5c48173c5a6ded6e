/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Exact best-`width` replacements of a code by a nearest-neighbour query instead of a scan of
 * all K codewords (used at large K, e.g. 1x16: K = 65,536).
 *
 * Derivation. For step (j, m) the scan ranks candidates by score(k) = ũ·c_k + t_k (B2 in
 * beam.c; ũ already carries the 1/s of the group's scale, so no scale appears below), with
 * t_k = Σ_r c_{k,r}ᵀ H_jj c_{k,r} over the g_o tile rows r. With the Cholesky factor
 * H_jj = L Lᵀ, y_{k,r} = Lᵀ c_{k,r} and q_r = −L⁻¹ ũ_r / 2 (so that −2 q_rᵀ y_{k,r} = ũ_rᵀ c_{k,r}):
 *
 *   score(k) = Σ_r ‖y_{k,r}‖² − 2 q_rᵀ y_{k,r} = ‖y_k − q‖² − ‖q‖²,                     (N1)
 *
 * so the best candidates of a state are the nearest y_k to q in R^D, D = g_o·g: the Mahalanobis
 * nearest codewords to z = −H_jj⁻¹ũ/2 under H_jj. Whatever M is, the other codebooks enter only
 * through ũ.
 *
 * Tree. Per step the y_k (double, stored as float) are split near the median of the coordinate
 * of largest spread (at a multiple of AQI_NN_LEAF, so that every leaf but the last holds exactly
 * AQI_NN_LEAF codewords, stored contiguously in tree order); every node keeps the tight bounding
 * box of its y. For a state, a node whose box B satisfies
 *
 *   lb(B) = Σ_d dist_d(q, B)² − ‖q‖² − margin > τ,   τ = the width-th best score so far,   (N2)
 *
 * holds no candidate of the final best `width` and is skipped (depth first, the nearer child
 * first, each node's bound computed once when its parent is expanded). The leaves that are
 * visited are scored by the scan's own kernel (aqi_score_tile on their codewords and tables t_k
 * in tree order): every candidate's float score is the bits the scan computes, and
 * the same key (score, changed, k) picks among them, so the chosen codes are the scan's.
 *
 * Margin. (N1) is exact in real arithmetic; the scan's float score and the tree's float y_k
 * differ from it by rounding. With u = 2⁻²⁴, the scan's score of k is within
 * (D + 2)·u·(T + Σ_d |ũ_d| C_d) of its real value and t_k within (2g + 1)·u·T₂ (T = max_k t_k,
 * C_d = max_k |c_k[d]|, T₂ = (Σ_e C_e √H_ee)², which bounds Σ|c||H_jj||c| since
 * |H_de| <= √(H_dd H_ee)); storing y_k as float moves ‖y_k − q‖² − ‖q‖² by at most
 * 2u·(T + Σ_d |q_d| Y_d), Y_d = max_k |y_k[d]|; the double bound computation adds
 * ~D·2⁻⁵³·(‖q‖² + T). The margin is
 *
 *   margin = 2⁻¹⁶ (T + T₂ + 2 Σ_d |q_d| Y_d + Σ_d |ũ_d| C_d) + 2⁻⁴⁰ (‖q‖² + T),              (N3)
 *
 * at least 3.5 times each of those bounds for D <= 16. The double Cholesky factor and solve
 * are accurate to ~cond(H_jj)·2⁻⁵³ relative; a pivot below 1e-8 of the largest diagonal entry
 * (cond(H_jj) beyond ~1e8) makes the step scan instead. A state whose ũ or q is not finite gets
 * an infinite margin: nothing is pruned and its query is the scan.
 *
 * Several states are queried together (one block of AQI_SCORE_ROWS rows, the states of one
 * group at width 8): a node is visited if any of them may need it, and a leaf is scored for all
 * of them at the cost of one. Everything is per row and deterministic; the thread count only
 * decides which worker builds a tree. */
#include <math.h>
#include <string.h>

#include "beam/beam_pass.h"
#include "core/internal.h"

#define MAX_DEPTH 40 /* K <= 65,536 codes: the tree is at most 12 levels deep */
#define ROWS AQI_SCORE_ROWS /* rows of a block, 8 as aqi_box_bounds8 takes */

static int64_t padded(int64_t K)
{
    return (K + AQI_NN_LEAF - 1) / AQI_NN_LEAF * AQI_NN_LEAF;
}

static size_t max_nodes(int64_t K)
{
    return (size_t)(2 * (padded(K) / AQI_NN_LEAF) - 1 > 0 ? 2 * (padded(K) / AQI_NN_LEAF) - 1 : 1);
}

size_t aqi_beam_nn_bytes(int64_t K, int32_t D)
{
    size_t n = max_nodes(K);
    return (size_t)K * sizeof(int32_t) + (size_t)padded(K) * ((size_t)D + 1) * sizeof(float)
           + n * (2 * (size_t)D * sizeof(float) + sizeof(aqi_beam_nn_node));
}

int aqi_beam_nn_alloc(aq_context *ctx, aqi_beam_nn *nn, int64_t K, int32_t go, int32_t g)
{
    size_t n = max_nodes(K);
    memset(nn, 0, sizeof *nn);
    nn->go = go;
    nn->g = g;
    nn->D = go * g;
    nn->perm = aqi_calloc(ctx, (size_t)K, sizeof(int32_t));
    nn->cw = aqi_calloc(ctx, (size_t)padded(K), (size_t)nn->D * sizeof(float));
    nn->tw = aqi_calloc(ctx, (size_t)padded(K), sizeof(float));
    nn->box = aqi_calloc(ctx, n * 2, (size_t)nn->D * sizeof(float));
    nn->node = aqi_calloc(ctx, n, sizeof(aqi_beam_nn_node));
    return nn->perm && nn->cw && nn->tw && nn->box && nn->node ? AQ_OK : AQ_ERR_NOMEM;
}

void aqi_beam_nn_free(aq_context *ctx, aqi_beam_nn *nn)
{
    aqi_free(ctx, nn->perm);
    aqi_free(ctx, nn->cw);
    aqi_free(ctx, nn->tw);
    aqi_free(ctx, nn->box);
    aqi_free(ctx, nn->node);
    memset(nn, 0, sizeof *nn);
}

/* ------------------------------------------------------------------------------------------ */
/* Build */

/* A point's coordinate on the split axis and its codeword: ordered by (v, k), a strict order, so
 * that equal coordinates split deterministically. */
typedef struct nn_key { float v; int32_t k; } nn_key;

static int key_less(nn_key a, nn_key b)
{
    return a.v < b.v || (a.v == b.v && a.k < b.k);
}

/* Rearrange x[0, n) so that x[mid] is its element of rank mid, smaller ones before it and larger
 * after (quickselect, median-of-three pivots). */
static void select_rank(nn_key *x, int32_t n, int32_t mid)
{
    int32_t lo = 0, hi = n;
    while (hi - lo > 1) {
        const int32_t im = lo + (hi - lo) / 2;
        int32_t ip;
        if (key_less(x[lo], x[im]))
            ip = key_less(x[im], x[hi - 1]) ? im : (key_less(x[lo], x[hi - 1]) ? hi - 1 : lo);
        else
            ip = key_less(x[lo], x[hi - 1]) ? lo : (key_less(x[im], x[hi - 1]) ? hi - 1 : im);
        nn_key piv = x[ip], tmp;
        x[ip] = x[hi - 1];
        x[hi - 1] = piv;
        int32_t store = lo;
        for (int32_t i = lo; i < hi - 1; i++)
            if (key_less(x[i], piv)) {
                tmp = x[i];
                x[i] = x[store];
                x[store++] = tmp;
            }
        x[hi - 1] = x[store];
        x[store] = piv;
        if (store == mid)
            return;
        if (mid < store)
            hi = store;
        else
            lo = store + 1;
    }
}

/* Node of perm[lo, hi) and its subtree (preorder); returns its index. */
static int32_t build_node(aqi_beam_nn *nn, const float *y, nn_key *keys, int32_t lo, int32_t hi)
{
    const int32_t D = nn->D, id = nn->n_nodes++;
    float *blo = nn->box + (size_t)id * 2 * (size_t)D, *bhi = blo + D;
    int32_t split = 0;
    for (int32_t d = 0; d < D; d++)
        blo[d] = bhi[d] = y[(size_t)nn->perm[lo] * (size_t)D + (size_t)d];
    for (int32_t i = lo + 1; i < hi; i++) {
        const float *yi = y + (size_t)nn->perm[i] * (size_t)D;
        for (int32_t d = 0; d < D; d++) {
            blo[d] = yi[d] < blo[d] ? yi[d] : blo[d];
            bhi[d] = yi[d] > bhi[d] ? yi[d] : bhi[d];
        }
    }
    nn->node[id].start = lo;
    nn->node[id].end = hi;
    nn->node[id].right = -1;
    if (hi - lo <= AQI_NN_LEAF)
        return id;
    for (int32_t d = 1; d < D; d++)
        if (bhi[d] - blo[d] > bhi[split] - blo[split])
            split = d;
    /* the left child takes half of the node's leaves (rounded down), so leaves stay full */
    int32_t mid = lo + ((hi - lo + AQI_NN_LEAF - 1) / AQI_NN_LEAF / 2) * AQI_NN_LEAF;
    for (int32_t i = lo; i < hi; i++) /* the split coordinates, contiguous for the selection */
        keys[i - lo] = (nn_key){y[(size_t)nn->perm[i] * (size_t)D + (size_t)split], nn->perm[i]};
    select_rank(keys, hi - lo, mid - lo);
    for (int32_t i = lo; i < hi; i++)
        nn->perm[i] = keys[i - lo].k;
    build_node(nn, y, keys, lo, mid);
    int32_t right = build_node(nn, y, keys, mid, hi);
    nn->node[id].right = right;
    return id;
}

/* H_jj = L Lᵀ in double; 0 if a pivot is not above 1e-8 of the largest diagonal entry. */
static int cholesky(double *L, const float *Hjj, int64_t ldh, int32_t g)
{
    double hmax = 0.0;
    for (int32_t e = 0; e < g; e++)
        hmax = (double)Hjj[e * ldh + e] > hmax ? (double)Hjj[e * ldh + e] : hmax;
    if (!(hmax > 0.0) || !isfinite(hmax))
        return 0;
    for (int32_t i = 0; i < g; i++)
        for (int32_t c = 0; c <= i; c++) {
            double s = (double)Hjj[i * ldh + c];
            for (int32_t k = 0; k < c; k++)
                s -= L[i * g + k] * L[c * g + k];
            if (i == c) {
                if (!(s > 1e-8 * hmax))
                    return 0;
                L[i * g + i] = sqrt(s);
            } else {
                L[i * g + c] = s / L[c * g + c];
            }
        }
    return 1;
}

void aqi_beam_nn_build(aqi_beam_nn *nn, const float *CT, int64_t ldct, int64_t K, const float *Hjj,
                       int64_t ldh, const float *t, float *y)
{
    const int32_t g = nn->g, go = nn->go, D = nn->D;
    double tmax = 0.0, t2 = 0.0;
    nn->ok = 0;
    nn->n_nodes = 0;
    if (!cholesky(nn->L, Hjj, ldh, g))
        return;
    for (int32_t d = 0; d < D; d++)
        nn->ymax[d] = nn->cmax[d] = 0.0;
    for (int64_t k = 0; k < K; k++) {
        float *yk = y + (size_t)k * (size_t)D;
        for (int32_t r = 0; r < go; r++)
            for (int32_t d = 0; d < g; d++) { /* y_d = (Lᵀc)_d = Σ_{e >= d} L[e][d] c_e */
                double acc = 0.0;
                for (int32_t e = d; e < g; e++)
                    acc += nn->L[e * g + d] * (double)CT[(int64_t)(r * g + e) * ldct + k];
                yk[r * g + d] = (float)acc;
            }
        for (int32_t d = 0; d < D; d++) {
            double c = fabs((double)CT[d * ldct + k]), yd = fabs((double)yk[d]);
            nn->cmax[d] = c > nn->cmax[d] ? c : nn->cmax[d];
            nn->ymax[d] = yd > nn->ymax[d] ? yd : nn->ymax[d];
        }
        tmax = fabs((double)t[k]) > tmax ? fabs((double)t[k]) : tmax;
        nn->perm[k] = (int32_t)k;
    }
    for (int32_t r = 0; r < go; r++) {
        double s = 0.0;
        for (int32_t e = 0; e < g; e++)
            s += nn->cmax[r * g + e] * sqrt((double)Hjj[e * ldh + e]);
        t2 += s * s;
    }
    nn->err_scale = tmax + t2;
    if (!isfinite(nn->err_scale))
        return;
    build_node(nn, y, (nn_key *)(y + (size_t)K * (size_t)D), 0, (int32_t)K);
    /* codewords and tables in tree order, LEAF-wide blocks transposed as the score kernel reads them */
    for (int64_t i = 0; i < K; i++) {
        const int32_t k = nn->perm[i];
        float *blk = nn->cw + (size_t)(i / AQI_NN_LEAF) * (size_t)D * AQI_NN_LEAF + (size_t)(i % AQI_NN_LEAF);
        for (int32_t d = 0; d < D; d++)
            blk[(size_t)d * AQI_NN_LEAF] = CT[d * ldct + k];
        nn->tw[i] = t[k];
    }
    nn->ok = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Query */

typedef struct nn_query {
    int32_t n;                            /* rows of the block; the others never need a node */
    double qT[AQI_NN_MAX_D][ROWS];        /* q of each row, transposed */
    double qq[ROWS], margin[ROWS], tau[ROWS];
    double sub[ROWS];                     /* ‖q‖² + margin */
} nn_query;

typedef struct nn_entry { int32_t id; double lb[ROWS]; } nn_entry;

/* lb[i] = Σ_d dist_d(q_i, box)² − ‖q_i‖² − margin_i (N2) for every row of the block. */
static void box_bounds(const nn_query *Q, const float *box, int32_t D, double *lb)
{
    aqi_box_bounds8(box, D, &Q->qT[0][0], Q->sub, lb);
}

/* Whether some row may still have a candidate under the bounds (a NaN bound is needed). */
static int needed(const nn_query *Q, const double *lb)
{
    int any = 0;
    for (int32_t i = 0; i < ROWS; i++)
        any |= !(lb[i] > Q->tau[i]);
    return any;
}

/* q_r = −L⁻¹ũ_r / 2 per tile row, ‖q‖² and the margin (N3) of row i of the block. */
static void prepare_row(nn_query *Q, int32_t i, const aqi_beam_nn *nn, const float *u)
{
    const int32_t g = nn->g, D = nn->D;
    double x[AQI_NN_MAX_D], q[AQI_NN_MAX_D], qq = 0.0, sq = 0.0, su = 0.0;
    for (int32_t r = 0; r < nn->go; r++)
        for (int32_t d = 0; d < g; d++) { /* forward substitution L x_r = ũ_r */
            double s = (double)u[r * g + d];
            for (int32_t e = 0; e < d; e++)
                s -= nn->L[d * g + e] * x[r * g + e];
            x[r * g + d] = s / nn->L[d * g + d];
        }
    for (int32_t d = 0; d < D; d++)
        q[d] = -0.5 * x[d];
    for (int32_t d = 0; d < D; d++) {
        qq += q[d] * q[d];
        sq += fabs(q[d]) * nn->ymax[d];
        su += fabs((double)u[d]) * nn->cmax[d];
        Q->qT[d][i] = q[d];
    }
    Q->qq[i] = qq;
    Q->margin[i] = 0x1p-16 * (nn->err_scale + 2.0 * sq + su) + 0x1p-40 * (qq + nn->err_scale);
    if (!isfinite(Q->margin[i]) || !isfinite(qq))
        Q->margin[i] = INFINITY; /* nothing is pruned: the row's query is the scan */
    Q->sub[i] = qq + Q->margin[i];
    Q->tau[i] = INFINITY;
}

/* Score one leaf for every row of the block by the scan's kernel and offer its codewords to the
 * rows' lists. */
static void score_leaf(aqi_beam_pass *ps, aqi_beam_ws *ws, const aqi_beam_nn *nn, nn_query *Q,
                       const aqi_beam_nn_node *leaf, int32_t r0, const int32_t *a)
{
    const int32_t D = ps->D, W = ps->width, n = leaf->end - leaf->start;
    const int32_t kt = (n + AQI_SCORE_LANES - 1) / AQI_SCORE_LANES * AQI_SCORE_LANES;
    const int32_t *perm = nn->perm + leaf->start;
    aqi_score_tile(ws->U + (size_t)r0 * (size_t)D, D, ROWS, D, nn->cw + (size_t)leaf->start * (size_t)D, AQI_NN_LEAF,
                   nn->tw + leaf->start, kt, ws->scores, AQI_BEAM_K_TILE);
    ws->nn_scored += (int64_t)n * Q->n;
    for (int32_t i = 0; i < Q->n; i++) {
        const float *sc = ws->scores + (size_t)i * AQI_BEAM_K_TILE;
        aqi_beam_top *top = ws->tops + (size_t)(r0 + i) * (size_t)W;
        int32_t *n_top = &ws->n_top[r0 + i];
        /* only scores at or below the row's width-th best can enter: gather them without branches */
        int32_t n_pass = aqi_filter_tile(sc, kt, *n_top < W ? INFINITY : top[W - 1].score, ws->pass_idx);
        for (int32_t x = 0; x < n_pass && ws->pass_idx[x] < n; x++)
            aqi_beam_top_offer(top, n_top, W, sc[ws->pass_idx[x]], perm[ws->pass_idx[x]], a[i]);
        if (*n_top == W)
            Q->tau[i] = (double)top[W - 1].score;
    }
}

/* The scores of the rows' current codewords: t_a + Σ_d ũ_d·c_a[d] in the order of the score
 * kernel (no contraction in ISO C mode), so the bits of the scan. */
static void score_current(aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t r0, int32_t n, const float *CTm,
                          const float *t, const int32_t *a)
{
    for (int32_t i = 0; i < n; i++) {
        const float *u = ws->U + (size_t)(r0 + i) * (size_t)ps->D;
        float acc = t[a[i]];
        for (int32_t d = 0; d < ps->D; d++)
            acc += u[d] * CTm[(size_t)d * (size_t)ps->Kpad + (size_t)a[i]];
        ws->score_a[r0 + i] = acc;
    }
}

void aqi_beam_nn_scan(aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t rows, const float *CTm, const float *t,
                      int64_t pos, const aqi_beam_nn *nn)
{
    const int32_t D = ps->D;
    nn_query Q;
    nn_entry stack[2 * MAX_DEPTH];
    int32_t a[ROWS];
    for (int32_t r0 = 0; r0 < rows; r0 += ROWS) {
        memset(&Q, 0, sizeof Q);
        Q.n = rows - r0 < ROWS ? rows - r0 : ROWS;
        for (int32_t i = Q.n; i < ROWS; i++)
            Q.tau[i] = -INFINITY; /* padding rows need nothing */
        for (int32_t i = 0; i < Q.n; i++) {
            int64_t p = ws->row_grp[r0 + i];
            a[i] = aqi_beam_codes(ps, p, ps->slot[p * ps->width + ws->row_state[r0 + i]])[pos];
            prepare_row(&Q, i, nn, ws->U + (size_t)(r0 + i) * (size_t)D);
        }
        score_current(ps, ws, r0, Q.n, CTm, t, a);
        ws->nn_rows += Q.n;
        int32_t sp = 1;
        stack[0].id = 0;
        box_bounds(&Q, nn->box, D, stack[0].lb);
        while (sp > 0) {
            const nn_entry *e = &stack[--sp];
            const aqi_beam_nn_node *nd = &nn->node[e->id];
            if (!needed(&Q, e->lb))
                continue;
            if (nd->right < 0) {
                score_leaf(ps, ws, nn, &Q, nd, r0, a);
                continue;
            }
            /* both children's bounds now; the nearer (smaller sum over the block's rows) on top */
            const int32_t left = e->id + 1, right = nd->right;
            nn_entry *x = &stack[sp], *y = &stack[sp + 1];
            double sl = 0.0, sr = 0.0;
            box_bounds(&Q, nn->box + (size_t)left * 2 * (size_t)D, D, x->lb);
            box_bounds(&Q, nn->box + (size_t)right * 2 * (size_t)D, D, y->lb);
            for (int32_t i = 0; i < Q.n; i++) {
                sl += x->lb[i] + Q.margin[i];
                sr += y->lb[i] + Q.margin[i];
            }
            x->id = left;
            y->id = right;
            if (sl < sr) { /* left nearer: it goes on top */
                nn_entry tmp = *x;
                *x = *y;
                *y = tmp;
            }
            /* push the far then the near child; one no row needs now never will (τ only falls) */
            const int keep_far = needed(&Q, x->lb), keep_near = needed(&Q, y->lb);
            if (!keep_far && keep_near)
                *x = *y;
            sp += keep_far + keep_near;
        }
    }
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* One step (j, m) of the beam search for a sub-block of output groups (beam.c has the driver
 * and the derivations): ũ of every state and the scores of its K candidates (B2), the best
 * `width` distinct children of each group, and the update (B3) of the children that changed.
 *
 * Selection. Each group keeps up to `width` distinct states sorted by the key
 * (loss, changed-at-this-step, parent, k). The unchanged child of a state has exactly the state's
 * loss, so the best loss never increases (width 1 is coordinate descent: a code moves only if
 * ΔL < 0; ties keep the old code, then the smallest k wins). It suffices to keep the best
 * `width` candidates of each state: one beyond them has `width` better distinct siblings. Two
 * children (b, k), (b', k') coincide iff k = k' and their parents differ only at (j, m); the
 * number of differing codes between states is kept in a width × width matrix:
 *   dist(child(b,k), child(b',k')) = dist(b, b') − [a_b ≠ a_b'] + [k ≠ k'].
 * A candidate whose ΔL is not finite (an overflow with a tiny scale) never competes. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "beam/beam_pass.h"

/* Order of candidates: lower loss, then unchanged before changed, then parent, then k. */
static int cand_less(const aqi_beam_cand *x, const aqi_beam_cand *y)
{
    if (x->loss != y->loss)
        return x->loss < y->loss;
    if (x->changed != y->changed)
        return x->changed < y->changed;
    if (x->b != y->b)
        return x->b < y->b;
    return x->k < y->k;
}

static void list_insert_at(aqi_beam_cand *list, int32_t *n, int32_t cap, const aqi_beam_cand *x)
{
    int32_t pos = *n < cap ? *n : cap - 1;
    while (pos > 0 && cand_less(x, &list[pos - 1])) {
        list[pos] = list[pos - 1];
        pos--;
    }
    list[pos] = *x;
    if (*n < cap)
        (*n)++;
}

/* Insert child x of a group into its sorted list of at most cap distinct children. Returns 0
 * if x is not better than the last entry of a full list (then neither is any worse child). */
static int list_offer(aqi_beam_cand *list, int32_t *n, int32_t cap, const aqi_beam_cand *x,
                      const int32_t *dist, int32_t width, const uint16_t *const *state_codes,
                      int64_t pos_jm)
{
    if (*n == cap && !cand_less(x, &list[*n - 1]))
        return 0;
    for (int32_t i = 0; i < *n; i++) {
        const aqi_beam_cand *y = &list[i];
        if (y->k != x->k || y->b == x->b)
            continue;
        int32_t differ_here = state_codes[x->b][pos_jm] != state_codes[y->b][pos_jm];
        if (dist[x->b * width + y->b] != differ_here)
            continue;
        /* the same child reached from two parents: keep the better key */
        if (cand_less(x, y)) {
            for (int32_t t = i; t + 1 < *n; t++)
                list[t] = list[t + 1];
            (*n)--;
            list_insert_at(list, n, cap, x);
        }
        return 1;
    }
    list_insert_at(list, n, cap, x);
    return 1;
}

/* Create the children in ws->list for block group p: slots, codes, losses, distances, and
 * (B3) on the columns of S from the current input group to the end of the batch. */
static void commit_children(aqi_beam_pass *ps, aqi_beam_ws *ws, int64_t p, int32_t n_new, float s,
                            int64_t step_index)
{
    const int32_t W = ps->width, D = ps->D, go = ps->go, g = ps->g, ldb = ps->ldb;
    const aqi_beam_step *step = &ps->steps[step_index];
    const int64_t pos = (int64_t)step->j * ps->M + step->m;
    const int32_t col = (int32_t)((step_index - ps->s0) / ps->M) * g; /* batch column of J_j */
    const float *Hrows = ps->HT + (size_t)step->j * (size_t)g * (size_t)ldb + (size_t)col;
    const size_t s_floats = (size_t)go * (size_t)ldb;
    /* the batch columns from col on, rounded up to whole vectors inside the padding of S and HT */
    const int64_t n_need = (int64_t)ps->n_batch * g - col;
    const int64_t n_vec = (n_need + AQI_SCORE_LANES - 1) / AQI_SCORE_LANES * AQI_SCORE_LANES;
    const int64_t n_upd = n_vec < ldb - col ? n_vec : ldb - col;
    int32_t n_old = ps->n_states[p];
    int32_t *owner = ws->ibuf, *new_slot = owner + W, *slot_used = new_slot + W;
    int32_t *new_dist = slot_used + W;
    int32_t *slot = ps->slot + p * W, *dist = ps->dist + p * W * W;
    double *loss = ps->loss + p * W;
    int32_t a_old[AQI_BEAM_MAX_WIDTH];

    for (int32_t b = 0; b < n_old; b++) {
        owner[b] = -1;
        a_old[b] = aqi_beam_codes(ps, p, slot[b])[pos];
    }
    for (int32_t sl = 0; sl < W; sl++)
        slot_used[sl] = 0;
    /* the first child of a parent takes over the parent's slot */
    for (int32_t i = 0; i < n_new; i++) {
        int32_t b = ws->list[i].b;
        if (owner[b] < 0) {
            owner[b] = i;
            new_slot[i] = slot[b];
            slot_used[slot[b]] = 1;
        } else {
            new_slot[i] = -1;
        }
    }
    /* further children copy their parent into a free slot, before any parent changes */
    for (int32_t i = 0, free_sl = 0; i < n_new; i++) {
        if (new_slot[i] >= 0)
            continue;
        while (slot_used[free_sl])
            free_sl++;
        slot_used[free_sl] = 1;
        new_slot[i] = free_sl;
        int32_t src = slot[ws->list[i].b];
        memcpy(aqi_beam_codes(ps, p, free_sl), aqi_beam_codes(ps, p, src), sizeof(uint16_t) * (size_t)ps->JM);
        memcpy(aqi_beam_S(ps, p, free_sl), aqi_beam_S(ps, p, src), sizeof(float) * s_floats);
    }
    for (int32_t i1 = 0; i1 < n_new; i1++)
        for (int32_t i2 = 0; i2 < n_new; i2++) {
            const aqi_beam_cand *x = &ws->list[i1], *y = &ws->list[i2];
            new_dist[i1 * W + i2] = x->b == y->b ? (x->k != y->k)
                : dist[x->b * W + y->b] - (a_old[x->b] != a_old[y->b]) + (x->k != y->k);
        }
    for (int32_t i = 0; i < n_new; i++) {
        const aqi_beam_cand *x = &ws->list[i];
        ws->dbuf[i] = x->loss;
        if (!x->changed)
            continue;
        /* (B3): coefficients −s (c_k − c_a)_r on the rows H[J_j, batch columns >= col] */
        const float *ck = aqi_codeword(ps->q, step->m, (uint32_t)x->k);
        const float *ca = aqi_codeword(ps->q, step->m, (uint32_t)a_old[x->b]);
        float *Sx = aqi_beam_S(ps, p, new_slot[i]);
        for (int32_t d = 0; d < D; d++)
            ws->coef[d] = -s * (ck[d] - ca[d]);
        for (int32_t r = 0; r < go; r++) {
            ws->upd_S[r] = Sx + (size_t)r * (size_t)ldb + (size_t)col;
            ws->upd_coef[r] = ws->coef + r * g;
        }
        aqi_rank_g_update(ws->upd_S, ws->upd_coef, go, g, Hrows, ldb, n_upd);
        aqi_beam_codes(ps, p, new_slot[i])[pos] = (uint16_t)x->k;
    }
    for (int32_t i = 0; i < n_new; i++) {
        slot[i] = new_slot[i];
        loss[i] = ws->dbuf[i];
    }
    memcpy(dist, new_dist, sizeof(int32_t) * (size_t)W * (size_t)W);
    ps->n_states[p] = n_new;
}

/* ũ of every state of the groups [sb, se) with a non-zero scale (B2); returns the row count. */
static int32_t fill_u(aqi_beam_pass *ps, aqi_beam_ws *ws, int64_t sb, int64_t se, int64_t step_index)
{
    const int32_t W = ps->width, D = ps->D, g = ps->g, go = ps->go, ldb = ps->ldb;
    const aqi_beam_step *step = &ps->steps[step_index];
    const int64_t pos = (int64_t)step->j * ps->M + step->m;
    const int32_t col = (int32_t)((step_index - ps->s0) / ps->M) * g;
    const float *Hjj = ps->HT + (size_t)step->j * (size_t)g * (size_t)ldb + (size_t)col; /* ld ldb */
    const float *hc_table = ps->hc_tables ? ps->hc_tables + (size_t)(step_index - ps->s0) * (size_t)ps->K * (size_t)D
                                          : NULL;
    int32_t rows = 0;
    for (int64_t p = sb; p < se; p++) {
        float s = ps->q->scales[ps->p0 + p];
        if (s == 0.0f)
            continue; /* the tile is 0 whatever the codes: nothing to gain */
        for (int32_t b = 0; b < ps->n_states[p]; b++, rows++) {
            int32_t sl = ps->slot[p * W + b];
            const float *Ss = aqi_beam_S(ps, p, sl) + col;
            const int32_t a = aqi_beam_codes(ps, p, sl)[pos];
            float *u = ws->U + rows * D;
            const float *hc = ws->hc;
            if (hc_table)
                hc = hc_table + (size_t)a * (size_t)D;
            else
                aqi_beam_hc(aqi_codeword(ps->q, step->m, (uint32_t)a), Hjj, ldb, go, g, ws->hc);
            for (int32_t r = 0; r < go; r++)
                for (int32_t d = 0; d < g; d++)
                    u[r * g + d] = -2.0f / s * Ss[(size_t)r * (size_t)ldb + (size_t)d] - 2.0f * hc[r * g + d];
            ws->row_grp[rows] = (int32_t)p;
            ws->row_state[rows] = b;
            ws->n_top[rows] = 0;
            ws->score_a[rows] = INFINITY;
        }
    }
    return rows;
}

/* Width 1 without tracing: the scores folded into lane minima, never stored. */
static void scan_width1(aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t rows, int32_t rows_pad,
                        const float *CTm, const float *t, int64_t pos)
{
    for (int32_t row = 0; row < rows_pad; row++) {
        int64_t p = ws->row_grp[row < rows ? row : 0];
        ws->row_a[row] = row < rows ? aqi_beam_codes(ps, p, ps->slot[p * ps->width])[pos] : -1;
        for (int l = 0; l < AQI_SCORE_LANES; l++) {
            ws->lmin[row * AQI_SCORE_LANES + l] = INFINITY;
            ws->lidx[row * AQI_SCORE_LANES + l] = -1;
        }
    }
    for (int64_t k0 = 0; k0 < ps->Kpad; k0 += AQI_BEAM_K_TILE) {
        int64_t kt = ps->Kpad - k0 < AQI_BEAM_K_TILE ? ps->Kpad - k0 : AQI_BEAM_K_TILE;
        aqi_score_min_tile(ws->U, ps->D, rows_pad, ps->D, CTm + k0, ps->Kpad, t + k0, kt, (int32_t)k0,
                           ws->row_a, ws->lmin, ws->lidx, ws->score_a);
    }
    for (int32_t row = 0; row < rows; row++) {
        const float *lv = ws->lmin + row * AQI_SCORE_LANES;
        const int32_t *li = ws->lidx + row * AQI_SCORE_LANES;
        for (int l = 0; l < AQI_SCORE_LANES; l++)
            if (li[l] >= 0 && (ws->n_top[row] == 0 || lv[l] < ws->tops[row].score
                               || (lv[l] == ws->tops[row].score && li[l] < ws->tops[row].k))) {
                ws->tops[row].score = lv[l];
                ws->tops[row].k = li[l];
                ws->n_top[row] = 1;
            }
    }
}

/* Scores over tiles of K, per state the best `width` candidates (and the trace, for tests). */
static void scan_tiles(aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t rows, int32_t rows_pad,
                       const float *CTm, const float *t, int64_t pos)
{
    const int32_t W = ps->width;
    for (int64_t k0 = 0; k0 < ps->Kpad; k0 += AQI_BEAM_K_TILE) {
        int64_t kt = ps->Kpad - k0 < AQI_BEAM_K_TILE ? ps->Kpad - k0 : AQI_BEAM_K_TILE;
        aqi_score_tile(ws->U, ps->D, rows_pad, ps->D, CTm + k0, ps->Kpad, t + k0, kt, ws->scores,
                       AQI_BEAM_K_TILE);
        for (int32_t row = 0; row < rows; row++) {
            int64_t p = ws->row_grp[row];
            int32_t a = aqi_beam_codes(ps, p, ps->slot[p * W + ws->row_state[row]])[pos];
            const float *sc = ws->scores + (size_t)row * AQI_BEAM_K_TILE;
            if (a >= k0 && a < k0 + kt)
                ws->score_a[row] = sc[a - k0];
            if (ps->cfg->trace)
                memcpy(ws->trace + (size_t)row * (size_t)ps->Kpad + k0, sc, sizeof(float) * (size_t)kt);
            if (W == 1) { /* tracing only: otherwise width 1 takes scan_width1 */
                float v;
                int32_t kb;
                aqi_argmin_tile(sc, kt, &v, &kb);
                if (kb >= 0 && (ws->n_top[row] == 0 || v < ws->tops[row].score)) {
                    ws->tops[row].score = v;
                    ws->tops[row].k = (int32_t)k0 + kb;
                    ws->n_top[row] = 1;
                }
            } else {
                /* only candidates at or below a bound of the W-th best can enter the list:
                 * gather them without branches, then insert the few */
                aqi_beam_top *top = ws->tops + (size_t)row * (size_t)W;
                int64_t kend = ps->K - k0 < kt ? ps->K - k0 : kt;
                float bound = W <= AQI_SCORE_LANES ? aqi_kth_bound_tile(sc, kt, W) : INFINITY;
                if (ws->n_top[row] == W && top[W - 1].score < bound)
                    bound = top[W - 1].score;
                int32_t n_pass = aqi_filter_tile(sc, kt, bound, ws->pass_idx);
                for (int32_t c = 0; c < n_pass && ws->pass_idx[c] < kend; c++) {
                    int32_t kk = ws->pass_idx[c];
                    aqi_beam_top_offer(top, &ws->n_top[row], W, sc[kk], (int32_t)k0 + kk, a);
                }
            }
        }
    }
}

/* An upper bound, as a float, of the scores of the candidates of a state (loss `base`, score of
 * its current code sa) that can still enter a full list whose last child has loss tau: they
 * satisfy base + s²(score − sa) <= tau, i.e. score <= sa + (tau − base)/s², as list_offer compares
 * in double. The margin (1e-9 relative) is far above that comparison's rounding (~1e-16
 * relative to the magnitudes involved), and the float is rounded up, so no such candidate is
 * cut. +inf when the bound is not a finite float. */
static float entry_bound(double tau, double base, double s2, float sa)
{
    const double thr = (double)sa + (tau - base) / s2;
    const double m = thr + 1e-9 * (fabs((double)sa) + fabs(thr) + (fabs(tau) + fabs(base)) / s2) + 1e-300;
    if (!(m < (double)FLT_MAX))
        return INFINITY;
    if (m < -(double)FLT_MAX)
        return -FLT_MAX;
    float f = (float)m;
    if ((double)f < m)
        f = nextafterf(f, INFINITY);
    return f;
}

/* The best `width` candidates of one row of a single-tile score matrix (ws->scores, all K in one
 * tile) among those scoring at most `bound` — all the row's candidates that can still enter its
 * group's list, a superset of what list_offer keeps. When the bound lets many through (or is
 * +inf: the list is not full yet) the lane-minima bound of the row's own width-th best is used
 * too. */
static void select_row(const aqi_beam_pass *ps, aqi_beam_ws *ws, int32_t row, int32_t a, float bound)
{
    const int32_t W = ps->width;
    const float *sc = ws->scores + (size_t)row * AQI_BEAM_K_TILE;
    aqi_beam_top *top = ws->tops + (size_t)row * (size_t)W;
    int32_t n_pass = isinf(bound) && bound > 0 ? INT32_MAX : aqi_filter_tile(sc, ps->Kpad, bound, ws->pass_idx);
    if (n_pass > 2 * W) {
        float own = W <= AQI_SCORE_LANES ? aqi_kth_bound_tile(sc, ps->Kpad, W) : INFINITY;
        n_pass = aqi_filter_tile(sc, ps->Kpad, own < bound ? own : bound, ws->pass_idx);
    }
    ws->n_top[row] = 0;
    for (int32_t c = 0; c < n_pass && ws->pass_idx[c] < ps->K; c++)
        aqi_beam_top_offer(top, &ws->n_top[row], W, sc[ws->pass_idx[c]], ws->pass_idx[c], a);
}

void aqi_beam_run_step(aqi_beam_pass *ps, aqi_beam_ws *ws, int64_t sb, int64_t se, int64_t step_index)
{
    const int32_t W = ps->width, D = ps->D;
    const aqi_beam_step *step = &ps->steps[step_index];
    const int64_t pos = (int64_t)step->j * ps->M + step->m;
    const float *CTm = ps->CT + (size_t)step->m * (size_t)D * (size_t)ps->Kpad;
    const float *t = ps->tables + (step_index - ps->s0) * ps->Kpad;

    int32_t rows = fill_u(ps, ws, sb, se, step_index);
    if (rows == 0)
        return;
    int32_t rows_pad = (rows + AQI_SCORE_ROWS - 1) / AQI_SCORE_ROWS * AQI_SCORE_ROWS;
    memset(ws->U + rows * D, 0, sizeof(float) * (size_t)(rows_pad - rows) * (size_t)D);
    const aqi_beam_nn *nn = ps->nn ? &ps->nn[step_index - ps->t0] : NULL;
    /* all K in one tile (e.g. K = 256): the scores are kept and each row's candidates are
     * selected in the group loop below, bounded by what can still enter the group's list */
    const int one_tile = ps->select_in_groups && !(nn && nn->ok);
    if (nn && nn->ok)
        aqi_beam_nn_scan(ps, ws, rows, CTm, t, pos, nn);
    else if (W == 1 && !ps->cfg->trace)
        scan_width1(ps, ws, rows, rows_pad, CTm, t, pos);
    else if (one_tile)
        aqi_score_tile(ws->U, D, rows_pad, D, CTm, ps->Kpad, t, ps->Kpad, ws->scores, AQI_BEAM_K_TILE);
    else
        scan_tiles(ps, ws, rows, rows_pad, CTm, t, pos);

    /* per group: the best distinct children */
    for (int32_t row = 0; row < rows;) {
        int64_t p = ws->row_grp[row];
        int32_t n_st = ps->n_states[p];
        double s = ps->q->scales[ps->p0 + p], s2 = s * s;
        const uint16_t *state_codes[AQI_BEAM_MAX_WIDTH];
        int32_t n_list = 0;
        for (int32_t b = 0; b < n_st; b++)
            state_codes[b] = aqi_beam_codes(ps, p, ps->slot[p * W + b]);
        if (ps->cfg->trace && W == 1) {
            const float *tr = ws->trace + (size_t)row * (size_t)ps->Kpad;
            for (int64_t k = 0; k < ps->K; k++)
                ws->trace_dl[k] = s2 * ((double)tr[k] - (double)ws->score_a[row]);
            ps->cfg->trace(ps->cfg->trace_userdata, ps->p0 + p, step->j, step->m, state_codes[0],
                           ws->trace_dl);
        }
        for (int32_t b = 0; b < n_st; b++, row++) {
            int32_t a = state_codes[b][pos];
            double base = ps->loss[p * W + b];
            const aqi_beam_top *top = ws->tops + (size_t)row * (size_t)W;
            /* the unchanged child always competes, with exactly the state's loss */
            aqi_beam_cand keep = {base, b, a, 0};
            list_offer(ws->list, &n_list, W, &keep, ps->dist + p * W * W, W, state_codes, pos);
            if (one_tile) {
                const float sa = ws->scores[(size_t)row * AQI_BEAM_K_TILE + (size_t)a];
                ws->score_a[row] = sa;
                select_row(ps, ws, row, a, n_list == W ? entry_bound(ws->list[W - 1].loss, base, s2, sa) : INFINITY);
            }
            for (int32_t e = 0; e < ws->n_top[row]; e++) {
                double dl = s2 * ((double)top[e].score - (double)ws->score_a[row]);
                if (top[e].k == a || !isfinite(dl))
                    continue;
                aqi_beam_cand x = {base + dl, b, top[e].k, 1};
                if (!list_offer(ws->list, &n_list, W, &x, ps->dist + p * W * W, W, state_codes, pos))
                    break; /* the state's later candidates are worse */
            }
        }
        if (W == 1 && !ws->list[0].changed)
            continue; /* coordinate descent kept the code */
        commit_children(ps, ws, p, n_list, (float)s, step_index);
    }
}

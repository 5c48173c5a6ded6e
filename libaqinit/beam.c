/* Beam search over the codes of a quantized layer (AQLM beam_search_xtx semantics,
 * REFERENCE-ALGORITHMS.md §1.6), with exact incremental loss changes.
 *
 * Derivation. Output group p (g_o rows r, scale s) contributes L_p = Σ_r ΔW_r H ΔW_rᵀ with
 * ΔW = W − Ŵ. Replacing code (j, m) of the group from a to k changes the tile (p, j) by
 * s·(c_k − c_a), i.e. ΔW_r by −s·δ_r on the columns J_j (δ_r = row r of c_k − c_a), so
 *
 *   ΔL = −2 s Σ_r δ_r·G_r + s² Σ_r δ_rᵀ H_jj δ_r,      G_r = (ΔW_r H)[J_j]              (B1)
 *
 * Expanding δ = c_k − c_a (H symmetric) and dividing by s² > 0:
 *
 *   ΔL(k) / s² = score(k) − score(a),   score(k) = ũ·c_k + t_k,
 *   ũ_r = −(2/s) G_r − 2 H_jj c_{a,r},   t_k = Σ_r c_{k,r}ᵀ H_jj c_{k,r}                 (B2)
 *
 * (the cross term between the removed and the added codeword is the −2 H_jj c_a part of ũ).
 * Scoring all K candidates of every state is one (states × g_o·g)·(g_o·g × K) product plus the
 * table t: aqi_score_tile, over tiles of K so that no states × K matrix is ever stored.
 * Accepting k changes the full row ΔW_r H by a rank-g correction,
 *
 *   ΔW_r H ← ΔW_r H − s δ_r H[J_j, :]                                                      (B3)
 *
 * so every state keeps only its rows G = ΔW H (g_o × I floats), its codes and its loss: ΔW is
 * formed once per pass (one sgemm ΔW·H per block of rows) and never re-dequantised. Within an
 * input group j only the slice G[:, J_j] is needed, so (B3) is applied there at once
 * (slice += coef·H_jj, g² per row) and to the full rows only when the sweep leaves j, with the
 * coefficients of all M codebooks summed: one rank-g update per row and input group.
 *
 * Beam. Each output group keeps up to `width` distinct states sorted by the key
 * (loss, changed-at-this-step, parent, k). A step expands every state by its K candidates and
 * keeps the best `width` distinct children; the unchanged child of a state has exactly the
 * state's loss, so the best loss never increases (width 1 is coordinate descent: a code moves
 * only if ΔL < 0; ties keep the old code, then the smallest k wins). It suffices to keep the
 * best `width` candidates of each state (a candidate beyond them has `width` better distinct
 * ones from the same parent). Two children (b, k), (b', k) coincide iff their parents differ
 * only at (j, m); the number of differing codes between states is kept in a small
 * width × width matrix updated per step:
 * dist(child(b,k), child(b',k')) = dist(b, b') − [a_b ≠ a_b'] + [k ≠ k'].
 * The tracked losses are sums of float ΔL in double; at the end the best state of each group
 * (the first of its list) becomes its codes.
 *
 * Schedule. Groups are independent. The steps (j, m) are cut into windows whose tables t fit
 * in TABLE_BUDGET; for each window a worker takes its groups a sub-block (≤ 64 states) at a
 * time through every step of the window, so the sub-block's states stay in cache and only
 * H's rows stream by. Every number depends only on its own group, so the result is the same
 * for any thread count. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "beam_internal.h"

#define MAX_ROWS_PER_SUB 64  /* states scored together by one worker */
#define K_TILE 1024          /* codewords per score tile */
#define INIT_CHUNK_ROWS 256  /* rows per ΔW·H product when a block starts */
#define STATE_BUDGET ((size_t)96 << 20) /* bytes of beam states held at once */
#define TABLE_BUDGET ((size_t)32 << 20) /* bytes of per-step tables t_k held at once */

/* ------------------------------------------------------------------------------------------ */
/* Pass state */

typedef struct top_entry { float score; int32_t k; } top_entry;
typedef struct cand { double loss; int32_t b, k, changed; } cand;
typedef struct step_info { int32_t j, m; } step_info;

typedef struct worker_ws {
    float *U;          /* [MAX_ROWS_PER_SUB][D] */
    float *scores;     /* [MAX_ROWS_PER_SUB][K_TILE] */
    float *score_a;    /* [MAX_ROWS_PER_SUB] */
    top_entry *tops;   /* [MAX_ROWS_PER_SUB][width] */
    int32_t *n_top;    /* [MAX_ROWS_PER_SUB] */
    int32_t *row_grp;  /* [MAX_ROWS_PER_SUB] block-relative group of each row */
    int32_t *row_state;/* [MAX_ROWS_PER_SUB] state index of each row */
    float *coef;       /* [MAX_ROWS_PER_SUB][D] update coefficients */
    float **upd_G;     /* [MAX_ROWS_PER_SUB · g_o] */
    const float **upd_coef;
    cand *list;        /* [width] */
    int32_t *ibuf;     /* [3·width + width²] owners, new slots, free flags, new dist */
    double *dbuf;      /* [width] new losses */
    float *trace;      /* [MAX_ROWS_PER_SUB][Kpad] (tests) */
    double *trace_dl;  /* [K] (tests) */
    int32_t *pass_idx; /* [K_TILE] candidates below the bound */
    int32_t *row_a;    /* [MAX_ROWS_PER_SUB] current code of each row (width 1) */
    float *hc;         /* [D] H_jj c_a */
    float *lmin;       /* [MAX_ROWS_PER_SUB][lanes] running lane minima (width 1) */
    int32_t *lidx;     /* [MAX_ROWS_PER_SUB][lanes] their indices */
} worker_ws;

typedef struct pass {
    const aqi_layer *layer;
    aq_quant *q;
    const aqi_beam_config *cfg;
    int32_t width, M, g, go, D;
    int64_t ncols, J, P, K, Kpad, JM;
    float *CT;          /* [M][D][Kpad] codebooks transposed, zero padded */
    step_info *steps;   /* [n_steps] the sweep order */
    int64_t n_steps;
    int64_t window;     /* steps whose tables are held at once */
    int64_t w0, w1;     /* the current window of steps */
    float *tables;      /* [window][Kpad] t of each step of the window, +inf on the padding */
    float *Hjj;         /* [window][g][g] diagonal block of each step of the window */
    int32_t groups_per_sub;
    /* the current block of groups [p0, p0 + R) */
    int64_t p0, R;
    float *G;           /* [R][width] slots of g_o × I floats */
    uint16_t *codes;    /* [R][width] slots of J·M codes */
    double *loss;       /* [R][width] by state */
    int32_t *slot;      /* [R][width] slot of each state */
    int32_t *n_states;  /* [R] */
    int32_t *dist;      /* [R][width][width] differing codes between states */
    float *slice;       /* [R][width][g_o·g] G[:, J_j] of the current input group, up to date */
    float *pending;     /* [R][width][g_o·g] coefficients of (B3) not yet applied to G */
    uint8_t *dirty;     /* [R][width] pending is not zero */
    float *dW, *G0;     /* [INIT chunk rows][I] */
    int64_t chunk_groups;
    worker_ws *ws;
    int n_workers;
} pass;

static float *slot_G(const pass *ps, int64_t p, int32_t slot)
{
    return ps->G + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->go * (size_t)ps->ncols;
}

static uint16_t *slot_codes(const pass *ps, int64_t p, int32_t slot)
{
    return ps->codes + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->JM;
}

static float *slot_slice(const pass *ps, int64_t p, int32_t slot)
{
    return ps->slice + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->D;
}

static float *slot_pending(const pass *ps, int64_t p, int32_t slot)
{
    return ps->pending + ((size_t)p * (size_t)ps->width + (size_t)slot) * (size_t)ps->D;
}

/* ------------------------------------------------------------------------------------------ */
/* Per-step tables */

/* t_k = Σ_r c_{k,r}ᵀ H_jj c_{k,r} for the codebook m of each step of the window (B2); +inf on
 * the padding. Item i is (step w0 + i / Kpad, k = i % Kpad). */
static int table_range(void *arg, int64_t begin, int64_t end, int worker)
{
    pass *ps = arg;
    const int32_t g = ps->g;
    (void)worker;
    for (int64_t i = begin; i < end; i++) {
        int64_t w = i / ps->Kpad, k = i % ps->Kpad;
        float *t = ps->tables + i;
        if (k >= ps->K) {
            *t = INFINITY;
            continue;
        }
        const float *Hjj = ps->Hjj + w * g * g;
        const float *c = aqi_codeword(ps->q, ps->steps[ps->w0 + w].m, (uint32_t)k);
        float acc = 0.0f;
        for (int32_t r = 0; r < ps->go; r++, c += g)
            for (int32_t d = 0; d < g; d++) {
                float y = 0.0f;
                for (int32_t e = 0; e < g; e++)
                    y += Hjj[d * g + e] * c[e];
                acc += c[d] * y;
            }
        *t = acc;
    }
    return 0;
}

static int prepare_window(pass *ps)
{
    const int32_t g = ps->g;
    for (int64_t s = ps->w0; s < ps->w1; s++) {
        float *Hjj = ps->Hjj + (s - ps->w0) * g * g;
        const float *src = ps->layer->H + (size_t)ps->steps[s].j * (size_t)g * (size_t)ps->ncols
                           + (size_t)ps->steps[s].j * (size_t)g;
        for (int32_t d = 0; d < g; d++)
            for (int32_t e = 0; e < g; e++)
                Hjj[d * g + e] = src[(size_t)d * (size_t)ps->ncols + (size_t)e];
    }
    return aqi_parallel_for(ps->layer->ctx, (ps->w1 - ps->w0) * ps->Kpad, table_range, ps);
}

/* ------------------------------------------------------------------------------------------ */
/* Block start: Ŵ, ΔW = W − Ŵ, G = ΔW·H and the loss of every group */

typedef struct init_arg { pass *ps; int64_t c0; } init_arg;

static int init_residual_range(void *arg, int64_t begin, int64_t end, int worker)
{
    init_arg *ia = arg;
    pass *ps = ia->ps;
    const aqi_layer *L = ps->layer;
    (void)worker;
    /* groups [begin, end) of the chunk starting at block-relative group c0 */
    int64_t pg = ps->p0 + ia->c0 + begin;
    float *out = ps->dW + begin * ps->go * ps->ncols;
    aqi_opt_reconstruct(ps->q, pg, ps->p0 + ia->c0 + end, out, ps->ncols, 1);
    for (int64_t r = begin * ps->go; r < end * ps->go; r++) {
        const float *w = L->W + (pg * ps->go + (r - begin * ps->go)) * L->ld;
        float *d = ps->dW + r * ps->ncols;
        for (int64_t x = 0; x < ps->ncols; x++)
            d[x] = w[x] - d[x];
    }
    return 0;
}

static int init_state_range(void *arg, int64_t begin, int64_t end, int worker)
{
    init_arg *ia = arg;
    pass *ps = ia->ps;
    (void)worker;
    for (int64_t c = begin; c < end; c++) {
        int64_t p = ia->c0 + c; /* block-relative group */
        double acc = 0.0;
        for (int32_t r = 0; r < ps->go; r++) {
            const float *dw = ps->dW + (c * ps->go + r) * ps->ncols;
            const float *g0 = ps->G0 + (c * ps->go + r) * ps->ncols;
            for (int64_t x = 0; x < ps->ncols; x++)
                acc += (double)dw[x] * (double)g0[x];
        }
        memcpy(slot_G(ps, p, 0), ps->G0 + c * ps->go * ps->ncols,
               sizeof(float) * (size_t)ps->go * (size_t)ps->ncols);
        uint16_t *codes = slot_codes(ps, p, 0);
        for (int64_t j = 0; j < ps->J; j++)
            for (int32_t m = 0; m < ps->M; m++)
                codes[j * ps->M + m] = (uint16_t)aqi_code_get(ps->q, ps->p0 + p, j, m);
        ps->loss[p * ps->width] = acc;
        ps->slot[p * ps->width] = 0;
        ps->n_states[p] = 1;
        ps->dist[p * ps->width * ps->width] = 0;
    }
    return 0;
}

static int start_block(pass *ps)
{
    const aqi_layer *L = ps->layer;
    for (int64_t c0 = 0; c0 < ps->R; c0 += ps->chunk_groups) {
        int64_t n = ps->R - c0 < ps->chunk_groups ? ps->R - c0 : ps->chunk_groups;
        init_arg ia = {ps, c0};
        int st = aqi_parallel_for(L->ctx, n, init_residual_range, &ia);
        if (st)
            return st;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(n * ps->go), (int)ps->ncols,
                    (int)ps->ncols, 1.0f, ps->dW, (int)ps->ncols, L->H, (int)ps->ncols, 0.0f, ps->G0,
                    (int)ps->ncols);
        st = aqi_parallel_for(L->ctx, n, init_state_range, &ia);
        if (st)
            return st;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Selection of the children of a group */

/* Order of candidates: lower loss, then unchanged before changed, then parent, then k. */
static int cand_less(const cand *x, const cand *y)
{
    if (x->loss != y->loss)
        return x->loss < y->loss;
    if (x->changed != y->changed)
        return x->changed < y->changed;
    if (x->b != y->b)
        return x->b < y->b;
    return x->k < y->k;
}

static void list_insert_at(cand *list, int32_t *n, int32_t cap, const cand *x)
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

/* Insert child x of a group into its sorted list of at most cap distinct children. */
static void list_offer(cand *list, int32_t *n, int32_t cap, const cand *x, const int32_t *dist,
                       int32_t width, const uint16_t *const *state_codes, int64_t pos_jm)
{
    for (int32_t i = 0; i < *n; i++) {
        const cand *y = &list[i];
        if (y->k != x->k || y->b == x->b)
            continue;
        int32_t differ_here = state_codes[x->b][pos_jm] != state_codes[y->b][pos_jm];
        if (dist[x->b * width + y->b] != differ_here)
            continue;
        /* the same child reached from two parents: keep the better key */
        if (!cand_less(x, y))
            return;
        for (int32_t t = i; t + 1 < *n; t++)
            list[t] = list[t + 1];
        (*n)--;
        list_insert_at(list, n, cap, x);
        return;
    }
    if (*n < cap || cand_less(x, &list[*n - 1]))
        list_insert_at(list, n, cap, x);
}

/* Keep the best `width` (score, k) of one state; key (score, changed, k) as cand_less. */
static void top_offer(top_entry *top, int32_t *n, int32_t width, float score, int32_t k, int32_t a)
{
    int32_t pos;
    if (score != score)
        return; /* NaN never competes */
    if (*n == width) {
        const top_entry *w = &top[width - 1];
        if (score > w->score)
            return;
        if (score == w->score && ((k != a) > (w->k != a) || ((k != a) == (w->k != a) && k > w->k)))
            return;
        pos = width - 1;
    } else {
        pos = (*n)++;
    }
    while (pos > 0) {
        const top_entry *y = &top[pos - 1];
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

/* Create the children in ws->list for block group p: codes, losses, slices and pending
 * updates. */
static void commit_children(pass *ps, worker_ws *ws, int64_t p, int32_t n_new, float s,
                            const step_info *step, const float *Hjj)
{
    const int32_t W = ps->width, D = ps->D, go = ps->go, g = ps->g;
    const int64_t pos = (int64_t)step->j * ps->M + step->m;
    const size_t g_floats = (size_t)go * (size_t)ps->ncols;
    int32_t n_old = ps->n_states[p];
    int32_t *owner = ws->ibuf, *new_slot = owner + W, *slot_used = new_slot + W;
    int32_t *new_dist = slot_used + W;
    int32_t *slot = ps->slot + p * W, *dist = ps->dist + p * W * W;
    double *loss = ps->loss + p * W;
    int32_t a_old[64];

    for (int32_t b = 0; b < n_old; b++) {
        owner[b] = -1;
        a_old[b] = slot_codes(ps, p, slot[b])[pos];
    }
    for (int32_t sl = 0; sl < W; sl++)
        slot_used[sl] = 0;
    /* the first child of a parent takes over the parent's buffers */
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
    /* further children copy their parent into a free buffer, before any parent changes */
    for (int32_t i = 0, free_sl = 0; i < n_new; i++) {
        if (new_slot[i] >= 0)
            continue;
        while (slot_used[free_sl])
            free_sl++;
        slot_used[free_sl] = 1;
        new_slot[i] = free_sl;
        int32_t src = slot[ws->list[i].b];
        memcpy(slot_G(ps, p, free_sl), slot_G(ps, p, src), sizeof(float) * g_floats);
        memcpy(slot_codes(ps, p, free_sl), slot_codes(ps, p, src), sizeof(uint16_t) * (size_t)ps->JM);
        memcpy(slot_slice(ps, p, free_sl), slot_slice(ps, p, src), sizeof(float) * (size_t)D);
        memcpy(slot_pending(ps, p, free_sl), slot_pending(ps, p, src), sizeof(float) * (size_t)D);
        ps->dirty[p * W + free_sl] = ps->dirty[p * W + src];
    }
    for (int32_t i1 = 0; i1 < n_new; i1++)
        for (int32_t i2 = 0; i2 < n_new; i2++) {
            const cand *x = &ws->list[i1], *y = &ws->list[i2];
            new_dist[i1 * W + i2] = x->b == y->b ? (x->k != y->k)
                : dist[x->b * W + y->b] - (a_old[x->b] != a_old[y->b]) + (x->k != y->k);
        }
    for (int32_t i = 0; i < n_new; i++) {
        const cand *x = &ws->list[i];
        ws->dbuf[i] = x->loss;
        if (!x->changed)
            continue;
        /* (B3) with coefficients −s (c_k − c_a)_r: applied now to the slice G[:, J_j] the next
         * steps of this input group score with, and queued for the full rows */
        const float *ck = aqi_codeword(ps->q, step->m, (uint32_t)x->k);
        const float *ca = aqi_codeword(ps->q, step->m, (uint32_t)a_old[x->b]);
        float *cf = ws->coef, *sl = slot_slice(ps, p, new_slot[i]), *pend = slot_pending(ps, p, new_slot[i]);
        for (int32_t d = 0; d < D; d++) {
            cf[d] = -s * (ck[d] - ca[d]);
            pend[d] += cf[d];
        }
        for (int32_t r = 0; r < go; r++)
            for (int32_t e = 0; e < g; e++) {
                float acc = sl[r * g + e];
                for (int32_t d = 0; d < g; d++)
                    acc += cf[r * g + d] * Hjj[d * g + e];
                sl[r * g + e] = acc;
            }
        ps->dirty[p * W + new_slot[i]] = 1;
        slot_codes(ps, p, new_slot[i])[pos] = (uint16_t)x->k;
    }
    for (int32_t i = 0; i < n_new; i++) {
        slot[i] = new_slot[i];
        loss[i] = ws->dbuf[i];
    }
    memcpy(dist, new_dist, sizeof(int32_t) * (size_t)W * (size_t)W);
    ps->n_states[p] = n_new;
}

/* ------------------------------------------------------------------------------------------ */
/* One step (j, m) for the groups [sb, se) of the block */

/* Entering input group j: every state's slice is G[:, J_j], nothing pending. */
static void open_in_group(pass *ps, int64_t sb, int64_t se, int32_t j)
{
    const int32_t W = ps->width, g = ps->g;
    for (int64_t p = sb; p < se; p++)
        for (int32_t b = 0; b < ps->n_states[p]; b++) {
            int32_t sl = ps->slot[p * W + b];
            const float *Gs = slot_G(ps, p, sl) + (size_t)j * (size_t)g;
            float *slice = slot_slice(ps, p, sl);
            for (int32_t r = 0; r < ps->go; r++)
                memcpy(slice + r * g, Gs + (size_t)r * (size_t)ps->ncols, sizeof(float) * (size_t)g);
            memset(slot_pending(ps, p, sl), 0, sizeof(float) * (size_t)ps->D);
            ps->dirty[p * W + sl] = 0;
        }
}

/* Leaving input group j: apply the accumulated (B3) to the full rows G of every changed state,
 * one rank-g update per row for all the codebooks of the group. */
static void close_in_group(pass *ps, worker_ws *ws, int64_t sb, int64_t se, int32_t j)
{
    const int32_t W = ps->width, g = ps->g;
    int64_t n = 0;
    for (int64_t p = sb; p < se; p++)
        for (int32_t b = 0; b < ps->n_states[p]; b++) {
            int32_t sl = ps->slot[p * W + b];
            if (!ps->dirty[p * W + sl])
                continue;
            for (int32_t r = 0; r < ps->go; r++, n++) {
                ws->upd_G[n] = slot_G(ps, p, sl) + (size_t)r * (size_t)ps->ncols;
                ws->upd_coef[n] = slot_pending(ps, p, sl) + r * g;
            }
            ps->dirty[p * W + sl] = 0;
        }
    if (n > 0)
        aqi_rank_g_update(ws->upd_G, ws->upd_coef, n, g,
                          ps->layer->H + (size_t)j * (size_t)g * (size_t)ps->ncols, ps->ncols, ps->ncols);
}

static void run_step(pass *ps, worker_ws *ws, int64_t sb, int64_t se, int64_t step_index)
{
    const int32_t W = ps->width, D = ps->D, g = ps->g, go = ps->go;
    const step_info *step = &ps->steps[step_index];
    const int64_t pos = (int64_t)step->j * ps->M + step->m;
    const float *CTm = ps->CT + (size_t)step->m * (size_t)D * (size_t)ps->Kpad;
    const float *Hjj = ps->Hjj + (step_index - ps->w0) * g * g;
    const float *t = ps->tables + (step_index - ps->w0) * ps->Kpad;
    int32_t rows = 0;

    /* ũ of every state (B2) */
    for (int64_t p = sb; p < se; p++) {
        float s = ps->q->scales[ps->p0 + p];
        if (s == 0.0f)
            continue; /* the tile is 0 whatever the codes: nothing to gain */
        for (int32_t b = 0; b < ps->n_states[p]; b++, rows++) {
            int32_t sl = ps->slot[p * W + b];
            const float *Gs = slot_slice(ps, p, sl);
            const float *ca = aqi_codeword(ps->q, step->m, slot_codes(ps, p, sl)[pos]);
            float *u = ws->U + rows * D, *hc = ws->hc;
            /* hc = H_jj c_a per tile row (H symmetric: column e of H_jj is its row e) */
            for (int32_t d = 0; d < D; d++)
                hc[d] = 0.0f;
            for (int32_t r = 0; r < go; r++)
                for (int32_t e = 0; e < g; e++) {
                    const float ce = ca[r * g + e], *h = Hjj + e * g;
                    for (int32_t d = 0; d < g; d++)
                        hc[r * g + d] += ce * h[d];
                }
            for (int32_t d = 0; d < D; d++)
                u[d] = -2.0f / s * Gs[d] - 2.0f * hc[d];
            ws->row_grp[rows] = (int32_t)p;
            ws->row_state[rows] = b;
            ws->n_top[rows] = 0;
            ws->score_a[rows] = INFINITY;
        }
    }
    if (rows == 0)
        return;
    int32_t rows_pad = (rows + AQI_SCORE_ROWS - 1) / AQI_SCORE_ROWS * AQI_SCORE_ROWS;
    memset(ws->U + rows * D, 0, sizeof(float) * (size_t)(rows_pad - rows) * (size_t)D);

    if (W == 1 && !ps->cfg->trace) {
        /* coordinate descent: scores folded into lane minima, never stored */
        for (int32_t row = 0; row < rows_pad; row++) {
            int64_t p = ws->row_grp[row < rows ? row : 0];
            ws->row_a[row] = row < rows ? slot_codes(ps, p, ps->slot[p * W])[pos] : -1;
            for (int l = 0; l < AQI_SCORE_LANES; l++) {
                ws->lmin[row * AQI_SCORE_LANES + l] = INFINITY;
                ws->lidx[row * AQI_SCORE_LANES + l] = -1;
            }
        }
        for (int64_t k0 = 0; k0 < ps->Kpad; k0 += K_TILE) {
            int64_t kt = ps->Kpad - k0 < K_TILE ? ps->Kpad - k0 : K_TILE;
            aqi_score_min_tile(ws->U, D, rows_pad, D, CTm + k0, ps->Kpad, t + k0, kt, (int32_t)k0, ws->row_a,
                               ws->lmin, ws->lidx, ws->score_a);
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
    /* scores over tiles of K; per state the best `width` candidates */
    for (int64_t k0 = 0; k0 < ps->Kpad && (W > 1 || ps->cfg->trace); k0 += K_TILE) {
        int64_t kt = ps->Kpad - k0 < K_TILE ? ps->Kpad - k0 : K_TILE;
        aqi_score_tile(ws->U, D, rows_pad, D, CTm + k0, ps->Kpad, t + k0, kt, ws->scores, K_TILE);
        for (int32_t row = 0; row < rows; row++) {
            int64_t p = ws->row_grp[row];
            int32_t a = slot_codes(ps, p, ps->slot[p * W + ws->row_state[row]])[pos];
            const float *sc = ws->scores + (size_t)row * K_TILE;
            if (a >= k0 && a < k0 + kt)
                ws->score_a[row] = sc[a - k0];
            if (ps->cfg->trace)
                memcpy(ws->trace + (size_t)row * (size_t)ps->Kpad + k0, sc, sizeof(float) * (size_t)kt);
            if (W == 1) { /* tracing only: otherwise width 1 took the fused path above */
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
                top_entry *top = ws->tops + (size_t)row * (size_t)W;
                int64_t kend = ps->K - k0 < kt ? ps->K - k0 : kt;
                float bound = W <= AQI_SCORE_LANES ? aqi_kth_bound_tile(sc, kt, W) : INFINITY;
                if (ws->n_top[row] == W && top[W - 1].score < bound)
                    bound = top[W - 1].score;
                int32_t n_pass = aqi_filter_tile(sc, kt, bound, ws->pass_idx);
                for (int32_t c = 0; c < n_pass && ws->pass_idx[c] < kend; c++) {
                    int32_t kk = ws->pass_idx[c];
                    top_offer(top, &ws->n_top[row], W, sc[kk], (int32_t)k0 + kk, a);
                }
            }
        }
    }

    /* per group: the best distinct children */
    for (int32_t row = 0; row < rows;) {
        int64_t p = ws->row_grp[row];
        int32_t n_st = ps->n_states[p];
        double s = ps->q->scales[ps->p0 + p], s2 = s * s;
        const uint16_t *state_codes[64];
        int32_t n_list = 0;
        for (int32_t b = 0; b < n_st; b++)
            state_codes[b] = slot_codes(ps, p, ps->slot[p * W + b]);
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
            const top_entry *top = ws->tops + (size_t)row * (size_t)W;
            /* the unchanged child always competes, with exactly the state's loss */
            cand keep = {base, b, a, 0};
            list_offer(ws->list, &n_list, W, &keep, ps->dist + p * W * W, W, state_codes, pos);
            for (int32_t e = 0; e < ws->n_top[row]; e++) {
                if (top[e].k == a)
                    continue;
                cand x = {base + s2 * ((double)top[e].score - (double)ws->score_a[row]), b, top[e].k, 1};
                list_offer(ws->list, &n_list, W, &x, ps->dist + p * W * W, W, state_codes, pos);
            }
        }
        if (W == 1 && !ws->list[0].changed)
            continue; /* coordinate descent kept the code */
        commit_children(ps, ws, p, n_list, (float)s, step, Hjj);
    }
}

/* A worker takes its groups a sub-block at a time through every step of the window, so the
 * sub-block's states stay in cache; only H's rows of each step stream by. */
static int window_range(void *arg, int64_t begin, int64_t end, int worker)
{
    pass *ps = arg;
    if (worker >= ps->n_workers)
        return AQ_ERR_INTERNAL; /* the context's thread count grew during the call */
    for (int64_t sb = begin; sb < end; sb += ps->groups_per_sub) {
        int64_t se = sb + ps->groups_per_sub < end ? sb + ps->groups_per_sub : end;
        for (int64_t s = ps->w0; s < ps->w1; s++) {
            int32_t j = ps->steps[s].j;
            if (s == ps->w0 || ps->steps[s - 1].j != j)
                open_in_group(ps, sb, se, j);
            run_step(ps, &ps->ws[worker], sb, se, s);
            if (s + 1 == ps->w1 || ps->steps[s + 1].j != j)
                close_in_group(ps, &ps->ws[worker], sb, se, j);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup and the pass */

/* The sweep: input groups outer, codebooks inner, each in a seeded random order if asked.
 * @p scratch holds J + M ints. Only the first n_j input groups of the order are swept. */
static void make_order(pass *ps, int64_t n_j, int32_t *scratch)
{
    aqi_rng rng;
    int32_t *order_j = scratch, *order_m = scratch + ps->J;
    aqi_rng_init(&rng, aq_context_get_seed(ps->layer->ctx), ps->cfg->stream);
    for (int64_t j = 0; j < ps->J; j++)
        order_j[j] = (int32_t)j;
    if (ps->cfg->random_order)
        for (int64_t i = ps->J - 1; i > 0; i--) {
            int64_t r = (int64_t)aqi_rng_below(&rng, (uint64_t)i + 1);
            int32_t tmp = order_j[i];
            order_j[i] = order_j[r];
            order_j[r] = tmp;
        }
    for (int64_t i = 0; i < n_j; i++) {
        for (int32_t m = 0; m < ps->M; m++)
            order_m[m] = m;
        if (ps->cfg->random_order)
            for (int32_t x = ps->M - 1; x > 0; x--) {
                int32_t r = (int32_t)aqi_rng_below(&rng, (uint64_t)x + 1);
                int32_t tmp = order_m[x];
                order_m[x] = order_m[r];
                order_m[r] = tmp;
            }
        for (int32_t m = 0; m < ps->M; m++) {
            ps->steps[i * ps->M + m].j = order_j[i];
            ps->steps[i * ps->M + m].m = order_m[m];
        }
    }
}

static void free_pass(pass *ps, int32_t *scratch)
{
    aq_context *ctx = ps->layer->ctx;
    if (ps->ws)
        for (int w = 0; w < ps->n_workers; w++) {
            worker_ws *ws = &ps->ws[w];
            aqi_free(ctx, ws->U);
            aqi_free(ctx, ws->scores);
            aqi_free(ctx, ws->score_a);
            aqi_free(ctx, ws->tops);
            aqi_free(ctx, ws->n_top);
            aqi_free(ctx, ws->row_grp);
            aqi_free(ctx, ws->row_state);
            aqi_free(ctx, ws->coef);
            aqi_free(ctx, ws->upd_G);
            aqi_free(ctx, ws->upd_coef);
            aqi_free(ctx, ws->list);
            aqi_free(ctx, ws->ibuf);
            aqi_free(ctx, ws->dbuf);
            aqi_free(ctx, ws->trace);
            aqi_free(ctx, ws->trace_dl);
            aqi_free(ctx, ws->pass_idx);
            aqi_free(ctx, ws->row_a);
            aqi_free(ctx, ws->hc);
            aqi_free(ctx, ws->lmin);
            aqi_free(ctx, ws->lidx);
        }
    aqi_free(ctx, ps->ws);
    aqi_free(ctx, ps->CT);
    aqi_free(ctx, ps->steps);
    aqi_free(ctx, ps->tables);
    aqi_free(ctx, ps->Hjj);
    aqi_free(ctx, ps->G);
    aqi_free(ctx, ps->codes);
    aqi_free(ctx, ps->loss);
    aqi_free(ctx, ps->slot);
    aqi_free(ctx, ps->n_states);
    aqi_free(ctx, ps->dist);
    aqi_free(ctx, ps->slice);
    aqi_free(ctx, ps->pending);
    aqi_free(ctx, ps->dirty);
    aqi_free(ctx, ps->dW);
    aqi_free(ctx, ps->G0);
    aqi_free(ctx, scratch);
}

/* Array of n elements of size elem, or NULL with AQ_ERR_NOMEM recorded. */
static void *alloc_array(aq_context *ctx, size_t n, size_t elem, int *status)
{
    void *p;
    if (*status)
        return NULL;
    p = aqi_calloc(ctx, n ? n : 1, elem);
    if (!p)
        *status = AQ_ERR_NOMEM;
    return p;
}

static int alloc_workers(pass *ps)
{
    aq_context *ctx = ps->layer->ctx;
    int st = 0;
    const size_t W = (size_t)ps->width, rows = MAX_ROWS_PER_SUB;
    ps->n_workers = aqi_num_workers(ctx);
    ps->ws = alloc_array(ctx, (size_t)ps->n_workers, sizeof(worker_ws), &st);
    for (int w = 0; w < ps->n_workers && !st; w++) {
        worker_ws *ws = &ps->ws[w];
        ws->U = alloc_array(ctx, rows * (size_t)ps->D, sizeof(float), &st);
        ws->scores = alloc_array(ctx, rows * K_TILE, sizeof(float), &st);
        ws->score_a = alloc_array(ctx, rows, sizeof(float), &st);
        ws->tops = alloc_array(ctx, rows * W, sizeof(top_entry), &st);
        ws->n_top = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->row_grp = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->row_state = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->coef = alloc_array(ctx, rows * (size_t)ps->D, sizeof(float), &st);
        ws->upd_G = alloc_array(ctx, rows * (size_t)ps->go, sizeof(float *), &st);
        ws->upd_coef = alloc_array(ctx, rows * (size_t)ps->go, sizeof(float *), &st);
        ws->list = alloc_array(ctx, W, sizeof(cand), &st);
        ws->ibuf = alloc_array(ctx, 3 * W + W * W, sizeof(int32_t), &st);
        ws->dbuf = alloc_array(ctx, W, sizeof(double), &st);
        ws->pass_idx = alloc_array(ctx, K_TILE, sizeof(int32_t), &st);
        ws->row_a = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->hc = alloc_array(ctx, (size_t)ps->D, sizeof(float), &st);
        ws->lmin = alloc_array(ctx, rows * AQI_SCORE_LANES, sizeof(float), &st);
        ws->lidx = alloc_array(ctx, rows * AQI_SCORE_LANES, sizeof(int32_t), &st);
        if (ps->cfg->trace) {
            ws->trace = alloc_array(ctx, rows * (size_t)ps->Kpad, sizeof(float), &st);
            ws->trace_dl = alloc_array(ctx, (size_t)ps->K, sizeof(double), &st);
        }
    }
    return st;
}

/* Transposed, zero-padded codebooks: CT[m][d][k] = C_m[k][d]. */
static void transpose_codebooks(pass *ps)
{
    for (int32_t m = 0; m < ps->M; m++)
        for (int64_t k = 0; k < ps->K; k++) {
            const float *c = aqi_codeword(ps->q, m, (uint32_t)k);
            for (int32_t d = 0; d < ps->D; d++)
                ps->CT[((size_t)m * (size_t)ps->D + (size_t)d) * (size_t)ps->Kpad + (size_t)k] = c[d];
        }
}

int aqi_opt_beam_pass(const aqi_layer *layer, aq_quant *q, const aqi_beam_config *cfg,
                      double *loss_before, double *loss_after)
{
    aq_context *ctx = layer->ctx;
    pass ps;
    int st = 0;
    int32_t *scratch = NULL;
    double total_before = 0.0, total_after = 0.0;

    if (cfg->width < 1 || cfg->width > 64)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "beam search: width %d outside 1..64", (int)cfg->width);
    memset(&ps, 0, sizeof ps);
    ps.layer = layer;
    ps.q = q;
    ps.cfg = cfg;
    ps.width = cfg->width;
    ps.M = q->M;
    ps.g = q->g;
    ps.go = q->go;
    ps.D = q->go * q->g;
    ps.ncols = q->cols;
    ps.J = q->n_in_groups;
    ps.P = q->n_out_groups;
    ps.K = q->K;
    ps.Kpad = (q->K + AQI_SCORE_LANES - 1) / AQI_SCORE_LANES * AQI_SCORE_LANES;
    ps.JM = ps.J * ps.M;
    ps.groups_per_sub = MAX_ROWS_PER_SUB / ps.width;
    int64_t n_j = cfg->max_in_groups > 0 && cfg->max_in_groups < ps.J ? cfg->max_in_groups : ps.J;
    ps.n_steps = n_j * ps.M;
    ps.window = (int64_t)(TABLE_BUDGET / ((size_t)ps.Kpad * sizeof(float)));
    if (cfg->window_steps > 0 && cfg->window_steps < ps.window)
        ps.window = cfg->window_steps;
    ps.window = ps.window < 1 ? 1 : (ps.window > ps.n_steps ? ps.n_steps : ps.window);

    /* groups held at once: all of them if the states fit in STATE_BUDGET */
    {
        size_t per_group = (size_t)ps.width * ((size_t)ps.go * (size_t)ps.ncols * sizeof(float)
                                               + (size_t)ps.JM * sizeof(uint16_t) + 16
                                               + (size_t)ps.width * sizeof(int32_t));
        int64_t R = (int64_t)(STATE_BUDGET / per_group);
        ps.R = R < 1 ? 1 : (R > ps.P ? ps.P : R);
        ps.chunk_groups = INIT_CHUNK_ROWS / ps.go < 1 ? 1 : INIT_CHUNK_ROWS / ps.go;
        if (ps.chunk_groups > ps.R)
            ps.chunk_groups = ps.R;
    }
    {
        const size_t W = (size_t)ps.width, R = (size_t)ps.R;
        const size_t chunk_rows = (size_t)ps.chunk_groups * (size_t)ps.go;
        size_t g_floats, code_count;
        if (aqi_mul3_size(&g_floats, R * W, (size_t)ps.go, (size_t)ps.ncols)
            || aqi_mul3_size(&code_count, R, W, (size_t)ps.JM))
            return aqi_fail(ctx, AQ_ERR_OVERFLOW, "beam search: state size overflows");
        scratch = alloc_array(ctx, (size_t)(ps.J + ps.M), sizeof(int32_t), &st);
        ps.steps = alloc_array(ctx, (size_t)ps.n_steps, sizeof(step_info), &st);
        ps.CT = alloc_array(ctx, (size_t)ps.M * (size_t)ps.D * (size_t)ps.Kpad, sizeof(float), &st);
        ps.tables = alloc_array(ctx, (size_t)ps.window * (size_t)ps.Kpad, sizeof(float), &st);
        ps.Hjj = alloc_array(ctx, (size_t)ps.window * (size_t)ps.g * (size_t)ps.g, sizeof(float), &st);
        ps.G = alloc_array(ctx, g_floats, sizeof(float), &st);
        ps.codes = alloc_array(ctx, code_count, sizeof(uint16_t), &st);
        ps.loss = alloc_array(ctx, R * W, sizeof(double), &st);
        ps.slot = alloc_array(ctx, R * W, sizeof(int32_t), &st);
        ps.n_states = alloc_array(ctx, R, sizeof(int32_t), &st);
        ps.dist = alloc_array(ctx, R * W * W, sizeof(int32_t), &st);
        ps.slice = alloc_array(ctx, R * W * (size_t)ps.D, sizeof(float), &st);
        ps.pending = alloc_array(ctx, R * W * (size_t)ps.D, sizeof(float), &st);
        ps.dirty = alloc_array(ctx, R * W, sizeof(uint8_t), &st);
        ps.dW = alloc_array(ctx, chunk_rows * (size_t)ps.ncols, sizeof(float), &st);
        ps.G0 = alloc_array(ctx, chunk_rows * (size_t)ps.ncols, sizeof(float), &st);
        if (!st)
            st = alloc_workers(&ps);
        if (st) {
            free_pass(&ps, scratch);
            return st;
        }
    }
    make_order(&ps, n_j, scratch);
    transpose_codebooks(&ps);

    for (ps.p0 = 0; ps.p0 < ps.P && !st; ps.p0 += ps.R) {
        if (ps.p0 + ps.R > ps.P)
            ps.R = ps.P - ps.p0;
        if (ps.chunk_groups > ps.R)
            ps.chunk_groups = ps.R;
        st = start_block(&ps);
        for (int64_t b = 0; b < ps.R && !st; b++)
            total_before += ps.loss[b * ps.width];
        for (ps.w0 = 0; ps.w0 < ps.n_steps && !st; ps.w0 = ps.w1) {
            ps.w1 = ps.w0 + ps.window < ps.n_steps ? ps.w0 + ps.window : ps.n_steps;
            st = prepare_window(&ps);
            if (!st)
                st = aqi_parallel_for(ctx, ps.R, window_range, &ps);
            if (st == AQ_ERR_INTERNAL)
                st = aqi_fail(ctx, st, "beam search: the context's thread count changed during the call");
        }
        /* the best state (first of each sorted list) becomes the group's codes */
        for (int64_t p = 0; p < ps.R && !st; p++) {
            const uint16_t *best = slot_codes(&ps, p, ps.slot[p * ps.width]);
            for (int64_t j = 0; j < ps.J; j++)
                for (int32_t m = 0; m < ps.M; m++)
                    aqi_code_set(q, ps.p0 + p, j, m, best[j * ps.M + m]);
            total_after += ps.loss[p * ps.width];
        }
    }
    free_pass(&ps, scratch);
    if (st)
        return st;
    if (loss_before)
        *loss_before = total_before;
    if (loss_after)
        *loss_after = total_after;
    return AQ_OK;
}

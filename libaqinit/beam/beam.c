/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Beam search over the codes of a quantized layer (AQLM beam_search_xtx semantics,
 * REFERENCE-ALGORITHMS.md §1.6), with exact loss changes and no re-dequantisation per step.
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
 * table t (beam_step.c, aqi_score_tile over tiles of K: no states × K matrix is stored).
 *
 * Keeping G up to date. The sweep is cut into batches of consecutive input groups
 * j_0 … j_{n−1} (about 128 input columns). A state keeps only S = ΔW·H[:, J_batch] (g_o × n·g),
 * whose columns i·g … i·g+g−1 are the G_r of (B1) at j_i. Accepting k at (j_i, m) changes ΔW_r
 * by −s δ_r on J_{j_i}, hence
 *
 *   S_r ← S_r − s δ_r H[J_{j_i}, J_batch]       (only columns >= i·g: the rest are done) (B3)
 *
 * (g² multiply-adds per later batch column). At the start of a batch, the first (best) state of
 * every group gets S from one product of its ΔW with H[:, J_batch] (aqi_product_rows; ΔW is held
 * per group and brought to the first state's codes tile by tile, only where they changed); any
 * other state b of the group differs from it in the tiles of a few input groups j, and
 *
 *   S_b = S_ref − s Σ_j (V_{b,j} − V_{ref,j}) H[J_j, J_batch],   V_{·,j} = Σ_m C_m[b(j, m)] (B4)
 *
 * Over a pass the products cost one ΔW·H (2·O·I² flops), whatever the beam width, and a child
 * costs a copy of its codes and of g_o × ldb floats of S, never a row of G.
 * Losses are tracked in double relative to each group's loss at the start (the unchanged child
 * of a state has exactly its loss, so a pass never increases L); at the end the best state of
 * each group becomes its codes.
 *
 * Schedule and determinism. Groups are independent. For each batch a worker takes its groups a
 * sub-block (<= 64 states) at a time: ΔW brought up to date, the product, then every step of the
 * batch, so the sub-block's states stay in cache. Every number depends only on its own group
 * (the kernels compute a row the same way wherever it sits in a block), so the result does not
 * depend on the thread count; no BLAS call is made, so not on the BLAS library either. */
#include <math.h>
#include <string.h>

#include "core/comm.h"
#include "beam/beam_pass.h"

#define BATCH_COLS 128   /* input columns per batch: batch groups = BATCH_COLS / g */
#define STATE_BUDGET ((size_t)32 << 20) /* bytes of beam states (and ΔW) held at once */
#define TABLE_BUDGET ((size_t)16 << 20) /* bytes of per-step tables t_k held at once */
#define NN_BUDGET ((size_t)16 << 20)    /* bytes of per-step trees held at once (at least one per worker) */

/* ------------------------------------------------------------------------------------------ */
/* Per batch: H[:, J_batch] and the tables t_k */

/* H_jj of the step at batch position x (leading dimension ldb): rows J_j of HT, the batch columns
 * of input group j. */
static const float *batch_Hjj(const aqi_beam_pass *ps, int64_t x)
{
    const aqi_beam_step *st = &ps->steps[ps->s0 + x];
    return ps->HT + (size_t)st->j * (size_t)ps->g * (size_t)ps->ldb + (size_t)(x / ps->M) * (size_t)ps->g;
}

/* HT[a][i·g + e] = H[a][j_i·g + e] for the rows a of [begin, end). */
static int gather_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    const int32_t g = ps->g;
    (void)worker;
    for (int64_t a = begin; a < end; a++)
        for (int32_t i = 0; i < ps->n_batch; i++)
            memcpy(ps->HT + (size_t)a * (size_t)ps->ldb + (size_t)i * (size_t)g,
                   ps->layer->H + (size_t)a * (size_t)ps->ncols + (size_t)ps->steps[ps->s0 + (int64_t)i * ps->M].j * (size_t)g,
                   sizeof(float) * (size_t)g);
    return 0;
}

/* t_k = Σ_r c_{k,r}ᵀ H_jj c_{k,r} for the codebook m of each step of the batch (B2), +inf on
 * the padding: item x is the chunk x % n_chunks of TABLE_CHUNK codewords of step s0 + x / n_chunks. */
#define TABLE_CHUNK 256
static int table_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    const int32_t g = ps->g;
    const int64_t n_chunks = (ps->Kpad + TABLE_CHUNK - 1) / TABLE_CHUNK;
    (void)worker;
    for (int64_t x = begin; x < end; x++) {
        int64_t w = x / n_chunks, k0 = x % n_chunks * TABLE_CHUNK;
        int64_t kt = ps->Kpad - k0 < TABLE_CHUNK ? ps->Kpad - k0 : TABLE_CHUNK;
        const aqi_beam_step *st = &ps->steps[ps->s0 + w];
        float *t = ps->tables + w * ps->Kpad;
        aqi_table_tile(ps->CT + (size_t)st->m * (size_t)ps->D * (size_t)ps->Kpad + k0, ps->Kpad, ps->go, g,
                       batch_Hjj(ps, w), ps->ldb, kt, t + k0);
        for (int64_t k = ps->K > k0 ? ps->K : k0; k < k0 + kt; k++)
            t[k] = INFINITY;
    }
    return 0;
}

/* H_jj c_k of every codeword of each step of the batch (aqi_beam_hc), when kept: item w is step
 * s0 + w. */
static int hc_table_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    const int32_t g = ps->g;
    (void)worker;
    for (int64_t w = begin; w < end; w++) {
        const aqi_beam_step *st = &ps->steps[ps->s0 + w];
        const float *Hjj = batch_Hjj(ps, w);
        float *hc = ps->hc_tables + (size_t)w * (size_t)ps->K * (size_t)ps->D;
        for (int64_t k = 0; k < ps->K; k++)
            aqi_beam_hc(aqi_codeword(ps->q, st->m, (uint32_t)k), Hjj, ps->ldb, ps->go, g, hc + (size_t)k * (size_t)ps->D);
    }
    return 0;
}

/* The tree of each step of the round [t0, t1) (beam_nn.c), from its H_jj and tables: item w is
 * step t0 + w, batch position t0 + w − s0. */
static int nn_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    if (worker >= ps->n_workers)
        return AQ_ERR_INTERNAL;
    for (int64_t w = begin; w < end; w++) {
        const int64_t x = ps->t0 + w - ps->s0;
        const aqi_beam_step *st = &ps->steps[ps->s0 + x];
        aqi_beam_nn_build(&ps->nn[w], ps->CT + (size_t)st->m * (size_t)ps->D * (size_t)ps->Kpad, ps->Kpad, ps->K,
                          batch_Hjj(ps, x), ps->ldb, ps->tables + x * ps->Kpad, ps->ws[worker].nn_y);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Per batch: S of every state (B4) */

/* Unscaled tile row r of input group j: out[d] = Σ_m C_m[codes[j·M + m]][r·g + d]. */
static void tile_row(const aqi_beam_pass *ps, const uint16_t *codes, int64_t j, int32_t r, float *out)
{
    const int32_t g = ps->g;
    const float *c = aqi_codeword(ps->q, 0, codes[j * ps->M]) + r * g;
    for (int32_t d = 0; d < g; d++)
        out[d] = c[d];
    for (int32_t m = 1; m < ps->M; m++) {
        c = aqi_codeword(ps->q, m, codes[j * ps->M + m]) + r * g;
        for (int32_t d = 0; d < g; d++)
            out[d] += c[d];
    }
}

/* ΔW of block group p on the input groups [j0, j1) for the codes in dW_codes. */
static void residual_tiles(aqi_beam_pass *ps, int64_t p, int64_t j0, int64_t j1)
{
    const aqi_layer *L = ps->layer;
    const int32_t g = ps->g;
    const uint16_t *codes = ps->dW_codes + (size_t)p * (size_t)ps->JM;
    const float s = ps->q->scales[ps->p0 + p];
    for (int32_t r = 0; r < ps->go; r++) {
        const float *w = L->W + ((ps->p0 + p) * ps->go + r) * L->ld;
        float *out = ps->dW + ((size_t)p * (size_t)ps->go + (size_t)r) * (size_t)ps->ncols;
        for (int64_t j = j0; j < j1; j++) {
            tile_row(ps, codes, j, r, out + j * g);
            for (int32_t d = 0; d < g; d++)
                out[j * g + d] = w[j * g + d] - s * out[j * g + d];
        }
    }
}

/* Bring ΔW of group p to the codes of its first state: only the input groups that changed. */
static void sync_residual(aqi_beam_pass *ps, int64_t p)
{
    const int32_t M = ps->M;
    const uint16_t *ref = aqi_beam_codes(ps, p, ps->slot[p * ps->width]);
    uint16_t *have = ps->dW_codes + (size_t)p * (size_t)ps->JM;
    for (int64_t j0 = 0; j0 < ps->J; j0 += 16) {
        int64_t j1 = j0 + 16 < ps->J ? j0 + 16 : ps->J;
        if (!memcmp(have + j0 * M, ref + j0 * M, sizeof(uint16_t) * (size_t)((j1 - j0) * M)))
            continue;
        for (int64_t j = j0; j < j1; j++)
            if (memcmp(have + j * M, ref + j * M, sizeof(uint16_t) * (size_t)M)) {
                memcpy(have + j * M, ref + j * M, sizeof(uint16_t) * (size_t)M);
                residual_tiles(ps, p, j, j + 1);
            }
    }
}

/* S of every state of group p from the product Sp (g_o × ldb) of its first state: the first
 * copies it, the others add (B4) for every input group where their tiles differ. */
static void init_group_S(aqi_beam_pass *ps, aqi_beam_ws *ws, int64_t p, const float *Sp)
{
    const int32_t W = ps->width, g = ps->g, go = ps->go, M = ps->M, ldb = ps->ldb;
    const int32_t nbg = ps->n_batch * g;
    const size_t s_floats = (size_t)go * (size_t)ldb;
    const int32_t *slot = ps->slot + p * W;
    const uint16_t *ref = aqi_beam_codes(ps, p, slot[0]);
    const float s = ps->q->scales[ps->p0 + p];
    float *vb = ws->tile, *vr = ws->tile + g; /* one tile row of each state */
    memcpy(aqi_beam_S(ps, p, slot[0]), Sp, sizeof(float) * s_floats);
    for (int32_t b = 1; b < ps->n_states[p]; b++) {
        const uint16_t *cb = aqi_beam_codes(ps, p, slot[b]);
        float *Sb = aqi_beam_S(ps, p, slot[b]);
        memcpy(Sb, Sp, sizeof(float) * s_floats);
        for (int64_t j0 = 0; j0 < ps->J; j0 += 16) {
            int64_t j1 = j0 + 16 < ps->J ? j0 + 16 : ps->J;
            if (!memcmp(cb + j0 * M, ref + j0 * M, sizeof(uint16_t) * (size_t)((j1 - j0) * M)))
                continue;
            for (int64_t j = j0; j < j1; j++) {
                if (!memcmp(cb + j * M, ref + j * M, sizeof(uint16_t) * (size_t)M))
                    continue;
                for (int32_t r = 0; r < go; r++) {
                    tile_row(ps, cb, j, r, vb);
                    tile_row(ps, ref, j, r, vr);
                    for (int32_t d = 0; d < g; d++)
                        ws->coef[r * g + d] = -s * (vb[d] - vr[d]);
                    ws->upd_S[r] = Sb + (size_t)r * (size_t)ldb;
                    ws->upd_coef[r] = ws->coef + r * g;
                }
                aqi_rank_g_update(ws->upd_S, ws->upd_coef, go, g, ps->HT + (size_t)j * (size_t)g * (size_t)ldb,
                                  ldb, nbg);
            }
        }
    }
}

/* A worker takes its groups a sub-block at a time: in the batch's first round ΔW of their first
 * states brought up to date, S = ΔW·H[:, J_batch] for them and S of the other states (B4); then
 * the steps of the round. A group's operations and their order do not depend on the rounds. */
static int batch_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    if (worker >= ps->n_workers)
        return AQ_ERR_INTERNAL; /* the context's thread count grew during the call */
    aqi_beam_ws *ws = &ps->ws[worker];
    const size_t s_floats = (size_t)ps->go * (size_t)ps->ldb;
    const int64_t nc = ((int64_t)ps->n_batch * ps->g + AQI_SCORE_LANES - 1) / AQI_SCORE_LANES * AQI_SCORE_LANES;
    for (int64_t sb = begin; sb < end; sb += ps->groups_per_sub) {
        int64_t se = sb + ps->groups_per_sub < end ? sb + ps->groups_per_sub : end;
        if (ps->t0 == ps->s0) {
            for (int64_t p = sb; p < se; p++)
                sync_residual(ps, p);
            aqi_product_rows(ps->dW + (size_t)sb * (size_t)ps->go * (size_t)ps->ncols, ps->ncols, (se - sb) * ps->go,
                             ps->ncols, ps->HT, ps->ldb, nc, ws->S_first, ps->ldb);
            for (int64_t p = sb; p < se; p++)
                init_group_S(ps, ws, p, ws->S_first + (size_t)(p - sb) * s_floats);
        }
        for (int64_t s = ps->t0; s < ps->t1; s++)
            aqi_beam_run_step(ps, ws, sb, se, s);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup */

/* The sweep: input groups outer, codebooks inner, each in a seeded random order if asked.
 * @p scratch holds J + M ints. Only the first n_j input groups of the order are swept. */
static void make_order(aqi_beam_pass *ps, int64_t n_j, int32_t *scratch)
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

static void free_pass(aqi_beam_pass *ps, int32_t *scratch)
{
    aq_context *ctx = ps->layer->ctx;
    if (ps->ws)
        for (int w = 0; w < ps->n_workers; w++) {
            aqi_beam_ws *ws = &ps->ws[w];
            aqi_free(ctx, ws->U);
            aqi_free(ctx, ws->scores);
            aqi_free(ctx, ws->score_a);
            aqi_free(ctx, ws->tops);
            aqi_free(ctx, ws->n_top);
            aqi_free(ctx, ws->row_grp);
            aqi_free(ctx, ws->row_state);
            aqi_free(ctx, ws->row_a);
            aqi_free(ctx, ws->lmin);
            aqi_free(ctx, ws->lidx);
            aqi_free(ctx, ws->pass_idx);
            aqi_free(ctx, ws->hc);
            aqi_free(ctx, ws->coef);
            aqi_free(ctx, ws->tile);
            aqi_free(ctx, ws->S_first);
            aqi_free(ctx, ws->upd_S);
            aqi_free(ctx, ws->upd_coef);
            aqi_free(ctx, ws->list);
            aqi_free(ctx, ws->ibuf);
            aqi_free(ctx, ws->dbuf);
            aqi_free(ctx, ws->trace);
            aqi_free(ctx, ws->trace_dl);
            aqi_free(ctx, ws->nn_y);
            aqi_free(ctx, ws->nn_tile);
        }
    if (ps->nn)
        for (int64_t i = 0; i < ps->n_nn; i++)
            aqi_beam_nn_free(ctx, &ps->nn[i]);
    aqi_free(ctx, ps->nn);
    aqi_free(ctx, ps->ws);
    aqi_free(ctx, ps->CT);
    aqi_free(ctx, ps->steps);
    aqi_free(ctx, ps->HT);
    aqi_free(ctx, ps->tables);
    aqi_free(ctx, ps->hc_tables);
    aqi_free(ctx, ps->codes);
    aqi_free(ctx, ps->S);
    aqi_free(ctx, ps->loss);
    aqi_free(ctx, ps->slot);
    aqi_free(ctx, ps->n_states);
    aqi_free(ctx, ps->dist);
    aqi_free(ctx, ps->dW);
    aqi_free(ctx, ps->dW_codes);
    aqi_free(ctx, scratch);
}

/* Array of n elements of size elem, or NULL with AQ_ERR_NOMEM recorded (nothing if *status). */
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

static int alloc_workers(aqi_beam_pass *ps)
{
    aq_context *ctx = ps->layer->ctx;
    int st = 0;
    const size_t W = (size_t)ps->width, rows = AQI_BEAM_MAX_ROWS, D = (size_t)ps->D;
    ps->n_workers = aqi_num_workers(ctx);
    ps->ws = alloc_array(ctx, (size_t)ps->n_workers, sizeof(aqi_beam_ws), &st);
    for (int w = 0; w < ps->n_workers && !st; w++) {
        aqi_beam_ws *ws = &ps->ws[w];
        ws->U = alloc_array(ctx, rows * D, sizeof(float), &st);
        ws->scores = alloc_array(ctx, rows * AQI_BEAM_K_TILE, sizeof(float), &st);
        ws->score_a = alloc_array(ctx, rows, sizeof(float), &st);
        ws->tops = alloc_array(ctx, rows * W, sizeof(aqi_beam_top), &st);
        ws->n_top = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->row_grp = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->row_state = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->row_a = alloc_array(ctx, rows, sizeof(int32_t), &st);
        ws->lmin = alloc_array(ctx, rows * AQI_SCORE_LANES, sizeof(float), &st);
        ws->lidx = alloc_array(ctx, rows * AQI_SCORE_LANES, sizeof(int32_t), &st);
        ws->pass_idx = alloc_array(ctx, AQI_BEAM_K_TILE, sizeof(int32_t), &st);
        ws->hc = alloc_array(ctx, D, sizeof(float), &st);
        ws->coef = alloc_array(ctx, D, sizeof(float), &st);
        ws->tile = alloc_array(ctx, 2 * (size_t)ps->g, sizeof(float), &st);
        ws->S_first = alloc_array(ctx, (size_t)ps->groups_per_sub * (size_t)ps->go * (size_t)ps->ldb,
                                  sizeof(float), &st);
        ws->upd_S = alloc_array(ctx, (size_t)ps->go, sizeof(float *), &st);
        ws->upd_coef = alloc_array(ctx, (size_t)ps->go, sizeof(float *), &st);
        ws->list = alloc_array(ctx, W, sizeof(aqi_beam_cand), &st);
        ws->ibuf = alloc_array(ctx, 3 * W + W * W, sizeof(int32_t), &st);
        ws->dbuf = alloc_array(ctx, W, sizeof(double), &st);
        if (ps->nn) {
            ws->nn_y = alloc_array(ctx, (size_t)ps->K * (D + 2), sizeof(float), &st);
            ws->nn_tile = alloc_array(ctx, (D + 1) * AQI_NN_LEAF, sizeof(float), &st);
        }
        if (ps->cfg->trace) {
            ws->trace = alloc_array(ctx, rows * (size_t)ps->Kpad, sizeof(float), &st);
            ws->trace_dl = alloc_array(ctx, (size_t)ps->K, sizeof(double), &st);
        }
    }
    return st;
}

/* Transposed, zero-padded codebooks: CT[m][d][k] = C_m[k][d]. */
static void transpose_codebooks(aqi_beam_pass *ps)
{
    for (int32_t m = 0; m < ps->M; m++)
        for (int64_t k = 0; k < ps->K; k++) {
            const float *c = aqi_codeword(ps->q, m, (uint32_t)k);
            for (int32_t d = 0; d < ps->D; d++)
                ps->CT[((size_t)m * (size_t)ps->D + (size_t)d) * (size_t)ps->Kpad + (size_t)k] = c[d];
        }
}

/* Whether the steps use the trees of beam_nn.c: asked or automatic at large K, never with a
 * trace (tests that need every score), only for tiles of at most 16 values and when one tree
 * fits NN_BUDGET (the batch size is the scan's either way, so that both give the same bits). */
static int use_nn(const aqi_beam_pass *ps)
{
    const aqi_beam_config *cfg = ps->cfg;
    if (cfg->nn == AQI_BEAM_NN_OFF || cfg->trace || ps->D > AQI_NN_MAX_D || ps->g > AQI_NN_MAX_G)
        return 0;
    if (cfg->nn == AQI_BEAM_NN_ON)
        return 1;
    return ps->K >= AQI_NN_MIN_K && aqi_beam_nn_bytes(ps->K, ps->D) <= NN_BUDGET;
}

/* Trees held at once: as many steps of a batch as fit NN_BUDGET, but at least one per worker
 * (they are built in parallel), at most a batch's steps; cfg->nn_steps caps it (tests). */
static int64_t trees_held(const aqi_beam_pass *ps)
{
    const int64_t steps = ps->batch_max * ps->M, workers = aqi_num_workers(ps->layer->ctx);
    int64_t n = (int64_t)(NN_BUDGET / aqi_beam_nn_bytes(ps->K, ps->D));
    n = n < workers ? workers : n;
    if (ps->cfg->nn_steps > 0 && ps->cfg->nn_steps < n)
        n = ps->cfg->nn_steps;
    return n < steps ? n : steps; /* >= 1: workers and cfg->nn_steps are */
}

/* Sizes: batch and block; then every array. */
static int setup_pass(aqi_beam_pass *ps, int64_t n_j, int32_t **scratch)
{
    aq_context *ctx = ps->layer->ctx;
    const aqi_beam_config *cfg = ps->cfg;
    int st = 0;

    ps->batch_max = BATCH_COLS / ps->g < 1 ? 1 : BATCH_COLS / ps->g;
    if (cfg->batch_groups > 0 && cfg->batch_groups < ps->batch_max)
        ps->batch_max = cfg->batch_groups;
    {
        int64_t by_tables = (int64_t)(TABLE_BUDGET / ((size_t)ps->Kpad * (size_t)ps->M * sizeof(float)));
        if (by_tables < ps->batch_max)
            ps->batch_max = by_tables < 1 ? 1 : by_tables;
    }
    if (ps->batch_max > n_j)
        ps->batch_max = n_j < 1 ? 1 : n_j;
    if (ps->batch_max * ps->g > INT32_MAX - AQI_SCORE_LANES)
        return aqi_fail(ctx, AQ_ERR_OVERFLOW, "beam search: input group size %d too large", (int)ps->g);
    /* S rows and HT rows padded to whole vectors */
    ps->ldb = (int32_t)((ps->batch_max * ps->g + AQI_SCORE_LANES - 1) / AQI_SCORE_LANES * AQI_SCORE_LANES);

    /* output groups held at once: all of them if their states and ΔW fit in STATE_BUDGET */
    {
        const size_t W = (size_t)ps->width, JM = (size_t)ps->JM, go = (size_t)ps->go;
        size_t per_state = JM * sizeof(uint16_t) + go * (size_t)ps->ldb * sizeof(float) + sizeof(double)
                           + (2 + W) * sizeof(int32_t);
        size_t per_group = W * per_state + JM * sizeof(uint16_t) + go * (size_t)ps->ncols * sizeof(float);
        int64_t R = (int64_t)(STATE_BUDGET / per_group);
        if (cfg->block_groups > 0 && cfg->block_groups < R)
            R = cfg->block_groups;
        ps->R_max = R < 1 ? 1 : (R > ps->P ? ps->P : R);
    }
    {
        const size_t W = (size_t)ps->width, R = (size_t)ps->R_max, ldb = (size_t)ps->ldb, go = (size_t)ps->go;
        size_t s_floats, code_count, ht_floats, dw_floats;
        if (aqi_mul3_size(&s_floats, R * W, go, ldb) || aqi_mul3_size(&code_count, R, W, (size_t)ps->JM)
            || aqi_mul_size(&ht_floats, (size_t)ps->ncols, ldb) || aqi_mul3_size(&dw_floats, R, go, (size_t)ps->ncols))
            return aqi_fail(ctx, AQ_ERR_OVERFLOW, "beam search: state size overflows");
        *scratch = alloc_array(ctx, (size_t)(ps->J + ps->M), sizeof(int32_t), &st);
        ps->steps = alloc_array(ctx, (size_t)ps->n_steps, sizeof(aqi_beam_step), &st);
        ps->CT = alloc_array(ctx, (size_t)ps->M * (size_t)ps->D * (size_t)ps->Kpad, sizeof(float), &st);
        ps->HT = alloc_array(ctx, ht_floats, sizeof(float), &st);
        ps->tables = alloc_array(ctx, (size_t)ps->batch_max * (size_t)ps->M * (size_t)ps->Kpad, sizeof(float), &st);
        ps->select_in_groups = ps->width > 1 && !cfg->trace && cfg->select != AQI_BEAM_SELECT_TILES
                               && ps->Kpad <= AQI_BEAM_K_TILE;
        /* H_jj c_k per step of a batch, (batch_max·M)·K·D floats, kept up to 4 MiB (2x8 g8: 256 KiB);
         * AQI_BEAM_SELECT_TILES (tests) computes every state's instead */
        if (ps->Kpad <= AQI_BEAM_K_TILE && cfg->select != AQI_BEAM_SELECT_TILES
            && (int64_t)ps->D * ps->K * ps->batch_max * ps->M <= ((int64_t)1 << 20))
            ps->hc_tables = alloc_array(ctx, (size_t)ps->batch_max * (size_t)ps->M * (size_t)ps->K * (size_t)ps->D,
                                        sizeof(float), &st);
        ps->codes = alloc_array(ctx, code_count, sizeof(uint16_t), &st);
        ps->S = alloc_array(ctx, s_floats, sizeof(float), &st);
        ps->loss = alloc_array(ctx, R * W, sizeof(double), &st);
        ps->slot = alloc_array(ctx, R * W, sizeof(int32_t), &st);
        ps->n_states = alloc_array(ctx, R, sizeof(int32_t), &st);
        ps->dist = alloc_array(ctx, R * W * W, sizeof(int32_t), &st);
        ps->dW = alloc_array(ctx, dw_floats, sizeof(float), &st);
        ps->dW_codes = alloc_array(ctx, R * (size_t)ps->JM, sizeof(uint16_t), &st);
        if (use_nn(ps)) {
            ps->n_nn = trees_held(ps);
            ps->nn = alloc_array(ctx, (size_t)ps->n_nn, sizeof(aqi_beam_nn), &st);
            for (int64_t i = 0; i < ps->n_nn && !st; i++)
                if (aqi_beam_nn_alloc(ctx, &ps->nn[i], ps->K, ps->go, ps->g))
                    st = AQ_ERR_NOMEM;
        }
        if (!st)
            st = alloc_workers(ps);
    }
    return st;
}

/* Block start: every group has one state, the quant's codes, at relative loss 0, and ΔW. */
static int start_range(void *arg, int64_t begin, int64_t end, int worker)
{
    aqi_beam_pass *ps = arg;
    (void)worker;
    for (int64_t p = begin; p < end; p++) {
        uint16_t *codes = aqi_beam_codes(ps, p, 0);
        for (int64_t j = 0; j < ps->J; j++)
            for (int32_t m = 0; m < ps->M; m++)
                codes[j * ps->M + m] = (uint16_t)aqi_code_get(ps->q, ps->p0 + p, j, m);
        memcpy(ps->dW_codes + (size_t)p * (size_t)ps->JM, codes, sizeof(uint16_t) * (size_t)ps->JM);
        residual_tiles(ps, p, 0, ps->J);
        ps->loss[p * ps->width] = 0.0;
        ps->slot[p * ps->width] = 0;
        ps->n_states[p] = 1;
        ps->dist[p * ps->width * ps->width] = 0;
    }
    return 0;
}

/* The batches of one block. */
static int run_block(aqi_beam_pass *ps)
{
    aq_context *ctx = ps->layer->ctx;
    int st = aqi_parallel_for(ctx, ps->R, start_range, ps);
    for (ps->s0 = 0; ps->s0 < ps->n_steps && !st; ps->s0 = ps->s1) {
        int64_t s1 = ps->s0 + ps->batch_max * ps->M;
        ps->s1 = s1 < ps->n_steps ? s1 : ps->n_steps;
        ps->n_batch = (int32_t)((ps->s1 - ps->s0) / ps->M);
        st = aqi_parallel_for(ctx, ps->ncols, gather_range, ps);
        if (!st)
            st = aqi_parallel_for(ctx, (ps->s1 - ps->s0) * ((ps->Kpad + TABLE_CHUNK - 1) / TABLE_CHUNK),
                                  table_range, ps);
        if (!st && ps->hc_tables)
            st = aqi_parallel_for(ctx, ps->s1 - ps->s0, hc_table_range, ps);
        /* the steps in rounds of the trees held (one round without trees) */
        for (ps->t0 = ps->s0; ps->t0 < ps->s1 && !st; ps->t0 = ps->t1) {
            ps->t1 = ps->nn && ps->s1 - ps->t0 > ps->n_nn ? ps->t0 + ps->n_nn : ps->s1;
            if (ps->nn)
                st = aqi_parallel_for(ctx, ps->t1 - ps->t0, nn_range, ps);
            if (!st)
                st = aqi_parallel_for(ctx, ps->R, batch_range, ps);
        }
    }
    if (st == AQ_ERR_INTERNAL)
        st = aqi_fail(ctx, st, "beam search: the context's thread count changed during the call");
    return st;
}

int aqi_opt_beam_pass(const aqi_layer *layer, aq_quant *q, const aqi_beam_config *cfg,
                      double *loss_before, double *loss_after)
{
    aq_context *ctx = layer->ctx;
    aqi_beam_pass ps;
    int st = 0;
    int32_t *scratch = NULL;
    double total_before = 0.0, total_delta = 0.0, *group_delta = NULL;

    if (cfg->width < 1 || cfg->width > AQI_BEAM_MAX_WIDTH)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "beam search: width %d outside 1..%d", (int)cfg->width,
                        AQI_BEAM_MAX_WIDTH);
    if (loss_before || loss_after) {
        st = aqi_opt_loss(layer, q, &total_before, NULL);
        if (st)
            return st;
    }
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
    ps.groups_per_sub = AQI_BEAM_MAX_ROWS / ps.width;
    int64_t n_j = cfg->max_in_groups > 0 && cfg->max_in_groups < ps.J ? cfg->max_in_groups : ps.J;
    ps.n_steps = n_j * ps.M;

    /* Output groups are independent: with a communicator each rank searches its share
     * [g0, g1) and the codes and per-group loss changes are gathered (core/comm.h). */
    int64_t g0, g1;
    aqi_comm_my_share(ctx, ps.P, &g0, &g1);
    st = setup_pass(&ps, n_j, &scratch);
    if (!st && !(group_delta = aqi_calloc(ctx, (size_t)ps.P, sizeof(double))))
        st = AQ_ERR_NOMEM;
    if ((st = aqi_comm_agree(ctx, "beam search", st)) != AQ_OK) {
        free_pass(&ps, scratch);
        aqi_free(ctx, group_delta);
        return st;
    }
    make_order(&ps, n_j, scratch);
    transpose_codebooks(&ps);

    for (ps.p0 = g0; ps.p0 < g1 && !st; ps.p0 += ps.R) {
        ps.R = g1 - ps.p0 < ps.R_max ? g1 - ps.p0 : ps.R_max;
        st = run_block(&ps);
        /* the best state (first of each sorted list) becomes the group's codes */
        for (int64_t p = 0; p < ps.R && !st; p++) {
            const uint16_t *best = aqi_beam_codes(&ps, p, ps.slot[p * ps.width]);
            for (int64_t j = 0; j < ps.J; j++)
                for (int32_t m = 0; m < ps.M; m++)
                    aqi_code_set(q, ps.p0 + p, j, m, best[j * ps.M + m]);
            group_delta[ps.p0 + p] = ps.loss[p * ps.width];
        }
    }
    if (ps.nn && ps.ws) {
        int64_t n_rows = 0, n_scored = 0;
        for (int w = 0; w < ps.n_workers; w++) {
            n_rows += ps.ws[w].nn_rows;
            n_scored += ps.ws[w].nn_scored;
        }
        aqi_log(ctx, AQ_LOG_DEBUG, "beam search: trees answered %lld state queries, %.1f of %lld codewords scored per query",
                (long long)n_rows, n_rows ? (double)n_scored / (double)n_rows : 0.0, (long long)ps.K);
    }
    if (cfg->nn_counts && ps.ws)
        for (int w = 0; w < ps.n_workers; w++) {
            cfg->nn_counts[0] += ps.ws[w].nn_rows;
            cfg->nn_counts[1] += ps.ws[w].nn_scored;
        }
    free_pass(&ps, scratch);
    st = aqi_comm_allgather(ctx, "beam search", st, q->codes, ps.P,
                            (size_t)ps.JM * (aqi_code_is_wide(q) ? sizeof(uint16_t) : sizeof(uint8_t)));
    if (st == AQ_OK)
        st = aqi_comm_allgather(ctx, "beam search", st, group_delta, ps.P, sizeof(double));
    for (int64_t p = 0; p < ps.P && st == AQ_OK; p++)
        total_delta += group_delta[p];
    aqi_free(ctx, group_delta);
    if (st)
        return st;
    if (loss_before)
        *loss_before = total_before;
    if (loss_after)
        *loss_after = total_before + total_delta;
    return AQ_OK;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The exchanges after a sharded E-step (em.h): each rank's share of the codes to every rank.
 * Called by the E-steps of em.c and em_bounds.c. */
#include <stdint.h>

#include "core/comm.h"
#include "init/em.h"

/* Codes travel as 16 bits (K <= 65,536 always), half the bytes of the int32 codes, packed into
 * a buffer of N·2 bytes held only for the exchange (an allocation failure on one rank is agreed
 * by the gather, so every rank returns it). */

/* After a sharded Mahalanobis E-step: this rank's groups [j0, j1) are up to date in @p codes
 * (point i = p·J + j) and w->changed[j]; send them group-major and take the other ranks' groups
 * (codes and counts). */
int aqi_em_share_group_codes(aqi_em_work *w, int status, int32_t *codes, int64_t j0, int64_t j1)
{
    const aqi_em_metric *m = w->metric;
    const int64_t J = m->n_groups, P = m->n_points / J;
    uint16_t *packed;
    int st;
    if (aqi_comm_size(w->ctx) == 1)
        return status;
    packed = aqi_alloc(w->ctx, sizeof(uint16_t) * (size_t)m->n_points);
    if (!packed && status == AQ_OK)
        status = AQ_ERR_NOMEM;
    for (int64_t j = j0; j < j1 && status == AQ_OK; j++)
        for (int64_t p = 0; p < P; p++)
            packed[j * P + p] = (uint16_t)codes[p * J + j];
    st = aqi_comm_allgather(w->ctx, "aq_init", status, packed, J, sizeof(uint16_t) * (size_t)P);
    if (st == AQ_OK)
        st = aqi_comm_allgather(w->ctx, "aq_init", st, w->changed, J, sizeof(int64_t));
    for (int64_t j = 0; j < J && st == AQ_OK; j++)
        if (j < j0 || j >= j1)
            for (int64_t p = 0; p < P; p++)
                codes[p * J + j] = packed[j * P + p];
    aqi_free(w->ctx, packed);
    return st;
}

/* After an E-step over points [i0, i1): the same for contiguous shares of points. */
int aqi_em_share_point_codes(aqi_em_work *w, int status, int32_t *codes, int64_t i0, int64_t i1)
{
    const int64_t N = w->metric->n_points;
    uint16_t *packed;
    int st;
    if (aqi_comm_size(w->ctx) == 1)
        return status;
    packed = aqi_alloc(w->ctx, sizeof(uint16_t) * (size_t)N);
    if (!packed && status == AQ_OK)
        status = AQ_ERR_NOMEM;
    for (int64_t i = i0; i < i1 && status == AQ_OK; i++)
        packed[i] = (uint16_t)codes[i];
    st = aqi_comm_allgather(w->ctx, "aq_init", status, packed, N, sizeof(uint16_t));
    for (int64_t i = 0; i < N && st == AQ_OK; i++)
        if (i < i0 || i >= i1)
            codes[i] = packed[i];
    aqi_free(w->ctx, packed);
    return st;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The beam search over codes (AQLM's beam_search_xtx semantics): sweeps the input groups and
 * codebooks of a layer, scoring every replacement of a code by its exact change of the layer
 * objective (objective/layer.h). Codebooks and scales stay fixed. */
#ifndef AQINIT_BEAM_BEAM_H
#define AQINIT_BEAM_BEAM_H

#include "objective/layer.h"

/* Called (tests only, width 1) once per group and step with the group's codes before the step
 * ([J][M]) and ΔL of every candidate k < K as computed by the incremental search (from the
 * worker threads: the callback must only touch data of its own group). */
typedef void (*aqi_beam_trace_fn)(void *userdata, int64_t group, int32_t j, int32_t m,
                                  const uint16_t *codes, const double *delta_loss);

/* Candidates by exact nearest-neighbour queries (beam_nn.c) or by a scan of all K: the same
 * codes either way; AUTO uses the queries from AQI_NN_MIN_K codewords on. */
enum { AQI_BEAM_NN_AUTO = 0, AQI_BEAM_NN_OFF = 1, AQI_BEAM_NN_ON = 2 };
enum { AQI_BEAM_SELECT_AUTO = 0, AQI_BEAM_SELECT_TILES = 1 }; /* aqi_beam_config.select */

typedef struct aqi_beam_config {
    int32_t width;         /* states kept per output group, 1..64 */
    int32_t random_order;  /* shuffle input groups and codebooks with (ctx seed, stream) */
    uint64_t stream;       /* RNG stream of the shuffle */
    int64_t max_in_groups; /* 0: all; > 0: sweep only the first n input groups (benchmarks) */
    int64_t batch_groups;  /* 0: automatic; > 0: at most this many input groups per batch (tests) */
    aqi_beam_trace_fn trace;
    void *trace_userdata;
    int64_t block_groups;  /* 0: automatic; > 0: at most this many output groups per block (tests) */
    int32_t nn;            /* AQI_BEAM_NN_AUTO, _OFF (scan all K) or _ON (trees whenever D <= 16) */
    int64_t *nn_counts;    /* NULL, or [2] += states queried by trees, codewords they scored */
    int32_t select;        /* AQI_BEAM_SELECT_AUTO, or _TILES: the per-tile selection and per-state
                            * H_jj c_a at any K (tests: the path of K > AQI_BEAM_K_TILE) */
    int64_t nn_steps;      /* 0: automatic; > 0: at most this many steps' trees held at once (tests) */
} aqi_beam_config;

/* One beam-search pass over the codes of @p q (codebooks and scales fixed). @p loss_before and
 * @p loss_after (may be NULL) receive L before the pass (computed only if asked) and L plus the
 * tracked change of the chosen states. On failure the codes of @p q may be partly updated: the
 * public entry points work on a copy. */
int aqi_opt_beam_pass(const aqi_layer *layer, aq_quant *q, const aqi_beam_config *cfg,
                      double *loss_before, double *loss_after);

#endif

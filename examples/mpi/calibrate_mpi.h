/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Calibration across MPI ranks for the llama example (examples/mpi/aqinit-mpi-quantize): each
 * rank runs the forward of its share of the windows, the captured inputs travel to every rank,
 * and every rank adds all windows to H in window order, so the Hessian is bit-identical to
 * llm_calibrate in one process (aq_hessian_allreduce would move less data, but its bits depend
 * on the split; docs/scaling.md). */
#ifndef AQEX_CALIBRATE_MPI_H
#define AQEX_CALIBRATE_MPI_H

#include <mpi.h>

#include "calibrate.h"

/* As llm_calibrate (same windows, same result), the forward passes shared over @p comm.
 * Collective. */
int llm_calibrate_mpi(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows, int target,
                      aq_hessian *H, MPI_Comm comm);

#endif

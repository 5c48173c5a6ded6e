/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Calibration statistics from the Llama example's forward: the Hessian of one layer's inputs. */
#ifndef AQEX_CALIBRATE_H
#define AQEX_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include <aqinit.h>

#include "llama_model.h"

/* Run the first @p max_windows full windows of @p tokens through @p m and add the inputs of
 * linear @p target to @p H with aq_hessian_add (each forward stops at that layer). Returns
 * AQ_OK, the failing status of aq_hessian_add, or AQ_ERR_INVALID_ARG if the forward fails (a
 * token >= vocab_size, or no memory for the activations). */
int llm_calibrate(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows, int target,
                  aq_hessian *H);

#endif

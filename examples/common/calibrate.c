/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
#include "calibrate.h"

typedef struct capture {
    int target;
    aq_hessian *H;
    int status;
} capture;

/* Forward hook: add the target's input rows, then stop the forward (non-zero return). */
static int capture_input(int linear, const float *X, int rows, int cols, void *userdata)
{
    capture *c = userdata;
    if (linear != c->target)
        return 0;
    c->status = aq_hessian_add(c->H, X, rows, cols);
    return 1;
}

int llm_calibrate(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows, int target,
                  aq_hessian *H)
{
    const size_t seq = (size_t)llm_get_config(m)->seq_len;
    capture cap = {target, H, AQ_OK};
    for (int w = 0; w < max_windows && (size_t)(w + 1) * seq <= n_tokens && cap.status == AQ_OK; w++)
        if (llm_forward(m, tokens + (size_t)w * seq, (int)seq, NULL, capture_input, &cap) < 0)
            return AQ_ERR_INVALID_ARG; /* a token >= vocab_size, or no memory for the activations */
    return cap.status;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libaqinit as a meson subproject: quantize a small random layer and check the error fell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aqinit.h>

enum { ROWS = 32, COLS = 64 };

int main(void)
{
    aq_context *ctx = NULL;
    aq_quant *q = NULL;
    aq_format fmt;
    float *W = malloc(sizeof(float) * ROWS * COLS);
    double before = 0.0, after = 0.0;
    unsigned s = 1;
    for (int i = 0; i < ROWS * COLS; i++) {
        s = s * 1103515245u + 12345u;
        W[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    if (!W || aq_context_create(&ctx) != AQ_OK)
        return 1;
    aq_format_init(&fmt);
    if (aq_format_parse_ctx(ctx, &fmt, "2x8q8") != AQ_ERR_INVALID_ARG || !strstr(aq_context_last_error(ctx), "q8")) {
        fprintf(stderr, "a bad format was not refused with a message\n");
        return 1;
    }
    if (aq_format_parse_ctx(ctx, &fmt, "2x4g8") != AQ_OK || aq_quant_create(&q, ctx, &fmt, ROWS, COLS) != AQ_OK
        || aq_quant_weight_mse(&before, q, W, COLS) != AQ_OK || aq_init(ctx, q, W, COLS, NULL, NULL) != AQ_OK
        || aq_quant_weight_mse(&after, q, W, COLS) != AQ_OK) {
        fprintf(stderr, "failed: %s\n", aq_context_last_error(ctx));
        return 1;
    }
    printf("libaqinit %s as a subproject: weight MSE %.5f -> %.5f\n", aq_version_string(), before, after);
    aq_quant_free(q);
    aq_context_free(ctx);
    free(W);
    return after < 0.5 * before ? 0 : 1;
}

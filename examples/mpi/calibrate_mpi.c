/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Calibration forward passes shared over MPI ranks (calibrate_mpi.h). */
#include <stdlib.h>
#include <string.h>

#include "calibrate_mpi.h"

typedef struct capture {
    int target, cols;
    float *dst; /* seq_len × cols of this window */
    int captured;
} capture;

static int capture_rows(int linear, const float *X, int rows, int cols, void *userdata)
{
    capture *c = userdata;
    if (linear != c->target)
        return 0;
    memcpy(c->dst, X, sizeof(float) * (size_t)rows * (size_t)cols);
    c->cols = cols;
    c->captured = 1;
    return 1; /* stop the forward at the target */
}

int llm_calibrate_mpi(llm_model *m, const uint16_t *tokens, size_t n_tokens, int max_windows, int target,
                      aq_hessian *H, MPI_Comm comm)
{
    const size_t seq = (size_t)llm_get_config(m)->seq_len, cols = (size_t)aq_hessian_num_inputs(H);
    int rank, size, windows = 0, ok = 1, all_ok = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    while (windows < max_windows && (size_t)(windows + 1) * seq <= n_tokens)
        windows++;
    float *X = malloc(sizeof(float) * (windows ? (size_t)windows : 1) * seq * cols);
    ok = X != NULL;
    /* window w belongs to rank r when w is in [windows·r/size, windows·(r+1)/size) */
    const int w0 = (int)((long long)windows * rank / size), w1 = (int)((long long)windows * (rank + 1) / size);
    for (int w = w0; w < w1 && ok; w++) {
        capture cap = {target, 0, X + (size_t)w * seq * cols, 0};
        ok = llm_forward(m, tokens + (size_t)w * seq, (int)seq, NULL, capture_rows, &cap) >= 0 && cap.captured
             && (size_t)cap.cols == cols;
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm);
    if (!all_ok) {
        free(X);
        return AQ_ERR_INVALID_ARG;
    }
    for (int r = 0; r < size; r++) {
        const int b = (int)((long long)windows * r / size), e = (int)((long long)windows * (r + 1) / size);
        for (int w = b; w < e; w++) /* one window per call: counts stay far below INT_MAX */
            MPI_Bcast(X + (size_t)w * seq * cols, (int)(seq * cols), MPI_FLOAT, r, comm);
    }
    int st = AQ_OK;
    for (int w = 0; w < windows && st == AQ_OK; w++)
        st = aq_hessian_add(H, X + (size_t)w * seq * cols, (int64_t)seq, (int64_t)cols);
    free(X);
    return st;
}

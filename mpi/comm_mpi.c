/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_comm over MPI (include/aqinit-mpi.h). Each callback is one MPI collective on a duplicate
 * of the host's communicator; counts above INT_MAX go in pieces. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "aqinit-mpi.h"

typedef struct mpi_comm_state {
    aq_comm comm; /* first: the pointer handed out */
    MPI_Comm mpi;
} mpi_comm_state;

static MPI_Comm state_comm(void *ud)
{
    return ((mpi_comm_state *)ud)->mpi;
}

#define PIECE ((int64_t)1 << 28) /* elements per MPI call, well below INT_MAX */

static int allreduce_sum(void *buf, int64_t count, size_t elem, MPI_Datatype type, void *ud)
{
    for (int64_t off = 0; off < count; off += PIECE) {
        int n = (int)(count - off < PIECE ? count - off : PIECE);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * elem, n, type, MPI_SUM, state_comm(ud))
            != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

static int allreduce_f64(double *buf, int64_t count, void *ud)
{
    return allreduce_sum(buf, count, sizeof *buf, MPI_DOUBLE, ud);
}

static int allreduce_f32(float *buf, int64_t count, void *ud)
{
    return allreduce_sum(buf, count, sizeof *buf, MPI_FLOAT, ud);
}

static int broadcast(void *buf, int64_t nbytes, int32_t root, void *ud)
{
    for (int64_t off = 0; off < nbytes; off += PIECE) {
        int n = (int)(nbytes - off < PIECE ? nbytes - off : PIECE);
        if (MPI_Bcast((char *)buf + off, n, MPI_BYTE, root, state_comm(ud)) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

/* Every rank's status gathered; the lowest failing rank wins, the same on every rank. */
static int agree(int32_t *status, int32_t *failed_rank, void *ud)
{
    mpi_comm_state *s = ud;
    const int size = s->comm.size;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)size);
    int rc = all ? MPI_Allgather(status, 1, MPI_INT32_T, all, 1, MPI_INT32_T, s->mpi) : MPI_ERR_NO_MEM;
    if (rc != MPI_SUCCESS) {
        free(all);
        return -1;
    }
    *status = 0;
    *failed_rank = -1;
    for (int r = 0; r < size; r++)
        if (all[r] != 0) {
            *status = all[r];
            *failed_rank = r;
            break;
        }
    free(all);
    return 0;
}

int aq_comm_mpi_create(aq_comm **out, MPI_Comm comm)
{
    int initialized = 0, rank = 0, size = 0;
    mpi_comm_state *s;
    if (!out)
        return AQ_ERR_INVALID_ARG;
    *out = NULL;
    if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized)
        return AQ_ERR_INVALID_ARG;
    if (!(s = calloc(1, sizeof *s)))
        return AQ_ERR_NOMEM;
    if (MPI_Comm_dup(comm, &s->mpi) != MPI_SUCCESS) {
        free(s);
        return AQ_ERR_CALLBACK;
    }
    if (MPI_Comm_rank(s->mpi, &rank) != MPI_SUCCESS || MPI_Comm_size(s->mpi, &size) != MPI_SUCCESS) {
        MPI_Comm_free(&s->mpi);
        free(s);
        return AQ_ERR_CALLBACK;
    }
    /* a transport error is reported to the library as a failing callback, not an abort */
    MPI_Comm_set_errhandler(s->mpi, MPI_ERRORS_RETURN);
    aq_comm_init(&s->comm);
    s->comm.rank = rank;
    s->comm.size = size;
    s->comm.allreduce_sum_f64 = allreduce_f64;
    s->comm.allreduce_sum_f32 = allreduce_f32;
    s->comm.broadcast = broadcast;
    s->comm.agree = agree;
    s->comm.userdata = s;
    *out = &s->comm;
    return AQ_OK;
}

void aq_comm_mpi_free(aq_comm *comm)
{
    mpi_comm_state *s = (mpi_comm_state *)comm;
    if (!s)
        return;
    MPI_Comm_free(&s->mpi);
    free(s);
}

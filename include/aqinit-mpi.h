/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* libaqinit-mpi: an aq_comm over an MPI communicator (aqinit.h, "Communicator"). A separate
 * library (pkg-config aqinit-mpi), so that libaqinit itself never depends on MPI. */
#ifndef AQINIT_MPI_H
#define AQINIT_MPI_H

#include <mpi.h>

#include "aqinit.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Create an aq_comm over a duplicate of @p comm (MPI must be initialised; the duplicate keeps
 *  the library's messages apart from the host's). Free it with aq_comm_mpi_free() before
 *  MPI_Finalize, after every context using it is done. Collective over @p comm.
 *  @return ::AQ_OK, ::AQ_ERR_INVALID_ARG (NULL out, MPI not initialised), ::AQ_ERR_NOMEM or
 *  ::AQ_ERR_CALLBACK (an MPI call failed). */
AQ_API int aq_comm_mpi_create(aq_comm **out, MPI_Comm comm);
/** Free a communicator made by aq_comm_mpi_create() (NULL is fine). Collective. */
AQ_API void aq_comm_mpi_free(aq_comm *comm);

#ifdef __cplusplus
}
#endif

#endif

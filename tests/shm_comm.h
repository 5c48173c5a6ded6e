/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* An in-process communicator for tests and benchmarks: N "ranks" are N host threads of one
 * process, exchanging through shared memory and a barrier. Header-only (tests/ and bench/).
 * Collectives follow the aq_comm contract; the sum-allreduce deliberately adds the ranks in a
 * rank-dependent order (as a real transport may), so a library result that depended on the
 * transport's order would differ between ranks. Counts the bytes each rank receives. */
#ifndef AQINIT_TESTS_SHM_COMM_H
#define AQINIT_TESTS_SHM_COMM_H

/* pthread barriers are POSIX 2001+: include this header before any system header. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aqinit.h"

enum { SHM_MAX_RANKS = 8 };

typedef struct shm_world {
    int size;
    pthread_barrier_t barrier;
    void *slot[SHM_MAX_RANKS];
    int32_t status[SHM_MAX_RANKS];
    int fail_broadcasts; /* > 0: every rank's broadcast fails from the n-th call on (tests) */
} shm_world;

typedef struct shm_rank {
    shm_world *world;
    int rank;
    long n_broadcasts;
    int64_t bytes_received; /* payload this rank received (broadcasts from others, reductions) */
} shm_rank;

static inline int shm_world_init(shm_world *w, int size)
{
    memset(w, 0, sizeof *w);
    w->size = size;
    return pthread_barrier_init(&w->barrier, NULL, (unsigned)size);
}

static inline void shm_world_destroy(shm_world *w)
{
    pthread_barrier_destroy(&w->barrier);
}

static inline void shm_wait(shm_world *w)
{
    pthread_barrier_wait(&w->barrier);
}

static int shm_broadcast(void *buf, int64_t nbytes, int32_t root, void *ud)
{
    shm_rank *r = ud;
    shm_world *w = r->world;
    r->n_broadcasts++;
    if (root < 0 || root >= w->size)
        return -1;
    if (r->rank == root)
        w->slot[root] = buf;
    shm_wait(w);
    if (r->rank != root) {
        memcpy(buf, w->slot[root], (size_t)nbytes);
        r->bytes_received += nbytes;
    }
    shm_wait(w);
    return w->fail_broadcasts > 0 && r->n_broadcasts >= w->fail_broadcasts ? -1 : 0;
}

#define SHM_ALLREDUCE(name, type)                                                          \
    static int name(type *buf, int64_t count, void *ud)                                    \
    {                                                                                      \
        shm_rank *r = ud;                                                                  \
        shm_world *w = r->world;                                                           \
        type *sum = malloc(sizeof(type) * (size_t)(count ? count : 1));                    \
        w->slot[r->rank] = buf;                                                            \
        shm_wait(w);                                                                       \
        for (int64_t i = 0; sum && i < count; i++) {                                       \
            sum[i] = 0;                                                                    \
            for (int k = 0; k < w->size; k++) { /* order depends on the rank */            \
                int src = (r->rank % 2) ? w->size - 1 - k : k;                             \
                sum[i] += ((const type *)w->slot[src])[i];                                 \
            }                                                                              \
        }                                                                                  \
        shm_wait(w);                                                                       \
        if (sum)                                                                           \
            memcpy(buf, sum, sizeof(type) * (size_t)count);                                \
        r->bytes_received += (int64_t)sizeof(type) * count * (w->size - 1);                \
        free(sum);                                                                         \
        return sum ? 0 : -1;                                                               \
    }
SHM_ALLREDUCE(shm_allreduce_f64, double)
SHM_ALLREDUCE(shm_allreduce_f32, float)

static int shm_agree(int32_t *status, int32_t *failed_rank, void *ud)
{
    shm_rank *r = ud;
    shm_world *w = r->world;
    w->status[r->rank] = *status;
    shm_wait(w);
    *status = 0;
    *failed_rank = -1;
    for (int k = 0; k < w->size; k++)
        if (w->status[k] != 0) {
            *status = w->status[k];
            *failed_rank = k;
            break;
        }
    shm_wait(w);
    return 0;
}

/* The aq_comm of rank @p r. */
static inline aq_comm shm_comm(shm_rank *r)
{
    aq_comm c;
    aq_comm_init(&c);
    c.rank = r->rank;
    c.size = r->world->size;
    c.allreduce_sum_f64 = shm_allreduce_f64;
    c.allreduce_sum_f32 = shm_allreduce_f32;
    c.broadcast = shm_broadcast;
    c.agree = shm_agree;
    c.userdata = r;
    return c;
}

/* Run fn(arg_t) on @p size threads (arg_t = args + t·arg_size, whose first member must be a
 * shm_rank) of one world and wait for them; with fail_broadcasts = n > 0 every broadcast from
 * the n-th of each rank on fails. Returns 0 on success. */
typedef void *(*shm_rank_fn)(void *);
static inline int shm_run(int size, int fail_broadcasts, shm_rank_fn fn, void *args, size_t arg_size)
{
    shm_world w;
    pthread_t th[SHM_MAX_RANKS];
    if (size < 1 || size > SHM_MAX_RANKS || shm_world_init(&w, size) != 0)
        return -1;
    w.fail_broadcasts = fail_broadcasts;
    for (int t = 0; t < size; t++) {
        shm_rank *r = (shm_rank *)(void *)((char *)args + (size_t)t * arg_size);
        r->world = &w;
        r->rank = t;
        r->n_broadcasts = 0;
        r->bytes_received = 0;
    }
    for (int t = 0; t < size; t++)
        if (pthread_create(&th[t], NULL, fn, (char *)args + (size_t)t * arg_size) != 0)
            return -1;
    for (int t = 0; t < size; t++)
        pthread_join(th[t], NULL);
    shm_world_destroy(&w);
    return 0;
}

#endif

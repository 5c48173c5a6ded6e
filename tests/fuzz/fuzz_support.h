/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Shared by the fuzz harnesses, gen_corpus.c and test_example_loaders.c (header only; include it
 * first, before any system header):
 *
 * - fuzz_file_open(): the input bytes as an in-memory file (memfd) that a loader can open by
 *   path ("/proc/self/fd/N"), since every loader under test takes a path; fuzz_scratch_path()
 *   for a file a saver writes;
 * - a counting allocator that enforces the loaders' allocation rule: while a loader runs, the
 *   bytes it holds may not exceed FUZZ_ALLOC_FACTOR × (input bytes) + FUZZ_ALLOC_SLACK, i.e. a
 *   loader must check the file length before it allocates what the header describes. The
 *   library's loaders get it as an aq_allocator (fuzz_aq_allocator); the examples' loaders, which
 *   call malloc directly, are compiled into the harness after FUZZ_COUNT_MALLOC (below) so that
 *   their malloc/calloc/realloc/free go through it. In a fuzz harness a violation prints the
 *   sizes and aborts (libFuzzer reports a crash and saves the input); in a test it is recorded
 *   and the allocation fails.
 *
 * Not thread-safe: the loaders allocate from the calling thread only. */
#ifndef AQ_FUZZ_SUPPORT_H
#define AQ_FUZZ_SUPPORT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_ALLOC_FACTOR 16u
#define FUZZ_ALLOC_SLACK ((size_t)64 * 1024)

/* Write @p data to a fresh memfd and put its path into @p path; returns the descriptor (close it
 * when done). Aborts if the file cannot be made: that is the harness's failure, not the loader's. */
static inline int fuzz_file_open(const void *data, size_t size, char *path, size_t path_len)
{
    const unsigned char *p = data;
    int fd = memfd_create("aqinit-fuzz-input", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n <= 0) {
            perror("write");
            abort();
        }
        p += n;
        size -= (size_t)n;
    }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

/* A per-process scratch file name for a saver (which writes NAME.tmp and renames it): under
 * /dev/shm when it is writable, else /tmp. */
static inline void fuzz_scratch_path(char *path, size_t path_len, const char *name)
{
    snprintf(path, path_len, "%s/aqinit-fuzz-%ld-%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (long)getpid(), name);
}

/* ---------------------------------------------------------------- counting allocator */

typedef struct fuzz_alloc_state {
    size_t live;         /* bytes held now, by anyone */
    size_t base;         /* live at fuzz_alloc_begin: held before the loader ran */
    size_t peak;         /* the most the loader held (live - base) since fuzz_alloc_begin */
    size_t limit;        /* SIZE_MAX outside begin/end */
    size_t input_bytes;
    int trap;            /* 1: abort on a violation; 0: record it and fail the allocation */
    int exceeded;        /* a violation happened since fuzz_alloc_begin */
} fuzz_alloc_state;

static fuzz_alloc_state fuzz_alloc = {0, 0, 0, SIZE_MAX, 0, 0, 0};

/* Bytes allocated since fuzz_alloc_begin and still held. */
static inline size_t fuzz_alloc_held(void)
{
    return fuzz_alloc.live > fuzz_alloc.base ? fuzz_alloc.live - fuzz_alloc.base : 0;
}

/* Each block is preceded by its size, so free knows what to subtract. */
typedef union fuzz_block_header {
    size_t size;
    max_align_t align;
} fuzz_block_header;

/* Start enforcing the rule for a loader that reads @p input_bytes bytes. */
static inline void fuzz_alloc_begin(size_t input_bytes, int trap)
{
    const size_t max_input = (SIZE_MAX - FUZZ_ALLOC_SLACK) / FUZZ_ALLOC_FACTOR;
    fuzz_alloc.limit = input_bytes > max_input ? SIZE_MAX : FUZZ_ALLOC_FACTOR * input_bytes + FUZZ_ALLOC_SLACK;
    fuzz_alloc.input_bytes = input_bytes;
    fuzz_alloc.base = fuzz_alloc.live;
    fuzz_alloc.peak = 0;
    fuzz_alloc.trap = trap;
    fuzz_alloc.exceeded = 0;
}

/* Stop enforcing (counting goes on, so blocks freed later are still subtracted). */
static inline void fuzz_alloc_end(void)
{
    fuzz_alloc.limit = SIZE_MAX;
}

static inline void *fuzz_malloc(size_t size)
{
    fuzz_block_header *h;
    const size_t held = fuzz_alloc_held();
    if (size > SIZE_MAX - sizeof *h || held > fuzz_alloc.limit || size > fuzz_alloc.limit - held) {
        if (fuzz_alloc.trap) {
            fprintf(stderr,
                    "fuzz: allocation limit exceeded: %zu bytes held + %zu requested > %zu allowed "
                    "for a %zu-byte input (%u x size + %zu)\n",
                    held, size, fuzz_alloc.limit, fuzz_alloc.input_bytes, FUZZ_ALLOC_FACTOR, FUZZ_ALLOC_SLACK);
            abort();
        }
        fuzz_alloc.exceeded = 1;
        return NULL;
    }
    if (!(h = malloc(sizeof *h + size)))
        return NULL;
    h->size = size;
    fuzz_alloc.live += size;
    if (fuzz_alloc_held() > fuzz_alloc.peak)
        fuzz_alloc.peak = fuzz_alloc_held();
    return h + 1;
}

static inline void fuzz_free(void *ptr)
{
    fuzz_block_header *h = ptr;
    if (!ptr)
        return;
    h--;
    fuzz_alloc.live -= h->size;
    free(h);
}

static inline void *fuzz_calloc(size_t n, size_t size)
{
    void *p;
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    if ((p = fuzz_malloc(n * size)))
        memset(p, 0, n * size);
    return p;
}

static inline void *fuzz_realloc(void *ptr, size_t size)
{
    void *p;
    if (!ptr)
        return fuzz_malloc(size);
    if (!(p = fuzz_malloc(size)))
        return NULL;
    const size_t old = ((fuzz_block_header *)ptr - 1)->size;
    memcpy(p, ptr, old < size ? old : size);
    fuzz_free(ptr);
    return p;
}

/* The same allocator for libaqinit (aq_context_create_with_allocator). */
static inline void *fuzz_aq_alloc(size_t size, void *userdata)
{
    (void)userdata;
    return fuzz_malloc(size);
}

static inline void fuzz_aq_free(void *ptr, void *userdata)
{
    (void)userdata;
    fuzz_free(ptr);
}

/* Define FUZZ_COUNT_MALLOC before including a source file that calls malloc directly: its
 * malloc family then goes through the counting allocator (the system headers are already in). */
#ifdef FUZZ_COUNT_MALLOC
#define malloc(size) fuzz_malloc(size)
#define calloc(n, size) fuzz_calloc(n, size)
#define realloc(ptr, size) fuzz_realloc(ptr, size)
#define free(ptr) fuzz_free(ptr)
#endif

/* The file a saver wrote at @p path must hold exactly @p data (a loaded input saved back: the
 * round trip restores every byte); prints and aborts otherwise. Removes the file. */
static inline void fuzz_expect_file(const char *path, const uint8_t *data, size_t size, const char *who)
{
    unsigned char *back = malloc(size + 1);
    FILE *f = back ? fopen(path, "rb") : NULL;
    size_t got;
    if (!f)
        abort();
    got = fread(back, 1, size + 1, f);
    fclose(f);
    remove(path);
    if (got != size || memcmp(back, data, size) != 0) {
        fprintf(stderr, "%s: the saved file differs from the loaded one\n", who);
        abort();
    }
    free(back);
}

#endif

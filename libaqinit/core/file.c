/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Files of the library's formats: written whole or not at all, read only when regular. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

int aqi_file_create(aq_context *ctx, const char *fn, aqi_file_out *out, const char *path)
{
    size_t len = strlen(path);
    memset(out, 0, sizeof *out);
    out->path = path;
    if (!(out->tmp_path = aqi_alloc(ctx, len + 5)))
        return AQ_ERR_NOMEM;
    memcpy(out->tmp_path, path, len);
    memcpy(out->tmp_path + len, ".tmp", 5);
    if (!(out->f = fopen(out->tmp_path, "wb"))) {
        int err = errno;
        aqi_fail(ctx, AQ_ERR_IO, "%s: cannot create '%s': %s", fn, out->tmp_path, strerror(err));
        aqi_free(ctx, out->tmp_path);
        out->tmp_path = NULL;
        return AQ_ERR_IO;
    }
    return AQ_OK;
}

/* fsync the directory holding @p path, so that a rename into it survives a crash. */
static int sync_parent_dir(const char *path, char *scratch)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    int fd, st;
    if (slash && n == 0)
        n = 1; /* "/file": the root */
    memcpy(scratch, slash ? path : ".", slash ? n : 1);
    scratch[slash ? n : 1] = '\0';
    if ((fd = open(scratch, O_RDONLY | O_DIRECTORY)) < 0)
        return errno;
    st = fsync(fd) != 0 && errno != EINVAL ? errno : 0; /* some file systems cannot sync directories */
    close(fd);
    return st;
}

int aqi_file_commit(aq_context *ctx, const char *fn, aqi_file_out *out, int failed)
{
    int err = failed ? (errno ? errno : EIO) : 0;
    if (!failed && (fflush(out->f) != 0 || fsync(fileno(out->f)) != 0)) {
        failed = 1;
        err = errno;
    }
    if (fclose(out->f) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    if (!failed && rename(out->tmp_path, out->path) != 0) {
        failed = 1;
        err = errno;
    }
    /* the temporary name is at least as long as the directory part of the path */
    if (!failed && (err = sync_parent_dir(out->path, out->tmp_path)) != 0)
        failed = 1;
    else if (failed)
        remove(out->tmp_path);
    if (failed)
        aqi_fail(ctx, AQ_ERR_IO, "%s: writing '%s' failed: %s", fn, out->path, strerror(err));
    aqi_free(ctx, out->tmp_path);
    memset(out, 0, sizeof *out);
    return failed ? AQ_ERR_IO : AQ_OK;
}

int aqi_file_open_regular(aq_context *ctx, const char *fn, const char *path, FILE **out, uint64_t *size)
{
    struct stat sb;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f)
        return aqi_fail(ctx, AQ_ERR_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
        fclose(f);
        return aqi_fail(ctx, AQ_ERR_IO, "%s: '%s' is not a readable regular file", fn, path);
    }
    *out = f;
    *size = (uint64_t)sb.st_size;
    return AQ_OK;
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Parsing a format's text, "MxB" followed by "gG" and "oGO" (e.g. "2x8g8", "1x16g8o1"). */
#include <stdlib.h>

#include "core/internal.h"

/* A decimal number in 1 .. 2^20 at *p; advances *p past it. */
static int parse_uint(const char **p, long *out)
{
    char *end;
    long v;
    if (**p < '0' || **p > '9')
        return 0;
    v = strtol(*p, &end, 10);
    if (end == *p || v <= 0 || v > 1 << 20)
        return 0;
    *p = end;
    *out = v;
    return 1;
}

static int syntax_error(aq_context *ctx, const char *text, const char *at, const char *expected)
{
    return aqi_fail(ctx, AQ_ERR_INVALID_ARG,
                    "aq_format_parse: \"%s\": %s at position %d; the form is MxB[gG][oGO] with numbers"
                    " in 1..1048576, e.g. \"2x8g8\"", text, expected, (int)(at - text));
}

int aq_format_parse_ctx(aq_context *ctx, aq_format *fmt, const char *text)
{
    aq_format f;
    long m, b, v;
    const char *p = text;
    if (!fmt || !text)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_format_parse: %s is NULL", fmt ? "text" : "fmt");
    aq_format_init(&f);
    if (!parse_uint(&p, &m))
        return syntax_error(ctx, text, p, "expected the number of codebooks M");
    if (*p != 'x')
        return syntax_error(ctx, text, p, "expected 'x'");
    p++;
    if (!parse_uint(&p, &b))
        return syntax_error(ctx, text, p, "expected the bits per codebook B");
    f.num_codebooks = (int32_t)m;
    f.bits_per_codebook = (int32_t)b;
    while (*p) {
        const char *at = p;
        char tag = *p++;
        if (tag == '_' || tag == '-' || tag == ' ')
            continue;
        if (tag != 'g' && tag != 'o')
            return syntax_error(ctx, text, at, "expected 'g' or 'o'");
        if (!parse_uint(&p, &v))
            return syntax_error(ctx, text, p, tag == 'g' ? "expected the input group size"
                                                         : "expected the output group size");
        if (tag == 'g')
            f.in_group_size = (int32_t)v;
        else
            f.out_group_size = (int32_t)v;
    }
    if (aq_format_check(ctx, &f, f.out_group_size, f.in_group_size) != AQ_OK)
        return AQ_ERR_INVALID_ARG;
    *fmt = f;
    return AQ_OK;
}

int aq_format_parse(aq_format *fmt, const char *text)
{
    return aq_format_parse_ctx(NULL, fmt, text);
}

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The smallest program outside the tree: built in CI against the installed library with
 *   cc consumer.c $(pkg-config --cflags --libs aqinit)
 * It prints the version and the bits per parameter of the default format. */
#include <stdio.h>

#include <aqinit.h>

int main(void)
{
    aq_format fmt;
    double bpp = 0.0;
    aq_format_init(&fmt);
    if (aq_format_bits_per_parameter(&bpp, &fmt, 4096, 4096) != AQ_OK)
        return 1;
    printf("libaqinit %s (header %s): 2x8 g8 on 4096x4096 = %.3f bits per parameter\n",
           aq_version_string(), AQ_VERSION_STRING, bpp);
    return aq_version() == AQ_VERSION_NUMBER ? 0 : 1;
}

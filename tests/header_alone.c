/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Compiled with -std=c99 -pedantic -Werror: the public header must stand alone. */
#include "aqinit.h"
int header_alone_c(void);
int header_alone_c(void) { return (int)aq_version() + AQ_OK; }

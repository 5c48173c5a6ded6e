/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
// Compiled as C++11: the public header must be usable from C++.
#include "aqinit.h"
int header_alone_cxx();
int header_alone_cxx() { aq_format f; aq_format_init(&f); return f.num_codebooks + AQ_OK; }

/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Read-only views of a quant's arrays (aq_quant_codes_const and its siblings): what a
 * put_result callback, which is handed a const quant, reads without a cast. */
#include "quant/quant.h"

const void *aq_quant_codes_const(const aq_quant *q, size_t *nbytes)
{
    if (nbytes)
        *nbytes = q ? q->codes_bytes : 0;
    return q ? q->codes : NULL;
}

const float *aq_quant_codebooks_const(const aq_quant *q, size_t *count)
{
    if (count)
        *count = q ? q->codebooks_count : 0;
    return q ? q->codebooks : NULL;
}

const float *aq_quant_scales_const(const aq_quant *q, size_t *count)
{
    if (count)
        *count = q ? q->scales_count : 0;
    return q ? q->scales : NULL;
}

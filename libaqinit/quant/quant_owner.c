/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* One context per call: a call that takes a context refuses a handle created from another one,
 * whose pool, allocator, callbacks and error message would otherwise be mixed with the call's. */
#include "core/options.h"
#include "hessian/hessian_internal.h"
#include "quant/quant.h"

static int foreign(aq_context *ctx, const char *fn, const char *what)
{
    return aqi_fail(ctx, AQ_ERR_INVALID_ARG,
                    "%s: %s was created from another context; every handle of a call must come from"
                    " the context passed to it", fn, what);
}

int aqi_check_owners(aq_context *ctx, const char *fn, const aq_quant *q, const aq_hessian *H,
                     const aq_options *options)
{
    if (q && q->ctx != ctx)
        return foreign(ctx, fn, "the quant");
    if (H && H->ctx != ctx)
        return foreign(ctx, fn, "the Hessian");
    if (options && options->ctx != ctx)
        return foreign(ctx, fn, "the options");
    return AQ_OK;
}

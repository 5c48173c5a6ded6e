/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Options: one table describes every key (type, range, default, field), so adding an option
 * is one line here plus one pinned key in aqinit.h. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/options.h"

enum { OPT_INT, OPT_DOUBLE };

typedef struct option_desc {
    int32_t key;
    const char *name;
    int type;
    double min, max; /* inclusive bounds */
    double def;
    size_t offset; /* into aqi_options_values */
} option_desc;

#define F(field) offsetof(aqi_options_values, field)
static const option_desc option_table[] = {
    {AQ_OPT_INIT_METHOD, "AQ_OPT_INIT_METHOD", OPT_INT, 0, 1, AQ_INIT_GREEDY, F(init_method)},
    {AQ_OPT_KMEANS_SEEDING, "AQ_OPT_KMEANS_SEEDING", OPT_INT, 0, 1, AQ_SEEDING_RANDOM_ROWS, F(kmeans_seeding)},
    {AQ_OPT_KMEANS_MAX_ITER, "AQ_OPT_KMEANS_MAX_ITER", OPT_INT, 0, 1e6, 100, F(kmeans_max_iter)},
    {AQ_OPT_KMEANS_TOL, "AQ_OPT_KMEANS_TOL", OPT_DOUBLE, 0, 1, 1e-6, F(kmeans_tol)},
    {AQ_OPT_EM_SEEDING, "AQ_OPT_EM_SEEDING", OPT_INT, 0, 3, AQ_EM_SEED_KMEANS, F(em_seeding)},
    {AQ_OPT_EM_MAX_ROUNDS, "AQ_OPT_EM_MAX_ROUNDS", OPT_INT, 0, 1e6, 10, F(em_max_rounds)},
    {AQ_OPT_EM_TOL, "AQ_OPT_EM_TOL", OPT_DOUBLE, 0, 1, 1e-4, F(em_tol)},
    {AQ_OPT_EM_DAMPING, "AQ_OPT_EM_DAMPING", OPT_DOUBLE, 0, 1e6, 0.01, F(em_damping)},
    {AQ_OPT_EM_SCALE_WEIGHTING, "AQ_OPT_EM_SCALE_WEIGHTING", OPT_INT, 0, 1, 1, F(em_scale_weighting)},
    {AQ_OPT_EM_MSTEP, "AQ_OPT_EM_MSTEP", OPT_INT, 0, 1, AQ_MSTEP_EXACT, F(em_mstep)},
    {AQ_OPT_EM_ADAM_STEPS, "AQ_OPT_EM_ADAM_STEPS", OPT_INT, 1, 1e7, 100, F(em_adam_steps)},
    {AQ_OPT_EM_ADAM_LR, "AQ_OPT_EM_ADAM_LR", OPT_DOUBLE, 0, 1e3, 1e-4, F(em_adam_lr)},
    {AQ_OPT_EM_JOINT_PASSES, "AQ_OPT_EM_JOINT_PASSES", OPT_INT, 0, 1e4, 0, F(em_joint_passes)},
    {AQ_OPT_BEAM_WIDTH, "AQ_OPT_BEAM_WIDTH", OPT_INT, 1, 64, 1, F(beam_width)},
    {AQ_OPT_BEAM_RANDOM_ORDER, "AQ_OPT_BEAM_RANDOM_ORDER", OPT_INT, 0, 1, 0, F(beam_random_order)},
    {AQ_OPT_CODEBOOK_UPDATE, "AQ_OPT_CODEBOOK_UPDATE", OPT_INT, 0, 4, AQ_CODEBOOK_UPDATE_AUTO, F(codebook_update)},
    {AQ_OPT_CODEBOOK_EXACT_MAX_DIM, "AQ_OPT_CODEBOOK_EXACT_MAX_DIM", OPT_INT, 0, 65536, 256, F(codebook_exact_max_dim)},
    {AQ_OPT_CODEBOOK_ADAM_STEPS, "AQ_OPT_CODEBOOK_ADAM_STEPS", OPT_INT, 1, 1e7, 100, F(codebook_adam_steps)},
    {AQ_OPT_CODEBOOK_ADAM_LR, "AQ_OPT_CODEBOOK_ADAM_LR", OPT_DOUBLE, 0, 1e3, 1e-4, F(codebook_adam_lr)},
    {AQ_OPT_UPDATE_SCALES, "AQ_OPT_UPDATE_SCALES", OPT_INT, 0, 1, 1, F(update_scales)},
    {AQ_OPT_CODEBOOK_CG_ITERS, "AQ_OPT_CODEBOOK_CG_ITERS", OPT_INT, 1, 10000, 4, F(codebook_cg_iters)},
    {AQ_OPT_MAX_EPOCHS, "AQ_OPT_MAX_EPOCHS", OPT_INT, 0, 1e6, 10, F(max_epochs)},
    {AQ_OPT_REL_TOL, "AQ_OPT_REL_TOL", OPT_DOUBLE, 0, 1, 0.01, F(rel_tol)},
    {AQ_OPT_HESSIAN_DAMPING, "AQ_OPT_HESSIAN_DAMPING", OPT_DOUBLE, 0, 1e6, 0, F(hessian_damping)},
    {AQ_OPT_VSTEP_MAX_FRACTION, "AQ_OPT_VSTEP_MAX_FRACTION", OPT_DOUBLE, 1e-12, 1, 0.01, F(vstep_max_fraction)},
    {AQ_OPT_VSTEP_SELECTION, "AQ_OPT_VSTEP_SELECTION", OPT_INT, 0, 2, AQ_VSTEP_LARGEST, F(vstep_selection)},
    {AQ_OPT_VSTEP_TRUST_RATIO, "AQ_OPT_VSTEP_TRUST_RATIO", OPT_DOUBLE, 0, 1e6, 0, F(vstep_trust_ratio)},
    {AQ_OPT_VSTEP_MAX_CHANGE, "AQ_OPT_VSTEP_MAX_CHANGE", OPT_DOUBLE, 0, 1e6, 0, F(vstep_max_change)},
    {AQ_OPT_PIPELINE_RESUME, "AQ_OPT_PIPELINE_RESUME", OPT_INT, 0, 2, AQ_RESUME_VERIFY, F(pipeline_resume)},
};
#undef F

#define N_OPTIONS (sizeof option_table / sizeof option_table[0])

static const option_desc *find_option(int32_t key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (option_table[i].key == key)
            return &option_table[i];
    return NULL;
}

void aqi_options_defaults(aqi_options_values *v)
{
    memset(v, 0, sizeof *v);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char *field = (char *)v + option_table[i].offset;
        if (option_table[i].type == OPT_INT) {
            int64_t x = (int64_t)option_table[i].def;
            memcpy(field, &x, sizeof x);
        } else {
            double x = option_table[i].def;
            memcpy(field, &x, sizeof x);
        }
    }
}

int aq_options_create(aq_options **out, aq_context *ctx)
{
    aq_options *o;
    if (!out || !ctx)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "aq_options_create: NULL argument");
    *out = NULL;
    o = aqi_alloc(ctx, sizeof *o);
    if (!o)
        return AQ_ERR_NOMEM;
    o->ctx = ctx;
    aqi_options_defaults(&o->v);
    *out = o;
    return AQ_OK;
}

void aq_options_free(aq_options *opts)
{
    if (opts)
        aqi_free(opts->ctx, opts);
}

int aq_options_clone(aq_options **out, const aq_options *src)
{
    int st;
    if (!out || !src)
        return AQ_ERR_INVALID_ARG;
    st = aq_options_create(out, src->ctx);
    if (st == AQ_OK)
        (*out)->v = src->v;
    return st;
}

static const option_desc *lookup(const aq_options *opts, int32_t key, int type, const char *fn)
{
    const option_desc *d = find_option(key);
    if (!d) {
        aqi_fail(opts->ctx, AQ_ERR_INVALID_ARG, "%s: unknown option key %d", fn, (int)key);
        return NULL;
    }
    if (d->type != type) {
        aqi_fail(opts->ctx, AQ_ERR_INVALID_ARG, "%s: %s is %s-valued", fn, d->name,
                 d->type == OPT_INT ? "integer" : "double");
        return NULL;
    }
    return d;
}

int aq_options_set_int(aq_options *opts, int32_t key, int64_t value)
{
    const option_desc *d;
    if (!opts)
        return AQ_ERR_INVALID_ARG;
    if (!(d = lookup(opts, key, OPT_INT, "aq_options_set_int")))
        return AQ_ERR_INVALID_ARG;
    if ((double)value < d->min || (double)value > d->max)
        return aqi_fail(opts->ctx, AQ_ERR_INVALID_ARG, "aq_options_set_int: %s = %lld is not in [%g, %g]",
                        d->name, (long long)value, d->min, d->max);
    memcpy((char *)&opts->v + d->offset, &value, sizeof value);
    return AQ_OK;
}

int aq_options_set_double(aq_options *opts, int32_t key, double value)
{
    const option_desc *d;
    if (!opts)
        return AQ_ERR_INVALID_ARG;
    if (!(d = lookup(opts, key, OPT_DOUBLE, "aq_options_set_double")))
        return AQ_ERR_INVALID_ARG;
    if (!isfinite(value))
        return aqi_fail(opts->ctx, AQ_ERR_NONFINITE, "aq_options_set_double: %s must be finite", d->name);
    if (value < d->min || value > d->max)
        return aqi_fail(opts->ctx, AQ_ERR_INVALID_ARG, "aq_options_set_double: %s = %g is not in [%g, %g]",
                        d->name, value, d->min, d->max);
    memcpy((char *)&opts->v + d->offset, &value, sizeof value);
    return AQ_OK;
}

int aq_options_get_int(int64_t *value, const aq_options *opts, int32_t key)
{
    const option_desc *d;
    if (!value || !opts)
        return AQ_ERR_INVALID_ARG;
    if (!(d = lookup(opts, key, OPT_INT, "aq_options_get_int")))
        return AQ_ERR_INVALID_ARG;
    memcpy(value, (const char *)&opts->v + d->offset, sizeof *value);
    return AQ_OK;
}

int aq_options_get_double(double *value, const aq_options *opts, int32_t key)
{
    const option_desc *d;
    if (!value || !opts)
        return AQ_ERR_INVALID_ARG;
    if (!(d = lookup(opts, key, OPT_DOUBLE, "aq_options_get_double")))
        return AQ_ERR_INVALID_ARG;
    memcpy(value, (const char *)&opts->v + d->offset, sizeof *value);
    return AQ_OK;
}

size_t aqi_options_describe(const aqi_options_values *v, int32_t skip_key, char *buf, size_t size)
{
    size_t used = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_desc *d = &option_table[i];
        const char *field = (const char *)v + d->offset;
        char item[160];
        int n;
        if (d->key == skip_key)
            continue;
        if (d->type == OPT_INT) {
            int64_t x;
            memcpy(&x, field, sizeof x);
            if ((double)x == d->def)
                continue;
            n = snprintf(item, sizeof item, "%s%s=%lld", used ? "," : "", d->name, (long long)x);
        } else {
            double x;
            memcpy(&x, field, sizeof x);
            if (x == d->def)
                continue;
            n = snprintf(item, sizeof item, "%s%s=%.17g", used ? "," : "", d->name, x);
        }
        if (used + (size_t)n < size)
            memcpy(buf + used, item, (size_t)n + 1);
        else if (size)
            buf[size - 1] = '\0';
        used += (size_t)n;
    }
    return used;
}

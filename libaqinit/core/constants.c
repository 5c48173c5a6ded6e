/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Version queries and the run-time twin of every constant in aqinit.h. */
#include <string.h>

#include "core/internal.h"

uint32_t aq_version(void)
{
    return AQ_VERSION_NUMBER;
}

const char *aq_version_string(void)
{
    return AQ_VERSION_STRING;
}

#define C(name) {#name, name}
static const struct { const char *name; int64_t value; } constants[] = {
    C(AQ_VERSION_MAJOR), C(AQ_VERSION_MINOR), C(AQ_VERSION_PATCH), C(AQ_VERSION_NUMBER),
    C(AQ_OK), C(AQ_ERR_INVALID_ARG), C(AQ_ERR_SHAPE), C(AQ_ERR_OVERFLOW), C(AQ_ERR_NOMEM),
    C(AQ_ERR_NONFINITE), C(AQ_ERR_NOT_PSD), C(AQ_ERR_FORMAT), C(AQ_ERR_IO), C(AQ_ERR_CANCELLED),
    C(AQ_ERR_CALLBACK), C(AQ_ERR_UNSUPPORTED), C(AQ_ERR_INTERNAL), C(AQ_ERR_THREAD),
    C(AQ_ERR_MISMATCH),
    C(AQ_LOG_ERROR), C(AQ_LOG_WARN), C(AQ_LOG_INFO), C(AQ_LOG_DEBUG),
    C(AQ_OPT_INIT_METHOD), C(AQ_OPT_KMEANS_SEEDING), C(AQ_OPT_KMEANS_MAX_ITER), C(AQ_OPT_KMEANS_TOL),
    C(AQ_OPT_EM_SEEDING), C(AQ_OPT_EM_MAX_ROUNDS), C(AQ_OPT_EM_TOL), C(AQ_OPT_EM_DAMPING),
    C(AQ_OPT_EM_SCALE_WEIGHTING), C(AQ_OPT_EM_MSTEP), C(AQ_OPT_EM_ADAM_STEPS), C(AQ_OPT_EM_ADAM_LR),
    C(AQ_OPT_EM_JOINT_PASSES), C(AQ_OPT_BEAM_WIDTH), C(AQ_OPT_BEAM_RANDOM_ORDER), C(AQ_OPT_CODEBOOK_UPDATE),
    C(AQ_OPT_CODEBOOK_EXACT_MAX_DIM), C(AQ_OPT_CODEBOOK_ADAM_STEPS), C(AQ_OPT_CODEBOOK_ADAM_LR),
    C(AQ_OPT_UPDATE_SCALES), C(AQ_OPT_MAX_EPOCHS), C(AQ_OPT_REL_TOL), C(AQ_OPT_HESSIAN_DAMPING),
    C(AQ_OPT_VSTEP_MAX_FRACTION), C(AQ_OPT_VSTEP_SELECTION), C(AQ_OPT_VSTEP_TRUST_RATIO),
    C(AQ_OPT_VSTEP_MAX_CHANGE), C(AQ_VSTEP_LARGEST), C(AQ_VSTEP_SAMPLED), C(AQ_VSTEP_GAIN),
    C(AQ_OPT_PIPELINE_RESUME), C(AQ_RESUME_VERIFY), C(AQ_RESUME_VERIFY_HESSIAN), C(AQ_RESUME_ACCEPT),
    C(AQ_CODEBOOK_UPDATE_AUTO), C(AQ_CODEBOOK_UPDATE_EXACT), C(AQ_CODEBOOK_UPDATE_ADAM), C(AQ_CODEBOOK_UPDATE_NONE), C(AQ_CODEBOOK_UPDATE_CG), C(AQ_OPT_CODEBOOK_CG_ITERS),
    C(AQ_INIT_GREEDY), C(AQ_INIT_OA_EM), C(AQ_SEEDING_RANDOM_ROWS), C(AQ_SEEDING_KMEANSPP),
    C(AQ_EM_SEED_KMEANS), C(AQ_EM_SEED_RANDOM_ROWS), C(AQ_EM_SEED_KMEANSPP), C(AQ_EM_SEED_PRODUCT),
    C(AQ_MSTEP_EXACT), C(AQ_MSTEP_ADAM),
    C(AQ_SCALE_NONE), C(AQ_SCALE_PER_OUTPUT_GROUP), C(AQ_MAX_BITS_PER_CODEBOOK),
};
#undef C

int aq_constant(int64_t *value, const char *name)
{
    if (!value || !name)
        return AQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (strcmp(constants[i].name, name) == 0) {
            *value = constants[i].value;
            return AQ_OK;
        }
    }
    return AQ_ERR_INVALID_ARG;
}

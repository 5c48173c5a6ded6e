# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""Library constants and version: constant(), version(), version_string() and every AQ_* constant
exposed without its prefix (ERR_SHAPE, OPT_EM_TOL, INIT_OA_EM, ...)."""
import ctypes

from ._lib import lib


def constant(name):
    """Value of a named library constant (e.g. "AQ_ERR_SHAPE", "AQ_OPT_EM_MAX_ROUNDS")."""
    value = ctypes.c_int64()
    if "\0" in name or lib.aq_constant(ctypes.byref(value), name.encode()) != 0:  # C stops at a NUL
        raise KeyError(name)
    return value.value


def version():
    """(major, minor, patch) of the loaded library."""
    v = lib.aq_version()  # major·10000 + minor·100 + patch
    return v // 10000, v // 100 % 100, v % 100


def version_string():
    return lib.aq_version_string().decode()


# Constants, read from the library so they can never disagree with it. Exposed without the
# "AQ_" prefix (aqinit.ERR_SHAPE, aqinit.OPT_EM_MAX_ROUNDS, aqinit.INIT_OA_EM, ...).
_CONSTANT_NAMES = [
    "AQ_OK", "AQ_ERR_INVALID_ARG", "AQ_ERR_SHAPE", "AQ_ERR_OVERFLOW", "AQ_ERR_NOMEM", "AQ_ERR_NONFINITE",
    "AQ_ERR_NOT_PSD", "AQ_ERR_FORMAT", "AQ_ERR_IO", "AQ_ERR_CANCELLED", "AQ_ERR_CALLBACK", "AQ_ERR_UNSUPPORTED",
    "AQ_ERR_INTERNAL", "AQ_ERR_THREAD", "AQ_ERR_MISMATCH",
    "AQ_VERSION_MAJOR", "AQ_VERSION_MINOR", "AQ_VERSION_PATCH", "AQ_VERSION_NUMBER",
    "AQ_LOG_ERROR", "AQ_LOG_WARN", "AQ_LOG_INFO", "AQ_LOG_DEBUG",
    "AQ_OPT_INIT_METHOD", "AQ_OPT_KMEANS_SEEDING", "AQ_OPT_KMEANS_MAX_ITER", "AQ_OPT_KMEANS_TOL",
    "AQ_OPT_EM_SEEDING", "AQ_OPT_EM_MAX_ROUNDS", "AQ_OPT_EM_TOL", "AQ_OPT_EM_DAMPING",
    "AQ_OPT_EM_SCALE_WEIGHTING", "AQ_OPT_EM_MSTEP", "AQ_OPT_EM_ADAM_STEPS", "AQ_OPT_EM_ADAM_LR",
    "AQ_OPT_EM_JOINT_PASSES", "AQ_OPT_BEAM_WIDTH", "AQ_OPT_BEAM_RANDOM_ORDER", "AQ_OPT_CODEBOOK_UPDATE",
    "AQ_OPT_CODEBOOK_EXACT_MAX_DIM", "AQ_OPT_CODEBOOK_ADAM_STEPS", "AQ_OPT_CODEBOOK_ADAM_LR",
    "AQ_OPT_UPDATE_SCALES", "AQ_OPT_MAX_EPOCHS", "AQ_OPT_REL_TOL", "AQ_OPT_HESSIAN_DAMPING", "AQ_OPT_VSTEP_MAX_FRACTION",
    "AQ_OPT_VSTEP_SELECTION", "AQ_OPT_VSTEP_TRUST_RATIO", "AQ_OPT_VSTEP_MAX_CHANGE", "AQ_VSTEP_LARGEST",
    "AQ_VSTEP_SAMPLED", "AQ_VSTEP_GAIN", "AQ_OPT_PIPELINE_RESUME", "AQ_RESUME_VERIFY", "AQ_RESUME_VERIFY_HESSIAN",
    "AQ_RESUME_ACCEPT",
    "AQ_INIT_GREEDY", "AQ_INIT_OA_EM", "AQ_SEEDING_RANDOM_ROWS", "AQ_SEEDING_KMEANSPP",
    "AQ_EM_SEED_KMEANS", "AQ_EM_SEED_RANDOM_ROWS", "AQ_EM_SEED_KMEANSPP", "AQ_EM_SEED_PRODUCT", "AQ_MSTEP_EXACT", "AQ_MSTEP_ADAM",
    "AQ_CODEBOOK_UPDATE_AUTO", "AQ_CODEBOOK_UPDATE_EXACT", "AQ_CODEBOOK_UPDATE_ADAM", "AQ_CODEBOOK_UPDATE_NONE", "AQ_CODEBOOK_UPDATE_CG", "AQ_OPT_CODEBOOK_CG_ITERS",
    "AQ_SCALE_NONE", "AQ_SCALE_PER_OUTPUT_GROUP", "AQ_MAX_BITS_PER_CODEBOOK",
    "AQ_MATVEC_EXACT", "AQ_MATVEC_INT16",
]
for _name in _CONSTANT_NAMES:
    try:
        globals()[_name[3:]] = constant(_name)
    except KeyError:  # a constant this build does not know
        pass
_STATUS_NAMES = {globals()[n[3:]]: n for n in _CONSTANT_NAMES if n.startswith("AQ_ERR_") and n[3:] in globals()}


__all__ = ["constant", "version", "version_string"] + [n[3:] for n in _CONSTANT_NAMES if n[3:] in globals()]

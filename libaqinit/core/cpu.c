/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* The vector level of the CPU kernels (assign.c, beam_kernels.c): detected once, overridable by
 * tests. One level for the whole process, so a test that forces the baseline forces it for every
 * kernel family. */
#include "core/internal.h"

/* 2: x86-64-v4 (AVX-512 F/VL/BW/DQ), 1: x86-64-v3 (AVX2, FMA, BMI2), 0: baseline. */
static int detect_level(void)
{
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
#  if !defined(__clang__) && __GNUC__ >= 12
    if (__builtin_cpu_supports("x86-64-v4"))
        return 2;
    if (__builtin_cpu_supports("x86-64-v3"))
        return 1;
#  else /* the features of the levels the kernels use */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return 1;
#  endif
#endif
    return 0;
}

static int level_in_use = -1; /* −1: not yet detected; every thread computes the same value */

int aqi_kernel_level(int force)
{
    int level;
    if (force >= 0) {
        const int best = detect_level();
        __atomic_store_n(&level_in_use, force < best ? force : best, __ATOMIC_RELAXED);
    }
    level = __atomic_load_n(&level_in_use, __ATOMIC_RELAXED);
    if (level < 0) {
        level = detect_level();
        __atomic_store_n(&level_in_use, level, __ATOMIC_RELAXED);
    }
    return level;
}

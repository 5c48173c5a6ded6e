/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Compilation helpers of the numerical kernels: one C body compiled per instruction set, and
 * GCC generic vectors. Used by the kernels of the algorithms (codebook/, beam/). */
#ifndef AQINIT_CORE_KERNEL_H
#define AQINIT_CORE_KERNEL_H

#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(__SANITIZE_THREAD__)
/* The same C code compiled for AVX-512 / AVX2 / baseline, chosen at load time
 * (codebook/codebook_update.c). No contraction into FMA (ISO C mode), so every variant gives the same
 * bits. Not under ThreadSanitizer (gcc -fsanitize=thread): the ifunc resolver is instrumented and
 * runs while the dynamic loader relocates, before the TSan runtime is initialised, and crashes;
 * that build gets the baseline variant, which gives the same bits. */
#  define AQI_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#  define AQI_KERNEL
#endif

#if defined(__GNUC__) && !defined(AQI_NO_VECTORS)
/* Generic vectors of at most 32 bytes (one AVX2 register; wider ones GCC keeps in memory
 * without AVX-512) with unaligned loads and stores. Macros, not functions: passing vectors by
 * value would depend on the target's ABI. Without them the kernels use plain loops. */
#  define AQI_VECTORS 1
#  define LOAD_VEC(v, p) memcpy(&(v), (p), sizeof(v))
#  define STORE_VEC(p, v) memcpy((p), &(v), sizeof(v))
#else
#  define AQI_VECTORS 0
#endif

#endif

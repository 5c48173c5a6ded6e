#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# ThreadSanitizer: build the library and the Check suites with clang -fsanitize=thread and run
# the unit suites (tests/test_threads.c shares one context between host threads; the other
# suites use the context's pool). Fails on any data race, lock-order inversion or other report.
#
# clang, not gcc: clang leaves the sanitizer runtime to the executable (hence -Db_lundef=false)
# and has no target_clones; a gcc TSan build works too since core/kernel.h drops target_clones
# under __SANITIZE_THREAD__ (the ifunc resolvers would run before the TSan runtime is set up).
# CK_FORK=no: the test process never forks, so no child of a multi-threaded parent (OpenBLAS
# starts its pool at load time) creates threads, which TSan does not support; a report ends the
# process (halt_on_error=1, exit status 66) and so fails its suite.
#
# Environment: TSAN_BUILD (build folder, default: a temporary one, removed afterwards).
# Needs clang and libclang-rt-dev (scripts/install-deps.sh). About 1 minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
for tool in clang meson; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

if [ -n "${TSAN_BUILD:-}" ]; then
    B=$TSAN_BUILD
    rm -rf "$B"
else
    B=$(mktemp -d /tmp/aqinit-tsan.XXXXXX)
    trap 'rm -rf "$B"' EXIT
fi

echo "=== ThreadSanitizer build (clang)"
# debugoptimized: reports name files and lines, the kernels run at their normal speed.
CC=clang meson setup "$B" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
ninja -C "$B" >/dev/null

echo "=== unit suites under ThreadSanitizer"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# OpenBLAS is not instrumented: its own worker threads hand buffers over through spin flags that
# TSan cannot see, which it reports as races inside dscal/memset (seen on an AVX-512 machine with
# OpenBLAS's Cooperlake kernels, on the 0.1 code as well). One OpenBLAS thread per call keeps
# every thread TSan checks ours: the library's pool and the tests' host threads.
export OPENBLAS_NUM_THREADS=1
status=0
CK_FORK=no meson test -C "$B" --suite unit --print-errorlogs --timeout-multiplier 3 || status=$?
# Belt and braces: a report that did not end its process fails the run too.
if grep -q "ThreadSanitizer" "$B/meson-logs/testlog.txt"; then
    grep -h -A40 "WARNING: ThreadSanitizer" "$B/meson-logs/testlog.txt" | head -200 || true
    status=1
fi
if [ "$status" != 0 ]; then
    echo "ThreadSanitizer run failed" >&2
    exit 1
fi
echo "ThreadSanitizer: no reports ($((SECONDS - start)) s)"

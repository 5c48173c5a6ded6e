#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# Fuzz every loader of outside bytes (tests/fuzz/README.md): build the library and the libFuzzer
# harnesses with clang -fsanitize=fuzzer,address,undefined, generate the corpora, run each
# harness once on its crafted inputs (known findings) and then for a fixed number of runs.
# Fails on any crash, leak, undefined behaviour, timeout, out-of-memory or allocation-limit
# violation; the input that caused it is saved under $FUZZ_BUILD/artifacts/.
#
# Environment: FUZZ_BUILD (build folder, default build-fuzz), FUZZ_RUNS_SCALE (multiplies the
# run counts, default 1), FUZZ_SEED (libFuzzer seed, default 1: the same runs every time).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

B=${FUZZ_BUILD:-build-fuzz}
SCALE=${FUZZ_RUNS_SCALE:-1}
SEED=${FUZZ_SEED:-1}
# Runs per target (measured on 2 cores, two targets at a time: about 40-70 s each).
declare -A RUNS=([hessian]=400000 [quant]=400000 [llama_model]=800000 [tokenizer]=300000 [tokens]=1000000
                [provenance]=400000)
TARGETS=(hessian quant llama_model tokenizer tokens provenance)

echo "=== tools"
packages=(clang libclang-rt-dev meson ninja-build pkg-config libopenblas-dev liblapacke-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
clang --version | head -1

echo "=== build (clang, -fsanitize=fuzzer,address,undefined)"
rm -rf "$B/lib" "$B/bin" "$B/corpus" "$B/work" "$B/artifacts"
mkdir -p "$B/bin" "$B/artifacts"
# The library: meson's own source list, with coverage for libFuzzer and UB fatal.
CC=clang CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" \
    meson setup "$B/lib" -Dtests=disabled -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized >/dev/null
ninja -C "$B/lib" libaqinit/libaqinit.a >/dev/null
CFLAGS=(-g -O1 -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all
        -Iinclude -I"$B/lib/include" -Ilibaqinit -Iexamples/common -Itests/fuzz)
LIBS=("$B/lib/libaqinit/libaqinit.a" -lopenblas -llapacke -lm -lpthread)
for t in "${TARGETS[@]}"; do
    clang "${CFLAGS[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "${LIBS[@]}" -o "$B/bin/fuzz_$t" &
done
clang "${CFLAGS[@]}" tests/fuzz/gen_corpus.c "${LIBS[@]}" -o "$B/bin/gen_corpus" &
for job in $(jobs -p); do wait "$job"; done
echo "built in $((SECONDS - start)) s"

echo "=== corpora"
TINY=../shared/bench/tiny
if [ -d "$TINY" ]; then "$B/bin/gen_corpus" "$B/corpus" "$TINY"; else "$B/bin/gen_corpus" "$B/corpus"; fi
for t in "${TARGETS[@]}"; do
    echo "$t: $(ls "$B/corpus/seeds/$t" | wc -l) seeds, $(ls "$B/corpus/once/$t" | wc -l) inputs to run once"
done

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
OPTS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=30)

# One target: its crafted inputs once, then -runs from the seeds. Writes $B/<t>.result.
fuzz_target() {
    local t=$1 runs=$(( ${RUNS[$1]} * SCALE )) log="$B/$1.log" t0=$SECONDS status=0
    mkdir -p "$B/work/$t"
    "$B/bin/fuzz_$t" "${OPTS[@]}" -artifact_prefix="$B/artifacts/$t-" "$B/corpus/once/$t"/* >"$log.once" 2>&1 \
        || status=$?
    if [ $status -eq 0 ]; then
        "$B/bin/fuzz_$t" "${OPTS[@]}" -artifact_prefix="$B/artifacts/$t-" -runs="$runs" -seed="$SEED" \
            -max_total_time=300 -print_final_stats=1 "$B/work/$t" "$B/corpus/seeds/$t" >"$log" 2>&1 || status=$?
        local done_line
        done_line=$(grep -m1 '^Done ' "$log" || echo "Done ? runs")
        if [ $status -eq 0 ]; then
            echo "$t: $(echo "$done_line" | awk '{print $2}') runs in $((SECONDS - t0)) s: ok" >"$B/$t.result"
        else
            echo "$t: FAILED after $(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#') runs (exit $status), see $log" >"$B/$t.result"
        fi
    else
        echo "$t: FAILED on a crafted input (exit $status), see $log.once" >"$B/$t.result"
    fi
}

echo "=== fuzzing, two targets at a time"
for t in "${TARGETS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    fuzz_target "$t" &
done
wait

failed=0
for t in "${TARGETS[@]}"; do
    cat "$B/$t.result"
    if ! grep -q ': ok$' "$B/$t.result"; then
        failed=1
        cat "$B/$t.log.once" "$B/$t.log" 2>/dev/null \
            | grep -E 'ERROR|runtime error|allocation limit|Test unit written|SUMMARY' | head -8 | sed 's/^/    /' || true
    fi
done
echo "fuzzing took $((SECONDS - start)) s in all"
if [ $failed -ne 0 ]; then
    echo "fuzz: FAILED (reproduce: $B/bin/fuzz_<target> $B/artifacts/<file>)"
    exit 1
fi
echo "fuzz passed"

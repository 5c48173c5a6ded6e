#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# Three consumers outside the tree (tests/consumers/README.md):
#  1. the README's install recipe, run literally (the sh block after <!-- install-recipe --> in
#     README.md): install into ./prefix, build examples/consumer.c with pkg-config, run it;
#     then check what aqinit.pc gives: no BLAS include directory, no Requires;
#  2. a C++17 program with find_package(aqinit) from the same prefix (CMake);
#  3. a C project with libaqinit as a meson subproject.
# Needs cmake and a C++ compiler (scripts/install-deps.sh). About a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
ROOT=$PWD

echo "=== 1. the README's install recipe (pkg-config, C)"
rm -rf build-prefix prefix consumer
recipe=$(awk '/<!-- install-recipe -->/ {found = 1; next} found && /^```sh/ {inside = 1; next}
              inside && /^```/ {exit} inside {print}' README.md)
[ -n "$recipe" ] || { echo "README.md has no sh block after <!-- install-recipe -->" >&2; exit 1; }
printf '%s\n' "$recipe" | sed 's/^/  | /'
mkdir -p build-prefix
bash -euo pipefail -c "$recipe" >build-prefix/recipe.log 2>&1 || { cat build-prefix/recipe.log; exit 1; }
tail -1 build-prefix/recipe.log
export PKG_CONFIG_PATH="$ROOT/prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags aqinit | xargs)
echo "pkg-config --cflags aqinit: $cflags"
[ "$cflags" = "-I$ROOT/prefix/include" ] || { echo "--cflags should name only the header's directory" >&2; exit 1; }
if grep -q '^Requires' prefix/lib/pkgconfig/aqinit.pc; then
    echo "aqinit.pc has Requires: consumers would need the BLAS's .pc files" >&2; exit 1
fi
echo "pkg-config --static --libs aqinit: $(pkg-config --static --libs aqinit)"
# A static link works with Libs.private alone: libaqinit.a, then what --static adds.
static_libs=$(pkg-config --static --libs aqinit | sed 's/\(^\| \)-laqinit\( \|$\)/ /')
cc -std=c99 -Wall -Werror examples/consumer.c $(pkg-config --cflags aqinit) prefix/lib/libaqinit.a \
    $static_libs -o build-prefix/consumer-static
if readelf -d build-prefix/consumer-static | grep 'libaqinit' >/dev/null; then
    echo "the static consumer links libaqinit.so" >&2; exit 1
fi
./build-prefix/consumer-static

echo "=== 2. CMake find_package(aqinit), C++17"
rm -rf build-cmake-consumer
cmake -S tests/consumers/cmake -B build-cmake-consumer -DCMAKE_PREFIX_PATH="$ROOT/prefix" \
    -DCMAKE_BUILD_RPATH="$ROOT/prefix/lib" >/dev/null
cmake --build build-cmake-consumer >/dev/null
./build-cmake-consumer/consumer
# The version file refuses another minor version while the major is 0.
mkdir -p build-cmake-consumer/version
cat > build-cmake-consumer/version/CMakeLists.txt <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(v NONE)
find_package(aqinit 0.1 QUIET)
if(aqinit_FOUND)
  message(FATAL_ERROR "find_package(aqinit 0.1) accepted ${aqinit_VERSION}")
endif()
find_package(aqinit 0.2.0 EXACT REQUIRED)
CMAKE
cmake -S build-cmake-consumer/version -B build-cmake-consumer/version/b -DCMAKE_PREFIX_PATH="$ROOT/prefix" >/dev/null
echo "find_package(aqinit 0.1) refused, find_package(aqinit 0.2.0 EXACT) found"

echo "=== 3. meson subproject, C"
T=$(mktemp -d /tmp/aqinit-subproject.XXXXXX)
trap 'rm -rf "$T"' EXIT
cp tests/consumers/meson-subproject/meson.build tests/consumers/meson-subproject/main.c "$T/"
mkdir "$T/subprojects"
git ls-files -z | (cd "$ROOT" && xargs -0 tar cf -) | (mkdir "$T/subprojects/aqinit" && cd "$T/subprojects/aqinit" && tar xf -)
meson setup "$T/build" "$T" >"$T/setup.log" || { cat "$T/setup.log"; exit 1; }
if grep -E "aqinit\| (Executable|Build targets).*(aqinit-demo|bench-|test_)" "$T/setup.log"; then
    echo "the subproject built its examples, benchmarks or tests" >&2; exit 1
fi
ninja -C "$T/build" >/dev/null
targets=$(ninja -C "$T/build" -t targets all | grep -cE "aqinit-demo|bench-|test_core" || true)
[ "$targets" = 0 ] || { echo "the subproject defines $targets example/bench/test targets" >&2; exit 1; }
meson test -C "$T/build" --print-errorlogs consumer
"$T/build/consumer"
echo "consumers passed ($((SECONDS - start)) s)"

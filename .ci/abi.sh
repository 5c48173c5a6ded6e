#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# ABI check: build the shared library with debug info and compare its public ABI (the types of
# include/aqinit.h reachable from the exported functions) with the baseline abi/libaqinit.abi
# using libabigail's abidiff. Fails on a removed or changed function, a changed layout of a
# public struct, or any other ABI change but added functions; an added function passes (and is
# listed). Types defined only inside libaqinit/ (aq_context, aq_quant, ... behind their opaque
# typedefs) are not part of the ABI and may change freely.
#
#   .ci/abi.sh            check against the baseline
#   .ci/abi.sh --update   rewrite the baseline from this tree (at a release: docs/api-stability.md)
#
# abidiff's exit status is a bit field: 1 error, 2 usage error, 4 ABI change, 8 incompatible
# change. Bit 8 is set only for removed symbols, so a change that leaves bit 4 alone is
# compared again with --no-added-syms: what remains without the additions fails the check.
# Needs abigail-tools (scripts/install-deps.sh). About 15 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
for tool in clang abidw abidiff meson; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done
BASELINE=abi/libaqinit.abi

mode=check
case "${1:-}" in
    "") ;;
    --update) mode=update ;;
    *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

B=$(mktemp -d /tmp/aqinit-abi.XXXXXX)
trap 'rm -rf "$B"' EXIT

echo "=== shared library with debug info (clang, DWARF 4)"
# Two limits of abidw 2.2 (Debian 12), both caught by dump(): from gcc 12's debug info it ties
# only 62 of the 74 exported functions to their definitions (it keeps a declaration of
# aq_quant_rows etc. from pipeline/ instead), so their signatures would go unchecked; and it
# reads DWARF 5's file number 0 (the compiled .c file) as no file, so a struct defined in a .c
# file (struct aq_pipeline) looks public. clang with DWARF 4 has neither problem.
CC=clang meson setup "$B" -Dbuildtype=debug -Dc_args=-gdwarf-4 -Dtests=disabled >/dev/null
meson compile -C "$B" aqinit:shared_library >/dev/null
LIB=$B/libaqinit/libaqinit.so.$(sed -n "s/^aq_soversion = '\(.*\)'/\1/p" meson.build)
HEADERS=(--headers-dir include --headers-dir "$B/include")

# The ABI as XML, without the paths of this checkout (sources are named from the repository root)
# so that a baseline written elsewhere differs only where the ABI does.
dump() {
    local rel
    rel=$(realpath --relative-to="$B" .)
    abidw "${HEADERS[@]}" --drop-private-types --no-corpus-path "$LIB" \
        | sed -e "s|path='$rel/|path='|g" -e "s| comp-dir-path='[^']*'||" >"$1"
    local exported defined
    exported=$(grep -c "<elf-symbol .*type='func-type'" "$1")
    defined=$(grep -c "<function-decl .* elf-symbol-id=" "$1")
    if [ "$exported" != "$defined" ]; then
        echo "abidw described $defined of the $exported exported functions: their signatures" \
             "would not be checked" >&2
        exit 1
    fi
    # The complete types of the ABI are those of include/; the handles' structs stay opaque.
    if grep -E "<(class|union|enum)-decl " "$1" | grep -v "is-declaration-only='yes'" \
            | grep -v "filepath='include/"; then
        echo "abidw kept the complete types above, which are not defined in include/" >&2
        exit 1
    fi
}

if [ "$mode" = update ]; then
    mkdir -p abi
    dump "$BASELINE"
    echo "wrote $BASELINE ($(grep -c '<elf-symbol ' "$BASELINE") exported functions)"
    exit 0
fi

echo "=== abidiff $BASELINE against the new library"
dump "$B/current.abi"
status=0
abidiff "$BASELINE" "$B/current.abi" >"$B/report" || status=$?
cat "$B/report"
if (( status & 3 )); then
    echo "abidiff failed (status $status)" >&2
    exit 1
fi
if (( status & 8 )); then
    echo "ABI check: incompatible change (a function was removed): status $status" >&2
    exit 1
fi
if (( status & 4 )); then
    status=0
    abidiff --no-added-syms "$BASELINE" "$B/current.abi" >"$B/report-changes" || status=$?
    if (( status != 0 )); then
        echo "ABI check: the ABI changed beyond added functions (status $status); if deliberate, bump" \
             "the soversion, write it under 'ABI changes' in CHANGELOG.md and refresh the baseline" >&2
        exit 1
    fi
    echo "ABI check: functions were added (compatible); refresh the baseline at the next release"
fi
echo "ABI check passed ($((SECONDS - start)) s)"

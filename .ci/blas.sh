#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# The BLAS choices other than CI's default (OpenBLAS): -Dblas=netlib (Debian's switchable
# libblas.so.3) and -Dblas=blis (Debian's libblis-dev, which has no .pc file), each built with
# --werror and run on the unit suites; and a choice that is missing must fail with its own
# install hint. BLIS is installed in a private mount namespace over overlays of /usr, /etc and
# /var, so the machine's BLAS alternatives are untouched. About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
ROOT=$PWD
T=$(mktemp -d /tmp/aqinit-blas.XXXXXX)
trap 'rm -rf "$T"' EXIT

build_and_test() { # build dir, blas choice
    meson setup "$1" "$ROOT" --werror -Dblas="$2" -Dexamples=disabled -Dbench=disabled >"$1.log" \
        || { cat "$1.log"; exit 1; }
    grep "^Message: CBLAS:" "$1.log"
    ninja -C "$1" >/dev/null
    meson test -C "$1" --suite unit --print-errorlogs >/dev/null || { cat "$1/meson-logs/testlog.txt"; exit 1; }
    echo "-Dblas=$2: unit suites passed"
}

echo "=== -Dblas=netlib"
build_and_test "$T/netlib" netlib

echo "=== a missing choice names its package (-Dblas=flexiblas: not in Debian 12)"
if pkg-config --exists flexiblas; then
    echo "flexiblas is installed: skipped"
elif meson setup "$T/flexiblas" -Dblas=flexiblas -Dtests=disabled >"$T/flexiblas.log" 2>&1; then
    echo "-Dblas=flexiblas configured without FlexiBLAS" >&2; exit 1
else
    grep -q "Install libflexiblas-dev" "$T/flexiblas.log" || { cat "$T/flexiblas.log"; exit 1; }
    grep -o "ERROR: .*" "$T/flexiblas.log" | cut -c1-160
fi

echo "=== -Dblas=blis (libblis-dev in an overlay)"
mkdir -p "$T/ov"/{usr,etc,var}/{upper,work}
unshare -m bash -euo pipefail -s "$T" <<INNER
for d in usr etc var; do
    mount -t overlay overlay -o "lowerdir=/\$d,upperdir=$T/ov/\$d/upper,workdir=$T/ov/\$d/work" "/\$d"
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libblis-dev >"$T/apt.log" 2>&1 \
    || { cat "$T/apt.log"; exit 1; }
$(declare -f build_and_test)
ROOT="$ROOT"
build_and_test "$T/blis" blis
# grep without -q: stopping at the first match could end ldd by SIGPIPE, a failure under pipefail
ldd "$T/blis/libaqinit/libaqinit.so" | grep libblis >/dev/null || { echo "libaqinit.so does not link libblis" >&2; exit 1; }
INNER
echo "BLAS choices passed ($((SECONDS - start)) s)"
